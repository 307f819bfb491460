//! The report's ground truth: every BI figure, tallied from the plan (the events as the
//! generator decided them, in production order) and the world's records — never from the
//! pipeline. Definitions follow `schemas/clickhouse/VIEWS.md`: event time is the client
//! time, days, months, weekdays and hours are Asia/Shanghai's, and each valid event is
//! counted once (retry copies are dropped, malformed records dead-lettered).

use std::collections::{BTreeMap, HashMap, HashSet};

use serde::Serialize;
use wxpulse_runtime::enrich::SceneChannel;
use wxpulse_runtime::events::{ConversationKind, Direction, ReadSource};

use super::plan::{Article, Planned, Scene, What};
use crate::spec::Spec;
use crate::world::{
    follow_source_group, month_start_ms, next_month, segment_name, shanghai, Civil, World, DAY_MS,
};

/// Screens the read-depth counts go to (`readers_at_screen[n - 1]`, n = 1..=20).
pub const SCREENS: usize = 20;

/// How long a fan's 1:1 message waits for an associate's reply (by server time), as
/// `v_chat_replies` pairs them: an older fan message cannot start the reply's wait.
const REPLY_WINDOW_MS: i64 = 7 * DAY_MS;

/// An account's fans in one calendar month (Asia/Shanghai, by event time).
#[derive(Debug, Default, Clone, PartialEq, Serialize)]
pub struct MonthActivity {
    /// Interactions: valid events of the four streams (a chat message either way counts
    /// for its fan) with event time in the month.
    pub interactions: u64,
    /// Fans with at least one interaction in the month, with a profile or not.
    pub interacting_fans: u64,
    /// Fans with more than 4 interactions in the month, with a profile or not.
    pub fans_over_4: u64,
    /// The views' population: fans whose profile follows at the end of the month (followed
    /// before the first instant of the next month, and not unfollowed before it).
    pub followers: u64,
    /// Monthly active: followers (as above) with more than 4 interactions in the month.
    pub monthly_active_fans: u64,
    /// Lifetime active: followers with more than 4 interactions with event time before the
    /// end of the month (generated events only: "since following" starts with the span).
    pub lifetime_active_fans: u64,
    /// Fans by interactions in the month: 1, 2, 3, 4, 5–9, 10–19, 20 or more.
    pub fans_by_interactions: [u64; 7],
}

/// An account over the whole span.
#[derive(Debug, Default, Clone, PartialEq, Serialize)]
pub struct AccountActivity {
    /// Profiles following at the end of the span.
    pub followers: u64,
    /// Of them, fans with more than 4 interactions in the span (lifetime active).
    pub lifetime_active_fans: u64,
    /// Fans with at least one interaction in the span, with a profile or not.
    pub interacting_fans: u64,
    /// Interactions in the span.
    pub interactions: u64,
}

/// Reads of one article or one push. A reader is a distinct fan; a push reader opened it
/// from the push message (`source = PUSH`); depth compares the read's `read_depth` (f32)
/// with whole screens.
#[derive(Debug, Default, Clone, PartialEq, Serialize)]
pub struct Reads {
    /// Reads from any source.
    pub reads: u64,
    /// Reads from the push message.
    pub push_reads: u64,
    /// Distinct fans who read, from any source (for a push: engaged fans, see
    /// [`PushTruth`]).
    pub readers: u64,
    /// Distinct fans who read from the push message: the open-rate numerator.
    pub push_readers: u64,
    /// Reads that shared.
    pub shares: u64,
    /// Reads that favourited.
    pub favorites: u64,
    /// Reads that clicked the call to action.
    pub cta_clicks: u64,
    /// Seconds read, summed.
    pub read_seconds: u64,
    /// Element n-1: readers with a read of depth >= n screens (their deepest read), n =
    /// 1..=20; for a push, distinct fans over its articles.
    pub readers_at_screen: Vec<u64>,
}

/// An article: its record's push fields and its reads. Articles no record has are here
/// too, with what their reads carried (`position_class` `unknown`, 0 reached).
#[derive(Debug, Default, Clone, PartialEq, Serialize)]
pub struct ArticleTruth {
    /// Account.
    pub app_id: String,
    /// Push.
    pub msgid: i64,
    /// Position, 1 = first.
    pub idx: i32,
    /// Articles in its push; 0 when no record has the article.
    pub articles_in_push: i32,
    /// `single`, `first`, `non_first` or `unknown`, as `v_article_performance`.
    pub position_class: &'static str,
    /// Followers its push reached (0 unknown).
    pub fans_reached: i64,
    /// Its reads.
    #[serde(flatten)]
    pub reads: Reads,
}

/// A push of the world and the reads of its articles.
///
/// Engagement rate per push = `reads.readers / fans_reached`: a fan engaged with a push
/// when he read any of its articles from any source (the push, a chat, Moments, search,
/// the history) — `v_segmented_engagement`'s definition. Open rate (cumulative for a
/// multi-article push) = `reads.push_readers / fans_reached`.
#[derive(Debug, Default, Clone, PartialEq, Serialize)]
pub struct PushTruth {
    /// Account.
    pub app_id: String,
    /// When it went out, ms.
    pub published_at: i64,
    /// `yyyymm` of `published_at`.
    pub month: u32,
    /// ISO weekday of `published_at`, 1 = Monday.
    pub weekday: u8,
    /// Hour of `published_at`.
    pub hour: u8,
    /// Articles in it.
    pub articles_in_push: i32,
    /// Segment it targeted, `none` for all followers.
    pub target_segment: String,
    /// Followers it reached: the open-rate denominator.
    pub fans_reached: i64,
    /// Unfollows of the account (profiles) with `published_at <= unfollowed_at <
    /// published_at + 24 h`, as `v_unfollow_after_push` counts them.
    pub unfollows_24h: u64,
    /// Reads of its articles; readers and depth counts are distinct fans over them.
    #[serde(flatten)]
    pub reads: Reads,
}

/// Follows and unfollows of one day and source.
#[derive(Debug, Default, Clone, PartialEq, Serialize)]
pub struct FollowCounts {
    /// Profiles whose `followed_at` falls on the day.
    pub new_follows: u64,
    /// Profiles whose `unfollowed_at` falls on the day (the source of the follow it ended).
    pub unfollows: u64,
}

/// An associate's day (or month) with the fans of one account, as `v_associate_daily`.
#[derive(Debug, Default, Clone, PartialEq, Serialize)]
pub struct AssociateDay {
    /// `WECOM_PRIVATE` messages fan → associate.
    pub messages_in: u64,
    /// `WECOM_PRIVATE` messages associate → fan.
    pub messages_out: u64,
    /// `WECOM_GROUP` messages of the associate (either way).
    pub group_messages: u64,
    /// Conversations: fans with a 1:1 message that day (summed over days for a month).
    pub conversations: u64,
    /// Conversations in which the fan wrote.
    pub conversations_with_fan_message: u64,
    /// Conversations in which a wait started (a fan message with none of his earlier ones
    /// waiting) that a reply answered.
    pub answered_conversations: u64,
    /// Answered waits (messages carrying `first_reply_ms`), on the day the wait started.
    pub first_replies: u64,
    /// Their `first_reply_ms`, summed: ms from the earliest waiting fan message to the
    /// reply, by event time.
    pub first_reply_ms_sum: i64,
    /// Scans of the associate's own code (`SUBSCRIBE` and `SCAN`).
    pub code_scans: u64,
    /// Of them, `SUBSCRIBE` scans: new contacts.
    pub new_contacts: u64,
    /// Distinct fans who scanned the code.
    pub scanning_fans: u64,
}

/// An associate's month with the fans of one account, as `v_associate_kpis`.
#[derive(Debug, Default, Clone, PartialEq, Serialize)]
pub struct AssociateMonth {
    /// Sums of the days (`conversations` too); `scanning_fans` distinct over the month.
    #[serde(flatten)]
    pub totals: AssociateDay,
    /// Distinct fans with a 1:1 message in the month.
    pub unique_customers: u64,
    /// Median first-reply time: the value at 0-based index floor(0.5·n) of the sorted
    /// times (`quantilesExact`); `None` without replies.
    pub first_reply_p50_ms: Option<i64>,
    /// p90 likewise, index floor(0.9·n).
    pub first_reply_p90_ms: Option<i64>,
}

/// An associate with the fans of one account.
#[derive(Debug, Default, Clone, PartialEq, Serialize)]
pub struct AssociateTruth {
    /// By day (`yyyy-mm-dd`).
    pub days: BTreeMap<String, AssociateDay>,
    /// By month (`yyyymm`).
    pub months: BTreeMap<u32, AssociateMonth>,
}

/// The report's headline figures from the tallies above (pooled over accounts), so a
/// run can be compared with the seed at a glance.
#[derive(Debug, Default, Clone, PartialEq, Serialize)]
pub struct Shapes {
    /// The month holding most interactions (`yyyymm`): the monthly figures' month.
    pub month: u32,
    /// Monthly active fans / followers at its end (seed 000: 9.33%).
    pub monthly_active_share: f64,
    /// Lifetime active fans / followers, at the end of the span (seed 000: 35%).
    pub lifetime_active_share: f64,
    /// Followers at the end of the span with at most 2 interactions in it.
    pub followers_with_0_to_2: f64,
    /// Push readers / fans reached, pooled (`v_open_rate_by_position`): single-article
    /// pushes (seed 000: 10.26%).
    pub open_rate_single: f64,
    /// First articles of multi-article pushes (10.54%).
    pub open_rate_first: f64,
    /// Later articles of multi-article pushes.
    pub open_rate_non_first: f64,
    /// Multi-article pushes, distinct push readers of any article (15.18%).
    pub open_rate_multi_cumulative: f64,
    /// Every article (7.68%).
    pub open_rate_all_articles: f64,
    /// Engaged fans / fans reached, pooled, segmented pushes (seed: 7.86%; see
    /// [`PushTruth`] for the definition).
    pub engagement_segmented: f64,
    /// Unsegmented pushes (seed: 6.33%).
    pub engagement_unsegmented: f64,
    /// Readers (per article) whose deepest read reaches 3.27 screens (seed: 80%).
    pub depth_survival_3_27: f64,
    /// ... 8.87 screens (seed: 50%).
    pub depth_survival_8_87: f64,
    /// Reads by source.
    pub read_sources: BTreeMap<String, f64>,
    /// New follows in the span by source group (search 41.4%, qr 27.7%, paid media 1.15%).
    pub follow_sources: BTreeMap<String, f64>,
    /// Mean over pushes of `unfollows_24h / fans_reached` (seed: 0.4%).
    pub unfollow_after_push: f64,
    /// Waits for an associate's reply that started (1:1 fan messages with none waiting).
    pub waits: u64,
    /// Of them, answered.
    pub waits_answered: f64,
    /// Median first-reply time over all associates, ms.
    pub first_reply_median_ms: i64,
    /// p90 first-reply time over all associates, ms.
    pub first_reply_p90_ms: i64,
    /// New contacts per active associate per week: mean.
    pub new_contacts_per_week_mean: f64,
    /// ... 90th percentile over associates.
    pub new_contacts_per_week_p90: f64,
    /// ... the best associate.
    pub new_contacts_per_week_max: f64,
}

/// Pushes by ISO weekday (1 = Monday) and hour, Asia/Shanghai.
pub type Heatmap = BTreeMap<u8, BTreeMap<u8, u64>>;

/// The tallies [`tally`] adds to the ground truth.
#[derive(Debug, Default, Clone, PartialEq, Serialize)]
pub struct Report {
    /// Per account and month (`yyyymm`).
    pub fan_activity: BTreeMap<String, BTreeMap<u32, MonthActivity>>,
    /// Per account, over the span.
    pub accounts: BTreeMap<String, AccountActivity>,
    /// Per push (`msgid`): every push of the world.
    pub pushes: BTreeMap<i64, PushTruth>,
    /// Per article id: every article of the world and every unknown one read.
    pub articles: BTreeMap<String, ArticleTruth>,
    /// Per account, day and profile follow source (`ADD_SCENE_…`; group them with
    /// `follow_source_group`): follows and unfollows from the profiles, every day from the
    /// first day of the span's first month to the end of the span. QR follows of the span
    /// are also scans (`qr_follows`), the views count them from there.
    pub follows: BTreeMap<String, BTreeMap<String, BTreeMap<String, FollowCounts>>>,
    /// Per account, day and scene channel: `SUBSCRIBE` scans (new follows by QR code).
    pub qr_follows: BTreeMap<String, BTreeMap<String, BTreeMap<String, u64>>>,
    /// Per account and associate userid (also userids no record has).
    pub associates: BTreeMap<String, BTreeMap<String, AssociateTruth>>,
    /// Per account, month, ISO weekday and hour of `published_at`: pushes.
    pub push_heatmap: BTreeMap<String, BTreeMap<u32, Heatmap>>,
    /// Headline figures.
    pub shapes: Shapes,
}

fn ratio(n: f64, d: f64) -> f64 {
    if d > 0.0 {
        n / d
    } else {
        0.0
    }
}

/// The value at 0-based index floor(q·n) of sorted values (ClickHouse `quantilesExact`).
fn quantile(sorted: &[i64], q: f64) -> Option<i64> {
    let i = ((q * sorted.len() as f64).floor() as usize).min(sorted.len().checked_sub(1)?);
    sorted.get(i).copied()
}

/// A fan of an account.
type FanKey = (u32, u32);

/// A conversation's 1:1 messages: (event time, from the associate, server time).
type Timeline = Vec<(i64, bool, i64)>;

/// What a reader did with an article (or a push): deepest read, and from the push or not.
#[derive(Default, Clone, Copy)]
struct Reader {
    depth: f32,
    from_push: bool,
}

impl Reader {
    fn add(&mut self, depth: f32, from_push: bool) {
        self.depth = self.depth.max(depth);
        self.from_push |= from_push;
    }
}

fn finish(reads: &mut Reads, readers: &HashMap<FanKey, Reader>) {
    reads.readers = readers.len() as u64;
    reads.push_readers = readers.values().filter(|r| r.from_push).count() as u64;
    reads.readers_at_screen = (1..=SCREENS)
        .map(|n| readers.values().filter(|r| r.depth >= n as f32).count() as u64)
        .collect();
}

#[derive(Default)]
struct AssociateTally {
    month: u32,
    day: AssociateDay,
    conversations: HashSet<u32>,
    wrote: HashSet<u32>,
    answered: HashSet<u32>,
    scanners: HashSet<u32>,
}

/// Interactions (valid events of the four streams) per fan and month (`yyyymm`, by event
/// time, Asia/Shanghai): what monthly activity and the social-selling funnel count.
pub(crate) fn interactions(planned: &[Planned]) -> HashMap<FanKey, BTreeMap<u32, u64>> {
    let mut per_fan: HashMap<FanKey, BTreeMap<u32, u64>> = HashMap::new();
    for e in planned {
        *per_fan
            .entry((e.account, e.fan))
            .or_default()
            .entry(shanghai(e.client).yyyymm())
            .or_default() += 1;
    }
    per_fan
}

/// Tallies the report from the plan (valid events in production order) and the world.
pub(crate) fn tally(spec: &Spec, world: &World, planned: &[Planned]) -> Report {
    let mut r = Report::default();
    let app = |a: u32| world.accounts[a as usize].record.app_id.as_str();
    let (span_start, span_end) = world.span;

    let per_fan = interactions(planned);
    // Account → month → activity.
    let mut months: BTreeMap<u32, BTreeMap<u32, MonthActivity>> = BTreeMap::new();
    for ((a, _), by_month) in &per_fan {
        for (&m, &n) in by_month {
            let cell = months.entry(*a).or_default().entry(m).or_default();
            cell.interactions += n;
            cell.interacting_fans += 1;
            cell.fans_over_4 += u64::from(n > 4);
            let bucket = match n {
                1..=4 => n as usize - 1,
                5..=9 => 4,
                10..=19 => 5,
                _ => 6,
            };
            cell.fans_by_interactions[bucket] += 1;
        }
    }
    let follows_at_end = |f: &crate::world::Fan, end: i64| {
        f.followed_at < end && f.unfollowed_at.is_none_or(|u| u >= end)
    };
    for (a, account) in world.accounts.iter().enumerate() {
        let a32 = a as u32;
        let by_month = months.remove(&a32).unwrap_or_default();
        let mut out = BTreeMap::new();
        for (m, mut cell) in by_month {
            let end = month_start_ms(next_month(m));
            for (f, fan) in world.fans[a].iter().enumerate() {
                let Some(fan) = fan else { continue };
                if !follows_at_end(fan, end) {
                    continue;
                }
                cell.followers += 1;
                let counts = per_fan.get(&(a32, f as u32));
                let this = counts.and_then(|c| c.get(&m)).copied().unwrap_or(0);
                let upto: u64 = counts.map_or(0, |c| c.range(..=m).map(|(_, n)| n).sum());
                cell.monthly_active_fans += u64::from(this > 4);
                cell.lifetime_active_fans += u64::from(upto > 4);
            }
            out.insert(m, cell);
        }
        let mut total = AccountActivity::default();
        for (f, fan) in world.fans[a].iter().enumerate() {
            let n: u64 = per_fan
                .get(&(a32, f as u32))
                .map_or(0, |c| c.values().sum());
            total.interactions += n;
            total.interacting_fans += u64::from(n > 0);
            if fan.as_ref().is_some_and(|f| follows_at_end(f, span_end)) {
                total.followers += 1;
                total.lifetime_active_fans += u64::from(n > 4);
            }
        }
        r.fan_activity.insert(account.record.app_id.clone(), out);
        r.accounts.insert(account.record.app_id.clone(), total);
    }

    // Reads per article and push.
    let mut article_readers: HashMap<String, HashMap<FanKey, Reader>> = HashMap::new();
    let mut push_readers: HashMap<i64, HashMap<FanKey, Reader>> = HashMap::new();
    for account in &world.accounts {
        for push in &account.pushes {
            for &i in &push.articles {
                let a = &world.articles[i];
                r.articles.insert(
                    a.article_id.clone(),
                    ArticleTruth {
                        app_id: account.record.app_id.clone(),
                        msgid: a.msgid,
                        idx: a.idx,
                        articles_in_push: a.articles_in_push,
                        position_class: match (a.articles_in_push, a.idx) {
                            (1, _) => "single",
                            (_, 1) => "first",
                            _ => "non_first",
                        },
                        fans_reached: a.fans_reached,
                        reads: Reads::default(),
                    },
                );
            }
        }
    }
    let mut sources: BTreeMap<String, u64> = BTreeMap::new();
    let mut reads_total = 0u64;
    for e in planned {
        let What::Read(read) = &e.what else { continue };
        reads_total += 1;
        *sources
            .entry(source_name(read.source).to_string())
            .or_default() += 1;
        let from_push = read.source == ReadSource::Push;
        let (id, msgid) = match &read.article {
            Article::Known(i) => (
                world.articles[*i].article_id.clone(),
                Some(world.articles[*i].msgid),
            ),
            Article::Unknown { id, .. } => (id.clone(), None),
        };
        let entry = r.articles.entry(id.clone()).or_insert_with(|| {
            let (m, idx) = match &read.article {
                Article::Unknown { msgid, idx, .. } => (*msgid, *idx),
                Article::Known(_) => (0, 0),
            };
            ArticleTruth {
                app_id: app(e.account).to_string(),
                msgid: m,
                idx,
                articles_in_push: 0,
                position_class: "unknown",
                fans_reached: 0,
                reads: Reads::default(),
            }
        });
        count_read(&mut entry.reads, read, from_push);
        article_readers
            .entry(id)
            .or_default()
            .entry((e.account, e.fan))
            .or_default()
            .add(read.depth, from_push);
        if let Some(msgid) = msgid {
            push_readers
                .entry(msgid)
                .or_default()
                .entry((e.account, e.fan))
                .or_default()
                .add(read.depth, from_push);
            let p = r.pushes.entry(msgid).or_default();
            count_read(&mut p.reads, read, from_push);
        }
    }
    let empty = HashMap::new();
    for (id, a) in r.articles.iter_mut() {
        finish(&mut a.reads, article_readers.get(id).unwrap_or(&empty));
    }
    let mut unfollow_rates = Vec::new();
    for (a, account) in world.accounts.iter().enumerate() {
        for push in &account.pushes {
            let first = &world.articles[push.articles[0]];
            let c = shanghai(push.published_at);
            let window = push.published_at..push.published_at + DAY_MS;
            let unfollows_24h = world.fans[a]
                .iter()
                .flatten()
                .filter(|f| f.unfollowed_at.is_some_and(|u| window.contains(&u)))
                .count() as u64;
            let p = r.pushes.entry(push.msgid).or_default();
            p.app_id = account.record.app_id.clone();
            p.published_at = push.published_at;
            p.month = c.yyyymm();
            p.weekday = c.weekday;
            p.hour = c.hour;
            p.articles_in_push = push.articles.len() as i32;
            p.target_segment = push.segment.map_or("none", segment_name).to_string();
            p.fans_reached = first.fans_reached;
            p.unfollows_24h = unfollows_24h;
            finish(
                &mut p.reads,
                push_readers.get(&push.msgid).unwrap_or(&empty),
            );
            if first.fans_reached > 0 {
                unfollow_rates.push(unfollows_24h as f64 / first.fans_reached as f64);
            }
            *r.push_heatmap
                .entry(account.record.app_id.clone())
                .or_default()
                .entry(c.yyyymm())
                .or_default()
                .entry(c.weekday)
                .or_default()
                .entry(c.hour)
                .or_default() += 1;
        }
    }

    // Follows and unfollows from the profiles.
    let from = month_start_ms(shanghai(span_start).yyyymm());
    let mut in_span_sources: BTreeMap<String, u64> = BTreeMap::new();
    for (a, account) in world.accounts.iter().enumerate() {
        let days = r.follows.entry(account.record.app_id.clone()).or_default();
        for fan in world.fans[a].iter().flatten() {
            if (from..span_end).contains(&fan.followed_at) {
                days.entry(shanghai(fan.followed_at).date())
                    .or_default()
                    .entry(fan.source.to_string())
                    .or_default()
                    .new_follows += 1;
            }
            if (span_start..span_end).contains(&fan.followed_at) {
                *in_span_sources
                    .entry(follow_source_group(fan.source).to_string())
                    .or_default() += 1;
            }
            if let Some(u) = fan.unfollowed_at.filter(|u| (from..span_end).contains(u)) {
                days.entry(shanghai(u).date())
                    .or_default()
                    .entry(fan.source.to_string())
                    .or_default()
                    .unfollows += 1;
            }
        }
    }

    // Scans and chats per associate; replies as `v_chat_replies` pairs them.
    let mut tallies: BTreeMap<(u32, String, String), AssociateTally> = BTreeMap::new();
    let mut month_customers: HashMap<(u32, String, u32), HashSet<u32>> = HashMap::new();
    let mut month_scanners: HashMap<(u32, String, u32), HashSet<u32>> = HashMap::new();
    let mut month_replies: HashMap<(u32, String, u32), Vec<i64>> = HashMap::new();
    // 1:1 messages per conversation (account, fan, associate): (event time, is the
    // associate's, server time), paired after the pass in event-time order.
    let mut conversations: HashMap<(u32, u32, String), Timeline> = HashMap::new();
    let (mut waits, mut all_replies) = (0u64, Vec::new());
    for e in planned {
        let day = shanghai(e.client);
        match &e.what {
            What::Scan { subscribe, scene } => {
                let known = match scene {
                    Scene::Known(i) => Some(&world.scenes[*i]),
                    Scene::Unknown(_) => None,
                };
                if *subscribe {
                    let channel = known.map_or("unknown", |s| s.channel.as_str());
                    *r.qr_follows
                        .entry(app(e.account).to_string())
                        .or_default()
                        .entry(day.date())
                        .or_default()
                        .entry(channel.to_string())
                        .or_default() += 1;
                }
                let Some(userid) = known
                    .filter(|s| s.channel == SceneChannel::Associate)
                    .and_then(|s| s.userid.clone())
                else {
                    continue;
                };
                let t = associate(&mut tallies, e.account, &userid, day);
                t.day.code_scans += 1;
                t.day.new_contacts += u64::from(*subscribe);
                t.scanners.insert(e.fan);
                month_scanners
                    .entry((e.account, userid, day.yyyymm()))
                    .or_default()
                    .insert(e.fan);
            }
            What::Chat(chat) => {
                let Some(userid) = chat.associate.userid(world) else {
                    continue;
                };
                if chat.conversation == ConversationKind::WecomGroup {
                    associate(&mut tallies, e.account, userid, day)
                        .day
                        .group_messages += 1;
                    continue;
                }
                if chat.conversation != ConversationKind::WecomPrivate {
                    continue;
                }
                let t = associate(&mut tallies, e.account, userid, day);
                t.conversations.insert(e.fan);
                month_customers
                    .entry((e.account, userid.to_string(), day.yyyymm()))
                    .or_default()
                    .insert(e.fan);
                let from_associate = match chat.direction {
                    Direction::FanToAssociate => {
                        t.day.messages_in += 1;
                        t.wrote.insert(e.fan);
                        false
                    }
                    Direction::AssociateToFan => {
                        t.day.messages_out += 1;
                        true
                    }
                    _ => continue,
                };
                conversations
                    .entry((e.account, e.fan, userid.to_string()))
                    .or_default()
                    .push((e.client, from_associate, e.server));
            }
            _ => {}
        }
    }
    // Replies in event-time order, whatever order the messages arrive in (VIEWS.md, "reply
    // pairing"): an associate's message answers the fan messages since their previous one
    // (a fan message at the same instant comes first); the wait started at the earliest of
    // them the reply can still answer (server times within REPLY_WINDOW_MS).
    for ((account, fan, userid), mut messages) in conversations {
        messages.sort_unstable();
        let mut since_last_reply: Vec<(i64, i64)> = Vec::new();
        for (t, from_associate, server) in messages {
            if !from_associate {
                if since_last_reply.is_empty() {
                    waits += 1;
                }
                since_last_reply.push((t, server));
                continue;
            }
            let since = since_last_reply
                .iter()
                .filter(|(_, s)| server - s <= REPLY_WINDOW_MS)
                .map(|(t, _)| *t)
                .min();
            since_last_reply.clear();
            let Some(since) = since else {
                continue;
            };
            let ms = t - since;
            let wait_day = shanghai(since);
            let w = associate(&mut tallies, account, &userid, wait_day);
            w.day.first_replies += 1;
            w.day.first_reply_ms_sum += ms;
            w.answered.insert(fan);
            month_replies
                .entry((account, userid.clone(), wait_day.yyyymm()))
                .or_default()
                .push(ms);
            all_replies.push(ms);
        }
    }
    let mut contacts: BTreeMap<String, u64> = BTreeMap::new();
    for ((a, userid, date), mut t) in tallies {
        t.day.conversations = t.conversations.len() as u64;
        t.day.conversations_with_fan_message = t.wrote.len() as u64;
        t.day.answered_conversations = t.answered.len() as u64;
        t.day.scanning_fans = t.scanners.len() as u64;
        *contacts.entry(userid.clone()).or_default() += t.day.new_contacts;
        let month = t.month;
        let assoc = r
            .associates
            .entry(app(a).to_string())
            .or_default()
            .entry(userid.clone())
            .or_default();
        let m = assoc.months.entry(month).or_default();
        let d = &t.day;
        let s = &mut m.totals;
        s.messages_in += d.messages_in;
        s.messages_out += d.messages_out;
        s.group_messages += d.group_messages;
        s.conversations += d.conversations;
        s.conversations_with_fan_message += d.conversations_with_fan_message;
        s.answered_conversations += d.answered_conversations;
        s.first_replies += d.first_replies;
        s.first_reply_ms_sum += d.first_reply_ms_sum;
        s.code_scans += d.code_scans;
        s.new_contacts += d.new_contacts;
        assoc.days.insert(date, t.day);
    }
    for (app_id, assocs) in r.associates.iter_mut() {
        let a = world
            .accounts
            .iter()
            .position(|acc| &acc.record.app_id == app_id)
            .unwrap_or(0) as u32;
        for (userid, assoc) in assocs.iter_mut() {
            for (&month, m) in assoc.months.iter_mut() {
                let key = (a, userid.clone(), month);
                m.unique_customers = month_customers.get(&key).map_or(0, |s| s.len() as u64);
                m.totals.scanning_fans = month_scanners.get(&key).map_or(0, |s| s.len() as u64);
                let mut replies = month_replies.remove(&key).unwrap_or_default();
                replies.sort_unstable();
                m.first_reply_p50_ms = quantile(&replies, 0.5);
                m.first_reply_p90_ms = quantile(&replies, 0.9);
            }
        }
    }

    // Headline figures.
    let s = &mut r.shapes;
    let mut by_month: BTreeMap<u32, u64> = BTreeMap::new();
    for cells in r.fan_activity.values() {
        for (m, c) in cells {
            *by_month.entry(*m).or_default() += c.interactions;
        }
    }
    s.month = by_month
        .iter()
        .max_by_key(|(m, n)| (**n, std::cmp::Reverse(**m)))
        .map_or(0, |(m, _)| *m);
    let (mut active, mut followers) = (0.0, 0.0);
    for cells in r.fan_activity.values() {
        if let Some(c) = cells.get(&s.month) {
            active += c.monthly_active_fans as f64;
            followers += c.followers as f64;
        }
    }
    s.monthly_active_share = ratio(active, followers);
    let (mut lifetime, mut end_followers, mut quiet) = (0.0, 0.0, 0.0);
    for acc in r.accounts.values() {
        lifetime += acc.lifetime_active_fans as f64;
        end_followers += acc.followers as f64;
    }
    for (a, fans) in world.fans.iter().enumerate() {
        for (f, fan) in fans.iter().enumerate() {
            if fan
                .as_ref()
                .is_some_and(|fan| follows_at_end(fan, span_end))
            {
                let n: u64 = per_fan
                    .get(&(a as u32, f as u32))
                    .map_or(0, |c| c.values().sum());
                quiet += f64::from(u8::from(n <= 2));
            }
        }
    }
    s.lifetime_active_share = ratio(lifetime, end_followers);
    s.followers_with_0_to_2 = ratio(quiet, end_followers);
    let mut pooled: BTreeMap<&str, (f64, f64)> = BTreeMap::new();
    for a in r.articles.values() {
        if a.fans_reached <= 0 {
            continue;
        }
        for slot in ["all", a.position_class] {
            let e = pooled.entry(slot).or_default();
            e.0 += a.reads.push_readers as f64;
            e.1 += a.fans_reached as f64;
        }
    }
    let rate = |p: &BTreeMap<&str, (f64, f64)>, k: &str| p.get(k).map_or(0.0, |e| ratio(e.0, e.1));
    s.open_rate_single = rate(&pooled, "single");
    s.open_rate_first = rate(&pooled, "first");
    s.open_rate_non_first = rate(&pooled, "non_first");
    s.open_rate_all_articles = rate(&pooled, "all");
    let mut push_pooled: BTreeMap<&str, (f64, f64)> = BTreeMap::new();
    for p in r.pushes.values() {
        if p.fans_reached <= 0 || p.app_id.is_empty() {
            continue;
        }
        if p.articles_in_push > 1 {
            let e = push_pooled.entry("multi").or_default();
            e.0 += p.reads.push_readers as f64;
            e.1 += p.fans_reached as f64;
        }
        let e = push_pooled
            .entry(if p.target_segment == "none" {
                "unsegmented"
            } else {
                "segmented"
            })
            .or_default();
        e.0 += p.reads.readers as f64;
        e.1 += p.fans_reached as f64;
    }
    s.open_rate_multi_cumulative = rate(&push_pooled, "multi");
    s.engagement_segmented = rate(&push_pooled, "segmented");
    s.engagement_unsegmented = rate(&push_pooled, "unsegmented");
    let (mut pairs, mut at_3, mut at_8) = (0.0, 0.0, 0.0);
    for readers in article_readers.values() {
        for reader in readers.values() {
            pairs += 1.0;
            at_3 += f64::from(u8::from(reader.depth >= 3.27));
            at_8 += f64::from(u8::from(reader.depth >= 8.87));
        }
    }
    s.depth_survival_3_27 = ratio(at_3, pairs);
    s.depth_survival_8_87 = ratio(at_8, pairs);
    s.read_sources = sources
        .into_iter()
        .map(|(k, n)| (k, ratio(n as f64, reads_total as f64)))
        .collect();
    let follows: u64 = in_span_sources.values().sum();
    s.follow_sources = in_span_sources
        .into_iter()
        .map(|(k, n)| (k, ratio(n as f64, follows as f64)))
        .collect();
    s.unfollow_after_push = ratio(unfollow_rates.iter().sum(), unfollow_rates.len() as f64);
    s.waits = waits;
    s.waits_answered = ratio(all_replies.len() as f64, waits as f64);
    all_replies.sort_unstable();
    s.first_reply_median_ms = quantile(&all_replies, 0.5).unwrap_or(0);
    s.first_reply_p90_ms = quantile(&all_replies, 0.9).unwrap_or(0);
    let weeks = ((spec.end_ms - spec.start_ms) as f64 / (7 * DAY_MS) as f64).max(1.0 / 7.0);
    let mut per_week: Vec<f64> = world
        .associates
        .iter()
        .filter(|a| a.active)
        .map(|a| contacts.get(&a.userid).copied().unwrap_or(0) as f64 / weeks)
        .collect();
    per_week.sort_by(f64::total_cmp);
    s.new_contacts_per_week_mean = ratio(per_week.iter().sum(), per_week.len() as f64);
    s.new_contacts_per_week_p90 = per_week
        .get(((0.9 * per_week.len() as f64) as usize).min(per_week.len().saturating_sub(1)))
        .copied()
        .unwrap_or(0.0);
    s.new_contacts_per_week_max = per_week.last().copied().unwrap_or(0.0);
    r
}

/// The tally of an associate with an account's fans on a day.
fn associate<'t>(
    tallies: &'t mut BTreeMap<(u32, String, String), AssociateTally>,
    account: u32,
    userid: &str,
    day: Civil,
) -> &'t mut AssociateTally {
    tallies
        .entry((account, userid.to_string(), day.date()))
        .or_insert_with(|| AssociateTally {
            month: day.yyyymm(),
            ..AssociateTally::default()
        })
}

fn count_read(reads: &mut Reads, read: &super::plan::Read, from_push: bool) {
    reads.reads += 1;
    reads.push_reads += u64::from(from_push);
    reads.shares += u64::from(read.shared);
    reads.favorites += u64::from(read.favorited);
    reads.cta_clicks += u64::from(read.cta);
    reads.read_seconds += read.seconds.max(0) as u64;
}

/// A read source as the rows store it.
pub fn source_name(s: ReadSource) -> &'static str {
    match s {
        ReadSource::Push => "PUSH",
        ReadSource::Chat => "CHAT",
        ReadSource::Moments => "MOMENTS",
        ReadSource::Search => "SEARCH",
        ReadSource::History => "HISTORY",
        ReadSource::Other => "OTHER",
    }
}
