//! One module per command: its arguments and what it does. `main.rs` only parses and
//! dispatches.

pub mod conversions;
pub mod dims;
pub mod dlq;
pub mod events;
pub mod ingest;
pub mod migrate;
pub mod quarantine;
pub mod topics;

use wxpulse_runtime::config::{ClickHouseConfig, Config, KafkaConfig};

/// What every command runs with: the services' configuration, with the global flags'
/// overrides applied to Kafka and ClickHouse.
pub struct Ctx {
    /// The whole configuration (PII key, validation, registry, ...).
    pub config: Config,
    /// Kafka settings, brokers from `--brokers` if given.
    pub kafka: KafkaConfig,
    /// ClickHouse settings, URL and database from `--clickhouse`/`--database` if given.
    pub clickhouse: ClickHouseConfig,
}

/// What the command modules use.
mod prelude {
    pub use std::path::PathBuf;
    pub use std::time::Duration;

    pub use anyhow::Context;
    pub use clap::{Args, Subcommand};
    pub use wxpulse_cli::{dims, dlq, events, ingest, migrate, produce, topics};
    pub use wxpulse_runtime::dlq::DeadLetterReason;
    pub use wxpulse_runtime::enrich::Dimension;

    pub use super::{brand, dimension, event_stream, now_ms, sealer, Ctx};
}

use anyhow::Context;
use wxpulse_runtime::enrich::Dimension;

/// `--brand` values.
pub fn brand(spec: &str) -> Result<wxpulse_cli::migrate::Brand, String> {
    wxpulse_cli::migrate::Brand::parse(spec).map_err(|e| e.to_string())
}

pub fn event_stream(name: &str) -> Result<wxpulse_runtime::streams::EventStream, String> {
    wxpulse_runtime::streams::EventStream::parse(name).ok_or_else(|| {
        let names: Vec<&str> = wxpulse_runtime::streams::EventStream::ALL
            .iter()
            .map(|s| s.as_str())
            .collect();
        format!("one of {}", names.join(", "))
    })
}

pub fn dimension(name: &str) -> Result<Dimension, String> {
    Dimension::parse(name).ok_or_else(|| {
        let names: Vec<&str> = Dimension::ALL.iter().map(|d| d.as_str()).collect();
        format!("one of {}", names.join(", "))
    })
}

/// Now, ms since the epoch.
pub fn now_ms() -> anyhow::Result<i64> {
    Ok(std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .context("clock before 1970")?
        .as_millis() as i64)
}

/// Opens sealed dead letters: the services' `pii.key` (shared configuration) derives the key.
pub fn sealer(config: &Config) -> wxpulse_runtime::pii::Sealer {
    wxpulse_runtime::pii::Sealer::new(config.pii.key.expose().as_bytes())
}
