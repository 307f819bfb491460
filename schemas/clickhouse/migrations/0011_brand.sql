-- Per-brand BI isolation (issue 13, item 6): every v_* view gains `brand`, the brand of
-- the row's account, so that a row policy `brand = '<brand>'` on each view confines a brand's
-- BI users to their own accounts (grants/bi_brand.sql, `wxpulse migrate --grants --brand`).
-- VIEWS.md, "Access control", says why the policies sit on the views.
--
-- The brand comes from the rows themselves: every raw table carries the account's brand as
-- the services enriched it (the account dimension), and account_brands keeps, per account,
-- each brand its rows carried and when last. An account's brand is the newest known one
-- (`unknown`, stamped while the dimension lacked the account, loses to any known brand), so
-- a late account record does not hide the account's earlier rows from its brand, and one
-- rule holds in every view, the order views included (they carried the brand stamped on
-- each order; an order stamped `unknown` would have been visible to no brand). A view
-- row whose account has no row at all with a brand has `brand = ''`: no brand sees it.
-- Dead letters belong to no account (an undecodable record has none): brand is always ''.
--
-- Every view keeps its columns; `brand` is appended at the end (the order views keep it
-- where it was). CREATE OR REPLACE VIEW resets SQL SECURITY: rerun
-- `wxpulse migrate --grants` after this migration.

-- Brands seen per account, fed by the same INSERTs as the raw rows.
CREATE TABLE IF NOT EXISTS account_brands {ON_CLUSTER}
(
    app_id    LowCardinality(String),
    brand     LowCardinality(String) COMMENT 'as stamped on the rows (dim account); unknown while the dimension lacked the account',
    last_seen SimpleAggregateFunction(max, DateTime64(3, 'Asia/Shanghai')) COMMENT 'newest server_time of a row with this brand'
)
ENGINE = AggregatingMergeTree
ORDER BY (app_id, brand)
SETTINGS non_replicated_deduplication_window = 10000;

CREATE MATERIALIZED VIEW IF NOT EXISTS mv_menu_clicks_account_brands {ON_CLUSTER} TO account_brands AS
SELECT app_id, brand, max(server_time) AS last_seen FROM menu_clicks GROUP BY app_id, brand;

CREATE MATERIALIZED VIEW IF NOT EXISTS mv_qr_scans_account_brands {ON_CLUSTER} TO account_brands AS
SELECT app_id, brand, max(server_time) AS last_seen FROM qr_scans GROUP BY app_id, brand;

CREATE MATERIALIZED VIEW IF NOT EXISTS mv_chat_messages_account_brands {ON_CLUSTER} TO account_brands AS
SELECT app_id, brand, max(server_time) AS last_seen FROM chat_messages GROUP BY app_id, brand;

CREATE MATERIALIZED VIEW IF NOT EXISTS mv_article_reads_account_brands {ON_CLUSTER} TO account_brands AS
SELECT app_id, brand, max(server_time) AS last_seen FROM article_reads GROUP BY app_id, brand;

CREATE MATERIALIZED VIEW IF NOT EXISTS mv_orders_account_brands {ON_CLUSTER} TO account_brands AS
SELECT app_id, brand, max(server_time) AS last_seen FROM orders GROUP BY app_id, brand;

-- The rows already stored (after the materialized views exist, so that none is missed;
-- a row counted by both is harmless: last_seen is a max).
INSERT INTO account_brands (app_id, brand, last_seen)
SELECT app_id, brand, max(server_time) FROM menu_clicks{ALL} GROUP BY app_id, brand;
INSERT INTO account_brands (app_id, brand, last_seen)
SELECT app_id, brand, max(server_time) FROM qr_scans{ALL} GROUP BY app_id, brand;
INSERT INTO account_brands (app_id, brand, last_seen)
SELECT app_id, brand, max(server_time) FROM chat_messages{ALL} GROUP BY app_id, brand;
INSERT INTO account_brands (app_id, brand, last_seen)
SELECT app_id, brand, max(server_time) FROM article_reads{ALL} GROUP BY app_id, brand;
INSERT INTO account_brands (app_id, brand, last_seen)
SELECT app_id, brand, max(server_time) FROM orders{ALL} GROUP BY app_id, brand;

-- Internal: the brand of each account, the newest known one.
CREATE OR REPLACE VIEW account_brand {ON_CLUSTER} AS
SELECT toString(app_id) AS app_id, toString(argMax(brand, (brand != 'unknown', last_seen))) AS brand
FROM account_brands{ALL}
GROUP BY app_id;

-- The BI views of 0006, 0007 and 0010 again, each with its brand. The bodies are unchanged.

CREATE OR REPLACE VIEW v_engagement_daily {ON_CLUSTER} AS
WITH (SELECT (groupArray(app_id), groupArray(brand)) FROM account_brand) AS brand_of
SELECT *, transform(toString(app_id), brand_of.1, brand_of.2, '') AS brand
FROM
(
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
    GROUP BY app_id, month, day, stream, category, relationship, lifecycle
);

CREATE OR REPLACE VIEW v_interaction_mix {ON_CLUSTER} AS
WITH (SELECT (groupArray(app_id), groupArray(brand)) FROM account_brand) AS brand_of
SELECT *, transform(toString(app_id), brand_of.1, brand_of.2, '') AS brand
FROM
(
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
    )
);

CREATE OR REPLACE VIEW v_menu_categories {ON_CLUSTER} AS
WITH (SELECT (groupArray(app_id), groupArray(brand)) FROM account_brand) AS brand_of
SELECT *, transform(toString(app_id), brand_of.1, brand_of.2, '') AS brand
FROM
(
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
    )
);

CREATE OR REPLACE VIEW v_monthly_active {ON_CLUSTER} AS
WITH (SELECT (groupArray(app_id), groupArray(brand)) FROM account_brand) AS brand_of
SELECT *, transform(toString(app_id), brand_of.1, brand_of.2, '') AS brand
FROM
(
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
    FROM counted
);

CREATE OR REPLACE VIEW v_follower_sources {ON_CLUSTER} AS
WITH (SELECT (groupArray(app_id), groupArray(brand)) FROM account_brand) AS brand_of
SELECT *, transform(toString(app_id), brand_of.1, brand_of.2, '') AS brand
FROM
(
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
    )
);

CREATE OR REPLACE VIEW v_follower_growth {ON_CLUSTER} AS
WITH (SELECT (groupArray(app_id), groupArray(brand)) FROM account_brand) AS brand_of
SELECT *, transform(toString(app_id), brand_of.1, brand_of.2, '') AS brand
FROM
(
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
    HAVING new_follows > 0 OR unfollows > 0
);

CREATE OR REPLACE VIEW v_article_performance {ON_CLUSTER} AS
WITH (SELECT (groupArray(app_id), groupArray(brand)) FROM account_brand) AS brand_of
SELECT *, transform(toString(app_id), brand_of.1, brand_of.2, '') AS brand
FROM
(
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
    )
);

CREATE OR REPLACE VIEW v_push_performance {ON_CLUSTER} AS
WITH (SELECT (groupArray(app_id), groupArray(brand)) FROM account_brand) AS brand_of
SELECT *, transform(toString(app_id), brand_of.1, brand_of.2, '') AS brand
FROM
(
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
    )
);

CREATE OR REPLACE VIEW v_open_rate_by_position {ON_CLUSTER} AS
WITH (SELECT (groupArray(app_id), groupArray(brand)) FROM account_brand) AS brand_of
SELECT *, transform(toString(app_id), brand_of.1, brand_of.2, '') AS brand
FROM
(
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
    GROUP BY app_id, month, slot
);

CREATE OR REPLACE VIEW v_read_depth_curve {ON_CLUSTER} AS
WITH (SELECT (groupArray(app_id), groupArray(brand)) FROM account_brand) AS brand_of
SELECT *, transform(toString(app_id), brand_of.1, brand_of.2, '') AS brand
FROM
(
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
    ARRAY JOIN at_screen AS still_reading, arrayEnumerate(at_screen) AS screen
);

CREATE OR REPLACE VIEW v_push_heatmap {ON_CLUSTER} AS
WITH (SELECT (groupArray(app_id), groupArray(brand)) FROM account_brand) AS brand_of
SELECT *, transform(toString(app_id), brand_of.1, brand_of.2, '') AS brand
FROM
(
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
    GROUP BY app_id, month, weekday, hour
);

CREATE OR REPLACE VIEW v_unfollow_after_push {ON_CLUSTER} AS
WITH (SELECT (groupArray(app_id), groupArray(brand)) FROM account_brand) AS brand_of
SELECT *, transform(toString(app_id), brand_of.1, brand_of.2, '') AS brand
FROM
(
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
    GROUP BY app_id, month, msgid, published_at, articles_in_push, segmentation, fans_reached
);

CREATE OR REPLACE VIEW v_segmented_engagement {ON_CLUSTER} AS
WITH (SELECT (groupArray(app_id), groupArray(brand)) FROM account_brand) AS brand_of
SELECT *, transform(toString(app_id), brand_of.1, brand_of.2, '') AS brand
FROM
(
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
    GROUP BY app_id, month, segmentation
);

CREATE OR REPLACE VIEW v_associate_daily {ON_CLUSTER} AS
WITH (SELECT (groupArray(app_id), groupArray(brand)) FROM account_brand) AS brand_of
SELECT *, transform(toString(app_id), brand_of.1, brand_of.2, '') AS brand
FROM
(
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
    GROUP BY app_id, day, region, store_id, associate_userid
);

CREATE OR REPLACE VIEW v_associate_kpis {ON_CLUSTER} AS
WITH (SELECT (groupArray(app_id), groupArray(brand)) FROM account_brand) AS brand_of
SELECT *, transform(toString(app_id), brand_of.1, brand_of.2, '') AS brand
FROM
(
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
);

CREATE OR REPLACE VIEW v_attribution_daily {ON_CLUSTER} AS
WITH (SELECT (groupArray(app_id), groupArray(brand)) FROM account_brand) AS brand_of
SELECT
    day, app_id, transform(toString(app_id), brand_of.1, brand_of.2, '') AS brand, currency, model, touch,
    associate_userid, store_id, region, orders, refunds, buyers, gross_fen, refunded_fen, net_fen
FROM
(
    SELECT
        day, app_id, currency, model, touch, associate_userid, store_id, region,
        sumIf(weight, record = 'purchase') AS orders,
        sumIf(weight, record = 'refund') AS refunds,
        uniqExactIf(fan_id, record = 'purchase') AS buyers,
        sumIf(amount_fen, record = 'purchase') AS gross_fen,
        sumIf(-amount_fen, record = 'refund') AS refunded_fen,
        sum(amount_fen) AS net_fen
    FROM order_credits
    GROUP BY day, app_id, currency, model, touch, associate_userid, store_id, region
);

CREATE OR REPLACE VIEW v_attribution_by_associate {ON_CLUSTER} AS
WITH (SELECT (groupArray(app_id), groupArray(brand)) FROM account_brand) AS brand_of
SELECT *, transform(toString(app_id), brand_of.1, brand_of.2, '') AS brand
FROM
(
    SELECT
        toStartOfMonth(day) AS month, app_id, currency, model, associate_userid, store_id, region,
        sumIf(weight, record = 'purchase') AS orders,
        uniqExactIf(fan_id, record = 'purchase') AS buyers,
        sumIf(amount_fen, record = 'purchase') AS gross_fen,
        sumIf(-amount_fen, record = 'refund') AS refunded_fen,
        sum(amount_fen) AS net_fen,
        sumIf(weight, record = 'purchase' AND touch = 'share_code') AS share_code_orders
    FROM order_credits
    WHERE associate_userid != ''
    GROUP BY month, app_id, currency, model, associate_userid, store_id, region
);

CREATE OR REPLACE VIEW v_attribution_by_push {ON_CLUSTER} AS
WITH (SELECT (groupArray(app_id), groupArray(brand)) FROM account_brand) AS brand_of
SELECT *, transform(toString(app_id), brand_of.1, brand_of.2, '') AS brand
FROM
(
    SELECT
        toStartOfMonth(day) AS month, app_id, currency, model, msgid, article_id, campaign,
        sumIf(weight, record = 'purchase') AS orders,
        uniqExactIf(fan_id, record = 'purchase') AS buyers,
        sumIf(amount_fen, record = 'purchase') AS gross_fen,
        sumIf(-amount_fen, record = 'refund') AS refunded_fen,
        sum(amount_fen) AS net_fen
    FROM order_credits
    WHERE touch = 'article'
    GROUP BY month, app_id, currency, model, msgid, article_id, campaign
);

CREATE OR REPLACE VIEW v_attribution_by_scene {ON_CLUSTER} AS
WITH (SELECT (groupArray(app_id), groupArray(brand)) FROM account_brand) AS brand_of
SELECT *, transform(toString(app_id), brand_of.1, brand_of.2, '') AS brand
FROM
(
    SELECT
        toStartOfMonth(day) AS month, app_id, currency, model, scene, qr_channel,
        sumIf(weight, record = 'purchase') AS orders,
        uniqExactIf(fan_id, record = 'purchase') AS buyers,
        sumIf(amount_fen, record = 'purchase') AS gross_fen,
        sumIf(-amount_fen, record = 'refund') AS refunded_fen,
        sum(amount_fen) AS net_fen
    FROM order_credits
    WHERE touch = 'qr_scan'
    GROUP BY month, app_id, currency, model, scene, qr_channel
);

CREATE OR REPLACE VIEW v_orders_daily {ON_CLUSTER} AS
WITH (SELECT (groupArray(app_id), groupArray(brand)) FROM account_brand) AS brand_of
SELECT
    day, app_id, transform(toString(app_id), brand_of.1, brand_of.2, '') AS brand, store_id, region,
    channel, currency, purchases, refunds, buyers, items, gross_fen, refunded_fen, net_fen, basket_fen
FROM
(
    SELECT
        day, app_id, store_id, region, channel, currency,
        countIf(record = 'purchase') AS purchases,
        countIf(record = 'refund') AS refunds,
        uniqExactIf(fan_id, record = 'purchase') AS buyers,
        sumIf(items, record = 'purchase') AS items,
        sumIf(amount_fen, record = 'purchase') AS gross_fen,
        sumIf(amount_fen, record = 'refund') AS refunded_fen,
        gross_fen - refunded_fen AS net_fen,
        if(purchases = 0, NULL, gross_fen / purchases) AS basket_fen
    FROM (
        SELECT app_id, 'purchase' AS record, fan_id, toDate(purchase_time) AS day,
               store_id, region, channel, currency, items, amount_fen
        FROM order_purchases
        UNION ALL
        SELECT app_id, 'refund' AS record, fan_id, toDate(event_time) AS day,
               store_id, region, channel, currency, 0 AS items, amount_fen
        FROM orders{ALL}
        WHERE kind = 'refund'
    )
    GROUP BY day, app_id, store_id, region, channel, currency
);

CREATE OR REPLACE VIEW v_social_funnel_monthly {ON_CLUSTER} AS
WITH (SELECT (groupArray(app_id), groupArray(brand)) FROM account_brand) AS brand_of
SELECT *, transform(toString(app_id), brand_of.1, brand_of.2, '') AS brand
FROM
(
    WITH
        buyers AS (
            SELECT app_id, toStartOfMonth(purchase_time) AS month, store_id, fan_id,
                   count() AS purchases, sum(amount_fen) AS spent_fen
            FROM order_purchases
            GROUP BY app_id, month, store_id, fan_id
        ),
        contacts AS (
            SELECT app_id, fan_id, toString(associate_userid) AS associate_userid
            FROM fan_profiles{ALL} FINAL
            WHERE is_deleted = 0 AND associate_userid != ''
        ),
        activity AS (
            SELECT app_id, month, fan_id,
                   sum(menu_clicks + qr_scans + chat_messages + article_reads) AS interactions
            FROM fan_activity_monthly{ALL}
            GROUP BY app_id, month, fan_id
        ),
        fans AS (
            SELECT b.app_id AS app_id, b.month AS month, b.store_id AS store_id,
                   c.associate_userid AS associate_userid,
                   c.associate_userid != '' AS is_added,
                   is_added AND a.interactions > 4 AS is_active,
                   is_active AND b.purchases >= 2 AS is_repurchasing,
                   b.purchases AS fan_purchases, b.spent_fen AS fan_spent_fen
            FROM buyers AS b
            LEFT JOIN contacts AS c ON b.app_id = c.app_id AND b.fan_id = c.fan_id
            LEFT JOIN activity AS a ON b.app_id = a.app_id AND b.month = a.month AND b.fan_id = a.fan_id
        ),
        by_associate AS (
            SELECT app_id, month, store_id, associate_userid,
                   count() AS n, countIf(is_added) AS added, countIf(is_active) AS active,
                   countIf(is_repurchasing) AS repurchasing, sum(fan_purchases) AS purchases,
                   sum(fan_spent_fen) AS spent_fen, sumIf(fan_purchases, is_repurchasing) AS repurchases
            FROM fans
            GROUP BY app_id, month, store_id, associate_userid
        ),
        rows AS (
            SELECT app_id, month, store_id, 'store' AS level, '' AS associate_userid,
                   sum(n) AS buyers, sum(added) AS added, sum(active) AS active,
                   sum(repurchasing) AS repurchasing, sum(purchases) AS purchases,
                   sum(spent_fen) AS spent_fen, sum(repurchases) AS repurchases
            FROM by_associate
            GROUP BY app_id, month, store_id
            UNION ALL
            SELECT app_id, month, store_id, 'associate' AS level, associate_userid,
                   buyers, added, active, repurchasing, purchases, spent_fen, repurchases
            FROM (
                SELECT *, sum(n) OVER (PARTITION BY app_id, month, store_id) AS buyers
                FROM by_associate
            )
            WHERE associate_userid != ''
        )
    SELECT
        month, app_id, store_id, level, associate_userid, buyers, added, active, repurchasing,
        if(buyers = 0, NULL, added / buyers) AS add_rate,
        if(added = 0, NULL, active / added) AS active_rate,
        if(active = 0, NULL, repurchasing / active) AS repurchase_rate,
        purchases, spent_fen,
        if(repurchasing = 0, NULL, repurchases / repurchasing) AS repurchase_frequency,
        if(purchases = 0, NULL, spent_fen / purchases) AS basket_fen
    FROM rows
);

CREATE OR REPLACE VIEW v_social_funnel {ON_CLUSTER} AS
WITH (SELECT (groupArray(app_id), groupArray(brand)) FROM account_brand) AS brand_of
SELECT *, transform(toString(app_id), brand_of.1, brand_of.2, '') AS brand
FROM
(
    WITH
        buyers AS (
            SELECT app_id, store_id, fan_id, count() AS purchases, sum(amount_fen) AS spent_fen
            FROM order_purchases
            WHERE toStartOfMonth(purchase_time) BETWEEN {from_month:Date} AND {to_month:Date}
            GROUP BY app_id, store_id, fan_id
        ),
        contacts AS (
            SELECT app_id, fan_id, toString(associate_userid) AS associate_userid
            FROM fan_profiles{ALL} FINAL
            WHERE is_deleted = 0 AND associate_userid != ''
        ),
        activity AS (
            SELECT app_id, fan_id,
                   sum(menu_clicks + qr_scans + chat_messages + article_reads) AS interactions
            FROM fan_activity_monthly{ALL}
            WHERE month BETWEEN {from_month:Date} AND {to_month:Date}
            GROUP BY app_id, fan_id
        ),
        fans AS (
            SELECT b.app_id AS app_id, b.store_id AS store_id,
                   c.associate_userid AS associate_userid,
                   c.associate_userid != '' AS is_added,
                   is_added AND a.interactions > {active_over:UInt32} AS is_active,
                   is_active AND b.purchases >= 2 AS is_repurchasing,
                   b.purchases AS fan_purchases, b.spent_fen AS fan_spent_fen
            FROM buyers AS b
            LEFT JOIN contacts AS c ON b.app_id = c.app_id AND b.fan_id = c.fan_id
            LEFT JOIN activity AS a ON b.app_id = a.app_id AND b.fan_id = a.fan_id
        ),
        by_associate AS (
            SELECT app_id, store_id, associate_userid,
                   count() AS n, countIf(is_added) AS added, countIf(is_active) AS active,
                   countIf(is_repurchasing) AS repurchasing, sum(fan_purchases) AS purchases,
                   sum(fan_spent_fen) AS spent_fen, sumIf(fan_purchases, is_repurchasing) AS repurchases
            FROM fans
            GROUP BY app_id, store_id, associate_userid
        ),
        rows AS (
            SELECT app_id, store_id, 'store' AS level, '' AS associate_userid,
                   sum(n) AS buyers, sum(added) AS added, sum(active) AS active,
                   sum(repurchasing) AS repurchasing, sum(purchases) AS purchases,
                   sum(spent_fen) AS spent_fen, sum(repurchases) AS repurchases
            FROM by_associate
            GROUP BY app_id, store_id
            UNION ALL
            SELECT app_id, store_id, 'associate' AS level, associate_userid,
                   buyers, added, active, repurchasing, purchases, spent_fen, repurchases
            FROM (
                SELECT *, sum(n) OVER (PARTITION BY app_id, store_id) AS buyers
                FROM by_associate
            )
            WHERE associate_userid != ''
        )
    SELECT
        app_id, store_id, level, associate_userid, buyers, added, active, repurchasing,
        if(buyers = 0, NULL, added / buyers) AS add_rate,
        if(added = 0, NULL, active / added) AS active_rate,
        if(active = 0, NULL, repurchasing / active) AS repurchase_rate,
        purchases, spent_fen,
        if(repurchasing = 0, NULL, repurchases / repurchasing) AS repurchase_frequency,
        if(purchases = 0, NULL, spent_fen / purchases) AS basket_fen
    FROM rows
);

CREATE OR REPLACE VIEW v_dead_letters_daily {ON_CLUSTER} AS
SELECT *, '' AS brand
FROM
(
    SELECT
        toDate(first_seen, 'Asia/Shanghai') AS day,
        service,
        source_topic,
        reason,
        count() AS letters,
        sum(payload_length) AS payload_bytes
    FROM dead_letters FINAL
    GROUP BY day, service, source_topic, reason
);
