//! Building the world from the spec and its seed: brands with their stores, associates
//! and codes, accounts with their menus, fan profiles and their follows, the pushes (see
//! [`super::pushes`]) and the fans' activity propensities.

use std::collections::{HashMap, HashSet};

use rand::distributions::WeightedIndex;
use rand::prelude::*;
use rand_chacha::ChaCha8Rng;
use wxpulse_runtime::enrich::{
    AccountRecord, AccountType, AssociateRecord, Birthday, CustomerStatus, QrSceneRecord,
    SceneChannel, StoreRecord,
};

use super::draw::{apportion, expand, standard_normal};
use super::model::{Account, Brand, Button, Fan, World};
use super::seed::{
    ACTIVITY_CAP_Z, ACTIVITY_SIGMA, ARTICLES_PER_PUSH, BACKGROUND_UNFOLLOW, BIRTHDAY_SHARE, BRANDS,
    BUTTONS, BUTTON_WEIGHTS, CAMPAIGNS, CITIES, DAY_MS, FIRST_MSGID, FIRST_SCENE_ID,
    FOLLOW_IN_SPAN, FOLLOW_SOURCES, GIVEN_NAMES, QR_FOLLOW_SOURCE, SCAN_CHANNELS, SEGMENTED_PUSHES,
    SKILL_SCAN_SIGMA, STATUSES, SURNAMES, UNKNOWN_SCENE_ID, VIP_OF_SEGMENTED,
};
use crate::spec::Spec;

impl World {
    /// Builds the world of `spec`: the same spec and seed, the same world.
    pub fn new(spec: &Spec) -> World {
        let mut rng = ChaCha8Rng::seed_from_u64(spec.seed ^ 0x0077_6f72_6c64); // "world"
        let (start, end) = (spec.start_ms, spec.end_ms.max(spec.start_ms + 1));
        let mut world = World {
            brands: Vec::new(),
            accounts: Vec::new(),
            stores: Vec::new(),
            associates: Vec::new(),
            scenes: Vec::new(),
            articles: Vec::new(),
            fans: Vec::new(),
            as_of: start,
            span: (start, end),
            activity: Vec::new(),
            skill: Vec::new(),
            channel_pick: WeightedIndex::new(SCAN_CHANNELS.iter().map(|c| c.1))
                .expect("positive weights"),
            buttons_by_key: HashMap::new(),
            scenes_by_key: HashMap::new(),
            article_ids: HashSet::new(),
            associate_ids: HashMap::new(),
        };
        let mut next_scene_id = FIRST_SCENE_ID;
        for b in 0..spec.brands as usize {
            world.add_brand(b, spec, &mut rng, &mut next_scene_id);
        }
        assert!(
            next_scene_id < UNKNOWN_SCENE_ID,
            "numeric scene ids stay below the unknown ones"
        );
        world.associate_ids = world
            .associates
            .iter()
            .enumerate()
            .map(|(i, a)| (a.userid.clone(), i))
            .collect();
        // How many pushes each account sends, then their sizes and targets over all of
        // them, exact to rounding (a month has few pushes: drawn one by one, a small world
        // could have no multi-article or no segmented push).
        let counts: Vec<usize> = (0..world.accounts.len())
            .map(|a| world.push_count(a, &mut rng, start, end))
            .collect();
        let total = counts.iter().sum();
        let mut kinds: Vec<(i32, Option<CustomerStatus>)> = Vec::with_capacity(total);
        let mut sizes = expand(apportion(total, &ARTICLES_PER_PUSH), [1, 2, 3]);
        let segments = [
            None,
            Some(CustomerStatus::Vip),
            Some(CustomerStatus::Customer),
        ];
        let shares = [
            1.0 - SEGMENTED_PUSHES,
            SEGMENTED_PUSHES * VIP_OF_SEGMENTED,
            SEGMENTED_PUSHES * (1.0 - VIP_OF_SEGMENTED),
        ];
        let mut targets = expand(apportion(total, &shares), segments);
        sizes.shuffle(&mut rng);
        targets.shuffle(&mut rng);
        kinds.extend(sizes.into_iter().zip(targets));
        let mut next_msgid = FIRST_MSGID;
        let mut kinds = kinds.into_iter();
        for (a, n) in counts.into_iter().enumerate() {
            world.add_fans(a, spec, &mut rng, start, end);
            let mine: Vec<_> = kinds.by_ref().take(n).collect();
            world.add_pushes(a, &mine, &mut rng, start, end, &mut next_msgid);
        }
        // Birthdays from their own stream ("birthday"), so the rest of the world is the
        // same with or without them: any day of a leap year, 02-29 included.
        let mut birthdays = ChaCha8Rng::seed_from_u64(spec.seed ^ 0x6269_7274_6864_6179);
        for fan in world.fans.iter_mut().flatten().flatten() {
            if birthdays.gen_bool(BIRTHDAY_SHARE) {
                fan.birthday = Some(day_of_leap_year(birthdays.gen_range(0..366)));
            }
        }
        // Propensities from their own stream ("activity"): the profiles do not depend on them.
        let mut activity = ChaCha8Rng::seed_from_u64(spec.seed ^ 0x6163_7469_7669_7479);
        world.activity = world
            .fans
            .iter()
            .map(|fans| {
                fans.iter()
                    .map(|_| {
                        let z =
                            standard_normal(&mut activity).clamp(-ACTIVITY_CAP_Z, ACTIVITY_CAP_Z);
                        (ACTIVITY_SIGMA * z - ACTIVITY_SIGMA * ACTIVITY_SIGMA / 2.0).exp()
                    })
                    .collect()
            })
            .collect();
        for account in &world.accounts {
            for button in &account.buttons {
                world.buttons_by_key.insert(
                    (account.record.app_id.clone(), button.key.clone()),
                    button.category,
                );
            }
        }
        world.scenes_by_key = world
            .scenes
            .iter()
            .map(|s| (s.scene.clone(), s.channel))
            .collect();
        world.article_ids = world
            .articles
            .iter()
            .map(|a| a.article_id.clone())
            .collect();
        world
    }

    fn add_brand(&mut self, b: usize, spec: &Spec, rng: &mut ChaCha8Rng, next_scene_id: &mut u32) {
        let (base_name, base_code) = BRANDS[b % BRANDS.len()];
        let round = b / BRANDS.len();
        let (name, code) = if round == 0 {
            (base_name.to_string(), base_code.to_string())
        } else {
            (
                format!("{base_name} {}", round + 1),
                format!("{base_code}{}", round + 1),
            )
        };
        let mut numeric_scene = || {
            let id = *next_scene_id;
            *next_scene_id += 1;
            id.to_string()
        };
        let mut scenes: Vec<QrSceneRecord> = Vec::new();
        let scene =
            |scene: String, channel, store_id: Option<&str>, userid: Option<&str>| QrSceneRecord {
                scene,
                channel,
                store_id: store_id.map(str::to_string),
                userid: userid.map(str::to_string),
                campaign: None,
                updated_at: 0,
                app_id: String::new(),
            };
        // Stores, their associates (the first of each store stays), counter and payment codes.
        let mut taken: HashSet<String> = self.associates.iter().map(|a| a.userid.clone()).collect();
        let mut active = Vec::new();
        for city in &CITIES {
            for (n, mall) in city.malls.iter().enumerate() {
                let store_id = format!("{code}_{}{:02}", city.code, n + 1);
                self.stores.push(StoreRecord {
                    store_id: store_id.clone(),
                    name: format!("{name} {}{mall}店", city.chinese),
                    city: city.name.to_string(),
                    region: city.region.to_string(),
                    tier: city.tier.to_string(),
                    updated_at: self.as_of,
                });
                scenes.push(scene(
                    format!("store_{store_id}_counter"),
                    SceneChannel::Store,
                    Some(&store_id),
                    None,
                ));
                scenes.push(scene(
                    numeric_scene(),
                    SceneChannel::Payment,
                    Some(&store_id),
                    None,
                ));
                for k in 0..rng.gen_range(3..=6) {
                    let (sp, sc) = SURNAMES[rng.gen_range(0..SURNAMES.len())];
                    let (gp, gc) = GIVEN_NAMES[rng.gen_range(0..GIVEN_NAMES.len())];
                    let mut userid = format!("{sp}{gp}");
                    let mut n = 2;
                    while !taken.insert(userid.clone()) {
                        userid = format!("{sp}{gp}{n:02}");
                        n += 1;
                    }
                    let is_active = k == 0 || !rng.gen_bool(0.08);
                    if is_active {
                        active.push(self.associates.len());
                    }
                    self.skill.push(standard_normal(rng));
                    scenes.push(scene(
                        format!("assoc_{userid}"),
                        SceneChannel::Associate,
                        Some(&store_id),
                        Some(&userid),
                    ));
                    self.associates.push(AssociateRecord {
                        userid,
                        name: format!("{sc}{gc}"),
                        store_id: store_id.clone(),
                        active: is_active,
                        updated_at: self.as_of,
                    });
                }
            }
        }
        for (kind, city) in [
            ("spring_popup", "sh"),
            ("vip_salon", "bj"),
            ("trunk_show", "cd"),
        ] {
            let mut s = scene(
                format!("event_{code}_{city}_{kind}"),
                SceneChannel::Event,
                Some(&format!("{code}_{city}01")),
                None,
            );
            s.campaign = Some(format!("{kind}_{city}"));
            scenes.push(s);
        }
        for (n, campaign) in CAMPAIGNS.iter().take(2).enumerate() {
            let mut s = scene(
                format!("article_{code}_{:02}", n + 1),
                SceneChannel::Article,
                None,
                None,
            );
            s.campaign = Some(campaign.to_string());
            scenes.push(s);
        }
        for platform in ["moments", "douyin", "xiaohongshu"] {
            let mut s = scene(
                format!("ad_{code}_{platform}"),
                SceneChannel::Ad,
                None,
                None,
            );
            s.campaign = Some(format!("{platform}_ads"));
            scenes.push(s);
        }
        for _ in 0..2 {
            scenes.push(scene(numeric_scene(), SceneChannel::Packaging, None, None));
        }
        // Scans use the codes of associates still there: a code of one who left is void.
        let first = self.scenes.len();
        let mut scannable = vec![Vec::new(); SCAN_CHANNELS.len()];
        for (i, s) in scenes.iter_mut().enumerate() {
            s.updated_at = self.as_of;
            let void = s
                .userid
                .as_ref()
                .is_some_and(|u| self.associates.iter().any(|a| &a.userid == u && !a.active));
            let c = SCAN_CHANNELS
                .iter()
                .position(|(c, _)| *c == s.channel)
                .expect("every scene channel is scannable");
            if !void {
                scannable[c].push(first + i);
            }
        }
        let skill_of = |userid: &str| {
            self.associates
                .iter()
                .position(|a| a.userid == userid)
                .map_or(0.0, |i| self.skill[i])
        };
        let a = SCAN_CHANNELS
            .iter()
            .position(|(c, _)| *c == SceneChannel::Associate)
            .expect("associates have codes");
        let associate_code_pick = WeightedIndex::new(scannable[a].iter().map(|&i| {
            let userid = scenes[i - first].userid.as_deref().unwrap_or_default();
            (SKILL_SCAN_SIGMA * skill_of(userid)).exp()
        }))
        .ok();
        let brand_scenes = first..first + scenes.len();
        self.scenes.extend(scenes);
        let button_pick = WeightedIndex::new(BUTTON_WEIGHTS).expect("positive weights");
        for a in 0..spec.accounts_per_brand as usize {
            let (account_type, suffix) = match a {
                0 => (AccountType::Service, "官方".to_string()),
                1 => (AccountType::Subscription, "会员俱乐部".to_string()),
                2 => (AccountType::Subscription, "精品店".to_string()),
                n => (AccountType::Subscription, format!("账号{}", n + 1)),
            };
            let buttons = BUTTONS
                .iter()
                .map(|(key, category, event, label)| Button {
                    key: key.replace("{code}", &code),
                    event: *event,
                    category: *category,
                    label,
                })
                .collect();
            self.accounts.push(Account {
                record: AccountRecord {
                    app_id: format!("wxb{b:02}a{a:02}"),
                    brand: name.clone(),
                    name: format!("{name} {suffix}"),
                    account_type,
                    fans: i64::from(spec.fans_per_account),
                    updated_at: self.as_of,
                },
                brand: b,
                buttons,
                button_pick: button_pick.clone(),
                pushes: Vec::new(),
            });
        }
        self.brands.push(Brand {
            code,
            active_associates: active,
            scannable,
            associate_code_pick,
            scenes: brand_scenes,
        });
    }

    fn add_fans(&mut self, a: usize, spec: &Spec, rng: &mut ChaCha8Rng, start: i64, end: i64) {
        let status_pick = WeightedIndex::new(STATUSES.iter().map(|s| s.1)).expect("weights");
        let source_pick = WeightedIndex::new(FOLLOW_SOURCES.iter().map(|s| s.1)).expect("weights");
        let brand = self.accounts[a].brand;
        let active = &self.brands[brand].active_associates;
        let mut fans: Vec<Option<Fan>> = (0..spec.fans_per_account)
            .map(|_| {
                if rng.gen_bool(spec.unknown_dimension_share) {
                    return None; // followed, but never bound in the CRM
                }
                let status = STATUSES[status_pick.sample(rng)].0;
                let (tier, bound) = match status {
                    CustomerStatus::Vip => (Some(["GOLD", "BLACK"][rng.gen_range(0..2)]), 0.9),
                    CustomerStatus::Customer => {
                        (Some(["SILVER", "GOLD"][rng.gen_range(0..2)]), 0.9)
                    }
                    _ => (rng.gen_bool(0.3).then_some("CLASSIC"), 0.35),
                };
                let associate = rng
                    .gen_bool(bound)
                    .then(|| active[rng.gen_range(0..active.len())]);
                let followed_at = if rng.gen_bool(FOLLOW_IN_SPAN) {
                    start + rng.gen_range(0..end - start)
                } else {
                    start - rng.gen_range(DAY_MS..3 * 365 * DAY_MS)
                };
                let gone_from = followed_at.max(start);
                let unfollowed_at = (rng.gen_bool(BACKGROUND_UNFOLLOW) && gone_from + 1 < end)
                    .then(|| rng.gen_range(gone_from + 1..end));
                Some(Fan {
                    status,
                    tier,
                    associate,
                    followed_at,
                    unfollowed_at,
                    source: FOLLOW_SOURCES[source_pick.sample(rng)].0,
                    follow_scene: None,
                    birthday: None,
                })
            })
            .collect();
        // The span's new follows get the seed's sources exactly (to rounding), and a QR
        // follow its scene: the generator scans it at the follow, and a fan who followed
        // through an associate's code is that associate's customer.
        let mut new: Vec<usize> = (0..fans.len())
            .filter(|&i| fans[i].as_ref().is_some_and(|f| f.followed_at >= start))
            .collect();
        new.shuffle(rng);
        let sources = expand(
            apportion(new.len(), &FOLLOW_SOURCES.map(|s| s.1)),
            FOLLOW_SOURCES.map(|s| s.0),
        );
        for (i, source) in new.into_iter().zip(sources) {
            let scene = (source == QR_FOLLOW_SOURCE).then(|| self.pick_scene_of_brand(brand, rng));
            let associate = scene
                .and_then(|s| self.scenes[s].userid.as_ref())
                .and_then(|u| self.associate_ids.get(u).copied());
            if let Some(f) = fans[i].as_mut() {
                f.source = source;
                f.follow_scene = scene;
                if associate.is_some() {
                    f.associate = associate;
                }
            }
        }
        self.fans.push(fans);
    }
}

/// Day `n` (0-based, below 366) of a leap year as a birthday.
pub(super) fn day_of_leap_year(n: u16) -> Birthday {
    const DAYS: [u16; 12] = [31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];
    let mut rest = n % 366;
    for (month, days) in (1..=12u8).zip(DAYS) {
        if rest < days {
            return Birthday::new(month, rest as u8 + 1).expect("a day of the month");
        }
        rest -= days;
    }
    unreachable!("a leap year has 366 days")
}
