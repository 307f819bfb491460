//! `clickhouse.validate_rows`: the `clickhouse` crate can check every row against its
//! table's columns, at a CPU cost per row. With "first" (the default) a row type that does
//! not match its table fails the first insert with the crate's schema error, and once an
//! insert into a table passed, later ones skip the check; "always" checks every insert.
//! The unchecked sink also sends its inserts uncompressed (`clickhouse.compression = "none"`).

use clickhouse::error::Error;
use wxpulse_e2e::*;
use wxpulse_runtime::config::{Compression, RowValidation};
use wxpulse_runtime::sink::{self, Sink};

const DB: &str = "wx_row_check";

/// What the table holds.
#[derive(clickhouse::Row, serde::Serialize, serde::Deserialize)]
struct Right {
    n: u32,
    s: String,
}

/// `n` is wider than the column: a row type that drifted from its table.
#[derive(clickhouse::Row, serde::Serialize)]
struct Wrong {
    n: u64,
    s: String,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_row_type_that_drifted_from_its_table_fails_the_checked_inserts() -> anyhow::Result<()> {
    let stack = Stack::start("row_check")?;
    let mut cfg = stack.config()?;
    cfg.clickhouse.database = DB.into();
    let server = sink::server(&cfg.clickhouse)?;
    server
        .query(&format!("CREATE DATABASE IF NOT EXISTS {DB}"))
        .execute()
        .await?;
    server
        .query(&format!(
            "CREATE TABLE {DB}.t (n UInt32, s String) ENGINE = MergeTree ORDER BY n"
        ))
        .execute()
        .await?;
    let sink = |mode| {
        let mut ch = cfg.clickhouse.clone();
        ch.validate_rows = mode;
        if mode == RowValidation::Never {
            ch.compression = Compression::None;
        }
        Sink::new(&ch, cfg.retry.clone(), "t", "row_check")
    };
    let schema_error = |r: &Result<(), Error>| matches!(r, Err(Error::SchemaMismatch(_)));
    let wrong = || {
        [Wrong {
            n: 7,
            s: "w".into(),
        }]
    };
    let right = |n| [Right { n, s: "r".into() }];

    let first = sink(RowValidation::First)?;
    let r = first.insert_once("t", &wrong(), "first-1").await;
    assert!(schema_error(&r), "first insert is checked: {r:?}");
    first.insert_once("t", &right(1), "first-2").await?;
    let r = first.insert_once("t", &wrong(), "first-3").await;
    assert!(!schema_error(&r), "after a checked insert passed: {r:?}");

    let always = sink(RowValidation::Always)?;
    always.insert_once("t", &right(2), "always-1").await?;
    let r = always.insert_once("t", &wrong(), "always-2").await;
    assert!(schema_error(&r), "every insert is checked: {r:?}");

    let never = sink(RowValidation::Never)?;
    never.insert_once("t", &right(3), "never-1").await?;
    let r = never.insert_once("t", &wrong(), "never-2").await;
    assert!(!schema_error(&r), "no insert is checked: {r:?}");

    let n: Vec<u32> = sink::client(&cfg.clickhouse)?
        .query("SELECT n FROM t WHERE s = 'r' ORDER BY n")
        .fetch_all()
        .await?;
    assert_eq!(n, vec![1, 2, 3], "the right rows, each once");
    Ok(())
}
