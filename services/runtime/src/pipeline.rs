//! The pipeline loop: records in, rows out, offsets committed only after ClickHouse has
//! the rows.
//!
//! One task owns all partition state and `select!`s over, in priority order: shutdown,
//! assignment changes, finished flushes, new records (only while no partition is
//! backpressured), and a ticker that flushes batches by age. Inserts run as spawned tasks,
//! at most one per partition so a partition's batches land in offset order.
//!
//! Per record: framing and size → writer schema → decode → validate → upstream-retry dedup
//! → pseudonymise → the service's `row`. Rejections go to the dead-letter topic; their
//! delivery is awaited before the batch that contains them is inserted, so a watermark in
//! ClickHouse never covers an undelivered dead letter (one that can never be delivered is
//! counted and logged by [`DeadLetterSink`] instead of stalling the partition).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::consumer::{CommitMode, Consumer};
use rdkafka::{Offset, TopicPartitionList};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::codec::{self, Registry};
use crate::config::Config;
use crate::decode::{Decoder, Outcome};
use crate::dedup::EventIdWindow;
use crate::dlq::{self, DeadLetter, DeadLetterReason, DeadLetterSink};
use crate::enrich::follow::{Feed, Update};
use crate::enrich::{Dimension, Dimensions};
use crate::metrics::Metrics;
use crate::segment::FanStates;
use crate::sink::Sink;
use crate::source::{Control, Record, SourceHandle};
use crate::stream::{History, Stream};

/// Records of one partition since the last flush: a contiguous offset range.
struct Batch<R> {
    rows: Vec<R>,
    dead_letters: Vec<dlq::Pending>,
    first_offset: i64,
    last_offset: i64,
    bytes: usize,
    opened: Option<Instant>,
    newest_server_time: i64,
}

impl<R> Batch<R> {
    fn new() -> Self {
        Batch {
            rows: Vec::new(),
            dead_letters: Vec::new(),
            first_offset: -1,
            last_offset: -1,
            bytes: 0,
            opened: None,
            newest_server_time: 0,
        }
    }

    fn is_empty(&self) -> bool {
        self.opened.is_none()
    }

    fn extend_to(&mut self, offset: i64, bytes: usize) {
        if self.opened.is_none() {
            self.opened = Some(Instant::now());
            self.first_offset = offset;
        }
        self.last_offset = offset;
        self.bytes += bytes;
    }
}

struct PartitionState<R> {
    epoch: u64,
    watermark: i64,
    /// Next offset to commit: everything before it is in ClickHouse (or dead-lettered).
    done_up_to: Option<i64>,
    batch: Batch<R>,
    in_flight: Option<CancellationToken>,
    ids: EventIdWindow,
    fans: FanStates,
}

/// Reported by a flush task.
struct Flushed {
    partition: i32,
    epoch: u64,
    ok: bool,
    next_offset: i64,
    rows: usize,
    bytes: usize,
    newest_server_time: i64,
}

/// One service's pipeline.
pub struct Pipeline<S: Stream> {
    stream: S,
    cfg: Arc<Config>,
    topic: &'static str,
    metrics: Arc<Metrics>,
    registry: Arc<Registry>,
    decoder: Decoder,
    dims: Dimensions,
    sink: Sink,
    dead_letters: DeadLetterSink,
    partitions: HashMap<i32, PartitionState<S::Row>>,
    flushed_tx: mpsc::UnboundedSender<Flushed>,
    flushed_rx: mpsc::UnboundedReceiver<Flushed>,
    newest_written_server_time: i64,
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

impl<S: Stream> Pipeline<S> {
    /// Wires a pipeline; nothing runs until [`Pipeline::run`].
    #[allow(clippy::too_many_arguments)] // plain wiring, called once by service::run
    pub fn new(
        stream: S,
        cfg: Arc<Config>,
        topic: String,
        metrics: Arc<Metrics>,
        registry: Arc<Registry>,
        dims: Dimensions,
        sink: Sink,
        dead_letters: DeadLetterSink,
    ) -> Self {
        for d in Dimension::ALL {
            metrics.dimension_missing.with_label_values(&[d.as_str()]);
            metrics.dimension_updates.with_label_values(&[d.as_str()]);
            metrics.dimension_rejected.with_label_values(&[d.as_str()]);
        }
        for reason in DeadLetterReason::ALL {
            metrics.dead_letters.with_label_values(&[reason.as_str()]);
        }
        for kind in ["event_id", "redelivery"] {
            metrics.dedup_dropped.with_label_values(&[kind]);
        }
        metrics.written.with_label_values(&[sink.table()]);
        for class in ["transient", "permanent"] {
            metrics
                .insert_errors
                .with_label_values(&[sink.table(), class]);
        }
        for kind in ["assign", "revoke"] {
            metrics.rebalances.with_label_values(&[kind]);
        }
        let (flushed_tx, flushed_rx) = mpsc::unbounded_channel();
        // Interned once: every row references it without an allocation.
        let topic: &'static str = Box::leak(topic.into_boxed_str());
        Pipeline {
            decoder: Decoder::new(registry.clone(), &cfg, topic),
            dims,
            stream,
            cfg,
            topic,
            metrics,
            registry,
            sink,
            dead_letters,
            partitions: HashMap::new(),
            flushed_tx,
            flushed_rx,
            newest_written_server_time: 0,
        }
    }

    /// Runs until `shutdown`, then drains: flushes and commits every partition within the
    /// drain timeout and leaves the group.
    pub async fn run(
        mut self,
        mut source: SourceHandle,
        mut feed: Feed,
        shutdown: CancellationToken,
    ) {
        let mut ticker = tokio::time::interval(Duration::from_millis(100));
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let intake_open = !self.backpressured();
            tokio::select! {
                biased;
                _ = shutdown.cancelled() => break,
                Some(control) = source.control.recv() => self.on_control(control, &source, &shutdown).await,
                Some(flushed) = self.flushed_rx.recv() => self.on_flushed(flushed, &source),
                Some(updates) = feed.updates.recv() => self.on_dimensions(updates),
                Some(chunk) = source.records.recv(), if intake_open => self.on_chunk(chunk).await,
                _ = ticker.tick() => self.on_tick(),
            }
        }
        tracing::info!("draining before exit");
        source.stop_fetching();
        let all: Vec<i32> = self.partitions.keys().copied().collect();
        let deadline = Instant::now() + self.cfg.kafka.drain_timeout;
        let drained = self.drain(&all, deadline, &source).await;
        self.commit_and_forget(&all, &source, drained);
        source.close();
        // Leaving the group revokes; answer (nothing is pending) until the thread is gone.
        while !source.is_finished() {
            tokio::select! {
                Some(control) = source.control.recv() => {
                    if let Control::Revoked { done, .. } = control {
                        let _ = done.send(());
                    }
                }
                _ = tokio::time::sleep(Duration::from_millis(20)) => {}
            }
        }
        source.join();
        tracing::info!(drained, "pipeline stopped");
    }

    fn backpressured(&self) -> bool {
        let max_rows = self.cfg.batch.max_rows;
        let max_bytes = self.cfg.batch.max_bytes;
        self.partitions.values().any(|p| {
            p.in_flight.is_some() && (p.batch.rows.len() >= max_rows || p.batch.bytes >= max_bytes)
        })
    }

    async fn on_control(
        &mut self,
        control: Control,
        source: &SourceHandle,
        shutdown: &CancellationToken,
    ) {
        match control {
            Control::Assigned(assigned) => {
                for (partition, epoch) in assigned {
                    self.restore(partition, epoch, shutdown).await;
                }
                self.metrics.set_ready(true);
            }
            Control::Revoked { partitions, done } => {
                let deadline = Instant::now() + self.cfg.kafka.drain_timeout;
                let drained = self.drain(&partitions, deadline, source).await;
                self.commit_and_forget(&partitions, source, drained);
                let _ = done.send(());
            }
        }
    }

    /// Applies dimension updates between records: later events see the new values.
    fn on_dimensions(&mut self, updates: Vec<Update>) {
        let mut touched = [false; 7];
        for u in updates {
            touched[u.dimension as usize] = true;
            self.dims.apply(u.dimension, &u.key, u.record);
        }
        for d in Dimension::ALL {
            if touched[d as usize] {
                self.metrics
                    .dimension_records
                    .with_label_values(&[d.as_str()])
                    .set(self.dims.len(d) as i64);
            }
        }
    }

    /// Learns what ClickHouse already has for `partition` — its offset watermark, the
    /// event ids of the dedup window, and the segmentation state of its fans — and lets
    /// the stream restore its own state; retries until ClickHouse answers.
    async fn restore(&mut self, partition: i32, epoch: u64, shutdown: &CancellationToken) {
        let mut backoff = self.cfg.retry.initial_backoff;
        let window_ms = self.cfg.dedup.window.as_millis() as i64;
        loop {
            let restored = async {
                let wm = self.sink.watermark(partition).await?;
                let (ids, fan_months) = if wm.offset >= 0 {
                    (
                        self.sink
                            .recent_event_ids(partition, wm.server_time_ms - window_ms)
                            .await?,
                        self.sink.fan_months(partition).await?,
                    )
                } else {
                    (Vec::new(), Vec::new())
                };
                let history = History {
                    client: self.sink.client(),
                    table: self.sink.table(),
                    topic: self.topic,
                    partition,
                    watermark_offset: wm.offset,
                    watermark_server_time: wm.server_time_ms,
                };
                self.stream.restore(&history).await?;
                Ok::<_, clickhouse::error::Error>((wm, ids, fan_months))
            };
            match restored.await {
                Ok((wm, ids, fan_months)) => {
                    let mut window = EventIdWindow::new(window_ms);
                    for id in &ids {
                        window.insert(*id, wm.server_time_ms);
                    }
                    let mut fans = FanStates::default();
                    for m in &fan_months {
                        let n = u32::try_from(m.interactions).unwrap_or(u32::MAX);
                        fans.restore(m.fan_id, m.month, n, m.last_event_time);
                    }
                    tracing::info!(
                        partition,
                        watermark = wm.offset,
                        ids = ids.len(),
                        fans = fans.len(),
                        "partition state restored"
                    );
                    self.partitions.insert(
                        partition,
                        PartitionState {
                            epoch,
                            watermark: wm.offset,
                            batch: Batch::new(),
                            in_flight: None,
                            done_up_to: None,
                            ids: window,
                            fans,
                        },
                    );
                    return;
                }
                Err(e) => {
                    self.metrics.set_ready(false);
                    tracing::warn!(partition, error = %e, retry_in = ?backoff, "cannot read partition watermark from ClickHouse");
                }
            }
            tokio::select! {
                _ = tokio::time::sleep(backoff) => {}
                _ = shutdown.cancelled() => return,
            }
            backoff = (backoff * 2).min(self.cfg.retry.max_backoff);
        }
    }

    async fn on_chunk(&mut self, chunk: Vec<Record>) {
        let now = now_ms();
        for record in &chunk {
            if let Some(payload) = record.payload.as_deref() {
                self.ensure_schema(payload).await;
            }
            self.on_record(record, now);
        }
    }

    /// Fetches an unknown writer schema before the hot path needs it.
    async fn ensure_schema(&self, payload: &[u8]) {
        let Ok((id, _)) = codec::split_frame(payload) else {
            return;
        };
        if self.registry.cached(id).is_some() {
            return;
        }
        let mut backoff = self.cfg.retry.initial_backoff;
        loop {
            let registry = self.registry.clone();
            match tokio::task::spawn_blocking(move || registry.fetch_blocking(id)).await {
                Ok(Ok(_)) => return, // found, or known not to exist (dead-lettered below)
                Ok(Err(e)) => tracing::warn!(id, error = %e, "schema registry unavailable"),
                Err(e) => tracing::error!(error = %e, "schema fetch task failed"),
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(self.cfg.retry.max_backoff);
        }
    }

    fn on_record(&mut self, record: &Record, now: i64) {
        let Some(state) = self.partitions.get_mut(&record.partition) else {
            return;
        };
        if record.epoch != state.epoch {
            return; // fetched under an earlier assignment
        }
        let bytes = record.payload.as_ref().map_or(0, Vec::len);
        state.batch.extend_to(record.offset, bytes);
        if record.offset <= state.watermark {
            self.metrics
                .dedup_dropped
                .with_label_values(&["redelivery"])
                .inc();
            return;
        }
        let outcome = self.decoder.decode_row(
            &mut self.stream,
            record,
            &mut state.ids,
            &mut state.fans,
            &self.dims,
            now,
        );
        match outcome {
            Outcome::Row(row, server_time) => {
                state.batch.rows.push(row);
                state.batch.newest_server_time = state.batch.newest_server_time.max(server_time);
            }
            Outcome::Duplicate => {
                self.metrics
                    .dedup_dropped
                    .with_label_values(&["event_id"])
                    .inc();
            }
            Outcome::Rejected(rejection) => {
                self.metrics
                    .dead_letters
                    .with_label_values(&[rejection.reason.as_str()])
                    .inc();
                let letter = DeadLetter {
                    reason: rejection.reason,
                    detail: &rejection.detail,
                    source_topic: self.topic,
                    source_partition: record.partition,
                    source_offset: record.offset,
                    source_key: record.key.as_deref(),
                    service: S::SERVICE,
                    first_seen: now,
                    payload: record.payload.as_deref().unwrap_or_default(),
                };
                state
                    .batch
                    .dead_letters
                    .push(self.dead_letters.send(&letter));
            }
        }
        if self.batch_full(record.partition) {
            self.start_flush(record.partition);
        }
    }

    fn batch_full(&self, partition: i32) -> bool {
        self.partitions.get(&partition).is_some_and(|p| {
            p.batch.rows.len() >= self.cfg.batch.max_rows
                || p.batch.bytes >= self.cfg.batch.max_bytes
        })
    }

    fn on_tick(&mut self) {
        let max_age = self.cfg.batch.max_age;
        let due: Vec<i32> = self
            .partitions
            .iter()
            .filter(|(_, p)| p.batch.opened.is_some_and(|t| t.elapsed() >= max_age))
            .map(|(k, _)| *k)
            .collect();
        for partition in due {
            self.start_flush(partition);
        }
        let fans: usize = self.partitions.values().map(|p| p.fans.len()).sum();
        self.metrics.fans_tracked.set(fans as i64);
        if self.newest_written_server_time > 0 {
            let lag = (now_ms() - self.newest_written_server_time).max(0) as f64 / 1000.0;
            self.metrics.freshness_seconds.set(lag);
        }
    }

    /// Hands the partition's batch to an insert task, unless one is already in flight.
    fn start_flush(&mut self, partition: i32) {
        let Some(state) = self.partitions.get_mut(&partition) else {
            return;
        };
        if state.in_flight.is_some() || state.batch.is_empty() {
            return;
        }
        let batch = std::mem::replace(&mut state.batch, Batch::new());
        let cancel = CancellationToken::new();
        state.in_flight = Some(cancel.clone());
        let epoch = state.epoch;
        let token = self
            .sink
            .dedup_token(partition, batch.first_offset, batch.last_offset);
        let sink = self.sink.clone();
        let metrics = self.metrics.clone();
        let dead_letter_sink = self.dead_letters.clone();
        let in_flight = self.metrics.flush_started(partition);
        let done = self.flushed_tx.clone();
        tokio::spawn(async move {
            let _in_flight = in_flight;
            let Batch {
                rows,
                dead_letters,
                last_offset,
                bytes,
                newest_server_time,
                ..
            } = batch;
            let mut ok = dead_letter_sink.deliver_all(dead_letters, &cancel).await;
            if ok && !rows.is_empty() {
                ok = sink.insert(&rows, &token, &metrics, &cancel).await;
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

    fn on_flushed(&mut self, f: Flushed, source: &SourceHandle) {
        let Some(state) = self.partitions.get_mut(&f.partition) else {
            return;
        };
        if state.epoch != f.epoch {
            return;
        }
        state.in_flight = None;
        if !f.ok {
            return;
        }
        state.done_up_to = Some(f.next_offset);
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
            f.next_offset,
            CommitMode::Async,
        );
        if self.batch_full(f.partition) {
            self.start_flush(f.partition);
        }
    }

    /// Flushes `partitions` until nothing is pending or `deadline`; `false` on timeout.
    async fn drain(
        &mut self,
        partitions: &[i32],
        deadline: Instant,
        source: &SourceHandle,
    ) -> bool {
        loop {
            for p in partitions {
                self.start_flush(*p);
            }
            let pending = partitions.iter().any(|p| {
                self.partitions
                    .get(p)
                    .is_some_and(|s| s.in_flight.is_some() || !s.batch.is_empty())
            });
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
    fn commit_and_forget(&mut self, partitions: &[i32], source: &SourceHandle, drained: bool) {
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
            // re-reading records only to skip them by watermark.
            if let Some(next) = state.done_up_to {
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
