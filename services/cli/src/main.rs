//! `wxpulse`: operate a wxpulse deployment — migrate ClickHouse, create topics, load
//! dimensions, generate demo telemetry, inspect and replay dead letters.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};
use wxpulse_cli::world::World;
use wxpulse_cli::{dims, dlq, generate, ingest, migrate, produce, topics};
use wxpulse_runtime::config::{ClickHouseConfig, Config, KafkaConfig};
use wxpulse_runtime::dlq::DeadLetterReason;
use wxpulse_runtime::enrich::Dimension;

#[derive(Parser)]
#[command(
    version,
    about = "Operate wxpulse: migrate, topics, dimensions, generate, dead letters"
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
    Migrate {
        /// Render for a cluster: ON CLUSTER, Replicated engines, Distributed tables.
        #[arg(long)]
        cluster: Option<String>,
        /// Print the rendered SQL instead of applying it.
        #[arg(long)]
        print: bool,
        /// Then apply schemas/clickhouse/grants/bi_readonly.sql: the read-only BI role and
        /// user `wxpulse_bi` (password from WXPULSE_BI_PASSWORD). Needs users and grants: a
        /// real ClickHouse, not the local chdb adapter.
        #[arg(long)]
        grants: bool,
        /// With --grants, per brand: a role, a login `wxpulse_bi_<id>` (password from
        /// WXPULSE_BI_PASSWORD_<ID>), a settings profile, a quota and row policies, so that
        /// its users see only the brand's rows in every v_* view (grants/bi_brand.sql).
        /// `<id>=<brand as on the rows>`, e.g. `aur=Maison Aurel`; repeat it, or give a
        /// comma-separated list.
        #[arg(
            long = "brand",
            env = "WXPULSE_BI_BRANDS",
            value_delimiter = ',',
            value_parser = brand
        )]
        brands: Vec<migrate::Brand>,
    },
    /// Manage topics.
    Topics {
        #[command(subcommand)]
        action: TopicsAction,
    },
    /// Generate a synthetic world and its telemetry: publish the world's dimension records,
    /// then produce the events.
    Generate {
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
    },
    /// Dimension records (compacted topics the services enrich events from).
    Dims {
        #[command(subcommand)]
        action: DimsAction,
    },
    /// Dead letters.
    Dlq {
        #[command(subcommand)]
        action: DlqAction,
    },
    /// Ingest state kept in ClickHouse (offset watermarks, batch intents).
    Ingest {
        #[command(subcommand)]
        action: IngestAction,
    },
}

#[derive(Subcommand)]
enum IngestAction {
    /// Forget a table's watermarks for a topic whose Kafka log restarted below them (topic
    /// re-created, new cluster); the services hold such partitions until this runs. Stop
    /// the table's service first, start it after. Rows already written stay.
    Reset {
        /// Raw table (menu_clicks, qr_scans, chat_messages, article_reads, orders).
        #[arg(long)]
        table: String,
        /// Topic (default: wxpulse.<table>).
        #[arg(long)]
        topic: Option<String>,
        /// Only this partition (default: every partition with a watermark).
        #[arg(long)]
        partition: Option<i32>,
        /// Consumer group to rewind (default: wxpulse-<service>, e.g. wxpulse-menu-clicks).
        #[arg(long)]
        group: Option<String>,
    },
}

#[derive(Subcommand)]
enum TopicsAction {
    /// Create every wxpulse topic that does not exist.
    Create {
        /// Partitions of event topics.
        #[arg(long, default_value_t = 4)]
        partitions: i32,
        /// Replication factor.
        #[arg(long, default_value_t = 1)]
        replication: i32,
    },
}

#[derive(Subcommand)]
enum DimsAction {
    /// Publish every record of a CSV, JSON (array) or JSON Lines file, keyed, to the
    /// dimension's topic; a file with any bad record publishes nothing.
    Load {
        /// account, store, associate, qr_scene, article, menu_button or fan_profile.
        #[arg(long, value_parser = dimension)]
        dimension: Dimension,
        /// .csv (header row of field names), .json or .jsonl.
        #[arg(long)]
        file: PathBuf,
        /// Check the file and print what would be published, without producing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Copy the fan-profile topic into ClickHouse's `fan_profiles` (follows, unfollows and
    /// the follower base of the BI views). A service: serves /metrics, /healthz and /readyz
    /// on metrics.listen, batches as [batch] says, and on SIGINT/SIGTERM writes the batch in
    /// flight, then exits.
    Mirror {
        /// Catch up to the end the topic has now, then exit (demos, tests, cron).
        #[arg(long)]
        once: bool,
    },
    /// Delete a key: produce a tombstone, which compaction and the services honour.
    Delete {
        /// account, store, associate, qr_scene, article, menu_button or fan_profile.
        #[arg(long, value_parser = dimension)]
        dimension: Dimension,
        /// The record's key (`app_id|event_key` for menu_button, `app_id|openid` for
        /// fan_profile, `app_id|scene` for an account's qr_scene, `scene` for one of every
        /// account).
        #[arg(long)]
        key: String,
    },
}

/// Live mode: time to generate the events before the first one is due, ms.
const LIVE_LEAD_MS: i64 = 2_000;

fn share(value: &str) -> Result<f64, String> {
    match value.parse::<f64>() {
        Ok(v) if (0.0..=1.0).contains(&v) => Ok(v),
        _ => Err("a share between 0 and 1".to_string()),
    }
}

fn brand(spec: &str) -> Result<migrate::Brand, String> {
    migrate::Brand::parse(spec).map_err(|e| e.to_string())
}

fn dimension(name: &str) -> Result<Dimension, String> {
    Dimension::parse(name).ok_or_else(|| {
        let names: Vec<&str> = Dimension::ALL.iter().map(|d| d.as_str()).collect();
        format!("one of {}", names.join(", "))
    })
}

#[derive(Subcommand)]
enum DlqAction {
    /// Count dead letters by service and reason; --show N prints the first N.
    List {
        /// Dead-letter topic.
        #[arg(long, default_value = topics::DEAD_LETTER_TOPIC)]
        topic: String,
        /// Print this many letters.
        #[arg(long, default_value_t = 0)]
        show: usize,
    },
    /// Re-produce dead letters to their source topics (after a fix).
    Replay {
        /// Dead-letter topic.
        #[arg(long, default_value = topics::DEAD_LETTER_TOPIC)]
        topic: String,
        /// Only this reason (undecodable, unknown_schema, missing_field, ...).
        #[arg(long)]
        reason: Option<String>,
        /// Only letters rejected at or after this unix time (ms).
        #[arg(long)]
        since_ms: Option<i64>,
        /// Also send letters an earlier replay already sent (they are recorded in
        /// ClickHouse's dlq_replays; without this a replay never sends a record twice).
        #[arg(long)]
        force: bool,
    },
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter("warn")
        .init();
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("wxpulse: {e:#}");
            ExitCode::FAILURE
        }
    }
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
    match cli.command {
        Command::Migrate {
            cluster,
            print,
            grants,
            brands,
        } => {
            let cluster = cluster.as_deref();
            migrate::check_names(&clickhouse.database, cluster)?;
            // Not a clap `requires`: WXPULSE_BI_BRANDS set where plain migrations run (the
            // Kubernetes Job) must not fail them.
            let brands = if grants {
                brands
            } else {
                if !brands.is_empty() {
                    eprintln!("wxpulse: --brand / WXPULSE_BI_BRANDS ignored: brands are created with --grants");
                }
                Vec::new()
            };
            let bi_password = std::env::var("WXPULSE_BI_PASSWORD").unwrap_or_default();
            if print {
                for m in migrate::MIGRATIONS {
                    println!("-- {}", m.name);
                    for s in migrate::rendered(m, &clickhouse.database, cluster) {
                        println!("{s};\n");
                    }
                }
                if grants {
                    println!("-- grants/bi_readonly.sql");
                    let hash = match bi_password.as_str() {
                        "" => "<sha256 of WXPULSE_BI_PASSWORD>".to_string(),
                        password => migrate::password_sha256(password),
                    };
                    for s in migrate::grants(&clickhouse.database, cluster, &hash) {
                        println!("{s};\n");
                    }
                }
                for b in &brands {
                    println!("-- grants/bi_brand.sql: {} ({})", b.id, b.name);
                    let hash = match std::env::var(b.password_env()) {
                        Ok(password) if !password.is_empty() => migrate::password_sha256(&password),
                        _ => format!("<sha256 of {}>", b.password_env()),
                    };
                    for s in migrate::brand_grants(&clickhouse.database, cluster, b, &hash) {
                        println!("{s};\n");
                    }
                }
                return Ok(());
            }
            let applied = migrate::migrate(&clickhouse, cluster).await?;
            println!(
                "migrations applied: {applied:?} (database {})",
                clickhouse.database
            );
            if grants {
                let n = migrate::apply_grants(&clickhouse, cluster, &bi_password).await?;
                println!(
                    "grants applied: {n} statements (role wxpulse_bi_readonly, user wxpulse_bi)"
                );
                let n = migrate::apply_brand_grants(&clickhouse, cluster, &brands, |var| {
                    std::env::var(var).ok()
                })
                .await?;
                if !brands.is_empty() {
                    println!("brand grants applied: {n} statements");
                }
                for b in &brands {
                    println!("brand {:?}: role {}, user {}", b.name, b.role(), b.user());
                }
            }
        }
        Command::Topics {
            action:
                TopicsAction::Create {
                    partitions,
                    replication,
                },
        } => {
            let created = topics::create(&kafka, &topics::all(partitions), replication).await?;
            println!("topics created: {created:?}");
        }
        Command::Generate {
            seed,
            events,
            brands,
            accounts_per_brand,
            fans_per_account,
            days,
            duplicate_share,
            late_share,
            malformed_share,
            unknown_dimension_share,
            unknown_account_share,
            no_dimensions,
            dimensions_only,
            truth,
            live,
            rate,
        } => {
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
                Some(path) => {
                    std::fs::write(&path, json).with_context(|| format!("{}", path.display()))?
                }
                None => println!("{json}"),
            }
        }
        Command::Dims {
            action:
                DimsAction::Load {
                    dimension,
                    file,
                    dry_run,
                },
        } => {
            let mut records = dims::read_file(dimension, &file)?;
            dims::stamp(&mut records, now_ms()?);
            let outgoing = dims::outgoing(&records)?;
            if dry_run {
                println!(
                    "{}: {} valid {} records (dry run, nothing published)",
                    file.display(),
                    outgoing.len(),
                    dimension.as_str()
                );
                return Ok(());
            }
            let producer = produce::producer(&kafka)?;
            let n = produce::send_all(&producer, outgoing, |_| {}).await?;
            println!(
                "published {n} {} records to {}",
                dimension.as_str(),
                dimension.topic()
            );
        }
        Command::Dims {
            action: DimsAction::Mirror { once },
        } => {
            let n = wxpulse_cli::mirror::run(
                &config,
                &kafka,
                &clickhouse,
                once,
                Duration::from_secs(60),
            )
            .await?;
            println!("{n} fan-profile records mirrored into fan_profiles");
        }
        Command::Dims {
            action: DimsAction::Delete { dimension, key },
        } => {
            let tombstone = dims::tombstone(dimension, &key)?;
            let producer = produce::producer(&kafka)?;
            produce::send_all(&producer, [tombstone], |_| {}).await?;
            println!("deleted {key} from {}", dimension.topic());
        }
        Command::Ingest {
            action:
                IngestAction::Reset {
                    table,
                    topic,
                    partition,
                    group,
                },
        } => {
            let topic = topic.unwrap_or_else(|| format!("wxpulse.{table}"));
            let group = group.unwrap_or_else(|| format!("wxpulse-{}", table.replace('_', "-")));
            let reset =
                ingest::reset(&clickhouse, &kafka, &group, &table, &topic, partition).await?;
            if reset.is_empty() {
                println!("{table} has no ingest state for {topic}: nothing to reset");
            }
            for p in reset {
                println!(
                    "{table} {topic} partition {}: watermark {} forgotten, group {group} rewound to the log start",
                    p.kafka_partition, p.watermark
                );
            }
        }
        Command::Dlq {
            action: DlqAction::List { topic, show },
        } => {
            let letters = dlq::read_all(&kafka, &topic, Duration::from_secs(3))?;
            // Listing needs no key: without the services' one, sealed letters stay sealed.
            let letters = dlq::open(letters.clone(), &sealer(&config)).unwrap_or(letters);
            println!("{:<16} {:<18} {:>8}", "service", "reason", "records");
            for ((service, reason), n) in dlq::summarize(&letters) {
                println!("{service:<16} {reason:<18} {n:>8}");
            }
            for l in letters.iter().take(show) {
                let truncated = if l.payload_truncated {
                    format!(
                        " [payload truncated: {} of {} bytes kept, sha256 {}; not replayable]",
                        l.payload.len(),
                        l.payload_length,
                        l.payload_sha256
                    )
                } else if l.sealed {
                    " [sealed: run with the services' pii.key to open it]".to_string()
                } else {
                    String::new()
                };
                println!(
                    "{} {}:{}@{} {}: {}{truncated}",
                    l.service,
                    l.source_topic,
                    l.source_partition,
                    l.source_offset,
                    l.reason.as_str(),
                    l.detail
                );
            }
        }
        Command::Dlq {
            action:
                DlqAction::Replay {
                    topic,
                    reason,
                    since_ms,
                    force,
                },
        } => {
            let reason = match reason {
                Some(r) => Some(
                    DeadLetterReason::parse(&r).with_context(|| format!("unknown reason {r}"))?,
                ),
                None => None,
            };
            let letters = dlq::read_all(&kafka, &topic, Duration::from_secs(3))?;
            let letters = dlq::open(letters, &sealer(&config))?;
            let replayed =
                dlq::replay(&kafka, &clickhouse, &letters, reason, since_ms, force).await?;
            println!(
                "replayed {} dead letters to their source topics; {} skipped, already replayed (--force sends them again)",
                replayed.sent, replayed.already
            );
            for why in &replayed.refused {
                eprintln!("{why}");
            }
            anyhow::ensure!(
                replayed.refused.is_empty(),
                "{} dead letters were not replayed: their payload is truncated (above)",
                replayed.refused.len()
            );
        }
    }
    Ok(())
}

fn now_ms() -> anyhow::Result<i64> {
    Ok(std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .context("clock before 1970")?
        .as_millis() as i64)
}

/// Opens sealed dead letters: the services' `pii.key` (shared configuration) derives the key.
fn sealer(config: &Config) -> wxpulse_runtime::pii::Sealer {
    wxpulse_runtime::pii::Sealer::new(config.pii.key.expose().as_bytes())
}
