//! The gateway's metrics, `wxpulse_gateway_*`, on the same `/metrics`, `/healthz` and
//! `/readyz` endpoint as every wxpulse process.

use prometheus::{Encoder, Histogram, HistogramOpts, IntCounterVec, IntGauge, Opts, Registry};

/// Every `outcome` of `wxpulse_gateway_callbacks_total`.
pub const OUTCOMES: [&str; 15] = [
    "event",
    "follow",
    "contact",
    "ignored",
    "verified",
    "bad_signature",
    "malformed",
    "undecryptable",
    "unknown_account",
    "too_large",
    "rate_limited",
    "unavailable",
    "beacon_event",
    "beacon_rejected",
    "bad_beacon_key",
];

/// Counters and the answer-time histogram.
pub struct GatewayMetrics {
    registry: Registry,
    /// Callbacks by outcome: event, follow (a follow or unfollow; a subscribe through a QR
    /// code also counts an event), ignored, verified (GET), bad_signature, malformed,
    /// undecryptable, unknown_account, too_large, rate_limited, unavailable; beacon_event,
    /// beacon_rejected, bad_beacon_key for article reads.
    pub callbacks: IntCounterVec,
    /// Seconds from request to answer.
    pub answer_seconds: Histogram,
    /// Accounts loaded.
    pub accounts: IntGauge,
    /// Refused bodies the dead-letter topic rejected permanently (the runtime's
    /// `wxpulse_dlq_undeliverable_total`).
    pub dead_letters_undeliverable: IntCounterVec,
}

impl GatewayMetrics {
    /// Registers every metric with the `service="gateway"` label.
    pub fn new() -> GatewayMetrics {
        let labels = [("service".to_string(), "gateway".to_string())]
            .into_iter()
            .collect();
        let registry = Registry::new_custom(None, Some(labels)).expect("valid registry");
        let callbacks = IntCounterVec::new(
            Opts::new(
                "wxpulse_gateway_callbacks_total",
                "Callbacks received, by outcome.",
            ),
            &["outcome"],
        )
        .expect("valid metric");
        let answer_seconds = Histogram::with_opts(
            HistogramOpts::new(
                "wxpulse_gateway_answer_seconds",
                "Seconds from a callback's arrival to the answer (WeChat waits 5 s).",
            )
            .buckets(vec![
                0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 4.0, 5.0,
            ]),
        )
        .expect("valid metric");
        let accounts =
            IntGauge::new("wxpulse_gateway_accounts", "Accounts loaded.").expect("valid metric");
        let dead_letters_undeliverable = IntCounterVec::new(
            Opts::new(
                "wxpulse_dlq_undeliverable_total",
                "Dead letters the broker or client rejected permanently; logged, not in the topic.",
            ),
            &["reason"],
        )
        .expect("valid metric");
        // Every outcome exported from the start (at 0), so rates and alerts over them have
        // series before the first refusal.
        for outcome in OUTCOMES {
            callbacks.with_label_values(&[outcome]);
        }
        for m in [
            Box::new(callbacks.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(answer_seconds.clone()),
            Box::new(accounts.clone()),
            Box::new(dead_letters_undeliverable.clone()),
        ] {
            registry.register(m).expect("unique metric");
        }
        GatewayMetrics {
            registry,
            callbacks,
            answer_seconds,
            accounts,
            dead_letters_undeliverable,
        }
    }

    /// Counts one callback.
    pub fn outcome(&self, outcome: &str) {
        self.callbacks.with_label_values(&[outcome]).inc();
    }
}

impl Default for GatewayMetrics {
    fn default() -> Self {
        Self::new()
    }
}

impl wxpulse_runtime::metrics::Exposition for GatewayMetrics {
    fn render(&self) -> String {
        let mut out = Vec::new();
        let _ = prometheus::TextEncoder::new().encode(&self.registry.gather(), &mut out);
        String::from_utf8(out).unwrap_or_default()
    }

    fn readiness(&self) -> Result<(), String> {
        if self.accounts.get() > 0 {
            Ok(())
        } else {
            Err("no account loaded".to_string())
        }
    }
}
