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
//! ClickHouse never covers an undelivered dead letter.
//!
//! Nothing here waits on an outside service inside the loop, so revokes and shutdown are
//! always answered: a record whose writer schema is not cached yet *parks* its partition
//! (later records of that partition queue behind it, other partitions go on) while a task
//! fetches the schema; restores give up when the partition's lease ends; every write
//! checks the lease (see `source.rs`).

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord};
use rdkafka::{Offset, TopicPartitionList};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::codec::{self, Known, Registry};
use crate::config::Config;
use crate::decode::{Decoder, Outcome};
use crate::dedup::EventIdWindow;
use crate::dlq::{DeadLetter, DeadLetterReason};
use crate::enrich::follow::{Feed, Update};
use crate::enrich::{Dimension, Dimensions};
use crate::metrics::Metrics;
use crate::retry::Backoff;
use crate::segment::{FanBudget, FanLimits, FanStates};
use crate::sink::{Intent, Sink};
use crate::source::{Control, Lease, Record, SourceHandle};
use crate::stream::{History, Stream};

/// A dead letter on its way to the topic.
struct PendingDeadLetter {
    delivery: Option<DeliveryFuture>,
    envelope: Vec<u8>,
    key: Option<Vec<u8>>,
}

/// Records of one partition since the last flush: a contiguous offset range.
struct Batch<R> {
    rows: Vec<R>,
    dead_letters: Vec<PendingDeadLetter>,
    first_offset: i64,
    last_offset: i64,
    bytes: usize,
    opened: Option<Instant>,
    oldest_server_time: i64,
    newest_server_time: i64,
    /// Kafka timestamp of the record at `last_offset`.
    last_record_time: i64,
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
            oldest_server_time: i64::MAX,
            newest_server_time: 0,
            last_record_time: -1,
        }
    }

    fn is_empty(&self) -> bool {
        self.opened.is_none()
    }

    fn extend_to(&mut self, offset: i64, record_time: i64, bytes: usize) {
        if self.opened.is_none() {
            self.opened = Some(Instant::now());
            self.first_offset = offset;
        }
        self.last_offset = offset;
        self.last_record_time = record_time;
        self.bytes += bytes;
    }
}

struct PartitionState<R> {
    lease: Lease,
    watermark: i64,
    /// Next offset to commit: everything before it is in ClickHouse (or dead-lettered).
    done_up_to: Option<i64>,
    batch: Batch<R>,
    in_flight: Option<CancellationToken>,
    ids: EventIdWindow,
    fans: FanStates,
    /// Records waiting, in offset order, for a writer schema the registry has not given
    /// yet; while any wait, every later record of the partition queues behind them.
    parked: VecDeque<Record>,
    parked_bytes: usize,
    /// The previous owner's announced batch whose raw rows never landed: the first batch
    /// is cut to exactly its range, so it carries the same dedup token.
    replay: Option<Intent>,
    /// Kafka's log is not the one the watermark was written from (topic re-created,
    /// another cluster): records are neither skipped nor written until an operator resets
    /// the partition's ingest state.
    held: bool,
    /// Resets of the partition's ingest state: part of every dedup token.
    incarnation: u64,
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
    producer: FutureProducer,
    partitions: HashMap<i32, PartitionState<S::Row>>,
    flushed_tx: mpsc::UnboundedSender<Flushed>,
    flushed_rx: mpsc::UnboundedReceiver<Flushed>,
    schema_tx: mpsc::UnboundedSender<u32>,
    schema_rx: mpsc::UnboundedReceiver<u32>,
    /// Schema ids a fetch task is working on.
    fetching: HashSet<u32>,
    /// Reads single records to check a log's identity on assignment.
    probe: Option<Arc<BaseConsumer>>,
    shutdown: CancellationToken,
    newest_written_server_time: i64,
    /// `segment.max_fans` and `max_dormant_fans`, shared by the partitions' fan states.
    fan_budget: FanBudget,
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
        producer: FutureProducer,
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
        let (schema_tx, schema_rx) = mpsc::unbounded_channel();
        // Interned once: every row references it without an allocation.
        let topic: &'static str = Box::leak(topic.into_boxed_str());
        Pipeline {
            decoder: Decoder::new(registry.clone(), &cfg, topic),
            fan_budget: FanBudget::new(FanLimits::from_config(&cfg), &metrics.fans_evicted),
            dims,
            stream,
            cfg,
            topic,
            metrics,
            registry,
            sink,
            producer,
            partitions: HashMap::new(),
            flushed_tx,
            flushed_rx,
            schema_tx,
            schema_rx,
            fetching: HashSet::new(),
            probe: None,
            shutdown: CancellationToken::new(),
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
        self.shutdown = shutdown.clone();
        let mut ticker = tokio::time::interval(Duration::from_millis(100));
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let intake_open = !self.backpressured();
            tokio::select! {
                biased;
                _ = shutdown.cancelled() => break,
                Some(control) = source.control.recv() => self.on_control(control, &source).await,
                Some(flushed) = self.flushed_rx.recv() => self.on_flushed(flushed, &source),
                Some(id) = self.schema_rx.recv() => self.on_schema(id),
                Some(updates) = feed.updates.recv() => self.on_dimensions(updates),
                Some(chunk) = source.records.recv(), if intake_open => self.on_chunk(chunk),
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
                || p.parked.len() >= max_rows
                || p.parked_bytes >= max_bytes
        })
    }

    async fn on_control(&mut self, control: Control, source: &SourceHandle) {
        match control {
            Control::Assigned(assigned) => {
                for lease in assigned {
                    self.restore(lease, source).await;
                }
                self.metrics.set_ready(!self.shutdown.is_cancelled());
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

    /// Learns what ClickHouse already has for the leased partition — first repairing the
    /// previous owner's in-flight batch (see `sink.rs`), then its offset watermark, the
    /// event ids of the dedup window and the segmentation state of its fans — and lets the
    /// stream restore its own state. Retries until ClickHouse answers, the lease ends or
    /// the service shuts down.
    async fn restore(&mut self, lease: Lease, source: &SourceHandle) {
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
        let mut window = EventIdWindow::new(window_ms)
            .capped(self.cfg.dedup.max_ids, self.metrics.ids_evicted.clone());
        for id in &ids {
            window.insert(*id, wm.server_time_ms);
        }
        let mut fans = FanStates::bounded(&self.fan_budget);
        for m in &fan_months {
            let n = u32::try_from(m.interactions).unwrap_or(u32::MAX);
            fans.restore(m.fan_id, m.month, n, m.last_event_time);
        }
        tracing::info!(
            partition,
            watermark = wm.offset,
            ids = ids.len(),
            fans = fans.len(),
            replay = ?replay.as_ref().map(|i| (i.first_offset, i.last_offset)),
            held,
            "partition state restored"
        );
        Ok(PartitionState {
            lease: lease.clone(),
            watermark: wm.offset,
            batch: Batch::new(),
            in_flight: None,
            done_up_to: None,
            ids: window,
            fans,
            parked: VecDeque::new(),
            parked_bytes: 0,
            replay,
            held,
            incarnation,
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
        let mut config = crate::source::client_config(&self.cfg.kafka, "wxpulse-probe");
        config.set("enable.partition.eof", "true");
        let probe: Arc<BaseConsumer> = Arc::new(config.create()?);
        self.probe = Some(probe.clone());
        Ok(probe)
    }

    fn on_chunk(&mut self, chunk: Vec<Record>) {
        let now = now_ms();
        for record in chunk {
            self.admit(record, now);
        }
    }

    /// Processes a record now, or parks it behind its partition's parked records or until
    /// its writer schema is fetched.
    fn admit(&mut self, record: Record, now: i64) {
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
    fn on_schema(&mut self, id: u32) {
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

    fn on_record(&mut self, record: &Record, now: i64) {
        let Some(state) = self.partitions.get_mut(&record.partition) else {
            return;
        };
        let mut replay_ends = false;
        if let Some(replay) = &state.replay {
            if record.offset < replay.first_offset {
                return; // below the replayed batch: already in (its commit covers it)
            }
            if record.offset > replay.last_offset {
                // The range's last records are gone from the log: cut the batch where the
                // previous owner did, so it keeps the announced token.
                let (last, last_time) = (replay.last_offset, replay.last_record_time);
                state.replay = None;
                if !state.batch.is_empty() {
                    state.batch.last_offset = last;
                    state.batch.last_record_time = last_time;
                    self.start_flush(record.partition);
                }
                self.on_record(record, now);
                return;
            }
            if state.batch.is_empty() {
                state.batch.extend_to(replay.first_offset, -1, 0);
            }
            replay_ends = record.offset == replay.last_offset;
        }
        let bytes = record.payload.as_ref().map_or(0, Vec::len);
        state
            .batch
            .extend_to(record.offset, record.timestamp, bytes);
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
                state.batch.oldest_server_time = state.batch.oldest_server_time.min(server_time);
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
                let envelope = letter.encode();
                let mut produced =
                    FutureRecord::to(&self.cfg.kafka.dead_letter_topic).payload(&envelope);
                if let Some(key) = record.key.as_deref() {
                    produced = produced.key(key);
                }
                let delivery = self.producer.send_result(produced).ok();
                state.batch.dead_letters.push(PendingDeadLetter {
                    delivery,
                    envelope,
                    key: record.key.clone(),
                });
            }
        }
        if replay_ends {
            if let Some(state) = self.partitions.get_mut(&record.partition) {
                state.replay = None;
            }
            self.start_flush(record.partition);
        } else if self.batch_full(record.partition) {
            self.start_flush(record.partition);
        }
    }

    /// Whether the batch should be cut by size; a replayed batch is only cut at its end.
    fn batch_full(&self, partition: i32) -> bool {
        self.partitions.get(&partition).is_some_and(|p| {
            p.replay.is_none()
                && (p.batch.rows.len() >= self.cfg.batch.max_rows
                    || p.batch.bytes >= self.cfg.batch.max_bytes)
        })
    }

    fn on_tick(&mut self) {
        let max_age = self.cfg.batch.max_age;
        let due: Vec<i32> = self
            .partitions
            .iter()
            .filter(|(_, p)| {
                p.replay.is_none() && p.batch.opened.is_some_and(|t| t.elapsed() >= max_age)
            })
            .map(|(k, _)| *k)
            .collect();
        for partition in due {
            self.start_flush(partition);
        }
        let fans: usize = self.partitions.values().map(|p| p.fans.len()).sum();
        self.metrics.fans_tracked.set(fans as i64);
        let dormant: usize = self.partitions.values().map(|p| p.fans.dormant_len()).sum();
        self.metrics.dormant_fans.set(dormant as i64);
        let ids: usize = self.partitions.values().map(|p| p.ids.len()).sum();
        self.metrics.ids_tracked.set(ids as i64);
        let parked: usize = self.partitions.values().map(|p| p.parked.len()).sum();
        self.metrics.parked_records.set(parked as i64);
        let held = self.partitions.values().filter(|p| p.held).count();
        self.metrics.offset_resets.set(held as i64);
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
        if !state.lease.is_held() {
            // Revoked while we were busy: the next owner re-reads these records.
            state.batch = Batch::new();
            return;
        }
        if state.in_flight.is_some() || state.batch.is_empty() {
            return;
        }
        let batch = std::mem::replace(&mut state.batch, Batch::new());
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
        let producer = self.producer.clone();
        let dlq_topic = self.cfg.kafka.dead_letter_topic.clone();
        let backoff = (self.cfg.retry.initial_backoff, self.cfg.retry.max_backoff);
        let retry = self.cfg.retry.clone();
        let done = self.flushed_tx.clone();
        tokio::spawn(async move {
            let Batch {
                rows,
                dead_letters,
                last_offset,
                bytes,
                newest_server_time,
                ..
            } = batch;
            let mut ok = deliver(&producer, &dlq_topic, dead_letters, backoff, &cancel).await;
            if ok && !rows.is_empty() {
                ok = announce(&sink, &retry, partition, &intent, &cancel).await
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

    fn on_flushed(&mut self, f: Flushed, source: &SourceHandle) {
        let Some(state) = self.partitions.get_mut(&f.partition) else {
            return;
        };
        if state.lease.epoch != f.epoch {
            return;
        }
        state.in_flight = None;
        if !f.ok || !state.lease.is_held() {
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
            // re-reading records only to skip them by watermark. Not once the lease ended:
            // the next owner may have committed further already.
            if !state.lease.is_held() {
                continue;
            }
            if let Some(next) = state.done_up_to {
                commit(source, self.topic, *p, next, CommitMode::Sync);
            }
        }
    }
}

/// The group's committed offset of `partition` (the next to read), if it has one.
async fn committed_offset(
    source: &SourceHandle,
    topic: &'static str,
    partition: i32,
) -> Option<i64> {
    let consumer = source.consumer.clone();
    let committed = tokio::task::spawn_blocking(move || {
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition(topic, partition);
        consumer.committed_offsets(tpl, Duration::from_secs(10))
    })
    .await
    .ok()?
    .ok()?;
    match committed.find_partition(topic, partition)?.offset() {
        Offset::Offset(next) => Some(next),
        _ => None,
    }
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

/// Records the batch's range and token in ClickHouse before its insert, retrying until it
/// is written or the lease ends (`cancel`).
async fn announce(
    sink: &Sink,
    retry: &crate::config::RetryConfig,
    partition: i32,
    intent: &Intent,
    cancel: &CancellationToken,
) -> bool {
    let mut backoff = Backoff::new(retry);
    loop {
        if cancel.is_cancelled() {
            return false;
        }
        let written = tokio::select! {
            r = sink.write_intent(partition, intent) => r,
            _ = cancel.cancelled() => return false,
        };
        match written {
            Ok(()) => return !cancel.is_cancelled(),
            Err(e) => {
                tracing::warn!(partition, token = intent.dedup_token, error = %e, "cannot record the batch's intent; retrying")
            }
        }
        if !backoff.wait(cancel).await {
            return false;
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

/// Awaits every dead letter's delivery, re-producing failed ones with backoff.
async fn deliver(
    producer: &FutureProducer,
    topic: &str,
    letters: Vec<PendingDeadLetter>,
    (initial, max): (Duration, Duration),
    cancel: &CancellationToken,
) -> bool {
    for letter in letters {
        let mut delivered = match letter.delivery {
            Some(f) => matches!(f.await, Ok(Ok(_))),
            None => false,
        };
        let mut backoff = initial;
        while !delivered {
            let mut record = FutureRecord::to(topic).payload(&letter.envelope);
            if let Some(key) = letter.key.as_deref() {
                record = record.key(key);
            }
            tokio::select! {
                r = producer.send(record, Duration::from_secs(30)) => delivered = r.is_ok(),
                _ = cancel.cancelled() => return false,
            }
            if !delivered {
                tracing::warn!(topic, retry_in = ?backoff, "dead letter not delivered; retrying");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(max);
            }
        }
    }
    true
}
