//! `wxpulse-generate`: builds the synthetic world from its seed, publishes its dimension
//! records, then produces a month of its telemetry (or a live stream) and prints or writes
//! the ground truth. For the demo, the tests and benchmarks; not in the production image.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;
use wxpulse_cli::{dims, produce};
use wxpulse_generator::generate;
use wxpulse_generator::world::World;
use wxpulse_runtime::config::{Config, KafkaConfig};

/// Live mode: time to generate the events before the first one is due, ms.
const LIVE_LEAD_MS: i64 = 2_000;

/// Generate a synthetic world and its telemetry: publish the world's dimension records,
/// then produce the events.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    /// Service config file (TOML) to take Kafka settings from; layered over the defaults
    /// and under WXPULSE__* env vars, exactly as the services do.
    #[arg(long, env = "WXPULSE_CONFIG")]
    config: Option<PathBuf>,
    /// Kafka bootstrap servers (default: from config).
    #[arg(long)]
    brokers: Option<String>,

    /// RNG seed.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Distinct valid interactions. The default, over 30 days and 2 × 2 × 20,000 fans
    /// (2.5 a fan), is the density the seed's shapes are tuned for (9.33% of followers
    /// active more than 4 times a month, push open rates within the read budget).
    #[arg(long, default_value_t = 200_000)]
    events: u64,
    /// Brands.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u32).range(1..))]
    brands: u32,
    /// Official Accounts per brand.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u32).range(1..))]
    accounts_per_brand: u32,
    /// Fans per account.
    #[arg(long, default_value_t = 20_000)]
    fans_per_account: u32,
    /// Days of event time, ending now.
    #[arg(long, default_value_t = 30)]
    days: i64,
    /// Share of duplicated events (upstream retries).
    #[arg(long, default_value_t = 0.01, value_parser = share)]
    duplicate_share: f64,
    /// Share of events sent again minutes to 3 days later (gateway replays, reconnect
    /// retries): the pipeline drops them as duplicates within dedup.horizon.
    #[arg(long, default_value_t = 0.0, value_parser = share)]
    resend_share: f64,
    /// Share of late events.
    #[arg(long, default_value_t = 0.02, value_parser = share)]
    late_share: f64,
    /// Share of malformed records.
    #[arg(long, default_value_t = 0.005, value_parser = share)]
    malformed_share: f64,
    /// Share of keys (button, scene, article, associate) no dimension record has, and
    /// of fans without a profile: exercises the pipeline's `unknown`.
    #[arg(long, default_value_t = 0.01, value_parser = share)]
    unknown_dimension_share: f64,
    /// Share of extra events of accounts the world does not publish, for services run
    /// with `validation.unknown_account = "dead_letter"` (the truth counts them as
    /// `unknown_account` dead letters).
    #[arg(long, default_value_t = 0.0, value_parser = share)]
    unknown_account_share: f64,
    /// Do not publish the world's dimension records before the events.
    #[arg(long, conflicts_with = "dimensions_only")]
    no_dimensions: bool,
    /// Publish the world's dimension records only, no events.
    #[arg(long)]
    dimensions_only: bool,
    /// Write the ground truth (JSON) here.
    #[arg(long)]
    truth: Option<PathBuf>,
    /// Live mode: server times start now and records are produced in real time at
    /// `--rate` events/s (for latency measurements) instead of a past span at full speed.
    #[arg(long)]
    live: bool,
    /// Events per second in live mode.
    #[arg(long, default_value_t = 20_000)]
    rate: u64,
}

fn share(value: &str) -> Result<f64, String> {
    match value.parse::<f64>() {
        Ok(v) if (0.0..=1.0).contains(&v) => Ok(v),
        _ => Err("a share between 0 and 1".to_string()),
    }
}

fn now_ms() -> anyhow::Result<i64> {
    Ok(std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .context("clock before 1970")?
        .as_millis() as i64)
}

fn main() -> ExitCode {
    wxpulse_cli::command_main("wxpulse-generate", run(Cli::parse()))
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let config = Config::load(cli.config.as_deref(), std::env::vars())?;
    let kafka = KafkaConfig {
        brokers: cli.brokers.clone().unwrap_or(config.kafka.brokers.clone()),
        ..config.kafka.clone()
    };
    let Cli {
        seed,
        events,
        brands,
        accounts_per_brand,
        fans_per_account,
        days,
        duplicate_share,
        resend_share,
        late_share,
        malformed_share,
        unknown_dimension_share,
        unknown_account_share,
        no_dimensions,
        dimensions_only,
        truth,
        live,
        rate,
        ..
    } = cli;
    let now = now_ms()?;
    let (start_ms, end_ms) = if live {
        (
            now + LIVE_LEAD_MS,
            now + LIVE_LEAD_MS + (events * 1000 / rate.max(1)) as i64,
        )
    } else {
        // Leave room for the latest late events to arrive before "now".
        (
            now - days * 86_400_000 - 4 * 86_400_000,
            now - 4 * 86_400_000,
        )
    };
    let spec = generate::Spec {
        seed,
        brands,
        accounts_per_brand,
        fans_per_account,
        events,
        start_ms,
        end_ms,
        duplicate_share,
        resend_share,
        late_share,
        malformed_share,
        unknown_dimension_share,
        unknown_account_share,
    };
    let world = World::new(&spec);
    let producer = produce::producer(&kafka)?;
    if !no_dimensions {
        let records = world.dimension_records();
        let counts = dims::count_by_dimension(&records);
        let n = produce::send_all(&producer, dims::outgoing(&records)?, |_| {}).await?;
        eprintln!("[generate] {n} dimension records published: {counts:?}");
    }
    if dimensions_only {
        return Ok(());
    }
    // Live events start once the world is published (with the same lead for
    // generating them); the world keeps its span's times, a little earlier, so
    // every push still precedes the reads of it.
    let spec = if live {
        let start_ms = spec.start_ms.max(now_ms()? + LIVE_LEAD_MS);
        generate::Spec {
            start_ms,
            end_ms: start_ms + (spec.end_ms - spec.start_ms),
            ..spec
        }
    } else {
        spec
    };
    let (records, ground_truth) = generate::generate_with(&spec, &world);
    let total = records.len();
    let started = std::time::Instant::now();
    let sent = produce::send_paced(&producer, records, live, |n| {
        if n % 100_000 == 0 {
            eprintln!("[generate] {n}/{total} produced");
        }
    })
    .await?;
    let secs = started.elapsed().as_secs_f64();
    eprintln!(
        "[generate] {sent} records in {secs:.1} s ({:.0}/s)",
        sent as f64 / secs
    );
    eprintln!(
        "[generate] shapes: {}",
        serde_json::to_string(&ground_truth.report.shapes)?
    );
    let c = &ground_truth.conversions;
    eprintln!(
        "[generate] orders: {} purchases, {} refunds in {} records to {}; shapes: {}",
        c.purchases,
        c.refunds,
        c.records,
        generate::ORDERS_TOPIC,
        serde_json::to_string(&c.shapes)?
    );
    let json = serde_json::to_string_pretty(&ground_truth)?;
    match truth {
        Some(path) => std::fs::write(&path, json).with_context(|| format!("{}", path.display()))?,
        None => println!("{json}"),
    }
    Ok(())
}
