//! `wxpulse migrate`: applies `schemas/clickhouse/migrations/*.sql` in order, once each,
//! recording them in `schema_migrations` with a checksum.
//!
//! The SQL is written for a single node; `--cluster NAME` renders the same source for a
//! cluster: `ON CLUSTER`, `Replicated*MergeTree` engines with Keeper paths (also with engine
//! parameters), a `Distributed` table `<name>_all` over the tables listed in [`DISTRIBUTED`]
//! (the raw event tables and the rollups), and `{ALL}` after a table name, which reads the
//! `_all` table on a cluster (the views do, so that they see every shard).
//!
//! `schemas/clickhouse/grants/bi_readonly.sql` (the BI role) is not a migration: it needs
//! RBAC, which the local chdb adapter lacks, so it is applied only on request (`--grants`),
//! and so is `grants/bi_brand.sql`, once per brand (`--grants --brand`; see [`Brand`]).

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
    migration!(5, "0005_rollups.sql"),
    migration!(6, "0006_views.sql"),
    migration!(7, "0007_conversions.sql"),
    migration!(8, "0008_ingest_intents.sql"),
    migration!(9, "0009_dlq_replays.sql"),
    migration!(10, "0010_dead_letters.sql"),
    migration!(11, "0011_brand.sql"),
    migration!(12, "0012_event_id_index.sql"),
    migration!(13, "0013_reply_pairing.sql"),
    migration!(14, "0014_fan_profile_offsets.sql"),
    migration!(15, "0015_quarantine.sql"),
    migration!(16, "0016_associate_contacts.sql"),
    migration!(17, "0017_settled_conversions.sql"),
    migration!(18, "0018_notifications.sql"),
    migration!(19, "0019_fans_to_act_on.sql"),
    migration!(20, "0020_open_conversions_once.sql"),
    migration!(21, "0021_fan_profile_versions.sql"),
    migration!(22, "0022_fan_relationship_changes.sql"),
    migration!(23, "0023_overflow_source.sql"),
];

/// Tables that get a Distributed `<name>_all` on a cluster, after the migration that creates
/// them: (migration, table, sharding key). The views read through them. Tables fed only by
/// materialized views on the shards are never inserted into through `_all`, so they need no
/// key; `fan_profiles` and `notifications` are written through their `_all`, by fan like
/// the events.
pub const DISTRIBUTED: &[(u32, &str, Option<&str>)] = &[
    (1, "menu_clicks", Some("cityHash64(fan_id)")),
    (1, "qr_scans", Some("cityHash64(fan_id)")),
    (1, "chat_messages", Some("cityHash64(fan_id)")),
    (1, "article_reads", Some("cityHash64(fan_id)")),
    (5, "engagement_hourly", None),
    (5, "fan_activity_monthly", None),
    (5, "fan_profiles", Some("cityHash64(fan_id)")),
    (5, "fan_follow_events", None),
    (5, "article_push_stats", None),
    (5, "associate_daily", None),
    (7, "orders", Some("cityHash64(fan_id)")),
    (7, "fan_touches", None),
    (11, "account_brands", None),
    (16, "associate_contact_events", None),
    (18, "notifications", Some("cityHash64(fan_id)")),
    (21, "fan_profile_versions", Some("cityHash64(fan_id)")),
];

/// The BI role and its grants (`wxpulse migrate --grants`); see [`grants`].
pub const GRANTS_SQL: &str = include_str!("../../../schemas/clickhouse/grants/bi_readonly.sql");

/// One brand's role, login, profile, quota and row policies; see [`brand_grants`].
pub const BRAND_GRANTS_SQL: &str = include_str!("../../../schemas/clickhouse/grants/bi_brand.sql");

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
            .replace("{ON_CLUSTER}", "")
            .replace("{ALL}", "");
    };
    let mut out = statement
        .replace("{ON_CLUSTER}", &format!("ON CLUSTER '{cluster}'"))
        .replace("{ALL}", "_all");
    let keeper = "'/clickhouse/tables/{shard}/{database}/{table}', '{replica}'";
    for engine in ["Aggregating", "Summing", "Replacing", ""] {
        // Without parameters (`ENGINE = XMergeTree` then a new line) and with them
        // (`ENGINE = XMergeTree(version, ...)`), which follow the Keeper path and replica.
        out = out
            .replace(
                &format!("ENGINE = {engine}MergeTree\n"),
                &format!("ENGINE = Replicated{engine}MergeTree({keeper})\n"),
            )
            .replace(
                &format!("ENGINE = {engine}MergeTree("),
                &format!("ENGINE = Replicated{engine}MergeTree({keeper}, "),
            );
    }
    out.replace(
        "non_replicated_deduplication_window",
        "replicated_deduplication_window",
    )
}

/// The Distributed tables a cluster gets after migration `version`.
pub fn distributed_tables(version: u32, database: &str, cluster: &str) -> Vec<String> {
    DISTRIBUTED
        .iter()
        .filter(|(v, _, _)| *v == version)
        .map(|(_, t, key)| {
            let key = key.map(|k| format!(", {k}")).unwrap_or_default();
            format!(
                "CREATE TABLE IF NOT EXISTS {t}_all ON CLUSTER '{cluster}' AS {t} \
                 ENGINE = Distributed('{cluster}', '{database}', '{t}'{key})"
            )
        })
        .collect()
}

/// On a cluster, a column added to a table with a Distributed `<name>_all` must also be
/// added to `<name>_all`, which copied the columns when it was created. Only column ALTERs:
/// a Distributed table has no data parts, so no index or projection to add or materialize.
pub fn distributed_alter(rendered: &str) -> Option<String> {
    if !rendered.contains(" COLUMN ") {
        return None;
    }
    DISTRIBUTED.iter().find_map(|(_, t, _)| {
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

/// Every statement migration `m` runs, rendered for a single node or a cluster: its own
/// statements, the Distributed twins of the raw tables' ALTERs and the Distributed tables
/// over what it created.
pub fn rendered(m: &Migration, database: &str, cluster: Option<&str>) -> Vec<String> {
    let mut out = Vec::new();
    for statement in statements(m.sql) {
        let sql = render(&statement, cluster);
        let alter = cluster.and_then(|_| distributed_alter(&sql));
        out.push(sql);
        out.extend(alter);
    }
    if let Some(cluster) = cluster {
        out.extend(distributed_tables(m.version, database, cluster));
    }
    out
}

/// A client for the server, on no particular database (TLS and credentials as the
/// services have them).
fn server(ch: &ClickHouseConfig) -> anyhow::Result<Client> {
    Ok(wxpulse_runtime::sink::server(ch)?)
}

/// Checks that `name` (a database or cluster name, spliced into DDL) is a plain
/// identifier: ASCII letters, digits and `_`, not starting with a digit. Anything else —
/// a quote, a dot, a space — is refused rather than escaped: no real deployment needs it,
/// and every statement then stays exactly what the tests rendered.
pub fn identifier<'a>(what: &str, name: &'a str) -> anyhow::Result<&'a str> {
    let mut chars = name.chars();
    let valid = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && name.len() <= 128;
    if !valid {
        bail!(
            "{what} {name:?} is not a valid identifier: use ASCII letters, digits and _, not \
             starting with a digit (at most 128 characters)"
        );
    }
    Ok(name)
}

/// Checks the database and, if any, the cluster name.
pub fn check_names(database: &str, cluster: Option<&str>) -> anyhow::Result<()> {
    identifier("database", database)?;
    if let Some(c) = cluster {
        identifier("cluster", c)?;
    }
    Ok(())
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
    check_names(database, cluster)?;
    let server = server(ch)?;
    let on_cluster = cluster
        .map(|c| format!(" ON CLUSTER '{c}'"))
        .unwrap_or_default();
    server
        .query(&format!(
            "CREATE DATABASE IF NOT EXISTS `{database}`{on_cluster}"
        ))
        .execute()
        .await
        .map_err(|e| anyhow::anyhow!(wxpulse_runtime::sink::describe(&e, ch)))
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
        for sql in rendered(m, database, cluster) {
            db.query(&sql)
                .execute()
                .await
                .with_context(|| format!("{}: statement failed:\n{sql}", m.name))?;
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

/// The SHA-256 (hex) the grants file stores for the BI user's password: the password itself
/// is never sent to the server.
pub fn password_sha256(password: &str) -> String {
    checksum(password)
}

/// The statements of the grants file, rendered for `database` on a single node or a cluster,
/// with the BI user's password hash (see [`password_sha256`]).
pub fn grants(database: &str, cluster: Option<&str>, password_sha256: &str) -> Vec<String> {
    statements(GRANTS_SQL)
        .iter()
        .map(|s| {
            render(s, cluster)
                .replace("{DATABASE}", &format!("`{database}`"))
                .replace("{BI_PASSWORD_SHA256}", password_sha256)
        })
        .collect()
}

/// Applies the grants file: the read-only BI role and user. Needs a ClickHouse with users
/// and grants; the local chdb adapter has none and refuses the first statement.
pub async fn apply_grants(
    ch: &ClickHouseConfig,
    cluster: Option<&str>,
    password: &str,
) -> anyhow::Result<usize> {
    if password.is_empty() {
        bail!("the BI user needs a password: set WXPULSE_BI_PASSWORD");
    }
    check_names(&ch.database, cluster)?;
    let db = server(ch)?.with_database(&ch.database);
    let hash = password_sha256(password);
    let statements = grants(&ch.database, cluster, &hash);
    for sql in &statements {
        db.query(sql).execute().await.with_context(|| {
            format!(
                "grants: statement failed (it needs a ClickHouse with users and grants; \
                 the local chdb adapter has none):\n{}",
                sql.replace(&hash, "<password sha256>")
            )
        })?;
    }
    Ok(statements.len())
}

/// A brand whose BI users see only its own accounts: `name` is the brand exactly as the rows
/// carry it (`Maison Aurel`: from the account dimension, any text), `id` the plain identifier
/// its ClickHouse objects are named after (`wxpulse_brand_<id>`, login `wxpulse_bi_<id>`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Brand {
    /// `[a-z][a-z0-9_]*`, at most 48 characters.
    pub id: String,
    /// The `brand` value of the rows.
    pub name: String,
}

impl Brand {
    /// Parses `id=Brand Name`, or `name` alone when the name is itself a valid id. Ids are
    /// checked, not escaped, because they become parts of names in DDL; the name is only
    /// ever a string literal, escaped where it is rendered.
    pub fn parse(spec: &str) -> anyhow::Result<Self> {
        let (id, name) = spec.split_once('=').unwrap_or((spec, spec));
        let (id, name) = (id.trim(), name.trim());
        let valid_id = id.len() <= 48
            && id.starts_with(|c: char| c.is_ascii_lowercase())
            && id
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
        if !valid_id {
            bail!(
                "brand {spec:?}: {id:?} is not a valid brand id (lower-case ASCII letters, digits \
                 and _, starting with a letter, at most 48): write --brand <id>=<brand as on the rows>"
            );
        }
        if name.is_empty() || name == "unknown" || name.chars().any(char::is_control) {
            bail!(
                "brand {spec:?}: {name:?} cannot be a brand (empty, `unknown` — the rows of \
                 accounts missing from the account dimension — or control characters)"
            );
        }
        Ok(Brand {
            id: id.to_string(),
            name: name.to_string(),
        })
    }

    /// The role its users hold.
    pub fn role(&self) -> String {
        format!("wxpulse_brand_{}", self.id)
    }

    /// Its login.
    pub fn user(&self) -> String {
        format!("wxpulse_bi_{}", self.id)
    }

    /// The env var holding its login's password.
    pub fn password_env(&self) -> String {
        format!("WXPULSE_BI_PASSWORD_{}", self.id.to_ascii_uppercase())
    }
}

/// `s` inside a ClickHouse single-quoted string literal (backslash escapes).
fn sql_string(s: &str) -> String {
    s.replace('\\', "\\\\").replace('\'', "\\'")
}

/// The BI views: those the read-only role of the grants file may read, in its order (a test
/// keeps them equal to the `v_*` views of the migrations).
pub fn bi_views() -> Vec<&'static str> {
    let prefix = "SELECT ON {DATABASE}.";
    GRANTS_SQL
        .lines()
        .filter(|l| l.ends_with(" TO wxpulse_bi_readonly;"))
        .filter_map(|l| {
            let rest = &l[l.find(prefix)? + prefix.len()..];
            rest.split(' ').next()
        })
        .collect()
}

/// The statements of the brand template for `brand`, rendered for `database` on a single
/// node or a cluster: a statement naming `{VIEW}` once per BI view.
pub fn brand_grants(
    database: &str,
    cluster: Option<&str>,
    brand: &Brand,
    password_sha256: &str,
) -> Vec<String> {
    let views = bi_views();
    statements(BRAND_GRANTS_SQL)
        .iter()
        .flat_map(|s| {
            if s.contains("{VIEW}") {
                views.iter().map(|v| s.replace("{VIEW}", v)).collect()
            } else {
                vec![s.clone()]
            }
        })
        .map(|s| {
            render(&s, cluster)
                .replace("{DATABASE}", &format!("`{database}`"))
                .replace("{BRAND_ID}", &brand.id)
                .replace("{BRAND}", &sql_string(&brand.name))
                .replace("{BI_PASSWORD_SHA256}", password_sha256)
        })
        .collect()
}

/// Applies the brand template for each brand, its login's password from
/// [`Brand::password_env`] (looked up with `password_of`). Run after [`apply_grants`].
pub async fn apply_brand_grants(
    ch: &ClickHouseConfig,
    cluster: Option<&str>,
    brands: &[Brand],
    password_of: impl Fn(&str) -> Option<String>,
) -> anyhow::Result<usize> {
    let mut passwords = Vec::new();
    for b in brands {
        match password_of(&b.password_env()) {
            Some(p) if !p.is_empty() => passwords.push(p),
            _ => bail!(
                "the BI user of brand {:?} ({}) needs a password: set {}",
                b.name,
                b.user(),
                b.password_env()
            ),
        }
    }
    check_names(&ch.database, cluster)?;
    let db = server(ch)?.with_database(&ch.database);
    let mut n = 0;
    for (brand, password) in brands.iter().zip(passwords) {
        let hash = password_sha256(&password);
        for sql in brand_grants(&ch.database, cluster, brand, &hash) {
            db.query(&sql).execute().await.with_context(|| {
                format!(
                    "brand {}: statement failed (it needs a ClickHouse with users, grants and \
                     row policies; the local chdb adapter has none):\n{}",
                    brand.id,
                    sql.replace(&hash, "<password sha256>")
                )
            })?;
            n += 1;
        }
    }
    Ok(n)
}

#[cfg(test)]
mod tests;
