//! The Kafka source: one OS thread owns an rdkafka `BaseConsumer` and feeds the pipeline.
//!
//! Why a thread and not an async stream: librdkafka runs rebalance callbacks inside
//! `poll`, and on revoke we must *block* until the pipeline has flushed (or abandoned) the
//! revoked partitions' batches, before librdkafka hands them to another consumer. Blocking
//! is harmless on a dedicated thread and wrong on an async worker.
//!
//! - Records go out in chunks through a bounded channel. When it is full the thread first
//!   waits, without polling, for up to [`hold_before_pause`]: pausing would make
//!   librdkafka drop every record it has prefetched for our partitions and fetch them again
//!   on resume, so a pipeline busy with an insert would cost the broker each record twice
//!   or more. Only a longer stall pauses every assigned partition, and the thread keeps
//!   polling, so `max.poll.interval.ms` stays satisfied while ClickHouse is slow or down.
//! - Assignments and revocations go through a separate unbounded control channel, which
//!   the pipeline reads first. Every record carries the *epoch* of its partition's
//!   assignment, so records fetched before a revoke are recognised and dropped.
//! - Offsets are never auto-committed or auto-stored; the pipeline commits after insert.
//! - [`Ownership`] is the one authority on which partitions this consumer may still write:
//!   each assignment gets a lease (a cancellation token) that the revoke callback cancels
//!   when it returns — drained or given up — so a pipeline that was blocked while its
//!   partition moved can never insert a stale batch after the new owner started.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::mpsc as std_mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext, Rebalance};
use rdkafka::error::KafkaResult;
use rdkafka::message::Message;
use rdkafka::statistics::Statistics;
use rdkafka::{ClientContext, TopicPartitionList};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::config::KafkaConfig;
use crate::metrics::Metrics;

/// One consumed record, copied out of librdkafka's buffer.
#[derive(Debug, Clone)]
pub struct Record {
    /// Partition.
    pub partition: i32,
    /// Offset.
    pub offset: i64,
    /// Epoch of the partition's assignment when the record was fetched.
    pub epoch: u64,
    /// Kafka timestamp (ms), -1 if none: with the offset, what identifies the record
    /// across a topic's re-creation.
    pub timestamp: i64,
    /// Key, if any.
    pub key: Option<Vec<u8>>,
    /// Value; `None` for a tombstone.
    pub payload: Option<Vec<u8>>,
    /// What a diverted record carries from the primary (overflow lane only).
    pub carried: Option<crate::overflow::Carried>,
}

/// The right to write one partition under one assignment epoch; cancelled when the
/// partition is revoked (after its drain, or when the drain was given up).
#[derive(Debug, Clone)]
pub struct Lease {
    /// Partition.
    pub partition: i32,
    /// Epoch of the assignment; every record fetched under it carries it.
    pub epoch: u64,
    /// Cancelled once the partition is no longer ours: no insert may start after that.
    pub token: CancellationToken,
}

impl Lease {
    /// Whether the partition is still ours to write.
    pub fn is_held(&self) -> bool {
        !self.token.is_cancelled()
    }
}

#[derive(Debug)]
struct Held {
    lease: Lease,
    /// Revoke in progress: records are no longer fetched for it, but its drain may write.
    revoking: bool,
}

/// Which partitions this consumer owns, shared by the source thread (which grants and
/// revokes) and the pipeline and its insert tasks (which check before every write).
#[derive(Debug, Default)]
pub struct Ownership {
    held: std::sync::Mutex<HashMap<i32, Held>>,
    next_epoch: std::sync::atomic::AtomicU64,
}

impl Ownership {
    fn grant(&self, partition: i32) -> Lease {
        let epoch = self.next_epoch.fetch_add(1, Ordering::SeqCst) + 1;
        let lease = Lease {
            partition,
            epoch,
            token: CancellationToken::new(),
        };
        if let Ok(mut held) = self.held.lock() {
            let previous = held.insert(
                partition,
                Held {
                    lease: lease.clone(),
                    revoking: false,
                },
            );
            if let Some(previous) = previous {
                previous.lease.token.cancel();
            }
        }
        lease
    }

    fn start_revoke(&self, partitions: &[i32]) {
        if let Ok(mut held) = self.held.lock() {
            for p in partitions {
                if let Some(h) = held.get_mut(p) {
                    h.revoking = true;
                }
            }
        }
    }

    /// Ends the leases of `partitions`: from now on nothing of theirs is written.
    fn release(&self, partitions: &[i32]) {
        if let Ok(mut held) = self.held.lock() {
            for p in partitions {
                if let Some(h) = held.remove(p) {
                    h.lease.token.cancel();
                }
            }
        }
    }

    /// Ends every lease (the consumer is gone).
    pub fn release_all(&self) {
        if let Ok(mut held) = self.held.lock() {
            for (_, h) in held.drain() {
                h.lease.token.cancel();
            }
        }
    }

    /// Epochs of the partitions records are fetched for (not being revoked).
    fn fetching(&self) -> HashMap<i32, u64> {
        self.held
            .lock()
            .map(|held| {
                held.iter()
                    .filter(|(_, h)| !h.revoking)
                    .map(|(p, h)| (*p, h.lease.epoch))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Partitions held, being revoked included.
    pub fn count(&self) -> usize {
        self.held.lock().map(|h| h.len()).unwrap_or(0)
    }
}

/// Assignment changes, delivered before any record of the new epoch.
#[derive(Debug)]
pub enum Control {
    /// Partitions now owned, each with its lease.
    Assigned(Vec<Lease>),
    /// Partitions being taken away; the pipeline answers on `done` once their batches are
    /// flushed and committed, or abandoned uncommitted.
    Revoked {
        /// The partitions.
        partitions: Vec<i32>,
        /// Acknowledgement.
        done: std_mpsc::SyncSender<()>,
    },
}

/// Handle the pipeline uses to steer the source thread.
pub struct SourceHandle {
    /// The consumer, shared for commits (librdkafka is thread-safe).
    pub consumer: Arc<BaseConsumer<SourceContext>>,
    /// Chunks of records.
    pub records: mpsc::Receiver<Vec<Record>>,
    /// Leases of the partitions owned.
    pub ownership: Arc<Ownership>,
    /// Assignment changes.
    pub control: mpsc::UnboundedReceiver<Control>,
    state: Arc<AtomicU8>,
    thread: Option<std::thread::JoinHandle<()>>,
}

const RUNNING: u8 = 0;
const STOP_FETCHING: u8 = 1;
const CLOSE: u8 = 2;

impl SourceHandle {
    /// Stops handing out records (shutdown drain begins); rebalances are still served.
    pub fn stop_fetching(&self) {
        self.state.store(STOP_FETCHING, Ordering::SeqCst);
    }

    /// Leaves the group and ends the thread. Revocations it triggers still arrive on
    /// `control` and must be answered until it yields `None`.
    pub fn close(&self) {
        self.state.store(CLOSE, Ordering::SeqCst);
    }

    /// Whether the thread has ended.
    pub fn is_finished(&self) -> bool {
        self.thread.as_ref().is_none_or(|t| t.is_finished())
    }

    /// Waits for the thread after [`SourceHandle::close`].
    pub fn join(&mut self) {
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// rdkafka context: forwards rebalances to the pipeline and statistics to metrics.
pub struct SourceContext {
    topic: String,
    metrics: Arc<Metrics>,
    control: mpsc::UnboundedSender<Control>,
    drain_timeout: Duration,
    ownership: Arc<Ownership>,
    assignment_changed: AtomicBool,
}

impl ClientContext for SourceContext {
    fn stats(&self, statistics: Statistics) {
        let Some(topic) = statistics.topics.get(&self.topic) else {
            return;
        };
        // Only owned partitions: the statistics keep the offsets of revoked ones, whose
        // series the revoke removed.
        let owned = self.ownership.fetching();
        for (partition, p) in &topic.partitions {
            if *partition < 0 || !owned.contains_key(partition) {
                continue;
            }
            // A partition that never committed (consumer_lag -1) still shows its backlog.
            let Some(lag) = crate::metrics::partition_lag(
                p.consumer_lag,
                p.hi_offset,
                p.committed_offset,
                p.lo_offset,
                p.app_offset,
            ) else {
                continue;
            };
            self.metrics
                .consumer_lag
                .with_label_values(&[&self.topic, &partition.to_string()])
                .set(lag);
        }
    }
}

impl ConsumerContext for SourceContext {
    fn pre_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        let partitions = match rebalance {
            Rebalance::Revoke(tpl) => partitions_of(tpl),
            Rebalance::Assign(_) => return,
            Rebalance::Error(e) => {
                tracing::warn!(error = %e, "rebalance error");
                return;
            }
        };
        self.metrics.rebalances.with_label_values(&["revoke"]).inc();
        self.ownership.start_revoke(&partitions);
        for p in &partitions {
            self.metrics
                .consumer_lag
                .remove_label_values(&[&self.topic, &p.to_string()])
                .ok();
        }
        self.assignment_changed.store(true, Ordering::SeqCst);
        let (done, wait) = std_mpsc::sync_channel(1);
        tracing::info!(?partitions, "partitions revoked: draining their batches");
        let sent = self
            .control
            .send(Control::Revoked {
                partitions: partitions.clone(),
                done,
            })
            .is_ok();
        // Patience a little beyond the pipeline's own drain deadline.
        if sent
            && wait
                .recv_timeout(self.drain_timeout + Duration::from_secs(5))
                .is_err()
        {
            self.metrics.revokes_given_up.inc();
            tracing::warn!(
                ?partitions,
                "revoked partitions were not drained in time; letting them go (their leases end: nothing of theirs is written after this)"
            );
        }
        // Whether drained or not, the partitions are no longer ours once we return.
        self.ownership.release(&partitions);
        self.metrics
            .assigned_partitions
            .set(self.ownership.count() as i64);
    }

    fn post_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        let Rebalance::Assign(tpl) = rebalance else {
            return;
        };
        self.metrics.rebalances.with_label_values(&["assign"]).inc();
        let assigned: Vec<Lease> = partitions_of(tpl)
            .into_iter()
            .map(|p| self.ownership.grant(p))
            .collect();
        self.metrics
            .assigned_partitions
            .set(self.ownership.count() as i64);
        self.assignment_changed.store(true, Ordering::SeqCst);
        tracing::info!(partitions = ?assigned.iter().map(|a| a.partition).collect::<Vec<_>>(), "partitions assigned");
        let _ = self.control.send(Control::Assigned(assigned));
    }

    fn commit_callback(&self, result: KafkaResult<()>, _offsets: &TopicPartitionList) {
        // A failed commit loses nothing: ClickHouse holds the watermark the next owner
        // resumes from. It only makes reported lag look higher until the next commit.
        if let Err(e) = result {
            tracing::debug!(error = %e, "offset commit failed");
        }
    }
}

fn partitions_of(tpl: &TopicPartitionList) -> Vec<i32> {
    tpl.elements().iter().map(|e| e.partition()).collect()
}

/// The consumer settings of the services: [`crate::kafka::consumer_config`].
pub fn client_config(cfg: &KafkaConfig, group_id: &str) -> ClientConfig {
    crate::kafka::consumer_config(cfg, group_id)
}

/// Subscribes to `topic` and starts the source thread.
pub fn start(
    cfg: &KafkaConfig,
    group_id: &str,
    topic: &str,
    queue_capacity: usize,
    metrics: Arc<Metrics>,
) -> anyhow::Result<SourceHandle> {
    let (control_tx, control_rx) = mpsc::unbounded_channel();
    let ownership = Arc::new(Ownership::default());
    let context = SourceContext {
        topic: topic.to_string(),
        metrics: metrics.clone(),
        control: control_tx,
        drain_timeout: cfg.drain_timeout,
        ownership: ownership.clone(),
        assignment_changed: AtomicBool::new(false),
    };
    let consumer: BaseConsumer<SourceContext> = client_config(cfg, group_id)
        .create_with_context(context)
        .map_err(|e| anyhow::anyhow!("cannot create Kafka consumer for {}: {e}", cfg.brokers))?;
    consumer
        .subscribe(&[topic])
        .map_err(|e| anyhow::anyhow!("cannot subscribe to {topic}: {e}"))?;
    let consumer = Arc::new(consumer);
    // Chunks of up to CHUNK records; capacity in records is about queue_capacity.
    let (tx, rx) = mpsc::channel((queue_capacity / CHUNK).max(2));
    let state = Arc::new(AtomicU8::new(RUNNING));
    let hold = hold_before_pause(cfg.max_poll_interval);
    let thread = {
        let consumer = consumer.clone();
        let state = state.clone();
        let topic = topic.to_string();
        std::thread::Builder::new()
            .name("kafka-source".into())
            .spawn(move || poll_loop(&consumer, &tx, &state, &metrics, &topic, hold))?
    };
    Ok(SourceHandle {
        consumer,
        records: rx,
        ownership,
        control: control_rx,
        state,
        thread: Some(thread),
    })
}

const CHUNK: usize = 512;

/// How long a full channel is waited on, not polling, before the partitions are paused:
/// long enough for a usual insert to finish, a small share of `max.poll.interval.ms` (a
/// rebalance waits for our next poll) and at most 5 s.
pub fn hold_before_pause(max_poll_interval: Duration) -> Duration {
    (max_poll_interval / 10).min(Duration::from_secs(5))
}

/// Hands `chunk` to the pipeline, waiting up to `hold` for room; gives it back if there is
/// still none (or the source is stopping), `Err` if the pipeline has gone.
fn hand_over(
    tx: &mpsc::Sender<Vec<Record>>,
    chunk: Vec<Record>,
    state: &AtomicU8,
    hold: Duration,
) -> Result<Option<Vec<Record>>, ()> {
    let deadline = Instant::now() + hold;
    let mut chunk = chunk;
    loop {
        match tx.try_send(chunk) {
            Ok(()) => return Ok(None),
            Err(mpsc::error::TrySendError::Closed(_)) => return Err(()),
            Err(mpsc::error::TrySendError::Full(back)) => chunk = back,
        }
        if Instant::now() >= deadline || state.load(Ordering::SeqCst) != RUNNING {
            return Ok(Some(chunk));
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

fn poll_loop(
    consumer: &BaseConsumer<SourceContext>,
    tx: &mpsc::Sender<Vec<Record>>,
    state: &AtomicU8,
    metrics: &Metrics,
    topic: &str,
    hold: Duration,
) {
    let consumed = metrics.consumed_counter(topic);
    let mut chunk: Vec<Record> = Vec::with_capacity(CHUNK);
    let mut paused_since: Option<Instant> = None;
    let mut epochs: HashMap<i32, u64> = HashMap::new();
    // The pipeline took no chunk for `hold`: paused until it takes one.
    let mut stalled = false;
    loop {
        let mode = state.load(Ordering::SeqCst);
        if mode == CLOSE {
            break;
        }
        let context = consumer.context();
        if context.assignment_changed.swap(false, Ordering::SeqCst) {
            epochs = context.ownership.fetching();
            // A new assignment is fetched even if we were paused; pause it too.
            if paused_since.is_some() {
                pause_all(consumer, true);
            }
        }
        let must_hold = mode == STOP_FETCHING || stalled;
        match (must_hold, paused_since) {
            (true, None) => {
                pause_all(consumer, true);
                paused_since = Some(Instant::now());
            }
            (false, Some(since)) => {
                pause_all(consumer, false);
                metrics.paused_seconds.inc_by(since.elapsed().as_secs_f64());
                paused_since = None;
            }
            _ => {}
        }
        let timeout = if chunk.is_empty() {
            Duration::from_millis(100)
        } else {
            Duration::ZERO
        };
        match consumer.poll(timeout) {
            Some(Ok(m)) => {
                let partition = m.partition();
                if !epochs.contains_key(&partition) {
                    // Assigned inside this very poll call: refresh before deciding.
                    epochs = context.ownership.fetching();
                }
                let Some(&epoch) = epochs.get(&partition) else {
                    continue;
                };
                chunk.push(Record {
                    partition,
                    offset: m.offset(),
                    epoch,
                    timestamp: m.timestamp().to_millis().unwrap_or(-1),
                    key: m.key().map(<[u8]>::to_vec),
                    payload: m.payload().map(<[u8]>::to_vec),
                    carried: crate::overflow::carried(&m),
                });
                consumed.inc();
                if chunk.len() < CHUNK {
                    continue;
                }
            }
            Some(Err(e)) => tracing::warn!(error = %e, "Kafka consumer error"),
            None => {}
        }
        if chunk.is_empty() || mode == STOP_FETCHING {
            continue;
        }
        // Once paused, one try per turn: polling goes on so the group keeps us.
        let wait = if stalled { Duration::ZERO } else { hold };
        match hand_over(tx, std::mem::take(&mut chunk), state, wait) {
            Ok(None) => {
                chunk = Vec::with_capacity(CHUNK);
                stalled = false;
            }
            Ok(Some(back)) => {
                chunk = back;
                if stalled {
                    std::thread::sleep(Duration::from_millis(5));
                }
                // Pauses on the next turn.
                stalled = true;
            }
            Err(()) => break,
        }
    }
    if let Some(since) = paused_since {
        metrics.paused_seconds.inc_by(since.elapsed().as_secs_f64());
    }
    // Leaving the group revokes what we own; the callback waits for the pipeline's ack.
    consumer.unsubscribe();
    let deadline = Instant::now() + Duration::from_secs(2);
    while Instant::now() < deadline {
        let _ = consumer.poll(Duration::from_millis(50));
        if consumer
            .assignment()
            .map(|a| a.count() == 0)
            .unwrap_or(true)
        {
            break;
        }
    }
    consumer.context().ownership.release_all();
}

fn pause_all(consumer: &BaseConsumer<SourceContext>, pause: bool) {
    let Ok(assignment) = consumer.assignment() else {
        return;
    };
    if assignment.count() == 0 {
        return;
    }
    let result = if pause {
        consumer.pause(&assignment)
    } else {
        consumer.resume(&assignment)
    };
    if let Err(e) = result {
        tracing::warn!(error = %e, pause, "cannot pause/resume partitions");
    }
}

#[cfg(test)]
#[path = "source_tests.rs"]
mod tests;
