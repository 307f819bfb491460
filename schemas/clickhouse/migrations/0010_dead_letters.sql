-- Dead letters, queryable: every record a service dead-letters is also written here (after
-- its delivery to the dead-letter topic, in the same flush as the batch it belongs to), so
-- rejections can be counted by day, service and reason long after the topic's retention.
-- No payload: its length and SHA-256 only, so no raw openid or chat text lands here (the
-- topic keeps the bytes for `wxpulse dlq replay`). One row per source record: a redelivered
-- record dead-lettered twice is merged away (read with FINAL, as the view does).

CREATE TABLE IF NOT EXISTS dead_letters {ON_CLUSTER}
(
    service          LowCardinality(String),
    reason           LowCardinality(String) COMMENT 'undecodable, unknown_schema, missing_field, invalid_field, future_timestamp, too_old, oversized',
    source_topic     LowCardinality(String),
    source_partition Int32,
    source_offset    Int64,
    first_seen       DateTime64(3, 'Asia/Shanghai') COMMENT 'when the service rejected it',
    detail           String COMMENT 'decoder error or field name; never the payload',
    payload_length   UInt64,
    payload_sha256   String
)
ENGINE = ReplacingMergeTree(first_seen)
PARTITION BY toYYYYMM(first_seen)
ORDER BY (source_topic, source_partition, source_offset)
TTL toDateTime(first_seen) + INTERVAL 400 DAY
SETTINGS non_replicated_deduplication_window = 10000;

-- Dead letters per day (Asia/Shanghai), service, topic and reason.
CREATE OR REPLACE VIEW v_dead_letters_daily {ON_CLUSTER} AS
SELECT
    toDate(first_seen, 'Asia/Shanghai') AS day,
    service,
    source_topic,
    reason,
    count() AS letters,
    sum(payload_length) AS payload_bytes
FROM dead_letters FINAL
GROUP BY day, service, source_topic, reason;
