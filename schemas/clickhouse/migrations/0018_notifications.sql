-- Behaviour notifications for associates (issue 17, seed 000's WeCom CRM 通知提醒): every
-- notification wxpulse-notifier sent, with the columns of its record on
-- wxpulse.notifications (schemas/avro/notification/v1.avsc) but the texts and the link,
-- for the follow-up rate: did the associate message the fan after being told?
--
-- The notifier inserts a flush's rows before it produces them and commits its input, so a
-- replay after a crash inserts the same notifications again: the same notification_id (a
-- UUID v5 of rule and trigger) and the same columns but ingested_at. Only the id is
-- guaranteed to be the same, so it alone is the key: ReplacingMergeTree collapses the
-- copies when it merges, and until then (and across shards, should copies land on two)
-- the views count each id once by grouping on it. The dedup window makes a retried insert
-- with the same insert_deduplication_token a no-op as well. On a cluster, write into
-- notifications_all, which shards by fan like the events, so that a notification, its
-- copies and its follow-up messages are on one shard.
--
-- Kept as long as the raw tables (400 days of the trigger's server time).

CREATE TABLE IF NOT EXISTS notifications {ON_CLUSTER}
(
    notification_id   UUID COMMENT 'UUID v5 of rule and trigger event: every copy of a notification has it',
    rule              LowCardinality(String) COMMENT 'in_store_scan, high_intent_read, unanswered_message, purchase, refund, tier_change, birthday, replenishment',
    app_id            LowCardinality(String),
    brand             LowCardinality(String) COMMENT 'brand of the account as the notifier knew it (unknown when it did not); the views use the account''s brand (account_brand)',
    associate_userid  LowCardinality(String) COMMENT 'WeCom userid of the associate told',
    store_id          LowCardinality(String) COMMENT 'the associate''s store; empty when the associate dimension does not know it',
    fan_id            UInt64 COMMENT 'HMAC-SHA256(openid) truncated to 64 bits, as in the raw tables; never the raw openid',
    relationship      LowCardinality(String) COMMENT 'prospect, customer, vip, unknown (the fan''s segment when told)',
    event_time        DateTime64(3, 'Asia/Shanghai') COMMENT 'when the fan did it (device time of the trigger)',
    server_time       DateTime64(3, 'Asia/Shanghai') COMMENT 'receive time of the trigger (unanswered_message: the message''s plus the reply target)',
    deliver_after     DateTime64(3, 'Asia/Shanghai') COMMENT 'not sent before: the end of quiet hours for a deferred notification, else server_time',
    trigger_event_id  UUID COMMENT 'event_id of the trigger in its raw table',
    trigger_topic     LowCardinality(String),
    trigger_partition Int32,
    trigger_offset    Int64,
    amount_fen        Int64 COMMENT 'purchase, refund: the order amount; else 0',
    article_id        String COMMENT 'high_intent_read: the article; else empty',
    scene             String COMMENT 'in_store_scan: the QR scene; else empty',
    ingested_at       DateTime64(3, 'Asia/Shanghai') DEFAULT now64(3) COMMENT 'when this copy was inserted'
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(server_time)
ORDER BY notification_id
TTL toDateTime(server_time) + INTERVAL 400 DAY
SETTINGS non_replicated_deduplication_window = 10000;

-- Internal (it has fan ids): one row per notification, each id once however often it was
-- inserted, with its follow-up. A notification is followed up when the associate it told
-- wrote to the fan (chat_messages: direction ASSOCIATE_TO_FAN, the same app_id, fan_id and
-- associate_userid, any conversation) with a receive time (server_time) in
-- [deliver_after, deliver_after + 24 h): sent before the associate could have been told
-- does not count, nor 24 h or later. followed_up_at is the first such message.
--
-- Only the messages that can follow up a notification are read: from the associate to a
-- fan they were told about, on the day of a notification's deliver_after or the next one
-- (a 24-hour window starting on day d ends before d + 2), between the first deliver_after
-- and the last one + 24 h (the server_time index skips the rest of the table). Each pair's
-- message times, sorted, are joined to its notifications; the first one at or after
-- deliver_after decides.
CREATE OR REPLACE VIEW notification_follow_ups {ON_CLUSTER} AS
SELECT
    n.notification_id AS notification_id,
    toDate(n.deliver_after, 'Asia/Shanghai') AS day,
    n.rule AS rule,
    n.app_id AS app_id,
    n.associate_userid AS associate_userid,
    n.store_id AS store_id,
    n.fan_id AS fan_id,
    n.relationship AS relationship,
    n.event_time AS event_time,
    n.server_time AS server_time,
    n.deliver_after AS deliver_after,
    n.trigger_event_id AS trigger_event_id,
    n.trigger_topic AS trigger_topic,
    n.amount_fen AS amount_fen,
    n.article_id AS article_id,
    n.scene AS scene,
    arrayFirstIndex(t -> t >= n.deliver_after, m.times) AS next_message,
    toUInt8(next_message > 0 AND m.times[next_message] < n.deliver_after + INTERVAL 24 HOUR) AS followed_up,
    if(followed_up = 1, m.times[next_message], NULL) AS followed_up_at
FROM
(
    SELECT
        notification_id,
        any(rule) AS rule,
        any(app_id) AS app_id,
        any(associate_userid) AS associate_userid,
        any(store_id) AS store_id,
        any(fan_id) AS fan_id,
        any(relationship) AS relationship,
        any(event_time) AS event_time,
        any(server_time) AS server_time,
        any(deliver_after) AS deliver_after,
        any(trigger_event_id) AS trigger_event_id,
        any(trigger_topic) AS trigger_topic,
        any(amount_fen) AS amount_fen,
        any(article_id) AS article_id,
        any(scene) AS scene
    FROM notifications{ALL}
    GROUP BY notification_id
) AS n
GLOBAL LEFT JOIN
(
    SELECT app_id, fan_id, associate_userid, arraySort(groupArray(server_time)) AS times
    FROM chat_messages{ALL}
    WHERE direction = 'ASSOCIATE_TO_FAN'
      AND server_time >= (SELECT min(deliver_after) FROM notifications{ALL})
      AND server_time < (SELECT max(deliver_after) FROM notifications{ALL}) + INTERVAL 24 HOUR
      AND (app_id, fan_id, associate_userid, toDate(server_time, 'Asia/Shanghai')) GLOBAL IN (
          SELECT app_id, fan_id, associate_userid, arrayJoin([day, day + 1])
          FROM
          (
              SELECT app_id, fan_id, associate_userid, toDate(deliver_after, 'Asia/Shanghai') AS day
              FROM notifications{ALL}
          )
      )
    GROUP BY app_id, fan_id, associate_userid
) AS m
ON n.app_id = m.app_id AND n.fan_id = m.fan_id AND n.associate_userid = m.associate_userid;

-- One row per notification (each once), for BI: no fan id, the account's brand.
CREATE OR REPLACE VIEW v_notifications {ON_CLUSTER} AS
WITH (SELECT (groupArray(app_id), groupArray(brand)) FROM account_brand) AS brand_of
SELECT *, transform(toString(app_id), brand_of.1, brand_of.2, '') AS brand
FROM
(
    SELECT
        day,
        notification_id,
        rule,
        app_id,
        associate_userid,
        store_id,
        relationship,
        event_time,
        server_time,
        deliver_after,
        amount_fen,
        article_id,
        scene,
        followed_up,
        followed_up_at
    FROM notification_follow_ups
);

-- Notifications and their follow-up rate per day (Asia/Shanghai, of deliver_after), account,
-- rule, associate and store.
CREATE OR REPLACE VIEW v_notifications_daily {ON_CLUSTER} AS
WITH (SELECT (groupArray(app_id), groupArray(brand)) FROM account_brand) AS brand_of
SELECT *, transform(toString(app_id), brand_of.1, brand_of.2, '') AS brand
FROM
(
    SELECT
        day,
        app_id,
        rule,
        associate_userid,
        store_id,
        count() AS notifications,
        toUInt64(sum(f.followed_up)) AS followed_up,
        sum(f.followed_up) / count() AS follow_up_rate
    FROM notification_follow_ups AS f
    GROUP BY day, app_id, rule, associate_userid, store_id
);
