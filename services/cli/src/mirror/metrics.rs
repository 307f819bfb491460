//! What the fan-profile mirror exports on `/metrics` and answers on `/readyz`, served by the
//! runtime's endpoint ([`wxpulse_runtime::metrics::serve`]) like every service's.
//!
//! Its own small registry rather than the services' `Metrics`: the mirror has none of their
//! pipeline, segment or dedup state, and their alert rules (partitions assigned, freshness)
//! must not read a mirror as a consumer service. Names follow the same scheme,
//! `wxpulse_mirror_<what>_<unit>`, with the constant label `service="fan-profile-mirror"`.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use prometheus::{Encoder, Gauge, GaugeVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec};
use prometheus::{Opts, Registry, TextEncoder};
use wxpulse_runtime::metrics::Exposition;

/// The `service` label of every series.
pub const SERVICE: &str = "fan-profile-mirror";

/// Where an error happened (`wxpulse_mirror_errors_total{stage}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// Reading from Kafka.
    Consume,
    /// Inserting into `fan_profiles`, or the ClickHouse check at start.
    Insert,
    /// Committing offsets after an insert.
    Commit,
    /// Asking Kafka for the committed offsets and watermarks the lag is computed from.
    Lag,
}

impl Stage {
    const ALL: [Stage; 4] = [Stage::Consume, Stage::Insert, Stage::Commit, Stage::Lag];

    fn as_str(self) -> &'static str {
        match self {
            Stage::Consume => "consume",
            Stage::Insert => "insert",
            Stage::Commit => "commit",
            Stage::Lag => "lag",
        }
    }
}

/// Readiness inputs, under one lock.
#[derive(Default)]
struct State {
    assigned: BTreeSet<(String, i32)>,
    clickhouse_ok: bool,
    flushing_since: Option<Instant>,
    draining: bool,
}

/// The mirror's metrics and readiness.
pub struct MirrorMetrics {
    registry: Registry,
    consumed: IntCounter,
    written: IntCounter,
    skipped: IntCounter,
    lag: IntGaugeVec,
    assigned_partitions: IntGauge,
    last_write: Gauge,
    errors: IntCounterVec,
    state: Mutex<State>,
    stuck_after: Duration,
}

impl MirrorMetrics {
    /// The metrics of one mirror process; a write failing for longer than `stuck_after`
    /// (`batch.stuck_after`) makes it unready.
    pub fn new(stuck_after: Duration) -> Arc<Self> {
        let labels = [("service".to_string(), SERVICE.to_string())]
            .into_iter()
            .collect();
        let registry =
            Registry::new_custom(None, Some(labels)).expect("static registry options are valid");
        macro_rules! make {
            ($ctor:expr) => {{
                let m = $ctor.expect("metric definition is valid");
                registry
                    .register(Box::new(m.clone()))
                    .expect("metric names are unique and valid");
                m
            }};
        }
        let m = MirrorMetrics {
            consumed: make!(IntCounter::new(
                "wxpulse_mirror_records_consumed_total",
                "Fan-profile records (and tombstones) read from Kafka."
            )),
            written: make!(IntCounter::new(
                "wxpulse_mirror_records_written_total",
                "Rows written into fan_profiles (offsets committed after)."
            )),
            skipped: make!(IntCounter::new(
                "wxpulse_mirror_records_skipped_total",
                "Records that did not decode, or tombstones without an app_id|openid key: logged, not written."
            )),
            lag: make!(IntGaugeVec::new(
                Opts::new(
                    "wxpulse_mirror_lag_records",
                    "Records of the fan-profile, fan-follow and associate-contact topics after the group's committed offset, per assigned partition: not yet in fan_profiles, fan_follow_events or associate_contact_events."
                ),
                &["topic", "partition"]
            )),
            assigned_partitions: make!(IntGauge::new(
                "wxpulse_mirror_assigned_partitions",
                "Partitions of the mirrored topics (fan profile, fan follow, associate contact) this instance owns."
            )),
            last_write: make!(Gauge::new(
                "wxpulse_mirror_last_write_timestamp_seconds",
                "Unix time of the last successful write into fan_profiles; 0 until the first."
            )),
            errors: make!(IntCounterVec::new(
                Opts::new(
                    "wxpulse_mirror_errors_total",
                    "Failed operations by stage (consume, insert, commit, lag); writes are retried, never skipped."
                ),
                &["stage"]
            )),
            state: Mutex::default(),
            stuck_after,
            registry: registry.clone(),
        };
        // Every error series exists from the start, so rate() and increase() see the first.
        for stage in Stage::ALL {
            m.errors.with_label_values(&[stage.as_str()]);
        }
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

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A record (or tombstone) was read.
    pub fn consumed(&self) {
        self.consumed.inc();
    }

    /// A record was skipped.
    pub fn skipped(&self) {
        self.skipped.inc();
    }

    /// An operation failed.
    pub fn error(&self, stage: Stage) {
        self.errors.with_label_values(&[stage.as_str()]).inc();
        if stage == Stage::Insert {
            self.state().clickhouse_ok = false;
        }
    }

    /// ClickHouse answered (at start, or an insert went through).
    pub fn clickhouse_answered(&self) {
        self.state().clickhouse_ok = true;
    }

    /// Whether ClickHouse answered last time it was asked.
    pub fn clickhouse_ok(&self) -> bool {
        self.state().clickhouse_ok
    }

    /// A write of `rows` rows went through at `unix_secs`.
    pub fn wrote(&self, rows: u64, unix_secs: f64) {
        self.written.inc_by(rows);
        self.last_write.set(unix_secs);
        self.state().clickhouse_ok = true;
    }

    /// A write starts (and is retried until it goes through): until [`Self::flush_ended`],
    /// `/readyz` turns 503 once it has lasted `stuck_after`.
    pub fn flush_started(&self) {
        self.state().flushing_since = Some(Instant::now());
    }

    /// The write went through, or was given up.
    pub fn flush_ended(&self) {
        self.state().flushing_since = None;
    }

    /// Shutdown requested: the last batch is being written; no longer ready.
    pub fn draining(&self) {
        self.state().draining = true;
    }

    /// The lag of each assigned partition; the series of partitions no longer assigned go.
    pub fn set_lags(&self, lags: &[(&str, i32, i64)]) {
        let now: BTreeSet<(String, i32)> =
            lags.iter().map(|(t, p, _)| (t.to_string(), *p)).collect();
        let mut state = self.state();
        for (topic, gone) in state.assigned.difference(&now) {
            let _ = self
                .lag
                .remove_label_values(&[topic.as_str(), &gone.to_string()]);
        }
        for (topic, p, lag) in lags {
            self.lag
                .with_label_values(&[*topic, &p.to_string()])
                .set(*lag);
        }
        self.assigned_partitions.set(now.len() as i64);
        state.assigned = now;
    }
}

impl Exposition for MirrorMetrics {
    fn render(&self) -> String {
        let mut out = Vec::new();
        TextEncoder::new()
            .encode(&self.registry.gather(), &mut out)
            .expect("encoding to a Vec cannot fail");
        String::from_utf8(out).expect("the text format is UTF-8")
    }

    /// Ready while it owns a partition of the topic, ClickHouse answered last time, no write
    /// has been failing for `stuck_after`, and no shutdown is under way.
    fn readiness(&self) -> Result<(), String> {
        let state = self.state();
        if state.draining {
            return Err("shutting down: writing the last batch".into());
        }
        if let Some(since) = state.flushing_since {
            let age = since.elapsed();
            if age > self.stuck_after {
                return Err(format!(
                    "a write into fan_profiles has been failing for {}s (batch.stuck_after = {}s)",
                    age.as_secs(),
                    self.stuck_after.as_secs()
                ));
            }
        }
        if !state.clickhouse_ok {
            return Err("ClickHouse has not answered".into());
        }
        if state.assigned.is_empty() {
            return Err("no partition of the fan-profile topic assigned".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_series_follows_the_scheme_and_exists_from_the_start() {
        let m = MirrorMetrics::new(Duration::from_secs(60));
        let text = m.render();
        for name in [
            "wxpulse_mirror_records_consumed_total",
            "wxpulse_mirror_records_written_total",
            "wxpulse_mirror_records_skipped_total",
            "wxpulse_mirror_assigned_partitions",
            "wxpulse_mirror_last_write_timestamp_seconds",
            "wxpulse_mirror_errors_total{stage=\"insert\",service=\"fan-profile-mirror\"} 0",
            "wxpulse_build_info",
        ] {
            assert!(text.contains(name), "{name} missing:\n{text}");
        }
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            assert!(line.starts_with("wxpulse_"), "{line}");
            assert!(line.contains("service=\"fan-profile-mirror\""), "{line}");
        }
        m.wrote(3, 1_700_000_000.0);
        let t = "wxpulse.dim.fan_profile";
        m.set_lags(&[(t, 0, 7), (t, 1, 0)]);
        m.set_lags(&[(t, 0, 2)]);
        let text = m.render();
        assert!(
            text.contains("wxpulse_mirror_records_written_total{service=\"fan-profile-mirror\"} 3")
        );
        assert!(text.contains(
            "wxpulse_mirror_lag_records{partition=\"0\",topic=\"wxpulse.dim.fan_profile\",service=\"fan-profile-mirror\"} 2"
        ));
        assert!(
            !text.contains("partition=\"1\""),
            "a revoked partition's series goes"
        );
        assert!(
            text.contains("wxpulse_mirror_assigned_partitions{service=\"fan-profile-mirror\"} 1")
        );
    }

    #[test]
    fn ready_only_with_a_partition_clickhouse_and_no_failing_write() {
        let m = MirrorMetrics::new(Duration::from_millis(30));
        assert!(m.readiness().is_err(), "nothing known yet");
        m.clickhouse_answered();
        assert!(m
            .readiness()
            .expect_err("no partition")
            .contains("partition"));
        m.set_lags(&[("wxpulse.dim.fan_profile", 0, 0)]);
        assert_eq!(m.readiness(), Ok(()));
        m.flush_started();
        m.error(Stage::Insert);
        assert!(m
            .readiness()
            .expect_err("insert failed")
            .contains("ClickHouse"));
        std::thread::sleep(Duration::from_millis(40));
        assert!(m
            .readiness()
            .expect_err("stuck")
            .contains("batch.stuck_after"));
        m.wrote(1, 1.0);
        m.flush_ended();
        assert_eq!(m.readiness(), Ok(()));
        m.draining();
        assert!(m
            .readiness()
            .expect_err("draining")
            .contains("shutting down"));
    }
}
