//! What the world answers once built: its dimension records and their counts, a fan's
//! profile, picks of buttons, scenes, articles and associates for events (and keys no
//! record has), and how the records resolve a key.

use rand::prelude::*;
use wxpulse_runtime::enrich::{
    ArticleRecord, AssociateRecord, Dimension, DimensionRecord, FanProfileRecord, MenuButtonRecord,
    MenuCategory, QrSceneRecord, SceneChannel,
};
use wxpulse_runtime::events::MenuEvent;

use super::model::{Button, Fan, World};
use super::naming::openid;
use super::seed::{RETIRED_BUTTONS, SCAN_CHANNELS, UNKNOWN_SCENE_ID};

impl World {
    /// Every record of the world, dimension by dimension, referenced before referencing.
    pub fn dimension_records(&self) -> Vec<DimensionRecord> {
        let mut out = Vec::new();
        out.extend(
            self.accounts
                .iter()
                .map(|a| DimensionRecord::Account(a.record.clone())),
        );
        out.extend(self.stores.iter().cloned().map(DimensionRecord::Store));
        out.extend(
            self.associates
                .iter()
                .cloned()
                .map(DimensionRecord::Associate),
        );
        for account in &self.accounts {
            let codes = self.brands[account.brand].scenes.clone();
            out.extend(self.scenes[codes].iter().map(|s| {
                DimensionRecord::QrScene(QrSceneRecord {
                    app_id: account.record.app_id.clone(),
                    ..s.clone()
                })
            }));
        }
        out.extend(self.articles.iter().cloned().map(DimensionRecord::Article));
        for account in &self.accounts {
            out.extend(account.buttons.iter().map(|b| {
                DimensionRecord::MenuButton(MenuButtonRecord {
                    app_id: account.record.app_id.clone(),
                    event_key: b.key.clone(),
                    category: b.category,
                    label: b.label.to_string(),
                    updated_at: self.as_of,
                })
            }));
        }
        for (account, fans) in self.accounts.iter().zip(&self.fans) {
            let app_id = &account.record.app_id;
            out.extend(fans.iter().enumerate().filter_map(|(n, f)| {
                let f = f.as_ref()?;
                Some(DimensionRecord::FanProfile(FanProfileRecord {
                    app_id: app_id.clone(),
                    openid: openid(app_id, n as u32),
                    status: f.status,
                    member_tier: f.tier.map(str::to_string),
                    associate_userid: f.associate.map(|i| self.associates[i].userid.clone()),
                    followed_at: Some(f.followed_at),
                    unfollowed_at: f.unfollowed_at,
                    follow_source: Some(f.source.to_string()),
                    updated_at: self.as_of,
                    birthday: f.birthday.map(|b| b.to_string()),
                }))
            }));
        }
        out
    }

    /// Records per dimension, without building them (the ground truth reports these).
    pub fn record_counts(&self) -> Vec<(Dimension, usize)> {
        vec![
            (Dimension::Account, self.accounts.len()),
            (Dimension::Store, self.stores.len()),
            (Dimension::Associate, self.associates.len()),
            (
                Dimension::QrScene,
                self.accounts
                    .iter()
                    .map(|a| self.brands[a.brand].scenes.len())
                    .sum(),
            ),
            (Dimension::Article, self.articles.len()),
            (
                Dimension::MenuButton,
                self.accounts.iter().map(|a| a.buttons.len()).sum(),
            ),
            (
                Dimension::FanProfile,
                self.fans.iter().flatten().filter(|f| f.is_some()).count(),
            ),
        ]
    }

    /// The short code of a brand (index into the world's brands), which prefixes its store
    /// ids (`{code}_…`).
    pub fn brand_code(&self, brand: usize) -> &str {
        &self.brands[brand].code
    }

    /// A fan's profile, if the CRM has one.
    pub fn fan(&self, account: usize, fan: u32) -> Option<&Fan> {
        self.fans[account].get(fan as usize)?.as_ref()
    }

    /// Whether the fan may interact at `t`: following then, or unknown to the CRM.
    pub fn follows_at(&self, account: usize, fan: u32, t: i64) -> bool {
        self.fan(account, fan).is_none_or(|f| f.follows_at(t))
    }

    /// A button of the account, weighted so categories come out 45/33/22.
    pub fn pick_button(&self, account: usize, rng: &mut impl Rng) -> &Button {
        let a = &self.accounts[account];
        &a.buttons[a.button_pick.sample(rng)]
    }

    /// A retired button's key (no record has it) and the event it sends.
    pub fn unknown_button(&self, account: usize, rng: &mut impl Rng) -> (String, MenuEvent) {
        let code = &self.brands[self.accounts[account].brand].code;
        let (key, event) = RETIRED_BUTTONS[rng.gen_range(0..RETIRED_BUTTONS.len())];
        (key.replace("{code}", code), event)
    }

    /// A scene of the account's brand: channel by [`SCAN_CHANNELS`], then a code of it
    /// (an associate's code by the associate's skill: good associates get scanned more).
    pub fn pick_scene(&self, account: usize, rng: &mut impl Rng) -> &QrSceneRecord {
        &self.scenes[self.pick_scene_index(account, rng)]
    }

    /// Like [`World::pick_scene`], the index into [`World::scenes`].
    pub fn pick_scene_index(&self, account: usize, rng: &mut impl Rng) -> usize {
        self.pick_scene_of_brand(self.accounts[account].brand, rng)
    }

    pub(super) fn pick_scene_of_brand(&self, brand: usize, rng: &mut impl Rng) -> usize {
        let brand = &self.brands[brand];
        let channel = self.channel_pick.sample(rng);
        let scenes = &brand.scannable[channel];
        match &brand.associate_code_pick {
            Some(pick) if SCAN_CHANNELS[channel].0 == SceneChannel::Associate => {
                scenes[pick.sample(rng)]
            }
            _ => scenes[rng.gen_range(0..scenes.len())],
        }
    }

    /// A scene no record has: a retired code string or a numeric id never issued.
    pub fn unknown_scene(&self, account: usize, rng: &mut impl Rng) -> String {
        let n = rng.gen_range(0..20);
        if rng.gen_bool(0.5) {
            let code = &self.brands[self.accounts[account].brand].code;
            format!("retired_{code}_{n:02}")
        } else {
            (UNKNOWN_SCENE_ID + n).to_string()
        }
    }

    /// An article of the account published by `t`: the latest push most often, the first
    /// article of a push most often (seed 000: first articles are opened most).
    pub fn pick_article(&self, account: usize, t: i64, rng: &mut impl Rng) -> &ArticleRecord {
        let pushes = &self.accounts[account].pushes;
        let published = pushes.partition_point(|p| p.published_at <= t).max(1);
        let push = if rng.gen_bool(0.6) {
            &pushes[published - 1]
        } else {
            &pushes[rng.gen_range(0..published)]
        };
        let n = push.articles.len();
        let pos = if n == 1 || rng.gen_bool(0.7) {
            0
        } else {
            rng.gen_range(1..n)
        };
        &self.articles[push.articles[pos]]
    }

    /// An article of a push no record has (sent by another tool): (id, msgid, idx).
    pub fn unknown_article(&self, account: usize, rng: &mut impl Rng) -> (String, i64, i32) {
        let msgid = 1_000_000 + rng.gen_range(0..50);
        let app_id = &self.accounts[account].record.app_id;
        (format!("{app_id}_{msgid}_1"), msgid, 1)
    }

    /// The associate a fan talks to: the bound one, else one of the brand's active
    /// associates by fan number (every fan of a brand keeps one associate).
    pub fn associate_of(&self, account: usize, fan: u32) -> &AssociateRecord {
        &self.associates[self.associate_index_of(account, fan)]
    }

    /// Like [`World::associate_of`], the index into [`World::associates`].
    pub fn associate_index_of(&self, account: usize, fan: u32) -> usize {
        let bound = self.fan(account, fan).and_then(|f| f.associate);
        let active = &self.brands[self.accounts[account].brand].active_associates;
        bound.unwrap_or_else(|| active[fan as usize % active.len()])
    }

    /// The index into [`World::associates`] of a userid, if a record has it.
    pub fn associate_index(&self, userid: &str) -> Option<usize> {
        self.associate_ids.get(userid).copied()
    }

    /// A WeCom userid no record has (an associate HR has not exported yet).
    pub fn unknown_associate(&self, rng: &mut impl Rng) -> String {
        format!("newhire{:02}", rng.gen_range(0..20))
    }

    /// The category of an account's button key, as the button records resolve it.
    pub fn button_category(&self, app_id: &str, key: &str) -> Option<MenuCategory> {
        self.buttons_by_key
            .get(&(app_id.to_string(), key.to_string()))
            .copied()
    }

    /// The channel of a scene, as the scene records resolve it.
    pub fn scene_channel(&self, scene: &str) -> Option<SceneChannel> {
        self.scenes_by_key.get(scene).copied()
    }

    /// Whether an article record has this id.
    pub fn has_article(&self, article_id: &str) -> bool {
        self.article_ids.contains(article_id)
    }

    /// Whether an associate record has this userid.
    pub fn has_associate(&self, userid: &str) -> bool {
        self.associate_ids.contains_key(userid)
    }
}
