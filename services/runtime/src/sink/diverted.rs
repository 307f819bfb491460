//! What the overflow lane wrote for one primary partition's hot fans: the primary's
//! restore adds it to the partition's own state, so a hot fan's month count and its
//! diverted event ids survive a restart of the primary (see `overflow.rs`). The restore
//! reads it only after the lane has caught up (`pipeline/hot.rs`), so nothing diverted
//! before is missing.

use super::{each_written_id, FanMonth, Sink, WrittenIdRow};

/// The fans of the primary's partition: a hot fan always has rows there (its first
/// `max_per_window` records of a window stay).
const PARTITION_FANS: &str = "SELECT DISTINCT fan_id FROM fan_stream_months \
     WHERE kafka_topic = ? AND kafka_partition = ?";

impl Sink {
    /// Per-fan, per-month aggregates of the rows the overflow lane (`overflow_topic`) wrote
    /// for fans of this sink's `partition`.
    pub async fn diverted_fan_months(
        &self,
        overflow_topic: &str,
        partition: i32,
    ) -> Result<Vec<FanMonth>, clickhouse::error::Error> {
        self.client
            .query(&format!(
                "SELECT fan_id, month, sum(interactions) AS interactions, \
                 toInt64(toUnixTimestamp64Milli(max(last_event_time))) AS last_event_time \
                 FROM fan_stream_months WHERE kafka_topic = ? AND fan_id IN ({PARTITION_FANS}) \
                 GROUP BY fan_id, month"
            ))
            .bind(overflow_topic)
            .bind(&self.topic)
            .bind(partition)
            .fetch_all()
            .await
    }

    /// Streams the event ids (with server time) the overflow lane wrote since `since_ms`
    /// for fans of `partition`.
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
                 AND fan_id IN ({PARTITION_FANS})",
                self.table
            ))
            .bind(overflow_topic)
            .bind(since_ms)
            .bind(&self.topic)
            .bind(partition)
            .fetch::<WrittenIdRow>()?;
        each_written_id(cursor, each).await
    }
}
