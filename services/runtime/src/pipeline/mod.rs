//! The pipeline loop: records in, rows out, offsets committed only after ClickHouse has
//! the rows.
//!
//! One task owns all partition state and `select!`s over, in priority order: shutdown,
//! assignment changes, finished flushes, new records (only while no partition is
//! backpressured), and a ticker that flushes batches by age. Inserts run as spawned tasks
//! (`flush.rs`), at most one per partition so a partition's batches land in offset order.
//!
//! Per record: framing and size → writer schema → decode → validate → upstream-retry dedup
//! → pseudonymise → the service's `row`. Rejections go to the dead-letter topic; their
//! delivery is awaited before the batch that contains them is inserted, so a watermark in
//! ClickHouse never covers an undelivered dead letter (one that can never be delivered is
//! counted and logged by [`DeadLetterSink`] instead of stalling the partition).
//!
//! Nothing here waits on an outside service inside the loop, so revokes and shutdown are
//! always answered: a record whose writer schema is not cached yet *parks* its partition
//! (later records of that partition queue behind it, other partitions go on) while a task
//! fetches the schema (`parking.rs`); restores (`restore.rs`) give up when the partition's
//! lease ends; every write checks the lease (see `source.rs`). The batch and commit rules
//! are `batch.rs`'s.

mod flush;
mod hot;
mod lane;
mod parking;
mod restore;

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::consumer::BaseConsumer;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::batch::{self, Admission, Limits};
use crate::codec::Registry;
use crate::config::Config;
use crate::decode::{Decoder, Outcome};
use crate::dedup::{Age, EventIds};
use crate::dlq::{self, DeadLetter, DeadLetterReason, DeadLetterSink};
use crate::enrich::follow::{Feed, Update};
use crate::enrich::{Dimension, Dimensions};
use crate::metrics::Metrics;
use crate::overflow::{HotKeys, OverflowSink, Verdict};
use crate::segment::{FanBudget, FanLimits, FanStates};
use crate::sink::Sink;
use crate::source::{Control, Lease, Record, SourceHandle};
use crate::stream::Stream;

struct PartitionState<R> {
    lease: Lease,
    /// Batches and commits (see `batch.rs`).
    ledger: batch::Partition<R, dlq::Pending>,
    /// Cancels the flush in flight when the partition is forgotten.
    in_flight: Option<CancellationToken>,
    ids: EventIds,
    /// A lookup of a suspect event id is in flight (see `parking.rs`).
    looking_up: bool,
    fans: FanStates,
    /// Records waiting, in offset order, for a writer schema the registry has not given
    /// yet; while any wait, every later record of the partition queues behind them.
    parked: VecDeque<Record>,
    parked_bytes: usize,
    /// Kafka's log is not the one the watermark was written from (topic re-created,
    /// another cluster): records are neither skipped nor written until an operator resets
    /// the partition's ingest state.
    held: bool,
    /// Resets of the partition's ingest state: part of every dedup token.
    incarnation: u64,
    /// Counts of the keys in the current window, when hot keys are diverted.
    hot: HotKeys,
    /// The window's counts before its first record are being read from Kafka: records
    /// park meanwhile (see `hot.rs`).
    warming: bool,
    /// Offsets past the watermark whose rows the overflow lane wrote before this owner
    /// (diverted by a batch that was then lost), with their event ids: the record at that
    /// offset with that id is replayed into its fan's segment, never written or diverted
    /// again.
    lane_wrote: HashMap<i64, u128>,
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

/// The counts of a partition's window before its first record here, read from Kafka.
struct Warmed {
    partition: i32,
    epoch: u64,
    window_start: i64,
    counts: std::collections::HashMap<u64, u32>,
}

/// ClickHouse's answers about suspect event ids of one partition.
struct Settled {
    partition: i32,
    epoch: u64,
    /// Each id, with the server time of its written copy, if there is one.
    answers: Vec<(u128, Option<i64>)>,
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
    /// Keyed with `hashbrown`'s fast hasher: looked up twice per record.
    partitions: hashbrown::HashMap<i32, PartitionState<S::Row>>,
    flushed_tx: mpsc::UnboundedSender<Flushed>,
    flushed_rx: mpsc::UnboundedReceiver<Flushed>,
    schema_tx: mpsc::UnboundedSender<u32>,
    schema_rx: mpsc::UnboundedReceiver<u32>,
    /// Suspects found while admitting records, looked up once the records are parked
    /// (partition, event id, server time).
    suspects: Vec<(i32, u128, i64)>,
    settled_tx: mpsc::UnboundedSender<Settled>,
    settled_rx: mpsc::UnboundedReceiver<Settled>,
    /// Schema ids a fetch task is working on.
    fetching: HashSet<u32>,
    /// Reads single records to check a log's identity on assignment.
    probe: Option<Arc<BaseConsumer>>,
    shutdown: CancellationToken,
    newest_written_server_time: i64,
    /// `segment.max_fans` and `max_dormant_fans`, shared by the partitions' fan states.
    fan_budget: FanBudget,
    /// Where hot keys' records go, when `overflow.enabled` on the primary lane.
    overflow: Option<OverflowSink>,
    /// The overflow lane of a primary whose stream has one, enabled or not: a restore reads
    /// back what it wrote (see `restore.rs`).
    lane: Option<lane::Lane>,
    /// With the lane disabled: whether its topic held records when this assignment's
    /// first restore asked (one broker round trip per assignment, not per partition).
    lane_holds: Option<bool>,
    warmed_tx: mpsc::UnboundedSender<Warmed>,
    warmed_rx: mpsc::UnboundedReceiver<Warmed>,
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
        overflow: Option<OverflowSink>,
        lane_group: Option<String>,
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
        for age in Age::ALL {
            metrics.duplicates_by_age.with_label_values(&[age.as_str()]);
        }
        for verdict in ["duplicate", "fresh", "error"] {
            metrics.horizon_lookups.with_label_values(&[verdict]);
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
        let (settled_tx, settled_rx) = mpsc::unbounded_channel();
        let (warmed_tx, warmed_rx) = mpsc::unbounded_channel();
        // Interned once: every row references it without an allocation.
        let topic: &'static str = Box::leak(topic.into_boxed_str());
        let lane = lane_group.map(|group| lane::Lane {
            kafka: cfg.kafka.clone(),
            topic: crate::overflow::topic_of(topic),
            group,
        });
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
            dead_letters,
            partitions: hashbrown::HashMap::new(),
            flushed_tx,
            flushed_rx,
            schema_tx,
            schema_rx,
            suspects: Vec::new(),
            settled_tx,
            settled_rx,
            fetching: HashSet::new(),
            probe: None,
            shutdown: CancellationToken::new(),
            newest_written_server_time: 0,
            lane,
            lane_holds: None,
            overflow,
            warmed_tx,
            warmed_rx,
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
                Some(settled) = self.settled_rx.recv() => self.on_settled(settled),
                Some(warmed) = self.warmed_rx.recv() => self.on_warmed(warmed),
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

    fn limits(&self) -> Limits {
        Limits {
            max_rows: self.cfg.batch.max_rows,
            max_bytes: self.cfg.batch.max_bytes,
            max_age: self.cfg.batch.max_age,
        }
    }

    fn backpressured(&self) -> bool {
        let limits = self.limits();
        self.partitions.values().any(|p| {
            p.ledger.backpressured(&limits)
                || p.parked.len() >= limits.max_rows
                || p.parked_bytes >= limits.max_bytes
        })
    }

    async fn on_control(&mut self, control: Control, source: &SourceHandle) {
        match control {
            Control::Assigned(assigned) => {
                // Asked again for each assignment: a previous owner may have diverted since.
                self.lane_holds = None;
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
        let mut touched = [false; Dimension::COUNT];
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

    fn on_chunk(&mut self, chunk: Vec<Record>) {
        let now = now_ms();
        let mut records = chunk.into_iter();
        loop {
            let partitions = &self.partitions;
            let fans_of = |partition| partitions.get(&partition).map(|p| &p.fans);
            self.decoder
                .look_ahead(&self.dims, fans_of, records.as_slice());
            let Some(record) = records.next() else { break };
            self.admit(record, now);
        }
        self.look_up_suspects(now);
    }

    fn on_record(&mut self, record: Record, now: i64) {
        let Some(state) = self.partitions.get_mut(&record.partition) else {
            return;
        };
        let bytes = record.payload.as_ref().map_or(0, Vec::len);
        match state.ledger.peek(record.offset) {
            Admission::Ignore => return,
            Admission::Redelivery => {
                state.ledger.admit(record.offset, record.timestamp, bytes);
                self.metrics
                    .dedup_dropped
                    .with_label_values(&["redelivery"])
                    .inc();
                self.flush_if_due(record.partition);
                return;
            }
            Admission::Process => {}
        }
        let divert = self.overflow.is_some()
            && match state.hot.decide(record.offset, record.key.as_deref()) {
                Verdict::Keep => false,
                Verdict::Divert => {
                    if let Some(key_hash) = state.hot.take_crossed() {
                        tracing::warn!(
                            partition = record.partition,
                            offset = record.offset,
                            key_hash = format!("{key_hash:016x}"),
                            window_start = state.hot.window_start(),
                            "hot key diverted to the overflow lane for the rest of its window"
                        );
                    }
                    true
                }
                Verdict::Cold { window_start } => {
                    // Counted in the log first, so a replay diverts what this one would.
                    let partition = record.partition;
                    let offset = record.offset;
                    state.parked_bytes += bytes;
                    state.parked.push_back(record);
                    self.warm_up(partition, window_start, offset);
                    return;
                }
            };
        // Its row was written by the lane for an owner that lost the batch: it is counted
        // into its fan's segment here, in its place in the log, and goes nowhere.
        let lane_wrote = match state.lane_wrote.is_empty() {
            true => None,
            false => state.lane_wrote.get(&record.offset).copied(),
        };
        let outcome = self.decoder.decode_row(
            &mut self.stream,
            &record,
            &mut state.ids,
            &mut state.fans,
            &self.dims,
            now,
            divert,
            lane_wrote,
        );
        if let Outcome::Suspect(id, server_time) = outcome {
            // Nothing of it is taken in yet: it waits, first in line, for ClickHouse.
            let partition = record.partition;
            // Its original may be a diverted record the lane has not written yet.
            state.parked_bytes += bytes;
            state.parked.push_back(record);
            // Asked once the chunk is in, with the suspects parked behind it.
            self.suspects.push((partition, id, server_time));
            return;
        }
        state.ledger.admit(record.offset, record.timestamp, bytes);
        if lane_wrote.is_some() {
            state.lane_wrote.remove(&record.offset);
        }
        match outcome {
            Outcome::Row(row, server_time) => {
                let batch = state.ledger.open();
                batch.rows.push(row);
                batch.newest_server_time = batch.newest_server_time.max(server_time);
                batch.oldest_server_time = batch.oldest_server_time.min(server_time);
            }
            Outcome::Quarantined(row, server_time) => {
                self.metrics.quarantined.inc();
                let batch = state.ledger.open();
                batch.quarantined.push(row);
                batch.newest_server_time = batch.newest_server_time.max(server_time);
                batch.oldest_server_time = batch.oldest_server_time.min(server_time);
            }
            Outcome::Duplicate(age) => {
                self.metrics
                    .dedup_dropped
                    .with_label_values(&["event_id"])
                    .inc();
                self.metrics
                    .duplicates_by_age
                    .with_label_values(&[age.as_str()])
                    .inc();
            }
            Outcome::Suspect(..) => {}
            Outcome::Diverted { event_id, .. } if Some(event_id) == lane_wrote => {}
            Outcome::Diverted { event_id, segment } => {
                if let Some(overflow) = &self.overflow {
                    self.metrics.overflow_events.inc();
                    let source = crate::overflow::Source {
                        topic: self.topic,
                        partition: record.partition,
                        offset: record.offset,
                    };
                    let payload = record.payload.as_deref().unwrap_or_default();
                    let diverted =
                        overflow.send(source, payload, record.timestamp, event_id, &segment);
                    state.ledger.open().diverted.push(diverted);
                }
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
                let pending = self.dead_letters.send(&letter);
                state.ledger.open().dead_letters.push(pending);
            }
        }
        self.flush_if_due(record.partition);
    }

    fn on_tick(&mut self) {
        let limits = self.limits();
        let due: Vec<i32> = self
            .partitions
            .iter()
            .filter(|(_, p)| p.ledger.wants_flush(&limits))
            .map(|(k, _)| *k)
            .collect();
        for partition in due {
            self.start_flush(partition);
        }
        let fans: usize = self.partitions.values().map(|p| p.fans.len()).sum();
        self.metrics.fans_tracked.set(fans as i64);
        let quiet: usize = self.partitions.values().map(|p| p.fans.quiet_len()).sum();
        self.metrics.quiet_fans.set(quiet as i64);
        let dormant: usize = self.partitions.values().map(|p| p.fans.dormant_len()).sum();
        self.metrics.dormant_fans.set(dormant as i64);
        let ids: usize = self.partitions.values().map(|p| p.ids.window.len()).sum();
        self.metrics.ids_tracked.set(ids as i64);
        let bytes: usize = self
            .partitions
            .values()
            .map(|p| p.ids.horizon.bytes())
            .sum();
        self.metrics.horizon_bytes.set(bytes as i64);
        let parked: usize = self.partitions.values().map(|p| p.parked.len()).sum();
        self.metrics.parked_records.set(parked as i64);
        let hot: usize = self.partitions.values().map(|p| p.hot.over()).sum();
        self.metrics.overflow_keys.set(hot as i64);
        let held = self.partitions.values().filter(|p| p.held).count();
        self.metrics.offset_resets.set(held as i64);
        if self.newest_written_server_time > 0 {
            let lag = (now_ms() - self.newest_written_server_time).max(0) as f64 / 1000.0;
            self.metrics.freshness_seconds.set(lag);
        }
    }
}
