//! `wxpulse events`: load event files.

use super::prelude::*;

/// The subcommands.
#[derive(Subcommand)]
pub enum Action {
    /// Produce a file of events to a stream's topic as live events arrive (framed with the
    /// registry's id of the newest schema, keyed app_id|openid). The whole file is checked
    /// first against the schema and as the services validate; every bad line is reported
    /// with its number and reason, and a file with one is not produced (see --skip-bad).
    Load {
        /// menu_clicks, qr_scans, chat_messages, article_reads or orders.
        #[arg(long, value_parser = event_stream)]
        stream: wxpulse_runtime::streams::EventStream,
        /// .jsonl/.ndjson (one JSON object per line), .csv (header row of the schema's
        /// field names) or .avro (object container file); timestamps in ms since the epoch.
        #[arg(long)]
        file: PathBuf,
        /// Check the file and report, without producing.
        #[arg(long)]
        dry_run: bool,
        /// Produce the valid lines even if some are bad (each bad one is still reported).
        #[arg(long)]
        skip_bad: bool,
    },
}

/// Runs one subcommand.
pub async fn run(action: Action, cx: &Ctx) -> anyhow::Result<()> {
    let Ctx { config, kafka, .. } = cx;
    match action {
        Action::Load {
            stream,
            file,
            dry_run,
            skip_bad,
        } => {
            let schema = stream.schema();
            let registry = wxpulse_runtime::codec::Registry::from_config(&config.schema_registry)?;
            let schema_id =
                tokio::task::spawn_blocking(move || registry.id_of(schema.subject, schema.json))
                    .await
                    .context("registry lookup")??
                    .with_context(|| {
                        format!(
                            "the schema registry does not hold version {} of {} (schemas/avro/); \
                 register it first (schemas/README.md)",
                            schema.version, schema.subject
                        )
                    })?;
            let encoder =
                events::Encoder::new(stream, schema_id, config.validation.clone(), now_ms()?)?;
            let load = events::Load {
                stream,
                file: &file,
                dry_run,
                skip_bad,
            };
            let summary = events::load(&load, encoder, kafka).await?;
            if dry_run {
                println!(
                    "{}: {} valid {} events, {} bad (dry run, nothing produced)",
                    file.display(),
                    summary.valid,
                    stream.as_str(),
                    summary.bad
                );
                if summary.bad > 0 {
                    anyhow::bail!("{} bad line(s)", summary.bad);
                }
            } else {
                println!(
                    "produced {} {} events to {} (schema id {schema_id}); {} bad line(s) skipped",
                    summary.produced,
                    stream.as_str(),
                    stream.topic(),
                    summary.bad
                );
            }
        }
    }
    Ok(())
}
