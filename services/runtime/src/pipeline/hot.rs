//! Hot keys on the primary lane (see `overflow.rs`): before a new owner decides its first
//! record of a partition, a task counts the keys of that record's window from Kafka, so
//! its decisions are the ones any earlier owner made. The partition's records park
//! meanwhile; other partitions go on.

use super::{Pipeline, Warmed};
use crate::retry::Backoff;
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
