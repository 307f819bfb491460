//! The events against the world's dimension records: the ground truth's dimension
//! tallies recomputed from the decoded events, menu clicks, associates' replies.

use std::collections::HashMap;

use super::support::spec;
use crate::generate::*;

/// Decodes every distinct valid event and resolves it through the world's dimension
/// records, the way the pipeline will: a second computation of the ground truth.
#[test]
fn ground_truth_matches_the_events_resolved_through_the_published_records() {
    use std::collections::{HashMap, HashSet};
    use wxpulse_runtime::enrich::DimensionRecord;

    let spec = Spec {
        unknown_dimension_share: 0.03,
        unknown_account_share: 0.0,
        ..spec(30_000)
    };
    let world = World::new(&spec);
    let (records, truth) = generate_with(&spec, &world);
    let mut buttons = HashMap::new();
    let mut scenes = HashMap::new();
    let mut articles = HashMap::new();
    let mut associates = HashSet::new();
    let mut profiles = HashMap::new();
    for r in world.dimension_records() {
        match r {
            DimensionRecord::MenuButton(b) => {
                buttons.insert((b.app_id, b.event_key), b.category);
            }
            DimensionRecord::QrScene(q) => {
                scenes.insert(q.scene, q.channel);
            }
            DimensionRecord::Article(a) => {
                articles.insert(a.article_id.clone(), a);
            }
            DimensionRecord::Associate(a) => {
                associates.insert(a.userid);
            }
            DimensionRecord::FanProfile(f) => {
                profiles.insert((f.app_id.clone(), f.openid.clone()), f);
            }
            _ => {}
        }
    }
    let frames = Frames::new();
    let mut seen = HashSet::new();
    let mut want = GroundTruth::default();
    for d in Dimension::ALL {
        want.dimension_missing.insert(d.as_str().to_string(), 0);
    }
    let count = |m: &mut BTreeMap<String, u64>, k: &str| *m.entry(k.to_string()).or_default() += 1;
    let mut not_following = 0;
    let mut fans_by_segment: HashMap<&str, HashSet<(String, String)>> = HashMap::new();
    for r in &records {
        let Some((schema, datum)) = frames.of(r) else {
            continue;
        };
        let (stream, header) = match r.topic {
            "wxpulse.menu_clicks" => {
                let Ok(e) = codec::decode::<MenuClick<'_>>(datum, schema) else {
                    continue;
                };
                if e.openid.is_empty() || !seen.insert(e.event_id.to_string()) {
                    continue;
                }
                let category = buttons.get(&(e.app_id.to_string(), e.event_key.to_string()));
                if category.is_none() {
                    count(&mut want.dimension_missing, "menu_button");
                }
                count(
                    &mut want.menu_clicks_by_category,
                    category.map_or(UNKNOWN, |c| c.as_str()),
                );
                (
                    "menu_click",
                    (e.app_id.to_string(), e.openid.to_string(), e.server_time),
                )
            }
            "wxpulse.qr_scans" => {
                let Ok(e) = codec::decode::<QrScan<'_>>(datum, schema) else {
                    continue;
                };
                if !seen.insert(e.event_id.to_string()) {
                    continue;
                }
                let subscribe = e.event == QrEvent::Subscribe;
                let scene = e.event_key.strip_prefix("qrscene_");
                assert_eq!(scene.is_some(), subscribe, "{e:?}");
                let channel = scenes.get(scene.unwrap_or(e.event_key));
                if channel.is_none() {
                    count(&mut want.dimension_missing, "qr_scene");
                }
                let channel = channel.map_or(UNKNOWN, |c| c.as_str());
                count(&mut want.qr_scans_by_channel, channel);
                if subscribe {
                    count(&mut want.new_follows_by_channel, channel);
                }
                (
                    "qr_scan",
                    (e.app_id.to_string(), e.openid.to_string(), e.server_time),
                )
            }
            "wxpulse.article_reads" => {
                let Ok(e) = codec::decode::<ArticleRead<'_>>(datum, schema) else {
                    continue;
                };
                if !seen.insert(e.event_id.to_string()) {
                    continue;
                }
                match articles.get(e.article_id) {
                    Some(a) => {
                        assert_eq!((a.msgid, a.idx), (e.msgid, e.idx), "{e:?}");
                        assert!(a.published_at <= e.server_time, "read before its push");
                    }
                    None => count(&mut want.dimension_missing, "article"),
                }
                (
                    "article_read",
                    (e.app_id.to_string(), e.openid.to_string(), e.server_time),
                )
            }
            _ => {
                let Ok(e) = codec::decode::<ChatMessage<'_>>(datum, schema) else {
                    continue;
                };
                if !seen.insert(e.event_id.to_string()) {
                    continue;
                }
                assert_eq!(
                    e.userid.is_none(),
                    e.conversation == ConversationKind::OfficialAccount
                );
                if e.userid.is_some_and(|u| !associates.contains(u)) {
                    count(&mut want.dimension_missing, "associate");
                }
                (
                    "chat_message",
                    (e.app_id.to_string(), e.openid.to_string(), e.server_time),
                )
            }
        };
        let (app_id, openid, t) = header;
        let profile = profiles.get(&(app_id.clone(), openid.clone()));
        if profile.is_none() {
            count(&mut want.dimension_missing, "fan_profile");
        }
        if let Some(p) = profile {
            let following =
                p.followed_at.is_some_and(|f| f <= t) && p.unfollowed_at.is_none_or(|u| t < u);
            not_following += u64::from(!following);
        }
        let segment = profile.map_or(UNKNOWN, |p| world::segment_name(p.status));
        fans_by_segment
            .entry(segment)
            .or_default()
            .insert((app_id, openid));
        count(
            want.events_by_segment
                .entry(stream.to_string())
                .or_default(),
            segment,
        );
    }
    assert_eq!(seen.len() as u64, truth.events.values().sum::<u64>());
    assert_eq!(want.menu_clicks_by_category, truth.menu_clicks_by_category);
    assert_eq!(want.qr_scans_by_channel, truth.qr_scans_by_channel);
    assert_eq!(want.new_follows_by_channel, truth.new_follows_by_channel);
    assert_eq!(want.dimension_missing, truth.dimension_missing);
    assert_eq!(want.events_by_segment, truth.events_by_segment);
    for d in [
        "menu_button",
        "qr_scene",
        "article",
        "associate",
        "fan_profile",
    ] {
        assert!(truth.dimension_missing[d] > 0, "{d} is exercised");
    }
    assert!(
        not_following * 1000 < seen.len() as u64,
        "fans interact while following"
    );
    // Activity is heavy-tailed and independent of the segment: a few fans make much of
    // the traffic, so the segments' shares hold among the fans, not the events.
    let fans: usize = fans_by_segment.values().map(HashSet::len).sum();
    let prospects = fans_by_segment["prospect"].len() as f64 / fans as f64;
    assert!((prospects - 0.8 * 0.97).abs() < 0.03, "{prospects}");
}

#[test]
fn a_world_without_gaps_resolves_everything() {
    let (_, truth) = generate(&Spec {
        unknown_dimension_share: 0.0,
        unknown_account_share: 0.0,
        ..spec(5_000)
    });
    assert!(
        truth.dimension_missing.values().all(|&n| n == 0),
        "{:?}",
        truth.dimension_missing
    );
    assert!(!truth.menu_clicks_by_category.contains_key(UNKNOWN));
    assert!(truth
        .events_by_segment
        .values()
        .all(|s| !s.contains_key(UNKNOWN)));
    assert_eq!(truth.dimension_records["fan_profile"], 4 * 500);
}

#[test]
fn menu_clicks_send_the_event_of_their_button() {
    let spec = spec(3_000);
    let world = World::new(&spec);
    let (records, _) = generate_with(&spec, &world);
    let schema = codec::parse(EMBEDDED[0].json).expect("menu click v1");
    let mut checked = 0;
    for r in records.iter().filter(|r| r.topic == "wxpulse.menu_clicks") {
        let Some(Ok((1, datum))) = r.payload.as_deref().map(codec::split_frame) else {
            continue;
        };
        let Ok(e) = codec::decode::<MenuClick<'_>>(datum, &schema) else {
            continue;
        };
        let account = world
            .accounts
            .iter()
            .find(|a| a.record.app_id == e.app_id)
            .expect("account");
        let expected = match account.buttons.iter().find(|b| b.key == e.event_key) {
            Some(b) => b.event,
            None if e.event_key.starts_with("https://") => MenuEvent::View,
            None if e.event_key.starts_with("pages/") => MenuEvent::ViewMiniprogram,
            None => MenuEvent::Click,
        };
        assert_eq!(e.event, expected, "{e:?}");
        checked += 1;
    }
    assert!(checked > 1_500);
}

#[test]
fn associates_answer_the_fans_who_write_to_them() {
    let spec = spec(20_000);
    let world = World::new(&spec);
    let (records, _) = generate_with(&spec, &world);
    let schema = codec::parse(EMBEDDED[2].json).expect("chat v1");
    let mut last_from_fan: HashMap<(String, String), i64> = HashMap::new();
    let (mut replies, mut answered) = (0, 0);
    for r in records
        .iter()
        .filter(|r| r.topic == "wxpulse.chat_messages" && r.at_ms > 0)
    {
        let Some(Ok((3, datum))) = r.payload.as_deref().map(codec::split_frame) else {
            continue;
        };
        let Ok(e) = codec::decode::<ChatMessage<'_>>(datum, &schema) else {
            continue;
        };
        let Some(userid) = e.userid else { continue };
        let pair = (e.openid.to_string(), userid.to_string());
        match e.direction {
            Direction::FanToAssociate => {
                last_from_fan.insert(pair, e.server_time);
            }
            Direction::AssociateToFan => {
                replies += 1;
                answered += u64::from(
                    last_from_fan
                        .get(&pair)
                        .is_some_and(|t| *t <= e.server_time),
                );
            }
            d => panic!("{d:?} in a WeCom conversation"),
        }
    }
    // Most associate messages answer the fan's last one; the rest reach out first.
    assert!(
        replies > 500 && answered * 10 > replies * 7,
        "{answered}/{replies}"
    );
}
