//! `wxpulse topics`: the topics wxpulse reads and writes.

use super::prelude::*;

/// The subcommands.
#[derive(Subcommand)]
pub enum Action {
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

/// Runs one subcommand.
pub async fn run(action: Action, cx: &Ctx) -> anyhow::Result<()> {
    let Ctx { kafka, .. } = cx;
    match action {
        Action::Create {
            partitions,
            replication,
        } => {
            let created = topics::create(kafka, &topics::all(partitions), replication).await?;
            println!("topics created: {created:?}");
        }
    }
    Ok(())
}
