-- Quarantine twins of the five stream tables (validation.unknown_account = "quarantine"):
-- an event whose app_id the account dimension does not hold is enriched and written here
-- instead of the stream table. No materialized view reads these tables, so no rollup, no
-- v_* view and no watermark ever counts them; v_quarantine_daily says what is held.
-- `wxpulse quarantine release` copies an account's rows into the stream table once the
-- account is published (the stream table's views then count them, in their own event-time
-- buckets) and deletes what it copied.
--
-- ReplacingMergeTree on the stream table's sort key, which ends in event_id: the service
-- inserts quarantined rows before the batch's rows and outside ingest_watermarks, so a crash
-- in between re-reads the batch and may insert a row twice; the copy merges away (read
-- with FINAL, as the view and the release do).
--
-- A later migration that adds a column to a stream table adds it to its twin too
-- (release copies `SELECT *`).

CREATE TABLE IF NOT EXISTS menu_clicks_quarantine {ON_CLUSTER} AS menu_clicks
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(event_time)
ORDER BY (app_id, toStartOfHour(event_time), fan_id, event_id)
TTL toDateTime(event_time) + INTERVAL 400 DAY
SETTINGS non_replicated_deduplication_window = 10000;

CREATE TABLE IF NOT EXISTS qr_scans_quarantine {ON_CLUSTER} AS qr_scans
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(event_time)
ORDER BY (app_id, toStartOfHour(event_time), fan_id, event_id)
TTL toDateTime(event_time) + INTERVAL 400 DAY
SETTINGS non_replicated_deduplication_window = 10000;

CREATE TABLE IF NOT EXISTS chat_messages_quarantine {ON_CLUSTER} AS chat_messages
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(event_time)
ORDER BY (app_id, toStartOfHour(event_time), fan_id, event_id)
TTL toDateTime(event_time) + INTERVAL 400 DAY
SETTINGS non_replicated_deduplication_window = 10000;

CREATE TABLE IF NOT EXISTS article_reads_quarantine {ON_CLUSTER} AS article_reads
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(event_time)
ORDER BY (app_id, toStartOfHour(event_time), fan_id, event_id)
TTL toDateTime(event_time) + INTERVAL 400 DAY
SETTINGS non_replicated_deduplication_window = 10000;

CREATE TABLE IF NOT EXISTS orders_quarantine {ON_CLUSTER} AS orders
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(event_time)
ORDER BY (app_id, toStartOfHour(event_time), fan_id, event_id)
TTL toDateTime(event_time) + INTERVAL 800 DAY
SETTINGS non_replicated_deduplication_window = 10000;

-- Quarantined events per day (Asia/Shanghai, event time), stream table and account: what
-- is held out of every other view, and since when.
-- Like v_dead_letters_daily, it belongs to no brand (brand = ''): an account the
-- dimension does not know has none.
CREATE OR REPLACE VIEW v_quarantine_daily {ON_CLUSTER} AS
SELECT *, '' AS brand
FROM
(
SELECT
    day,
    stream_table,
    app_id,
    count() AS events,
    min(ingested_at) AS first_quarantined,
    max(ingested_at) AS last_quarantined
FROM
(
SELECT 'menu_clicks' AS stream_table, app_id, toDate(event_time, 'Asia/Shanghai') AS day, event_id, ingested_at FROM menu_clicks_quarantine FINAL
UNION ALL
SELECT 'qr_scans' AS stream_table, app_id, toDate(event_time, 'Asia/Shanghai') AS day, event_id, ingested_at FROM qr_scans_quarantine FINAL
UNION ALL
SELECT 'chat_messages' AS stream_table, app_id, toDate(event_time, 'Asia/Shanghai') AS day, event_id, ingested_at FROM chat_messages_quarantine FINAL
UNION ALL
SELECT 'article_reads' AS stream_table, app_id, toDate(event_time, 'Asia/Shanghai') AS day, event_id, ingested_at FROM article_reads_quarantine FINAL
UNION ALL
SELECT 'orders' AS stream_table, app_id, toDate(event_time, 'Asia/Shanghai') AS day, event_id, ingested_at FROM orders_quarantine FINAL
)
GROUP BY day, stream_table, app_id
);
