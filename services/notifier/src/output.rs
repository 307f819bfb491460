//! The two outputs of a flush: rows into ClickHouse, then records to the topic, each
//! retried until it succeeds (or shutdown), so the input offsets are committed only after
//! both.

use std::collections::HashSet;

use anyhow::Context as _;
use rdkafka::producer::FutureRecord;
use wxpulse_runtime::codec;
use wxpulse_runtime::retry::Backoff;

use crate::notification::NotificationRow;
use crate::run::{Engine, Pending};

impl Engine {
    /// Inserts the rows, retrying until it succeeds; `false` on shutdown.
    pub(crate) fn store(&self, pending: &[Pending]) -> bool {
        let mut backoff = Backoff::new(&self.config.retry);
        loop {
            let attempt = self.handle.block_on(async {
                let mut insert = self
                    .client
                    .insert::<NotificationRow>("notifications")
                    .await?;
                for p in pending {
                    insert.write(&p.row).await?;
                }
                insert.end().await
            });
            match attempt {
                Ok(()) => return true,
                Err(e) => {
                    self.metrics.errors.with_label_values(&["clickhouse"]).inc();
                    tracing::warn!(error = %e, rows = pending.len(), "notifications insert failed; retrying");
                }
            }
            if self.shutdown.is_cancelled() {
                return false;
            }
            std::thread::sleep(backoff.next_delay());
        }
    }

    /// Produces the records and waits for every acknowledgement, retrying failures;
    /// `false` on shutdown.
    pub(crate) fn produce(&self, pending: &[Pending]) -> anyhow::Result<bool> {
        let topic = &self.config.notifier.topic;
        let (schema_id, schema) = &self.schema;
        let mut left: Vec<usize> = (0..pending.len()).collect();
        let mut backoff = Backoff::new(&self.config.retry);
        while !left.is_empty() {
            let mut waiting = Vec::new();
            for &i in &left {
                let note = &pending[i].notification;
                let mut payload = Vec::with_capacity(512);
                codec::encode_into(note, *schema_id, schema, &mut payload)
                    .context("notification does not fit its schema")?;
                let record = FutureRecord::to(topic)
                    .key(note.associate_userid.as_str())
                    .payload(&payload);
                match self.producer.send_result(record) {
                    Ok(delivery) => waiting.push((i, delivery)),
                    Err((e, _)) => tracing::warn!(error = %e, "notification not queued; retrying"),
                }
            }
            let delivered: HashSet<usize> = self.handle.block_on(async {
                let mut ok = HashSet::new();
                for (i, delivery) in waiting {
                    match delivery.await {
                        Ok(Ok(_)) => {
                            ok.insert(i);
                        }
                        Ok(Err((e, _))) => {
                            tracing::warn!(error = %e, "notification not delivered; retrying")
                        }
                        Err(_) => tracing::warn!("delivery report lost; retrying"),
                    }
                }
                ok
            });
            left.retain(|i| !delivered.contains(i));
            if !left.is_empty() {
                self.metrics.errors.with_label_values(&["kafka"]).inc();
                if self.shutdown.is_cancelled() {
                    return Ok(false);
                }
                std::thread::sleep(backoff.next_delay());
            }
        }
        Ok(true)
    }
}
