-- First rollup: interactions per account, stream and hour (Asia/Shanghai), summed on
-- merge. Fed by materialized views in the same INSERT as the raw rows; a retried insert
-- with the same dedup token is dropped here too
-- (deduplicate_blocks_in_dependent_materialized_views). Read with sum(events).

CREATE TABLE IF NOT EXISTS interactions_hourly {ON_CLUSTER}
(
    app_id LowCardinality(String),
    stream LowCardinality(String) COMMENT 'menu_click, qr_scan, chat_message, article_read',
    hour   DateTime('Asia/Shanghai'),
    events UInt64
)
ENGINE = SummingMergeTree
PARTITION BY toYYYYMM(hour)
ORDER BY (app_id, stream, hour)
SETTINGS non_replicated_deduplication_window = 10000;

CREATE MATERIALIZED VIEW IF NOT EXISTS mv_menu_clicks_hourly {ON_CLUSTER} TO interactions_hourly AS
SELECT app_id, 'menu_click' AS stream, toStartOfHour(toDateTime(event_time, 'Asia/Shanghai')) AS hour, count() AS events
FROM menu_clicks GROUP BY app_id, hour;

CREATE MATERIALIZED VIEW IF NOT EXISTS mv_qr_scans_hourly {ON_CLUSTER} TO interactions_hourly AS
SELECT app_id, 'qr_scan' AS stream, toStartOfHour(toDateTime(event_time, 'Asia/Shanghai')) AS hour, count() AS events
FROM qr_scans GROUP BY app_id, hour;

CREATE MATERIALIZED VIEW IF NOT EXISTS mv_chat_messages_hourly {ON_CLUSTER} TO interactions_hourly AS
SELECT app_id, 'chat_message' AS stream, toStartOfHour(toDateTime(event_time, 'Asia/Shanghai')) AS hour, count() AS events
FROM chat_messages GROUP BY app_id, hour;

CREATE MATERIALIZED VIEW IF NOT EXISTS mv_article_reads_hourly {ON_CLUSTER} TO interactions_hourly AS
SELECT app_id, 'article_read' AS stream, toStartOfHour(toDateTime(event_time, 'Asia/Shanghai')) AS hour, count() AS events
FROM article_reads GROUP BY app_id, hour;
