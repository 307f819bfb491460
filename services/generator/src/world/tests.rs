use std::collections::HashSet;

use rand::prelude::*;
use rand_chacha::ChaCha8Rng;
use wxpulse_runtime::enrich::{Birthday, CustomerStatus, DimensionRecord, SceneChannel};

use super::seed::FOLLOW_SOURCES;
use super::*;
use crate::spec::Spec;

fn spec() -> Spec {
    Spec {
        seed: 3,
        brands: 2,
        accounts_per_brand: 2,
        fans_per_account: 2_000,
        events: 0,
        start_ms: 1_760_000_000_000,
        end_ms: 1_760_000_000_000 + 30 * DAY_MS,
        duplicate_share: 0.0,
        resend_share: 0.0,
        late_share: 0.0,
        malformed_share: 0.0,
        unknown_dimension_share: 0.01,
        unknown_account_share: 0.0,
    }
}

#[test]
fn same_seed_same_world() {
    let (a, b) = (World::new(&spec()), World::new(&spec()));
    assert_eq!(a.dimension_records(), b.dimension_records());
    let other = World::new(&Spec { seed: 4, ..spec() });
    assert_ne!(a.dimension_records(), other.dimension_records());
}

#[test]
fn every_record_encodes_and_keys_are_unique() {
    let records = World::new(&spec()).dimension_records();
    let mut keys = HashSet::new();
    for r in &records {
        r.encode().unwrap_or_else(|e| panic!("{r:?}: {e}"));
        assert!(
            keys.insert((r.dimension(), r.key())),
            "duplicate key {}",
            r.key()
        );
    }
    for (d, n) in World::new(&spec()).record_counts() {
        let built = records.iter().filter(|r| r.dimension() == d).count();
        assert!(built > 0, "{d:?}");
        assert_eq!(built, n, "{d:?}");
    }
}

#[test]
fn records_reference_records() {
    let world = World::new(&spec());
    let stores: HashSet<&str> = world.stores.iter().map(|s| s.store_id.as_str()).collect();
    for a in &world.associates {
        assert!(stores.contains(a.store_id.as_str()));
    }
    for s in &world.scenes {
        assert!(s.store_id.iter().all(|id| stores.contains(id.as_str())));
        assert!(s.userid.iter().all(|u| world.has_associate(u)));
        if s.channel == SceneChannel::Associate {
            let a = world
                .associates
                .iter()
                .find(|a| Some(&a.userid) == s.userid.as_ref())
                .expect("the code's associate");
            assert_eq!(Some(&a.store_id), s.store_id.as_ref(), "their store");
        }
    }
    let numeric = world
        .scenes
        .iter()
        .filter(|s| s.scene.parse::<u32>().is_ok())
        .count();
    assert!(numeric > 0 && numeric * 4 < world.scenes.len(), "{numeric}");
    assert!(world.associates.iter().any(|a| !a.active));
    for fans in &world.fans {
        for f in fans.iter().flatten() {
            assert!(f.associate.is_none_or(|i| world.associates[i].active));
        }
    }
}

#[test]
fn pushes_fall_in_the_span_with_consistent_articles() {
    let s = spec();
    let world = World::new(&s);
    for account in &world.accounts {
        assert!(!account.pushes.is_empty());
        for push in &account.pushes {
            assert!((s.start_ms..s.end_ms).contains(&push.published_at));
            let n = push.articles.len() as i32;
            assert!((1..=3).contains(&n));
            for (pos, &i) in push.articles.iter().enumerate() {
                let a = &world.articles[i];
                assert_eq!(
                    (a.msgid, a.idx, a.articles_in_push),
                    (push.msgid, pos as i32 + 1, n)
                );
                assert_eq!(
                    a.article_id,
                    format!("{}_{}_{}", account.record.app_id, a.msgid, a.idx)
                );
                if a.target_segment.is_none() {
                    assert_eq!(a.fans_reached, account.record.fans);
                } else {
                    assert!(a.fans_reached < account.record.fans);
                }
            }
        }
    }
    let segmented = world
        .articles
        .iter()
        .filter(|a| a.target_segment.is_some())
        .count();
    assert!(
        segmented * 2 < world.articles.len(),
        "most pushes go to everyone"
    );
}

#[test]
fn fan_profiles_follow_the_seed_shares() {
    let s = Spec {
        fans_per_account: 20_000,
        ..spec()
    };
    let world = World::new(&s);
    let fans: Vec<&Fan> = world.fans.iter().flatten().flatten().collect();
    let all = world.fans.iter().map(Vec::len).sum::<usize>() as f64;
    let share = |n: usize| n as f64 / fans.len() as f64;
    let status = |st| share(fans.iter().filter(|f| f.status == st).count());
    assert!((status(CustomerStatus::Prospect) - 0.80).abs() < 0.01);
    assert!((status(CustomerStatus::Vip) - 0.03).abs() < 0.005);
    assert!(
        (1.0 - fans.len() as f64 / all - 0.01).abs() < 0.003,
        "1% have no profile"
    );
    let inside = share(fans.iter().filter(|f| f.followed_at >= s.start_ms).count());
    assert!((inside - 0.10).abs() < 0.01, "{inside}");
    // 0.3% leave anytime; 0.4% of the fans each push reaches leave within 24 h of it.
    let gone = share(fans.iter().filter(|f| f.unfollowed_at.is_some()).count());
    assert!((0.01..0.02).contains(&gone), "{gone}");
    let search = share(
        fans.iter()
            .filter(|f| f.source == "ADD_SCENE_SEARCH")
            .count(),
    );
    assert!((search - 0.414).abs() < 0.01);
    // The span's new follows have the seed's sources to the unit.
    let new: Vec<&&Fan> = fans
        .iter()
        .filter(|f| f.followed_at >= s.start_ms)
        .collect();
    let qr = new.iter().filter(|f| f.source == QR_FOLLOW_SOURCE).count();
    for a in 0..world.accounts.len() {
        let new = world.fans[a]
            .iter()
            .flatten()
            .filter(|f| f.followed_at >= s.start_ms);
        let (n, qr) = new.fold((0, 0), |(n, qr), f| {
            (n + 1, qr + usize::from(f.source == QR_FOLLOW_SOURCE))
        });
        assert!(((qr as f64) - 0.277 * n as f64).abs() <= 1.0, "{qr}/{n}");
    }
    // Every QR follow of the span has its scene; an associate's code binds the fan.
    for f in &new {
        assert_eq!(f.follow_scene.is_some(), f.source == QR_FOLLOW_SOURCE);
        if let Some(userid) = f.follow_scene.and_then(|i| world.scenes[i].userid.as_ref()) {
            let bound = f.associate.map(|i| &world.associates[i].userid);
            assert_eq!(bound, Some(userid));
        }
    }
    assert!(qr > 0);
}

#[test]
fn pushes_go_out_when_brands_push_and_some_fans_leave_after_them() {
    let s = Spec {
        fans_per_account: 20_000,
        end_ms: 1_760_000_000_000 + 120 * DAY_MS,
        ..spec()
    };
    let world = World::new(&s);
    let (mut evening_or_lunch, mut weekday, mut all) = (0, 0, 0);
    for (a, account) in world.accounts.iter().enumerate() {
        for push in &account.pushes {
            let c = shanghai(push.published_at);
            all += 1;
            evening_or_lunch += usize::from(matches!(c.hour, 11..=13 | 17..=22));
            weekday += usize::from(c.weekday <= 5);
            assert!(PUSH_HEATMAP[c.hour as usize][c.weekday as usize - 1] > 0.0);
            let reached = world.articles[push.articles[0]].fans_reached;
            let window = push.published_at..push.published_at + DAY_MS;
            let left = world.fans[a]
                .iter()
                .flatten()
                .filter(|f| f.unfollowed_at.is_some_and(|u| window.contains(&u)))
                .count() as f64;
            let want = UNFOLLOW_AFTER_PUSH * reached as f64;
            // Plus the few who leave anyway (0.3% of 20,000 in 120 days: 0.5 a day).
            assert!(left >= want - 1.0 && left <= want + 6.0, "{left} vs {want}");
        }
    }
    assert!(all >= 40, "{all}");
    assert!(evening_or_lunch * 10 > all * 6, "{evening_or_lunch}/{all}");
    assert!(weekday * 10 > all * 7, "{weekday}/{all}");
}

#[test]
fn shanghai_civil_time_and_months() {
    // 2025-03-31T16:00:00Z is 2025-04-01 00:00 in Shanghai, a Tuesday.
    let c = shanghai(1_743_436_800_000);
    assert_eq!(
        (c.yyyymm(), c.date(), c.weekday, c.hour),
        (202504, "2025-04-01".to_string(), 2, 0)
    );
    assert_eq!(shanghai(1_743_436_800_000 - 1).date(), "2025-03-31");
    assert_eq!(month_start_ms(202504), 1_743_436_800_000);
    assert_eq!(month_start_ms(202501), 1_735_660_800_000);
    for ms in (0..400).map(|d| 1_700_000_000_000 + d * 86_399_999) {
        let m = shanghai(ms).yyyymm();
        assert_eq!(m, wxpulse_runtime::segment::month_of(ms));
        assert!(month_start_ms(m) <= ms && ms < month_start_ms(next_month(m)));
    }
    assert_eq!(next_month(202512), 202601);
    let total: f64 = PUSH_HEATMAP.iter().flatten().sum();
    assert!(
        (total - 100.0).abs() < 1.0,
        "the seed's table is in % of pushes: {total}"
    );
}

#[test]
fn apportion_is_exact() {
    assert_eq!(apportion(10, &[41.4, 27.7, 30.9]), vec![4, 3, 3]);
    assert_eq!(apportion(0, &[1.0, 2.0]), vec![0, 0]);
    assert_eq!(apportion(7, &[0.0, 0.0]), vec![0, 0]);
    let n = apportion(1_000, &FOLLOW_SOURCES.map(|s| s.1));
    assert_eq!(n.iter().sum::<usize>(), 1_000);
    assert_eq!(n[0], 414);
}

#[test]
fn unknown_keys_are_unknown() {
    let world = World::new(&spec());
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    for _ in 0..200 {
        let app_id = &world.accounts[1].record.app_id;
        assert!(world
            .button_category(app_id, &world.unknown_button(1, &mut rng).0)
            .is_none());
        assert!(world
            .scene_channel(&world.unknown_scene(1, &mut rng))
            .is_none());
        assert!(!world.has_article(&world.unknown_article(1, &mut rng).0));
        assert!(!world.has_associate(&world.unknown_associate(&mut rng)));
        let b = world.pick_button(1, &mut rng);
        assert!(world.button_category(app_id, &b.key).is_some());
        let scene = world.pick_scene(1, &mut rng);
        assert!(world.scene_channel(&scene.scene).is_some());
    }
}

#[test]
fn a_share_of_profiles_carry_a_birthday_drawn_from_its_own_stream() {
    let days: HashSet<String> = (0..366)
        .map(|n| build::day_of_leap_year(n).to_string())
        .collect();
    assert_eq!(days.len(), 366);
    assert!(days.contains("02-29") && days.contains("12-31") && days.contains("01-01"));
    let world = World::new(&spec());
    let fans: Vec<&Fan> = world.fans.iter().flatten().flatten().collect();
    let with = fans.iter().filter(|f| f.birthday.is_some()).count();
    let share = with as f64 / fans.len() as f64;
    assert!((share - seed::BIRTHDAY_SHARE).abs() < 0.03, "{share}");
    let records = world.dimension_records();
    let carried = records
        .iter()
        .filter(|r| matches!(r, DimensionRecord::FanProfile(p) if p.birthday.is_some()))
        .count();
    assert_eq!(carried, with, "every birthday is on its fan's record");
    for r in &records {
        if let DimensionRecord::FanProfile(p) = r {
            if let Some(b) = &p.birthday {
                assert!(Birthday::parse(b).is_ok(), "{b}");
            }
        }
    }
}
