-- WeCom associates' external contacts (issue 18): who added or removed whom, as WeCom's
-- change_external_contact callbacks reported it to the gateway (or a backfill of the
-- contact lists loaded it), copied by `wxpulse dims mirror` from the compacted topic
-- wxpulse.dim.associate_contact. One row per change; replaying the topic writes the same
-- rows again and ReplacingMergeTree on the full key makes that harmless (read with FINAL).
-- contact_id is the customer's ExternalUserID pseudonymised with the services' key: the
-- fan_id of the same customer's WeCom events (qr_scans of a contact-me code), so the two
-- join. Internal, like fan_follow_events: BI reads v_associate_contacts, which has no ids.
CREATE TABLE IF NOT EXISTS associate_contact_events {ON_CLUSTER}
(
    corp_id    LowCardinality(String) COMMENT 'WeCom CorpID: the app_id of the corp''s WeCom events',
    userid     LowCardinality(String) COMMENT 'the associate''s WeCom userid',
    contact_id UInt64 COMMENT 'the customer: HMAC of the ExternalUserID, as fan_id',
    change     LowCardinality(String) COMMENT 'added, removed_by_associate (del_external_contact) or removed_by_customer (del_follow_user)',
    at         DateTime64(3, 'Asia/Shanghai') COMMENT 'CreateTime of the callback',
    state      String COMMENT 'State of the contact-me code an addition came through; empty otherwise'
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(at)
ORDER BY (corp_id, userid, contact_id, change, at)
SETTINGS non_replicated_deduplication_window = 10000;

-- Per associate: the customers who are contacts now (their latest change is an addition),
-- every customer ever added and those added through a contact-me code, and the pairs the
-- customer or the associate ended (their latest change is that removal). A removal and an
-- addition in the same millisecond count as the removal.
CREATE OR REPLACE VIEW v_associate_contacts {ON_CLUSTER} AS
WITH (SELECT (groupArray(app_id), groupArray(brand)) FROM account_brand) AS brand_of
SELECT *, transform(toString(app_id), brand_of.1, brand_of.2, '') AS brand
FROM
(
    SELECT
        corp_id AS app_id,
        userid,
        countIf(latest = 'added') AS contacts_now,
        countIf(ever_added) AS contacts_ever_added,
        countIf(through_code) AS added_through_code,
        countIf(latest = 'removed_by_customer') AS removed_by_customer,
        countIf(latest = 'removed_by_associate') AS removed_by_associate,
        max(last_change) AS last_change
    FROM
    (
        SELECT
            corp_id,
            userid,
            contact_id,
            argMax(change, (at, change != 'added')) AS latest,
            max(change = 'added') = 1 AS ever_added,
            max(change = 'added' AND state != '') = 1 AS through_code,
            max(at) AS last_change
        FROM associate_contact_events{ALL} FINAL
        GROUP BY corp_id, userid, contact_id
    )
    GROUP BY corp_id, userid
);
