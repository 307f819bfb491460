//! The producer side: [`DeadLetterSink`] sends sized envelopes to the dead-letter topic
//! and awaits their delivery, retrying what can succeed ([`classify`]) and counting and
//! logging what never can, so a dead letter never stalls its partition.

use std::sync::Arc;

use prometheus::IntCounterVec;
use rdkafka::config::ClientConfig;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord};
use tokio_util::sync::CancellationToken;

use super::fit::Fitted;
use super::letter::{DeadLetter, DeadLetterReason, DeadLetterRow, Envelope};
use super::limits::{message_max_bytes, DeadLetterError, Limits};
use crate::config::{Config, RetryConfig};
use crate::pii::Sealer;
use crate::retry::Backoff;

impl Limits {
    /// The limits of a producer created from `client`, with `cfg`'s truncation.
    pub fn of(client: &ClientConfig, cfg: &Config) -> Result<Self, DeadLetterError> {
        Ok(Limits {
            max_message_bytes: message_max_bytes(client.get("message.max.bytes"))?,
            truncate_to: cfg.kafka.dead_letter_truncate_bytes,
        })
    }
}

/// What retrying a failed dead-letter delivery can achieve.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// Broker unreachable, queue full, timeout, leader change, topic missing or not
    /// authorised: a later attempt, or an operator's fix, delivers it. Retried.
    Transient,
    /// Too large for the producer or the broker (whose topic may allow less than the
    /// producer): a smaller envelope may pass. Retried once truncated.
    TooLarge,
    /// The broker or client rejects this message as it is; no retry can deliver it.
    Permanent,
}

/// Classifies a produce error. Unknown errors count as transient: retrying is safe, and a
/// flush that stays stuck shows in `/readyz` and `wxpulse_pipeline_flush_stuck_partitions`.
pub fn classify(error: &KafkaError) -> Failure {
    use RDKafkaErrorCode as C;
    let KafkaError::MessageProduction(code) = error else {
        return Failure::Transient;
    };
    match code {
        C::MessageSizeTooLarge | C::MessageBatchTooLarge => Failure::TooLarge,
        C::InvalidMessage
        | C::InvalidMessageSize
        | C::InvalidRecord
        | C::InvalidTimestamp
        | C::UnsupportedForMessageFormat
        | C::BadMessage
        | C::BadCompression => Failure::Permanent,
        _ => Failure::Transient,
    }
}

/// The one way dead letters reach their topic: sizes envelopes to fit, produces them, and
/// awaits their delivery, retrying only what can succeed. Cheap to clone (flush tasks
/// each hold one).
#[derive(Clone)]
pub struct DeadLetterSink {
    producer: FutureProducer,
    topic: Arc<str>,
    limits: Limits,
    retry: RetryConfig,
    undeliverable: IntCounterVec,
    sealer: Arc<Sealer>,
}

/// A dead letter handed to the producer; await it with [`DeadLetterSink::deliver_all`].
pub struct Pending {
    /// What ClickHouse's `dead_letters` table keeps of it, written after its delivery.
    pub row: DeadLetterRow,
    delivery: Option<Result<DeliveryFuture, KafkaError>>,
    value: Vec<u8>,
    key: Option<Vec<u8>>,
    reason: DeadLetterReason,
    source_topic: String,
    source_partition: i32,
    source_offset: i64,
}

impl DeadLetterSink {
    /// Creates the producer from `client` (the service's Kafka settings) for
    /// `kafka.dead_letter_topic`, sized by the `message.max.bytes` it will enforce.
    /// `undeliverable` is `wxpulse_dlq_undeliverable_total` of whichever process sends
    /// (a service, or the gateway with its own registry).
    pub fn create(
        client: &ClientConfig,
        cfg: &Config,
        undeliverable: &IntCounterVec,
    ) -> Result<Self, DeadLetterError> {
        let limits = Limits::of(client, cfg)?;
        let producer = client.create().map_err(DeadLetterError::Producer)?;
        Ok(Self::with_limits(producer, cfg, undeliverable, limits))
    }

    /// A sink over an existing producer; `limits` must be the producer's own.
    pub fn with_limits(
        producer: FutureProducer,
        cfg: &Config,
        undeliverable: &IntCounterVec,
        limits: Limits,
    ) -> Self {
        for reason in DeadLetterReason::ALL {
            undeliverable.with_label_values(&[reason.as_str()]);
        }
        DeadLetterSink {
            producer,
            topic: Arc::from(cfg.kafka.dead_letter_topic.as_str()),
            limits,
            retry: cfg.retry.clone(),
            undeliverable: undeliverable.clone(),
            sealer: Arc::new(Sealer::new(cfg.pii.key.expose().as_bytes())),
        }
    }

    /// Sizes `letter` to fit and hands it to the producer; nothing waits here.
    pub fn send(&self, letter: &DeadLetter<'_>) -> Pending {
        let fitted = letter.fit_sealed(&self.limits, &self.sealer);
        let mut pending = Pending {
            row: letter.row(),
            delivery: None,
            value: fitted.value,
            key: fitted.key,
            reason: letter.reason,
            source_topic: letter.source_topic.to_string(),
            source_partition: letter.source_partition,
            source_offset: letter.source_offset,
        };
        pending.delivery = Some(self.produce(&pending));
        pending
    }

    fn produce(&self, p: &Pending) -> Result<DeliveryFuture, KafkaError> {
        let mut record = FutureRecord::to(&self.topic).payload(&p.value);
        if let Some(key) = p.key.as_deref() {
            record = record.key(key);
        }
        self.producer.send_result(record).map_err(|(e, _)| e)
    }

    /// Awaits every letter's delivery. Transient failures are retried with jittered
    /// backoff; a letter that can never be delivered is counted, logged and skipped.
    /// `false` only when `cancel` fired first (the batch is no longer wanted).
    pub async fn deliver_all(&self, letters: Vec<Pending>, cancel: &CancellationToken) -> bool {
        for letter in letters {
            if !self.deliver(letter, cancel).await {
                return false;
            }
        }
        true
    }

    async fn deliver(&self, mut p: Pending, cancel: &CancellationToken) -> bool {
        let mut backoff = Backoff::new(&self.retry);
        let mut shrunk = false;
        loop {
            let Some(attempt) = crate::kafka::delivered(p.delivery.take(), cancel).await else {
                return false;
            };
            let Err(error) = attempt else {
                return true;
            };
            match classify(&error) {
                Failure::TooLarge if !shrunk => {
                    shrunk = true;
                    if let Some(smaller) = self.shrink(&p) {
                        tracing::warn!(
                            topic = %self.topic,
                            source_topic = %p.source_topic,
                            source_partition = p.source_partition,
                            source_offset = p.source_offset,
                            bytes = p.value.len(),
                            truncated_to = self.limits.truncate_to,
                            error = %error,
                            "dead letter too large for the broker; sending it truncated"
                        );
                        p.value = smaller.value;
                        p.key = smaller.key;
                        p.delivery = Some(self.produce(&p));
                        continue;
                    }
                    self.undeliverable(&p, &error);
                    return true;
                }
                Failure::TooLarge | Failure::Permanent => {
                    self.undeliverable(&p, &error);
                    return true;
                }
                Failure::Transient => {
                    let wait = backoff.next_delay();
                    tracing::warn!(
                        topic = %self.topic,
                        source_partition = p.source_partition,
                        source_offset = p.source_offset,
                        error = %error,
                        retry_in = ?wait,
                        "dead letter not delivered; retrying"
                    );
                    tokio::select! {
                        _ = tokio::time::sleep(wait) => {}
                        _ = cancel.cancelled() => return false,
                    }
                    p.delivery = Some(self.produce(&p));
                }
            }
        }
    }

    /// The pending letter's envelope cut to `truncate_to` bytes of payload, if that is
    /// smaller than what was sent.
    fn shrink(&self, p: &Pending) -> Option<Fitted> {
        let envelope = Envelope::decode(&p.value).ok()?;
        if envelope.payload.len() <= self.limits.truncate_to {
            return None;
        }
        let key = p.key.as_deref();
        Some(envelope.fit(key, self.limits.truncate_to, &self.limits))
    }

    fn undeliverable(&self, p: &Pending, error: &KafkaError) {
        self.undeliverable
            .with_label_values(&[p.reason.as_str()])
            .inc();
        tracing::error!(
            topic = %self.topic,
            source_topic = %p.source_topic,
            source_partition = p.source_partition,
            source_offset = p.source_offset,
            reason = p.reason.as_str(),
            bytes = p.value.len(),
            error = %error,
            "dead letter cannot be delivered (permanent error); the record is only in this \
             log and wxpulse_dlq_undeliverable_total, and its batch proceeds"
        );
    }
}
