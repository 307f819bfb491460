//! The report's figures: the types the ground truth hands the tests (and serializes as
//! JSON), apart from the tally that fills them, so a reader finds every definition in one
//! place.

use std::collections::BTreeMap;

use serde::Serialize;

/// Screens the read-depth counts go to (`readers_at_screen[n - 1]`, n = 1..=20).
pub const SCREENS: usize = 20;

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

/// The tallies [`tally`](super::tally) adds to the ground truth.
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
