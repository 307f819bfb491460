-- The batch each partition's owner is about to insert, written before the INSERT (one row
-- per batch). An INSERT whose materialized view throws (TOO_MANY_PARTS, memory, a broken
-- view) leaves the raw rows and the views that ran before it committed; if the owner dies
-- before its same-token retry succeeds, the next owner reads the last intent here and
-- replays exactly that batch with its dedup token before anything else, so the raw table
-- is not doubled and no rollup misses it (docs/effectively-once.md). Only the newest row
-- per partition matters; ReplacingMergeTree keeps just that one after merges (no TTL: the
-- last intent of a partition idle for months must still be there when it is reassigned).

CREATE TABLE IF NOT EXISTS ingest_intents {ON_CLUSTER}
(
    table_name      LowCardinality(String),
    kafka_topic     LowCardinality(String),
    kafka_partition Int32,
    first_offset    Int64 COMMENT 'first offset of the batch, skipped and dead-lettered records included',
    last_offset     Int64,
    dedup_token     String COMMENT 'the insert_deduplication_token of the batch',
    min_server_time DateTime64(3, 'Asia/Shanghai') COMMENT 'oldest server_time among its rows: narrows the replay''s scan',
    max_server_time DateTime64(3, 'Asia/Shanghai'),
    last_record_time Int64 COMMENT 'Kafka timestamp (ms) of the record at last_offset: a different one there means the log was re-created',
    written_at      DateTime64(3, 'Asia/Shanghai') DEFAULT now64(3)
)
ENGINE = ReplacingMergeTree(written_at)
ORDER BY (table_name, kafka_topic, kafka_partition);

-- Each reset of a partition's ingest state by `wxpulse ingest reset`, after its topic was
-- re-created or the pipeline moved to other brokers (Kafka offsets restarted below the
-- watermark). The number of resets is the partition's incarnation: it is part of every
-- dedup token from then on, so `topic:partition:0-99` of the new log is not taken for the
-- old log's batch of the same range.
CREATE TABLE IF NOT EXISTS ingest_resets {ON_CLUSTER}
(
    table_name         LowCardinality(String),
    kafka_topic        LowCardinality(String),
    kafka_partition    Int32,
    previous_watermark Int64 COMMENT 'highest offset written before the reset',
    reset_at           DateTime64(3, 'Asia/Shanghai') DEFAULT now64(3)
)
ENGINE = MergeTree
ORDER BY (table_name, kafka_topic, kafka_partition, reset_at);
