-- Conversions (issue 6): orders, the touches that may have earned them, attribution by
-- three models, and the social-selling funnel of seed 003. VIEWS.md documents every view.
--
-- Attribution is a join at query time, not state in a consumer: the touches arrive on four
-- topics and the orders on a fifth, in any order (an order can be ingested before the chat
-- that preceded it). Joining the effectively-once raw tables when a view is read is exact
-- whichever arrived first, and there is no attribution state to lose on a restart or a
-- rebalance. Each order row carries the window in force when it was ingested
-- (attribution_window_s, the orders service's [attribution] window), so changing the
-- window never rewrites past orders.

CREATE TABLE IF NOT EXISTS orders {ON_CLUSTER}
(
    event_id             UUID,
    app_id               LowCardinality(String),
    brand                LowCardinality(String) DEFAULT 'unknown' COMMENT 'brand of the account (dim account)',
    fan_id               UInt64 COMMENT 'HMAC-SHA256(openid) truncated to 64 bits; never the raw openid',
    union_id             UInt64 COMMENT 'HMAC-SHA256(unionid), 0 when the buyer has none',
    event_time           DateTime64(3, 'Asia/Shanghai') CODEC(Delta, ZSTD(1)) COMMENT 'order_time: when the purchase or refund was placed',
    server_time          DateTime64(3, 'Asia/Shanghai') CODEC(Delta, ZSTD(1)),
    relationship         LowCardinality(String) DEFAULT 'unknown' COMMENT 'prospect, customer, vip, unknown (dim fan_profile, at order time)',
    lifecycle            LowCardinality(String) DEFAULT 'unknown',
    month_interactions   UInt32 DEFAULT 0 COMMENT 'the buyer''s order records (purchases and refunds) this calendar month so far, this one included',
    order_id             String CODEC(ZSTD(3)) COMMENT 'brand order id; a refund carries the id of the purchase it refunds',
    kind                 LowCardinality(String) COMMENT 'purchase or refund',
    amount_fen           Int64 COMMENT 'minor units of currency (fen for CNY), positive for both kinds',
    currency             LowCardinality(String) COMMENT 'ISO 4217',
    channel              LowCardinality(String) COMMENT 'mini_program, store_pos, other',
    store_id             LowCardinality(String) COMMENT 'store of a POS order, or the store a mall order is credited to; empty when none',
    region               LowCardinality(String) COMMENT 'region of store_id (dim store); unknown when the store is not in it, empty when no store',
    share_code           LowCardinality(String) COMMENT 'userid of the associate whose share link the order came through; empty when none. Takes precedence over touches',
    share_store_id       LowCardinality(String) COMMENT 'store of the share-code associate (dim associate); unknown when not in it',
    share_region         LowCardinality(String) COMMENT 'region of share_store_id (dim store)',
    items                Int32 COMMENT 'line items',
    attribution_window_s UInt32 COMMENT 'touches up to this many seconds before the order qualify (service config when ingested)',
    kafka_topic          LowCardinality(String),
    kafka_partition      Int32,
    kafka_offset         Int64 CODEC(Delta, ZSTD(1)),
    ingested_at          DateTime64(3, 'Asia/Shanghai') DEFAULT now64(3) CODEC(Delta, ZSTD(1)),
    INDEX idx_order_id order_id TYPE bloom_filter GRANULARITY 4,
    INDEX idx_server_time server_time TYPE minmax GRANULARITY 4,
    INDEX idx_partition kafka_partition TYPE set(256) GRANULARITY 4
)
ENGINE = MergeTree
PARTITION BY toYYYYMM(event_time)
ORDER BY (app_id, toStartOfHour(event_time), fan_id, event_id)
TTL toDateTime(event_time) + INTERVAL 800 DAY
SETTINGS non_replicated_deduplication_window = 10000;

-- Resume point and segmentation state of the orders service, as for every raw table.
CREATE MATERIALIZED VIEW IF NOT EXISTS mv_orders_watermarks {ON_CLUSTER} TO ingest_watermarks AS
SELECT 'orders' AS table_name, kafka_topic, kafka_partition,
       max(kafka_offset) AS max_offset, max(server_time) AS max_server_time
FROM orders GROUP BY kafka_topic, kafka_partition;

CREATE MATERIALIZED VIEW IF NOT EXISTS mv_orders_fan_months {ON_CLUSTER} TO fan_stream_months AS
SELECT kafka_topic, kafka_partition, fan_id, toYYYYMM(event_time) AS month,
       count() AS interactions, max(event_time) AS last_event_time
FROM orders GROUP BY kafka_topic, kafka_partition, fan_id, month;

-- Touches: the interactions that can earn credit for a later order, one row each, ordered
-- by fan so the attribution join reads a fan's touches together. Fed by the same INSERTs
-- as the raw rows (effectively once, like them).
CREATE TABLE IF NOT EXISTS fan_touches {ON_CLUSTER}
(
    app_id           LowCardinality(String),
    fan_id           UInt64,
    touch_time       DateTime64(3, 'Asia/Shanghai') COMMENT 'event time of the interaction',
    event_id         UUID COMMENT 'of the interaction; breaks ties between touches at the same ms',
    touch            LowCardinality(String) COMMENT 'associate_chat, article, qr_scan, menu_ecommerce',
    associate_userid LowCardinality(String) COMMENT 'associate_chat and qr_scan: the associate; empty otherwise',
    store_id         LowCardinality(String) COMMENT 'associate_chat and qr_scan: the store; empty otherwise',
    region           LowCardinality(String),
    msgid            Int64 COMMENT 'article: the push; 0 otherwise',
    article_id       String CODEC(ZSTD(3)) COMMENT 'article: the article; empty otherwise',
    campaign         LowCardinality(String) COMMENT 'article and qr_scan: the campaign',
    scene            String CODEC(ZSTD(3)) COMMENT 'qr_scan: the scene; empty otherwise',
    qr_channel       LowCardinality(String) COMMENT 'qr_scan: the QR channel; empty otherwise'
)
ENGINE = MergeTree
PARTITION BY toYYYYMM(touch_time)
ORDER BY (app_id, fan_id, touch_time, event_id)
TTL toDateTime(touch_time) + INTERVAL 400 DAY
SETTINGS non_replicated_deduplication_window = 10000;

-- Associate chat: a WeCom 1:1 message between the fan and an associate, either direction.
CREATE MATERIALIZED VIEW IF NOT EXISTS mv_chat_messages_touches {ON_CLUSTER} TO fan_touches AS
SELECT app_id, fan_id, event_time AS touch_time, event_id, 'associate_chat' AS touch,
       associate_userid, store_id, region, 0 AS msgid, '' AS article_id, '' AS campaign,
       '' AS scene, '' AS qr_channel
FROM chat_messages
WHERE conversation = 'WECOM_PRIVATE' AND associate_userid != '';

-- Article: read from a push, or any read whose call to action was clicked.
CREATE MATERIALIZED VIEW IF NOT EXISTS mv_article_reads_touches {ON_CLUSTER} TO fan_touches AS
SELECT app_id, fan_id, event_time AS touch_time, event_id, 'article' AS touch,
       '' AS associate_userid, '' AS store_id, '' AS region, msgid, article_id, campaign,
       '' AS scene, '' AS qr_channel
FROM article_reads
WHERE source = 'PUSH' OR cta_clicked;

-- QR scan: every scan, following or not; the code's associate and store get the credit.
CREATE MATERIALIZED VIEW IF NOT EXISTS mv_qr_scans_touches {ON_CLUSTER} TO fan_touches AS
SELECT app_id, fan_id, event_time AS touch_time, event_id, 'qr_scan' AS touch,
       associate_userid, store_id, region, 0 AS msgid, '' AS article_id, campaign,
       scene, channel AS qr_channel
FROM qr_scans;

-- Menu: a tap on an e-commerce button (the mall, a product page).
CREATE MATERIALIZED VIEW IF NOT EXISTS mv_menu_clicks_touches {ON_CLUSTER} TO fan_touches AS
SELECT app_id, fan_id, event_time AS touch_time, event_id, 'menu_ecommerce' AS touch,
       '' AS associate_userid, '' AS store_id, '' AS region, 0 AS msgid, '' AS article_id,
       '' AS campaign, '' AS scene, '' AS qr_channel
FROM menu_clicks
WHERE category = 'ecommerce';

-- Internal: each purchase once. An upstream that sends a purchase twice under two
-- event_ids would otherwise double it; the first (by order time, then event_id) counts.
CREATE OR REPLACE VIEW order_purchases {ON_CLUSTER} AS
SELECT app_id, brand, order_id, fan_id, event_time AS purchase_time, event_id, amount_fen,
       currency, channel, store_id, region, share_code, share_store_id, share_region, items,
       attribution_window_s
FROM orders{ALL}
WHERE kind = 'purchase'
ORDER BY app_id, order_id, event_time, toString(event_id)
LIMIT 1 BY app_id, order_id;

-- Internal: every purchase with its credits in each model, as one array per purchase, so
-- the join with the touches runs once for purchases and refunds alike. Candidates are the
-- fan's touches in [purchase_time - window, purchase_time]; a share code overrides them.
-- GLOBAL: on a cluster the purchases are computed once and sent to every shard.
CREATE OR REPLACE VIEW order_purchase_credits {ON_CLUSTER} AS
WITH
    candidates AS (
        SELECT p.app_id AS app_id, p.order_id AS order_id,
               arraySort(c -> (c.2, c.3), groupArray((
                   toString(t.touch),
                   CAST(t.touch_time, 'Nullable(DateTime64(3, \'Asia/Shanghai\'))'),
                   toString(t.event_id),
                   toString(t.associate_userid), toString(t.store_id), toString(t.region),
                   t.msgid, t.article_id, toString(t.campaign), t.scene,
                   toString(t.qr_channel)))) AS touches
        FROM fan_touches{ALL} AS t
        GLOBAL INNER JOIN order_purchases AS p ON t.app_id = p.app_id AND t.fan_id = p.fan_id
        WHERE p.share_code = ''
          AND t.touch_time <= p.purchase_time
          AND t.touch_time >= p.purchase_time - toIntervalSecond(p.attribution_window_s)
        GROUP BY app_id, order_id
    )
SELECT
    p.app_id AS app_id, p.order_id AS order_id, p.purchase_time AS purchase_time,
    p.channel AS channel, p.store_id AS order_store_id,
    multiIf(
        p.share_code != '',
        arrayMap(m -> (m, ('share_code', CAST(NULL, 'Nullable(DateTime64(3, \'Asia/Shanghai\'))'), '',
                           toString(p.share_code), toString(p.share_store_id), toString(p.share_region),
                           toInt64(0), '', '', '', ''), 1.0),
                 ['last_touch', 'first_touch', 'linear']),
        empty(c.touches),
        arrayMap(m -> (m, ('none', CAST(NULL, 'Nullable(DateTime64(3, \'Asia/Shanghai\'))'), '',
                           '', '', '', toInt64(0), '', '', '', ''), 1.0),
                 ['last_touch', 'first_touch', 'linear']),
        arrayConcat(
            [('last_touch', c.touches[-1], 1.0), ('first_touch', c.touches[1], 1.0)],
            arrayMap(x -> ('linear', x, 1.0 / length(c.touches)), c.touches))
    ) AS credits
FROM order_purchases AS p
LEFT JOIN candidates AS c ON p.app_id = c.app_id AND p.order_id = c.order_id;

-- Internal (it has fan ids): every order record (purchase or refund) with its credit in each
-- model, the basis of every conversion view. A refund takes its purchase's credits with a
-- negative amount, on the refund's own day; a refund whose purchase is not (yet) in is
-- 'unmatched_refund'.
CREATE OR REPLACE VIEW order_credits {ON_CLUSTER} AS
SELECT
    r.app_id AS app_id, r.brand AS brand, r.record AS record, r.order_id AS order_id,
    r.fan_id AS fan_id, toDate(r.record_time) AS day, r.record_time AS record_time,
    if(empty(c.credits), NULL, c.purchase_time) AS purchase_time,
    r.currency AS currency, if(empty(c.credits), r.channel, c.channel) AS channel,
    if(empty(c.credits), r.store_id, c.order_store_id) AS order_store_id,
    arrayJoin(if(empty(c.credits),
        arrayMap(m -> (m, ('unmatched_refund', CAST(NULL, 'Nullable(DateTime64(3, \'Asia/Shanghai\'))'), '',
                           '', '', '', toInt64(0), '', '', '', ''), 1.0),
                 ['last_touch', 'first_touch', 'linear']),
        c.credits)) AS credit,
    credit.1 AS model,
    credit.2.1 AS touch,
    credit.2.2 AS touch_time,
    credit.2.4 AS associate_userid,
    credit.2.5 AS store_id,
    credit.2.6 AS region,
    credit.2.7 AS msgid,
    credit.2.8 AS article_id,
    credit.2.9 AS campaign,
    credit.2.10 AS scene,
    credit.2.11 AS qr_channel,
    credit.3 AS weight,
    if(r.record = 'refund', -1, 1) * r.amount_fen * weight AS amount_fen
FROM (
    SELECT app_id, brand, 'purchase' AS record, order_id, fan_id, purchase_time AS record_time,
           toString(currency) AS currency, toString(channel) AS channel,
           toString(store_id) AS store_id, amount_fen
    FROM order_purchases
    UNION ALL
    SELECT app_id, brand, 'refund' AS record, order_id, fan_id, event_time AS record_time,
           toString(currency) AS currency, toString(channel) AS channel,
           toString(store_id) AS store_id, amount_fen
    FROM orders{ALL}
    WHERE kind = 'refund'
) AS r
GLOBAL LEFT JOIN order_purchase_credits AS c ON r.app_id = c.app_id AND r.order_id = c.order_id;

-- Attributed orders and revenue per day, model and touch, with the credited associate,
-- store and region. orders and amounts are weighted (fractional under linear credit).
CREATE OR REPLACE VIEW v_attribution_daily {ON_CLUSTER} AS
SELECT
    day, app_id, brand, currency, model, touch, associate_userid, store_id, region,
    sumIf(weight, record = 'purchase') AS orders,
    sumIf(weight, record = 'refund') AS refunds,
    uniqExactIf(fan_id, record = 'purchase') AS buyers,
    sumIf(amount_fen, record = 'purchase') AS gross_fen,
    sumIf(-amount_fen, record = 'refund') AS refunded_fen,
    sum(amount_fen) AS net_fen
FROM order_credits
GROUP BY day, app_id, brand, currency, model, touch, associate_userid, store_id, region;

-- Revenue credited to each associate per month and model: their 1:1 chats, their QR codes
-- and their share codes.
CREATE OR REPLACE VIEW v_attribution_by_associate {ON_CLUSTER} AS
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
GROUP BY month, app_id, currency, model, associate_userid, store_id, region;

-- Revenue credited to each pushed article per month and model.
CREATE OR REPLACE VIEW v_attribution_by_push {ON_CLUSTER} AS
SELECT
    toStartOfMonth(day) AS month, app_id, currency, model, msgid, article_id, campaign,
    sumIf(weight, record = 'purchase') AS orders,
    uniqExactIf(fan_id, record = 'purchase') AS buyers,
    sumIf(amount_fen, record = 'purchase') AS gross_fen,
    sumIf(-amount_fen, record = 'refund') AS refunded_fen,
    sum(amount_fen) AS net_fen
FROM order_credits
WHERE touch = 'article'
GROUP BY month, app_id, currency, model, msgid, article_id, campaign;

-- Revenue credited to each QR scene (and its channel) per month and model.
CREATE OR REPLACE VIEW v_attribution_by_scene {ON_CLUSTER} AS
SELECT
    toStartOfMonth(day) AS month, app_id, currency, model, scene, qr_channel,
    sumIf(weight, record = 'purchase') AS orders,
    uniqExactIf(fan_id, record = 'purchase') AS buyers,
    sumIf(amount_fen, record = 'purchase') AS gross_fen,
    sumIf(-amount_fen, record = 'refund') AS refunded_fen,
    sum(amount_fen) AS net_fen
FROM order_credits
WHERE touch = 'qr_scan'
GROUP BY month, app_id, currency, model, scene, qr_channel;

-- Orders as sold, without attribution: per day, store and channel.
CREATE OR REPLACE VIEW v_orders_daily {ON_CLUSTER} AS
SELECT
    day, app_id, brand, store_id, region, channel, currency,
    countIf(record = 'purchase') AS purchases,
    countIf(record = 'refund') AS refunds,
    uniqExactIf(fan_id, record = 'purchase') AS buyers,
    sumIf(items, record = 'purchase') AS items,
    sumIf(amount_fen, record = 'purchase') AS gross_fen,
    sumIf(amount_fen, record = 'refund') AS refunded_fen,
    gross_fen - refunded_fen AS net_fen,
    if(purchases = 0, NULL, gross_fen / purchases) AS basket_fen
FROM (
    SELECT app_id, brand, 'purchase' AS record, fan_id, toDate(purchase_time) AS day,
           store_id, region, channel, currency, items, amount_fen
    FROM order_purchases
    UNION ALL
    SELECT app_id, brand, 'refund' AS record, fan_id, toDate(event_time) AS day,
           store_id, region, channel, currency, 0 AS items, amount_fen
    FROM orders{ALL}
    WHERE kind = 'refund'
)
GROUP BY day, app_id, brand, store_id, region, channel, currency;

-- The social-selling funnel of seed 003 per calendar month, store and associate: unique
-- buyers -> added on WeCom (the fan's profile names an associate) -> actively interacting
-- (> 4 interactions in the month) -> repurchasing (>= 2 purchases at the store).
-- level 'store' rows count every buyer of the store; level 'associate' rows keep the
-- store's buyers as denominator and count the associate's own contacts from 'added' on.
CREATE OR REPLACE VIEW v_social_funnel_monthly {ON_CLUSTER} AS
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
FROM rows;

-- The same funnel over any run of whole months and any activity threshold:
--   SELECT * FROM v_social_funnel(from_month = '2026-01-01', to_month = '2026-12-01', active_over = 4)
CREATE OR REPLACE VIEW v_social_funnel {ON_CLUSTER} AS
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
FROM rows;
