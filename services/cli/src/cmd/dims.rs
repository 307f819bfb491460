//! `wxpulse dims`: load, delete and mirror dimension records.

use super::prelude::*;

/// The subcommands.
#[derive(Subcommand)]
pub enum Action {
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

/// Runs one subcommand.
pub async fn run(action: Action, cx: &Ctx) -> anyhow::Result<()> {
    let Ctx {
        config,
        kafka,
        clickhouse,
    } = cx;
    match action {
        Action::Load {
            dimension,
            file,
            dry_run,
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
            let producer = produce::producer(kafka)?;
            let n = produce::send_all(&producer, outgoing, |_| {}).await?;
            println!(
                "published {n} {} records to {}",
                dimension.as_str(),
                dimension.topic()
            );
        }
        Action::Mirror { once } => {
            let n =
                wxpulse_cli::mirror::run(config, kafka, clickhouse, once, Duration::from_secs(60))
                    .await?;
            println!("{n} fan-profile records mirrored into fan_profiles");
        }
        Action::Delete { dimension, key } => {
            let tombstone = dims::tombstone(dimension, &key)?;
            let producer = produce::producer(kafka)?;
            produce::send_all(&producer, [tombstone], |_| {}).await?;
            println!("deleted {key} from {}", dimension.topic());
        }
    }
    Ok(())
}
