-- The relationship changes the notifier tells of after a downtime (issue 17), read through
-- every shard. 0021 left the notifier reading `fan_profile_versions` itself, which on a
-- cluster is the one shard of the node it connects to: changes of fans on the other shards
-- were never told. This parameterized view reads fan_profile_versions{ALL}, so a single node
-- and a cluster give the same answer:
--     SELECT * FROM fan_relationship_changes(since_ms = <unix ms>)
-- A change is a version whose status differs from the fan's version before it (by
-- updated_at); versions repeated by a replay have the same status and are not changes.
-- Internal (it has fan ids), like fan_follow_history: not for the BI role.
CREATE OR REPLACE VIEW fan_relationship_changes {ON_CLUSTER} AS
SELECT
    app_id,
    fan_id,
    from_status,
    to_status,
    associate_userid,
    previous_associate_userid,
    toUnixTimestamp64Milli(updated_at) AS changed_at
FROM
(
    SELECT
        app_id,
        fan_id,
        status AS to_status,
        associate_userid,
        updated_at,
        lagInFrame(status, 1, '') OVER w AS from_status,
        lagInFrame(associate_userid, 1, '') OVER w AS previous_associate_userid
    FROM fan_profile_versions{ALL} FINAL
    WHERE (app_id, fan_id) GLOBAL IN (
        SELECT app_id, fan_id FROM fan_profile_versions{ALL}
        WHERE updated_at >= fromUnixTimestamp64Milli({since_ms:Int64}))
    WINDOW w AS (PARTITION BY app_id, fan_id ORDER BY updated_at
                 ROWS BETWEEN 1 PRECEDING AND CURRENT ROW)
)
WHERE updated_at >= fromUnixTimestamp64Milli({since_ms:Int64})
  AND from_status != '' AND from_status != to_status;

-- 0021's backfill read the fan profiles of the node migrate ran on; on a cluster the other
-- shards' fans had no version, so their first change had nothing before it and was not
-- told. Give every fan without a version its newest profile, through the Distributed table
-- (by fan, as fan_profiles). On a single node every fan already has one: nothing is written.
INSERT INTO fan_profile_versions{ALL}
SELECT app_id, fan_id, status, associate_userid, updated_at
FROM fan_profiles{ALL} FINAL
WHERE is_deleted = 0
  AND (app_id, fan_id) GLOBAL NOT IN (SELECT app_id, fan_id FROM fan_profile_versions{ALL});
