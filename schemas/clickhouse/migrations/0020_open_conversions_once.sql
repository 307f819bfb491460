-- Conversion views read fast with open days (issue 16, item 6). With a daily settle (0017)
-- the views still read 471-646 ms over a month of 2M touches and 100k orders, the last 8
-- days open: order_credits evaluated order_purchases_open three times per read (for the
-- open purchases' rows, for the touch join's purchases and for the purchases the join's
-- candidates are attached to), each time sorting every column of the open records, and read
-- every touch of the months the open windows reach. Same columns, same rows, same figures:
--
-- * fan_touches gets a projection ordered by touch time, so the open join reads only the
--   touches from the earliest open window on (without it, a month's partition is read
--   whole, and the previous month's too early in a month). It doubles fan_touches on disk
--   and the rows written to it per insert.
-- * order_purchases_open finds each order's first record on the key columns, then reads
--   only those records whole.
-- * order_purchases_open_credited runs the touch join once, building on the open purchases
--   (RIGHT JOIN, so a purchase without touches keeps its row), with only the touches of
--   the fans who bought since the last cutoff; order_credits reads it once, for the open
--   purchases and for their refunds, and the other refunds take their settled credits or
--   are unmatched without it.

ALTER TABLE fan_touches {ON_CLUSTER}
    ADD PROJECTION IF NOT EXISTS fan_touches_by_time (SELECT * ORDER BY touch_time);
ALTER TABLE fan_touches {ON_CLUSTER} MATERIALIZE PROJECTION fan_touches_by_time;

-- Internal: the purchases not settled, each once (the first record, as in 0007), as in 0017:
-- orders with no settled row whose first purchase record is at or after the last settle's
-- cutoff. The first record of each order is found on its key columns alone, then read whole
-- (0017 sorted every column of every open record, the larger part of this view's cost).
-- The settled rows are looked up by order_id alone (a set of strings is faster than one of
-- (app_id, order_id)); a pair it adds is still a settled order, so the same orders are open.
CREATE OR REPLACE VIEW order_purchases_open {ON_CLUSTER} AS
SELECT app_id, brand, order_id, fan_id, event_time AS purchase_time, event_id, amount_fen,
       currency, channel, store_id, region, share_code, share_store_id, share_region, items,
       attribution_window_s
FROM orders{ALL}
WHERE kind = 'purchase'
  AND event_time >= (SELECT max(settled_until) FROM conversion_settles)
  AND (app_id, order_id, event_time, event_id) GLOBAL IN (
      SELECT app_id, order_id, event_time, event_id
      FROM orders{ALL}
      WHERE kind = 'purchase'
        AND event_time >= (SELECT max(settled_until) FROM conversion_settles)
        AND (app_id, order_id) GLOBAL NOT IN (
            SELECT app_id, order_id FROM order_credits_settled
            WHERE credit_no = 1 AND order_id IN (
                SELECT order_id FROM orders{ALL}
                WHERE kind = 'purchase'
                  AND event_time >= (SELECT max(settled_until) FROM conversion_settles)))
      ORDER BY app_id, order_id, event_time, toString(event_id)
      LIMIT 1 BY app_id, order_id)
LIMIT 1 BY app_id, order_id;

-- Internal: the open purchases (order_purchases_open), each with every column and its
-- credits, from one touch join. Its touches are those from the earliest window start of an
-- open purchase on, of the fans who bought since the last cutoff (filtered where they are
-- read, on every shard); the join builds on the open purchases and keeps each of them
-- (RIGHT JOIN: a purchase without touches gets its 'none' credits), and a touch counts when
-- it lies in its purchase's window, as in order_purchase_credits (0007).
CREATE OR REPLACE VIEW order_purchases_open_credited {ON_CLUSTER} AS
SELECT
    app_id, brand, order_id, fan_id, purchase_time, event_id, amount_fen, currency, channel,
    store_id, region, share_code, share_store_id, share_region, items, attribution_window_s,
    multiIf(
        share_code != '',
        arrayMap(m -> (m, ('share_code', CAST(NULL, 'Nullable(DateTime64(3, \'Asia/Shanghai\'))'), '',
                           toString(share_code), toString(share_store_id), toString(share_region),
                           toInt64(0), '', '', '', ''), 1.0),
                 ['last_touch', 'first_touch', 'linear']),
        empty(touches),
        arrayMap(m -> (m, ('none', CAST(NULL, 'Nullable(DateTime64(3, \'Asia/Shanghai\'))'), '',
                           '', '', '', toInt64(0), '', '', '', ''), 1.0),
                 ['last_touch', 'first_touch', 'linear']),
        arrayConcat(
            [('last_touch', touches[-1], 1.0), ('first_touch', touches[1], 1.0)],
            arrayMap(x -> ('linear', x, 1.0 / length(touches)), touches))
    ) AS credits
FROM (
    SELECT
        p.app_id AS app_id, p.order_id AS order_id,
        CAST(any(p.brand), 'LowCardinality(String)') AS brand,
        any(p.fan_id) AS fan_id, any(p.purchase_time) AS purchase_time,
        any(p.event_id) AS event_id, any(p.amount_fen) AS amount_fen,
        CAST(any(p.currency), 'LowCardinality(String)') AS currency,
        CAST(any(p.channel), 'LowCardinality(String)') AS channel,
        CAST(any(p.store_id), 'LowCardinality(String)') AS store_id,
        CAST(any(p.region), 'LowCardinality(String)') AS region,
        CAST(any(p.share_code), 'LowCardinality(String)') AS share_code,
        CAST(any(p.share_store_id), 'LowCardinality(String)') AS share_store_id,
        CAST(any(p.share_region), 'LowCardinality(String)') AS share_region,
        any(p.items) AS items, any(p.attribution_window_s) AS attribution_window_s,
        arraySort(c -> (c.2, c.3), groupArrayIf((
            toString(t.touch),
            CAST(t.touch_time, 'Nullable(DateTime64(3, \'Asia/Shanghai\'))'),
            toString(t.event_id),
            toString(t.associate_userid), toString(t.store_id), toString(t.region),
            t.msgid, t.article_id, toString(t.campaign), t.scene,
            toString(t.qr_channel)),
            t.matched = 1
              AND p.share_code = ''
              AND t.touch_time <= p.purchase_time
              AND t.touch_time >= p.purchase_time - toIntervalSecond(p.attribution_window_s))) AS touches
    FROM (
        SELECT 1 AS matched, app_id, fan_id, touch_time, event_id, touch, associate_userid,
               store_id, region, msgid, article_id, campaign, scene, qr_channel
        FROM fan_touches{ALL}
        WHERE touch_time >= (
                SELECT ifNull(minOrNull(event_time - toIntervalSecond(attribution_window_s)), now64(3))
                FROM orders{ALL}
                WHERE kind = 'purchase'
                  AND event_time >= (SELECT max(settled_until) FROM conversion_settles))
          AND fan_id GLOBAL IN (
                SELECT fan_id FROM orders{ALL}
                WHERE kind = 'purchase'
                  AND event_time >= (SELECT max(settled_until) FROM conversion_settles))
    ) AS t
    RIGHT JOIN order_purchases_open AS p ON t.app_id = p.app_id AND t.fan_id = p.fan_id
    GROUP BY p.app_id, p.order_id
);

-- Internal: the open purchases with their credits; same columns as in 0017, now read from
-- the single join above.
CREATE OR REPLACE VIEW order_purchase_credits_open {ON_CLUSTER} AS
SELECT app_id, brand, order_id, fan_id, purchase_time, amount_fen, currency, channel,
       store_id AS order_store_id, credits
FROM order_purchases_open_credited;

-- Every order record with its credit in each model, as in 0007 and 0017 (same columns, same
-- rows), reading the open purchases and their touch join once (0017 evaluated
-- order_purchases_open three times per read): a settled purchase's rows as stored; an open
-- purchase's credits, for its purchase record and for each of its refunds; and every other
-- refund with the credits of its settled purchase, or as 'unmatched_refund' when its
-- purchase is neither settled nor open (no purchase record at or after the last cutoff).
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
        -- open purchases and their refunds: one row per record and credit of the purchase
        SELECT
            o.app_id AS app_id, CAST(o.rec.2, 'LowCardinality(String)') AS brand,
            o.rec.1 AS record, o.order_id AS order_id, o.rec.3 AS fan_id,
            o.rec.4 AS record_time, o.purchase_time AS purchase_time,
            CAST(o.rec.5, 'LowCardinality(String)') AS currency, o.channel AS channel,
            o.order_store_id AS order_store_id,
            credit.1 AS model, credit.2.1 AS touch, credit.2.2 AS touch_time,
            credit.2.3 AS touch_event_id, credit.2.4 AS associate_userid, credit.2.5 AS store_id,
            credit.2.6 AS region, credit.2.7 AS msgid, credit.2.8 AS article_id,
            credit.2.9 AS campaign, credit.2.10 AS scene, credit.2.11 AS qr_channel,
            credit.3 AS weight,
            if(o.rec.1 = 'refund', -1, 1) * o.rec.6 * weight AS amount_fen
        FROM (
            SELECT c.app_id AS app_id, c.order_id AS order_id,
                   CAST(c.purchase_time, 'Nullable(DateTime64(3, \'Asia/Shanghai\'))') AS purchase_time,
                   toString(c.channel) AS channel, toString(c.store_id) AS order_store_id,
                   c.credits AS credits,
                   arrayJoin(arrayConcat(
                       [('purchase', c.brand, c.fan_id, c.purchase_time, toString(c.currency),
                         c.amount_fen)],
                       r.records)) AS rec
            FROM order_purchases_open_credited AS c
            GLOBAL LEFT JOIN (
                SELECT app_id, order_id,
                       groupArray(('refund', brand, fan_id, event_time, toString(currency),
                                   amount_fen)) AS records
                FROM orders{ALL}
                WHERE kind = 'refund'
                GROUP BY app_id, order_id
            ) AS r ON c.app_id = r.app_id AND c.order_id = r.order_id
        ) AS o
        ARRAY JOIN o.credits AS credit
        UNION ALL
        -- the other refunds: each settled credit of their purchase, or 'unmatched_refund'
        SELECT
            o.app_id AS app_id, o.brand AS brand, 'refund' AS record, o.order_id AS order_id,
            o.fan_id AS fan_id, o.record_time AS record_time, o.purchase_time AS purchase_time,
            o.currency AS currency, o.channel AS channel, o.order_store_id AS order_store_id,
            credit.1 AS model, credit.2.1 AS touch, credit.2.2 AS touch_time,
            credit.2.3 AS touch_event_id, credit.2.4 AS associate_userid, credit.2.5 AS store_id,
            credit.2.6 AS region, credit.2.7 AS msgid, credit.2.8 AS article_id,
            credit.2.9 AS campaign, credit.2.10 AS scene, credit.2.11 AS qr_channel,
            credit.3 AS weight,
            -1 * o.amount_fen * weight AS amount_fen
        FROM (
            SELECT
                f.app_id AS app_id, f.brand AS brand, f.order_id AS order_id, f.fan_id AS fan_id,
                f.event_time AS record_time, toString(f.currency) AS currency,
                f.amount_fen AS amount_fen,
                if(s.credit_no > 0,
                   CAST(s.purchase_time, 'Nullable(DateTime64(3, \'Asia/Shanghai\'))'),
                   NULL) AS purchase_time,
                if(s.credit_no > 0, toString(s.channel), toString(f.channel)) AS channel,
                if(s.credit_no > 0, toString(s.order_store_id), toString(f.store_id)) AS order_store_id,
                if(s.credit_no > 0,
                   [(toString(s.model), (toString(s.touch), s.touch_time, s.touch_event_id,
                     toString(s.associate_userid), toString(s.store_id), toString(s.region),
                     s.msgid, s.article_id, toString(s.campaign), s.scene,
                     toString(s.qr_channel)), s.weight)],
                   arrayMap(m -> (m, ('unmatched_refund', CAST(NULL, 'Nullable(DateTime64(3, \'Asia/Shanghai\'))'), '',
                                      '', '', '', toInt64(0), '', '', '', ''), 1.0),
                            ['last_touch', 'first_touch', 'linear'])) AS credits
            FROM orders{ALL} AS f
            GLOBAL LEFT JOIN (
                SELECT * FROM order_credits_settled
                WHERE order_id GLOBAL IN (SELECT order_id FROM orders{ALL} WHERE kind = 'refund')
            ) AS s ON f.app_id = s.app_id AND f.order_id = s.order_id
            WHERE f.kind = 'refund'
              AND (s.credit_no > 0
                   OR (f.app_id, f.order_id) GLOBAL NOT IN (
                       SELECT app_id, order_id FROM orders{ALL}
                       WHERE kind = 'purchase'
                         AND event_time >= (SELECT max(settled_until) FROM conversion_settles)))
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
