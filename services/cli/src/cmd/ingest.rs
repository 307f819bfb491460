//! `wxpulse ingest`: the ingest state kept in ClickHouse.

use super::prelude::*;

/// The subcommands.
#[derive(Subcommand)]
pub enum Action {
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

/// Runs one subcommand.
pub async fn run(action: Action, cx: &Ctx) -> anyhow::Result<()> {
    let Ctx {
        kafka, clickhouse, ..
    } = cx;
    match action {
        Action::Reset {
            table,
            topic,
            partition,
            group,
        } => {
            let topic = topic.unwrap_or_else(|| format!("wxpulse.{table}"));
            let group = group.unwrap_or_else(|| format!("wxpulse-{}", table.replace('_', "-")));
            let reset = ingest::reset(clickhouse, kafka, &group, &table, &topic, partition).await?;
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
    }
    Ok(())
}
