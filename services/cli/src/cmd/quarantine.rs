//! `wxpulse quarantine`: events held back under `validation.unknown_account = "quarantine"`.

use std::collections::BTreeMap;
use std::sync::Arc;

use wxpulse_cli::quarantine;
use wxpulse_runtime::enrich::Dimensions;

use super::prelude::*;

/// The subcommands.
#[derive(Subcommand)]
pub enum Action {
    /// Count held events by stream table and account.
    List,
    /// Copy the held events of every account the account dimension now holds into their
    /// stream tables (each once; a rerun copies nothing again) and delete them from the
    /// quarantine. Publish the account first (`wxpulse dims load --dimension account`).
    Release {
        /// Only these accounts (repeatable; default: every held account now published).
        #[arg(long = "app-id")]
        app_ids: Vec<String>,
        /// Count what would be released; change nothing.
        #[arg(long)]
        dry_run: bool,
    },
}

/// Runs one subcommand.
pub async fn run(action: Action, cx: &Ctx) -> anyhow::Result<()> {
    match action {
        Action::List => {
            let held = quarantine::held(&cx.clickhouse).await?;
            println!("{:<16} {:<24} {:>10}", "stream_table", "app_id", "events");
            for h in &held {
                println!("{:<16} {:<24} {:>10}", h.stream_table, h.app_id, h.events);
            }
        }
        Action::Release { app_ids, dry_run } => {
            let held = quarantine::held(&cx.clickhouse).await?;
            let accounts = published_brands(cx).await?;
            let mut brands = BTreeMap::new();
            for h in &held {
                if !app_ids.is_empty() && !app_ids.contains(&h.app_id) {
                    continue;
                }
                match accounts.get(&h.app_id) {
                    Some(brand) => {
                        brands.insert(h.app_id.clone(), brand.clone());
                    }
                    None => eprintln!(
                        "{} ({} events in {}): not in the account dimension yet; stays held",
                        h.app_id, h.events, h.stream_table
                    ),
                }
            }
            let released = quarantine::release(&cx.clickhouse, &brands, dry_run).await?;
            let verb = if dry_run { "would copy" } else { "copied" };
            for r in &released {
                println!(
                    "{} {}: {verb} {} events ({} already in the table)",
                    r.stream_table, r.app_id, r.copied, r.already
                );
            }
            let total: u64 = released.iter().map(|r| r.copied).sum();
            println!(
                "released {total} events{}",
                if dry_run { " (dry run)" } else { "" }
            );
        }
    }
    Ok(())
}

/// app_id → brand of every account in the account dimension, read to its end as a service
/// reads it at start-up.
async fn published_brands(cx: &Ctx) -> anyhow::Result<BTreeMap<String, String>> {
    let mut config = cx.config.clone();
    config.kafka = cx.kafka.clone();
    tokio::task::spawn_blocking(move || -> anyhow::Result<BTreeMap<String, String>> {
        let registry = Arc::new(wxpulse_runtime::codec::Registry::from_config(
            &config.schema_registry,
        )?);
        let metrics = wxpulse_runtime::metrics::Metrics::new("cli");
        let pii = wxpulse_runtime::pii::Pseudonymizer::new(config.pii.key.expose().as_bytes());
        let mut dims = Dimensions::detached(pii);
        let _feed = wxpulse_runtime::enrich::follow::load_and_follow(
            &config,
            "cli-quarantine",
            &[Dimension::Account],
            Default::default(),
            registry,
            metrics,
            &mut dims,
        )?;
        Ok(dims
            .accounts()
            .map(|(app_id, account)| (app_id.to_string(), account.brand.to_string()))
            .collect())
    })
    .await
    .context("account loader panicked")?
}
