-- Rollups behind the BI views (issue 5; schemas/clickhouse/VIEWS.md documents every figure).
-- Each is fed by materialized views in the same INSERT as the raw rows, so it inherits the
-- runtime's effectively-once writes: a retried insert with the same dedup token is dropped
-- by every target, because every target has a dedup window. Aggregates are states
-- (sum, max, uniq*, quantile*) that merge in any order, so late and out-of-order events
-- land in their bucket whenever they arrive. Read them through the v_* views (0006).
-- Exact unique counts (uniqExact) where the grain is small: per fan, per push, per
-- associate-day. Approximate (uniq) only in engagement_hourly.

-- Engagement by account x hour x stream x category x segment.
CREATE TABLE IF NOT EXISTS engagement_hourly {ON_CLUSTER}
(
    app_id       LowCardinality(String),
    hour         DateTime('Asia/Shanghai') COMMENT 'hour of event time, Asia/Shanghai',
    stream       LowCardinality(String) COMMENT 'menu_click, qr_scan, chat_message, article_read',
    category     LowCardinality(String) COMMENT 'menu_click: menu category; qr_scan: QR channel; chat_message: conversation; article_read: read source',
    relationship LowCardinality(String) COMMENT 'prospect, customer, vip, unknown (at event time)',
    lifecycle    LowCardinality(String) COMMENT 'new, active, dormant, churned, unknown (at event time)',
    events       SimpleAggregateFunction(sum, UInt64),
    new_follows  SimpleAggregateFunction(sum, UInt64) COMMENT 'qr_scan only: scans that made a new follower (SUBSCRIBE); 0 for the other streams',
    fans         AggregateFunction(uniq, UInt64) COMMENT 'distinct fans, approximate: read with uniqMerge'
)
ENGINE = AggregatingMergeTree
PARTITION BY toYYYYMM(hour)
ORDER BY (app_id, hour, stream, category, relationship, lifecycle)
SETTINGS non_replicated_deduplication_window = 10000;

CREATE MATERIALIZED VIEW IF NOT EXISTS mv_menu_clicks_engagement {ON_CLUSTER} TO engagement_hourly AS
SELECT app_id, toStartOfHour(toDateTime(event_time, 'Asia/Shanghai')) AS hour, 'menu_click' AS stream,
       category, relationship, lifecycle, count() AS events, uniqState(fan_id) AS fans
FROM menu_clicks GROUP BY app_id, hour, category, relationship, lifecycle;

CREATE MATERIALIZED VIEW IF NOT EXISTS mv_qr_scans_engagement {ON_CLUSTER} TO engagement_hourly AS
SELECT app_id, toStartOfHour(toDateTime(event_time, 'Asia/Shanghai')) AS hour, 'qr_scan' AS stream,
       channel AS category, relationship, lifecycle, count() AS events,
       countIf(is_new_follow) AS new_follows, uniqState(fan_id) AS fans
FROM qr_scans GROUP BY app_id, hour, category, relationship, lifecycle;

CREATE MATERIALIZED VIEW IF NOT EXISTS mv_chat_messages_engagement {ON_CLUSTER} TO engagement_hourly AS
SELECT app_id, toStartOfHour(toDateTime(event_time, 'Asia/Shanghai')) AS hour, 'chat_message' AS stream,
       conversation AS category, relationship, lifecycle, count() AS events, uniqState(fan_id) AS fans
FROM chat_messages GROUP BY app_id, hour, category, relationship, lifecycle;

CREATE MATERIALIZED VIEW IF NOT EXISTS mv_article_reads_engagement {ON_CLUSTER} TO engagement_hourly AS
SELECT app_id, toStartOfHour(toDateTime(event_time, 'Asia/Shanghai')) AS hour, 'article_read' AS stream,
       source AS category, relationship, lifecycle, count() AS events, uniqState(fan_id) AS fans
FROM article_reads GROUP BY app_id, hour, category, relationship, lifecycle;

-- Fan activity by account x month x fan: the interactions of each stream, exact. Monthly
-- active (> 4 in the month) and lifetime active (> 4 up to the month) are computed from it.
CREATE TABLE IF NOT EXISTS fan_activity_monthly {ON_CLUSTER}
(
    app_id        LowCardinality(String),
    month         Date COMMENT 'first day of the calendar month of event time, Asia/Shanghai',
    fan_id        UInt64 COMMENT 'pseudonymised fan id, as in the raw tables',
    menu_clicks   UInt64,
    qr_scans      UInt64,
    chat_messages UInt64,
    article_reads UInt64
)
ENGINE = SummingMergeTree
PARTITION BY toYYYYMM(month)
ORDER BY (app_id, month, fan_id)
SETTINGS non_replicated_deduplication_window = 10000;

CREATE MATERIALIZED VIEW IF NOT EXISTS mv_menu_clicks_fan_activity {ON_CLUSTER} TO fan_activity_monthly AS
SELECT app_id, toStartOfMonth(event_time) AS month, fan_id, count() AS menu_clicks
FROM menu_clicks GROUP BY app_id, month, fan_id;

CREATE MATERIALIZED VIEW IF NOT EXISTS mv_qr_scans_fan_activity {ON_CLUSTER} TO fan_activity_monthly AS
SELECT app_id, toStartOfMonth(event_time) AS month, fan_id, count() AS qr_scans
FROM qr_scans GROUP BY app_id, month, fan_id;

CREATE MATERIALIZED VIEW IF NOT EXISTS mv_chat_messages_fan_activity {ON_CLUSTER} TO fan_activity_monthly AS
SELECT app_id, toStartOfMonth(event_time) AS month, fan_id, count() AS chat_messages
FROM chat_messages GROUP BY app_id, month, fan_id;

CREATE MATERIALIZED VIEW IF NOT EXISTS mv_article_reads_fan_activity {ON_CLUSTER} TO fan_activity_monthly AS
SELECT app_id, toStartOfMonth(event_time) AS month, fan_id, count() AS article_reads
FROM article_reads GROUP BY app_id, month, fan_id;

-- Fan profiles: the fan-profile dimension (topic wxpulse.dim.fan_profile), written by a
-- service that follows the compacted topic (contract in VIEWS.md). The current version of
-- each fan wins (ReplacingMergeTree on updated_at; read with FINAL). Follows from search,
-- ads and articles, and every unfollow, are only known from here.
CREATE TABLE IF NOT EXISTS fan_profiles {ON_CLUSTER}
(
    app_id           LowCardinality(String),
    fan_id           UInt64 COMMENT 'HMAC-SHA256(openid) truncated to 64 bits with the services'' PII key; never the raw openid',
    status           LowCardinality(String) COMMENT 'prospect, customer, vip, unknown (the relationship vocabulary of the raw tables)',
    member_tier      LowCardinality(String) COMMENT 'membership tier, empty when not a member',
    associate_userid LowCardinality(String) COMMENT 'bound WeCom associate, empty when none',
    followed_at      Nullable(DateTime64(3, 'Asia/Shanghai')) COMMENT 'latest follow',
    unfollowed_at    Nullable(DateTime64(3, 'Asia/Shanghai')) COMMENT 'latest unfollow; the fan is gone when it is after followed_at',
    follow_source    LowCardinality(String) COMMENT 'WeChat subscribe_scene of the latest follow as published (ADD_SCENE_SEARCH, ...); empty when unknown',
    updated_at       DateTime64(3, 'Asia/Shanghai') COMMENT 'version: the newest wins',
    is_deleted       UInt8 DEFAULT 0 COMMENT '1 for a tombstone (the key was deleted from the topic)'
)
ENGINE = ReplacingMergeTree(updated_at, is_deleted)
ORDER BY (app_id, fan_id)
SETTINGS non_replicated_deduplication_window = 10000;

-- Every follow and unfollow the profile versions have carried, one row each: a fan who
-- unfollows and follows again keeps both in the history even though the profile keeps only
-- the latest. Replaying the topic writes the same rows again; ReplacingMergeTree on the full
-- key makes that harmless (read with FINAL). An unfollow seen again on the profile of a
-- later follow has lost its source there; source_known keeps the row that still knew it.
CREATE TABLE IF NOT EXISTS fan_follow_events {ON_CLUSTER}
(
    app_id        LowCardinality(String),
    fan_id        UInt64,
    kind          LowCardinality(String) COMMENT 'follow or unfollow',
    at            DateTime64(3, 'Asia/Shanghai'),
    follow_source LowCardinality(String) COMMENT 'subscribe_scene of the follow (for an unfollow: of the follow it ended; empty when unknown)',
    source_known  UInt8 COMMENT 'version: 1 when follow_source belongs to this follow or unfollow'
)
ENGINE = ReplacingMergeTree(source_known)
PARTITION BY toYYYYMM(at)
ORDER BY (app_id, fan_id, kind, at)
SETTINGS non_replicated_deduplication_window = 10000;

CREATE MATERIALIZED VIEW IF NOT EXISTS mv_fan_profiles_follows {ON_CLUSTER} TO fan_follow_events AS
SELECT app_id, fan_id, 'follow' AS kind, assumeNotNull(followed_at) AS at, follow_source, 1 AS source_known
FROM fan_profiles WHERE followed_at IS NOT NULL;

CREATE MATERIALIZED VIEW IF NOT EXISTS mv_fan_profiles_unfollows {ON_CLUSTER} TO fan_follow_events AS
SELECT app_id, fan_id, 'unfollow' AS kind, assumeNotNull(unfollowed_at) AS at,
       ifNull(unfollowed_at >= followed_at, 1) AS source_known,
       if(source_known = 1, follow_source, '') AS follow_source
FROM fan_profiles WHERE unfollowed_at IS NOT NULL;

-- Article performance by push x article: reads, exact unique readers (all sources, and from
-- the push itself), exact readers still reading at screen n = 1..20, shares, CTA clicks.
-- The dimension columns (idx, articles_in_push, published_at, segment, fans_reached) keep
-- the known value when some rows were enriched before the article was in its dimension:
-- unknown is 0 / NULL / '' and max() prefers anything known.
CREATE TABLE IF NOT EXISTS article_push_stats {ON_CLUSTER}
(
    app_id           LowCardinality(String),
    msgid            Int64 COMMENT 'push id; 0 for an article that was never pushed',
    article_id       String,
    idx              SimpleAggregateFunction(max, Int32) COMMENT 'position in the push, 1 = first',
    articles_in_push SimpleAggregateFunction(max, Int32) COMMENT '0 while the article is not in dim article',
    published_at     SimpleAggregateFunction(max, Nullable(DateTime64(3, 'Asia/Shanghai'))),
    target_segment   SimpleAggregateFunction(max, String) COMMENT 'none = unsegmented push; empty = unknown (article not in dim article)',
    campaign         SimpleAggregateFunction(max, String) COMMENT 'empty when none or unknown',
    fans_reached     SimpleAggregateFunction(max, Int64) COMMENT 'followers the push reached; 0 when unknown',
    first_read_at    SimpleAggregateFunction(min, DateTime64(3, 'Asia/Shanghai')),
    reads            SimpleAggregateFunction(sum, UInt64),
    push_reads       SimpleAggregateFunction(sum, UInt64) COMMENT 'reads opened from the push (source PUSH)',
    shares           SimpleAggregateFunction(sum, UInt64),
    favorites        SimpleAggregateFunction(sum, UInt64),
    cta_clicks       SimpleAggregateFunction(sum, UInt64),
    read_seconds     SimpleAggregateFunction(sum, UInt64),
    readers          AggregateFunction(uniqExact, UInt64) COMMENT 'fans who read it from any source',
    push_readers     AggregateFunction(uniqExact, UInt64) COMMENT 'fans who opened it from the push: the open-rate numerator',
    depth_readers    AggregateFunction(uniqExactForEach, Array(Nullable(UInt64))) COMMENT 'element n: fans with a read reaching screen n (read_depth >= n), n = 1..20'
)
ENGINE = AggregatingMergeTree
ORDER BY (app_id, msgid, article_id)
SETTINGS non_replicated_deduplication_window = 10000;

CREATE MATERIALIZED VIEW IF NOT EXISTS mv_article_reads_push_stats {ON_CLUSTER} TO article_push_stats AS
SELECT app_id, msgid, article_id,
       max(idx) AS idx,
       max(articles_in_push) AS articles_in_push,
       max(published_at) AS published_at,
       max(if(target_segment = 'unknown', '', toString(target_segment))) AS target_segment,
       max(if(campaign = 'unknown', '', toString(campaign))) AS campaign,
       max(fans_reached) AS fans_reached,
       min(event_time) AS first_read_at,
       count() AS reads,
       countIf(source = 'PUSH') AS push_reads,
       countIf(shared) AS shares,
       countIf(favorited) AS favorites,
       countIf(cta_clicked) AS cta_clicks,
       toUInt64(sum(greatest(read_seconds, 0))) AS read_seconds,
       uniqExactState(fan_id) AS readers,
       uniqExactStateIf(fan_id, source = 'PUSH') AS push_readers,
       uniqExactForEachState(arrayMap(n -> if(read_depth >= n, fan_id, NULL), range(1, 21))) AS depth_readers
FROM article_reads GROUP BY app_id, msgid, article_id;

-- Associate activity by account x day x store x associate (store and region roll up from
-- it). Three feeds: scans of the associate's own QR code, the associate's WeCom messages,
-- and answered waits, which count on the day the wait started (the earliest unanswered fan
-- message: event_time - first_reply_ms), so that an answered conversation is always one in
-- which the fan wrote that day.
CREATE TABLE IF NOT EXISTS associate_daily {ON_CLUSTER}
(
    app_id           LowCardinality(String),
    day              Date COMMENT 'Asia/Shanghai',
    region           LowCardinality(String),
    store_id         LowCardinality(String),
    associate_userid LowCardinality(String),
    code_scans       SimpleAggregateFunction(sum, UInt64) COMMENT 'scans of the associate''s QR code (channel associate)',
    new_contacts     SimpleAggregateFunction(sum, UInt64) COMMENT 'scans of the associate''s code that made a new follower',
    scanning_fans    AggregateFunction(uniqExact, UInt64) COMMENT 'fans who scanned the code',
    messages_in      SimpleAggregateFunction(sum, UInt64) COMMENT 'WECOM_PRIVATE, FAN_TO_ASSOCIATE',
    messages_out     SimpleAggregateFunction(sum, UInt64) COMMENT 'WECOM_PRIVATE, ASSOCIATE_TO_FAN',
    group_messages   SimpleAggregateFunction(sum, UInt64) COMMENT 'WECOM_GROUP messages of the associate''s groups',
    customers        AggregateFunction(uniqExact, UInt64) COMMENT 'fans in a WECOM_PRIVATE conversation with the associate (either direction)',
    writing_fans     AggregateFunction(uniqExact, UInt64) COMMENT 'fans who sent the associate a 1:1 message',
    answered_fans    AggregateFunction(uniqExact, UInt64) COMMENT 'fans whose wait started this day and was answered',
    replies          SimpleAggregateFunction(sum, UInt64) COMMENT 'associate messages that answered a wait (first_reply_ms set)',
    reply_ms_sum     SimpleAggregateFunction(sum, Int64),
    reply_ms         AggregateFunction(quantilesExact(0.5, 0.9), Int64) COMMENT 'first-reply times, exact quantile state'
)
ENGINE = AggregatingMergeTree
PARTITION BY toYYYYMM(day)
ORDER BY (app_id, day, region, store_id, associate_userid)
SETTINGS non_replicated_deduplication_window = 10000;

CREATE MATERIALIZED VIEW IF NOT EXISTS mv_qr_scans_associate_daily {ON_CLUSTER} TO associate_daily AS
SELECT app_id, toDate(event_time) AS day, region, store_id, associate_userid,
       count() AS code_scans, countIf(is_new_follow) AS new_contacts, uniqExactState(fan_id) AS scanning_fans
FROM qr_scans WHERE channel = 'associate' AND associate_userid != ''
GROUP BY app_id, day, region, store_id, associate_userid;

CREATE MATERIALIZED VIEW IF NOT EXISTS mv_chat_messages_associate_daily {ON_CLUSTER} TO associate_daily AS
SELECT app_id, toDate(event_time) AS day, region, store_id, associate_userid,
       countIf(conversation = 'WECOM_PRIVATE' AND direction = 'FAN_TO_ASSOCIATE') AS messages_in,
       countIf(conversation = 'WECOM_PRIVATE' AND direction = 'ASSOCIATE_TO_FAN') AS messages_out,
       countIf(conversation = 'WECOM_GROUP') AS group_messages,
       uniqExactStateIf(fan_id, conversation = 'WECOM_PRIVATE') AS customers,
       uniqExactStateIf(fan_id, conversation = 'WECOM_PRIVATE' AND direction = 'FAN_TO_ASSOCIATE') AS writing_fans
FROM chat_messages WHERE associate_userid != '' AND conversation IN ('WECOM_PRIVATE', 'WECOM_GROUP')
GROUP BY app_id, day, region, store_id, associate_userid;

CREATE MATERIALIZED VIEW IF NOT EXISTS mv_chat_messages_associate_replies {ON_CLUSTER} TO associate_daily AS
SELECT app_id, toDate(event_time - toIntervalMillisecond(assumeNotNull(first_reply_ms))) AS day,
       region, store_id, associate_userid,
       uniqExactState(fan_id) AS answered_fans,
       count() AS replies,
       sum(assumeNotNull(first_reply_ms)) AS reply_ms_sum,
       quantilesExactState(0.5, 0.9)(assumeNotNull(first_reply_ms)) AS reply_ms
FROM chat_messages
WHERE first_reply_ms IS NOT NULL AND associate_userid != '' AND conversation = 'WECOM_PRIVATE'
GROUP BY app_id, day, region, store_id, associate_userid
