//! Hot keys on the primary lane (see `overflow.rs`): before a new owner decides its first
//! record of a partition, a task counts the keys of that record's window from Kafka, so
//! its decisions are the ones any earlier owner made. The partition's records park
//! meanwhile; other partitions go on. And before it restores the partition's state from
//! ClickHouse, the lane must have written what was diverted so far.

use anyhow::Context as _;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};

use super::lane::Lane;
use super::{Pipeline, Warmed};
use crate::retry::Backoff;
use crate::source::Lease;
use crate::stream::Stream;

impl<S: Stream> Pipeline<S> {
    /// Starts counting `partition`'s records in `[window_start, offset)`, unless a count is
    /// already running; retried until Kafka answers or the lease ends.
    pub(super) fn warm_up(&mut self, partition: i32, window_start: i64, offset: i64) {
        let Some(state) = self.partitions.get_mut(&partition) else {
            return;
        };
        if state.warming {
            return;
        }
        state.warming = true;
        let epoch = state.lease.epoch;
        let stop = state.lease.token.clone();
        let kafka = self.cfg.kafka.clone();
        let topic = self.topic;
        let done = self.warmed_tx.clone();
        let mut backoff = Backoff::new(&self.cfg.retry);
        tokio::spawn(async move {
            loop {
                let (kafka, stop_read) = (kafka.clone(), stop.clone());
                let read = tokio::task::spawn_blocking(move || {
                    crate::overflow::count_keys(
                        &kafka,
                        topic,
                        partition,
                        window_start,
                        offset,
                        &stop_read,
                    )
                })
                .await;
                match read {
                    Ok(Ok(Some(counts))) => {
                        tracing::info!(
                            partition,
                            window_start,
                            offset,
                            keys = counts.len(),
                            "hot-key counts of the window read from Kafka"
                        );
                        let _ = done.send(Warmed {
                            partition,
                            epoch,
                            window_start,
                            counts,
                        });
                        return;
                    }
                    Ok(Ok(None)) => return,
                    Ok(Err(e)) => {
                        tracing::warn!(partition, error = %e, "cannot count the window's keys in Kafka; the partition waits")
                    }
                    Err(e) => tracing::error!(partition, error = %e, "hot-key count task failed"),
                }
                if !backoff.wait(&stop).await {
                    return;
                }
            }
        });
    }

    /// Waits until the overflow lane has written every record diverted so far (its group
    /// has committed up to the overflow topic's current end): a hot fan's diverted event
    /// ids and month counts are restored from the rows the lane wrote, and one still in
    /// the lane's backlog would be missed — a later copy of it kept here would be written
    /// twice. Usually the lane is seconds behind; a lane that is down holds the restore
    /// (logged, and `WxpulseOverflowLaneLagging` fires). `false`: the lease ended or the
    /// service is stopping first.
    pub(super) async fn wait_for_lane(&self, lane: &Lane, lease: &Lease) -> bool {
        lane.caught_up(lease.partition, "restoring", &lease.token, &self.shutdown)
            .await
    }

    /// The lane whose rows a restore reads back: with `overflow.enabled`, always; with it
    /// off, only while its topic holds records (it was on, and an owner that crashed may
    /// have diverted part of a batch it never wrote), asked once per assignment. Errs when
    /// Kafka cannot say.
    pub(super) async fn lane_to_read(&mut self) -> anyhow::Result<Option<Lane>> {
        let Some(lane) = self.lane.clone() else {
            return Ok(None);
        };
        if self.overflow.is_some() {
            return Ok(Some(lane));
        }
        if let Some(holds) = self.lane_holds {
            return Ok(holds.then_some(lane));
        }
        let (kafka, topic, group) = (lane.kafka.clone(), lane.topic.clone(), lane.group.clone());
        let holds = tokio::task::spawn_blocking(move || {
            let reader = crate::overflow::lane_reader(&kafka, &group)?;
            match crate::overflow::topic_ends(&reader, &topic) {
                Ok(ends) => Ok(ends.iter().any(|(_, _, high)| *high > 0)),
                Err(KafkaError::MetadataFetch(
                    RDKafkaErrorCode::UnknownTopicOrPartition | RDKafkaErrorCode::UnknownTopic,
                )) => Ok(false),
                Err(e) => Err(e),
            }
        })
        .await?
        .with_context(|| {
            format!(
                "cannot tell whether the overflow topic {} holds records",
                lane.topic
            )
        })?;
        self.lane_holds = Some(holds);
        Ok(holds.then_some(lane))
    }

    /// The window's counts arrived: the partition's records go on.
    pub(super) fn on_warmed(&mut self, warmed: Warmed) {
        let Some(state) = self.partitions.get_mut(&warmed.partition) else {
            return;
        };
        if state.lease.epoch != warmed.epoch {
            return;
        }
        state.warming = false;
        state.hot.warm(warmed.window_start, &warmed.counts);
        self.unpark(warmed.partition);
    }
}
