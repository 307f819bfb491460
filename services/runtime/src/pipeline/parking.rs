//! Parking: a record that cannot be decided yet waits — and every later record of its
//! partition behind it, in order — while a task finds out; other partitions go on, and the
//! loop never blocks on the registry or ClickHouse. Two things park a record:
//! - its writer schema is not cached: a task fetches it from the registry;
//! - its event id is *suspect* (the dedup horizon flags it, see `dedup.rs`): a task asks
//!   ClickHouse whether that id is already written. Waiting in line keeps every state the
//!   partition's records feed (segments, reply pairing) in offset order.

use super::{now_ms, Pipeline, Settled};
use crate::codec::{self, Known};
use crate::retry::Backoff;
use crate::source::Record;
use crate::stream::Stream;

impl<S: Stream> Pipeline<S> {
    /// Processes a record now, or parks it behind its partition's parked records or until
    /// its writer schema is fetched.
    pub(super) fn admit(&mut self, record: Record, now: i64) {
        let Some(state) = self.partitions.get_mut(&record.partition) else {
            return;
        };
        if record.epoch != state.lease.epoch || state.held {
            return; // fetched under an earlier assignment, or held (never committed)
        }
        let missing = record
            .payload
            .as_deref()
            .and_then(|p| codec::split_frame(p).ok())
            .map(|(id, _)| id)
            .filter(|id| matches!(self.registry.known(*id), Known::Unknown));
        if state.parked.is_empty() && missing.is_none() {
            self.on_record(record, now);
            return;
        }
        state.parked_bytes += record.payload.as_ref().map_or(0, Vec::len);
        state.parked.push_back(record);
        if let Some(id) = missing {
            self.fetch_schema(id);
        }
    }

    /// Starts a task that fetches writer schema `id` until the registry answers (found or
    /// 404, both cached), then reports it; one task per id.
    fn fetch_schema(&mut self, id: u32) {
        if !self.fetching.insert(id) {
            return;
        }
        let registry = self.registry.clone();
        let metrics = self.metrics.clone();
        let shutdown = self.shutdown.clone();
        let done = self.schema_tx.clone();
        let mut backoff = Backoff::new(&self.cfg.retry);
        tokio::spawn(async move {
            loop {
                let r = registry.clone();
                match tokio::task::spawn_blocking(move || r.fetch_blocking(id)).await {
                    Ok(Ok(_)) => {
                        let _ = done.send(id);
                        return;
                    }
                    Ok(Err(e)) => {
                        metrics.registry_errors.inc();
                        tracing::warn!(id, error = %e, "schema registry unavailable; records with this schema wait");
                    }
                    Err(e) => tracing::error!(error = %e, "schema fetch task failed"),
                }
                if !backoff.wait(&shutdown).await {
                    return;
                }
            }
        });
    }

    /// A schema arrived (or is known not to exist): parked records go on in order.
    pub(super) fn on_schema(&mut self, id: u32) {
        self.fetching.remove(&id);
        let partitions: Vec<i32> = self
            .partitions
            .iter()
            .filter(|(_, p)| !p.parked.is_empty())
            .map(|(k, _)| *k)
            .collect();
        for partition in partitions {
            self.unpark(partition);
        }
    }

    /// Re-admits `partition`'s parked records in order; any that still cannot be decided
    /// parks again, with everything after it.
    pub(super) fn unpark(&mut self, partition: i32) {
        let now = now_ms();
        let Some(state) = self.partitions.get_mut(&partition) else {
            return;
        };
        let parked = std::mem::take(&mut state.parked);
        state.parked_bytes = 0;
        for record in parked {
            self.admit(record, now);
        }
    }

    /// Starts a task that asks ClickHouse whether suspect `id` is written (with a server
    /// time within the horizon of `server_time`), until it answers or the lease ends; one
    /// lookup per partition at a time. `lane`: its key was diverted since the partition
    /// was restored, so "not written" counts only once the overflow lane has written what
    /// was diverted before the question (its original may be in the lane's backlog).
    pub(super) fn look_up(&mut self, partition: i32, id: u128, server_time: i64, lane: bool) {
        let Some(state) = self.partitions.get_mut(&partition) else {
            return;
        };
        if state.looking_up {
            return;
        }
        state.looking_up = true;
        let since = server_time.saturating_sub(self.cfg.dedup.horizon.as_millis() as i64);
        let epoch = state.lease.epoch;
        let stop = state.lease.token.clone();
        let sink = self.sink.clone();
        let metrics = self.metrics.clone();
        let done = self.settled_tx.clone();
        let mut backoff = Backoff::new(&self.cfg.retry);
        let mut lane = self.lane.clone().filter(|_| lane);
        let shutdown = self.shutdown.clone();
        tokio::spawn(async move {
            loop {
                match sink.written_event_ids(&[id], since).await {
                    Ok(found) => {
                        if let Some(l) = lane.take().filter(|_| found.is_empty()) {
                            let what = "settling a suspect event id";
                            if !l.caught_up(partition, what, &stop, &shutdown).await {
                                return;
                            }
                            continue; // asked again now that the lane has caught up
                        }
                        let written = found.first().map(|(_, t)| *t);
                        let _ = done.send(Settled {
                            partition,
                            epoch,
                            id,
                            written,
                        });
                        return;
                    }
                    Err(e) => {
                        metrics.horizon_lookups.with_label_values(&["error"]).inc();
                        tracing::warn!(partition, error = %e, "cannot look up a suspect event id in ClickHouse; the partition waits");
                    }
                }
                if !backoff.wait(&stop).await {
                    return;
                }
            }
        });
    }

    /// ClickHouse answered about a suspect: the partition's records go on.
    pub(super) fn on_settled(&mut self, settled: Settled) {
        let Some(state) = self.partitions.get_mut(&settled.partition) else {
            return;
        };
        if state.lease.epoch != settled.epoch {
            return;
        }
        state.looking_up = false;
        let verdict = if settled.written.is_some() {
            "duplicate"
        } else {
            "fresh"
        };
        self.metrics
            .horizon_lookups
            .with_label_values(&[verdict])
            .inc();
        state.ids.settle(settled.id, settled.written);
        self.unpark(settled.partition);
    }
}
