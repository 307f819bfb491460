//! Assignment: what ClickHouse already has for a partition, the previous owner's batch that
//! may not have completed, and whether Kafka's log is still the one that state was written
//! from. Runs before the partition's first record is processed.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};

use super::{PartitionState, Pipeline};
use crate::batch::{self, Replay};
use crate::dedup::EventIds;
use crate::retry::Backoff;
use crate::segment::FanStates;
use crate::sink::Intent;
use crate::source::{Lease, SourceHandle};
use crate::stream::{History, Stream};

impl<S: Stream> Pipeline<S> {
    /// Learns what ClickHouse already has for the leased partition — first repairing the
    /// previous owner's in-flight batch (see `sink.rs`), then its offset watermark, the
    /// event ids of the dedup window and the segmentation state of its fans — and lets the
    /// stream restore its own state. Retries until ClickHouse answers, the lease ends or
    /// the service shuts down.
    pub(super) async fn restore(&mut self, lease: Lease, source: &SourceHandle) {
        let partition = lease.partition;
        let mut backoff = Backoff::new(&self.cfg.retry);
        loop {
            if !lease.is_held() || self.shutdown.is_cancelled() {
                tracing::info!(
                    partition,
                    "restore abandoned: partition revoked or shutting down"
                );
                return;
            }
            match self.try_restore(&lease, source).await {
                Ok(state) => {
                    self.partitions.insert(partition, state);
                    return;
                }
                Err(e) => {
                    self.metrics.set_ready(false);
                    tracing::warn!(partition, error = %e, "cannot restore partition state from ClickHouse; retrying");
                }
            }
            let stop = lease.token.clone();
            let shutdown = self.shutdown.clone();
            tokio::select! {
                _ = backoff.wait(&stop) => {}
                _ = shutdown.cancelled() => return,
            }
        }
    }

    async fn try_restore(
        &mut self,
        lease: &Lease,
        source: &SourceHandle,
    ) -> anyhow::Result<PartitionState<S::Row>> {
        let partition = lease.partition;
        let window_ms = self.cfg.dedup.window.as_millis() as i64;
        let incarnation = self.sink.incarnation(partition).await?;
        let intent = self.sink.last_intent(partition).await?;
        let wm = self.sink.watermark(partition).await?;
        let held = self
            .log_replaced(partition, wm.offset, intent.as_ref())
            .await;
        let replay = match intent {
            Some(intent) if !held => self.repair_in_flight(partition, intent, source).await?,
            _ => None,
        };
        // A repair moves the watermark.
        let wm = self.sink.watermark(partition).await?;
        let mut ids =
            EventIds::configured(&self.cfg.dedup, self.metrics.ids_evicted.clone(), wm.offset);
        let remembered = window_ms.max(self.cfg.dedup.horizon.as_millis() as i64);
        // Without a watermark (a new partition, or one reset after its topic was
        // re-created) the ids written from it in the last horizon still count: a replay
        // of the old log into the new one is dropped by event id.
        let newest = if wm.offset >= 0 {
            wm.server_time_ms
        } else {
            super::now_ms()
        };
        let in_window = newest - window_ms;
        let restored_ids = self
            .sink
            .for_each_event_id(partition, newest - remembered, |id, t| {
                ids.restore(id, t, t >= in_window)
            })
            .await?;
        let mut fan_months = if wm.offset >= 0 {
            self.sink.fan_months(partition).await?
        } else {
            Vec::new()
        };
        // The hot fans' diverted rows were written by the overflow lane (overflow.rs), once
        // it has written everything diverted so far. Those of records past the watermark
        // are the previous owner's lost batch: the replay counts them (whatever this
        // owner's overflow settings decide for them) and writes them nowhere. Without a
        // watermark too: an owner that crashed in its first batch wrote no row, but the
        // lane may have written the records it diverted.
        let mut lane_wrote = HashMap::new();
        if let Some(lane) = self.lane_to_read().await? {
            if !self.wait_for_lane(&lane, lease).await {
                anyhow::bail!("gave up waiting for the overflow lane");
            }
            let topic = lane.topic.as_str();
            let mut past = self
                .sink
                .lane_wrote_past(topic, partition, wm.offset)
                .await?;
            // The replay starts at the committed offset when that is past the watermark
            // (a batch of diverted records only writes no row, so no watermark): the lane's
            // rows before it are counted here, the others when replayed.
            let replay_from = match past.is_empty() {
                true => wm.offset + 1,
                false => read_committed(source, self.topic, partition)
                    .await?
                    .map_or(wm.offset + 1, |next| next.max(wm.offset + 1)),
            };
            past.retain(|w| w.source_offset >= replay_from);
            let mut past_fans: Vec<u64> = past.iter().map(|w| w.fan_id).collect();
            past_fans.sort_unstable();
            past_fans.dedup();
            lane_wrote.extend(past.iter().map(|w| (w.source_offset, w.event_id.as_u128())));
            let diverted = self
                .sink
                .for_each_diverted_event_id(topic, partition, newest - remembered, |id, t| {
                    ids.restore(id, t, t >= in_window)
                })
                .await?;
            let months = self
                .sink
                .diverted_fan_months(topic, partition, replay_from, &past_fans)
                .await?;
            tracing::info!(
                partition,
                ids = diverted,
                fan_months = months.len(),
                past_watermark = lane_wrote.len(),
                "hot fans' rows written by the overflow lane restored"
            );
            fan_months.extend(months);
        }
        let history = History {
            client: self.sink.client(),
            table: self.sink.table(),
            topic: self.topic,
            partition,
            watermark_offset: wm.offset,
            watermark_server_time: wm.server_time_ms,
        };
        self.stream.restore(&history).await?;
        let mut fans = FanStates::bounded(&self.fan_budget);
        for m in &fan_months {
            let n = u32::try_from(m.interactions).unwrap_or(u32::MAX);
            fans.restore(m.fan_id, m.month, n, m.last_event_time);
        }
        tracing::info!(
            partition,
            watermark = wm.offset,
            ids = restored_ids,
            horizon_bytes = ids.horizon.bytes(),
            fans = fans.len(),
            replay = ?replay.as_ref().map(|i| (i.first_offset, i.last_offset)),
            held,
            "partition state restored"
        );
        let replay = replay.map(|i| Replay {
            first_offset: i.first_offset,
            last_offset: i.last_offset,
            last_record_time: i.last_record_time,
        });
        Ok(PartitionState {
            lease: lease.clone(),
            ledger: batch::Partition::new(lease.epoch, wm.offset, replay),
            in_flight: None,
            ids,
            fans,
            looking_up: false,
            parked: VecDeque::new(),
            parked_bytes: 0,
            held,
            incarnation,
            hot: crate::overflow::HotKeys::new(&self.cfg.overflow),
            warming: false,
            lane_wrote,
        })
    }

    /// Settles the previous owner's last announced batch if it may not have completed
    /// (the group's committed offset does not pass it). When its raw rows landed, they are
    /// re-inserted under the batch's token now (filling any view whose part failed); when
    /// they did not, the intent is returned and the first batch is cut to its range.
    async fn repair_in_flight(
        &self,
        partition: i32,
        intent: Intent,
        source: &SourceHandle,
    ) -> anyhow::Result<Option<Intent>> {
        let committed = committed_offset(source, self.topic, partition).await;
        if committed.is_some_and(|next| next > intent.last_offset) {
            return Ok(None);
        }
        if self.sink.rows_of(partition, &intent).await? > 0 {
            self.sink.repair(partition, &intent).await?;
            self.metrics
                .batches_replayed
                .with_label_values(&["repaired"])
                .inc();
            tracing::info!(
                partition,
                token = intent.dedup_token,
                "previous owner's last batch re-inserted under its own token"
            );
            return Ok(None);
        }
        self.metrics
            .batches_replayed
            .with_label_values(&["reinserted"])
            .inc();
        Ok(Some(intent))
    }

    /// Whether Kafka's log for `partition` is another one than the one ClickHouse's state
    /// was written from: it ends at or below the watermark, or the record at the last
    /// announced offset is missing or has another timestamp. Records of such a log would
    /// all be skipped as redeliveries although they are new.
    async fn log_replaced(
        &mut self,
        partition: i32,
        watermark: i64,
        intent: Option<&Intent>,
    ) -> bool {
        if watermark < 0 && intent.is_none() {
            return false;
        }
        let probe = match self.probe() {
            Ok(probe) => probe,
            Err(e) => {
                tracing::warn!(error = %e, "cannot create the Kafka probe; not checking the log's identity");
                return false;
            }
        };
        let topic = self.topic;
        let last = intent.map(|i| (i.last_offset, i.last_record_time));
        let checked = tokio::task::spawn_blocking(move || -> rdkafka::error::KafkaResult<Option<String>> {
            let (low, high) = probe.fetch_watermarks(topic, partition, Duration::from_secs(10))?;
            if watermark >= 0 && high <= watermark {
                return Ok(Some(format!("the log ends at {high}, at or below the watermark {watermark}")));
            }
            let Some((offset, time)) = last else {
                return Ok(None);
            };
            if offset >= high {
                return Ok(Some(format!("the log ends at {high}, before the last written batch's end {offset}")));
            }
            if offset < low || time < 0 {
                return Ok(None); // deleted by retention, or no timestamp: cannot tell
            }
            Ok(match record_time_at(&probe, topic, partition, offset)? {
                Some(found) if found != time => Some(format!(
                    "the record at offset {offset} has timestamp {found}, the one written had {time}"
                )),
                _ => None,
            })
        })
        .await;
        match checked {
            Ok(Ok(Some(why))) => {
                tracing::error!(
                    partition,
                    watermark,
                    why,
                    "Kafka's log is not the one ClickHouse's ingest state was written from (topic re-created, or other brokers): holding the partition — nothing skipped, nothing written — until `wxpulse ingest reset` (docs/runbook.md)"
                );
                true
            }
            Ok(Ok(None)) => false,
            Ok(Err(e)) => {
                tracing::warn!(partition, error = %e, "cannot check the partition's log identity");
                false
            }
            Err(_) => false,
        }
    }

    /// A group-less consumer that reads single records by offset, created on first use.
    fn probe(&mut self) -> anyhow::Result<Arc<BaseConsumer>> {
        if let Some(p) = &self.probe {
            return Ok(p.clone());
        }
        let probe: Arc<BaseConsumer> = Arc::new(probe_config(&self.cfg.kafka).create()?);
        self.probe = Some(probe.clone());
        Ok(probe)
    }
}

/// The probe's client settings. It is polled only while probing, so statistics would pile
/// up in its queue (one event every 2 s, a leak) and flood the log at the next probe.
fn probe_config(kafka: &crate::config::KafkaConfig) -> rdkafka::ClientConfig {
    let mut config = crate::source::client_config(kafka, "wxpulse-probe");
    config
        .remove("statistics.interval.ms")
        .set("enable.partition.eof", "true");
    config
}

/// The group's committed offset of `partition` (the next to read), if it has one; `None`
/// also when Kafka cannot say.
async fn committed_offset(
    source: &SourceHandle,
    topic: &'static str,
    partition: i32,
) -> Option<i64> {
    read_committed(source, topic, partition)
        .await
        .ok()
        .flatten()
}

/// The group's committed offset of `partition`: where this owner's consumption resumes.
async fn read_committed(
    source: &SourceHandle,
    topic: &'static str,
    partition: i32,
) -> anyhow::Result<Option<i64>> {
    let consumer = source.consumer.clone();
    let committed = tokio::task::spawn_blocking(move || {
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition(topic, partition);
        consumer.committed_offsets(tpl, Duration::from_secs(10))
    })
    .await?
    .context("cannot read the group's committed offset")?;
    Ok(
        match committed
            .find_partition(topic, partition)
            .map(|e| e.offset())
        {
            Some(Offset::Offset(next)) => Some(next),
            _ => None,
        },
    )
}

/// The Kafka timestamp of the record at `offset`, if the log still has it.
fn record_time_at(
    probe: &BaseConsumer,
    topic: &str,
    partition: i32,
    offset: i64,
) -> rdkafka::error::KafkaResult<Option<i64>> {
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, partition, Offset::Offset(offset))?;
    probe.assign(&tpl)?;
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut found = None;
    while Instant::now() < deadline {
        match probe.poll(Duration::from_millis(200)) {
            Some(Ok(m)) if m.partition() == partition && m.offset() == offset => {
                found = m.timestamp().to_millis();
                break;
            }
            Some(Ok(m)) if m.partition() == partition && m.offset() > offset => break,
            Some(Err(rdkafka::error::KafkaError::PartitionEOF(_))) => break,
            _ => {}
        }
    }
    probe.unassign()?;
    Ok(found)
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_probe_queues_no_statistics() {
        let kafka = crate::config::Config::load(None, Vec::new())
            .expect("the defaults load")
            .kafka;
        let config = super::probe_config(&kafka);
        assert_eq!(config.get("statistics.interval.ms"), None);
        assert_eq!(config.get("enable.partition.eof"), Some("true"));
    }
}
