-- Dedup horizon (issue 14.2): a service asks whether an event id its Bloom filters flag is
-- already written — `event_id IN (...) AND server_time >= ...` — before the event goes on.
-- The primary key starts with app_id, so without a skip index that lookup reads every
-- event_id of the week. A bloom_filter index lets it skip granules that cannot hold the id.
-- MATERIALIZE builds the index for parts written before this migration (a background
-- mutation on a server; lookups are correct either way, only slower until it finishes).

ALTER TABLE menu_clicks {ON_CLUSTER} ADD INDEX IF NOT EXISTS idx_event_id event_id TYPE bloom_filter(0.01) GRANULARITY 1;
ALTER TABLE menu_clicks {ON_CLUSTER} MATERIALIZE INDEX idx_event_id;
ALTER TABLE qr_scans {ON_CLUSTER} ADD INDEX IF NOT EXISTS idx_event_id event_id TYPE bloom_filter(0.01) GRANULARITY 1;
ALTER TABLE qr_scans {ON_CLUSTER} MATERIALIZE INDEX idx_event_id;
ALTER TABLE chat_messages {ON_CLUSTER} ADD INDEX IF NOT EXISTS idx_event_id event_id TYPE bloom_filter(0.01) GRANULARITY 1;
ALTER TABLE chat_messages {ON_CLUSTER} MATERIALIZE INDEX idx_event_id;
ALTER TABLE article_reads {ON_CLUSTER} ADD INDEX IF NOT EXISTS idx_event_id event_id TYPE bloom_filter(0.01) GRANULARITY 1;
ALTER TABLE article_reads {ON_CLUSTER} MATERIALIZE INDEX idx_event_id;
ALTER TABLE orders {ON_CLUSTER} ADD INDEX IF NOT EXISTS idx_event_id event_id TYPE bloom_filter(0.01) GRANULARITY 1;
ALTER TABLE orders {ON_CLUSTER} MATERIALIZE INDEX idx_event_id;
