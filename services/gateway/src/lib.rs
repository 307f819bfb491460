//! `wxpulse-gateway`: receives an Official Account's WeChat callbacks (server verification
//! and message push, in plaintext, compatible and safe mode) and produces the pipeline's
//! events from them — menu clicks, QR scans, fan messages — keyed `app_id|openid` like the
//! rest, with an event id derived from the callback so WeChat's retries are dropped.

pub mod accounts;
pub mod beacon;
pub mod callback;
pub mod crypto;
pub mod limits;
pub mod metrics;
pub mod server;
pub mod state;

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use wxpulse_runtime::codec::Registry;
use wxpulse_runtime::config::Config;
use wxpulse_runtime::enrich::Dimension;
use wxpulse_runtime::streams::EventStream;

/// The streams a callback (or an article-read beacon) can become.
pub const STREAMS: [EventStream; 4] = [
    EventStream::MenuClicks,
    EventStream::QrScans,
    EventStream::ChatMessages,
    EventStream::ArticleReads,
];

/// Starts the gateway and its metrics endpoint; runs until SIGTERM/SIGINT.
pub async fn run(config: Config) -> anyhow::Result<()> {
    let shutdown = wxpulse_runtime::shutdown::on_signals();
    let metrics = Arc::new(metrics::GatewayMetrics::new());
    let listen = config.metrics.listen.parse().context("metrics.listen")?;
    let metrics_addr =
        wxpulse_runtime::metrics::serve(metrics.clone(), listen, shutdown.clone()).await?;
    anyhow::ensure!(
        !config.gateway.accounts_file.is_empty(),
        "gateway.accounts_file is empty: the gateway answers only for the accounts it lists"
    );
    let accounts = Arc::new(accounts::Accounts::load(Path::new(
        &config.gateway.accounts_file,
    ))?);
    metrics.accounts.set(accounts.len() as i64);
    {
        let (accounts, metrics) = (accounts.clone(), metrics.clone());
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_secs(5)).await;
                if accounts.reload_if_changed() {
                    metrics.accounts.set(accounts.len() as i64);
                }
            }
        });
    }
    let schemas = {
        let registry = Registry::from_config(&config.schema_registry)?;
        tokio::task::spawn_blocking(move || -> anyhow::Result<state::Schemas> {
            let writer = |schema: &wxpulse_runtime::codec::EmbeddedSchema| {
                let id = registry
                    .id_of(schema.subject, schema.json)?
                    .with_context(|| {
                        format!(
                            "the schema registry does not hold version {} of {}; register it first",
                            schema.version, schema.subject
                        )
                    })?;
                anyhow::Ok((id, wxpulse_runtime::codec::parse(schema.json)?))
            };
            let mut events = HashMap::new();
            for s in STREAMS {
                events.insert(s, writer(s.schema())?);
            }
            let mut dimensions = HashMap::new();
            for d in [Dimension::FanFollow, Dimension::AssociateContact] {
                let subject = format!("{}-value", d.topic());
                let schema = wxpulse_runtime::codec::latest(&subject)
                    .with_context(|| format!("the {} schema is embedded", d.as_str()))?;
                dimensions.insert(d, writer(schema)?);
            }
            Ok(state::Schemas { events, dimensions })
        })
        .await
        .context("registry lookup")??
    };
    wxpulse_runtime::kafka::preflight(&config.kafka)?;
    let mut producer = wxpulse_runtime::kafka::client_config(&config.kafka);
    producer
        .set("acks", "all")
        .set("enable.idempotence", "true")
        .set("compression.type", "lz4")
        .set("linger.ms", "2")
        .set(
            "message.timeout.ms",
            config.gateway.answer_timeout.as_millis().to_string(),
        );
    let producer = wxpulse_runtime::kafka::create(&producer, "producer")?;
    let dead_letters = wxpulse_runtime::dlq::DeadLetterSink::create(
        wxpulse_runtime::kafka::client_config(&config.kafka)
            .set("compression.type", "lz4")
            .set("enable.idempotence", "true"),
        &config,
        &metrics.dead_letters_undeliverable,
    )?;
    let gateway = Arc::new(state::Gateway {
        accounts,
        producer,
        schemas,
        metrics,
        max_body_bytes: config.gateway.max_body_bytes,
        answer_timeout: config.gateway.answer_timeout,
        validation: config.validation.clone(),
        dead_letters,
        clickhouse: Some(wxpulse_runtime::sink::client(&config.clickhouse)?),
        limits: limits::Limits::new(&config.gateway),
        shutdown: shutdown.clone(),
    });
    let listen = config.gateway.listen.parse().context("gateway.listen")?;
    let addr = server::serve(gateway, listen, shutdown.clone()).await?;
    tracing::info!(callbacks = %addr, metrics = %metrics_addr, "gateway listening");
    shutdown.cancelled().await;
    tracing::info!("gateway stopped");
    Ok(())
}
