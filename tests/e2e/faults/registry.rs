//! A schema registry that does not know a schema, or errors.

use std::time::{Duration, Instant};

use wxpulse_cli::produce;
use wxpulse_e2e::*;

use super::helpers::{
    assert_exact_with_rollups, click, dead_letters, metric_reaches, owns, produce_to, FakeRegistry,
    ALIAS_ID, BIN, UNKNOWN_ID,
};

/// Case 6: a 404 is cached (not one request per record) and dead-letters as
/// `unknown_schema`; a failing registry dead-letters nothing, never blocks SIGTERM, and
/// once it answers again every event lands exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registry_errors_pause_only_what_needs_the_schema() -> anyhow::Result<()> {
    let db = "wx_registry";
    let stack = Stack::start("registry")?;
    stack.prepare(db, 2).await?;
    let ch = stack.client(db);
    let (registry, url) = FakeRegistry::start()?;
    let env = [("WXPULSE__SCHEMA_REGISTRY__URL", url.as_str())];
    let mut service = Service::start(BIN, &stack, db, &env)?;
    owns(&service, 2).await;
    let producer = produce::producer(&stack.kafka())?;

    // 50 records of an id the registry does not have: dead-lettered, one lookup or two.
    produce_to(
        &producer,
        0,
        (1..=50).map(|n| click(n, "k", UNKNOWN_ID)).collect(),
    )
    .await?;
    let dead = metric_reaches(
        &service,
        "wxpulse_dlq_events_total",
        &["reason=\"unknown_schema\""],
        50.0,
    )
    .await;
    assert_eq!(dead, 50.0, "records of an unknown id are dead-lettered");
    assert!(
        registry.requests_for(UNKNOWN_ID) <= 2,
        "a 404 is cached: {} registry requests for 50 records",
        registry.requests_for(UNKNOWN_ID)
    );

    // The registry fails for one schema: partition 0 needs it, partition 1 does not.
    registry.fail(ALIAS_ID, true);
    produce_to(
        &producer,
        0,
        (101..=120).map(|n| click(n, "k", ALIAS_ID)).collect(),
    )
    .await?;
    produce_to(
        &producer,
        1,
        (201..=220).map(|n| click(n, "k", 1)).collect(),
    )
    .await?;
    assert_eq!(
        wait_for(Duration::from_secs(60), 20, || count(&ch, "menu_clicks")).await,
        20,
        "the partition that does not need the schema goes on"
    );
    let started = Instant::now();
    assert_eq!(
        service.terminate(Duration::from_secs(20)),
        Some(0),
        "SIGTERM is honoured while the registry fails"
    );
    assert!(
        started.elapsed() < Duration::from_secs(13),
        "shutdown took {:?}, more than drain_timeout",
        started.elapsed()
    );
    let dead_now = dead_letters(&stack)?;
    assert_eq!(
        dead_now, 50,
        "nothing was dead-lettered because the registry failed"
    );
    registry.fail(ALIAS_ID, false);
    service.restart()?;
    assert_exact_with_rollups(&stack, db, 40).await
}
