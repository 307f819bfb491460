//! `wxpulse migrate`: applies `schemas/clickhouse/migrations/*.sql` in order, once each,
//! recording them in `schema_migrations` with a checksum.
//!
//! The SQL is written for a single node; `--cluster NAME` renders the same source for a
//! cluster: `ON CLUSTER`, `Replicated*MergeTree` engines with Keeper paths, and a
//! `Distributed` table `<name>_all` (sharded by `cityHash64(fan_id)`) over every raw event table.

use anyhow::{bail, Context};
use clickhouse::{Client, Row};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use wxpulse_runtime::config::ClickHouseConfig;

/// One migration file.
#[derive(Debug, Clone, Copy)]
pub struct Migration {
    /// Ordering number.
    pub version: u32,
    /// File name.
    pub name: &'static str,
    /// SQL text (statements separated by `;` at line end).
    pub sql: &'static str,
}

macro_rules! migration {
    ($v:expr, $name:expr) => {
        Migration {
            version: $v,
            name: $name,
            sql: include_str!(concat!("../../../schemas/clickhouse/migrations/", $name)),
        }
    };
}

/// Every migration, in order.
pub const MIGRATIONS: &[Migration] = &[
    migration!(1, "0001_raw_events.sql"),
    migration!(2, "0002_ingest_watermarks.sql"),
    migration!(3, "0003_interactions_hourly.sql"),
    migration!(4, "0004_enrichment.sql"),
];

/// Raw event tables that get a Distributed `<name>_all` table on a cluster.
pub const RAW_TABLES: &[&str] = &["menu_clicks", "qr_scans", "chat_messages", "article_reads"];

/// Splits a migration into statements, dropping comments and blank ones.
pub fn statements(sql: &str) -> Vec<String> {
    let without_comments: String = sql
        .lines()
        .filter(|l| !l.trim_start().starts_with("--"))
        .collect::<Vec<_>>()
        .join("\n");
    without_comments
        .split(";\n")
        .map(|s| s.trim().trim_end_matches(';').trim().to_string())
        .filter(|s| !s.is_empty())
        .collect()
}

/// Renders a statement for a single node (`cluster = None`) or a cluster.
pub fn render(statement: &str, cluster: Option<&str>) -> String {
    let Some(cluster) = cluster else {
        return statement
            .replace(" {ON_CLUSTER}", "")
            .replace("{ON_CLUSTER}", "");
    };
    let mut out = statement.replace("{ON_CLUSTER}", &format!("ON CLUSTER '{cluster}'"));
    for engine in ["Aggregating", "Summing", "Replacing", ""] {
        let plain = format!("ENGINE = {engine}MergeTree\n");
        let replicated = format!(
            "ENGINE = Replicated{engine}MergeTree('/clickhouse/tables/{{shard}}/{{database}}/{{table}}', '{{replica}}')\n"
        );
        out = out.replace(&plain, &replicated);
    }
    out.replace(
        "non_replicated_deduplication_window",
        "replicated_deduplication_window",
    )
}

/// The Distributed tables a cluster gets over the raw tables.
pub fn distributed_tables(database: &str, cluster: &str) -> Vec<String> {
    RAW_TABLES
        .iter()
        .map(|t| {
            format!(
                "CREATE TABLE IF NOT EXISTS {t}_all ON CLUSTER '{cluster}' AS {t} \
                 ENGINE = Distributed('{cluster}', '{database}', '{t}', cityHash64(fan_id))"
            )
        })
        .collect()
}

/// On a cluster, a column added to a raw table must also be added to its Distributed
/// `<name>_all`, which copied the columns when it was created.
pub fn distributed_alter(rendered: &str) -> Option<String> {
    RAW_TABLES.iter().find_map(|t| {
        let prefix = format!("ALTER TABLE {t} ON CLUSTER");
        rendered.starts_with(&prefix).then(|| {
            rendered.replacen(
                &format!("ALTER TABLE {t} "),
                &format!("ALTER TABLE {t}_all "),
                1,
            )
        })
    })
}

fn checksum(sql: &str) -> String {
    hex::encode(Sha256::digest(sql.as_bytes()))
}

#[derive(Row, Deserialize)]
struct Applied {
    version: u32,
    checksum: String,
}

/// Creates the database and applies pending migrations; returns the versions applied.
pub async fn migrate(ch: &ClickHouseConfig, cluster: Option<&str>) -> anyhow::Result<Vec<u32>> {
    let (url, database) = (ch.url.as_str(), ch.database.as_str());
    let server = Client::default()
        .with_url(url)
        .with_user(&ch.user)
        .with_password(&ch.password);
    let on_cluster = cluster
        .map(|c| format!(" ON CLUSTER '{c}'"))
        .unwrap_or_default();
    server
        .query(&format!(
            "CREATE DATABASE IF NOT EXISTS {database}{on_cluster}"
        ))
        .execute()
        .await
        .with_context(|| format!("cannot create database {database} at {url}"))?;
    let db = server.clone().with_database(database);
    let engine = if cluster.is_some() {
        "ReplicatedMergeTree('/clickhouse/tables/{shard}/{database}/{table}', '{replica}')"
    } else {
        "MergeTree"
    };
    db.query(&format!(
        "CREATE TABLE IF NOT EXISTS schema_migrations{on_cluster} \
         (version UInt32, name String, checksum String, applied_at DateTime DEFAULT now()) \
         ENGINE = {engine} ORDER BY version"
    ))
    .execute()
    .await
    .context("cannot create schema_migrations")?;
    let applied: Vec<Applied> = db
        .query("SELECT version, checksum FROM schema_migrations ORDER BY version")
        .fetch_all()
        .await
        .context("cannot read schema_migrations")?;
    let mut done = Vec::new();
    for m in MIGRATIONS {
        let sum = checksum(m.sql);
        if let Some(a) = applied.iter().find(|a| a.version == m.version) {
            if a.checksum != sum {
                bail!(
                    "migration {} was applied with different content (checksum {} != {}); \
                     never edit an applied migration, add a new one",
                    m.name,
                    a.checksum,
                    sum
                );
            }
            continue;
        }
        for statement in statements(m.sql) {
            let mut rendered = vec![render(&statement, cluster)];
            if cluster.is_some() && m.version > 1 {
                rendered.extend(distributed_alter(&rendered[0]));
            }
            for sql in rendered {
                db.query(&sql)
                    .execute()
                    .await
                    .with_context(|| format!("{}: statement failed:\n{sql}", m.name))?;
            }
        }
        if m.version == 1 {
            if let Some(cluster) = cluster {
                for sql in distributed_tables(database, cluster) {
                    db.query(&sql)
                        .execute()
                        .await
                        .with_context(|| sql.clone())?;
                }
            }
        }
        db.query("INSERT INTO schema_migrations (version, name, checksum) VALUES (?, ?, ?)")
            .bind(m.version)
            .bind(m.name)
            .bind(&sum)
            .execute()
            .await
            .context("cannot record the migration")?;
        done.push(m.version);
    }
    Ok(done)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_are_increasing_and_every_statement_renders_both_ways() {
        let mut last = 0;
        for m in MIGRATIONS {
            assert!(m.version > last, "{} out of order", m.name);
            last = m.version;
            for s in statements(m.sql) {
                let single = render(&s, None);
                assert!(
                    !single.contains("{ON_CLUSTER}") && !single.contains("ON CLUSTER"),
                    "{single}"
                );
                let clustered = render(&s, Some("wx"));
                assert!(clustered.contains("ON CLUSTER 'wx'"), "{clustered}");
                if clustered.contains("ENGINE = ") {
                    assert!(clustered.contains("ENGINE = Replicated"), "{clustered}");
                    assert!(!clustered.contains("non_replicated"), "{clustered}");
                }
            }
        }
    }

    #[test]
    fn statements_split_and_drop_comments() {
        let s = statements("-- c\nCREATE TABLE a (x UInt8) ENGINE = Memory;\n\n-- d\nSELECT 1;\n");
        assert_eq!(
            s,
            vec!["CREATE TABLE a (x UInt8) ENGINE = Memory", "SELECT 1"]
        );
    }
}
