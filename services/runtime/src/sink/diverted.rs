//! What the overflow lane wrote for one primary partition's hot fans: the primary's
//! restore adds it to the partition's own state, so a hot fan's month count and its
//! diverted event ids survive a restart of the primary (see `overflow.rs`). The restore
//! reads it only after the lane has caught up (`pipeline/hot.rs`), so nothing diverted
//! before is missing.
//!
//! The lane's rows from records past the primary's watermark (`source_offset`, migration
//! 0023) belong to a batch the previous owner diverted and then lost: they are left out of
//! the restored month counts and returned apart ([`Sink::lane_wrote_past`]), so the replay
//! counts them into the fans' months in their place in the log, without writing them again.

use clickhouse::Row;
use serde::Deserialize;

use super::{each_written_id, FanMonth, Sink, WrittenIdRow};

/// The fans of the primary's partition: a hot fan always has rows there (its first
/// `max_per_window` records of a window stay).
const PARTITION_FANS: &str = "SELECT DISTINCT fan_id FROM fan_stream_months \
     WHERE kafka_topic = ? AND kafka_partition = ?";

/// A lane row whose source record is past the primary's watermark.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Row, Deserialize)]
pub struct LaneWritten {
    /// Offset of the diverted record in the primary's partition.
    pub source_offset: i64,
    /// Its event: the replay takes the record at that offset for this row only if it is
    /// the same event (a log re-created since holds other records at those offsets).
    #[serde(with = "clickhouse::serde::uuid")]
    pub event_id: uuid::Uuid,
    /// Its fan.
    pub fan_id: u64,
}

impl Sink {
    /// Per-fan, per-month aggregates of the rows the overflow lane (`overflow_topic`) wrote
    /// for fans of this sink's `partition`, without those of records from `replay_from` on
    /// (the replay counts them). `past`: the fans with such rows
    /// ([`Sink::lane_wrote_past`]), whose months are counted from their rows instead of
    /// the rollup.
    pub async fn diverted_fan_months(
        &self,
        overflow_topic: &str,
        partition: i32,
        replay_from: i64,
        past: &[u64],
    ) -> Result<Vec<FanMonth>, clickhouse::error::Error> {
        let rollup = "SELECT fan_id, month, sum(interactions) AS interactions, \
             toInt64(toUnixTimestamp64Milli(max(last_event_time))) AS last_event_time \
             FROM fan_stream_months WHERE kafka_topic = ? AND fan_id IN";
        if past.is_empty() {
            return self
                .client
                .query(&format!(
                    "{rollup} ({PARTITION_FANS}) GROUP BY fan_id, month"
                ))
                .bind(overflow_topic)
                .bind(&self.topic)
                .bind(partition)
                .fetch_all()
                .await;
        }
        let mut months: Vec<FanMonth> = self
            .client
            .query(&format!(
                "{rollup} ({PARTITION_FANS}) AND NOT has(?, fan_id) GROUP BY fan_id, month"
            ))
            .bind(overflow_topic)
            .bind(&self.topic)
            .bind(partition)
            .bind(past)
            .fetch_all()
            .await?;
        let rows = self
            .client
            .query(&format!(
                "SELECT fan_id, toYYYYMM(event_time) AS month, count() AS interactions, \
                 toInt64(toUnixTimestamp64Milli(max(event_time))) AS last_event_time \
                 FROM {} WHERE kafka_topic = ? AND has(?, fan_id) \
                 AND NOT (source_partition = ? AND source_offset >= ?) GROUP BY fan_id, month",
                self.table
            ))
            .bind(overflow_topic)
            .bind(past)
            .bind(partition)
            .bind(replay_from)
            .fetch_all::<FanMonth>()
            .await?;
        months.extend(rows);
        Ok(months)
    }

    /// The lane's rows of records of `partition` past `watermark`: diverted by an owner
    /// that then lost the batch they were in (it crashed before writing its own rows).
    pub async fn lane_wrote_past(
        &self,
        overflow_topic: &str,
        partition: i32,
        watermark: i64,
    ) -> Result<Vec<LaneWritten>, clickhouse::error::Error> {
        self.client
            .query(&format!(
                "SELECT source_offset, event_id, fan_id FROM {} \
                 WHERE kafka_topic = ? AND source_partition = ? AND source_offset > ?",
                self.table
            ))
            .bind(overflow_topic)
            .bind(partition)
            .bind(watermark)
            .fetch_all()
            .await
    }

    /// Streams the event ids (with server time) the overflow lane wrote since `since_ms`
    /// from records of `partition` (`source_partition`), or, for rows written before
    /// migration 0023, for fans of `partition`.
    pub async fn for_each_diverted_event_id(
        &self,
        overflow_topic: &str,
        partition: i32,
        since_ms: i64,
        each: impl FnMut(u128, i64),
    ) -> Result<usize, clickhouse::error::Error> {
        let cursor = self
            .client
            .query(&format!(
                "SELECT event_id, toUnixTimestamp64Milli(server_time) AS server_ms FROM {} \
                 WHERE kafka_topic = ? AND server_time >= fromUnixTimestamp64Milli(toInt64(?)) \
                 AND (source_partition = ? OR fan_id IN ({PARTITION_FANS}))",
                self.table
            ))
            .bind(overflow_topic)
            .bind(since_ms)
            .bind(partition)
            .bind(&self.topic)
            .bind(partition)
            .fetch::<WrittenIdRow>()?;
        each_written_id(cursor, each).await
    }
}
