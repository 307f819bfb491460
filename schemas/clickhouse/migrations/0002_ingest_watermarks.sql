-- Highest Kafka offset (and newest server time) written per table and partition, fed by the
-- same INSERT as the raw rows (a materialized view), so it is exactly as durable as they
-- are. A consumer that is assigned a partition reads it and skips everything at or below:
-- that is what makes a crash between insert and offset commit harmless.

CREATE TABLE IF NOT EXISTS ingest_watermarks {ON_CLUSTER}
(
    table_name      LowCardinality(String),
    kafka_topic     LowCardinality(String),
    kafka_partition Int32,
    max_offset      SimpleAggregateFunction(max, Int64),
    max_server_time SimpleAggregateFunction(max, DateTime64(3, 'Asia/Shanghai'))
)
ENGINE = AggregatingMergeTree
ORDER BY (table_name, kafka_topic, kafka_partition)
SETTINGS non_replicated_deduplication_window = 10000;

CREATE MATERIALIZED VIEW IF NOT EXISTS mv_menu_clicks_watermarks {ON_CLUSTER} TO ingest_watermarks AS
SELECT 'menu_clicks' AS table_name, kafka_topic, kafka_partition,
       max(kafka_offset) AS max_offset, max(server_time) AS max_server_time
FROM menu_clicks GROUP BY kafka_topic, kafka_partition;

CREATE MATERIALIZED VIEW IF NOT EXISTS mv_qr_scans_watermarks {ON_CLUSTER} TO ingest_watermarks AS
SELECT 'qr_scans' AS table_name, kafka_topic, kafka_partition,
       max(kafka_offset) AS max_offset, max(server_time) AS max_server_time
FROM qr_scans GROUP BY kafka_topic, kafka_partition;

CREATE MATERIALIZED VIEW IF NOT EXISTS mv_chat_messages_watermarks {ON_CLUSTER} TO ingest_watermarks AS
SELECT 'chat_messages' AS table_name, kafka_topic, kafka_partition,
       max(kafka_offset) AS max_offset, max(server_time) AS max_server_time
FROM chat_messages GROUP BY kafka_topic, kafka_partition;

CREATE MATERIALIZED VIEW IF NOT EXISTS mv_article_reads_watermarks {ON_CLUSTER} TO ingest_watermarks AS
SELECT 'article_reads' AS table_name, kafka_topic, kafka_partition,
       max(kafka_offset) AS max_offset, max(server_time) AS max_server_time
FROM article_reads GROUP BY kafka_topic, kafka_partition;
