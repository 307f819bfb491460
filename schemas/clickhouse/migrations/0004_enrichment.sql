-- Enrichment and segmentation columns (issue 4). Every raw table gains the columns the
-- runtime fills for every stream: the account's brand and the fan's segment at event time.
-- A value the dimensions did not have when the event was processed is 'unknown' (never
-- NULL, never dropped); rows written before this migration read as 'unknown' too.

ALTER TABLE menu_clicks {ON_CLUSTER}
    ADD COLUMN IF NOT EXISTS brand LowCardinality(String) DEFAULT 'unknown' COMMENT 'brand of the account (dim account)' AFTER app_id,
    ADD COLUMN IF NOT EXISTS relationship LowCardinality(String) DEFAULT 'unknown' COMMENT 'prospect, customer, vip, unknown (dim fan_profile, at event time)' AFTER server_time,
    ADD COLUMN IF NOT EXISTS lifecycle LowCardinality(String) DEFAULT 'unknown' COMMENT 'new (followed < 30 d), active, dormant (previous interaction >= 60 d ago), churned (unfollowed)' AFTER relationship,
    ADD COLUMN IF NOT EXISTS month_interactions UInt32 DEFAULT 0 COMMENT 'the fan''s interactions in this stream this calendar month so far, this one included' AFTER lifecycle,
    ADD COLUMN IF NOT EXISTS category LowCardinality(String) DEFAULT 'unknown' COMMENT 'ecommerce, brand_info, crm, other, unknown (dim menu_button)' AFTER menu_id,
    ADD COLUMN IF NOT EXISTS label LowCardinality(String) DEFAULT 'unknown' COMMENT 'button label (dim menu_button)' AFTER category;

ALTER TABLE qr_scans {ON_CLUSTER}
    ADD COLUMN IF NOT EXISTS brand LowCardinality(String) DEFAULT 'unknown' AFTER app_id,
    ADD COLUMN IF NOT EXISTS relationship LowCardinality(String) DEFAULT 'unknown' AFTER server_time,
    ADD COLUMN IF NOT EXISTS lifecycle LowCardinality(String) DEFAULT 'unknown' COMMENT 'a SUBSCRIBE scan is always new' AFTER relationship,
    ADD COLUMN IF NOT EXISTS month_interactions UInt32 DEFAULT 0 AFTER lifecycle,
    ADD COLUMN IF NOT EXISTS scene_kind LowCardinality(String) DEFAULT 'str' COMMENT 'id (numeric scene_id) or str (scene_str)' AFTER scene,
    ADD COLUMN IF NOT EXISTS scene_id UInt32 DEFAULT 0 COMMENT 'numeric scene_id, 0 for a scene_str' AFTER scene_kind,
    ADD COLUMN IF NOT EXISTS channel LowCardinality(String) DEFAULT 'unknown' COMMENT 'store, associate, event, article, ad, packaging, payment, other, unknown (dim qr_scene)' AFTER scene_id,
    ADD COLUMN IF NOT EXISTS store_id LowCardinality(String) DEFAULT '' COMMENT 'store of the code, or of its associate; empty when the code has none' AFTER channel,
    ADD COLUMN IF NOT EXISTS associate_userid LowCardinality(String) DEFAULT '' COMMENT 'associate of the code; empty when none' AFTER store_id,
    ADD COLUMN IF NOT EXISTS region LowCardinality(String) DEFAULT '' COMMENT 'region of store_id (dim store); unknown when the store is not in it' AFTER associate_userid,
    ADD COLUMN IF NOT EXISTS campaign LowCardinality(String) DEFAULT '' AFTER region,
    ADD COLUMN IF NOT EXISTS follow_source LowCardinality(String) DEFAULT '' COMMENT 'qr_<channel> on a new follow, empty otherwise' AFTER is_new_follow;

ALTER TABLE chat_messages {ON_CLUSTER}
    ADD COLUMN IF NOT EXISTS brand LowCardinality(String) DEFAULT 'unknown' AFTER app_id,
    ADD COLUMN IF NOT EXISTS relationship LowCardinality(String) DEFAULT 'unknown' AFTER server_time,
    ADD COLUMN IF NOT EXISTS lifecycle LowCardinality(String) DEFAULT 'unknown' AFTER relationship,
    ADD COLUMN IF NOT EXISTS month_interactions UInt32 DEFAULT 0 AFTER lifecycle,
    ADD COLUMN IF NOT EXISTS store_id LowCardinality(String) DEFAULT '' COMMENT 'store of the associate (dim associate); unknown when the associate is not in it' AFTER associate_userid,
    ADD COLUMN IF NOT EXISTS region LowCardinality(String) DEFAULT '' COMMENT 'region of the store (dim store)' AFTER store_id,
    ADD COLUMN IF NOT EXISTS first_reply_ms Nullable(Int64) COMMENT 'on an associate''s message: ms since the earliest fan message of this 1:1 conversation it answers; NULL otherwise' AFTER content_length;

ALTER TABLE article_reads {ON_CLUSTER}
    ADD COLUMN IF NOT EXISTS brand LowCardinality(String) DEFAULT 'unknown' AFTER app_id,
    ADD COLUMN IF NOT EXISTS relationship LowCardinality(String) DEFAULT 'unknown' AFTER server_time,
    ADD COLUMN IF NOT EXISTS lifecycle LowCardinality(String) DEFAULT 'unknown' AFTER relationship,
    ADD COLUMN IF NOT EXISTS month_interactions UInt32 DEFAULT 0 AFTER lifecycle,
    ADD COLUMN IF NOT EXISTS articles_in_push Int32 DEFAULT 0 COMMENT 'articles in the push (dim article); 0 when unknown' AFTER idx,
    ADD COLUMN IF NOT EXISTS published_at Nullable(DateTime64(3, 'Asia/Shanghai')) COMMENT 'when the push went out (dim article)' AFTER articles_in_push,
    ADD COLUMN IF NOT EXISTS campaign LowCardinality(String) DEFAULT 'unknown' COMMENT 'campaign of the push; empty when none, unknown when the article is not in dim article' AFTER published_at,
    ADD COLUMN IF NOT EXISTS target_segment LowCardinality(String) DEFAULT 'unknown' COMMENT 'segment the push targeted; none for an unsegmented push' AFTER campaign,
    ADD COLUMN IF NOT EXISTS fans_reached Int64 DEFAULT 0 COMMENT 'followers the push reached: the open-rate denominator' AFTER target_segment;

-- Segmentation state: per topic, partition, fan and month, the interactions written and
-- the latest event time. A service reads its partition's rows when it is assigned the
-- partition, so a restart or rebalance resumes every fan's lifecycle and month count
-- exactly where the previous owner left them (see services/runtime/src/segment.rs).
CREATE TABLE IF NOT EXISTS fan_stream_months {ON_CLUSTER}
(
    kafka_topic     LowCardinality(String),
    kafka_partition Int32,
    fan_id          UInt64,
    month           UInt32 COMMENT 'yyyymm, Asia/Shanghai',
    interactions    SimpleAggregateFunction(sum, UInt64),
    last_event_time SimpleAggregateFunction(max, DateTime64(3, 'Asia/Shanghai'))
)
ENGINE = AggregatingMergeTree
ORDER BY (kafka_topic, kafka_partition, fan_id, month)
TTL makeDate(intDiv(month, 100), month % 100, 1) + INTERVAL 400 DAY
SETTINGS non_replicated_deduplication_window = 10000;

CREATE MATERIALIZED VIEW IF NOT EXISTS mv_menu_clicks_fan_months {ON_CLUSTER} TO fan_stream_months AS
SELECT kafka_topic, kafka_partition, fan_id, toYYYYMM(event_time) AS month,
       count() AS interactions, max(event_time) AS last_event_time
FROM menu_clicks GROUP BY kafka_topic, kafka_partition, fan_id, month;

CREATE MATERIALIZED VIEW IF NOT EXISTS mv_qr_scans_fan_months {ON_CLUSTER} TO fan_stream_months AS
SELECT kafka_topic, kafka_partition, fan_id, toYYYYMM(event_time) AS month,
       count() AS interactions, max(event_time) AS last_event_time
FROM qr_scans GROUP BY kafka_topic, kafka_partition, fan_id, month;

CREATE MATERIALIZED VIEW IF NOT EXISTS mv_chat_messages_fan_months {ON_CLUSTER} TO fan_stream_months AS
SELECT kafka_topic, kafka_partition, fan_id, toYYYYMM(event_time) AS month,
       count() AS interactions, max(event_time) AS last_event_time
FROM chat_messages GROUP BY kafka_topic, kafka_partition, fan_id, month;

CREATE MATERIALIZED VIEW IF NOT EXISTS mv_article_reads_fan_months {ON_CLUSTER} TO fan_stream_months AS
SELECT kafka_topic, kafka_partition, fan_id, toYYYYMM(event_time) AS month,
       count() AS interactions, max(event_time) AS last_event_time
FROM article_reads GROUP BY kafka_topic, kafka_partition, fan_id, month;
