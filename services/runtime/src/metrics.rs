//! Every metric a service exports, in one place, and the HTTP endpoint that serves them.
//!
//! Names follow `wxpulse_<subsystem>_<what>_<unit>`; the `service` label is a constant of
//! the registry, and every other label comes from a bounded set (a reason enum, a
//! partition number, an error class) — never an id or a message. The table of names is in
//! the README and `docs/CONTRACT.md`; dashboards and alert rules depend on it.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use prometheus::{
    exponential_buckets, Encoder, Gauge, GaugeVec, HistogramOpts, HistogramVec, IntCounter,
    IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry, TextEncoder,
};

mod http;

pub use http::{serve, serve_http, Exposition};

/// All metrics of one service process.
pub struct Metrics {
    registry: Registry,
    /// Records read from Kafka, by topic.
    pub consumed: IntCounterVec,
    /// High watermark − next offset, by topic and partition (from librdkafka statistics).
    pub consumer_lag: IntGaugeVec,
    /// Partitions owned.
    pub assigned_partitions: IntGauge,
    /// Rebalance callbacks by kind (assign, revoke, lost).
    pub rebalances: IntCounterVec,
    /// Seconds consumption was paused because the pipeline was full.
    pub paused_seconds: prometheus::Counter,
    /// Rows acknowledged by ClickHouse, by table.
    pub written: IntCounterVec,
    /// Rows per insert.
    pub batch_rows: HistogramVec,
    /// Approximate bytes per insert.
    pub batch_bytes: HistogramVec,
    /// Duration of one insert attempt.
    pub insert_duration: HistogramVec,
    /// Failed insert attempts by class.
    pub insert_errors: IntCounterVec,
    /// now − server_time of the newest event written.
    pub freshness_seconds: Gauge,
    /// Records of hot keys diverted to the overflow lane.
    pub overflow_events: IntCounter,
    /// Keys over the hot-key limit in their partition's current window.
    pub overflow_keys: IntGauge,
    /// Failed deliveries of diverted records (each retried until acknowledged).
    pub overflow_errors: IntCounter,
    /// Unix time of the last successful insert.
    pub last_write_timestamp: Gauge,
    /// Dead-lettered records by reason.
    pub dead_letters: IntCounterVec,
    /// Dead letters that could not be delivered (permanent produce error), by reason:
    /// such a record is only in the service log.
    pub dead_letters_undeliverable: IntCounterVec,
    /// Duplicates not written, by kind (event_id, redelivery).
    pub dedup_dropped: IntCounterVec,
    /// Events written with an `unknown` dimension, by dimension.
    pub dimension_missing: IntCounterVec,
    /// Dimension records (and tombstones) applied, by dimension.
    pub dimension_updates: IntCounterVec,
    /// Dimension records that could not be decoded (skipped, logged), by dimension.
    pub dimension_rejected: IntCounterVec,
    /// Keys held per dimension.
    pub dimension_records: IntGaugeVec,
    /// Fan profiles taken from the mirror's snapshot at start-up (0: the topic was read
    /// from its start).
    pub snapshot_rows: IntGauge,
    /// Seconds the start-up dimension load took (snapshot and topics).
    pub dimension_load_seconds: prometheus::Gauge,
    /// Fans whose segment state this instance holds (its partitions' fans).
    pub fans_tracked: IntGauge,
    /// Of `fans_tracked`, the quiet ones (every month closed, only the last interaction).
    pub quiet_fans: IntGauge,
    /// Fans held only as "dormant when they return" (their state was dropped).
    pub dormant_fans: IntGauge,
    /// Fans whose state was dropped, by reason (dormant, least_recent, dormant_forgotten).
    pub fans_evicted: IntCounterVec,
    /// Event ids remembered for upstream-retry dedup, over the partitions owned.
    pub ids_tracked: IntGauge,
    /// Event ids dropped by `dedup.max_ids` before their window ended.
    pub ids_evicted: IntCounter,
    /// Events of unknown accounts written to the quarantine twin
    /// (`validation.unknown_account = quarantine`).
    pub quarantined: IntCounter,
    /// Upstream-retry duplicates dropped, by how late they came (window, 1h, 1d, older).
    pub duplicates_by_age: IntCounterVec,
    /// ClickHouse lookups of ids the horizon flagged, by answer (duplicate, fresh, error).
    pub horizon_lookups: IntCounterVec,
    /// ClickHouse queries that looked up suspects (each asks every suspect parked in line).
    pub horizon_queries: IntCounter,
    /// Memory of the horizon's Bloom filters, over the partitions owned.
    pub horizon_bytes: IntGauge,
    /// Age of the oldest in-flight flush (dead letters + insert), 0 when none.
    pub oldest_flush_age_seconds: Gauge,
    /// Partitions whose flush has been in flight longer than `batch.stuck_after`.
    pub flush_stuck_partitions: IntGauge,
    /// Revokes whose drain did not answer in time; the partitions' leases ended anyway.
    pub revokes_given_up: IntCounter,
    /// Records held back because their writer schema could not be fetched yet.
    pub parked_records: IntGauge,
    /// Schema-registry requests that failed (not a 404), by kind.
    pub registry_errors: IntCounter,
    /// In-flight batches of a previous owner replayed on assignment, by outcome.
    pub batches_replayed: IntCounterVec,
    /// Partitions whose Kafka log ends below the offset ClickHouse already holds: the
    /// topic was re-created or the cluster changed. Held, not skipped.
    pub offset_resets: IntGauge,
    ready: AtomicBool,
    flushes: Arc<Mutex<Flushes>>,
    stuck_after_ms: AtomicU64,
}

/// Flushes in flight: when each started, by partition.
#[derive(Default)]
struct Flushes {
    next_id: u64,
    open: HashMap<u64, (i32, Instant)>,
}

/// Held by a flush task while it runs; dropping it (the task ended, however) ends the
/// flush for `/readyz` and the flush gauges.
pub struct FlushGuard {
    flushes: Arc<Mutex<Flushes>>,
    id: u64,
}

impl Drop for FlushGuard {
    fn drop(&mut self) {
        if let Ok(mut f) = self.flushes.lock() {
            f.open.remove(&self.id);
        }
    }
}

/// Default of `batch.stuck_after`, until [`Metrics::set_stuck_after`] is called.
const DEFAULT_STUCK_AFTER: Duration = Duration::from_secs(60);

impl Metrics {
    /// Creates the metrics of `service` in their own registry, so several pipelines in one
    /// test process do not collide.
    pub fn new(service: &str) -> Arc<Self> {
        let labels = [("service".to_string(), service.to_string())]
            .into_iter()
            .collect();
        let registry =
            Registry::new_custom(None, Some(labels)).expect("static registry options are valid");
        let reg = |c: Box<dyn prometheus::core::Collector>| {
            registry
                .register(c)
                .expect("metric names are unique and valid");
        };
        let registry = registry.clone();
        macro_rules! make {
            ($ctor:expr) => {{
                let m = $ctor.expect("metric definition is valid");
                reg(Box::new(m.clone()));
                m
            }};
        }
        let rows_buckets = exponential_buckets(10.0, 4.0, 9).expect("valid buckets");
        let bytes_buckets = exponential_buckets(1024.0, 4.0, 10).expect("valid buckets");
        let secs_buckets = exponential_buckets(0.005, 2.0, 14).expect("valid buckets");
        let m = Metrics {
            consumed: make!(IntCounterVec::new(
                Opts::new(
                    "wxpulse_source_events_consumed_total",
                    "Records read from Kafka."
                ),
                &["topic"]
            )),
            consumer_lag: make!(IntGaugeVec::new(
                Opts::new(
                    "wxpulse_source_consumer_lag_events",
                    "High watermark minus the next offset to process, per partition."
                ),
                &["topic", "partition"]
            )),
            assigned_partitions: make!(IntGauge::new(
                "wxpulse_source_assigned_partitions",
                "Partitions this instance owns."
            )),
            rebalances: make!(IntCounterVec::new(
                Opts::new(
                    "wxpulse_source_rebalances_total",
                    "Rebalance callbacks by kind."
                ),
                &["kind"]
            )),
            paused_seconds: make!(prometheus::Counter::new(
                "wxpulse_source_paused_seconds_total",
                "Time consumption was paused by backpressure."
            )),
            written: make!(IntCounterVec::new(
                Opts::new(
                    "wxpulse_sink_events_written_total",
                    "Rows acknowledged by ClickHouse."
                ),
                &["table"]
            )),
            batch_rows: make!(HistogramVec::new(
                HistogramOpts::new("wxpulse_sink_batch_rows", "Rows per insert.")
                    .buckets(rows_buckets),
                &["table"]
            )),
            batch_bytes: make!(HistogramVec::new(
                HistogramOpts::new("wxpulse_sink_batch_bytes", "Approximate bytes per insert.")
                    .buckets(bytes_buckets),
                &["table"]
            )),
            insert_duration: make!(HistogramVec::new(
                HistogramOpts::new(
                    "wxpulse_sink_insert_duration_seconds",
                    "Duration of one insert attempt."
                )
                .buckets(secs_buckets),
                &["table"]
            )),
            insert_errors: make!(IntCounterVec::new(
                Opts::new(
                    "wxpulse_sink_insert_errors_total",
                    "Failed insert attempts by class."
                ),
                &["table", "class"]
            )),
            overflow_events: make!(IntCounter::new(
                "wxpulse_overflow_events_total",
                "Records of hot keys diverted to the overflow lane."
            )),
            overflow_keys: make!(IntGauge::new(
                "wxpulse_overflow_keys",
                "Keys over the hot-key limit in their partition's current window."
            )),
            overflow_errors: make!(IntCounter::new(
                "wxpulse_overflow_delivery_errors_total",
                "Failed deliveries of diverted records; each is retried until acknowledged."
            )),
            freshness_seconds: make!(Gauge::new(
                "wxpulse_sink_freshness_seconds",
                "Now minus the server time of the newest event written."
            )),
            last_write_timestamp: make!(Gauge::new(
                "wxpulse_sink_last_write_timestamp_seconds",
                "Unix time of the last successful insert."
            )),
            dead_letters: make!(IntCounterVec::new(
                Opts::new(
                    "wxpulse_dlq_events_total",
                    "Records sent to the dead-letter topic."
                ),
                &["reason"]
            )),
            dead_letters_undeliverable: make!(IntCounterVec::new(
                Opts::new(
                    "wxpulse_dlq_undeliverable_total",
                    "Dead letters the broker or client rejected permanently; logged, not in the topic."
                ),
                &["reason"]
            )),
            dedup_dropped: make!(IntCounterVec::new(
                Opts::new(
                    "wxpulse_dedup_events_dropped_total",
                    "Duplicates not written: upstream retries and Kafka redeliveries."
                ),
                &["kind"]
            )),
            dimension_missing: make!(IntCounterVec::new(
                Opts::new(
                    "wxpulse_enrich_dimension_missing_total",
                    "Events written with an unknown dimension value."
                ),
                &["dimension"]
            )),
            dimension_updates: make!(IntCounterVec::new(
                Opts::new(
                    "wxpulse_enrich_dimension_updates_total",
                    "Dimension records applied from their compacted topics."
                ),
                &["dimension"]
            )),
            dimension_rejected: make!(IntCounterVec::new(
                Opts::new(
                    "wxpulse_enrich_dimension_rejected_total",
                    "Dimension records that did not decode and were skipped."
                ),
                &["dimension"]
            )),
            dimension_records: make!(IntGaugeVec::new(
                Opts::new(
                    "wxpulse_enrich_dimension_records",
                    "Keys held in memory per dimension."
                ),
                &["dimension"]
            )),
            snapshot_rows: make!(IntGauge::new(
                "wxpulse_enrich_snapshot_rows",
                "Fan profiles loaded from the mirror's snapshot in ClickHouse at start-up (0: none)."
            )),
            dimension_load_seconds: make!(prometheus::Gauge::new(
                "wxpulse_enrich_dimension_load_seconds",
                "Seconds the start-up load of the dimensions took (snapshot, then topics to their end)."
            )),
            fans_tracked: make!(IntGauge::new(
                "wxpulse_segment_fans_tracked",
                "Fans whose segment state this instance holds."
            )),
            quiet_fans: make!(IntGauge::new(
                "wxpulse_segment_quiet_fans",
                "Of the fans held with their state, those whose months are all closed (only their last interaction is held)."
            )),
            dormant_fans: make!(IntGauge::new(
                "wxpulse_segment_dormant_fans",
                "Fans remembered only as dormant when they return (their state was dropped)."
            )),
            fans_evicted: make!(IntCounterVec::new(
                Opts::new(
                    "wxpulse_segment_fans_evicted_total",
                    "Fans whose segment state was dropped: dormant (exact), least_recent and dormant_forgotten (their next event may be segmented differently)."
                ),
                &["reason"]
            )),
            ids_tracked: make!(IntGauge::new(
                "wxpulse_dedup_ids_tracked",
                "Event ids remembered for upstream-retry dedup."
            )),
            ids_evicted: make!(IntCounter::new(
                "wxpulse_dedup_ids_evicted_total",
                "Event ids forgotten before their dedup window ended (dedup.max_ids reached): a retry of one would be written twice."
            )),
            quarantined: make!(IntCounter::new(
                "wxpulse_quarantine_events_total",
                "Events of accounts the account dimension does not hold, written to the table's quarantine twin (validation.unknown_account = quarantine), counted in no view."
            )),
            duplicates_by_age: make!(IntCounterVec::new(
                Opts::new(
                    "wxpulse_dedup_duplicates_by_age_total",
                    "Upstream retries dropped, by how late the copy came: window (dedup.window), 1h, 1d, older (within dedup.horizon)."
                ),
                &["age"]
            )),
            horizon_lookups: make!(IntCounterVec::new(
                Opts::new(
                    "wxpulse_dedup_horizon_lookups_total",
                    "Event ids the dedup horizon flagged, looked up in ClickHouse, by answer: duplicate, fresh (a false positive), or error (retried; the partition waits)."
                ),
                &["verdict"]
            )),
            horizon_queries: make!(IntCounter::new(
                "wxpulse_dedup_horizon_queries_total",
                "ClickHouse queries that looked up event ids the dedup horizon flagged; one asks every suspect parked in its partition's line, so far fewer than lookups in a backlog."
            )),
            horizon_bytes: make!(IntGauge::new(
                "wxpulse_dedup_horizon_bytes",
                "Memory of the dedup horizon's Bloom filters over the partitions owned."
            )),
            oldest_flush_age_seconds: make!(Gauge::new(
                "wxpulse_pipeline_oldest_flush_age_seconds",
                "Age of the oldest in-flight flush (dead letters, then insert); 0 when none."
            )),
            flush_stuck_partitions: make!(IntGauge::new(
                "wxpulse_pipeline_flush_stuck_partitions",
                "Partitions whose flush has been in flight longer than batch.stuck_after."
            )),
            revokes_given_up: make!(IntCounter::new(
                "wxpulse_source_revokes_given_up_total",
                "Revokes whose drain did not finish in time; the partitions were let go unwritten."
            )),
            parked_records: make!(IntGauge::new(
                "wxpulse_pipeline_parked_records",
                "Records waiting for their writer schema from the registry."
            )),
            registry_errors: make!(IntCounter::new(
                "wxpulse_codec_registry_errors_total",
                "Schema-registry requests that failed with anything but a 404."
            )),
            batches_replayed: make!(IntCounterVec::new(
                Opts::new(
                    "wxpulse_sink_batches_replayed_total",
                    "In-flight batches of a previous owner replayed with their dedup token on assignment."
                ),
                &["outcome"]
            )),
            offset_resets: make!(IntGauge::new(
                "wxpulse_source_offset_reset_partitions",
                "Partitions held because Kafka's log ends below ClickHouse's watermark (topic re-created or cluster changed)."
            )),
            ready: AtomicBool::new(false),
            flushes: Arc::default(),
            stuck_after_ms: AtomicU64::new(DEFAULT_STUCK_AFTER.as_millis() as u64),
            registry,
        };
        let build = make!(GaugeVec::new(
            Opts::new(
                "wxpulse_build_info",
                "Build of the running binary (always 1)."
            ),
            &["version"]
        ));
        build
            .with_label_values(&[env!("CARGO_PKG_VERSION")])
            .set(1.0);
        Arc::new(m)
    }

    /// Marks the service ready (partitions assigned, ClickHouse answered) or not.
    pub fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::Relaxed);
    }

    /// Whether `/readyz` answers 200.
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Relaxed) && self.stuck().is_none()
    }

    /// How long a flush may be in flight before it counts as stuck (`batch.stuck_after`).
    pub fn set_stuck_after(&self, after: Duration) {
        self.stuck_after_ms
            .store(after.as_millis() as u64, Ordering::Relaxed);
    }

    /// Marks a flush of `partition` as in flight until the guard is dropped.
    pub fn flush_started(&self, partition: i32) -> FlushGuard {
        let mut f = self.flushes.lock().unwrap_or_else(|e| e.into_inner());
        f.next_id += 1;
        let id = f.next_id;
        f.open.insert(id, (partition, Instant::now()));
        FlushGuard {
            flushes: self.flushes.clone(),
            id,
        }
    }

    /// Why the service is stuck, if a flush has been in flight longer than
    /// `batch.stuck_after` (the oldest one's partition and age); refreshes the flush gauges.
    pub fn stuck(&self) -> Option<String> {
        let after = Duration::from_millis(self.stuck_after_ms.load(Ordering::Relaxed));
        let (oldest, stuck) = {
            let f = self.flushes.lock().unwrap_or_else(|e| e.into_inner());
            let now = Instant::now();
            let ages = || {
                f.open
                    .values()
                    .map(move |(p, started)| (*p, now.saturating_duration_since(*started)))
            };
            let oldest = ages().max_by_key(|(_, age)| *age);
            let mut stuck: Vec<i32> = ages()
                .filter(|(_, age)| *age > after)
                .map(|(p, _)| p)
                .collect();
            stuck.sort_unstable();
            stuck.dedup();
            (oldest, stuck)
        };
        self.oldest_flush_age_seconds
            .set(oldest.map_or(0.0, |(_, age)| age.as_secs_f64()));
        self.flush_stuck_partitions.set(stuck.len() as i64);
        let (partition, age) = oldest.filter(|(_, age)| *age > after)?;
        Some(format!(
            "flush of partition {partition} in flight for {}s (batch.stuck_after = {}s); \
             stuck partitions: {stuck:?}",
            age.as_secs(),
            after.as_secs()
        ))
    }

    /// The registry every metric of the service is in (it adds the `service` label), for
    /// a stream's own metrics (`Stream::register_metrics`).
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        // The flush gauges are computed from the in-flight flushes at scrape time.
        self.stuck();
        let mut out = Vec::new();
        TextEncoder::new()
            .encode(&self.registry.gather(), &mut out)
            .expect("encoding to a Vec cannot fail");
        String::from_utf8(out).expect("the text format is UTF-8")
    }

    /// Counts a consumed record; the hot path holds the child counter to skip label hashing.
    pub fn consumed_counter(&self, topic: &str) -> IntCounter {
        self.consumed.with_label_values(&[topic])
    }
}

/// The lag to export for a partition, from librdkafka's statistics: its own
/// `consumer_lag` (high watermark − committed offset) when it has one. That is -1 while
/// the group has no committed offset, which hid exactly the partitions stuck before their
/// first commit; then it is the high watermark minus where a restart would resume: the
/// committed offset, else the log start (`auto.offset.reset = earliest`), else the
/// application's position. `None` until the high watermark is known.
pub fn partition_lag(
    reported: i64,
    hi_offset: i64,
    committed_offset: i64,
    lo_offset: i64,
    app_offset: i64,
) -> Option<i64> {
    if reported >= 0 {
        return Some(reported);
    }
    if hi_offset < 0 {
        return None;
    }
    let resume_at = [committed_offset, lo_offset, app_offset]
        .into_iter()
        .find(|o| *o >= 0)?;
    Some((hi_offset - resume_at).max(0))
}

impl Exposition for Metrics {
    fn render(&self) -> String {
        Metrics::render(self)
    }

    fn readiness(&self) -> Result<(), String> {
        match self.stuck() {
            Some(why) => Err(why),
            None if self.ready.load(Ordering::Relaxed) => Ok(()),
            None => Err(String::new()),
        }
    }
}

#[cfg(test)]
mod tests;
