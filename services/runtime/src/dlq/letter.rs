//! What a dead letter is: its reason, the rejected record as the pipeline hands it over,
//! the row ClickHouse keeps of it, and the Avro envelope on the topic with its encoding
//! and decoding (every embedded schema version).

use std::sync::OnceLock;

use serde::{Deserialize, Serialize};
use serde_avro_fast::Schema;
use sha2::{Digest, Sha256};

use crate::codec::{self, DecodeError};

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
    /// `payload` holds the sealed key and value (v3 schema, [`Sealer`](crate::pii::Sealer));
    /// `source_key` is empty and the letter's Kafka key is a keyed hash of the record's.
    #[serde(default)]
    pub sealed: bool,
}

fn unknown_length() -> i64 {
    -1
}

/// Schema subject of the envelope.
pub const SUBJECT: &str = "wxpulse.dead_letters-value";

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

pub(super) mod serde_bytes_borrowed {
    use serde::{Deserializer, Serializer};

    pub fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(bytes)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<&'de [u8], D::Error> {
        <&'de [u8] as serde::Deserialize>::deserialize(d)
    }
}

pub(super) mod opt_bytes {
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
