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
];

/// Tables that get a Distributed `<name>_all` on a cluster, after the migration that creates
/// them: (migration, table, sharding key). The views read through them. Tables fed only by
/// materialized views on the shards are never inserted into through `_all`, so they need no
/// key; `fan_profiles` is written through `fan_profiles_all`, by fan like the events.
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
/// added to `<name>_all`, which copied the columns when it was created.
pub fn distributed_alter(rendered: &str) -> Option<String> {
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
                // A backfill (INSERT ... SELECT) runs once, on the node that migrates: its
                // rows are read by every shard through the Distributed table.
                let backfill = s.starts_with("INSERT INTO ");
                assert_eq!(
                    clustered.contains("ON CLUSTER 'wx'"),
                    !backfill,
                    "{clustered}"
                );
                if clustered.contains("ENGINE = ") {
                    assert!(clustered.contains("ENGINE = Replicated"), "{clustered}");
                    assert!(!clustered.contains("non_replicated"), "{clustered}");
                }
                for sql in [&single, &clustered] {
                    assert!(!sql.contains("{ALL}"), "{sql}");
                }
            }
        }
    }

    /// The identifiers that follow each occurrence of `prefix` in `sql`.
    fn names_after<'a>(sql: &'a str, prefix: &str) -> Vec<&'a str> {
        sql.match_indices(prefix)
            .map(|(i, _)| {
                let rest = &sql[i + prefix.len()..];
                let end = rest
                    .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                    .unwrap_or(rest.len());
                &rest[..end]
            })
            .collect()
    }

    /// Every statement of every migration, without comments.
    fn all_sql() -> String {
        MIGRATIONS
            .iter()
            .flat_map(|m| statements(m.sql))
            .collect::<Vec<_>>()
            .join("\n")
    }

    #[test]
    fn engines_with_parameters_replicate_with_the_keeper_path_first() {
        let s = "CREATE TABLE t {ON_CLUSTER} (v UInt8, d UInt8)\n\
                 ENGINE = ReplacingMergeTree(v, d)\nORDER BY v";
        assert_eq!(
            render(s, Some("wx")),
            "CREATE TABLE t ON CLUSTER 'wx' (v UInt8, d UInt8)\n\
             ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/{database}/{table}', \
             '{replica}', v, d)\nORDER BY v"
        );
        assert_eq!(
            render("SELECT * FROM r{ALL} JOIN s{ALL} USING k", Some("wx")),
            "SELECT * FROM r_all JOIN s_all USING k"
        );
        assert_eq!(render("SELECT * FROM r{ALL}", None), "SELECT * FROM r");
    }

    #[test]
    fn every_materialized_view_target_has_a_dedup_window() {
        // Without its own window an MV target double-counts a retried insert (ADAPTER.md).
        let sql = all_sql();
        let creates: Vec<String> = MIGRATIONS
            .iter()
            .flat_map(|m| statements(m.sql))
            .filter(|s| s.starts_with("CREATE TABLE"))
            .collect();
        let targets = names_after(&sql, "{ON_CLUSTER} TO ");
        assert_eq!(
            targets.len(),
            sql.matches("CREATE MATERIALIZED VIEW").count(),
            "every materialized view writes TO a table: {targets:?}"
        );
        for target in targets {
            let create = creates
                .iter()
                .find(|c| names_after(c, "CREATE TABLE IF NOT EXISTS ")[0] == target)
                .unwrap_or_else(|| panic!("no CREATE TABLE for MV target {target}"));
            assert!(
                create.contains("non_replicated_deduplication_window"),
                "{target} has no dedup window"
            );
        }
    }

    #[test]
    fn views_read_tables_that_get_a_distributed_table_before_them() {
        for m in MIGRATIONS {
            let sql = statements(m.sql).join("\n");
            for (i, _) in sql.match_indices("{ALL}") {
                let before = &sql[..i];
                let start = before
                    .rfind(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                    .map_or(0, |p| p + 1);
                let table = &before[start..];
                assert!(
                    DISTRIBUTED
                        .iter()
                        .any(|(v, t, _)| *t == table && *v <= m.version),
                    "{}: {table}{{ALL}} has no Distributed table",
                    m.name
                );
            }
        }
        let m5 = MIGRATIONS.iter().find(|m| m.version == 5).expect("0005");
        let sql = rendered(m5, "wxpulse", Some("wx"));
        assert!(sql.iter().any(|s| s.starts_with(
            "CREATE TABLE IF NOT EXISTS fan_profiles_all ON CLUSTER 'wx' AS fan_profiles \
             ENGINE = Distributed('wx', 'wxpulse', 'fan_profiles', cityHash64(fan_id))"
        )));
        assert!(sql
            .last()
            .expect("statements")
            .contains("associate_daily_all"));
        assert_eq!(
            rendered(m5, "wxpulse", None).len(),
            statements(m5.sql).len(),
            "a single node gets no Distributed tables"
        );
    }

    /// The `v_*` views the migrations create, each once, in the order first created (a later
    /// migration replaces a view, never adds it twice).
    fn bi_views_of_migrations(sql: &str) -> Vec<&str> {
        let mut bi: Vec<&str> = Vec::new();
        for v in names_after(sql, "CREATE OR REPLACE VIEW ") {
            if v.starts_with("v_") && !bi.contains(&v) {
                bi.push(v);
            }
        }
        bi
    }

    /// The latest definition of `view` in the migrations.
    fn latest_definition(view: &str) -> String {
        MIGRATIONS
            .iter()
            .rev()
            .flat_map(|m| statements(m.sql).into_iter().rev())
            .find(|s| s.starts_with(&format!("CREATE OR REPLACE VIEW {view} ")))
            .unwrap_or_else(|| panic!("{view} is not created"))
    }

    #[test]
    fn the_bi_role_may_read_every_v_view_and_nothing_else() {
        let sql = all_sql();
        let bi = bi_views_of_migrations(&sql);
        assert!(bi.len() >= 10, "{bi:?}");
        let granted: Vec<&str> = statements(GRANTS_SQL)
            .iter()
            .filter(|s| s.ends_with("TO wxpulse_bi_readonly"))
            .map(|s| names_after(s, "{DATABASE}.")[0])
            .map(|v| {
                *bi.iter()
                    .find(|b| **b == v)
                    .unwrap_or_else(|| panic!("{v} granted"))
            })
            .collect();
        assert_eq!(granted, bi, "one SELECT grant per BI view, in order");
        let owned = names_after(
            GRANTS_SQL,
            "MODIFY SQL SECURITY DEFINER DEFINER = wxpulse_views_owner",
        );
        assert_eq!(owned.len(), bi.len(), "every BI view runs as its owner");
        for v in &bi {
            assert!(
                GRANTS_SQL.contains(&format!(
                    "ALTER TABLE {{DATABASE}}.{v} {{ON_CLUSTER}} MODIFY SQL SECURITY DEFINER"
                )),
                "{v} has no owner"
            );
        }
    }

    #[test]
    fn grants_render_for_a_node_and_a_cluster_without_the_password() {
        let hash = password_sha256("s3cret");
        assert_eq!(hash.len(), 64);
        for cluster in [None, Some("wx")] {
            let sql = grants("wxpulse", cluster, &hash);
            assert_eq!(sql.len(), statements(GRANTS_SQL).len());
            for s in &sql {
                assert!(!s.contains('{') || s.contains("{shard}"), "token left: {s}");
                assert!(!s.contains("s3cret"), "{s}");
                assert_eq!(s.contains("ON CLUSTER 'wx'"), cluster.is_some(), "{s}");
            }
            assert!(sql.iter().any(|s| s.contains(&hash)));
            assert!(
                sql.iter()
                    .any(|s| s
                        .contains("SELECT ON `wxpulse`.v_monthly_active TO wxpulse_bi_readonly"))
            );
        }
    }

    #[test]
    fn every_bi_view_has_the_brand_of_its_account() {
        let sql = all_sql();
        let bi = bi_views_of_migrations(&sql);
        assert_eq!(
            bi_views(),
            bi,
            "bi_views() lists the views of the grants file"
        );
        for v in &bi {
            let def = latest_definition(v);
            assert!(def.contains(" AS brand"), "{v}: no brand column\n{def}");
            // Dead letters and quarantined events belong to no known account.
            if !matches!(*v, "v_dead_letters_daily" | "v_quarantine_daily") {
                assert!(
                    def.contains(
                        "transform(toString(app_id), brand_of.1, brand_of.2, '') AS brand"
                    ) && def.contains("FROM account_brand) AS brand_of"),
                    "{v}: brand is not its account's (account_brand)\n{def}"
                );
            }
        }
    }

    #[test]
    fn brands_parse_with_an_id_and_refuse_what_cannot_name_a_role() {
        let b = Brand::parse("aur=Maison Aurel").expect("id=name");
        assert_eq!((b.id.as_str(), b.name.as_str()), ("aur", "Maison Aurel"));
        assert_eq!(
            (b.role(), b.user(), b.password_env()),
            (
                "wxpulse_brand_aur".to_string(),
                "wxpulse_bi_aur".to_string(),
                "WXPULSE_BI_PASSWORD_AUR".to_string()
            )
        );
        let plain = Brand::parse("velmont").expect("a name that is an id");
        assert_eq!(
            (plain.id.as_str(), plain.name.as_str()),
            ("velmont", "velmont")
        );
        assert_eq!(
            Brand::parse("lnd=Lune Dorée").expect("any text").name,
            "Lune Dorée"
        );
        for bad in [
            "Maison Aurel",
            "Velmont",
            "1x=X",
            "a-b=X",
            "a b=X",
            "=X",
            "x=",
            "x=unknown",
            "unknown",
            "x=a\nb",
        ] {
            assert!(Brand::parse(bad).is_err(), "{bad:?} accepted");
        }
        let e = Brand::parse("Maison Aurel").expect_err("not an id");
        assert!(e.to_string().contains("--brand <id>=<brand"), "{e}");
    }

    #[test]
    fn a_brand_role_reads_every_bi_view_through_its_row_policy_and_nothing_else() {
        let brand = Brand::parse("aur=Maison Aurel").expect("brand");
        let hash = password_sha256("s3cret");
        let views = bi_views();
        for cluster in [None, Some("wx")] {
            let sql = brand_grants("wxpulse", cluster, &brand, &hash);
            let on = if cluster.is_some() {
                " ON CLUSTER 'wx'"
            } else {
                ""
            };
            for s in &sql {
                assert!(!s.contains('{') || s.contains("{shard}"), "token left: {s}");
                assert!(!s.contains("s3cret"), "{s}");
                assert_eq!(s.contains("ON CLUSTER 'wx'"), cluster.is_some(), "{s}");
            }
            let index = |want: &str| {
                let found: Vec<usize> = (0..sql.len()).filter(|i| sql[*i] == want).collect();
                assert_eq!(found.len(), 1, "{want:?} is there once: {found:?}");
                found[0]
            };
            for v in &views {
                let open = index(&format!(
                    "CREATE ROW POLICY OR REPLACE wxpulse_all_rows{on} ON `wxpulse`.{v} \
                     FOR SELECT USING 1 AS PERMISSIVE TO ALL"
                ));
                let policy = index(&format!(
                    "CREATE ROW POLICY OR REPLACE wxpulse_brand_aur{on} ON `wxpulse`.{v} \
                     FOR SELECT USING brand = 'Maison Aurel' AS RESTRICTIVE TO wxpulse_brand_aur"
                ));
                let grant = index(&format!(
                    "GRANT{on} SELECT ON `wxpulse`.{v} TO wxpulse_brand_aur"
                ));
                assert!(
                    open < grant && policy < grant,
                    "{v}: readable before its policy"
                );
            }
            // The role gets the views and nothing else; the login gets the role.
            let granted: Vec<&String> = sql.iter().filter(|s| s.starts_with("GRANT")).collect();
            assert_eq!(granted.len(), views.len() + 1, "{granted:#?}");
            for g in granted {
                assert!(
                    g.ends_with(" TO wxpulse_brand_aur") && g.contains(" SELECT ON `wxpulse`.v_")
                        || g == &format!("GRANT{on} wxpulse_brand_aur TO wxpulse_bi_aur"),
                    "{g}"
                );
            }
            let has = |prefix: &str, parts: &[&str]| {
                sql.iter()
                    .any(|s| s.starts_with(prefix) && parts.iter().all(|p| s.contains(p)))
            };
            assert!(has("CREATE ROLE IF NOT EXISTS wxpulse_brand_aur", &[]));
            assert!(has(
                "CREATE SETTINGS PROFILE OR REPLACE wxpulse_brand_aur",
                &["readonly = 2", "max_execution_time", "TO wxpulse_brand_aur"]
            ));
            assert!(has(
                "CREATE QUOTA OR REPLACE wxpulse_brand_aur",
                &["FOR INTERVAL 1 hour MAX queries", "TO wxpulse_brand_aur"]
            ));
            assert!(has(
                "CREATE USER IF NOT EXISTS wxpulse_bi_aur",
                &["IDENTIFIED WITH sha256_hash BY", &hash]
            ));
            assert!(has(
                "ALTER USER wxpulse_bi_aur",
                &[
                    "DEFAULT ROLE wxpulse_brand_aur",
                    "DEFAULT DATABASE `wxpulse`",
                    "readonly = 2"
                ]
            ));
        }
    }

    #[test]
    fn a_brand_name_cannot_escape_its_string_literal() {
        let brand = Brand::parse(r"evil=x' OR 1 = 1 OR brand = '\").expect("any text");
        let sql = brand_grants("wxpulse", None, &brand, "h");
        let policies: Vec<&String> = sql
            .iter()
            .filter(|s| s.starts_with("CREATE ROW POLICY OR REPLACE wxpulse_brand_evil"))
            .collect();
        assert_eq!(policies.len(), bi_views().len());
        for p in policies {
            assert!(
                p.ends_with(r"USING brand = 'x\' OR 1 = 1 OR brand = \'\\' AS RESTRICTIVE TO wxpulse_brand_evil"),
                "{p}"
            );
        }
    }

    #[test]
    fn database_and_cluster_names_must_be_identifiers() {
        for good in ["wxpulse", "wx_2", "_x", "A1"] {
            assert!(identifier("database", good).is_ok(), "{good}");
        }
        for bad in [
            "",
            "1db",
            "wx-pulse",
            "wx.pulse",
            "db`; DROP TABLE x",
            "a'b",
            "wx pulse",
            "ü",
        ] {
            let e = identifier("database", bad).expect_err(bad).to_string();
            assert!(
                e.contains("not a valid identifier") && e.contains("database"),
                "{e}"
            );
        }
        let e = check_names("wxpulse", Some("c'; DROP")).expect_err("cluster");
        assert!(e.to_string().starts_with("cluster \"c'; DROP\""), "{e}");
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
