//! Dead letters: records a service cannot write go to a dead-letter topic, wrapped in an
//! Avro envelope (`schemas/avro/dead_letter/`) that carries the reason, where the record
//! came from and its raw bytes, so it can be listed, fixed and replayed.
//!
//! Everything is in the message value: Tansu's sqlite engine fetches records with headers
//! superlinearly slowly, and a value survives every tool that copies topics.
//!
//! A dead letter must never stall its partition (issue 12): the pipeline awaits its
//! delivery before inserting the batch that contains it, so one that can never be
//! delivered would hold the partition's commits forever. Hence:
//! - an envelope always fits the producer's `message.max.bytes`: an oversized record keeps
//!   only the first `kafka.dead_letter_truncate_bytes` of its value, and any envelope that
//!   would still be too large is cut until it fits; the envelope (v2) says so and carries
//!   the whole value's length and SHA-256;
//! - [`DeadLetterSink`] retries transient produce errors with jittered backoff until the
//!   batch is no longer wanted, and never retries a permanent one: such a letter is
//!   counted in `wxpulse_dlq_undeliverable_total`, logged at error level with its source
//!   topic, partition and offset, and the batch proceeds.

use std::sync::{Arc, OnceLock};

use prometheus::IntCounterVec;
use rdkafka::config::ClientConfig;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord};
use serde::{Deserialize, Serialize};
use serde_avro_fast::Schema;
use sha2::{Digest, Sha256};
use tokio_util::sync::CancellationToken;

use crate::codec::{self, DecodeError};
use crate::config::{Config, RetryConfig};
use crate::pii::{letter_origin, Sealer};
use crate::retry::Backoff;

/// Why a record was rejected. A fixed set: it labels metrics and groups the CLI listing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum DeadLetterReason {
    /// Not Confluent-framed Avro, or the datum does not decode.
    #[serde(rename = "UNDECODABLE")]
    Undecodable,
    /// The schema id is unknown to the registry.
    #[serde(rename = "UNKNOWN_SCHEMA")]
    UnknownSchema,
    /// A required id (event_id, app_id, openid) is empty.
    #[serde(rename = "MISSING_FIELD")]
    MissingField,
    /// A field has an impossible value (event_id not a UUID, time before 2000...).
    #[serde(rename = "INVALID_FIELD")]
    InvalidField,
    /// The event claims to be from the future beyond the allowed clock skew.
    #[serde(rename = "FUTURE_TIMESTAMP")]
    FutureTimestamp,
    /// The event arrived later than the allowed lateness.
    #[serde(rename = "TOO_OLD")]
    TooOld,
    /// The payload is larger than allowed.
    #[serde(rename = "OVERSIZED")]
    Oversized,
    /// The event's `app_id` is not in the account dimension (`validation.unknown_account`):
    /// replay it once the account is published.
    #[serde(rename = "UNKNOWN_ACCOUNT")]
    UnknownAccount,
    /// A reason this build does not know (read side only).
    #[serde(rename = "OTHER", other)]
    Other,
}

impl DeadLetterReason {
    /// Every reason a service emits, for pre-registering metric labels.
    pub const ALL: [DeadLetterReason; 8] = [
        Self::Undecodable,
        Self::UnknownSchema,
        Self::MissingField,
        Self::InvalidField,
        Self::FutureTimestamp,
        Self::TooOld,
        Self::Oversized,
        Self::UnknownAccount,
    ];

    /// The metric label and CLI name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Undecodable => "undecodable",
            Self::UnknownSchema => "unknown_schema",
            Self::MissingField => "missing_field",
            Self::InvalidField => "invalid_field",
            Self::FutureTimestamp => "future_timestamp",
            Self::TooOld => "too_old",
            Self::Oversized => "oversized",
            Self::UnknownAccount => "unknown_account",
            Self::Other => "other",
        }
    }

    /// Parses the CLI name.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .chain([Self::Other])
            .find(|r| r.as_str() == s)
    }
}

/// A rejected record's reason and a short detail (never the payload).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    /// Class.
    pub reason: DeadLetterReason,
    /// What exactly, e.g. the decoder's message or the field name.
    pub detail: String,
}

impl Rejection {
    /// Shorthand.
    pub fn new(reason: DeadLetterReason, detail: impl Into<String>) -> Self {
        Rejection {
            reason,
            detail: detail.into(),
        }
    }
}

/// A rejected record, whole, as the pipeline hands it over; [`DeadLetter::fit`] makes the
/// [`Envelope`] that goes to the topic.
#[derive(Debug, Clone, PartialEq)]
pub struct DeadLetter<'a> {
    /// Class.
    pub reason: DeadLetterReason,
    /// Detail.
    pub detail: &'a str,
    /// Source topic.
    pub source_topic: &'a str,
    /// Source partition.
    pub source_partition: i32,
    /// Source offset.
    pub source_offset: i64,
    /// Source key.
    pub source_key: Option<&'a [u8]>,
    /// Rejecting service.
    pub service: &'a str,
    /// When rejected, ms.
    pub first_seen: i64,
    /// The whole raw value.
    pub payload: &'a [u8],
}

/// A dead letter as ClickHouse's `dead_letters` table keeps it (migration 0010): what and
/// why, never the payload — only its length and SHA-256, so the table holds no raw openid
/// or chat text and BI can count rejections without access to the topic.
#[derive(Debug, Clone, PartialEq, Eq, clickhouse::Row, Serialize)]
pub struct DeadLetterRow {
    /// Rejecting service.
    pub service: String,
    /// Metric label of the reason (`unknown_schema`, …).
    pub reason: &'static str,
    /// Source topic.
    pub source_topic: String,
    /// Source partition.
    pub source_partition: i32,
    /// Source offset.
    pub source_offset: i64,
    /// When rejected, ms.
    pub first_seen: i64,
    /// Detail (decoder error, field name).
    pub detail: String,
    /// Length of the raw value.
    pub payload_length: u64,
    /// SHA-256 of the raw value, hex.
    pub payload_sha256: String,
}

impl DeadLetter<'_> {
    /// The row `dead_letters` keeps of this letter.
    pub fn row(&self) -> DeadLetterRow {
        DeadLetterRow {
            service: self.service.to_string(),
            reason: self.reason.as_str(),
            source_topic: self.source_topic.to_string(),
            source_partition: self.source_partition,
            source_offset: self.source_offset,
            first_seen: self.first_seen,
            detail: self.detail.to_string(),
            payload_length: self.payload.len() as u64,
            payload_sha256: sha256_hex(self.payload),
        }
    }
}

/// The envelope as written to (v2) and read from (v1, v2) the dead-letter topic.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Envelope<'a> {
    /// Class.
    pub reason: DeadLetterReason,
    /// Detail.
    pub detail: &'a str,
    /// Source topic.
    pub source_topic: &'a str,
    /// Source partition.
    pub source_partition: i32,
    /// Source offset.
    pub source_offset: i64,
    /// Source key.
    #[serde(with = "opt_bytes")]
    pub source_key: Option<&'a [u8]>,
    /// Rejecting service.
    pub service: &'a str,
    /// When rejected, ms.
    pub first_seen: i64,
    /// Raw value: whole, or its first bytes when `payload_truncated`.
    #[serde(with = "serde_bytes_borrowed")]
    pub payload: &'a [u8],
    /// Length of the whole value; -1 in v1 envelopes (use [`Envelope::original_length`]).
    #[serde(default = "unknown_length")]
    pub payload_length: i64,
    /// Hex SHA-256 of the whole value; empty in v1 envelopes.
    #[serde(default)]
    pub payload_sha256: &'a str,
    /// The letter is not whole (see the v2 schema): it must not be replayed.
    #[serde(default)]
    pub payload_truncated: bool,
    /// `payload` holds the sealed key and value (v3 schema, [`Sealer`]); `source_key` is
    /// empty and the letter's Kafka key is a keyed hash of the record's.
    #[serde(default)]
    pub sealed: bool,
}

fn unknown_length() -> i64 {
    -1
}

/// Schema subject of the envelope.
pub const SUBJECT: &str = "wxpulse.dead_letters-value";

/// librdkafka's default `message.max.bytes`, used when `[kafka.client]` does not set it.
pub const DEFAULT_MESSAGE_MAX_BYTES: usize = 1_000_000;

/// Bytes librdkafka adds around one record's key and value when it checks
/// `message.max.bytes` (≤ 36, `RD_KAFKAP_MESSAGE_V2_MAX_OVERHEAD`) plus the batch header a
/// large record travels in alone (61), rounded up.
const RECORD_OVERHEAD: usize = 128;

/// How large a dead letter may be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// The producer's `message.max.bytes`: key + value + framing must stay within it.
    pub max_message_bytes: usize,
    /// How many first bytes of a value a truncated letter keeps.
    pub truncate_to: usize,
}

impl Limits {
    /// The limits of a producer created from `client`, with `cfg`'s truncation.
    pub fn of(client: &ClientConfig, cfg: &Config) -> Result<Self, DeadLetterError> {
        Ok(Limits {
            max_message_bytes: message_max_bytes(client.get("message.max.bytes"))?,
            truncate_to: cfg.kafka.dead_letter_truncate_bytes,
        })
    }
}

/// Parses a `message.max.bytes` property; `None` is librdkafka's default.
pub fn message_max_bytes(value: Option<&str>) -> Result<usize, DeadLetterError> {
    match value {
        None => Ok(DEFAULT_MESSAGE_MAX_BYTES),
        Some(v) => v
            .trim()
            .parse()
            .map_err(|_| DeadLetterError::MessageMaxBytes(v.to_string())),
    }
}

/// An envelope sized to fit, ready to produce.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fitted {
    /// The framed Avro envelope.
    pub value: Vec<u8>,
    /// The message key: the source key, unless it alone would not fit.
    pub key: Option<Vec<u8>>,
    /// Whether the envelope is marked truncated.
    pub truncated: bool,
}

impl DeadLetter<'_> {
    /// The envelope of this letter within `limits`: an oversized record keeps the first
    /// `truncate_to` bytes of its value, any other keeps it whole unless the envelope would
    /// not fit the producer's `message.max.bytes`.
    pub fn fit(&self, limits: &Limits) -> Fitted {
        let sha = sha256_hex(self.payload);
        let envelope = Envelope {
            reason: self.reason,
            detail: self.detail,
            source_topic: self.source_topic,
            source_partition: self.source_partition,
            source_offset: self.source_offset,
            source_key: self.source_key,
            service: self.service,
            first_seen: self.first_seen,
            payload: self.payload,
            payload_length: self.payload.len() as i64,
            payload_sha256: &sha,
            payload_truncated: false,
            sealed: false,
        };
        envelope.fit(self.source_key, self.keep(limits), limits)
    }

    /// How many bytes of the value an envelope keeps at most: a prefix of an oversized
    /// record, anything else whole.
    fn keep(&self, limits: &Limits) -> usize {
        if self.reason == DeadLetterReason::Oversized {
            limits.truncate_to
        } else {
            usize::MAX
        }
    }

    /// Like [`DeadLetter::fit`], with the record's key and value sealed by `sealer` and the
    /// letter keyed by a keyed hash of the record's key: the topic holds no readable PII.
    /// The sealed value is cut before sealing, so whatever is kept can still be opened;
    /// only a letter whose detail alone would not fit gets a cut, unopenable seal.
    pub fn fit_sealed(&self, limits: &Limits, sealer: &Sealer) -> Fitted {
        let sha = sha256_hex(self.payload);
        let letter_key = self.source_key.map(|k| sealer.pseudonymous_key(k));
        let empty = Envelope {
            reason: self.reason,
            detail: self.detail,
            source_topic: self.source_topic,
            source_partition: self.source_partition,
            source_offset: self.source_offset,
            source_key: None,
            service: self.service,
            first_seen: self.first_seen,
            payload: &[],
            payload_length: self.payload.len() as i64,
            payload_sha256: &sha,
            payload_truncated: false,
            sealed: true,
        };
        // + 10: the payload's varint length grows from 1 byte to at most 10.
        let fixed = empty.encode().len()
            + 10
            + letter_key.as_ref().map_or(0, Vec::len)
            + Sealer::OVERHEAD
            + self.source_key.map_or(0, <[u8]>::len);
        let room = limits
            .max_message_bytes
            .saturating_sub(RECORD_OVERHEAD)
            .saturating_sub(fixed);
        let keep = self.keep(limits).min(room).min(self.payload.len());
        let origin = letter_origin(self.source_topic, self.source_partition, self.source_offset);
        let sealed = sealer.seal(self.source_key, &self.payload[..keep], &origin);
        let envelope = Envelope {
            payload: &sealed,
            payload_truncated: keep < self.payload.len(),
            ..empty
        };
        envelope.fit(letter_key.as_deref(), usize::MAX, limits)
    }
}

impl<'a> Envelope<'a> {
    /// Decodes a framed envelope written with any embedded version of the schema.
    pub fn decode(framed: &'a [u8]) -> Result<Self, DecodeError> {
        let (id, datum) = codec::split_frame(framed)?;
        let schema = readers()
            .iter()
            .find(|(known, _)| *known == id)
            .map(|(_, s)| s)
            .ok_or(DecodeError::UnknownSchema(id))?;
        codec::decode(datum, schema)
    }

    /// Encodes with the newest embedded schema, in the Confluent wire format.
    pub fn encode(&self) -> Vec<u8> {
        let (id, schema) = writer();
        let mut out = Vec::with_capacity(self.payload.len() + self.detail.len() + 160);
        codec::encode_into(self, *id, schema, &mut out)
            .expect("an envelope always matches its own schema (tested)");
        out
    }

    /// Length of the whole original value (v1 envelopes are always whole).
    pub fn original_length(&self) -> u64 {
        u64::try_from(self.payload_length).unwrap_or(self.payload.len() as u64)
    }

    /// This envelope with its payload cut to `n` bytes (marked truncated if that cuts).
    fn cut(&self, n: usize) -> Envelope<'a> {
        let n = n.min(self.payload.len());
        Envelope {
            payload: &self.payload[..n],
            payload_truncated: self.payload_truncated || n < self.payload.len(),
            ..self.clone()
        }
    }

    /// Encodes with at most `keep` bytes of payload, and fewer — down to cutting an
    /// oversized key and detail — until key and value fit `limits.max_message_bytes`.
    fn fit(&self, key: Option<&'a [u8]>, keep: usize, limits: &Limits) -> Fitted {
        let budget = limits.max_message_bytes.saturating_sub(RECORD_OVERHEAD);
        let key_len = key.map_or(0, <[u8]>::len);
        let done = |e: &Envelope<'_>, value: Vec<u8>, key: Option<&[u8]>| Fitted {
            value,
            key: key.map(<[u8]>::to_vec),
            truncated: e.payload_truncated,
        };
        let asked = self.cut(keep);
        let value = asked.encode();
        if value.len() + key_len <= budget {
            return done(&asked, value, key);
        }
        // The payload's varint length only shrinks with it: `fixed` is an upper bound.
        let fixed = value.len() - asked.payload.len();
        let room = budget.saturating_sub(fixed + key_len);
        let prefix = self.cut(room.min(limits.truncate_to));
        let value = prefix.encode();
        if value.len() + key_len <= budget {
            return done(&prefix, value, key);
        }
        // Key or detail alone too large: produce without a key, cut source key and detail.
        let small = budget / 8;
        let bare = Envelope {
            detail: truncate_str(self.detail, small),
            source_key: self.source_key.map(|k| &k[..k.len().min(small)]),
            payload_truncated: true,
            ..self.cut(0)
        };
        // + 9: the payload's varint length grows from 1 byte (empty) to at most 10.
        let fixed = bare.encode().len() + 9;
        let last = Envelope {
            payload: &self.payload[..budget
                .saturating_sub(fixed)
                .min(limits.truncate_to)
                .min(self.payload.len())],
            ..bare
        };
        let value = last.encode();
        done(&last, value, None)
    }
}

fn truncate_str(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// Lower-case hex SHA-256, as envelopes carry it.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

fn writer() -> &'static (u32, Schema) {
    static WRITER: OnceLock<(u32, Schema)> = OnceLock::new();
    WRITER.get_or_init(|| {
        let embedded = codec::latest(SUBJECT).expect("the envelope schema is embedded");
        let schema = codec::parse(embedded.json).expect("embedded schemas parse (tested)");
        (embedded.id, schema)
    })
}

fn readers() -> &'static [(u32, Schema)] {
    static READERS: OnceLock<Vec<(u32, Schema)>> = OnceLock::new();
    READERS.get_or_init(|| {
        codec::EMBEDDED
            .iter()
            .filter(|s| s.subject == SUBJECT)
            .map(|s| {
                let schema = codec::parse(s.json).expect("embedded schemas parse (tested)");
                (s.id, schema)
            })
            .collect()
    })
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

/// Why the dead-letter sink could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum DeadLetterError {
    /// `[kafka.client] message.max.bytes` is not a number.
    #[error("kafka.client message.max.bytes is not a number of bytes: {0:?}")]
    MessageMaxBytes(String),
    /// librdkafka refused the producer configuration.
    #[error("cannot create the dead-letter producer")]
    Producer(#[source] KafkaError),
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
            let attempt = match p.delivery.take() {
                Some(Ok(delivery)) => tokio::select! {
                    r = delivery => match r {
                        Ok(Ok(_)) => Ok(()),
                        Ok(Err((e, _))) => Err(e),
                        Err(_) => Err(KafkaError::Canceled),
                    },
                    _ = cancel.cancelled() => return false,
                },
                Some(Err(e)) => Err(e),
                None => Err(KafkaError::Canceled),
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

mod serde_bytes_borrowed {
    use serde::{Deserializer, Serializer};

    pub fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(bytes)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<&'de [u8], D::Error> {
        <&'de [u8] as serde::Deserialize>::deserialize(d)
    }
}

mod opt_bytes {
    use serde::{Deserializer, Serializer};

    pub fn serialize<S: Serializer>(bytes: &Option<&[u8]>, s: S) -> Result<S::Ok, S::Error> {
        struct B<'a>(&'a [u8]);
        impl serde::Serialize for B<'_> {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_bytes(self.0)
            }
        }
        match bytes {
            Some(b) => s.serialize_some(&B(b)),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<&'de [u8]>, D::Error> {
        <Option<&'de [u8]> as serde::Deserialize>::deserialize(d)
    }
}

#[cfg(test)]
mod tests;
