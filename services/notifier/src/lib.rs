//! Behaviour notifications for sales associates (seed 000, WeCom CRM 通知提醒; seed 003's
//! social selling): when one of an associate's fans is in the store, reads a push deeply,
//! waits for a reply, buys or refunds, the associate is told — once, within the rule's
//! per-fan and the associate's hourly limit, and not in the quiet hours.
//!
//! The notifier is its own consumer group on the scan, read, chat and order topics (the
//! counting services are not slowed or coupled to it), follows the same dimensions, and
//! writes each notification to `wxpulse.notifications` (Avro, keyed by associate, for a
//! WeCom gateway to send as an app message) and to the `notifications` table (the
//! follow-up rate, `v_notifications_daily`). Effectively once on both outputs: ids are
//! derived from rule and trigger, what was sent is read back from the topic before new
//! partitions are handled ([`ledger`]), the table deduplicates by id.
//!
//! Layout: [`rules`] (what fires, for whom), [`waits`] (unanswered messages),
//! [`limits`] (sent, limits, quiet hours), [`notification`] (record, row, id), [`ledger`]
//! (the topic read back), `run` (the loop), [`metrics`].

use std::sync::{Arc, Mutex};

use anyhow::Context as _;
use wxpulse_runtime::codec::{self, Registry};
use wxpulse_runtime::config::Config;
use wxpulse_runtime::enrich::{follow, Dimension, Dimensions};
use wxpulse_runtime::metrics::Metrics;
use wxpulse_runtime::pii::Pseudonymizer;
use wxpulse_runtime::{kafka, shutdown, sink};

pub mod ledger;
pub mod limits;
pub mod metrics;
pub mod notification;
mod output;
pub mod rules;
mod run;
pub mod scheduled;
pub mod waits;

pub use run::STREAMS;

/// Service name: metric label, consumer group `wxpulse-notifier`.
pub const SERVICE: &str = "notifier";
/// Schema-registry subject of the notification topic.
pub const SUBJECT: &str = "wxpulse.notifications-value";

/// Runs the notifier until SIGTERM/SIGINT.
pub async fn run(config: Config) -> anyhow::Result<()> {
    let config = Arc::new(config);
    let shutdown = shutdown::on_signals();
    let metrics = Metrics::new(SERVICE);
    let own = crate::metrics::NotifierMetrics::register(metrics.registry())
        .context("cannot register the notifier's metrics")?;
    let listen = config.metrics.listen.parse().context("metrics.listen")?;
    let addr = wxpulse_runtime::metrics::serve(metrics.clone(), listen, shutdown.clone()).await?;
    let group = if config.kafka.group_id.trim().is_empty() {
        format!("wxpulse-{SERVICE}")
    } else {
        config.kafka.group_id.clone()
    };
    tracing::info!(service = SERVICE, %group, topic = %config.notifier.topic, metrics = %addr, "starting");
    {
        let config = config.clone();
        tokio::task::spawn_blocking(move || kafka::preflight(&config.kafka))
            .await
            .context("Kafka preflight panicked")??;
    }
    let client = sink::client(&config.clickhouse)?;
    sink::check_tls(&client, &config.clickhouse).await?;
    let registry = Arc::new(Registry::from_config(&config.schema_registry)?);
    let schema = {
        let registry = registry.clone();
        tokio::task::spawn_blocking(move || -> anyhow::Result<(u32, codec::Schema)> {
            registry.check()?;
            let embedded = codec::latest(SUBJECT).context("no embedded notification schema")?;
            let id = registry.id_of(SUBJECT, embedded.json)?.with_context(|| {
                format!(
                    "the schema registry does not hold version {} of {SUBJECT}; register it first",
                    embedded.version
                )
            })?;
            Ok((id, codec::parse(embedded.json)?))
        })
        .await
        .context("registry lookup panicked")??
    };
    let pii = Pseudonymizer::new(config.pii.key.expose().as_bytes());
    let mut dims = Dimensions::new(
        pii.clone(),
        Dimension::ALL.map(|d| metrics.dimension_missing.with_label_values(&[d.as_str()])),
    );
    let wanted = vec![
        Dimension::Account,
        Dimension::Store,
        Dimension::Associate,
        Dimension::QrScene,
        Dimension::FanProfile,
        Dimension::FanFollow,
    ];
    let starts = wxpulse_runtime::enrich::snapshot::load_fan_profiles(&config, &mut dims).await;
    let (feed, dims) = {
        let (config, registry, metrics) = (config.clone(), registry.clone(), metrics.clone());
        tokio::task::spawn_blocking(move || {
            follow::load_and_follow(
                &config, SERVICE, &wanted, starts, registry, metrics, &mut dims,
            )
            .map(|feed| (feed, dims))
        })
        .await
        .context("dimension loader panicked")??
    };
    let lookback_ms = i64::try_from(config.notifier.lookback.as_millis())?;
    let sent = Arc::new(Mutex::new(limits::Sent::new(lookback_ms, 2_000_000)));
    let (ledger, consumer) = {
        let (config, registry, sent) = (config.clone(), registry.clone(), sent.clone());
        let group = group.clone();
        tokio::task::spawn_blocking(move || -> anyhow::Result<_> {
            let ledger = ledger::Ledger::start(&config, registry, sent)?;
            let catchup = ledger.catchup();
            let wait = config.kafka.drain_timeout;
            catchup.wait(wait.max(std::time::Duration::from_secs(30)))?;
            let consumer = wxpulse_runtime::source::client_config(&config.kafka, &group)
                .remove("statistics.interval.ms")
                .create_with_context(run::Rebalances::new(catchup, wait))
                .context("cannot create the notifier's consumer")?;
            Ok((ledger, consumer))
        })
        .await
        .context("ledger start panicked")??
    };
    let producer = kafka::create(
        kafka::client_config(&config.kafka)
            .set("compression.type", "lz4")
            .set("linger.ms", "5")
            .set("enable.idempotence", "true"),
        "notification producer",
    )?;
    metrics.set_ready(true);
    let engine = run::Engine {
        config,
        producer,
        client,
        registry,
        dims,
        feed,
        pii,
        sent,
        _ledger: ledger,
        schema,
        metrics: own,
        shutdown,
        handle: tokio::runtime::Handle::current(),
    };
    let notifier = run::Notifier { consumer, engine };
    tokio::task::spawn_blocking(move || notifier.run())
        .await
        .context("notifier loop panicked")?
}
