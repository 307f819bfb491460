//! Dead letters replayed with `wxpulse dlq replay`: each event written once, however often
//! the operator replays.

use std::time::{Duration, Instant};

use wxpulse_cli::produce;
use wxpulse_e2e::*;

use super::helpers::{
    assert_exact_with_rollups, click, click_at, click_of, dead_letters, now_ms, produce_to,
    FakeRegistry, BIN, LATE_ID,
};

/// Runs `wxpulse dlq replay --reason <reason>` against `db` with `pii_key`.
fn dlq_replay(
    stack: &Stack,
    db: &str,
    reason: &str,
    pii_key: &str,
) -> anyhow::Result<std::process::Output> {
    Ok(std::process::Command::new(binary("wxpulse")?)
        .args([
            "--brokers",
            &stack.brokers,
            "--clickhouse",
            &stack.clickhouse,
        ])
        .args(["--database", db, "dlq", "replay", "--reason", reason])
        .env("WXPULSE__PII__KEY", pii_key)
        .output()?)
}

/// `wxpulse dlq replay` run twice sends each dead letter back once: events dead-lettered
/// under a schema the registry did not have yet land once after it is registered, however
/// often the operator replays (their server time is two hours old, beyond the consumers'
/// event-id window, so only the replay ledger can tell).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replaying_dead_letters_twice_writes_each_event_once() -> anyhow::Result<()> {
    let db = "wx_replay";
    let stack = Stack::start("replay")?;
    stack.prepare(db, 1).await?;
    let ch = stack.client(db);
    let (registry, url) = FakeRegistry::start()?;
    let env = [("WXPULSE__SCHEMA_REGISTRY__URL", url.as_str())];
    let mut service = Service::start(BIN, &stack, db, &env)?;
    let producer = produce::producer(&stack.kafka())?;
    let two_hours_ago = now_ms() - 2 * 3_600_000;
    let mut payloads: Vec<Vec<u8>> = (1..=10).map(|n| click(n, "k", 1)).collect();
    payloads.extend((11..=20).map(|n| click_at(n, "k", LATE_ID, two_hours_ago)));
    produce_to(&producer, 0, payloads).await?;
    assert_eq!(
        wait_for(Duration::from_secs(60), 10, || count(&ch, "menu_clicks")).await,
        10
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    while dead_letters(&stack)? < 10 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert_eq!(dead_letters(&stack)?, 10, "unknown schema: dead-lettered");

    // Sealed: no openid in any letter (issue 13).
    let letters = wxpulse_cli::dlq::read_all(
        &stack.kafka(),
        "wxpulse.dead_letters",
        Duration::from_secs(2),
    )?;
    for l in &letters {
        assert!(l.sealed && l.source_key.is_none(), "{l:?}");
        assert!(
            !l.payload.windows(8).any(|w| w == b"o-fault-"),
            "an openid is readable in a dead letter"
        );
    }

    // The producer's schema gets registered; the service forgets the 404 on restart.
    registry.register(LATE_ID);
    service.restart()?;
    let replay_with = |pii_key: &str| dlq_replay(&stack, db, "unknown_schema", pii_key);
    // Without the services' key the letters cannot be opened, and nothing is sent.
    let refused = replay_with("another-key-0123456789")?;
    assert!(
        !refused.status.success(),
        "replay with another key: {refused:?}"
    );
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("pii.key"),
        "{refused:?}"
    );
    let replay = || -> anyhow::Result<String> {
        let out = replay_with(TEST_PII_KEY)?;
        anyhow::ensure!(out.status.success(), "dlq replay: {:?}", out);
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    };
    let first = replay()?;
    assert!(first.contains("replayed 10 "), "{first}");
    assert_exact_with_rollups(&stack, db, 20).await?;
    // Later, after a deploy: the service's memory of recent event ids starts afresh.
    assert_eq!(service.terminate(Duration::from_secs(30)), Some(0));
    service.restart()?;
    let second = replay()?;
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_exact_with_rollups(&stack, db, 20).await?;
    assert!(
        second.contains("replayed 0 ") && second.contains("10 skipped"),
        "{second}"
    );
    Ok(())
}

/// With the default `validation.unknown_account = "dead_letter"` an event of an account the account
/// dimension does not hold is dead-lettered as `unknown_account` (no view counts it); once
/// the account is published, `wxpulse dlq replay --reason unknown_account` writes each of
/// those events once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_accounts_are_dead_lettered_and_replayed_once_published() -> anyhow::Result<()> {
    use wxpulse_runtime::enrich::{AccountRecord, DimensionRecord};
    let db = "wx_unknown_account";
    let stack = Stack::start("unknown-account")?;
    stack.prepare(db, 1).await?;
    let ch = stack.client(db);
    let account = |app_id: &str| {
        DimensionRecord::Account(AccountRecord {
            app_id: app_id.into(),
            brand: "Maison".into(),
            name: app_id.into(),
            account_type: Default::default(),
            fans: 0,
            updated_at: 0,
        })
    };
    crate::golden::publish(&stack, vec![account("wx-fault")]).await?;
    // No setting: dead-lettering is the default.
    let mut service = Service::start(BIN, &stack, db, &[])?;
    let producer = produce::producer(&stack.kafka())?;
    let now = now_ms();
    let mut payloads: Vec<Vec<u8>> = (1..=10).map(|n| click(n, "k", 1)).collect();
    payloads.extend((11..=16).map(|n| click_of("wx-stranger", n, "k", 1, now)));
    produce_to(&producer, 0, payloads).await?;
    assert_exact_with_rollups(&stack, db, 10).await?;
    let deadline = Instant::now() + Duration::from_secs(60);
    while dead_letters(&stack)? < 6 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert_eq!(
        dead_letters(&stack)?,
        6,
        "the stranger's clicks: dead-lettered"
    );
    let counted = metric(
        &service.scrape()?,
        "wxpulse_dlq_events_total",
        &["reason=\"unknown_account\""],
    );
    assert_eq!(counted, Some(6.0));
    let strangers: u64 = ch
        .query("SELECT count() FROM menu_clicks WHERE app_id = 'wx-stranger'")
        .fetch_one()
        .await?;
    assert_eq!(strangers, 0);

    // The account is published (the service applies it live), then the letters replayed.
    crate::golden::publish(&stack, vec![account("wx-stranger")]).await?;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let held = service.scrape().ok().and_then(|t| {
            metric(
                &t,
                "wxpulse_enrich_dimension_records",
                &["dimension=\"account\""],
            )
        });
        if held == Some(2.0) {
            break;
        }
        assert!(Instant::now() < deadline, "account not applied: {held:?}");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let replay = || -> anyhow::Result<String> {
        let out = dlq_replay(&stack, db, "unknown_account", TEST_PII_KEY)?;
        anyhow::ensure!(out.status.success(), "dlq replay: {out:?}");
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    };
    let first = replay()?;
    assert!(first.contains("replayed 6 "), "{first}");
    assert_exact_with_rollups(&stack, db, 16).await?;
    let second = replay()?;
    assert!(second.contains("replayed 0 "), "{second}");
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_exact_with_rollups(&stack, db, 16).await?;
    assert_eq!(service.terminate(Duration::from_secs(30)), Some(0));
    Ok(())
}
