-- Where each fan_profiles row came from in the fan-profile topic, and the highest offset
-- written per partition in ingest_watermarks (fed by the same INSERT, like the raw
-- tables'): a service starting up loads the table and reads the topic only past these
-- offsets (dimensions.fan_profile_snapshot), since the rows hold at least every record at
-- or below them. Rows written before this migration have -1 and no watermark: their
-- partitions are read from the start, as before.

ALTER TABLE fan_profiles {ON_CLUSTER}
    ADD COLUMN IF NOT EXISTS kafka_partition Int32 DEFAULT -1 COMMENT 'partition of wxpulse.dim.fan_profile the row was mirrored from; -1 before migration 0014',
    ADD COLUMN IF NOT EXISTS kafka_offset Int64 DEFAULT -1 COMMENT 'offset of that record; -1 before migration 0014';

CREATE MATERIALIZED VIEW IF NOT EXISTS mv_fan_profiles_watermarks {ON_CLUSTER} TO ingest_watermarks AS
SELECT 'fan_profiles' AS table_name, 'wxpulse.dim.fan_profile' AS kafka_topic, kafka_partition,
       max(kafka_offset) AS max_offset, max(updated_at) AS max_server_time
FROM fan_profiles WHERE kafka_offset >= 0 GROUP BY kafka_partition;
