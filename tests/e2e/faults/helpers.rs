//! What the fault tests share: a fake schema registry, menu clicks framed with any writer
//! schema id and produced to one partition, and the checks of the menu-click table, its
//! rollups, its dead letters and a service's metrics.

use std::collections::{HashMap, HashSet};
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rdkafka::producer::{FutureProducer, FutureRecord};
use wxpulse_e2e::*;
use wxpulse_runtime::codec;
use wxpulse_runtime::events::{MenuClick, MenuEvent};

pub(super) const TOPIC: &str = "wxpulse.menu_clicks";
pub(super) const BIN: &str = "wxpulse-menu-clicks";
/// Id under which the fake registry serves menu_click v1 (the embedded id is 1).
pub(super) const ALIAS_ID: u32 = 101;
/// Id the fake registry answers 404 for.
pub(super) const UNKNOWN_ID: u32 = 999;
/// Id the fake registry answers 404 for until it is registered (then menu_click v1).
pub(super) const LATE_ID: u32 = 102;

/// A Confluent-compatible registry on loopback: the embedded schemas by id, plus
/// [`ALIAS_ID`]; ids in `failing` answer 500, and every request is counted.
#[derive(Clone, Default)]
pub(super) struct FakeRegistry {
    failing: Arc<Mutex<HashSet<u32>>>,
    registered: Arc<Mutex<HashSet<u32>>>,
    requests: Arc<Mutex<HashMap<u32, u32>>>,
}

impl FakeRegistry {
    pub(super) fn start() -> anyhow::Result<(FakeRegistry, String)> {
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

    pub(super) fn fail(&self, id: u32, failing: bool) {
        let mut set = self.failing.lock().expect("registry state lock");
        if failing {
            set.insert(id);
        } else {
            set.remove(&id);
        }
    }

    pub(super) fn register(&self, id: u32) {
        self.registered
            .lock()
            .expect("registry state lock")
            .insert(id);
    }

    pub(super) fn requests_for(&self, id: u32) -> u32 {
        self.requests
            .lock()
            .expect("registry state lock")
            .get(&id)
            .copied()
            .unwrap_or(0)
    }
}

pub(super) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// A menu click `n` framed with writer schema `schema_id` (which must be menu_click v1).
pub(super) fn click(n: u32, event_key: &str, schema_id: u32) -> Vec<u8> {
    click_at(n, event_key, schema_id, now_ms())
}

/// [`click`] received at `now` (server time − 59 s, client time − 60 s).
pub(super) fn click_at(n: u32, event_key: &str, schema_id: u32, now: i64) -> Vec<u8> {
    click_of("wx-fault", n, event_key, schema_id, now)
}

/// [`click_at`] of account `app_id`.
pub(super) fn click_of(app_id: &str, n: u32, event_key: &str, schema_id: u32, now: i64) -> Vec<u8> {
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
pub(super) async fn produce_to(
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
pub(super) async fn assert_exact_with_rollups(
    stack: &Stack,
    db: &str,
    want: u64,
) -> anyhow::Result<()> {
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

/// Dead letters in the topic, by source offset (a redelivered record counts once).
pub(super) fn dead_letters(stack: &Stack) -> anyhow::Result<usize> {
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
pub(super) async fn owns(service: &Service, n: usize) {
    let owned = metric_reaches(service, "wxpulse_source_assigned_partitions", &[], n as f64).await;
    assert!(
        owned >= n as f64,
        "{} owns fewer than {n} partitions after 60 s",
        service.name
    );
}

/// Polls `service`'s metric `name` (summed over series with `labels`) until it is at
/// least `want` or 60 s pass; returns the last value read (0 when never exported).
pub(super) async fn metric_reaches(
    service: &Service,
    name: &str,
    labels: &[&str],
    want: f64,
) -> f64 {
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
