-- Where an overflow lane's row came from (issue 17): the partition and offset of the
-- record in the primary topic that the primary diverted, from its `wxpulse-source` header;
-- -1 on the primary's own rows. A primary that restarts after a crash reads the lane's rows
-- whose source offset is past its watermark: records of its lost batch that the lane
-- already wrote. It replays them into the fans' month counts and does not write them again,
-- whatever its overflow settings now decide for them.
--
-- The quarantine twins get the same columns in the same place (release copies `SELECT *`).

ALTER TABLE menu_clicks {ON_CLUSTER}
    ADD COLUMN IF NOT EXISTS source_partition Int32 DEFAULT -1 COMMENT 'overflow lane rows: partition of the diverted record in the primary topic; -1 otherwise',
    ADD COLUMN IF NOT EXISTS source_offset Int64 DEFAULT -1 COMMENT 'overflow lane rows: offset of the diverted record in the primary topic; -1 otherwise';
ALTER TABLE menu_clicks_quarantine {ON_CLUSTER}
    ADD COLUMN IF NOT EXISTS source_partition Int32 DEFAULT -1,
    ADD COLUMN IF NOT EXISTS source_offset Int64 DEFAULT -1;

ALTER TABLE qr_scans {ON_CLUSTER}
    ADD COLUMN IF NOT EXISTS source_partition Int32 DEFAULT -1 COMMENT 'overflow lane rows: partition of the diverted record in the primary topic; -1 otherwise',
    ADD COLUMN IF NOT EXISTS source_offset Int64 DEFAULT -1 COMMENT 'overflow lane rows: offset of the diverted record in the primary topic; -1 otherwise';
ALTER TABLE qr_scans_quarantine {ON_CLUSTER}
    ADD COLUMN IF NOT EXISTS source_partition Int32 DEFAULT -1,
    ADD COLUMN IF NOT EXISTS source_offset Int64 DEFAULT -1;

ALTER TABLE chat_messages {ON_CLUSTER}
    ADD COLUMN IF NOT EXISTS source_partition Int32 DEFAULT -1 COMMENT 'always -1: chat messages have no overflow lane',
    ADD COLUMN IF NOT EXISTS source_offset Int64 DEFAULT -1 COMMENT 'always -1: chat messages have no overflow lane';
ALTER TABLE chat_messages_quarantine {ON_CLUSTER}
    ADD COLUMN IF NOT EXISTS source_partition Int32 DEFAULT -1,
    ADD COLUMN IF NOT EXISTS source_offset Int64 DEFAULT -1;

ALTER TABLE article_reads {ON_CLUSTER}
    ADD COLUMN IF NOT EXISTS source_partition Int32 DEFAULT -1 COMMENT 'overflow lane rows: partition of the diverted record in the primary topic; -1 otherwise',
    ADD COLUMN IF NOT EXISTS source_offset Int64 DEFAULT -1 COMMENT 'overflow lane rows: offset of the diverted record in the primary topic; -1 otherwise';
ALTER TABLE article_reads_quarantine {ON_CLUSTER}
    ADD COLUMN IF NOT EXISTS source_partition Int32 DEFAULT -1,
    ADD COLUMN IF NOT EXISTS source_offset Int64 DEFAULT -1;

ALTER TABLE orders {ON_CLUSTER}
    ADD COLUMN IF NOT EXISTS source_partition Int32 DEFAULT -1 COMMENT 'overflow lane rows: partition of the diverted record in the primary topic; -1 otherwise',
    ADD COLUMN IF NOT EXISTS source_offset Int64 DEFAULT -1 COMMENT 'overflow lane rows: offset of the diverted record in the primary topic; -1 otherwise';
ALTER TABLE orders_quarantine {ON_CLUSTER}
    ADD COLUMN IF NOT EXISTS source_partition Int32 DEFAULT -1,
    ADD COLUMN IF NOT EXISTS source_offset Int64 DEFAULT -1;
