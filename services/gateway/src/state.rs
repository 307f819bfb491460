//! What every endpoint of the gateway shares: its state, how a request is refused (and a
//! refused signed body dead-lettered), and per-account admission. The callback endpoint
//! (`server`) and the beacon (`beacon`) build on it and not on each other.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use hyper::{Request, StatusCode};
use rdkafka::producer::FutureProducer;
use tokio_util::sync::CancellationToken;
use wxpulse_runtime::dlq::{DeadLetter, DeadLetterReason, DeadLetterSink};
use wxpulse_runtime::enrich::Dimension;
use wxpulse_runtime::streams::EventStream;

use crate::accounts::Accounts;
use crate::limits::{Lane, Limits, Refused as OverLimit};
use crate::metrics::GatewayMetrics;

/// The writer schema (registry id and parsed) of each stream the gateway produces to.
pub struct Schemas {
    /// Of each event stream.
    pub events: HashMap<EventStream, (u32, serde_avro_fast::Schema)>,
    /// Of the dimension topics the gateway writes (fan follows, associate contacts).
    pub dimensions: HashMap<Dimension, (u32, serde_avro_fast::Schema)>,
}

/// What a request handler needs.
pub struct Gateway {
    /// The accounts.
    pub accounts: Arc<Accounts>,
    /// Idempotent, acks=all.
    pub producer: FutureProducer,
    /// Writer schemas.
    pub schemas: Schemas,
    /// Metrics.
    pub metrics: Arc<GatewayMetrics>,
    /// Body cap.
    pub max_body_bytes: usize,
    /// Broker acknowledgement deadline.
    pub answer_timeout: Duration,
    /// What the consumers reject, so a beacon's bad event is refused at once.
    pub validation: wxpulse_runtime::config::ValidationConfig,
    /// Where a signed body that cannot be read goes (sealed, like every dead letter), so
    /// a key mismatch or a sender's bug loses nothing.
    pub dead_letters: DeadLetterSink,
    /// The `dead_letters` table, so refusals show in `v_dead_letters_daily` beside the
    /// consumers' (best effort: the topic holds the letter either way).
    pub clickhouse: Option<clickhouse::Client>,
    /// Per-account admission.
    pub limits: Limits,
    /// Ends dead-letter retries at shutdown.
    pub shutdown: CancellationToken,
}

/// The query string's parameters (`+` and `%xx` decoded).
pub(crate) fn query(req: &Request<hyper::body::Incoming>) -> HashMap<String, String> {
    form_urlencoded::parse(req.uri().query().unwrap_or_default().as_bytes())
        .into_owned()
        .collect()
}

/// An answer: status and body text.
pub(crate) type Answer = (StatusCode, String);

/// A refused callback: the outcome it is counted under, its status, the reason told to the
/// caller, and — for a body WeChat signed that cannot be read — the body, which goes to
/// the dead-letter topic.
pub(crate) struct Refusal {
    pub(crate) outcome: &'static str,
    pub(crate) status: StatusCode,
    pub(crate) why: String,
    body: Option<Bytes>,
}

impl Refusal {
    pub(crate) fn new(
        outcome: &'static str,
        status: StatusCode,
        why: impl std::fmt::Display,
    ) -> Refusal {
        Refusal {
            outcome,
            status,
            why: why.to_string(),
            body: None,
        }
    }

    /// Keeps `body` for a dead letter when this is a refusal of what the body says.
    pub(crate) fn of_body(mut self, body: &Bytes) -> Refusal {
        if matches!(self.outcome, "malformed" | "undecryptable") {
            self.body = Some(body.clone());
        }
        self
    }
}

impl Gateway {
    /// Counts `refusal` and answers it; a refused body is dead-lettered first, and if the
    /// dead-letter topic does not take it in time the answer is 503 (WeChat retries).
    pub(crate) async fn refused(&self, path: &str, refusal: Refusal) -> Answer {
        self.metrics.outcome(refusal.outcome);
        if let Some(body) = &refusal.body {
            if !self.dead_letter(path, &refusal, body).await {
                self.metrics.outcome("unavailable");
                return (StatusCode::SERVICE_UNAVAILABLE, "retry\n".into());
            }
        }
        (refusal.status, format!("{}\n", refusal.why))
    }

    /// Sends a refused body to the dead-letter topic (reason `undecodable`, source
    /// `gateway:<path>`, never replayed: it is a callback, not an event) and records it in
    /// `dead_letters`; true once the topic has it.
    pub(crate) async fn dead_letter(&self, path: &str, refusal: &Refusal, body: &[u8]) -> bool {
        let now = now_ms();
        // A letter's identity is (source, partition, offset): the time in µs-like units
        // plus bits of the body's hash, so two replicas' letters do not collide.
        let sha = wxpulse_runtime::dlq::sha256_hex(body);
        let salt = i64::from_str_radix(&sha[..5], 16).unwrap_or(0) % 1_000_000;
        let source = format!("gateway:{path}");
        let detail = format!("{}: {}", refusal.outcome, refusal.why);
        let letter = DeadLetter {
            reason: DeadLetterReason::Undecodable,
            detail: &detail,
            source_topic: &source,
            source_partition: -1,
            source_offset: now * 1_000_000 + salt,
            source_key: None,
            service: "gateway",
            first_seen: now,
            payload: body,
        };
        let pending = self.dead_letters.send(&letter);
        let row = pending.row.clone();
        let delivered = tokio::time::timeout(
            self.answer_timeout,
            self.dead_letters.deliver_all(vec![pending], &self.shutdown),
        )
        .await;
        if !matches!(delivered, Ok(true)) {
            tracing::warn!(
                source,
                "refused callback not taken by the dead-letter topic"
            );
            return false;
        }
        tracing::info!(
            source,
            outcome = refusal.outcome,
            "refused callback dead-lettered"
        );
        if let Some(client) = self.clickhouse.clone() {
            tokio::spawn(async move {
                let written = async {
                    let mut insert = client
                        .insert::<wxpulse_runtime::dlq::DeadLetterRow>("dead_letters")
                        .await?;
                    insert.write(&row).await?;
                    insert.end().await
                }
                .await;
                if let Err(e) = written {
                    tracing::warn!(error = %e, "dead letter not recorded in dead_letters (it is in the topic)");
                }
            });
        }
        true
    }

    /// Admits `events` of `account`, or the refusal to answer.
    pub(crate) fn admit(&self, lane: Lane, account: &str, events: u32) -> Result<(), Refusal> {
        self.limits.admit(lane, account, events).map_err(|over| {
            let why = match over {
                OverLimit::OverRate => "rate limit of this account exceeded",
                OverLimit::OverBurst => "more events in one request than the account's burst",
            };
            Refusal::new("rate_limited", StatusCode::TOO_MANY_REQUESTS, why)
        })
    }
}

/// Unix time now, ms.
pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}
