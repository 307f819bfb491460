-- Reply pairing in event time (issue 14, item 1). The chat service stamps `first_reply_ms`
-- as messages arrive, so a late or re-sent fan message changed which wait a reply closed
-- (one associate-day median came out 6.1 days instead of 15.5 minutes). Pairing is now
-- done here, over the stored 1:1 messages in event-time order, so it is the same whatever
-- order the messages arrived in, and a message arriving late (up to
-- validation.max_lateness) re-pairs its conversation on the next query:
--
-- * A conversation is (app_id, fan_id, associate_userid), WECOM_PRIVATE messages between
--   the fan and the associate, in event-time order (a fan message and a reply at the same
--   instant: the fan's first; then by event_id).
-- * An associate message answers the fan messages since the associate's previous message
--   in the conversation. The wait started at the earliest of them that the reply can still
--   answer: received (server time) at most 7 days before the reply (chat.reply_window's
--   default; older fan messages expire unanswered). first_reply_ms = reply event time -
--   wait start; the reply counts on the day (Asia/Shanghai) the wait started, at the
--   reply's store and region.
-- * A reply with no fan message since the previous one answers nothing.
--
-- chat_messages.first_reply_ms keeps the service's live, arrival-order figure; the views
-- below no longer read it (nor the reply columns of associate_daily, whose materialized
-- view is dropped).

DROP VIEW IF EXISTS mv_chat_messages_associate_replies {ON_CLUSTER};

-- Internal (it has fan ids): one row per answered wait. BI reads it through the views.
CREATE OR REPLACE VIEW chat_replies {ON_CLUSTER} AS
SELECT
    app_id,
    fan_id,
    associate_userid,
    region,
    store_id,
    replied_at,
    fromUnixTimestamp64Milli(wait_started_ms, 'Asia/Shanghai') AS wait_started,
    toDate(wait_started) AS day,
    toUnixTimestamp64Milli(replied_at) - wait_started_ms AS first_reply_ms
FROM
(
    SELECT
        app_id,
        fan_id,
        associate_userid,
        anyIf(region, is_reply) AS region,
        anyIf(store_id, is_reply) AS store_id,
        anyIf(event_time, is_reply) AS replied_at,
        anyIf(server_ms, is_reply) AS reply_server_ms,
        -- Event times of the fan messages the reply can still answer.
        arrayMap(f -> f.1, arrayFilter(
            f -> reply_server_ms - f.2 <= 604800000,
            groupArrayIf((toUnixTimestamp64Milli(event_time), server_ms), NOT is_reply)
        )) AS answerable,
        arrayMin(answerable) AS wait_started_ms
    FROM
    (
        SELECT
            app_id,
            fan_id,
            associate_userid,
            region,
            store_id,
            event_time,
            toUnixTimestamp64Milli(server_time) AS server_ms,
            direction = 'ASSOCIATE_TO_FAN' AS is_reply,
            -- Replies strictly before this message: the fan messages after reply k and
            -- the reply k+1 share run k.
            sum(toUInt64(is_reply)) OVER (
                PARTITION BY app_id, fan_id, associate_userid
                ORDER BY event_time, is_reply, event_id
                ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING
            ) AS run
        FROM chat_messages{ALL}
        WHERE conversation = 'WECOM_PRIVATE' AND associate_userid != ''
          AND direction IN ('FAN_TO_ASSOCIATE', 'ASSOCIATE_TO_FAN')
    )
    GROUP BY app_id, fan_id, associate_userid, run
    HAVING countIf(is_reply) = 1 AND notEmpty(answerable)
);

-- Internal: the answered waits per account × day × region × store × associate, as states
-- both associate views merge.
CREATE OR REPLACE VIEW associate_replies_daily {ON_CLUSTER} AS
SELECT
    app_id, day, region, store_id, associate_userid,
    uniqExactState(fan_id) AS answered_fans,
    count() AS replies,
    sum(first_reply_ms) AS reply_ms_sum,
    quantilesExactState(0.5, 0.9)(first_reply_ms) AS reply_ms
FROM chat_replies
GROUP BY app_id, day, region, store_id, associate_userid;

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
        code_scans,
        new_contacts,
        scanning_fans,
        conversations,
        conversations AS unique_customers,
        messages_in,
        messages_out,
        group_messages,
        conversations_with_fan_message,
        answered_conversations,
        if(conversations_with_fan_message > 0, answered_conversations / conversations_with_fan_message, NULL) AS reply_rate,
        replies,
        if(replies > 0, reply_ms_sum / replies, NULL) AS avg_first_reply_ms,
        if(replies > 0, reply_quantiles[1], NULL) AS median_first_reply_ms,
        if(replies > 0, reply_quantiles[2], NULL) AS p90_first_reply_ms
    FROM
    (
        SELECT
            app_id, day, region, store_id, associate_userid,
            sum(code_scans) AS code_scans,
            sum(new_contacts) AS new_contacts,
            uniqExactMerge(scanning_fans) AS scanning_fans,
            uniqExactMerge(customers) AS conversations,
            sum(messages_in) AS messages_in,
            sum(messages_out) AS messages_out,
            sum(group_messages) AS group_messages,
            uniqExactMerge(writing_fans) AS conversations_with_fan_message
        FROM associate_daily{ALL}
        GROUP BY app_id, day, region, store_id, associate_userid
    ) AS d
    FULL OUTER JOIN
    (
        SELECT
            app_id, day, region, store_id, associate_userid,
            finalizeAggregation(answered_fans) AS answered_conversations,
            replies,
            reply_ms_sum,
            finalizeAggregation(reply_ms) AS reply_quantiles
        FROM associate_replies_daily
    ) AS r USING (app_id, day, region, store_id, associate_userid)
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
            app_id, day, region,
            store_id AS store,
            associate_userid AS associate,
            d_code_scans, d_new_contacts, d_scanning_fans, d_conversations, d_customers,
            d_messages_in, d_messages_out, d_group_messages, d_with_fan_message,
            d_answered, d_replies, d_reply_ms_sum, d_reply_ms
        FROM
        (
            SELECT
                app_id, day, region, store_id, associate_userid,
                sum(code_scans) AS d_code_scans,
                sum(new_contacts) AS d_new_contacts,
                uniqExactMergeState(scanning_fans) AS d_scanning_fans,
                uniqExactMerge(customers) AS d_conversations,
                uniqExactMergeState(customers) AS d_customers,
                sum(messages_in) AS d_messages_in,
                sum(messages_out) AS d_messages_out,
                sum(group_messages) AS d_group_messages,
                uniqExactMerge(writing_fans) AS d_with_fan_message
            FROM associate_daily{ALL}
            GROUP BY app_id, day, region, store_id, associate_userid
        ) AS d
        FULL OUTER JOIN
        (
            SELECT
                app_id, day, region, store_id, associate_userid,
                finalizeAggregation(answered_fans) AS d_answered,
                replies AS d_replies,
                reply_ms_sum AS d_reply_ms_sum,
                reply_ms AS d_reply_ms
            FROM associate_replies_daily
        ) AS r USING (app_id, day, region, store_id, associate_userid)
    )
    ARRAY JOIN [('associate', store, associate), ('store', store, ''), ('region', '', '')] AS lvl
    GROUP BY app_id, month, level, region, store_id, associate_userid
);
