//! Start-up from the fan-profile mirror's copy in ClickHouse instead of the whole topic.
//!
//! Every service needs every fan profile before it consumes an event, and reading a
//! million-record topic from its start is bound by the broker (about 30 s on the local
//! stack). The mirror (`wxpulse dims mirror`) already keeps the same profiles, pseudonymised
//! with the same `pii.key`, in `fan_profiles`, and each row carries its topic partition and
//! offset, which the same INSERT records in `ingest_watermarks` (migration 0014). So a
//! service reads those watermarks first, then the table — which then holds at least every
//! record at or below them, on whichever node it asks — and reads the topic only past them.
//! Records the table holds past a watermark are applied again from the topic, in offset
//! order, so the result is what reading the whole topic gives.
//!
//! A partition without a watermark (never mirrored, or mirrored before migration 0014) is
//! read from its start. Any doubt about the whole falls back to reading the topic from its
//! start: a watermark past the log's end (the topic was re-created after the mirror ran),
//! ClickHouse unreachable.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use anyhow::Context;
use clickhouse::Row;
use rdkafka::consumer::{BaseConsumer, Consumer};
use serde::Deserialize;

use super::{CustomerStatus, Dimension, Dimensions};
use crate::config::Config;

/// Where the topic is read from after the snapshot, per fan-profile partition.
pub type Starts = HashMap<(Dimension, i32), i64>;

#[derive(Row, Deserialize)]
struct ProfileRow {
    fan_id: u64,
    status: String,
    associate_userid: String,
    followed_at: Option<i64>,
    unfollowed_at: Option<i64>,
}

/// Loads the fan profiles of the mirror's table into `dims` and returns the offsets to
/// follow the topic from; empty when the snapshot is off or cannot be trusted (then the
/// topic is read from its start, as without it).
pub async fn load_fan_profiles(config: &Config, dims: &mut Dimensions) -> Starts {
    if !config.dimensions.fan_profile_snapshot {
        return Starts::new();
    }
    let started = Instant::now();
    let client = match crate::sink::client(&config.clickhouse) {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!(error = %e, "fan-profile snapshot unusable; reading the topic from its start");
            return Starts::new();
        }
    };
    let starts = match mirror_offsets(config, &client).await {
        Ok(Some(starts)) => starts,
        Ok(None) => return Starts::new(),
        Err(e) => {
            tracing::warn!(error = %format!("{e:#}"), "fan-profile snapshot unusable; reading the topic from its start");
            return Starts::new();
        }
    };
    match read_table(&client, dims).await {
        Ok(rows) => {
            tracing::info!(
                rows,
                elapsed = ?started.elapsed(),
                from = ?starts,
                "fan profiles loaded from the mirror's snapshot; reading the topic past its offsets"
            );
            starts
        }
        Err(e) => {
            dims.clear(Dimension::FanProfile);
            tracing::warn!(error = %format!("{e:#}"), "fan-profile snapshot unreadable; reading the topic from its start");
            Starts::new()
        }
    }
}

#[derive(Row, Deserialize)]
struct WatermarkRow {
    kafka_partition: i32,
    max_offset: i64,
}

/// Per partition, the offset past the mirror's watermark, if every watermark fits the log.
async fn mirror_offsets(
    config: &Config,
    client: &clickhouse::Client,
) -> anyhow::Result<Option<Starts>> {
    let topic = Dimension::FanProfile.topic();
    let watermarks: Vec<WatermarkRow> = client
        .query(
            "SELECT kafka_partition, max(max_offset) AS max_offset FROM ingest_watermarks \
             WHERE table_name = 'fan_profiles' AND kafka_topic = ? GROUP BY kafka_partition",
        )
        .bind(topic)
        .fetch_all()
        .await
        .context("ingest_watermarks")?;
    if watermarks.is_empty() {
        return Ok(None);
    }
    let kafka = config.kafka.clone();
    let logs = tokio::task::spawn_blocking(move || log_ranges(&kafka))
        .await
        .context("watermark reader")??;
    let mut starts = Starts::new();
    for w in watermarks {
        let Some((low, high)) = logs.get(&w.kafka_partition).copied() else {
            tracing::warn!(
                partition = w.kafka_partition,
                "the mirror's table has a partition the topic does not (topic re-created?); not using its snapshot"
            );
            return Ok(None);
        };
        if w.max_offset >= high {
            tracing::warn!(
                partition = w.kafka_partition,
                watermark = w.max_offset,
                end = high,
                "the mirror's table is past the log's end (topic re-created?); not using its snapshot"
            );
            return Ok(None);
        }
        // Records below `low` are gone from the log (compacted or expired) but mirrored.
        starts.insert(
            (Dimension::FanProfile, w.kafka_partition),
            (w.max_offset + 1).max(low),
        );
    }
    Ok(Some(starts))
}

/// (log start, log end) of every fan-profile partition.
fn log_ranges(kafka: &crate::config::KafkaConfig) -> anyhow::Result<HashMap<i32, (i64, i64)>> {
    let topic = Dimension::FanProfile.topic();
    let consumer: BaseConsumer = crate::kafka::consumer_config(kafka, "wxpulse-snapshot-check")
        .remove("statistics.interval.ms")
        .create()
        .context("cannot create the snapshot's offset reader")?;
    let metadata = consumer
        .fetch_metadata(Some(topic), Duration::from_secs(10))
        .context("fan-profile topic metadata")?;
    let mut ranges = HashMap::new();
    for p in metadata.topics().iter().flat_map(|t| t.partitions()) {
        let range = consumer
            .fetch_watermarks(topic, p.id(), Duration::from_secs(10))
            .context("fan-profile watermarks")?;
        ranges.insert(p.id(), range);
    }
    Ok(ranges)
}

/// Streams the live rows of `fan_profiles` into `dims`; returns how many.
async fn read_table(client: &clickhouse::Client, dims: &mut Dimensions) -> anyhow::Result<u64> {
    let mut cursor = client
        .query(
            "SELECT fan_id, toString(status) AS status, toString(associate_userid) AS associate_userid, \
             toUnixTimestamp64Milli(followed_at) AS followed_at, \
             toUnixTimestamp64Milli(unfollowed_at) AS unfollowed_at \
             FROM fan_profiles FINAL WHERE is_deleted = 0",
        )
        .fetch::<ProfileRow>()
        .context("fan_profiles")?;
    let mut rows = 0u64;
    while let Some(row) = cursor.next().await.context("fan_profiles")? {
        let status = match row.status.as_str() {
            "prospect" => CustomerStatus::Prospect,
            "customer" => CustomerStatus::Customer,
            "vip" => CustomerStatus::Vip,
            _ => CustomerStatus::Other,
        };
        let associate = (!row.associate_userid.is_empty()).then_some(row.associate_userid.as_str());
        dims.insert_fan(
            row.fan_id,
            status,
            associate,
            row.followed_at,
            row.unfollowed_at,
        );
        rows += 1;
    }
    Ok(rows)
}
