-- BI views (issue 5): plain SQL views over the rollups of 0005, one per table of the seed
-- report, each answering its question with
--     SELECT ... FROM v_x WHERE app_id = ... AND month = ...
-- Names and columns are stable: schemas/clickhouse/VIEWS.md documents every one (grain,
-- columns, the seed figure it reproduces, exact or approximate). A change is a new migration
-- that replaces the view. Views hold no data, hence CREATE OR REPLACE. {ALL} becomes _all on
-- a cluster, so that views read every shard through the Distributed tables over the rollups.
-- Every v_* view is for BI (the read-only role may read those and nothing else);
-- fan_follow_history is an internal building block (it has fan ids). v_article_performance
-- and v_push_performance are BI views that the others build on as well.

-- Follow history from fan profiles, deduplicated, with the source normalised to the groups
-- of the seed report. The only place subscribe_scene values are interpreted.
CREATE OR REPLACE VIEW fan_follow_history {ON_CLUSTER} AS
SELECT
    app_id,
    fan_id,
    kind,
    at,
    toDate(at) AS day,
    toStartOfMonth(at) AS month,
    follow_source,
    multiIf(
        upper(follow_source) IN ('ADD_SCENE_SEARCH', 'SEARCH'), 'search',
        upper(follow_source) IN ('ADD_SCENE_QR_CODE', 'QR') OR startsWith(lower(follow_source), 'qr_'), 'qr',
        upper(follow_source) IN ('ADD_SCENE_WECHAT_ADVERTISEMENT', 'AD', 'PAID_MEDIA'), 'paid_media',
        upper(follow_source) IN ('ADD_SCENE_PROFILE_LINK', 'ADD_SCENE_PROFILE_ITEM', 'ADD_SCENE_REPRINT', 'ARTICLE'), 'article',
        follow_source = '', 'unknown',
        'other') AS source_group
FROM fan_follow_events{ALL} FINAL;

-- Engagement per day, stream, category and segment (from engagement_hourly).
CREATE OR REPLACE VIEW v_engagement_daily {ON_CLUSTER} AS
SELECT
    app_id,
    toStartOfMonth(hour) AS month,
    toDate(hour) AS day,
    stream,
    category,
    relationship,
    lifecycle,
    sum(events) AS events,
    sum(new_follows) AS new_follows,
    uniqMerge(fans) AS fans
FROM engagement_hourly{ALL}
GROUP BY app_id, month, day, stream, category, relationship, lifecycle;

-- Interaction mix by stream (seed 000: menu 70%, articles 13%, chat 11%, QR 6%).
CREATE OR REPLACE VIEW v_interaction_mix {ON_CLUSTER} AS
SELECT
    app_id,
    month,
    stream,
    events,
    events / sum(events) OVER (PARTITION BY app_id, month) AS share,
    fans
FROM
(
    SELECT app_id, month, s.1 AS stream, sum(s.2) AS events, countIf(s.2 > 0) AS fans
    FROM
    (
        SELECT app_id, month, fan_id,
               sum(menu_clicks) AS n_menu, sum(qr_scans) AS n_qr,
               sum(chat_messages) AS n_chat, sum(article_reads) AS n_article
        FROM fan_activity_monthly{ALL}
        GROUP BY app_id, month, fan_id
    )
    ARRAY JOIN [('menu_click', n_menu), ('qr_scan', n_qr), ('chat_message', n_chat), ('article_read', n_article)] AS s
    GROUP BY app_id, month, stream
);

-- Menu clicks by category (seed 000: e-commerce 45%, brand/product info 33%, CRM 22%).
CREATE OR REPLACE VIEW v_menu_categories {ON_CLUSTER} AS
SELECT
    app_id,
    month,
    category,
    clicks,
    clicks / sum(clicks) OVER (PARTITION BY app_id, month) AS share,
    fans
FROM
(
    SELECT app_id, toStartOfMonth(hour) AS month, category, sum(events) AS clicks, uniqMerge(fans) AS fans
    FROM engagement_hourly{ALL}
    WHERE stream = 'menu_click'
    GROUP BY app_id, month, category
);

-- Monthly active (> 4 interactions in the month), lifetime active (> 4 up to the end of the
-- month) and inactive fans (seed 000: 9.33% monthly active, 35% active, 65% inactive).
-- The population is the account's followers at the end of the month from the follow
-- history when the account has one, else every fan that interacted up to the month.
CREATE OR REPLACE VIEW v_monthly_active {ON_CLUSTER} AS
WITH
    activity AS
    (
        SELECT app_id, fan_id, groupArray(month) AS active_months, groupArray(n) AS active_counts
        FROM
        (
            SELECT app_id, fan_id, month, sum(menu_clicks + qr_scans + chat_messages + article_reads) AS n
            FROM fan_activity_monthly{ALL}
            GROUP BY app_id, fan_id, month
        )
        GROUP BY app_id, fan_id
    ),
    follows AS
    (
        SELECT app_id, fan_id, arraySort(groupArray((at, kind = 'follow'))) AS changes
        FROM fan_follow_history
        GROUP BY app_id, fan_id
    ),
    account_months AS
    (
        SELECT app_id, groupUniqArray(month) AS months
        FROM fan_activity_monthly{ALL}
        GROUP BY app_id
    ),
    fan_months AS
    (
        SELECT
            app_id,
            month,
            arraySum(arrayMap((m, c) -> if(m = month, c, 0), active_months, active_counts)) AS in_month,
            arraySum(arrayMap((m, c) -> if(m <= month, c, 0), active_months, active_counts)) AS up_to_month,
            notEmpty(changes) AS has_history,
            arrayLast(c -> c.1 < toDateTime64(addMonths(month, 1), 3, 'Asia/Shanghai'), changes).2 AS following
        FROM activity
        FULL OUTER JOIN follows USING (app_id, fan_id)
        INNER JOIN account_months USING (app_id)
        ARRAY JOIN months AS month
    ),
    counted AS
    (
        SELECT
            app_id,
            month,
            max(has_history) AS profiled,
            countIf(in_month > 0) AS interacting,
            countIf(following) AS followers,
            countIf(following AND in_month > 4) AS followers_monthly_active,
            countIf(following AND up_to_month > 4) AS followers_lifetime_active,
            countIf(up_to_month > 0) AS interacted,
            countIf(in_month > 4) AS interacted_monthly_active,
            countIf(up_to_month > 4) AS interacted_lifetime_active
        FROM fan_months
        GROUP BY app_id, month
    )
SELECT
    app_id,
    month,
    if(profiled, 'followers', 'interacting_fans') AS population,
    if(profiled, followers, interacted) AS fans,
    interacting AS interacting_fans,
    if(profiled, followers_monthly_active, interacted_monthly_active) AS monthly_active_fans,
    if(profiled, followers_lifetime_active, interacted_lifetime_active) AS lifetime_active_fans,
    toUInt64(fans - lifetime_active_fans) AS inactive_fans,
    if(fans > 0, monthly_active_fans / fans, NULL) AS monthly_active_share,
    if(fans > 0, lifetime_active_fans / fans, NULL) AS lifetime_active_share,
    if(fans > 0, inactive_fans / fans, NULL) AS inactive_share
FROM counted;

-- New followers by source (seed 000: search 41.4%, QR code 27.7%, paid media 1.15%). QR
-- follows come from the QR stream (it knows the channel); every other source from the
-- follow history of the fan profiles, whose QR follows are therefore not counted again.
CREATE OR REPLACE VIEW v_follower_sources {ON_CLUSTER} AS
SELECT
    app_id,
    month,
    source,
    source_group,
    data_source,
    new_follows,
    new_follows / sum(new_follows) OVER (PARTITION BY app_id, month) AS share
FROM
(
    SELECT app_id, toStartOfMonth(hour) AS month, concat('qr_', category) AS source, 'qr' AS source_group,
           'qr_scans' AS data_source, sum(new_follows) AS new_follows
    FROM engagement_hourly{ALL}
    WHERE stream = 'qr_scan'
    GROUP BY app_id, month, source
    HAVING new_follows > 0
    UNION ALL
    SELECT app_id, month, source_group AS source, source_group, 'fan_profiles' AS data_source, count() AS new_follows
    FROM fan_follow_history
    WHERE kind = 'follow' AND source_group != 'qr'
    GROUP BY app_id, month, source_group
);

-- Daily follows, unfollows and net growth by source group. Unfollows carry the source of
-- the follow they ended.
CREATE OR REPLACE VIEW v_follower_growth {ON_CLUSTER} AS
SELECT
    app_id,
    toStartOfMonth(day) AS month,
    day,
    source_group,
    sum(follows) AS new_follows,
    sum(unfollows) AS unfollows,
    toInt64(new_follows) - toInt64(unfollows) AS net
FROM
(
    SELECT app_id, toDate(hour) AS day, 'qr' AS source_group, sum(new_follows) AS follows, toUInt64(0) AS unfollows
    FROM engagement_hourly{ALL}
    WHERE stream = 'qr_scan'
    GROUP BY app_id, day
    UNION ALL
    SELECT app_id, day, source_group,
           countIf(kind = 'follow' AND source_group != 'qr') AS follows, countIf(kind = 'unfollow') AS unfollows
    FROM fan_follow_history
    GROUP BY app_id, day, source_group
)
GROUP BY app_id, day, source_group
HAVING new_follows > 0 OR unfollows > 0;

-- Article performance by push x article (month of the push, or of the first read for an
-- article never pushed or not in dim article).
CREATE OR REPLACE VIEW v_article_performance {ON_CLUSTER} AS
SELECT
    app_id,
    toStartOfMonth(coalesce(published_at, first_read_at)) AS month,
    msgid,
    article_id,
    idx,
    articles_in_push,
    multiIf(idx < 1 OR articles_in_push < 1, 'unknown', articles_in_push = 1, 'single', idx = 1, 'first', 'non_first') AS position_class,
    published_at,
    campaign,
    target_segment,
    fans_reached,
    reads,
    push_reads,
    readers,
    push_readers,
    if(fans_reached > 0, push_readers / fans_reached, NULL) AS open_rate,
    shares,
    favorites,
    cta_clicks,
    read_seconds,
    readers_at_screen,
    arrayMap(r -> r / readers, readers_at_screen) AS depth_survival
FROM
(
    SELECT
        app_id,
        msgid,
        article_id,
        toInt32(max(idx)) AS idx,
        toInt32(max(articles_in_push)) AS articles_in_push,
        max(published_at) AS published_at,
        toString(max(campaign)) AS campaign,
        if(max(target_segment) = '', 'unknown', toString(max(target_segment))) AS target_segment,
        toInt64(max(fans_reached)) AS fans_reached,
        min(first_read_at) AS first_read_at,
        sum(reads) AS reads,
        sum(push_reads) AS push_reads,
        sum(shares) AS shares,
        sum(favorites) AS favorites,
        sum(cta_clicks) AS cta_clicks,
        sum(read_seconds) AS read_seconds,
        uniqExactMerge(readers) AS readers,
        uniqExactMerge(push_readers) AS push_readers,
        uniqExactForEachMerge(depth_readers) AS readers_at_screen
    FROM article_push_stats{ALL}
    GROUP BY app_id, msgid, article_id
);

-- Push performance: one row per push (msgid != 0); readers are unions over its articles.
CREATE OR REPLACE VIEW v_push_performance {ON_CLUSTER} AS
SELECT
    app_id,
    toStartOfMonth(coalesce(published_at, first_read_at)) AS month,
    msgid,
    published_at,
    toDayOfWeek(published_at) AS weekday,
    toHour(published_at) AS hour,
    articles_in_push,
    articles_read,
    target_segment,
    multiIf(target_segment = 'unknown', 'unknown', target_segment = 'none', 'unsegmented', 'segmented') AS segmentation,
    campaign,
    fans_reached,
    reads,
    push_reads,
    push_readers,
    if(fans_reached > 0, push_readers / fans_reached, NULL) AS cumulative_open_rate,
    engaged_fans,
    if(fans_reached > 0, engaged_fans / fans_reached, NULL) AS engagement_rate,
    shares,
    cta_clicks
FROM
(
    SELECT
        app_id,
        msgid,
        toInt32(max(articles_in_push)) AS articles_in_push,
        uniqExact(article_id) AS articles_read,
        max(published_at) AS published_at,
        toString(max(campaign)) AS campaign,
        if(max(target_segment) = '', 'unknown', toString(max(target_segment))) AS target_segment,
        toInt64(max(fans_reached)) AS fans_reached,
        min(first_read_at) AS first_read_at,
        sum(reads) AS reads,
        sum(push_reads) AS push_reads,
        sum(shares) AS shares,
        sum(cta_clicks) AS cta_clicks,
        uniqExactMerge(push_readers) AS push_readers,
        uniqExactMerge(readers) AS engaged_fans
    FROM article_push_stats{ALL}
    WHERE msgid != 0
    GROUP BY app_id, msgid
);

-- Open rate by position (seed 000: all articles 7.68%, single-article push 10.26%, first
-- article of a multi-article push 10.54%, cumulative multi-article push 15.18%).
CREATE OR REPLACE VIEW v_open_rate_by_position {ON_CLUSTER} AS
SELECT
    app_id,
    month,
    slot,
    count() AS units,
    uniqExact(msgid) AS pushes,
    sum(unit_fans_reached) AS fans_reached,
    sum(unit_readers) AS readers,
    readers / fans_reached AS open_rate,
    avg(unit_readers / unit_fans_reached) AS avg_open_rate
FROM
(
    SELECT app_id, month, msgid, fans_reached AS unit_fans_reached, push_readers AS unit_readers,
           arrayJoin(['all_articles', position_class]) AS slot
    FROM v_article_performance
    WHERE msgid != 0 AND fans_reached > 0 AND position_class != 'unknown'
    UNION ALL
    SELECT app_id, month, msgid, fans_reached AS unit_fans_reached, push_readers AS unit_readers,
           'multi_cumulative' AS slot
    FROM v_push_performance
    WHERE fans_reached > 0 AND articles_in_push > 1
)
GROUP BY app_id, month, slot;

-- Read-depth survival (seed 000: about 20% of readers gone by 3.27 screens, 50% by 8.87).
CREATE OR REPLACE VIEW v_read_depth_curve {ON_CLUSTER} AS
SELECT
    app_id,
    month,
    toUInt8(screen) AS screen,
    readers,
    still_reading,
    still_reading / readers AS survival,
    (readers - still_reading) / readers AS lost
FROM
(
    SELECT app_id, month, sum(readers) AS readers, sumForEach(readers_at_screen) AS at_screen
    FROM v_article_performance
    GROUP BY app_id, month
)
ARRAY JOIN at_screen AS still_reading, arrayEnumerate(at_screen) AS screen;

-- Push-time heatmap: pushes by weekday x hour of publication (Asia/Shanghai).
CREATE OR REPLACE VIEW v_push_heatmap {ON_CLUSTER} AS
SELECT
    app_id,
    month,
    assumeNotNull(weekday) AS weekday,
    assumeNotNull(hour) AS hour,
    count() AS pushes,
    sum(fans_reached) AS fans_reached,
    sum(push_readers) AS readers,
    if(fans_reached > 0, readers / fans_reached, NULL) AS open_rate
FROM v_push_performance
WHERE published_at IS NOT NULL
GROUP BY app_id, month, weekday, hour;

-- Unfollow rate after a push (seed 000: 0.4% on average): unfollows in the 24 h after
-- publication / fans reached.
CREATE OR REPLACE VIEW v_unfollow_after_push {ON_CLUSTER} AS
SELECT
    p.app_id AS app_id,
    p.month AS month,
    p.msgid AS msgid,
    p.published_at AS published_at,
    p.articles_in_push AS articles_in_push,
    p.segmentation AS segmentation,
    p.fans_reached AS fans_reached,
    countIf(u.at >= p.published_at AND u.at < p.published_at + INTERVAL 24 HOUR) AS unfollows_24h,
    if(p.fans_reached > 0, unfollows_24h / p.fans_reached, NULL) AS unfollow_rate
FROM
(
    SELECT app_id, month, msgid, assumeNotNull(published_at) AS published_at, articles_in_push, segmentation, fans_reached
    FROM v_push_performance
    WHERE published_at IS NOT NULL
) AS p
LEFT JOIN
(
    SELECT app_id, at FROM fan_follow_history WHERE kind = 'unfollow'
) AS u ON u.app_id = p.app_id
GROUP BY app_id, month, msgid, published_at, articles_in_push, segmentation, fans_reached;

-- Engagement rate per push, segmented vs unsegmented (seed 000: 6.59% of fans interact;
-- segmented 7.86%, unsegmented 6.33%).
CREATE OR REPLACE VIEW v_segmented_engagement {ON_CLUSTER} AS
SELECT
    app_id,
    month,
    segmentation,
    count() AS pushes,
    sum(fans_reached) AS fans_reached,
    sum(engaged_fans) AS engaged_fans,
    engaged_fans / fans_reached AS engagement_rate,
    avg(push_engagement_rate) AS avg_engagement_rate
FROM
(
    SELECT app_id, month, segmentation, fans_reached, engaged_fans, engagement_rate AS push_engagement_rate
    FROM v_push_performance
    WHERE segmentation != 'unknown' AND fans_reached > 0
)
GROUP BY app_id, month, segmentation;

-- Associate activity per day (seeds 003/004: new contacts, conversations, reply rate and
-- time, customers).
CREATE OR REPLACE VIEW v_associate_daily {ON_CLUSTER} AS
SELECT
    app_id,
    toStartOfMonth(day) AS month,
    day,
    region,
    store_id,
    associate_userid,
    sum(code_scans) AS code_scans,
    sum(new_contacts) AS new_contacts,
    uniqExactMerge(scanning_fans) AS scanning_fans,
    uniqExactMerge(customers) AS conversations,
    conversations AS unique_customers,
    sum(messages_in) AS messages_in,
    sum(messages_out) AS messages_out,
    sum(group_messages) AS group_messages,
    uniqExactMerge(writing_fans) AS conversations_with_fan_message,
    uniqExactMerge(answered_fans) AS answered_conversations,
    if(conversations_with_fan_message > 0, answered_conversations / conversations_with_fan_message, NULL) AS reply_rate,
    sum(replies) AS replies,
    if(replies > 0, sum(reply_ms_sum) / replies, NULL) AS avg_first_reply_ms,
    if(replies > 0, quantilesExactMerge(0.5, 0.9)(reply_ms)[1], NULL) AS median_first_reply_ms,
    if(replies > 0, quantilesExactMerge(0.5, 0.9)(reply_ms)[2], NULL) AS p90_first_reply_ms
FROM associate_daily{ALL}
GROUP BY app_id, day, region, store_id, associate_userid;

-- Associate KPIs per month at three levels: associate, store and region. Conversations add
-- up (a conversation is an associate x fan x day); customers are distinct over the month.
CREATE OR REPLACE VIEW v_associate_kpis {ON_CLUSTER} AS
SELECT
    app_id,
    toStartOfMonth(day) AS month,
    lvl.1 AS level,
    region,
    lvl.2 AS store_id,
    lvl.3 AS associate_userid,
    uniqExact(associate) AS associates,
    sum(d_code_scans) AS code_scans,
    sum(d_new_contacts) AS new_contacts,
    uniqExactMerge(d_scanning_fans) AS scanning_fans,
    sum(d_conversations) AS conversations,
    uniqExactMerge(d_customers) AS unique_customers,
    sum(d_messages_in) AS messages_in,
    sum(d_messages_out) AS messages_out,
    sum(d_group_messages) AS group_messages,
    sum(d_with_fan_message) AS conversations_with_fan_message,
    sum(d_answered) AS answered_conversations,
    if(conversations_with_fan_message > 0, answered_conversations / conversations_with_fan_message, NULL) AS reply_rate,
    sum(d_replies) AS replies,
    if(replies > 0, sum(d_reply_ms_sum) / replies, NULL) AS avg_first_reply_ms,
    if(replies > 0, quantilesExactMerge(0.5, 0.9)(d_reply_ms)[1], NULL) AS median_first_reply_ms,
    if(replies > 0, quantilesExactMerge(0.5, 0.9)(d_reply_ms)[2], NULL) AS p90_first_reply_ms
FROM
(
    SELECT
        app_id,
        day,
        region,
        store_id AS store,
        associate_userid AS associate,
        sum(code_scans) AS d_code_scans,
        sum(new_contacts) AS d_new_contacts,
        uniqExactMergeState(scanning_fans) AS d_scanning_fans,
        uniqExactMerge(customers) AS d_conversations,
        uniqExactMergeState(customers) AS d_customers,
        sum(messages_in) AS d_messages_in,
        sum(messages_out) AS d_messages_out,
        sum(group_messages) AS d_group_messages,
        uniqExactMerge(writing_fans) AS d_with_fan_message,
        uniqExactMerge(answered_fans) AS d_answered,
        sum(replies) AS d_replies,
        sum(reply_ms_sum) AS d_reply_ms_sum,
        quantilesExactMergeState(0.5, 0.9)(reply_ms) AS d_reply_ms
    FROM associate_daily{ALL}
    GROUP BY app_id, day, region, store_id, associate_userid
)
ARRAY JOIN [('associate', store, associate), ('store', store, ''), ('region', '', '')] AS lvl
GROUP BY app_id, month, level, region, store_id, associate_userid
