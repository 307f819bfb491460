-- Every version of a fan's relationship and associate the profiles have carried (issue 17):
-- fan_profiles keeps only the newest, so a change (customer -> vip) that happened while no
-- notifier ran left no trace the notifier could find on restart. The materialized view
-- copies each profile row the mirror inserts; replaying the topic writes the same rows
-- again and ReplacingMergeTree on the full key makes that harmless (read with FINAL). The
-- notifier reads the changes of the last notifier.max_age from here (a change is the status
-- of a version differing from the one before it, by updated_at).
CREATE TABLE IF NOT EXISTS fan_profile_versions {ON_CLUSTER}
(
    app_id           LowCardinality(String),
    fan_id           UInt64 COMMENT 'as fan_profiles.fan_id',
    status           LowCardinality(String) COMMENT 'prospect, customer, vip, unknown',
    associate_userid LowCardinality(String) COMMENT 'bound WeCom associate, empty when none',
    updated_at       DateTime64(3, 'Asia/Shanghai') COMMENT 'the version'
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(updated_at)
ORDER BY (app_id, fan_id, updated_at)
SETTINGS non_replicated_deduplication_window = 10000;

CREATE MATERIALIZED VIEW IF NOT EXISTS mv_fan_profile_versions {ON_CLUSTER} TO fan_profile_versions AS
SELECT app_id, fan_id, status, associate_userid, updated_at
FROM fan_profiles WHERE is_deleted = 0;

-- The versions already there: each fan's newest, so the first change after this migration
-- has a version before it. (On a cluster this reads the node migrate runs on.)
INSERT INTO fan_profile_versions
SELECT app_id, fan_id, status, associate_userid, updated_at
FROM fan_profiles FINAL WHERE is_deleted = 0;
