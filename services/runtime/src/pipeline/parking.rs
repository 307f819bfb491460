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

/// How many records parked behind a suspect are searched for more suspects to look up
/// with it (each costs a decode, ~0.2 µs).
const SCAN_PARKED: usize = 20_000;
/// Most suspect ids asked in one query.
const MAX_SUSPECTS: usize = 500;

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
        self.look_up_suspects(now);
    }

    /// Starts the lookups of the suspects found while admitting records.
    pub(super) fn look_up_suspects(&mut self, now: i64) {
        for (partition, id, server_time) in std::mem::take(&mut self.suspects) {
            self.look_up(partition, id, server_time, now);
        }
    }

    /// Starts a task that asks ClickHouse whether suspect `id` (the record first in
    /// `partition`'s line) is written, with a server time within the horizon of its own,
    /// until it answers or the lease ends; one lookup per partition at a time. The
    /// suspects parked behind it (the first [`SCAN_PARKED`] records, at most
    /// [`MAX_SUSPECTS`] ids) are asked in the same query: in a backlog every suspect
    /// would otherwise hold the partition for a round trip of its own. An id whose key was
    /// diverted since the partition was restored counts as "not written" only once the
    /// overflow lane has written what was diverted before the question (its original may
    /// be in the lane's backlog).
    fn look_up(&mut self, partition: i32, id: u128, server_time: i64, now: i64) {
        let Some(state) = self.partitions.get_mut(&partition) else {
            return;
        };
        if state.looking_up {
            return;
        }
        state.looking_up = true;
        let horizon = self.cfg.dedup.horizon.as_millis() as i64;
        let mut suspects = vec![(id, server_time.saturating_sub(horizon))];
        let hot = self.overflow.is_some();
        let mut lane = hot
            && state
                .parked
                .front()
                .is_some_and(|r| state.hot.diverted_key(r.key.as_deref()));
        for record in state.parked.iter().skip(1).take(SCAN_PARKED) {
            if suspects.len() >= MAX_SUSPECTS {
                break;
            }
            let Some((id, t)) =
                self.decoder
                    .suspect_id(&self.stream, record, &state.ids, &self.dims, now)
            else {
                continue;
            };
            if suspects.iter().any(|(known, _)| *known == id) {
                continue;
            }
            suspects.push((id, t.saturating_sub(horizon)));
            lane |= hot && state.hot.diverted_key(record.key.as_deref());
        }
        let since = suspects.iter().map(|(_, since)| *since).min().unwrap_or(0);
        let ids: Vec<u128> = suspects.iter().map(|(id, _)| *id).collect();
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
                metrics.horizon_queries.inc();
                match sink.written_event_ids(&ids, since).await {
                    Ok(found) => {
                        if let Some(l) = lane.take().filter(|_| found.len() < ids.len()) {
                            let what = "settling a suspect event id";
                            if !l.caught_up(partition, what, &stop, &shutdown).await {
                                return;
                            }
                            continue; // asked again now that the lane has caught up
                        }
                        let answers = suspects
                            .iter()
                            .map(|(id, since)| {
                                let written = found
                                    .iter()
                                    .find(|(f, t)| f == id && t >= since)
                                    .map(|(_, t)| *t);
                                (*id, written)
                            })
                            .collect();
                        let _ = done.send(Settled {
                            partition,
                            epoch,
                            answers,
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
        for (id, written) in settled.answers {
            let verdict = if written.is_some() {
                "duplicate"
            } else {
                "fresh"
            };
            self.metrics
                .horizon_lookups
                .with_label_values(&[verdict])
                .inc();
            state.ids.settle(id, written);
        }
        self.unpark(settled.partition);
        // Answers for records that never reached dedup would otherwise stay.
        if let Some(state) = self.partitions.get_mut(&settled.partition) {
            if state.parked.is_empty() && !state.looking_up {
                state.ids.forget_settled();
            }
        }
    }
}
