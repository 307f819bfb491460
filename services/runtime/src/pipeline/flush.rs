//! Flushing: a partition's batch goes to an insert task (dead letters delivered first,
//! then the `dead_letters` rows, the quarantined rows, the batch intent and the rows), and
//! its offsets are committed only once that task reports the rows written; on revoke and
//! shutdown the partitions are drained and committed for the last time.

use std::time::Instant;

use rdkafka::consumer::{CommitMode, Consumer};
use rdkafka::{Offset, TopicPartitionList};

use super::{now_ms, Flushed, Pipeline};
use crate::batch::Batch;
use crate::dlq::DeadLetterRow;
use crate::sink::Intent;
use crate::source::SourceHandle;
use crate::stream::Stream;

impl<S: Stream> Pipeline<S> {
    /// Starts a flush if the partition's batch reached a limit or a replayed range ended.
    pub(super) fn flush_if_due(&mut self, partition: i32) {
        let limits = self.limits();
        if self
            .partitions
            .get(&partition)
            .is_some_and(|p| p.ledger.wants_flush(&limits))
        {
            self.start_flush(partition);
        }
    }

    /// Hands the partition's batch to an insert task, unless one is already in flight.
    pub(super) fn start_flush(&mut self, partition: i32) {
        let Some(state) = self.partitions.get_mut(&partition) else {
            return;
        };
        if !state.lease.is_held() {
            // Revoked while we were busy: the next owner re-reads these records.
            state.ledger.release();
            return;
        }
        let Some(batch) = state.ledger.take() else {
            return;
        };
        // A child of the lease: revoking the partition stops the insert's retries.
        let cancel = state.lease.token.child_token();
        state.in_flight = Some(cancel.clone());
        let epoch = state.lease.epoch;
        let intent = Intent {
            first_offset: batch.first_offset,
            last_offset: batch.last_offset,
            dedup_token: self.sink.dedup_token(
                partition,
                state.incarnation,
                batch.first_offset,
                batch.last_offset,
            ),
            min_server_time: batch.oldest_server_time.min(batch.newest_server_time),
            max_server_time: batch.newest_server_time,
            last_record_time: batch.last_record_time,
        };
        let sink = self.sink.clone();
        let metrics = self.metrics.clone();
        let dead_letter_sink = self.dead_letters.clone();
        let overflow = self.overflow.clone();
        let quarantine_table = crate::sink::quarantine_table(self.sink.table());
        let in_flight = self.metrics.flush_started(partition);
        let done = self.flushed_tx.clone();
        tokio::spawn(async move {
            let _in_flight = in_flight;
            let Batch {
                rows,
                dead_letters,
                diverted,
                quarantined,
                last_offset,
                bytes,
                newest_server_time,
                ..
            } = batch;
            let letters: Vec<DeadLetterRow> = dead_letters.iter().map(|p| p.row.clone()).collect();
            let mut ok = dead_letter_sink.deliver_all(dead_letters, &cancel).await;
            if ok && !diverted.is_empty() {
                ok = match &overflow {
                    Some(overflow) => overflow.deliver_all(diverted, &cancel).await,
                    None => false,
                };
            }
            if ok && !letters.is_empty() {
                // Queryable in ClickHouse too; keyed by source record, so a replay of the
                // batch under its token (or a redelivery) adds nothing.
                let token = format!("{}:dead_letters", intent.dedup_token);
                ok = sink
                    .insert_into("dead_letters", &letters, &token, &metrics, &cancel)
                    .await;
            }
            if ok && !quarantined.is_empty() {
                // Before the rows and outside ingest_watermarks, like the dead letters: a
                // crash in between re-reads the batch, and the twin (a ReplacingMergeTree on
                // the event's key) merges the copy.
                let token = format!("{}:quarantine", intent.dedup_token);
                ok = sink
                    .insert_into(&quarantine_table, &quarantined, &token, &metrics, &cancel)
                    .await;
            }
            if ok && !rows.is_empty() {
                ok = sink.announce(partition, &intent, &metrics, &cancel).await
                    && sink
                        .insert(&rows, &intent.dedup_token, &metrics, &cancel)
                        .await;
            }
            let _ = done.send(Flushed {
                partition,
                epoch,
                ok,
                next_offset: last_offset + 1,
                rows: rows.len(),
                bytes,
                newest_server_time,
            });
        });
    }

    pub(super) fn on_flushed(&mut self, f: Flushed, source: &SourceHandle) {
        let Some(state) = self.partitions.get_mut(&f.partition) else {
            return;
        };
        if state.lease.epoch != f.epoch {
            return;
        }
        state.in_flight = None;
        if !state.lease.is_held() {
            state.ledger.release();
        }
        let Some(next_offset) = state.ledger.flushed(f.epoch, f.ok, f.next_offset) else {
            return;
        };
        // Their ids may now leave the window: a lookup in ClickHouse finds them.
        state.ids.window.written(next_offset - 1);
        if f.rows > 0 {
            let table = self.sink.table();
            self.metrics
                .written
                .with_label_values(&[table])
                .inc_by(f.rows as u64);
            self.metrics
                .batch_rows
                .with_label_values(&[table])
                .observe(f.rows as f64);
            self.metrics
                .batch_bytes
                .with_label_values(&[table])
                .observe(f.bytes as f64);
            self.metrics
                .last_write_timestamp
                .set(now_ms() as f64 / 1000.0);
            self.newest_written_server_time =
                self.newest_written_server_time.max(f.newest_server_time);
        }
        commit(
            source,
            self.topic,
            f.partition,
            next_offset,
            CommitMode::Async,
        );
        self.flush_if_due(f.partition);
    }

    /// Flushes `partitions` until nothing is pending or `deadline`; `false` on timeout.
    pub(super) async fn drain(
        &mut self,
        partitions: &[i32],
        deadline: Instant,
        source: &SourceHandle,
    ) -> bool {
        loop {
            for p in partitions {
                self.start_flush(*p);
            }
            let pending = partitions
                .iter()
                .any(|p| self.partitions.get(p).is_some_and(|s| s.ledger.pending()));
            if !pending {
                return true;
            }
            match tokio::time::timeout_at(deadline.into(), self.flushed_rx.recv()).await {
                Ok(Some(f)) => {
                    let failed = !f.ok;
                    self.on_flushed(f, source);
                    if failed {
                        return false;
                    }
                }
                Ok(None) | Err(_) => return false,
            }
        }
    }

    /// Final synchronous commit of drained partitions, then forgets them. Undrained ones
    /// are abandoned uncommitted: their next owner re-reads them from the last commit and
    /// skips what the ClickHouse watermark says is already in.
    pub(super) fn commit_and_forget(
        &mut self,
        partitions: &[i32],
        source: &SourceHandle,
        drained: bool,
    ) {
        for p in partitions {
            let Some(state) = self.partitions.remove(p) else {
                continue;
            };
            self.stream.forget(*p);
            if let Some(cancel) = state.in_flight {
                cancel.cancel();
            }
            if !drained {
                tracing::warn!(
                    partition = p,
                    "partition let go with unflushed records; its next owner re-reads them"
                );
            }
            // Synchronous, so the next owner starts where this one finished instead of
            // re-reading records only to skip them by watermark. Not once the lease ended:
            // the next owner may have committed further already.
            if !state.lease.is_held() {
                continue;
            }
            if let Some(next) = state.ledger.next_commit() {
                commit(source, self.topic, *p, next, CommitMode::Sync);
            }
        }
    }
}

fn commit(source: &SourceHandle, topic: &str, partition: i32, next_offset: i64, mode: CommitMode) {
    let mut tpl = TopicPartitionList::new();
    if tpl
        .add_partition_offset(topic, partition, Offset::Offset(next_offset))
        .is_err()
    {
        return;
    }
    if let Err(e) = source.consumer.commit(&tpl, mode) {
        tracing::debug!(partition, error = %e, "commit not accepted");
    }
}
