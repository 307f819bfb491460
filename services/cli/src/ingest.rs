//! `wxpulse ingest reset`: forget a partition's ingest state (watermark, last intent) in
//! ClickHouse after its Kafka log restarted below it — the topic was deleted and
//! re-created, or the pipeline now reads another cluster. The services hold such a
//! partition (nothing skipped, nothing written, `wxpulse_source_offset_reset_partitions`)
//! until this is run; the rows already written stay. The consumer group's committed
//! offsets are rewound to the new log's start too: they belong to the old log. See
//! docs/runbook.md.

use std::time::Duration;

use anyhow::Context;
use clickhouse::Row;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::{Offset, TopicPartitionList};
use serde::{Deserialize, Serialize};
use wxpulse_runtime::config::{ClickHouseConfig, KafkaConfig};
use wxpulse_runtime::{sink, source};

/// One partition's state before the reset.
#[derive(Debug, Clone, Row, Deserialize)]
pub struct PartitionWatermark {
    /// Partition.
    pub kafka_partition: i32,
    /// Highest offset written.
    pub watermark: i64,
}

#[derive(Row, Serialize)]
struct ResetRow<'a> {
    table_name: &'a str,
    kafka_topic: &'a str,
    kafka_partition: i32,
    previous_watermark: i64,
}

/// Resets `table`'s ingest state for `topic` (one partition, or every partition that has
/// one) and rewinds consumer `group` on them to the log start; returns what was reset.
/// Run it with the table's service stopped (Kafka refuses commits to an active group).
pub async fn reset(
    ch: &ClickHouseConfig,
    kafka: &KafkaConfig,
    group: &str,
    table: &str,
    topic: &str,
    partition: Option<i32>,
) -> anyhow::Result<Vec<PartitionWatermark>> {
    let client = sink::client(ch)?;
    let which = partition.map_or(String::new(), |_| " AND kafka_partition = ?".to_string());
    let mut query = client
        .query(&format!(
            "SELECT kafka_partition, max(max_offset) AS watermark FROM ingest_watermarks \
             WHERE table_name = ? AND kafka_topic = ?{which} \
             GROUP BY kafka_partition ORDER BY kafka_partition"
        ))
        .bind(table)
        .bind(topic);
    if let Some(p) = partition {
        query = query.bind(p);
    }
    let partitions: Vec<PartitionWatermark> = query
        .fetch_all()
        .await
        .context("cannot read the watermarks")?;
    if partitions.is_empty() {
        return Ok(partitions);
    }
    let ids: Vec<i32> = partitions.iter().map(|p| p.kafka_partition).collect();
    let (kafka, group, topic_owned) = (kafka.clone(), group.to_string(), topic.to_string());
    tokio::task::spawn_blocking(move || rewind(&kafka, &group, &topic_owned, &ids))
        .await
        .context("rewind task")??;
    let mut insert = client
        .insert::<ResetRow<'_>>("ingest_resets")
        .await
        .context("cannot record the reset")?;
    for p in &partitions {
        insert
            .write(&ResetRow {
                table_name: table,
                kafka_topic: topic,
                kafka_partition: p.kafka_partition,
                previous_watermark: p.watermark,
            })
            .await?;
    }
    insert.end().await.context("cannot record the reset")?;
    for state in ["ingest_watermarks", "ingest_intents"] {
        for p in &partitions {
            client
                .query(&format!(
                    "ALTER TABLE {state} DELETE \
                     WHERE table_name = ? AND kafka_topic = ? AND kafka_partition = ?"
                ))
                .bind(table)
                .bind(topic)
                .bind(p.kafka_partition)
                .with_setting("mutations_sync", "2")
                .execute()
                .await
                .with_context(|| {
                    format!("cannot delete {state} of partition {}", p.kafka_partition)
                })?;
        }
    }
    Ok(partitions)
}

/// Commits each partition's log-start offset for `group`: the group's old offsets count
/// positions in a log that no longer exists.
fn rewind(kafka: &KafkaConfig, group: &str, topic: &str, partitions: &[i32]) -> anyhow::Result<()> {
    wxpulse_runtime::kafka::preflight(kafka)?;
    let consumer: BaseConsumer =
        wxpulse_runtime::kafka::create(&source::client_config(kafka, group), "consumer")?;
    let mut tpl = TopicPartitionList::new();
    for p in partitions {
        let (low, _) = consumer
            .fetch_watermarks(topic, *p, Duration::from_secs(10))
            .with_context(|| format!("cannot read the offsets of {topic} partition {p}"))?;
        tpl.add_partition_offset(topic, *p, Offset::Offset(low))?;
    }
    consumer.commit(&tpl, CommitMode::Sync).with_context(|| {
        format!("cannot rewind consumer group {group} (is its service still running?)")
    })?;
    Ok(())
}
