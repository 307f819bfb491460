//! `wxpulse quarantine`: what `validation.unknown_account = "quarantine"` held back, and its
//! release once the account is published.
//!
//! The services write an unknown account's events to the stream table's
//! `<table>_quarantine` twin (migration 0015), which no view reads. Releasing an account
//! copies its held events into the stream table — so the materialized views count them,
//! in their own event-time buckets — and deletes what was copied:
//! - each event once: the copy skips event ids the stream table already has, so a release
//!   that is interrupted, or run twice, or races the service writing the same account's
//!   first known events, never counts one twice;
//! - stamped with the account's brand from the account dimension (the services stamped
//!   `unknown`);
//! - with `kafka_topic` prefixed `released:`, so the copy cannot move a partition's ingest
//!   watermark (or its fan-state restore point) past records the service has not written.
//!
//! On a cluster, run it against each shard's node: the twins are local tables, like the
//! stream tables the services insert into.

use std::collections::BTreeMap;

use anyhow::Context;
use clickhouse::{Client, Row};
use serde::Deserialize;
use wxpulse_runtime::config::ClickHouseConfig;
use wxpulse_runtime::sink::{self, quarantine_table};
use wxpulse_runtime::streams::EventStream;

/// Events held for one account in one stream table.
#[derive(Debug, Clone, PartialEq, Eq, Row, Deserialize)]
pub struct Held {
    /// Stream table (`menu_clicks`, …).
    pub stream_table: String,
    /// The account.
    pub app_id: String,
    /// Events held (each once).
    pub events: u64,
}

/// Everything held, by table and account.
pub async fn held(ch: &ClickHouseConfig) -> anyhow::Result<Vec<Held>> {
    let client = sink::client(ch)?;
    client
        .query(
            "SELECT stream_table, app_id, sum(events) AS events FROM v_quarantine_daily \
             GROUP BY stream_table, app_id ORDER BY stream_table, app_id",
        )
        .fetch_all::<Held>()
        .await
        .context("cannot read v_quarantine_daily (run `wxpulse migrate`)")
}

/// What a release did for one account in one table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Released {
    /// Stream table.
    pub stream_table: String,
    /// The account.
    pub app_id: String,
    /// Events copied into the stream table now.
    pub copied: u64,
    /// Held events that were already in the stream table (an earlier, interrupted release).
    pub already: u64,
}

/// Releases the held events of every account in `brands` (app_id → brand, the accounts
/// the dimension now holds); `dry_run` only counts. Accounts held but absent from `brands`
/// stay held.
pub async fn release(
    ch: &ClickHouseConfig,
    brands: &BTreeMap<String, String>,
    dry_run: bool,
) -> anyhow::Result<Vec<Released>> {
    let client = sink::client(ch)?;
    let mut out = Vec::new();
    for held in held(ch).await? {
        let Some(brand) = brands.get(&held.app_id) else {
            continue;
        };
        let table = EventStream::ALL
            .iter()
            .map(|s| s.table())
            .find(|t| *t == held.stream_table)
            .with_context(|| format!("{} is not a stream table", held.stream_table))?;
        out.push(release_one(&client, table, &held.app_id, brand, dry_run).await?);
    }
    Ok(out)
}

async fn release_one(
    client: &Client,
    table: &str,
    app_id: &str,
    brand: &str,
    dry_run: bool,
) -> anyhow::Result<Released> {
    let twin = quarantine_table(table);
    let count = |filter: &str| {
        format!(
            "SELECT count() FROM {twin} FINAL WHERE app_id = ? AND event_id {filter} \
             (SELECT event_id FROM {table} WHERE app_id = ?)"
        )
    };
    let fresh: u64 = client
        .query(&count("NOT IN"))
        .bind(app_id)
        .bind(app_id)
        .fetch_one()
        .await
        .with_context(|| format!("cannot read {twin}"))?;
    let already: u64 = client
        .query(&count("IN"))
        .bind(app_id)
        .bind(app_id)
        .fetch_one()
        .await
        .with_context(|| format!("cannot read {twin}"))?;
    if !dry_run {
        if fresh > 0 {
            client
                .query(&format!(
                    "INSERT INTO {table} \
                     SELECT * REPLACE (? AS brand, concat('released:', kafka_topic) AS kafka_topic) \
                     FROM {twin} FINAL \
                     WHERE app_id = ? AND event_id NOT IN (SELECT event_id FROM {table} WHERE app_id = ?)"
                ))
                .bind(brand)
                .bind(app_id)
                .bind(app_id)
                .execute()
                .await
                .with_context(|| format!("cannot copy {app_id}'s events from {twin} into {table}"))?;
        }
        // Only what the stream table now has: an event the service quarantined meanwhile
        // stays for the next release.
        client
            .query(&format!(
                "ALTER TABLE {twin} DELETE WHERE app_id = ? \
                 AND event_id IN (SELECT event_id FROM {table} WHERE app_id = ?)"
            ))
            .bind(app_id)
            .bind(app_id)
            .with_setting("mutations_sync", "2")
            .with_setting("allow_nondeterministic_mutations", "1")
            .execute()
            .await
            .with_context(|| format!("cannot delete the released events from {twin}"))?;
    }
    Ok(Released {
        stream_table: table.to_string(),
        app_id: app_id.to_string(),
        copied: fresh,
        already,
    })
}
