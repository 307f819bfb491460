-- Settled conversions (issue 16, item 6): the touch join of 0007 ran on every read of a
-- conversion view (1.1-1.6 s for a month of 2M touches and 100k orders). A purchase's
-- credits depend only on the purchase records of its order and the fan's touches up to its
-- purchase time, and those have all arrived once the purchase is older than the ingest
-- lateness bound (validation.max_lateness, plus a margin for consumer lag). `wxpulse
-- conversions settle` stores such purchases with their credits, computed once, in
-- order_purchases_settled; the views read the settled purchases and compute the join only
-- for the purchases not settled (the open days). Same figures, before and after a settle.
--
-- A settle replaces whole month partitions (ALTER ... REPLACE PARTITION from the staging
-- table order_purchases_settling), so re-running it for the same months gives the same
-- rows, never twice as many; conversion_settles records each completed run's cutoff.
-- A purchase is open when its order has no settled row and its first record is at or after
-- the last cutoff: the anti-join keeps a partly finished settle (some months replaced,
-- no cutoff recorded yet) exact, the cutoff keeps the open scan to the last days.
-- Refunds are never settled (few): each reads its purchase's credits, settled or open.

CREATE TABLE IF NOT EXISTS order_credits_settled {ON_CLUSTER}
(
    app_id               LowCardinality(String),
    brand                LowCardinality(String),
    order_id             String CODEC(ZSTD(3)),
    fan_id               UInt64,
    purchase_time        DateTime64(3, 'Asia/Shanghai') COMMENT 'event time of the order''s first purchase record',
    event_id             UUID COMMENT 'of that record',
    amount_fen           Int64 COMMENT 'of the purchase (the credit''s share is amount_fen * weight)',
    currency             LowCardinality(String),
    channel              LowCardinality(String),
    order_store_id       LowCardinality(String) COMMENT 'the purchase''s store_id',
    order_region         LowCardinality(String) COMMENT 'the purchase''s region',
    share_code           LowCardinality(String),
    share_store_id       LowCardinality(String),
    share_region         LowCardinality(String),
    items                Int32,
    attribution_window_s UInt32,
    credit_no            UInt16 COMMENT 'position of the credit in order_purchase_credits.credits; the purchase''s columns are read from credit 1',
    model                LowCardinality(String),
    touch                LowCardinality(String),
    touch_time           Nullable(DateTime64(3, 'Asia/Shanghai')),
    touch_event_id       String CODEC(ZSTD(3)),
    associate_userid     LowCardinality(String),
    store_id             LowCardinality(String),
    region               LowCardinality(String),
    msgid                Int64,
    article_id           String CODEC(ZSTD(3)),
    campaign             LowCardinality(String),
    scene                String CODEC(ZSTD(3)),
    qr_channel           LowCardinality(String),
    weight               Float64,
    settled_until        DateTime64(3, 'Asia/Shanghai') COMMENT 'cutoff of the settle that wrote the row',
    settled_at           DateTime DEFAULT now()
)
ENGINE = MergeTree
PARTITION BY toYYYYMM(purchase_time)
ORDER BY (app_id, order_id, credit_no)
TTL toDateTime(purchase_time) + INTERVAL 800 DAY;

-- Where a settle builds a month before it replaces the settled month with it.
CREATE TABLE IF NOT EXISTS order_credits_settling {ON_CLUSTER} AS order_credits_settled;

-- One row per completed settle: every purchase whose order's first record is before
-- settled_until is in order_credits_settled.
CREATE TABLE IF NOT EXISTS conversion_settles {ON_CLUSTER}
(
    settled_until DateTime64(3, 'Asia/Shanghai'),
    from_month    Date COMMENT 'first month the settle replaced',
    purchases     UInt64 COMMENT 'settled purchases in the months it replaced',
    settled_at    DateTime DEFAULT now()
)
ENGINE = MergeTree
ORDER BY settled_until;

-- Internal: what a settle stores for the orders whose first purchase record is in
-- [from_ms, to_ms) (ms since the epoch): the order_purchases row and the credits of
-- order_purchase_credits (0007), the same expressions on the same inputs, one row per credit.
CREATE OR REPLACE VIEW order_credits_to_settle {ON_CLUSTER} AS
WITH
    purchases AS (
        SELECT app_id, brand, order_id, fan_id, event_time AS purchase_time, event_id, amount_fen,
               currency, channel, store_id, region, share_code, share_store_id, share_region, items,
               attribution_window_s
        FROM orders{ALL}
        WHERE kind = 'purchase'
          AND event_time < fromUnixTimestamp64Milli({to_ms:Int64}, 'Asia/Shanghai')
          AND (app_id, order_id) GLOBAL IN (
              SELECT app_id, order_id FROM orders{ALL}
              WHERE kind = 'purchase'
                AND event_time >= fromUnixTimestamp64Milli({from_ms:Int64}, 'Asia/Shanghai')
                AND event_time < fromUnixTimestamp64Milli({to_ms:Int64}, 'Asia/Shanghai'))
        ORDER BY app_id, order_id, event_time, toString(event_id)
        LIMIT 1 BY app_id, order_id
    ),
    settling AS (
        SELECT * FROM purchases
        WHERE purchase_time >= fromUnixTimestamp64Milli({from_ms:Int64}, 'Asia/Shanghai')
    ),
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
        GLOBAL INNER JOIN settling AS p ON t.app_id = p.app_id AND t.fan_id = p.fan_id
        WHERE p.share_code = ''
          AND t.touch_time < fromUnixTimestamp64Milli({to_ms:Int64}, 'Asia/Shanghai')
          AND t.touch_time >= fromUnixTimestamp64Milli({from_ms:Int64}, 'Asia/Shanghai')
                              - toIntervalSecond((SELECT max(attribution_window_s) FROM settling))
          AND t.touch_time <= p.purchase_time
          AND t.touch_time >= p.purchase_time - toIntervalSecond(p.attribution_window_s)
        GROUP BY app_id, order_id
    ),
    credited AS (
SELECT
    p.app_id AS app_id, p.brand AS brand, p.order_id AS order_id, p.fan_id AS fan_id,
    p.purchase_time AS purchase_time, p.event_id AS event_id, p.amount_fen AS amount_fen,
    p.currency AS currency, p.channel AS channel, p.store_id AS store_id, p.region AS region,
    p.share_code AS share_code, p.share_store_id AS share_store_id,
    p.share_region AS share_region, p.items AS items,
    p.attribution_window_s AS attribution_window_s,
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
FROM settling AS p
LEFT JOIN candidates AS c ON p.app_id = c.app_id AND p.order_id = c.order_id
    )
SELECT
    p.app_id AS app_id, p.brand AS brand, p.order_id AS order_id, p.fan_id AS fan_id,
    p.purchase_time AS purchase_time, p.event_id AS event_id, p.amount_fen AS amount_fen,
    p.currency AS currency, p.channel AS channel, p.store_id AS order_store_id,
    p.region AS order_region, p.share_code AS share_code, p.share_store_id AS share_store_id,
    p.share_region AS share_region, p.items AS items,
    p.attribution_window_s AS attribution_window_s, toUInt16(credit_no) AS credit_no,
    credit.1 AS model, credit.2.1 AS touch, credit.2.2 AS touch_time,
    credit.2.3 AS touch_event_id, credit.2.4 AS associate_userid, credit.2.5 AS store_id,
    credit.2.6 AS region, credit.2.7 AS msgid, credit.2.8 AS article_id, credit.2.9 AS campaign,
    credit.2.10 AS scene, credit.2.11 AS qr_channel, credit.3 AS weight
FROM credited AS p
ARRAY JOIN p.credits AS credit, arrayEnumerate(p.credits) AS credit_no;

-- Internal: the purchases not settled, each once (the first record, as in 0007): orders
-- with no settled row whose first purchase record is at or after the last settle's cutoff.
CREATE OR REPLACE VIEW order_purchases_open {ON_CLUSTER} AS
SELECT app_id, brand, order_id, fan_id, event_time AS purchase_time, event_id, amount_fen,
       currency, channel, store_id, region, share_code, share_store_id, share_region, items,
       attribution_window_s
FROM orders{ALL}
WHERE kind = 'purchase'
  AND event_time >= (SELECT max(settled_until) FROM conversion_settles)
  AND (app_id, order_id) GLOBAL NOT IN (
      SELECT app_id, order_id FROM order_credits_settled
      WHERE credit_no = 1 AND (app_id, order_id) IN (
          SELECT app_id, order_id FROM orders{ALL}
          WHERE kind = 'purchase'
            AND event_time >= (SELECT max(settled_until) FROM conversion_settles)))
ORDER BY app_id, order_id, event_time, toString(event_id)
LIMIT 1 BY app_id, order_id;

-- Internal: the open purchases with their credits, as order_purchase_credits of 0007
-- computes them (touches read from the earliest window start of an open purchase on).
CREATE OR REPLACE VIEW order_purchase_credits_open {ON_CLUSTER} AS
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
        GLOBAL INNER JOIN order_purchases_open AS p ON t.app_id = p.app_id AND t.fan_id = p.fan_id
        WHERE p.share_code = ''
          AND t.touch_time >= (
              SELECT ifNull(minOrNull(event_time - toIntervalSecond(attribution_window_s)), now64(3))
              FROM orders{ALL}
              WHERE kind = 'purchase'
                AND event_time >= (SELECT max(settled_until) FROM conversion_settles))
          AND t.touch_time <= p.purchase_time
          AND t.touch_time >= p.purchase_time - toIntervalSecond(p.attribution_window_s)
        GROUP BY app_id, order_id
    )
SELECT
    p.app_id AS app_id, p.brand AS brand, p.order_id AS order_id, p.fan_id AS fan_id,
    p.purchase_time AS purchase_time, p.amount_fen AS amount_fen, p.currency AS currency,
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
FROM order_purchases_open AS p
LEFT JOIN candidates AS c ON p.app_id = c.app_id AND p.order_id = c.order_id;

-- Each purchase once: settled, then open. Same columns as in 0007.
CREATE OR REPLACE VIEW order_purchases {ON_CLUSTER} AS
SELECT s.app_id AS app_id, s.brand AS brand, s.order_id AS order_id, s.fan_id AS fan_id,
       s.purchase_time AS purchase_time, s.event_id AS event_id, s.amount_fen AS amount_fen,
       s.currency AS currency, s.channel AS channel, s.order_store_id AS store_id,
       s.order_region AS region, s.share_code AS share_code, s.share_store_id AS share_store_id,
       s.share_region AS share_region, s.items AS items,
       s.attribution_window_s AS attribution_window_s
FROM order_credits_settled AS s
WHERE s.credit_no = 1
UNION ALL
SELECT app_id, brand, order_id, fan_id, purchase_time, event_id, amount_fen, currency, channel,
       store_id, region, share_code, share_store_id, share_region, items, attribution_window_s
FROM order_purchases_open;

-- Every purchase with its credits: settled, then open. Same columns as in 0007.
CREATE OR REPLACE VIEW order_purchase_credits {ON_CLUSTER} AS
SELECT app_id, order_id, any(purchase_time) AS purchase_time,
       CAST(any(channel), 'LowCardinality(String)') AS channel,
       CAST(any(order_store_id), 'LowCardinality(String)') AS order_store_id,
       arrayMap(x -> x.2, arraySort(groupArray((credit_no, (toString(model), (toString(touch),
           touch_time, touch_event_id, toString(associate_userid), toString(store_id),
           toString(region), msgid, article_id, toString(campaign), scene, toString(qr_channel)),
           weight))))) AS credits
FROM order_credits_settled
GROUP BY app_id, order_id
UNION ALL
SELECT app_id, order_id, purchase_time, CAST(channel, 'LowCardinality(String)') AS channel,
       CAST(order_store_id, 'LowCardinality(String)') AS order_store_id, credits
FROM order_purchase_credits_open;

-- Every order record with its credit in each model, as in 0007 (same columns, same rows):
-- a settled purchase's rows as stored, an open purchase's from its credits, and a refund
-- takes its purchase's credits, settled or open, or is 'unmatched_refund'.
CREATE OR REPLACE VIEW order_credits {ON_CLUSTER} AS
WITH
    flat AS (
        -- settled purchases
        SELECT s.app_id AS app_id, s.brand AS brand, 'purchase' AS record, s.order_id AS order_id,
               s.fan_id AS fan_id, s.purchase_time AS record_time,
               CAST(s.purchase_time, 'Nullable(DateTime64(3, \'Asia/Shanghai\'))') AS purchase_time,
               toString(s.currency) AS currency, toString(s.channel) AS channel,
               toString(s.order_store_id) AS order_store_id,
               toString(s.model) AS model, toString(s.touch) AS touch, s.touch_time AS touch_time,
               s.touch_event_id AS touch_event_id,
               toString(s.associate_userid) AS associate_userid, toString(s.store_id) AS store_id,
               toString(s.region) AS region, s.msgid AS msgid, s.article_id AS article_id,
               toString(s.campaign) AS campaign, s.scene AS scene,
               toString(s.qr_channel) AS qr_channel, s.weight AS weight,
               s.amount_fen * s.weight AS amount_fen
        FROM order_credits_settled AS s
        UNION ALL
        -- open purchases, and every refund: one row per credit of its purchase (a settled
        -- purchase's rows, or an open one's credits), or 'unmatched_refund'
        SELECT
            o.app_id AS app_id, o.brand AS brand, o.record AS record, o.order_id AS order_id,
            o.fan_id AS fan_id, o.record_time AS record_time, o.purchase_time AS purchase_time,
            o.currency AS currency, o.channel AS channel, o.order_store_id AS order_store_id,
            credit.1 AS model, credit.2.1 AS touch, credit.2.2 AS touch_time,
            credit.2.3 AS touch_event_id, credit.2.4 AS associate_userid, credit.2.5 AS store_id,
            credit.2.6 AS region, credit.2.7 AS msgid, credit.2.8 AS article_id,
            credit.2.9 AS campaign, credit.2.10 AS scene, credit.2.11 AS qr_channel,
            credit.3 AS weight,
            if(o.record = 'refund', -1, 1) * o.amount_fen * weight AS amount_fen
        FROM (
            SELECT r.app_id AS app_id, r.brand AS brand, r.record AS record, r.order_id AS order_id,
                   r.fan_id AS fan_id, r.record_time AS record_time,
                   multiIf(r.credit_no > 0, r.settled_purchase_time, empty(c.credits), NULL,
                           c.purchase_time) AS purchase_time,
                   r.currency AS currency,
                   multiIf(r.credit_no > 0, r.settled_channel, empty(c.credits), r.channel,
                           toString(c.channel)) AS channel,
                   multiIf(r.credit_no > 0, r.settled_store_id, empty(c.credits), r.store_id,
                           toString(c.order_store_id)) AS order_store_id,
                   r.amount_fen AS amount_fen,
                   multiIf(
                       r.credit_no > 0,
                       [r.settled_credit],
                       empty(c.credits),
                       arrayMap(m -> (m, ('unmatched_refund', CAST(NULL, 'Nullable(DateTime64(3, \'Asia/Shanghai\'))'), '',
                                          '', '', '', toInt64(0), '', '', '', ''), 1.0),
                                ['last_touch', 'first_touch', 'linear']),
                       c.credits) AS credits
            FROM (
                -- the open purchases: their credits are the join's
                SELECT app_id, brand, 'purchase' AS record, order_id, fan_id,
                       purchase_time AS record_time, toString(currency) AS currency,
                       toString(channel) AS channel, toString(store_id) AS store_id, amount_fen,
                       toUInt16(0) AS credit_no,
                       CAST(NULL, 'Nullable(DateTime64(3, \'Asia/Shanghai\'))') AS settled_purchase_time,
                       '' AS settled_channel, '' AS settled_store_id,
                       ('', ('', CAST(NULL, 'Nullable(DateTime64(3, \'Asia/Shanghai\'))'), '', '', '', '',
                             toInt64(0), '', '', '', ''), 0.0) AS settled_credit
                FROM order_purchases_open
                UNION ALL
                -- every refund, with each settled credit of its purchase if settled
                SELECT f.app_id AS app_id, f.brand AS brand, 'refund' AS record,
                       f.order_id AS order_id, f.fan_id AS fan_id, f.event_time AS record_time,
                       toString(f.currency) AS currency, toString(f.channel) AS channel,
                       toString(f.store_id) AS store_id, f.amount_fen AS amount_fen,
                       s.credit_no AS credit_no,
                       CAST(s.purchase_time, 'Nullable(DateTime64(3, \'Asia/Shanghai\'))') AS settled_purchase_time,
                       toString(s.channel) AS settled_channel,
                       toString(s.order_store_id) AS settled_store_id,
                       (toString(s.model), (toString(s.touch), s.touch_time, s.touch_event_id,
                         toString(s.associate_userid), toString(s.store_id), toString(s.region),
                         s.msgid, s.article_id, toString(s.campaign), s.scene,
                         toString(s.qr_channel)), s.weight) AS settled_credit
                FROM orders{ALL} AS f
                GLOBAL LEFT JOIN (
                    SELECT * FROM order_credits_settled
                    WHERE (app_id, order_id) GLOBAL IN (
                        SELECT app_id, order_id FROM orders{ALL} WHERE kind = 'refund')
                ) AS s ON f.app_id = s.app_id AND f.order_id = s.order_id
                WHERE f.kind = 'refund'
            ) AS r
            -- the touch join, once, for the open purchases
            GLOBAL LEFT JOIN order_purchase_credits_open AS c
                ON r.app_id = c.app_id AND r.order_id = c.order_id
        ) AS o
        ARRAY JOIN o.credits AS credit
    )
SELECT
    app_id, brand, record, order_id, fan_id, toDate(record_time) AS day, record_time,
    purchase_time, currency, channel, order_store_id,
    (model, (touch, touch_time, touch_event_id, associate_userid, store_id, region, msgid,
             article_id, campaign, scene, qr_channel), weight) AS credit,
    model, touch, touch_time, associate_userid, store_id, region, msgid, article_id, campaign,
    scene, qr_channel, weight, amount_fen
FROM flat;
