//! The notifier's own metrics, in the service's registry (which adds `service`).

use prometheus::{IntCounterVec, IntGauge, Opts, Registry};

/// What an on-call engineer asks of the notifier: how many were sent or held back and
/// why, how much it remembers, and whether its outputs fail.
#[derive(Clone)]
pub struct NotifierMetrics {
    /// `wxpulse_notifier_notifications_total{rule, outcome}`.
    pub notifications: IntCounterVec,
    /// `wxpulse_notifier_records_total{topic}`: records read.
    pub records: IntCounterVec,
    /// `wxpulse_notifier_records_skipped_total{reason}`: records the notifier cannot read
    /// (the stream's own service dead-letters them; counted here, not lettered twice).
    pub skipped: IntCounterVec,
    /// `wxpulse_notifier_ledger_notifications`: notifications remembered for the limits.
    pub ledger: IntGauge,
    /// `wxpulse_notifier_open_waits`: fan messages waiting for a reply.
    pub open_waits: IntGauge,
    /// `wxpulse_notifier_errors_total{output}`: failed ClickHouse or Kafka attempts.
    pub errors: IntCounterVec,
}

impl NotifierMetrics {
    /// Creates and registers them.
    pub fn register(registry: &Registry) -> prometheus::Result<Self> {
        let counter = |name: &str, help: &str, labels: &[&str]| {
            let c = IntCounterVec::new(Opts::new(name, help), labels)?;
            registry.register(Box::new(c.clone()))?;
            Ok::<_, prometheus::Error>(c)
        };
        let gauge = |name: &str, help: &str| {
            let g = IntGauge::new(name, help)?;
            registry.register(Box::new(g.clone()))?;
            Ok::<_, prometheus::Error>(g)
        };
        let metrics = NotifierMetrics {
            notifications: counter(
                "wxpulse_notifier_notifications_total",
                "Notifications by rule and outcome (sent, deferred, replayed, fan_limited, associate_limited, quiet_hours, stale, no_associate)",
                &["rule", "outcome"],
            )?,
            records: counter(
                "wxpulse_notifier_records_total",
                "Records read by the notifier, by topic",
                &["topic"],
            )?,
            skipped: counter(
                "wxpulse_notifier_records_skipped_total",
                "Records the notifier could not read, by reason (dead-lettered by the stream's own service)",
                &["reason"],
            )?,
            ledger: gauge(
                "wxpulse_notifier_ledger_notifications",
                "Notifications of the lookback remembered for dedup and limits",
            )?,
            open_waits: gauge(
                "wxpulse_notifier_open_waits",
                "Fan messages waiting for their associate's reply",
            )?,
            errors: counter(
                "wxpulse_notifier_errors_total",
                "Failed attempts to store (clickhouse) or send (kafka) notifications; retried",
                &["output"],
            )?,
        };
        // Present at zero from the start, so a dashboard's rate() and an alert see the
        // first failure instead of a series appearing.
        for output in ["clickhouse", "kafka"] {
            metrics.errors.with_label_values(&[output]);
        }
        Ok(metrics)
    }
}
