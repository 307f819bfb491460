//! `wxpulse dlq`: count, show and replay dead letters.

use super::prelude::*;

/// The subcommands.
#[derive(Subcommand)]
pub enum Action {
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

/// How long the broker may send nothing while the dead-letter topic is not yet read to
/// its end (a secured, loaded broker took more than 3 s for the first fetch).
const READ_PATIENCE: Duration = Duration::from_secs(30);

/// Runs one subcommand.
pub async fn run(action: Action, cx: &Ctx) -> anyhow::Result<()> {
    let Ctx {
        config,
        kafka,
        clickhouse,
    } = cx;
    match action {
        Action::List { topic, show } => {
            let letters = dlq::read_all(kafka, &topic, READ_PATIENCE)?;
            // Listing needs no key: without the services' one, sealed letters stay sealed.
            let letters = dlq::open(letters.clone(), &sealer(config)).unwrap_or(letters);
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
        Action::Replay {
            topic,
            reason,
            since_ms,
            force,
        } => {
            let reason = match reason {
                Some(r) => Some(
                    DeadLetterReason::parse(&r).with_context(|| format!("unknown reason {r}"))?,
                ),
                None => None,
            };
            let letters = dlq::read_all(kafka, &topic, READ_PATIENCE)?;
            let letters = dlq::open(letters, &sealer(config))?;
            let replayed =
                dlq::replay(kafka, clickhouse, &letters, reason, since_ms, force).await?;
            println!(
            "replayed {} dead letters to their source topics; {} skipped, already replayed (--force sends them again)",
            replayed.sent, replayed.already
        );
            if replayed.callbacks > 0 {
                println!(
                    "{} dead letters are callbacks the gateway refused (source gateway:<path>): \
                     not events, never replayed; read them with `dlq list --show` and fix the \
                     sender or the account's key",
                    replayed.callbacks
                );
            }
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
