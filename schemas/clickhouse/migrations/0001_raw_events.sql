-- Raw enriched events, one table per interaction stream.
-- Partitioned by month of event time (late events land in their own month), ordered so an
-- account's hour is contiguous. Every row keeps its Kafka partition and offset: the
-- ingest_watermarks view below turns them into the resume point of each partition.
-- non_replicated_deduplication_window makes insert_deduplication_token effective on a
-- single node; Replicated engines use replicated_deduplication_window instead.

CREATE TABLE IF NOT EXISTS menu_clicks {ON_CLUSTER}
(
    event_id        UUID,
    app_id          LowCardinality(String),
    fan_id          UInt64 COMMENT 'HMAC-SHA256(openid) truncated to 64 bits; never the raw openid',
    union_id        UInt64 COMMENT 'HMAC-SHA256(unionid), 0 when the fan has none',
    event_time      DateTime64(3, 'Asia/Shanghai') CODEC(Delta, ZSTD(1)) COMMENT 'client time: rollups bucket by it',
    server_time     DateTime64(3, 'Asia/Shanghai') CODEC(Delta, ZSTD(1)),
    event           LowCardinality(String) COMMENT 'CLICK, VIEW, VIEW_MINIPROGRAM, OTHER',
    event_key       String CODEC(ZSTD(3)) COMMENT 'button key, URL or mini-program page',
    menu_id         Nullable(Int64),
    kafka_topic     LowCardinality(String),
    kafka_partition Int32,
    kafka_offset    Int64 CODEC(Delta, ZSTD(1)),
    ingested_at     DateTime64(3, 'Asia/Shanghai') DEFAULT now64(3) CODEC(Delta, ZSTD(1)),
    INDEX idx_server_time server_time TYPE minmax GRANULARITY 4,
    INDEX idx_partition kafka_partition TYPE set(256) GRANULARITY 4
)
ENGINE = MergeTree
PARTITION BY toYYYYMM(event_time)
ORDER BY (app_id, toStartOfHour(event_time), fan_id, event_id)
TTL toDateTime(event_time) + INTERVAL 400 DAY
SETTINGS non_replicated_deduplication_window = 10000;

CREATE TABLE IF NOT EXISTS qr_scans {ON_CLUSTER}
(
    event_id        UUID,
    app_id          LowCardinality(String),
    fan_id          UInt64,
    union_id        UInt64,
    event_time      DateTime64(3, 'Asia/Shanghai') CODEC(Delta, ZSTD(1)),
    server_time     DateTime64(3, 'Asia/Shanghai') CODEC(Delta, ZSTD(1)),
    event           LowCardinality(String) COMMENT 'SUBSCRIBE (the scan made a new follower), SCAN, OTHER',
    event_key       String CODEC(ZSTD(3)),
    scene           String CODEC(ZSTD(3)) COMMENT 'scene_id or scene_str parsed from the EventKey',
    is_new_follow   Bool,
    kafka_topic     LowCardinality(String),
    kafka_partition Int32,
    kafka_offset    Int64 CODEC(Delta, ZSTD(1)),
    ingested_at     DateTime64(3, 'Asia/Shanghai') DEFAULT now64(3) CODEC(Delta, ZSTD(1)),
    INDEX idx_server_time server_time TYPE minmax GRANULARITY 4,
    INDEX idx_partition kafka_partition TYPE set(256) GRANULARITY 4
)
ENGINE = MergeTree
PARTITION BY toYYYYMM(event_time)
ORDER BY (app_id, toStartOfHour(event_time), fan_id, event_id)
TTL toDateTime(event_time) + INTERVAL 400 DAY
SETTINGS non_replicated_deduplication_window = 10000;

CREATE TABLE IF NOT EXISTS chat_messages {ON_CLUSTER}
(
    event_id        UUID,
    app_id          LowCardinality(String),
    fan_id          UInt64,
    union_id        UInt64,
    event_time      DateTime64(3, 'Asia/Shanghai') CODEC(Delta, ZSTD(1)),
    server_time     DateTime64(3, 'Asia/Shanghai') CODEC(Delta, ZSTD(1)),
    msg_id          Int64,
    conversation    LowCardinality(String) COMMENT 'OFFICIAL_ACCOUNT, WECOM_PRIVATE, WECOM_GROUP, OTHER',
    direction       LowCardinality(String) COMMENT 'FAN_TO_BRAND, BRAND_TO_FAN, FAN_TO_ASSOCIATE, ASSOCIATE_TO_FAN, OTHER',
    msg_type        LowCardinality(String),
    associate_userid LowCardinality(String) COMMENT 'WeCom userid of the associate, empty when none',
    chat_id         String CODEC(ZSTD(3)),
    content_length  Int32 COMMENT 'message text itself is never stored (PIPL)',
    kafka_topic     LowCardinality(String),
    kafka_partition Int32,
    kafka_offset    Int64 CODEC(Delta, ZSTD(1)),
    ingested_at     DateTime64(3, 'Asia/Shanghai') DEFAULT now64(3) CODEC(Delta, ZSTD(1)),
    INDEX idx_server_time server_time TYPE minmax GRANULARITY 4,
    INDEX idx_partition kafka_partition TYPE set(256) GRANULARITY 4
)
ENGINE = MergeTree
PARTITION BY toYYYYMM(event_time)
ORDER BY (app_id, toStartOfHour(event_time), fan_id, event_id)
TTL toDateTime(event_time) + INTERVAL 400 DAY
SETTINGS non_replicated_deduplication_window = 10000;

CREATE TABLE IF NOT EXISTS article_reads {ON_CLUSTER}
(
    event_id        UUID,
    app_id          LowCardinality(String),
    fan_id          UInt64,
    union_id        UInt64,
    event_time      DateTime64(3, 'Asia/Shanghai') CODEC(Delta, ZSTD(1)),
    server_time     DateTime64(3, 'Asia/Shanghai') CODEC(Delta, ZSTD(1)),
    article_id      String CODEC(ZSTD(3)),
    msgid           Int64 COMMENT 'push (群发) id',
    idx             Int32 COMMENT 'position in the push, 1 = first',
    source          LowCardinality(String) COMMENT 'PUSH, CHAT, MOMENTS, SEARCH, HISTORY, OTHER',
    read_depth      Float32 COMMENT 'screens scrolled',
    read_seconds    Int64,
    shared          Bool,
    favorited       Bool,
    cta_clicked     Bool,
    kafka_topic     LowCardinality(String),
    kafka_partition Int32,
    kafka_offset    Int64 CODEC(Delta, ZSTD(1)),
    ingested_at     DateTime64(3, 'Asia/Shanghai') DEFAULT now64(3) CODEC(Delta, ZSTD(1)),
    INDEX idx_server_time server_time TYPE minmax GRANULARITY 4,
    INDEX idx_partition kafka_partition TYPE set(256) GRANULARITY 4
)
ENGINE = MergeTree
PARTITION BY toYYYYMM(event_time)
ORDER BY (app_id, toStartOfHour(event_time), fan_id, event_id)
TTL toDateTime(event_time) + INTERVAL 400 DAY
SETTINGS non_replicated_deduplication_window = 10000;
