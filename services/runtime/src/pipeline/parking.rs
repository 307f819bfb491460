//! Parking: a record whose writer schema is not cached waits — and every later record of
//! its partition behind it, in order — while a task fetches the schema; other partitions go
//! on, and the loop never blocks on the registry.

use super::{now_ms, Pipeline};
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
            self.on_record(&record, now);
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
        let now = now_ms();
        let partitions: Vec<i32> = self
            .partitions
            .iter()
            .filter(|(_, p)| !p.parked.is_empty())
            .map(|(k, _)| *k)
            .collect();
        for partition in partitions {
            let Some(state) = self.partitions.get_mut(&partition) else {
                continue;
            };
            let parked = std::mem::take(&mut state.parked);
            state.parked_bytes = 0;
            for record in parked {
                self.admit(record, now);
            }
        }
    }
}
