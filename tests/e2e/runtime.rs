//! Effectively-once under crashes, a ClickHouse outage and rebalances; poison
//! records all dead-lettered with the right reason. Expected numbers come from the
//! generator's own ground truth, never from the pipeline.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};
use wxpulse_cli::{dlq, produce};
use wxpulse_e2e::*;
use wxpulse_generator::generate::{self, GroundTruth, Spec};

pub(crate) fn spec(seed: u64, events: u64, malformed_share: f64) -> Spec {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_millis() as i64;
    Spec {
        seed,
        brands: 2,
        accounts_per_brand: 2,
        fans_per_account: 5_000,
        events,
        start_ms: now - 10 * 86_400_000,
        end_ms: now - 4 * 86_400_000,
        duplicate_share: 0.02,
        resend_share: 0.0,
        late_share: 0.03,
        malformed_share,
        unknown_dimension_share: 0.01,
        unknown_account_share: 0.0,
    }
}

/// Produces the generated records in the background.
fn produce_in_background(
    brokers: &str,
    spec: &Spec,
) -> anyhow::Result<(GroundTruth, tokio::task::JoinHandle<anyhow::Result<usize>>)> {
    let (records, truth) = generate::generate(spec);
    let producer = produce::producer(&wxpulse_e2e::kafka(brokers))?;
    let task = tokio::spawn(async move { produce::send_all(&producer, records, |_| {}).await });
    Ok((truth, task))
}

/// Waits until every table holds its ground-truth count, then asserts raw and rollup counts.
async fn assert_exact(
    stack: &Stack,
    db: &str,
    truth: &GroundTruth,
    patience: Duration,
) -> anyhow::Result<()> {
    let ch = stack.client(db);
    for (_, table, stream) in SERVICES {
        let want = truth.events.get(stream).copied().unwrap_or(0);
        let got = wait_for(patience, want, || count(&ch, table)).await;
        assert_eq!(
            got, want,
            "{table}: rows in ClickHouse vs distinct events produced"
        );
        let distinct: u64 = ch
            .query(&format!("SELECT uniqExact(event_id) FROM {table}"))
            .fetch_one()
            .await?;
        assert_eq!(distinct, want, "{table}: distinct event ids");
        assert_eq!(
            rollup(&ch, stream).await?,
            want,
            "{stream}: rollup fed by the materialized view"
        );
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_test_sigkill_at_random_moments_counts_exactly() -> anyhow::Result<()> {
    let db = "wx_crash";
    let stack = Stack::start("crash")?;
    stack.prepare(db, 4).await?;
    let spec = spec(11, 200_000, 0.0);
    let mut services = Vec::new();
    for (bin, _, _) in SERVICES {
        // Small batches so crashes land between many insert/commit pairs.
        services.push(Service::start(
            bin,
            &stack,
            db,
            &[("WXPULSE__BATCH__MAX_ROWS", "2000")],
        )?);
    }
    let (truth, producing) = produce_in_background(&stack.brokers, &spec)?;
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let ch = stack.client(db);
    let total: u64 = truth.events.values().sum();
    let mut kills = 0;
    let started = Instant::now();
    while kills < 12 && started.elapsed() < Duration::from_secs(180) {
        tokio::time::sleep(Duration::from_millis(rng.gen_range(700..2500))).await;
        let victim = rng.gen_range(0..services.len());
        services[victim].kill();
        kills += 1;
        tokio::time::sleep(Duration::from_millis(rng.gen_range(0..500))).await;
        services[victim].restart()?;
        let mut written = 0;
        for (_, table, _) in SERVICES {
            written += count(&ch, table).await.unwrap_or(0);
        }
        if written >= total && producing.is_finished() {
            break;
        }
    }
    assert!(
        kills >= 4,
        "only {kills} crashes happened while events flowed"
    );
    producing.await??;
    assert_exact(&stack, db, &truth, Duration::from_secs(180)).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outage_test_clickhouse_down_30s_loses_and_doubles_nothing() -> anyhow::Result<()> {
    let db = "wx_outage";
    let stack = Stack::start("outage")?;
    stack.prepare(db, 2).await?;
    let mut services = Vec::new();
    for (bin, _, _) in SERVICES {
        services.push(Service::start(bin, &stack, db, &[])?);
    }
    // Restored (which reads ClickHouse) before the outage: it is the inserts that must
    // fail and be retried.
    for s in &services {
        ready(s, Duration::from_secs(90)).await;
    }
    let spec = spec(12, 60_000, 0.0);
    let (truth, producing) = produce_in_background(&stack.brokers, &spec)?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    stack.stop_clickhouse()?;
    let down = Instant::now();
    while down.elapsed() < Duration::from_secs(30) {
        tokio::time::sleep(Duration::from_secs(1)).await;
        for s in &mut services {
            assert!(
                s.is_running(),
                "{} exited while ClickHouse was down",
                s.name
            );
        }
    }
    let text = services[0].scrape()?;
    let errors = metric(&text, "wxpulse_sink_insert_errors_total", &["transient"]).unwrap_or(0.0);
    stack.start_clickhouse()?;
    producing.await??;
    assert_exact(&stack, db, &truth, Duration::from_secs(120)).await?;
    for s in &mut services {
        assert!(s.is_running(), "{} exited", s.name);
    }
    assert!(
        errors > 0.0,
        "inserts failed and were counted as transient during the outage"
    );
    Ok(())
}

/// A backlog read through a small queue keeps the queue full for the whole catch-up: the
/// source must wait for the busy pipeline instead of pausing, since each pause makes
/// librdkafka drop what it had prefetched and fetch it from the broker again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backlog_behind_a_full_queue_is_read_without_pausing() -> anyhow::Result<()> {
    let db = "wx_backlog";
    let stack = Stack::start("backlog")?;
    stack.prepare(db, 2).await?;
    let spec = spec(14, 30_000, 0.0);
    let (truth, producing) = produce_in_background(&stack.brokers, &spec)?;
    producing.await??;
    let (bin, table, stream) = SERVICES[0];
    let mut service = Service::start(
        bin,
        &stack,
        db,
        &[
            // Two chunks of 512 records: full whenever an insert holds the pipeline.
            ("WXPULSE__BATCH__QUEUE_CAPACITY", "1024"),
            // hold_before_pause = 5 s, longer than any insert of this test.
            ("WXPULSE__KAFKA__MAX_POLL_INTERVAL", "300s"),
        ],
    )?;
    let want = truth.events.get(stream).copied().unwrap_or(0);
    let ch = stack.client(db);
    let got = wait_for(Duration::from_secs(180), want, || count(&ch, table)).await;
    assert_eq!(
        got, want,
        "{table}: rows in ClickHouse vs distinct events produced"
    );
    assert!(service.is_running(), "{bin} exited");
    let text = service.scrape()?;
    let consumed = metric(&text, "wxpulse_source_events_consumed_total", &[]).unwrap_or(0.0);
    assert!(
        consumed >= want as f64,
        "{consumed} records consumed for {want} rows"
    );
    let paused = metric(&text, "wxpulse_source_paused_seconds_total", &[]).unwrap_or(-1.0);
    assert_eq!(
        paused, 0.0,
        "seconds paused while the pipeline was only busy"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn poison_test_every_malformed_record_is_dead_lettered_with_its_reason() -> anyhow::Result<()>
{
    let db = "wx_poison";
    let stack = Stack::start("poison")?;
    stack.prepare(db, 2).await?;
    let spec = spec(13, 20_000, 0.01);
    let (truth, producing) = produce_in_background(&stack.brokers, &spec)?;
    let mut services = Vec::new();
    for (bin, _, _) in SERVICES {
        services.push(Service::start(bin, &stack, db, &[])?);
    }
    producing.await??;
    assert_exact(&stack, db, &truth, Duration::from_secs(120)).await?;
    let expected_total: u64 = truth.dead_letters.values().sum();
    assert!(
        expected_total >= 150,
        "the generator made {expected_total} malformed records"
    );
    let mut by_reason: BTreeMap<String, u64> = BTreeMap::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        let letters = dlq::read_all(
            &stack.kafka(),
            "wxpulse.dead_letters",
            Duration::from_secs(2),
        )?;
        by_reason = BTreeMap::new();
        for l in &letters {
            *by_reason.entry(l.reason.as_str().to_string()).or_default() += 1;
        }
        if by_reason == truth.dead_letters {
            break;
        }
    }
    assert_eq!(by_reason, truth.dead_letters, "dead letters by reason");
    // The same, queryable in ClickHouse (one row per source record, no payload).
    let ch = stack.client(db);
    let rows: Vec<(String, u64)> = ch
        .query("SELECT reason, sum(letters) FROM v_dead_letters_daily GROUP BY reason")
        .fetch_all()
        .await?;
    let in_clickhouse: BTreeMap<String, u64> = rows.into_iter().collect();
    assert_eq!(
        in_clickhouse, truth.dead_letters,
        "v_dead_letters_daily by reason"
    );
    let payloads: u64 = ch
        .query("SELECT count() FROM dead_letters WHERE length(payload_sha256) != 64")
        .fetch_one()
        .await?;
    assert_eq!(
        payloads, 0,
        "every dead letter row has its payload's SHA-256"
    );
    let mut counted = 0.0;
    for s in &services {
        counted += metric(&s.scrape()?, "wxpulse_dlq_events_total", &[]).unwrap_or(0.0);
        let text = s.scrape()?;
        assert!(
            metric(
                &text,
                "wxpulse_dlq_events_total",
                &["reason=\"undecodable\""]
            )
            .is_some(),
            "every reason is exported from the start, even at 0"
        );
    }
    assert_eq!(
        counted as u64, expected_total,
        "dead letters counted in metrics"
    );
    for s in &mut services {
        assert!(s.is_running(), "{} crashed on poison", s.name);
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rebalance_test_consumers_join_and_leave_mid_stream() -> anyhow::Result<()> {
    let db = "wx_rebalance";
    let stack = Stack::start("rebalance")?;
    stack.prepare(db, 6).await?;
    let spec = spec(14, 120_000, 0.0);
    let (truth, producing) = produce_in_background(&stack.brokers, &spec)?;
    let bin = "wxpulse-menu-clicks";
    let small = [("WXPULSE__BATCH__MAX_ROWS", "2000")];
    // Each consumer joins once the previous one owns partitions, so every join is its own
    // rebalance (a fixed sleep let a slow start merge two joins into one).
    let mut first = Service::start(bin, &stack, db, &small)?;
    owns_partitions(&first, Duration::from_secs(60)).await;
    let mut second = Service::start(bin, &stack, db, &small)?;
    owns_partitions(&second, Duration::from_secs(60)).await;
    let mut third = Service::start(bin, &stack, db, &small)?;
    owns_partitions(&third, Duration::from_secs(60)).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        first.terminate(Duration::from_secs(30)),
        Some(0),
        "a leaving consumer drains and exits 0"
    );
    producing.await??;
    let ch = stack.client(db);
    let want = truth.events["menu_click"];
    let got = wait_for(Duration::from_secs(120), want, || count(&ch, "menu_clicks")).await;
    assert_eq!(
        got, want,
        "menu_clicks rows after consumers joined and left"
    );
    assert_eq!(rollup(&ch, "menu_click").await?, want);
    let rebalances = metric(&second.scrape()?, "wxpulse_source_rebalances_total", &[])
        .unwrap_or(0.0)
        + metric(&third.scrape()?, "wxpulse_source_rebalances_total", &[]).unwrap_or(0.0);
    assert!(rebalances >= 3.0, "rebalances seen: {rebalances}");
    assert!(second.is_running() && third.is_running());
    Ok(())
}
