-- Dead letters `wxpulse dlq replay` has sent back to their source topics, by source record
-- (topic, partition, offset). A replay skips what is here, so running the same replay twice
-- — or two overlapping ones — writes no event twice: a replayed event usually has an old
-- server time, which the consumers' event-id window (10 minutes of server time) would not
-- recognise. `--force` replays again regardless.

CREATE TABLE IF NOT EXISTS dlq_replays {ON_CLUSTER}
(
    source_topic     LowCardinality(String),
    source_partition Int32,
    source_offset    Int64,
    reason           LowCardinality(String),
    replayed_at      DateTime64(3, 'Asia/Shanghai') DEFAULT now64(3)
)
ENGINE = ReplacingMergeTree(replayed_at)
ORDER BY (source_topic, source_partition, source_offset);
