//! The fan-profile mirror (`wxpulse dims mirror`) as a service: it serves `/metrics`,
//! `/healthz` and `/readyz`, writes a batch when `batch.max_rows` is reached, shows what is
//! not yet written as lag, and on SIGTERM writes and commits the batch in flight, then exits
//! 0 — a later `--once` finds nothing left to mirror, and every profile is in ClickHouse once.

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use wxpulse_e2e::*;

const DB: &str = "wx_mirror";

/// A CSV of `n` fan profiles of account wxm00a00, openids `om_<from>`...
fn profiles(from: usize, n: usize) -> String {
    let mut csv = String::from(
        "app_id,openid,status,member_tier,associate_userid,followed_at,unfollowed_at,follow_source,updated_at\n",
    );
    for i in from..from + n {
        csv.push_str(&format!(
            "wxm00a00,om_{i:05},PROSPECT,,,1700000000000,,ADD_SCENE_SEARCH,1700000000000\n"
        ));
    }
    csv
}

fn load(stack: &Stack, csv: &str, name: &str) -> anyhow::Result<()> {
    let path = std::env::temp_dir().join(format!(
        "wxpulse-e2e-mirror-{}-{name}.csv",
        std::process::id()
    ));
    std::fs::write(&path, csv)?;
    let status = Command::new(binary("wxpulse")?)
        .args([
            "--brokers",
            &stack.brokers,
            "dims",
            "load",
            "--dimension",
            "fan_profile",
        ])
        .arg("--file")
        .arg(&path)
        .stdout(Stdio::null())
        .status()?;
    let _ = std::fs::remove_file(&path);
    anyhow::ensure!(status.success(), "dims load: {status}");
    Ok(())
}

/// Scrapes until `name{labels}` is `want`; returns the last text.
fn wait_metric(addr: &str, name: &str, labels: &[&str], want: f64) -> anyhow::Result<String> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let text = http_get(addr, "/metrics").unwrap_or_default();
        if metric(&text, name, labels) == Some(want) {
            return Ok(text);
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "{name}{labels:?} never reached {want}:\n{text}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_mirror_serves_metrics_and_readiness_and_writes_its_batch_on_sigterm(
) -> anyhow::Result<()> {
    let stack = Stack::start("mirror")?;
    stack.prepare(DB, 1).await?;
    load(&stack, &profiles(0, 40), "a")?;

    let addr = format!("127.0.0.1:{}", free_port());
    let log_dir = std::env::temp_dir().join("wxpulse-e2e-logs");
    std::fs::create_dir_all(&log_dir)?;
    let log = std::fs::File::create(log_dir.join("wxpulse-dims-mirror.log"))?;
    // 40 rows make a batch; anything less waits (max_age 1 h) until SIGTERM.
    let mut mirror = Command::new(binary("wxpulse")?)
        .args([
            "--brokers",
            &stack.brokers,
            "--clickhouse",
            &stack.clickhouse,
        ])
        .args(["--database", DB, "dims", "mirror"])
        .env("WXPULSE__PII__KEY", TEST_PII_KEY)
        .env("WXPULSE__METRICS__LISTEN", &addr)
        .env("WXPULSE__BATCH__MAX_ROWS", "40")
        .env("WXPULSE__BATCH__MAX_AGE", "1h")
        .env("WXPULSE__KAFKA__DRAIN_TIMEOUT", "15s")
        .env("WXPULSE__CLICKHOUSE__INSERT_TIMEOUT", "5s")
        .stdout(Stdio::piped())
        .stderr(log)
        .spawn()?;

    let deadline = Instant::now() + Duration::from_secs(60);
    while http_get(&addr, "/readyz").unwrap_or_default() != "ready\n" {
        anyhow::ensure!(
            Instant::now() < deadline,
            "the mirror never turned ready: {:?}",
            http_get(&addr, "/readyz")
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(http_get(&addr, "/healthz")?, "ok\n");

    // The first 40: one batch, written and committed, nothing behind.
    wait_metric(&addr, "wxpulse_mirror_records_written_total", &[], 40.0)?;
    let text = wait_metric(
        &addr,
        "wxpulse_mirror_lag_records",
        &["topic=\"wxpulse.dim.fan_profile\"", "partition=\"0\""],
        0.0,
    )?;
    assert!(
        metric(&text, "wxpulse_mirror_last_write_timestamp_seconds", &[]).unwrap_or(0.0) > 1.0e9,
        "{text}"
    );
    assert_eq!(
        metric(
            &text,
            "wxpulse_mirror_assigned_partitions",
            &["service=\"fan-profile-mirror\""]
        ),
        Some(3.0),
        "the fan-profile, fan-follow and associate-contact topics, one partition each"
    );
    let ch = stack.client(DB);
    assert_eq!(count(&ch, "fan_profiles").await?, 40);

    // 25 more: read, not written (under max_rows, younger than max_age), so 25 behind.
    load(&stack, &profiles(40, 25), "b")?;
    wait_metric(&addr, "wxpulse_mirror_records_consumed_total", &[], 65.0)?;
    let text = wait_metric(
        &addr,
        "wxpulse_mirror_lag_records",
        &["topic=\"wxpulse.dim.fan_profile\"", "partition=\"0\""],
        25.0,
    )?;
    assert_eq!(
        metric(&text, "wxpulse_mirror_records_written_total", &[]),
        Some(40.0),
        "the second batch is in flight"
    );
    assert_eq!(
        metric(&text, "wxpulse_mirror_errors_total", &[]),
        Some(0.0),
        "{text}"
    );

    // SIGTERM: the batch in flight is written and committed, then exit 0.
    Command::new("kill")
        .args(["-TERM", &mirror.id().to_string()])
        .status()?;
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = mirror.try_wait()? {
            break status;
        }
        if Instant::now() > deadline {
            let _ = mirror.kill();
            anyhow::bail!("the mirror did not exit within 30 s of SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let mut out = String::new();
    if let Some(mut stdout) = mirror.stdout.take() {
        stdout.read_to_string(&mut out)?;
    }
    assert_eq!(status.code(), Some(0), "exit status; stdout: {out}");
    assert!(
        out.contains("65 fan-profile records mirrored"),
        "the batch in flight was written before exiting: {out}"
    );
    assert_eq!(count(&ch, "fan_profiles").await?, 65, "each profile once");
    assert_eq!(count(&ch, "fan_profiles FINAL").await?, 65);

    // Its offsets were committed: nothing is left to mirror.
    let once = Command::new(binary("wxpulse")?)
        .args([
            "--brokers",
            &stack.brokers,
            "--clickhouse",
            &stack.clickhouse,
        ])
        .args(["--database", DB, "dims", "mirror", "--once"])
        .env("WXPULSE__PII__KEY", TEST_PII_KEY)
        .output()?;
    assert!(once.status.success(), "{once:?}");
    assert_eq!(
        String::from_utf8_lossy(&once.stdout).trim(),
        "0 fan-profile records mirrored into fan_profiles"
    );
    Ok(())
}

/// A service starts from the mirror's copy of the fan profiles in ClickHouse and reads the
/// topic only past it: profiles published, changed or deleted after the mirror ran are
/// seen as the topic says, those only in the copy as the copy says, and the figures are
/// what reading the whole topic gives.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_starts_from_the_mirror_snapshot_and_reads_only_the_tail() -> anyhow::Result<()> {
    use crate::golden::{account, click, fan, publish, rows_in, send, stored};
    use wxpulse_cli::produce::Outgoing;
    use wxpulse_runtime::enrich::{CustomerStatus as S, Dimension};
    const DB: &str = "wx_snapshot";
    const D: i64 = 86_400_000;
    let stack = Stack::start("snapshot")?;
    stack.prepare(DB, 2).await?;
    let t0 = last_month(&stack).await?.0 + D;
    let tombstone = |openid: &str| Outgoing {
        topic: Dimension::FanProfile.topic(),
        key: format!("wxa|{openid}").into_bytes(),
        payload: None,
        at_ms: 0,
    };
    // Before the mirror: A–G, and H, published and deleted.
    let mut before = vec![account("wxa", "Maison")];
    for (openid, status) in [
        ("oA", S::Vip),
        ("oB", S::Prospect),
        ("oC", S::Customer),
        ("oD", S::Prospect),
        ("oE", S::Customer),
        ("oF", S::Vip),
        ("oH", S::Vip),
    ] {
        before.push(fan("wxa", openid, status, t0 - 100 * D, None));
    }
    publish(&stack, before).await?;
    send(&stack, vec![tombstone("oH")]).await?;
    mirror_profiles(&stack, DB)?;
    // After it: B becomes a VIP, C is deleted, G is new, D unfollows.
    publish(
        &stack,
        vec![
            fan("wxa", "oB", S::Vip, t0 - 100 * D, None),
            fan("wxa", "oG", S::Customer, t0 - 100 * D, None),
            fan("wxa", "oD", S::Prospect, t0 - 100 * D, Some(t0 - 50 * D)),
        ],
    )
    .await?;
    send(&stack, vec![tombstone("oC")]).await?;

    let service = Service::start("wxpulse-menu-clicks", &stack, DB, &[])?;
    let fans = ["oA", "oB", "oC", "oD", "oE", "oF", "oG", "oH"];
    let clicks = fans
        .iter()
        .zip(1..)
        .map(|(openid, n)| click(n, "wxa", openid, "SHOP", t0 + D, t0 + D + 1_000))
        .collect();
    send(&stack, clicks).await?;
    rows_in(&stack, DB, "menu_clicks", 8).await;
    let text = service.scrape()?;
    // The copy held A–F (H's tombstone was mirrored); the topic's tail added G, removed C.
    assert_eq!(
        metric(&text, "wxpulse_enrich_snapshot_rows", &[]),
        Some(6.0)
    );
    assert_eq!(
        metric(
            &text,
            "wxpulse_enrich_dimension_records",
            &["dimension=\"fan_profile\""]
        ),
        Some(6.0)
    );
    let got = stored(&stack, DB, "menu_clicks", &["relationship", "lifecycle"]).await?;
    let want = crate::golden::expect(&[
        (1, "vip|active"),
        (2, "vip|active"),
        (3, "unknown|active"),
        (4, "prospect|churned"),
        (5, "customer|active"),
        (6, "vip|active"),
        (7, "customer|active"),
        (8, "unknown|active"),
    ]);
    assert_eq!(got, want);
    Ok(())
}
