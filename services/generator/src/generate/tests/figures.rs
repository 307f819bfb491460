//! The report's BI figures recomputed from the records as the pipeline stores them: a
//! second computation of every figure, in a file of its own for its length.

use super::support::spec;
use crate::generate::*;

/// The report recomputed the way the pipeline and the views will: from the records
/// produced (malformed ones skipped, retry copies dropped by event id, in production
/// order) and the published dimension records — a second computation of every figure.
#[test]
fn report_matches_the_records_as_the_pipeline_stores_them() {
    use std::collections::{HashMap, HashSet};
    use wxpulse_runtime::enrich::{ArticleRecord, DimensionRecord, FanProfileRecord};
    use wxpulse_runtime::events::ReadSource;
    use wxpulse_runtime::segment::month_of;

    let spec = Spec {
        fans_per_account: 3_000,
        unknown_dimension_share: 0.02,
        unknown_account_share: 0.0,
        late_share: 0.05,
        ..spec(60_000)
    };
    let world = World::new(&spec);
    let (records, truth) = generate_with(&spec, &world);
    let report = &truth.report;
    let mut articles: HashMap<String, ArticleRecord> = HashMap::new();
    let mut profiles: HashMap<(String, String), FanProfileRecord> = HashMap::new();
    let mut scenes = HashMap::new();
    for r in world.dimension_records() {
        match r {
            DimensionRecord::Article(a) => {
                articles.insert(a.article_id.clone(), a);
            }
            DimensionRecord::FanProfile(f) => {
                profiles.insert((f.app_id.clone(), f.openid.clone()), f);
            }
            DimensionRecord::QrScene(s) => {
                scenes.insert(s.scene.clone(), s);
            }
            _ => {}
        }
    }
    let frames = Frames::new();
    type Fan = (String, String);
    let mut seen = HashSet::new();
    let mut per_fan: HashMap<Fan, BTreeMap<u32, u64>> = HashMap::new();
    let mut reads: BTreeMap<String, Reads> = BTreeMap::new();
    let mut push_reads: BTreeMap<i64, Reads> = BTreeMap::new();
    let mut readers: HashMap<String, HashMap<Fan, (f32, bool)>> = HashMap::new();
    let mut push_readers: HashMap<i64, HashMap<Fan, (f32, bool)>> = HashMap::new();
    let mut days: BTreeMap<(String, String, String), AssociateDay> = BTreeMap::new();
    let mut sets: HashMap<(String, String, String, u8), HashSet<String>> = HashMap::new();
    // 1:1 messages per (fan, associate): (event time, from the associate, server time).
    type Timeline = Vec<(i64, bool, i64)>;
    let mut conversations: HashMap<(Fan, String), Timeline> = HashMap::new();
    let mut qr: BTreeMap<String, BTreeMap<String, BTreeMap<String, u64>>> = BTreeMap::new();
    let mut subscribes = 0;
    for r in &records {
        let Some((schema, datum)) = frames.of(r) else {
            continue;
        };
        macro_rules! valid {
            ($t:ty) => {{
                let Ok(e) = codec::decode::<$t>(datum, schema) else {
                    continue;
                };
                if e.openid.is_empty() || !seen.insert(e.event_id.to_string()) {
                    continue;
                }
                e
            }};
        }
        let (app, openid, t) = match r.topic {
            "wxpulse.menu_clicks" => {
                let e = valid!(MenuClick<'_>);
                (e.app_id.to_string(), e.openid.to_string(), e.client_time)
            }
            "wxpulse.qr_scans" => {
                let e = valid!(QrScan<'_>);
                let day = world::shanghai(e.client_time).date();
                let subscribe = e.event == QrEvent::Subscribe;
                let scene = scenes.get(e.event_key.strip_prefix("qrscene_").unwrap_or(e.event_key));
                if subscribe {
                    subscribes += 1;
                    let channel = scene.map_or(UNKNOWN, |s| s.channel.as_str());
                    *qr.entry(e.app_id.to_string())
                        .or_default()
                        .entry(day.clone())
                        .or_default()
                        .entry(channel.to_string())
                        .or_default() += 1;
                    // The profile says the fan followed by QR code, at the scan.
                    let p = &profiles[&(e.app_id.to_string(), e.openid.to_string())];
                    assert_eq!(p.follow_source.as_deref(), Some(world::QR_FOLLOW_SOURCE));
                    assert_eq!(p.followed_at, Some(e.client_time));
                }
                if let Some(userid) = scene
                    .filter(|s| s.channel == SceneChannel::Associate)
                    .and_then(|s| s.userid.clone())
                {
                    let key = (e.app_id.to_string(), userid, day);
                    let d = days.entry(key.clone()).or_default();
                    d.code_scans += 1;
                    d.new_contacts += u64::from(subscribe);
                    sets.entry((key.0, key.1, key.2, 3))
                        .or_default()
                        .insert(e.openid.to_string());
                }
                (e.app_id.to_string(), e.openid.to_string(), e.client_time)
            }
            "wxpulse.article_reads" => {
                let e = valid!(ArticleRead<'_>);
                let fan = (e.app_id.to_string(), e.openid.to_string());
                let push = e.source == ReadSource::Push;
                let add = |r: &mut Reads| {
                    r.reads += 1;
                    r.push_reads += u64::from(push);
                    r.shares += u64::from(e.shared);
                    r.favorites += u64::from(e.favorited);
                    r.cta_clicks += u64::from(e.cta_clicked);
                    r.read_seconds += e.read_seconds as u64;
                };
                add(reads.entry(e.article_id.to_string()).or_default());
                let deepest = |m: &mut HashMap<Fan, (f32, bool)>| {
                    let x = m.entry(fan.clone()).or_insert((0.0, false));
                    x.0 = x.0.max(e.read_depth);
                    x.1 |= push;
                };
                deepest(readers.entry(e.article_id.to_string()).or_default());
                if let Some(a) = articles.get(e.article_id) {
                    add(push_reads.entry(a.msgid).or_default());
                    deepest(push_readers.entry(a.msgid).or_default());
                }
                (fan.0, fan.1, e.client_time)
            }
            _ => {
                let e = valid!(ChatMessage<'_>);
                let fan = (e.app_id.to_string(), e.openid.to_string());
                let day = world::shanghai(e.client_time).date();
                if let Some(userid) = e.userid {
                    let key = (e.app_id.to_string(), userid.to_string(), day.clone());
                    match e.conversation {
                        ConversationKind::WecomGroup => {
                            days.entry(key).or_default().group_messages += 1;
                        }
                        ConversationKind::WecomPrivate => {
                            let d = days.entry(key.clone()).or_default();
                            let from_fan = e.direction == Direction::FanToAssociate;
                            d.messages_in += u64::from(from_fan);
                            d.messages_out += u64::from(!from_fan);
                            for (set, yes) in [(0, true), (1, from_fan)] {
                                if yes {
                                    sets.entry((key.0.clone(), key.1.clone(), key.2.clone(), set))
                                        .or_default()
                                        .insert(e.openid.to_string());
                                }
                            }
                            conversations
                                .entry((fan.clone(), userid.to_string()))
                                .or_default()
                                .push((e.client_time, !from_fan, e.server_time));
                        }
                        _ => {}
                    }
                }
                (fan.0, fan.1, e.client_time)
            }
        };
        *per_fan
            .entry((app, openid))
            .or_default()
            .entry(month_of(t))
            .or_default() += 1;
    }
    assert_eq!(seen.len() as u64, truth.events.values().sum::<u64>());
    // Replies, paired in event time (VIEWS.md): each associate message answers the fan
    // messages since the previous one, from the earliest it can still answer (7 days).
    let window = 7 * 86_400_000;
    for (((app, openid), userid), mut messages) in conversations {
        messages.sort_unstable();
        let mut since_last_reply: Vec<(i64, i64)> = Vec::new();
        for (t, from_associate, server) in messages {
            if !from_associate {
                since_last_reply.push((t, server));
                continue;
            }
            let since = since_last_reply
                .drain(..)
                .filter(|(_, s)| server - s <= window)
                .map(|(t, _)| t)
                .min();
            if let Some(since) = since {
                let day = world::shanghai(since).date();
                let d = days
                    .entry((app.clone(), userid.clone(), day.clone()))
                    .or_default();
                d.first_replies += 1;
                d.first_reply_ms_sum += t - since;
                sets.entry((app.clone(), userid.clone(), day, 2))
                    .or_default()
                    .insert(openid.clone());
            }
        }
    }

    // Fan activity: per account and month, the population from the profiles.
    let follows_through = |p: &FanProfileRecord, m: u32| {
        p.followed_at.is_some_and(|f| month_of(f) <= m)
            && p.unfollowed_at.is_none_or(|u| month_of(u) > m)
    };
    let mut activity: BTreeMap<String, BTreeMap<u32, MonthActivity>> = BTreeMap::new();
    for ((app, _), months) in &per_fan {
        for (&m, &n) in months {
            let c = activity
                .entry(app.clone())
                .or_default()
                .entry(m)
                .or_default();
            c.interactions += n;
            c.interacting_fans += 1;
            c.fans_over_4 += u64::from(n > 4);
            let bucket = [1, 2, 3, 4, 5, 10, 20]
                .iter()
                .rposition(|&b| n >= b)
                .unwrap_or(0);
            c.fans_by_interactions[bucket] += 1;
        }
    }
    for (app, months) in activity.iter_mut() {
        for (&m, c) in months.iter_mut() {
            for ((a, openid), p) in &profiles {
                if a != app || !follows_through(p, m) {
                    continue;
                }
                c.followers += 1;
                let mine = per_fan.get(&(a.clone(), openid.clone()));
                let this = mine.and_then(|x| x.get(&m)).copied().unwrap_or(0);
                let upto: u64 = mine.map_or(0, |x| x.range(..=m).map(|(_, n)| n).sum());
                c.monthly_active_fans += u64::from(this > 4);
                c.lifetime_active_fans += u64::from(upto > 4);
            }
        }
    }
    assert_eq!(activity, report.fan_activity);
    let active: u64 = report
        .fan_activity
        .values()
        .flat_map(|m| m.values())
        .map(|c| c.monthly_active_fans)
        .sum();
    assert!(active > 0);

    // Reads per article and push.
    let finish = |r: &mut Reads, who: Option<&HashMap<Fan, (f32, bool)>>| {
        let who = who.cloned().unwrap_or_default();
        r.readers = who.len() as u64;
        r.push_readers = who.values().filter(|x| x.1).count() as u64;
        r.readers_at_screen = (1..=SCREENS)
            .map(|n| who.values().filter(|x| x.0 >= n as f32).count() as u64)
            .collect();
    };
    for (id, r) in reads.iter_mut() {
        finish(r, readers.get(id));
    }
    for (msgid, r) in push_reads.iter_mut() {
        finish(r, push_readers.get(msgid));
    }
    let read_articles: BTreeMap<String, Reads> = report
        .articles
        .iter()
        .filter(|(_, a)| a.reads.reads > 0)
        .map(|(id, a)| (id.clone(), a.reads.clone()))
        .collect();
    assert_eq!(reads, read_articles);
    let read_pushes: BTreeMap<i64, Reads> = report
        .pushes
        .iter()
        .filter(|(_, p)| p.reads.reads > 0)
        .map(|(id, p)| (*id, p.reads.clone()))
        .collect();
    assert_eq!(push_reads, read_pushes);
    // Pushes from the article records: reach, heatmap, unfollows within 24 h.
    let mut heatmap: BTreeMap<String, BTreeMap<u32, Heatmap>> = BTreeMap::new();
    let pushes: BTreeMap<i64, &ArticleRecord> = articles.values().map(|a| (a.msgid, a)).collect();
    assert_eq!(pushes.len(), report.pushes.len());
    for (msgid, a) in pushes {
        let app = &a.article_id[..a.article_id.find('_').unwrap_or(0)];
        let p = &report.pushes[&msgid];
        assert_eq!((p.app_id.as_str(), p.fans_reached), (app, a.fans_reached));
        let c = world::shanghai(a.published_at);
        *heatmap
            .entry(app.to_string())
            .or_default()
            .entry(month_of(a.published_at))
            .or_default()
            .entry(c.weekday)
            .or_default()
            .entry(c.hour)
            .or_default() += 1;
        let window = a.published_at..a.published_at + 86_400_000;
        let left = profiles
            .values()
            .filter(|f| f.app_id == app && f.unfollowed_at.is_some_and(|u| window.contains(&u)))
            .count() as u64;
        assert_eq!(p.unfollows_24h, left, "{msgid}");
    }
    assert_eq!(heatmap, report.push_heatmap);
    // Follows and unfollows per day and source, from the span's first month on.
    let from = month_of(spec.start_ms);
    let mut follows: BTreeMap<String, BTreeMap<String, BTreeMap<String, FollowCounts>>> =
        BTreeMap::new();
    for f in profiles.values() {
        let source = f.follow_source.clone().unwrap_or_default();
        for (at, unfollow) in [(f.followed_at, false), (f.unfollowed_at, true)] {
            let Some(at) = at.filter(|&t| month_of(t) >= from && t < spec.end_ms) else {
                continue;
            };
            let c = follows
                .entry(f.app_id.clone())
                .or_default()
                .entry(world::shanghai(at).date())
                .or_default()
                .entry(source.clone())
                .or_default();
            c.new_follows += u64::from(!unfollow);
            c.unfollows += u64::from(unfollow);
        }
    }
    assert_eq!(follows, report.follows);

    // Associates by day; QR follows by day and channel, as many as the profiles say.
    for ((app, userid, day, set), fans) in sets {
        let d = days.entry((app, userid, day)).or_default();
        let n = fans.len() as u64;
        match set {
            0 => d.conversations = n,
            1 => d.conversations_with_fan_message = n,
            2 => d.answered_conversations = n,
            _ => d.scanning_fans = n,
        }
    }
    let truth_days: BTreeMap<(String, String, String), AssociateDay> = report
        .associates
        .iter()
        .flat_map(|(app, a)| {
            a.iter().flat_map(move |(u, t)| {
                t.days
                    .iter()
                    .map(move |(d, x)| ((app.clone(), u.clone(), d.clone()), x.clone()))
            })
        })
        .collect();
    assert_eq!(days, truth_days);
    assert!(truth_days
        .values()
        .any(|d| d.first_replies > 0 && d.new_contacts > 0));
    assert_eq!(qr, report.qr_follows);
    let qr_in_span = profiles
        .values()
        .filter(|p| {
            p.follow_source.as_deref() == Some(world::QR_FOLLOW_SOURCE)
                && p.followed_at
                    .is_some_and(|f| (spec.start_ms..spec.end_ms).contains(&f))
        })
        .count();
    assert_eq!(
        subscribes, qr_in_span,
        "every QR follow of the span is scanned"
    );
}
