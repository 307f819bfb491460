//! An adopter's event files loaded with `wxpulse events load` reach ClickHouse exactly as
//! live events do: a JSON Lines file and a CSV file of menu clicks (with repeats across
//! the two files and clicks of an account nobody published) are written once each, keyed
//! by fan, while a file with a bad line and a dry run produce nothing. The expected rows
//! are counted here from the lines the test wrote.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Output;

use crate::golden::{account, publish, rows_in};
use wxpulse_e2e::*;

const DB: &str = "wx_event_files";

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_millis() as i64
}

/// One click: (event id, app_id, openid, event_key, client time).
type Click = (String, &'static str, String, &'static str, i64);

fn id(n: u32) -> String {
    format!("00000000-0000-4000-8000-{n:012x}")
}

fn jsonl(clicks: &[Click]) -> String {
    clicks
        .iter()
        .map(|(id, app, openid, key, t)| {
            serde_json::json!({
                "event_id": id, "app_id": app, "openid": openid,
                "client_time": t, "server_time": t + 800,
                "event": "CLICK", "event_key": key,
            })
            .to_string()
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn csv(clicks: &[Click]) -> String {
    let mut text =
        "event_id,app_id,openid,unionid,client_time,server_time,event,event_key,menu_id\n"
            .to_string();
    for (id, app, openid, key, t) in clicks {
        text.push_str(&format!(
            "{id},{app},{openid},,{t},{},VIEW,{key},\n",
            t + 800
        ));
    }
    text
}

fn load(stack: &Stack, file: &Path, extra: &[&str]) -> anyhow::Result<Output> {
    Ok(std::process::Command::new(binary("wxpulse")?)
        .args([
            "--brokers",
            &stack.brokers,
            "--clickhouse",
            &stack.clickhouse,
        ])
        .args([
            "--database",
            DB,
            "events",
            "load",
            "--stream",
            "menu_clicks",
            "--file",
        ])
        .arg(file)
        .args(extra)
        .output()?)
}

fn text(out: &Output) -> String {
    format!(
        "status {}\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn event_files_are_loaded_once_each_and_bad_files_produce_nothing() -> anyhow::Result<()> {
    let stack = Stack::start("event-files")?;
    stack.prepare(DB, 2).await?;
    publish(&stack, vec![account("wxa", "Maison")]).await?;
    let mut service = Service::start("wxpulse-menu-clicks", &stack, DB, &[])?;
    let dir = std::env::temp_dir().join(format!("wxpulse-event-files-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let t0 = now_ms() - 3 * 3_600_000;
    let keys = ["SHOP", "STORY", "MEMBER"];
    let click = |n: u32, app: &'static str| -> Click {
        (
            id(n),
            app,
            format!("oFILE_{}", n % 7),
            keys[(n % 3) as usize],
            t0 + i64::from(n) * 1_000,
        )
    };

    // A file with one bad line (not a UUID) produces nothing, and says which line.
    let mut refused: Vec<Click> = (900..903).map(|n| click(n, "wxa")).collect();
    refused[1].0 = "e-901".to_string();
    let path = dir.join("refused.jsonl");
    std::fs::write(&path, jsonl(&refused))?;
    let out = load(&stack, &path, &[])?;
    assert!(!out.status.success(), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("line 2: invalid_field: event_id is not a UUID"),
        "{}",
        text(&out)
    );
    // A dry run produces nothing either.
    let dry: Vec<Click> = (950..955).map(|n| click(n, "wxa")).collect();
    let path = dir.join("dry.jsonl");
    std::fs::write(&path, jsonl(&dry))?;
    let out = load(&stack, &path, &["--dry-run"])?;
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("5 valid menu_clicks events, 0 bad"),
        "{}",
        text(&out)
    );

    // The JSON Lines file: 40 clicks of wxa, 4 of them repeated later in the file (an
    // export of a log with retries), and 3 of wxb, an account nobody published.
    let mut lines: Vec<Click> = (1..=40).map(|n| click(n, "wxa")).collect();
    lines.extend([5, 17, 23, 31].map(|n| click(n, "wxa")));
    lines.extend((41..=43).map(|n| click(n, "wxb")));
    let path = dir.join("clicks.jsonl");
    std::fs::write(&path, jsonl(&lines))?;
    let out = load(&stack, &path, &[])?;
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("produced 47 menu_clicks events"),
        "{}",
        text(&out)
    );
    // The CSV file: 10 new clicks and 2 the JSON Lines file already had.
    let mut rows: Vec<Click> = (44..=53).map(|n| click(n, "wxa")).collect();
    rows.extend([7, 40].map(|n| click(n, "wxa")));
    let path = dir.join("clicks.csv");
    std::fs::write(&path, csv(&rows))?;
    let out = load(&stack, &path, &[])?;
    assert!(out.status.success(), "{}", text(&out));
    // --skip-bad: the good lines of a file with a bad one.
    let partly: Vec<Click> = (60..=64).map(|n| click(n, "wxa")).collect();
    let partly_text = jsonl(&partly).replacen("\"event\":\"CLICK\"", "\"event\":\"TAP\"", 1);
    let path = dir.join("partly.jsonl");
    std::fs::write(&path, partly_text)?;
    let out = load(&stack, &path, &["--skip-bad"])?;
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("line 1: field `event`: \"TAP\" is not one of"),
        "{}",
        text(&out)
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("produced 4 menu_clicks events"),
        "{}",
        text(&out)
    );

    // Expected, from what was written: each event id of wxa once, per fan and key.
    let mut want: BTreeMap<String, (u64, String, &str)> = BTreeMap::new();
    for (id, app, openid, key, _) in lines.iter().chain(&rows).chain(&partly[1..]) {
        if *app == "wxa" {
            want.entry(id.clone())
                .or_insert((expected_fan_id(openid), openid.clone(), key));
        }
    }
    assert_eq!(want.len(), 40 + 10 + 4);
    rows_in(&stack, DB, "menu_clicks", want.len() as u64).await;
    let ch = stack.client(DB);
    let got: Vec<(String, u64, String, String)> = ch
        .query("SELECT toString(event_id), fan_id, event_key, app_id FROM menu_clicks ORDER BY event_id")
        .fetch_all()
        .await?;
    let got: BTreeMap<String, (u64, String, String)> = got
        .into_iter()
        .map(|(id, fan, key, app)| (id, (fan, key, app)))
        .collect();
    let want_rows: BTreeMap<String, (u64, String, String)> = want
        .iter()
        .map(|(id, (fan, _, key))| (id.clone(), (*fan, key.to_string(), "wxa".to_string())))
        .collect();
    assert_eq!(got, want_rows);
    // Keyed by fan: each fan's clicks are in one partition, in file order.
    let spread: Vec<(u64, u64)> = ch
        .query("SELECT fan_id, uniqExact(kafka_partition) AS p FROM menu_clicks GROUP BY fan_id HAVING p > 1")
        .fetch_all()
        .await?;
    assert!(spread.is_empty(), "fans spread over partitions: {spread:?}");
    // wxb's clicks were dead-lettered as an unknown account, once each.
    let letters: Vec<(String, u64)> = ch
        .query("SELECT reason, count() FROM dead_letters FINAL GROUP BY reason")
        .fetch_all()
        .await?;
    assert_eq!(letters, vec![("unknown_account".to_string(), 3)]);
    // The JSON Lines repeats, the CSV repeats: dropped as duplicates.
    let fans: BTreeSet<u64> = want.values().map(|v| v.0).collect();
    assert_eq!(fans.len(), 7);
    // (A repeat may be the last record of its partition: give its poll a moment.)
    let mut dropped = None;
    for _ in 0..60 {
        dropped = metric(
            &service.scrape()?,
            "wxpulse_dedup_duplicates_by_age_total",
            &[],
        );
        if dropped >= Some(6.0) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
    assert_eq!(
        dropped,
        Some(6.0),
        "4 repeats in the JSON Lines file, 2 in the CSV"
    );
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(
        service.terminate(std::time::Duration::from_secs(20)),
        Some(0)
    );
    Ok(())
}
