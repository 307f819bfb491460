//! Effectively-once under the faults an audit found it broke on: an owner that is revoked
//! while blocked, an INSERT whose materialized view fails followed by a crash, a topic
//! re-created under a stored watermark, and a schema registry that errors. Each test
//! produces to the real broker, reads back from the real ClickHouse engine and compares
//! with what it produced itself.

use std::collections::{HashMap, HashSet};
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rdkafka::producer::{FutureProducer, FutureRecord};
use wxpulse_cli::produce;
use wxpulse_e2e::*;
use wxpulse_runtime::codec;
use wxpulse_runtime::events::{MenuClick, MenuEvent};

const TOPIC: &str = "wxpulse.menu_clicks";
const BIN: &str = "wxpulse-menu-clicks";
/// Id under which the fake registry serves menu_click v1 (the embedded id is 1).
const ALIAS_ID: u32 = 101;
/// Id the fake registry answers 404 for.
const UNKNOWN_ID: u32 = 999;
/// Id the fake registry answers 404 for until it is registered (then menu_click v1).
const LATE_ID: u32 = 102;

/// A Confluent-compatible registry on loopback: the embedded schemas by id, plus
/// [`ALIAS_ID`]; ids in `failing` answer 500, and every request is counted.
#[derive(Clone, Default)]
struct FakeRegistry {
    failing: Arc<Mutex<HashSet<u32>>>,
    registered: Arc<Mutex<HashSet<u32>>>,
    requests: Arc<Mutex<HashMap<u32, u32>>>,
}

impl FakeRegistry {
    fn start() -> anyhow::Result<(FakeRegistry, String)> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let url = format!("http://{}", listener.local_addr()?);
        let registry = FakeRegistry::default();
        let served = registry.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let served = served.clone();
                std::thread::spawn(move || served.answer(stream));
            }
        });
        Ok((registry, url))
    }

    fn answer(&self, mut stream: std::net::TcpStream) {
        let mut line = String::new();
        let mut reader = BufReader::new(match stream.try_clone() {
            Ok(s) => s,
            Err(_) => return,
        });
        if reader.read_line(&mut line).is_err() {
            return;
        }
        loop {
            let mut header = String::new();
            if reader.read_line(&mut header).map_or(true, |n| n == 0) || header == "\r\n" {
                break;
            }
        }
        let id: Option<u32> = line
            .split_whitespace()
            .nth(1)
            .and_then(|path| path.strip_prefix("/schemas/ids/"))
            .and_then(|id| id.parse().ok());
        let (status, body) = match id {
            Some(id) => {
                *self
                    .requests
                    .lock()
                    .expect("registry state lock")
                    .entry(id)
                    .or_default() += 1;
                let alias = id == ALIAS_ID
                    || id == LATE_ID
                        && self
                            .registered
                            .lock()
                            .expect("registry state lock")
                            .contains(&id);
                let schema = codec::EMBEDDED
                    .iter()
                    .find(|s| s.id == if alias { 1 } else { id });
                if self
                    .failing
                    .lock()
                    .expect("registry state lock")
                    .contains(&id)
                {
                    (
                        "500 Internal Server Error",
                        r#"{"error_code":50001}"#.to_string(),
                    )
                } else if let Some(s) = schema {
                    (
                        "200 OK",
                        serde_json::json!({ "schema": s.json }).to_string(),
                    )
                } else {
                    ("404 Not Found", r#"{"error_code":40403}"#.to_string())
                }
            }
            None => ("404 Not Found", "{}".to_string()),
        };
        let _ = write!(
            stream,
            "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
    }

    fn fail(&self, id: u32, failing: bool) {
        let mut set = self.failing.lock().expect("registry state lock");
        if failing {
            set.insert(id);
        } else {
            set.remove(&id);
        }
    }

    fn register(&self, id: u32) {
        self.registered
            .lock()
            .expect("registry state lock")
            .insert(id);
    }

    fn requests_for(&self, id: u32) -> u32 {
        self.requests
            .lock()
            .expect("registry state lock")
            .get(&id)
            .copied()
            .unwrap_or(0)
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// A menu click `n` framed with writer schema `schema_id` (which must be menu_click v1).
fn click(n: u32, event_key: &str, schema_id: u32) -> Vec<u8> {
    click_at(n, event_key, schema_id, now_ms())
}

/// [`click`] received at `now` (server time − 59 s, client time − 60 s).
fn click_at(n: u32, event_key: &str, schema_id: u32, now: i64) -> Vec<u8> {
    click_of("wx-fault", n, event_key, schema_id, now)
}

/// [`click_at`] of account `app_id`.
fn click_of(app_id: &str, n: u32, event_key: &str, schema_id: u32, now: i64) -> Vec<u8> {
    let event_id = format!("00000000-0000-4000-8000-{n:012x}");
    let openid = format!("o-fault-{}", n % 7);
    let e = MenuClick {
        event_id: &event_id,
        app_id,
        openid: &openid,
        unionid: None,
        client_time: now - 60_000,
        server_time: now - 59_000,
        event: MenuEvent::Click,
        event_key,
        menu_id: None,
    };
    let schema = codec::EMBEDDED
        .iter()
        .find(|s| s.id == 1)
        .expect("menu_click v1 embedded");
    let mut out = Vec::new();
    codec::encode_into(
        &e,
        schema_id,
        &codec::parse(schema.json).expect("parses"),
        &mut out,
    )
    .expect("encodes");
    out
}

/// Produces `payloads` to one partition of the menu-click topic, in order.
async fn produce_to(
    producer: &FutureProducer,
    partition: i32,
    payloads: Vec<Vec<u8>>,
) -> anyhow::Result<()> {
    for p in payloads {
        producer
            .send(
                FutureRecord::<[u8], _>::to(TOPIC)
                    .partition(partition)
                    .payload(&p),
                Duration::from_secs(30),
            )
            .await
            .map_err(|(e, _)| anyhow::anyhow!("produce: {e}"))?;
    }
    Ok(())
}

/// Asserts that the menu-click table holds exactly `want` rows, one per event id, and that
/// every rollup its materialized views feed equals its recomputation from those rows
/// (waiting up to 90 s for them to settle, then 3 s more to catch a late double).
async fn assert_exact_with_rollups(stack: &Stack, db: &str, want: u64) -> anyhow::Result<()> {
    let ch = stack.client(db);
    let deadline = Instant::now() + Duration::from_secs(90);
    let mut last = Vec::new();
    while Instant::now() < deadline {
        last = figures(&ch).await.unwrap_or_default();
        if !last.is_empty() && last.iter().all(|(_, n)| *n == want) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    let settled = figures(&ch).await?;
    for (what, n) in &settled {
        assert_eq!(*n, want, "{what} (before the last wait: {last:?})");
    }
    let watermarks: Vec<(i32, i64, i64)> = ch
        .query(
            "SELECT r.kafka_partition, r.m, w.m FROM \
             (SELECT kafka_partition, max(kafka_offset) AS m FROM menu_clicks GROUP BY kafka_partition) AS r \
             LEFT JOIN (SELECT kafka_partition, max(max_offset) AS m FROM ingest_watermarks \
                        WHERE table_name = 'menu_clicks' GROUP BY kafka_partition) AS w \
             USING kafka_partition ORDER BY kafka_partition",
        )
        .fetch_all()
        .await?;
    for (partition, raw, mark) in watermarks {
        assert_eq!(
            raw, mark,
            "partition {partition}: watermark equals the highest offset written"
        );
    }
    Ok(())
}

/// Raw rows, distinct ids, and each rollup's total of menu clicks.
async fn figures(ch: &clickhouse::Client) -> anyhow::Result<Vec<(&'static str, u64)>> {
    let queries = [
        ("menu_clicks rows", "SELECT count() FROM menu_clicks"),
        (
            "distinct event ids",
            "SELECT uniqExact(event_id) FROM menu_clicks",
        ),
        (
            "interactions_hourly",
            "SELECT toUInt64(sum(events)) FROM interactions_hourly WHERE stream = 'menu_click'",
        ),
        (
            "engagement_hourly",
            "SELECT toUInt64(sum(events)) FROM engagement_hourly WHERE stream = 'menu_click'",
        ),
        (
            "fan_activity_monthly",
            "SELECT toUInt64(sum(menu_clicks)) FROM fan_activity_monthly",
        ),
        (
            "fan_stream_months",
            "SELECT toUInt64(sum(interactions)) FROM fan_stream_months WHERE kafka_topic = 'wxpulse.menu_clicks'",
        ),
    ];
    let mut out = Vec::new();
    for (what, sql) in queries {
        out.push((what, ch.query(sql).fetch_one::<u64>().await?));
    }
    Ok(out)
}

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
    let status = std::process::Command::new(binary("wxpulse")?)
        .args([
            "--brokers",
            &stack.brokers,
            "--clickhouse",
            &stack.clickhouse,
        ])
        .args([
            "--database",
            db,
            "ingest",
            "reset",
            "--table",
            "menu_clicks",
        ])
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

/// Dead letters in the topic, by source offset (a redelivered record counts once).
fn dead_letters(stack: &Stack) -> anyhow::Result<usize> {
    let letters = wxpulse_cli::dlq::read_all(
        &stack.kafka(),
        "wxpulse.dead_letters",
        Duration::from_secs(2),
    )?;
    let distinct: HashSet<(i32, i64)> = letters
        .iter()
        .map(|l| (l.source_partition, l.source_offset))
        .collect();
    Ok(distinct.len())
}

/// Waits until `service` owns at least `n` partitions.
async fn owns(service: &Service, n: usize) {
    let owned = metric_reaches(service, "wxpulse_source_assigned_partitions", &[], n as f64).await;
    assert!(
        owned >= n as f64,
        "{} owns fewer than {n} partitions after 60 s",
        service.name
    );
}

/// Polls `service`'s metric `name` (summed over series with `labels`) until it is at
/// least `want` or 60 s pass; returns the last value read (0 when never exported).
async fn metric_reaches(service: &Service, name: &str, labels: &[&str], want: f64) -> f64 {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let value = service
            .scrape()
            .ok()
            .and_then(|t| metric(&t, name, labels))
            .unwrap_or(0.0);
        if value >= want || Instant::now() >= deadline {
            return value;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

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
