//! Faults of the ingest path: an owner revoked while blocked, an INSERT whose materialized
//! view fails followed by a crash, and a topic re-created under a stored watermark.

use std::time::{Duration, Instant};

use wxpulse_cli::produce;
use wxpulse_e2e::*;

use super::helpers::{
    assert_exact_with_rollups, click, metric_reaches, owns, produce_to, FakeRegistry, ALIAS_ID,
    BIN, TOPIC,
};

/// Case 1: instance A blocks on a schema the registry cannot serve while B joins; A must
/// never write the partitions it lost, whatever it held when it unblocks.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_owner_never_writes_after_the_new_owner() -> anyhow::Result<()> {
    let db = "wx_revoked";
    let stack = Stack::start("revoked")?;
    stack.prepare(db, 2).await?;
    let (registry, url) = FakeRegistry::start()?;
    registry.fail(ALIAS_ID, true);
    let env = [("WXPULSE__SCHEMA_REGISTRY__URL", url.as_str())];
    let a = Service::start(BIN, &stack, db, &env)?;
    owns(&a, 2).await;
    let producer = produce::producer(&stack.kafka())?;
    // Per partition: records A can write, then records whose schema it cannot fetch, then
    // more it could write — fetched together, so A holds a batch when it meets the first.
    let mut n = 0;
    for partition in 0..2 {
        let mut payloads = Vec::new();
        for i in 0..45 {
            n += 1;
            let id = if (15..25).contains(&i) { ALIAS_ID } else { 1 };
            payloads.push(click(n, "k", id));
        }
        produce_to(&producer, partition, payloads).await?;
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    let b = Service::start(BIN, &stack, db, &env)?;
    owns(&b, 1).await;
    // Past A's revoke patience (drain_timeout 8 s + 5 s) in case it did not answer.
    tokio::time::sleep(Duration::from_secs(16)).await;
    registry.fail(ALIAS_ID, false);
    assert_exact_with_rollups(&stack, db, u64::from(n)).await?;
    // Let a late writer show itself.
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_exact_with_rollups(&stack, db, u64::from(n)).await?;
    drop((a, b));
    Ok(())
}

/// Case 2: an INSERT whose materialized view throws leaves raw rows and some rollups
/// committed; the service is SIGKILLed while it retries, the view is fixed, and the next
/// owner must replay exactly that batch: raw rows once, every rollup complete.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_view_then_a_crash_replays_the_batch_in_flight() -> anyhow::Result<()> {
    let db = "wx_mvfail";
    let stack = Stack::start("mvfail")?;
    stack.prepare(db, 1).await?;
    let ch = stack.client(db);
    let mut service = Service::start(BIN, &stack, db, &[])?;
    let producer = produce::producer(&stack.kafka())?;
    produce_to(&producer, 0, (1..=30).map(|n| click(n, "k", 1)).collect()).await?;
    assert_eq!(
        wait_for(Duration::from_secs(60), 30, || count(&ch, "menu_clicks")).await,
        30
    );

    // Break one rollup's view: it throws on one event.
    let original = view_statement("mv_menu_clicks_engagement");
    ch.query("DROP VIEW mv_menu_clicks_engagement")
        .execute()
        .await?;
    let broken = original.replacen(
        "FROM menu_clicks",
        "FROM menu_clicks WHERE throwIf(event_key = 'boom') = 0",
        1,
    );
    ch.query(&broken).execute().await?;
    produce_to(
        &producer,
        0,
        (31..=40)
            .map(|n| click(n, if n == 35 { "boom" } else { "k" }, 1))
            .collect(),
    )
    .await?;
    // The insert fails (the engine reports the view's exception) and is retried.
    let failed = metric_reaches(&service, "wxpulse_sink_insert_errors_total", &[], 2.0).await;
    assert!(
        failed >= 2.0,
        "the failed view's insert error never reached the service"
    );
    service.kill();
    ch.query("DROP VIEW mv_menu_clicks_engagement")
        .execute()
        .await?;
    ch.query(&original).execute().await?;
    // More records arrive meanwhile, so a successor that batched freely could cut the
    // failed range differently (another token) and double its raw rows.
    produce_to(&producer, 0, (41..=50).map(|n| click(n, "k", 1)).collect()).await?;
    service.restart()?;
    assert_exact_with_rollups(&stack, db, 50).await?;
    let replayed = service
        .scrape()
        .ok()
        .and_then(|t| metric(&t, "wxpulse_sink_batches_replayed_total", &[]))
        .unwrap_or(0.0);
    assert_eq!(replayed, 1.0, "the batch in flight was replayed once");
    Ok(())
}

/// Case 4: the topic is deleted and re-created under a stored watermark. The new
/// records are not skipped as redeliveries: the partition is held, counted and reported,
/// and after the runbook's `wxpulse ingest reset` every new event lands once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recreated_topic_is_held_not_skipped_until_reset() -> anyhow::Result<()> {
    let db = "wx_recreate";
    let stack = Stack::start("recreate")?;
    stack.prepare(db, 1).await?;
    let ch = stack.client(db);
    let mut service = Service::start(BIN, &stack, db, &[])?;
    let producer = produce::producer(&stack.kafka())?;
    produce_to(&producer, 0, (1..=20).map(|n| click(n, "k", 1)).collect()).await?;
    assert_eq!(
        wait_for(Duration::from_secs(60), 20, || count(&ch, "menu_clicks")).await,
        20
    );
    assert_eq!(service.terminate(Duration::from_secs(30)), Some(0));

    recreate_topic(&stack.brokers, TOPIC).await?;
    // A new producer: the idempotent one's sequence numbers belong to the deleted log.
    let producer = produce::producer(&stack.kafka())?;
    produce_to(
        &producer,
        0,
        (101..=120).map(|n| click(n, "k", 1)).collect(),
    )
    .await?;
    service.restart()?;
    let held = metric_reaches(&service, "wxpulse_source_offset_reset_partitions", &[], 1.0).await;
    assert_eq!(held, 1.0, "the re-created partition is reported as held");
    let skipped = metric(
        &service.scrape()?,
        "wxpulse_dedup_events_dropped_total",
        &["kind=\"redelivery\""],
    )
    .unwrap_or(0.0);
    assert_eq!(skipped, 0.0, "no new record was skipped as a redelivery");
    assert_eq!(count(&ch, "menu_clicks").await?, 20);

    // The runbook: stop, reset the partition's ingest state, start.
    assert_eq!(service.terminate(Duration::from_secs(30)), Some(0));
    let status = cli(&stack, db)?
        .args(["ingest", "reset", "--table", "menu_clicks"])
        .status()?;
    assert!(status.success(), "wxpulse ingest reset: {status}");
    service.restart()?;
    assert_exact_with_rollups(&stack, db, 40).await
}

/// Deletes `topic` through the Kafka admin API and creates it again with one partition.
/// Tansu 0.6 drops every other topic with it (measured: the metadata then lists none), so
/// whatever else vanished is created again too, empty — as after a cluster move.
async fn recreate_topic(brokers: &str, topic: &str) -> anyhow::Result<()> {
    use rdkafka::admin::{AdminClient, AdminOptions};
    use rdkafka::consumer::{BaseConsumer, Consumer};
    let admin: AdminClient<rdkafka::client::DefaultClientContext> = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .create()?;
    let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
    for r in admin.delete_topics(&[topic], &options).await? {
        r.map_err(|(t, e)| anyhow::anyhow!("delete {t}: {e}"))?;
    }
    let probe: BaseConsumer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .create()?;
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut remaining: Vec<String>;
    loop {
        let metadata = probe.fetch_metadata(None, Duration::from_secs(10))?;
        remaining = metadata
            .topics()
            .iter()
            .map(|t| t.name().to_string())
            .collect();
        if !remaining.iter().any(|t| t == topic) || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    assert!(
        !remaining.iter().any(|t| t == topic),
        "{topic} was not deleted"
    );
    let missing: Vec<(&str, i32, bool)> = wxpulse_cli::topics::all(1)
        .into_iter()
        .filter(|(t, _, _)| !remaining.iter().any(|r| r == t))
        .collect();
    eprintln!(
        "after deleting {topic}: {} topics remain, {} are created again",
        remaining.len(),
        missing.len()
    );
    wxpulse_cli::topics::create(&wxpulse_e2e::kafka(brokers), &missing, 1).await?;
    Ok(())
}
