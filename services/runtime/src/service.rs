//! The entry point every service binary calls: flags, config, logs, metrics endpoint,
//! source, sink, pipeline, and shutdown — so a service's `main` is one line.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::Parser;

use crate::codec::Registry;
use crate::config::{Config, Lane};
use crate::dlq::DeadLetterSink;
use crate::enrich::{follow, Dimension, Dimensions};
use crate::metrics::{self, Metrics};
use crate::overflow::{self, OverflowSink};
use crate::pii::Pseudonymizer;
use crate::pipeline::Pipeline;
use crate::sink::Sink;
use crate::stream::Stream;
use crate::{shutdown, source};

/// Flags shared by every service binary.
#[derive(Debug, Parser)]
#[command(
    version,
    after_help = "Every setting can be overridden by env: WXPULSE__<SECTION>__<KEY> \
                  (e.g. WXPULSE__KAFKA__BROKERS). Defaults: config/default.toml."
)]
pub struct Flags {
    /// TOML file layered over the built-in defaults.
    #[arg(long, env = "WXPULSE_CONFIG")]
    pub config: Option<PathBuf>,
    /// Print the effective configuration (secrets redacted) and exit.
    #[arg(long)]
    pub print_config: bool,
}

/// Parses flags, loads config and runs the service until SIGTERM/SIGINT.
pub fn main<S: Stream>(about: &'static str, make: impl FnOnce(&Config) -> S) -> ExitCode {
    launch(S::SERVICE, about, |config| {
        let stream = make(&config);
        run(stream, Arc::new(config))
    })
}

/// What every wxpulse process does before its own work: parse the common flags, load and
/// validate the configuration (exit 2 if it is wrong), honour `--print-config`, start the
/// logs and a 2-thread runtime, then run `work` to its end (exit 1 on error, logged).
pub fn launch<F>(name: &str, about: &'static str, work: impl FnOnce(Config) -> F) -> ExitCode
where
    F: std::future::Future<Output = anyhow::Result<()>>,
{
    let flags = Flags::parse_from_about(about);
    let config = match Config::load(flags.config.as_deref(), std::env::vars()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{name}: {e}");
            return ExitCode::from(2);
        }
    };
    if flags.print_config {
        println!("{config:#?}");
        return ExitCode::SUCCESS;
    }
    init_logs(&config);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(work(config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(service = name, error = format!("{e:#}"), "service failed");
            ExitCode::FAILURE
        }
    }
}

impl Flags {
    fn parse_from_about(about: &'static str) -> Self {
        use clap::{CommandFactory, FromArgMatches};
        let matches = Self::command().about(about).get_matches();
        Self::from_arg_matches(&matches).unwrap_or_else(|e| e.exit())
    }
}

fn init_logs(config: &Config) {
    let filter = tracing_subscriber::EnvFilter::try_new(&config.log.level)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // Colour codes only for a terminal: a file or a log collector gets plain text.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(std::io::stderr);
    if config.log.format == "json" {
        builder.json().flatten_event(true).init();
    } else {
        builder.init();
    }
}

/// Runs one service to completion.
pub async fn run<S: Stream>(stream: S, config: Arc<Config>) -> anyhow::Result<()> {
    let lane = config.overflow.lane;
    if (config.overflow.enabled || lane == Lane::Overflow) && !S::OVERFLOW {
        anyhow::bail!(
            "{} cannot use the overflow lane (overflow.enabled / overflow.lane): its rows need \
             every record of a partition in order",
            S::SERVICE
        );
    }
    let topic = non_empty_or(&config.kafka.topic, S::TOPIC);
    let group = non_empty_or(&config.kafka.group_id, &format!("wxpulse-{}", S::SERVICE));
    // The overflow lane: the same stream, from `<topic>.overflow`, under its own group and
    // service label.
    let (topic, group, name) = match lane {
        Lane::Primary => (topic, group, S::SERVICE.to_string()),
        Lane::Overflow => (
            overflow::topic_of(&topic),
            overflow::lane_group_of(&group),
            format!("{}-overflow", S::SERVICE),
        ),
    };
    let shutdown = shutdown::on_signals();
    let metrics = Metrics::new(&name);
    metrics.set_stuck_after(config.batch.stuck_after);
    stream
        .register_metrics(metrics.registry())
        .context("cannot register the stream's own metrics")?;
    let listen = config.metrics.listen.parse().context("metrics.listen")?;
    let addr = metrics::serve(metrics.clone(), listen, shutdown.clone()).await?;
    tracing::info!(service = %name, %topic, %group, metrics = %addr, "starting");

    connect(&config).await?;
    let sink = Sink::new(&config.clickhouse, config.retry.clone(), S::TABLE, &topic)?;
    crate::sink::check_tls(sink.client(), &config.clickhouse).await?;
    let registry = Arc::new(Registry::from_config(&config.schema_registry)?);
    {
        let registry = registry.clone();
        tokio::task::spawn_blocking(move || registry.check())
            .await
            .context("registry check panicked")??;
    }
    // The cluster's settings without the consumer's (librdkafka warns about each of those
    // on a producer).
    let dead_letters = DeadLetterSink::create(
        crate::kafka::client_config(&config.kafka)
            .set("compression.type", "lz4")
            .set("linger.ms", "5")
            .set("enable.idempotence", "true"),
        &config,
        &metrics.dead_letters_undeliverable,
    )?;
    let overflow = if lane == Lane::Primary && config.overflow.enabled {
        Some(
            OverflowSink::create(&config, &topic, metrics.overflow_errors.clone())
                .context("cannot create the overflow lane's producer")?,
        )
    } else {
        None
    };
    let mut dims = Dimensions::new(
        Pseudonymizer::new(config.pii.key.expose().as_bytes()),
        Dimension::ALL.map(|d| metrics.dimension_missing.with_label_values(&[d.as_str()])),
    );
    // A fan's follow times come from the CRM's profile and from WeChat's callbacks.
    let mut wanted = vec![
        Dimension::Account,
        Dimension::FanProfile,
        Dimension::FanFollow,
    ];
    wanted.extend_from_slice(S::DIMENSIONS);
    wanted.sort_unstable();
    wanted.dedup();
    let load_started = std::time::Instant::now();
    let starts = crate::enrich::snapshot::load_fan_profiles(&config, &mut dims).await;
    if !starts.is_empty() {
        metrics
            .snapshot_rows
            .set(dims.len(Dimension::FanProfile) as i64);
    }
    let feed = {
        let (config, registry, metrics) = (config.clone(), registry.clone(), metrics.clone());
        let service = S::SERVICE;
        tokio::task::spawn_blocking(move || {
            follow::load_and_follow(
                &config, service, &wanted, starts, registry, metrics, &mut dims,
            )
            .map(|feed| (feed, dims))
        })
        .await
        .context("dimension loader panicked")??
    };
    let (feed, dims) = feed;
    metrics
        .dimension_load_seconds
        .set(load_started.elapsed().as_secs_f64());
    let source = source::start(
        &config.kafka,
        &group,
        &topic,
        config.batch.queue_capacity,
        metrics.clone(),
    )?;
    let pipeline = Pipeline::new(
        stream,
        config.clone(),
        topic,
        metrics,
        registry,
        dims,
        sink,
        dead_letters,
        overflow,
        (lane == Lane::Primary && S::OVERFLOW).then(|| overflow::lane_group_of(&group)),
    );
    pipeline.run(source, feed, shutdown).await;
    Ok(())
}

/// Reaches Kafka and authenticates before any real client starts, so a refused login or
/// a wrong protocol stops the service with the reason instead of silent retries.
async fn connect(config: &Arc<Config>) -> anyhow::Result<()> {
    let config = config.clone();
    tokio::task::spawn_blocking(move || crate::kafka::preflight(&config.kafka))
        .await
        .context("Kafka preflight panicked")??;
    Ok(())
}

fn non_empty_or(value: &str, default: &str) -> String {
    if value.trim().is_empty() {
        default.to_string()
    } else {
        value.to_string()
    }
}
