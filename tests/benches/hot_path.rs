//! Hot-path benchmark: events/s per core for each service's per-event work, no Kafka and no
//! ClickHouse. Prints figures; asserts nothing about speed.
//!
//! Stage 1 — decode → validate → event-id dedup (window and 7-day horizon) → pseudonymise → the service's row, the
//! exact function the pipeline runs per record, looking ahead in the records as it does in a
//! chunk (`decode::bench::process`).
//! Stage 2 — RowBinary encoding + LZ4 of those rows by the `clickhouse` crate, streamed to
//! an in-process HTTP endpoint on loopback that discards the body (the crate's serializer
//! is private, so this is the honest way to time the real encoder; HTTP costs once per
//! 50k-row batch). Schema validation (RowBinaryWithNamesAndTypes) is off here.
//!
//! Run: `cargo bench -p wxpulse-e2e --bench hot_path` (or `make bench`). To profile one
//! stream (`perf record`), `WXPULSE_BENCH_ONLY=qr-scans` skips the other streams, the dedup
//! stage and the breakdown, and `WXPULSE_BENCH_ROUNDS=50` repeats stage 1 (default 5).

use std::hint::black_box;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clickhouse::{RowOwned, RowWrite};
use wxpulse_generator::generate::{self, Spec};
use wxpulse_runtime::codec::Registry;
use wxpulse_runtime::config::Config;
use wxpulse_runtime::decode::bench::process;
use wxpulse_runtime::decode::Decoder;
use wxpulse_runtime::dedup::{EventIds, Seen};
use wxpulse_runtime::enrich::Dimensions;
use wxpulse_runtime::metrics::Metrics;
use wxpulse_runtime::pii::Pseudonymizer;
use wxpulse_runtime::segment::{FanBudget, FanLimits, FanStates};
use wxpulse_runtime::source::Record;
use wxpulse_runtime::stream::Stream;

const EVENTS: u64 = 400_000;
const BATCH: usize = 50_000;
/// Stage 2's repetitions: the best time is kept, the bytes sent are averaged over them.
const ENCODE_ROUNDS: usize = 5;

fn records(topic: &str, spec: &Spec) -> Vec<Record> {
    let (out, _) = generate::generate(spec);
    out.into_iter()
        .filter(|o| o.topic == topic)
        .enumerate()
        .map(|(i, o)| Record {
            partition: 0,
            offset: i as i64,
            epoch: 1,
            timestamp: -1,
            key: Some(o.key),
            payload: o.payload,
            carried: None,
        })
        .collect()
}

fn stage1<S: Stream>(
    mut stream: S,
    records: &[Record],
    cfg: &Config,
    dims: &Dimensions,
) -> (Vec<S::Row>, f64) {
    let registry = Arc::new(Registry::embedded());
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64);
    let mut best = f64::MAX;
    let mut rows = Vec::with_capacity(records.len());
    // Bounded like a service's partition state (pipeline.rs), so the caps' bookkeeping and
    // the daily sweeps are in the figure.
    let metrics = Metrics::new("bench");
    let budget = FanBudget::new(FanLimits::from_config(cfg), &metrics.fans_evicted);
    for _ in 0..rounds() {
        rows.clear();
        // Fresh each run, as a service starts: no pseudonyms remembered from the last run.
        let mut decoder = Decoder::new(registry.clone(), cfg, "bench");
        // Steady state: every batch before this record is written (watermark at the end).
        let mut ids = EventIds::configured(&cfg.dedup, metrics.ids_evicted.clone(), i64::MAX);
        let mut fans = FanStates::bounded(&budget);
        let started = Instant::now();
        for i in 0..records.len() {
            process(
                &mut decoder,
                &mut stream,
                &records[i..],
                &mut ids,
                &mut fans,
                dims,
                now,
                &mut rows,
            );
        }
        best = best.min(started.elapsed().as_secs_f64() / records.len() as f64);
    }
    (rows, best * 1e9)
}

async fn stage2<R: RowOwned + RowWrite>(
    rows: &[R],
    url: &str,
    compression: clickhouse::Compression,
) -> (f64, f64) {
    let client = clickhouse::Client::default()
        .with_url(url)
        .with_validation(false)
        .with_compression(compression);
    let mut best = f64::MAX;
    RECEIVED.store(0, Ordering::Relaxed);
    for _ in 0..ENCODE_ROUNDS {
        let started = Instant::now();
        for chunk in rows.chunks(BATCH) {
            let mut insert = client.insert::<R>("bench").await.expect("insert");
            for row in chunk {
                insert.write(row).await.expect("write");
            }
            insert.end().await.expect("end");
        }
        best = best.min(started.elapsed().as_secs_f64() / rows.len() as f64);
    }
    let sent = RECEIVED.load(Ordering::Relaxed) as f64 / (ENCODE_ROUNDS * rows.len()) as f64;
    (best * 1e9, sent)
}

/// Body bytes the sink endpoint received: what an insert sends on the wire.
static RECEIVED: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// An HTTP endpoint that reads and discards request bodies, counting their bytes.
async fn sink_server() -> String {
    use http_body_util::BodyExt;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(
                    |req: hyper::Request<hyper::body::Incoming>| async move {
                        let mut body = req.into_body();
                        while let Some(frame) = body.frame().await {
                            if let Some(data) = frame.ok().and_then(|f| f.into_data().ok()) {
                                RECEIVED.fetch_add(data.len(), Ordering::Relaxed);
                            }
                        }
                        Ok::<_, std::convert::Infallible>(hyper::Response::new(
                            http_body_util::Full::new(bytes::Bytes::new()),
                        ))
                    },
                );
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    format!("http://{addr}")
}

/// Stage 1's repetitions (the best is kept): `WXPULSE_BENCH_ROUNDS`, 5 by default.
fn rounds() -> usize {
    std::env::var("WXPULSE_BENCH_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(5)
}

/// Whether `name` is benched: every stream unless `WXPULSE_BENCH_ONLY` names one.
fn selected(name: &str) -> bool {
    std::env::var("WXPULSE_BENCH_ONLY").map_or(true, |only| only == name)
}

async fn bench<S: Stream>(
    name: &str,
    stream: S,
    spec: &Spec,
    cfg: &Config,
    dims: &Dimensions,
    url: &str,
) {
    if !selected(name) {
        return;
    }
    let records = records(S::TOPIC, spec);
    let bytes: usize = records
        .iter()
        .map(|r| r.payload.as_ref().map_or(0, Vec::len))
        .sum();
    let (rows, ns1) = stage1(stream, &records, cfg, dims);
    let (ns2, sent) = stage2(&rows, url, clickhouse::Compression::Lz4).await;
    let (plain, sent_plain) = stage2(&rows, url, clickhouse::Compression::None).await;
    println!(
        "{name:<14} {:>8} events  {:>5.0} B/event  decode→row {ns1:>6.0} ns  encode+lz4 {ns2:>6.0} ns (without lz4 {plain:>4.0}; sent {sent:.0} / {sent_plain:.0} B/row)  total {:>6.0} ns = {:>5.2} M events/s/core",
        records.len(),
        bytes as f64 / records.len() as f64,
        ns1 + ns2,
        1e3 / (ns1 + ns2),
    );
}

/// Where stage 1's time goes, on the menu-click records.
fn breakdown(records: &[Record], cfg: &Config) {
    use wxpulse_runtime::codec;
    use wxpulse_runtime::events::{Interaction, MenuClick};
    let registry = Registry::embedded();
    let writer = registry.cached(1).expect("menu click schema");
    let pii = Pseudonymizer::new(cfg.pii.key.expose().as_bytes());
    let time = |label: &str, f: &mut dyn FnMut(&[u8]) -> u64| {
        let mut best = f64::MAX;
        for _ in 0..5 {
            let started = Instant::now();
            let mut acc = 0u64;
            for r in records {
                acc = acc.wrapping_add(f(r.payload.as_deref().unwrap_or_default()));
            }
            black_box(acc);
            best = best.min(started.elapsed().as_secs_f64() * 1e9 / records.len() as f64);
        }
        println!("  {label:<44} {best:>6.0} ns");
    };
    println!("menu-clicks stage 1 breakdown (cumulative):");
    time("frame + decode into borrowed struct", &mut |p| {
        let (_, datum) = codec::split_frame(p).expect("framed");
        let e: MenuClick<'_> = codec::decode(datum, &writer.schema).expect("decodes");
        e.client_time as u64
    });
    time("+ parse event_id (UUID)", &mut |p| {
        let (_, datum) = codec::split_frame(p).expect("framed");
        let e: MenuClick<'_> = codec::decode(datum, &writer.schema).expect("decodes");
        uuid::Uuid::try_parse(e.header().event_id).map_or(0, |u| u.as_u128() as u64)
    });
    time("+ HMAC openid", &mut |p| {
        let (_, datum) = codec::split_frame(p).expect("framed");
        let e: MenuClick<'_> = codec::decode(datum, &writer.schema).expect("decodes");
        pii.fan_id(e.openid)
    });
    time("+ HMAC openid and unionid", &mut |p| {
        let (_, datum) = codec::split_frame(p).expect("framed");
        let e: MenuClick<'_> = codec::decode(datum, &writer.schema).expect("decodes");
        pii.fan_id(e.openid) ^ pii.optional_fan_id(e.unionid)
    });
}

/// The dedup stage alone, per fresh event id: the window only, then window + horizon with a
/// week of ids already held (a partition at 1.7 and at 17 events/s), and the horizon's
/// memory per million ids and measured false-positive share (each one a ClickHouse lookup).
fn dedup_stage(cfg: &Config) {
    const FRESH: u128 = 1_000_000;
    let week = 7 * 86_400_000i64;
    println!(
        "dedup per fresh event id, one core (dedup.horizon = 7 days, false_positive = {}):",
        cfg.dedup.horizon_false_positive
    );
    for held in [1_000_000u128, 10_000_000] {
        for horizon in [false, true] {
            let mut dedup = cfg.dedup.clone();
            if !horizon {
                dedup.horizon = Duration::ZERO;
            }
            let evicted = Metrics::new("bench").ids_evicted.clone();
            let mut ids = EventIds::configured(&dedup, evicted, i64::MAX);
            let step = week / held as i64;
            for i in 0..held {
                ids.check(
                    i.wrapping_mul(0x9e37_79b9_7f4a_7c15_f39c_c060_5ced_c835),
                    i as i64 * step,
                    0,
                );
            }
            let start_ms = held as i64 * step;
            let mut suspects = 0u64;
            let started = Instant::now();
            for i in 0..FRESH {
                let id = (held + i).wrapping_mul(0x9e37_79b9_7f4a_7c15_f39c_c060_5ced_c835);
                if ids.check(id, start_ms + i as i64 * step, 0) == Seen::Suspect {
                    suspects += 1;
                }
            }
            let ns = started.elapsed().as_secs_f64() * 1e9 / FRESH as f64;
            let mib_per_million =
                ids.horizon.bytes() as f64 / 1_048_576.0 / ((held + FRESH) as f64 / 1e6);
            println!(
                "  {:>2}M ids held  {:<17} {ns:>5.0} ns/event  horizon {:>6.1} MiB ({mib_per_million:.2} MiB per million ids)  flagged {:.3}%",
                held / 1_000_000,
                if horizon { "window + horizon" } else { "window only" },
                ids.horizon.bytes() as f64 / 1_048_576.0,
                suspects as f64 * 100.0 / FRESH as f64,
            );
        }
    }
}

fn main() {
    let cfg = Config::load(None, Vec::new()).expect("default config");
    let everything = std::env::var_os("WXPULSE_BENCH_ONLY").is_none();
    if everything {
        dedup_stage(&cfg);
    }
    let now = 1_760_000_000_000;
    let spec = Spec {
        seed: 42,
        brands: 2,
        accounts_per_brand: 4,
        fans_per_account: 50_000,
        events: EVENTS,
        start_ms: now - 30 * 86_400_000,
        end_ms: now,
        duplicate_share: 0.0,
        resend_share: 0.0,
        late_share: 0.02,
        malformed_share: 0.0,
        unknown_dimension_share: 0.01,
        unknown_account_share: 0.0,
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    // The generator's world as the services would hold it: lookups hit like in production
    // (1% of events carry a key no dimension has).
    let mut dims = Dimensions::detached(Pseudonymizer::new(cfg.pii.key.expose().as_bytes()));
    for record in wxpulse_generator::world::World::new(&spec).dimension_records() {
        let (dimension, key) = (record.dimension(), record.key());
        dims.apply(dimension, &key, Some(record));
    }
    runtime.block_on(async {
        let url = sink_server().await;
        if everything {
            breakdown(&records("wxpulse.menu_clicks", &spec), &cfg);
        }
        println!(
            "hot path per event, one core, best of {} ({EVENTS} generated events, split by stream):",
            rounds()
        );
        bench(
            "menu-clicks",
            wxpulse_menu_clicks::MenuClicks::new(&cfg),
            &spec,
            &cfg,
            &dims,
            &url,
        )
        .await;
        bench(
            "article-reads",
            wxpulse_article_reads::ArticleReads::new(&cfg),
            &spec,
            &cfg,
            &dims,
            &url,
        )
        .await;
        bench(
            "chat-messages",
            wxpulse_chat_messages::ChatMessages::new(&cfg),
            &spec,
            &cfg,
            &dims,
            &url,
        )
        .await;
        bench(
            "qr-scans",
            wxpulse_qr_scans::QrScans::new(&cfg),
            &spec,
            &cfg,
            &dims,
            &url,
        )
        .await;
        bench(
            "orders",
            wxpulse_orders::Orders::new(&cfg),
            &spec,
            &cfg,
            &dims,
            &url,
        )
        .await;
        tokio::time::sleep(Duration::from_millis(10)).await;
    });
}
