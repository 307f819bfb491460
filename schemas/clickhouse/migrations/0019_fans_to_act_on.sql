-- Fans to act on (issue 17): two lists of the fans an associate should contact, one row per
-- fan, for wxpulse-notifier (it polls them about hourly and tells of the rows dated today)
-- and for BI and CRM exports. VIEWS.md, "Fans to act on", documents both. Every date here
-- is an Asia/Shanghai date: today is toDate(now(), 'Asia/Shanghai') whatever the server's
-- time zone.
--
-- The birthday comes from the CRM's fan profile (dim_fan_profile v2, "MM-DD", no year):
-- `wxpulse dims mirror` copies it into fan_profiles.birthday, '' when unknown or not a
-- birthday. Apply this migration before deploying a mirror that writes the column.
-- CREATE OR REPLACE VIEW resets SQL SECURITY: rerun `wxpulse migrate --grants` after it.

ALTER TABLE fan_profiles {ON_CLUSTER}
    ADD COLUMN IF NOT EXISTS birthday String DEFAULT '' COMMENT 'month and day "MM-DD" from the CRM profile (dim_fan_profile v2), no year, 02-29 allowed; empty when unknown. Personal data, not an identifier';

-- Fans whose next birthday is today or within 30 days: profiled (not deleted), bound to an
-- associate, following now, with a birthday. The birthday in year Y is day DD counted from
-- the 1st of month MM (makeDate(Y, MM, 1) + DD - 1): 02-29 falls on 03-01 in a year
-- without one, every other birthday on its own day.
--
-- Following now, as the services merge the two sources: the latest follow and the latest
-- unfollow are the later of the profile's (followed_at, unfollowed_at) and of those in
-- fan_follow_events (every profile version's, and those WeChat reported through the
-- gateway); the fan follows when a follow is known and no unfollow is later (one at the
-- same instant does not end it, as in v_monthly_active). max() needs no FINAL: a copy of a
-- row changes no maximum. Only the fans with a birthday soon are looked up in the history
-- (GLOBAL: on a cluster the set is made once and sent to the shards).
CREATE OR REPLACE VIEW v_birthdays_upcoming {ON_CLUSTER} AS
WITH (SELECT (groupArray(app_id), groupArray(brand)) FROM account_brand) AS brand_of
SELECT *, transform(toString(app_id), brand_of.1, brand_of.2, '') AS brand
FROM
(
    WITH
        toDate(now(), 'Asia/Shanghai') AS today,
        soon AS (
            SELECT
                app_id,
                fan_id,
                associate_userid,
                status AS relationship,
                birthday,
                ifNull(toUnixTimestamp64Milli(followed_at), 0) AS followed_ms,
                ifNull(toUnixTimestamp64Milli(unfollowed_at), 0) AS unfollowed_ms,
                toUInt8(substring(birthday, 1, 2)) AS mm,
                toUInt8(substring(birthday, 4, 2)) AS dd,
                makeDate(toYear(today), mm, 1) + (dd - 1) AS this_year,
                if(this_year >= today, this_year, makeDate(toYear(today) + 1, mm, 1) + (dd - 1)) AS next_birthday,
                toUInt16(next_birthday - today) AS days_until
            FROM fan_profiles{ALL} FINAL
            WHERE is_deleted = 0
              AND associate_userid != ''
              -- "MM-DD" of a day that exists (2000 is a leap year: 02-29 does)
              AND match(birthday, '^(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])$')
              AND toMonth(makeDate(2000, mm, 1) + (dd - 1)) = mm
              AND days_until <= 30
        ),
        history AS (
            SELECT
                app_id,
                fan_id,
                maxIf(toUnixTimestamp64Milli(at), kind = 'follow') AS followed_ms,
                maxIf(toUnixTimestamp64Milli(at), kind = 'unfollow') AS unfollowed_ms
            FROM fan_follow_events{ALL}
            WHERE (app_id, fan_id) GLOBAL IN (SELECT app_id, fan_id FROM soon)
            GROUP BY app_id, fan_id
        )
    SELECT
        CAST(s.app_id, 'String') AS app_id,
        s.fan_id AS fan_id,
        CAST(s.associate_userid, 'String') AS associate_userid,
        CAST(s.relationship, 'String') AS relationship,
        s.birthday AS birthday,
        s.next_birthday AS next_birthday,
        s.days_until AS days_until
    FROM soon AS s
    LEFT JOIN history AS h ON h.app_id = s.app_id AND h.fan_id = s.fan_id
    WHERE greatest(s.followed_ms, h.followed_ms) > 0
      AND greatest(s.unfollowed_ms, h.unfollowed_ms) <= greatest(s.followed_ms, h.followed_ms)
);

-- Fans whose usual time between purchases has passed: at least 3 purchases on distinct
-- days; the typical interval is the median of the gaps in days between consecutive
-- purchase days (the mean of the two middle gaps when there is an even number of them);
-- due on the day of the last purchase plus that interval rounded, halves up (10.5 days is
-- 11); listed from the due day on, until the fan buys again (that purchase starts the next
-- interval).
--
-- A purchase is an order's first purchase record (an upstream that re-sends an order under
-- a new event id does not double it, as in order_purchases) on its Asia/Shanghai day. A
-- purchase whose refunds (records of the same fan and order_id) add up to its amount is
-- fully refunded and does not count; a partial refund leaves it. The associate: the fan's
-- bound associate (fan_profiles), else the share code of the last purchase, else the fan
-- is left out (nobody to tell). relationship: the profile's, else the last purchase's (the
-- orders service's, at order time).
--
-- Cost: one aggregation of every stored order (the table keeps 800 days) by order, one by
-- fan, and a join of the due fans (the join's hash table: few) with the profiles.
CREATE OR REPLACE VIEW v_replenishment_due {ON_CLUSTER} AS
WITH (SELECT (groupArray(app_id), groupArray(brand)) FROM account_brand) AS brand_of
SELECT *, transform(toString(app_id), brand_of.1, brand_of.2, '') AS brand
FROM
(
    WITH
        toDate(now(), 'Asia/Shanghai') AS today,
        purchases AS (
            SELECT
                app_id,
                fan_id,
                order_id,
                minIf(event_time, kind = 'purchase') AS purchase_time,
                argMinIf(amount_fen, event_time, kind = 'purchase') AS purchase_fen,
                argMinIf(share_code, event_time, kind = 'purchase') AS purchase_share_code,
                argMinIf(relationship, event_time, kind = 'purchase') AS purchase_relationship,
                countIf(kind = 'purchase') AS purchase_records,
                countIf(kind = 'refund') AS refund_records,
                sumIf(amount_fen, kind = 'refund') AS refunded_fen
            FROM orders{ALL}
            GROUP BY app_id, fan_id, order_id
            HAVING purchase_records > 0 AND NOT (refund_records > 0 AND refunded_fen >= purchase_fen)
        ),
        due AS (
            SELECT
                app_id,
                fan_id,
                count() AS purchases,
                max(purchase_time) AS last_purchase,
                argMax(purchase_share_code, (purchase_time, order_id)) AS last_share_code,
                argMax(purchase_relationship, (purchase_time, order_id)) AS last_relationship,
                arraySort(arrayDistinct(groupArray(toDate(purchase_time, 'Asia/Shanghai')))) AS days,
                arraySort(arrayPopFront(arrayDifference(arrayMap(d -> toInt32(d), days)))) AS gaps,
                (gaps[intDiv(length(gaps) + 1, 2)] + gaps[intDiv(length(gaps), 2) + 1]) / 2 AS typical_interval_days,
                days[-1] + toInt32(floor(typical_interval_days + 0.5)) AS due_date
            FROM purchases
            GROUP BY app_id, fan_id
            HAVING length(days) >= 3 AND due_date <= today
        )
    SELECT
        CAST(d.app_id, 'String') AS app_id,
        d.fan_id AS fan_id,
        CAST(if(p.associate_userid != '', p.associate_userid, d.last_share_code), 'String') AS associate_userid,
        CAST(if(p.status != '', p.status, d.last_relationship), 'String') AS relationship,
        d.purchases AS purchases,
        d.last_purchase AS last_purchase,
        d.typical_interval_days AS typical_interval_days,
        d.due_date AS due_date,
        toInt32(today - d.due_date) AS days_overdue
    FROM
    (
        SELECT app_id, fan_id, associate_userid, status
        FROM fan_profiles{ALL} FINAL
        WHERE is_deleted = 0
    ) AS p
    RIGHT JOIN due AS d ON p.app_id = d.app_id AND p.fan_id = d.fan_id
    WHERE p.associate_userid != '' OR d.last_share_code != ''
);
