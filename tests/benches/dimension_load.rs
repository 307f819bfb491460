//! How long a service takes to load the fan-profile dimension at start-up, per million
//! profiles, on the local stack (Tansu + chdb): the services read the dimension topics to
//! their end before consuming any event. Prints figures; asserts only that every profile
//! was loaded.
//!
//! It publishes `WXPULSE_BENCH_PROFILES` profiles (default 1,000,000) to
//! `wxpulse.dim.fan_profile`, then measures
//! 1. a plain rdkafka reader of the topic that decodes nothing (what the broker can serve),
//! 2. the services' start-up load (`enrich::follow::load_and_follow`, exactly as a service
//!    calls it): from the topic alone, and
//! 3. from the snapshot the fan-profile mirror keeps in ClickHouse plus the topic's tail
//!    past the mirror's committed offsets (after `wxpulse dims mirror --once`),
//! 4. and, without any broker, what decoding and applying the records costs in-process.
//!
//! Run: `make bench-dims` (`cargo bench -p wxpulse-e2e --bench dimension_load`).

use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};
use wxpulse_cli::produce::{self, Outgoing};
use wxpulse_e2e::{binary, Stack};
use wxpulse_runtime::codec::Registry;
use wxpulse_runtime::config::Config;
use wxpulse_runtime::enrich::{
    follow, snapshot, CustomerStatus, Dimension, DimensionRecord, Dimensions, FanProfileRecord,
};
use wxpulse_runtime::metrics::Metrics;
use wxpulse_runtime::pii::Pseudonymizer;

const DB: &str = "wx_bench_dims";
const T: i64 = 1_741_996_800_000;

fn profile(i: u64) -> DimensionRecord {
    let status = match i % 10 {
        0 => CustomerStatus::Vip,
        1..=3 => CustomerStatus::Customer,
        _ => CustomerStatus::Prospect,
    };
    DimensionRecord::FanProfile(FanProfileRecord {
        app_id: format!("wxb{:02}a00", i % 4),
        openid: format!("oBENCH{i:010}"),
        status,
        member_tier: (i % 3 == 0).then(|| "gold".to_string()),
        associate_userid: (i % 2 == 0).then(|| format!("assoc{:04}", i % 2_000)),
        followed_at: Some(T - (i % 1_000) as i64 * 86_400_000),
        unfollowed_at: None,
        follow_source: Some("ADD_SCENE_QR_CODE".to_string()),
        updated_at: T,
        birthday: None,
    })
}

fn outgoing(i: u64) -> Outgoing {
    let record = profile(i);
    Outgoing {
        topic: Dimension::FanProfile.topic(),
        key: record.key().into_bytes(),
        payload: Some(record.encode().expect("encodes")),
        at_ms: 0,
    }
}

/// Reads every partition of the topic to its end, decoding nothing.
fn plain_read(config: &Config) -> anyhow::Result<u64> {
    let consumer: BaseConsumer =
        wxpulse_runtime::source::client_config(&config.kafka, "wxpulse-bench-plain-reader")
            .remove("statistics.interval.ms")
            .create()?;
    let topic = Dimension::FanProfile.topic();
    let metadata = consumer.fetch_metadata(Some(topic), Duration::from_secs(10))?;
    let mut tpl = TopicPartitionList::new();
    let mut left = 0usize;
    for t in metadata.topics() {
        for p in t.partitions() {
            let (low, high) = consumer.fetch_watermarks(topic, p.id(), Duration::from_secs(10))?;
            if high > low {
                tpl.add_partition_offset(topic, p.id(), Offset::Beginning)?;
                left += 1;
            }
        }
    }
    consumer.assign(&tpl)?;
    let mut ends = std::collections::HashMap::new();
    for e in tpl.elements() {
        let (_, high) = consumer.fetch_watermarks(topic, e.partition(), Duration::from_secs(10))?;
        ends.insert(e.partition(), high);
    }
    let mut n = 0u64;
    while left > 0 {
        let Some(m) = consumer.poll(Duration::from_millis(200)) else {
            continue;
        };
        let m = m?;
        n += 1;
        if m.offset() + 1 >= ends[&m.partition()] {
            left -= 1;
        }
    }
    Ok(n)
}

/// The services' start-up load; returns the profiles held and the seconds it took.
fn service_load(
    runtime: &tokio::runtime::Runtime,
    config: &Config,
) -> anyhow::Result<(usize, f64)> {
    let metrics = Metrics::new("bench");
    let registry = Arc::new(Registry::from_config(&config.schema_registry)?);
    let mut dims = Dimensions::new(
        Pseudonymizer::new(config.pii.key.expose().as_bytes()),
        Dimension::ALL.map(|d| metrics.dimension_missing.with_label_values(&[d.as_str()])),
    );
    let started = Instant::now();
    let starts = runtime.block_on(snapshot::load_fan_profiles(config, &mut dims));
    let feed = follow::load_and_follow(
        config,
        "bench",
        &[Dimension::FanProfile],
        starts,
        registry,
        metrics,
        &mut dims,
    )?;
    let took = started.elapsed().as_secs_f64();
    drop(feed);
    Ok((dims.len(Dimension::FanProfile), took))
}

fn main() -> anyhow::Result<()> {
    if std::env::args().any(|a| a == "--list") {
        return Ok(());
    }
    let n: u64 = std::env::var("WXPULSE_BENCH_PROFILES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let runtime = tokio::runtime::Runtime::new()?;

    // 4. In-process: decode + apply, no broker.
    let registry = Registry::embedded();
    let records: Vec<(String, Vec<u8>)> = (0..n)
        .map(|i| {
            let o = outgoing(i);
            (
                String::from_utf8(o.key).expect("utf-8"),
                o.payload.expect("value"),
            )
        })
        .collect();
    let mut dims = Dimensions::detached(Pseudonymizer::new(b"bench"));
    let started = Instant::now();
    for (key, payload) in &records {
        let record = DimensionRecord::from_framed(Dimension::FanProfile, payload, &registry)
            .map_err(anyhow::Error::msg)?;
        dims.apply(Dimension::FanProfile, key, Some(record));
    }
    let in_process = started.elapsed().as_secs_f64();
    assert_eq!(dims.len(Dimension::FanProfile) as u64, n);
    drop((dims, records));

    let stack = Stack::start("bench-dims")?;
    runtime.block_on(stack.prepare(DB, 4))?;
    let mut config = stack.config()?;
    config.clickhouse.database = DB.to_string();
    config.dimensions.load_timeout = Duration::from_secs(3_600);
    let started = Instant::now();
    runtime.block_on(async {
        let producer = produce::producer(&stack.kafka())?;
        produce::send_all(&producer, (0..n).map(outgoing), |_| {}).await
    })?;
    let produced = started.elapsed().as_secs_f64();

    // 1. The broker's floor.
    let started = Instant::now();
    let plain = plain_read(&config)?;
    let plain_s = started.elapsed().as_secs_f64();
    assert_eq!(plain, n);

    // 2. The topic alone.
    config.dimensions.fan_profile_snapshot = false;
    let (held, topic_s) = service_load(&runtime, &config)?;
    config.dimensions.fan_profile_snapshot = true;
    assert_eq!(held as u64, n);

    // 3. Snapshot + tail: the mirror copies the topic into ClickHouse first.
    let started = Instant::now();
    let status = std::process::Command::new(binary("wxpulse")?)
        .envs(stack.env())
        .args(["--database", DB, "dims", "mirror", "--once"])
        .status()?;
    anyhow::ensure!(status.success(), "dims mirror --once: {status}");
    let mirrored = started.elapsed().as_secs_f64();
    let (held, snapshot_s) = service_load(&runtime, &config)?;
    assert_eq!(held as u64, n);

    let per_million = |s: f64| s * 1e6 / n as f64;
    println!("fan-profile dimension load, {n} profiles (figures per million in brackets):");
    println!(
        "  in-process decode + apply:            {in_process:7.2} s  [{:6.2} s]  ({:.0} ns/profile)",
        per_million(in_process),
        in_process * 1e9 / n as f64
    );
    println!(
        "  produce to the broker:                {produced:7.2} s  [{:6.2} s]",
        per_million(produced)
    );
    println!(
        "  plain reader, no decode (floor):      {plain_s:7.2} s  [{:6.2} s]  ({:.0} records/s)",
        per_million(plain_s),
        n as f64 / plain_s
    );
    println!(
        "  service start-up, topic only:         {topic_s:7.2} s  [{:6.2} s]  ({:.0} records/s)",
        per_million(topic_s),
        n as f64 / topic_s
    );
    println!(
        "  mirror catch-up (dims mirror --once): {mirrored:7.2} s  [{:6.2} s]",
        per_million(mirrored)
    );
    println!(
        "  service start-up, snapshot + tail:    {snapshot_s:7.2} s  [{:6.2} s]  ({:.0} records/s)",
        per_million(snapshot_s),
        n as f64 / snapshot_s
    );
    Ok(())
}
