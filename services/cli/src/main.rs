//! `wxpulse`: operate a wxpulse deployment — migrate ClickHouse, create topics, load
//! dimensions and event files, inspect and replay dead letters. (Demo telemetry comes from
//! `wxpulse-generate`, which the production image does not carry.)

mod cmd;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use wxpulse_runtime::config::{ClickHouseConfig, Config, KafkaConfig};

#[derive(Parser)]
#[command(
    version,
    about = "Operate wxpulse: migrate, topics, dimensions, event files, dead letters"
)]
struct Cli {
    /// Service config file (TOML) to take Kafka and ClickHouse settings from; layered over
    /// the defaults and under WXPULSE__* env vars, exactly as the services do.
    #[arg(long, global = true, env = "WXPULSE_CONFIG")]
    config: Option<PathBuf>,
    /// Kafka bootstrap servers (default: from config).
    #[arg(long, global = true)]
    brokers: Option<String>,
    /// ClickHouse HTTP URL (default: from config).
    #[arg(long, global = true)]
    clickhouse: Option<String>,
    /// ClickHouse database (default: from config).
    #[arg(long, global = true)]
    database: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Apply pending ClickHouse migrations (idempotent).
    Migrate(cmd::migrate::Migrate),
    /// Manage topics.
    #[command(subcommand)]
    Topics(cmd::topics::Action),
    /// Dimension records (compacted topics the services enrich events from).
    #[command(subcommand)]
    Dims(cmd::dims::Action),
    /// Dead letters.
    #[command(subcommand)]
    Dlq(cmd::dlq::Action),
    /// Event files: historical exports, test data.
    #[command(subcommand)]
    Events(cmd::events::Action),
    /// Ingest state kept in ClickHouse (offset watermarks, batch intents).
    #[command(subcommand)]
    Ingest(cmd::ingest::Action),
    /// Events of unknown accounts held back (validation.unknown_account = "quarantine").
    #[command(subcommand)]
    Quarantine(cmd::quarantine::Action),
    /// Attributed orders: settle the credits that can no longer change (the views then
    /// join only the open days).
    #[command(subcommand)]
    Conversions(cmd::conversions::Action),
}

fn main() -> ExitCode {
    wxpulse_cli::command_main("wxpulse", run(Cli::parse()))
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let config = Config::load(cli.config.as_deref(), std::env::vars())?;
    // Every Kafka client of every command: the services' settings, brokers overridable.
    let kafka = KafkaConfig {
        brokers: cli.brokers.unwrap_or(config.kafka.brokers.clone()),
        ..config.kafka.clone()
    };
    let clickhouse = ClickHouseConfig {
        url: cli.clickhouse.unwrap_or(config.clickhouse.url.clone()),
        database: cli.database.unwrap_or(config.clickhouse.database.clone()),
        ..config.clickhouse.clone()
    };
    let cx = cmd::Ctx {
        config,
        kafka,
        clickhouse,
    };
    match cli.command {
        Command::Migrate(m) => m.run(&cx).await,
        Command::Topics(a) => cmd::topics::run(a, &cx).await,
        Command::Dims(a) => cmd::dims::run(a, &cx).await,
        Command::Dlq(a) => cmd::dlq::run(a, &cx).await,
        Command::Events(a) => cmd::events::run(a, &cx).await,
        Command::Ingest(a) => cmd::ingest::run(a, &cx).await,
        Command::Quarantine(a) => cmd::quarantine::run(a, &cx).await,
        Command::Conversions(a) => cmd::conversions::run(a, &cx).await,
    }
}
