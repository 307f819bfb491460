//! Dead letters: records a service cannot write go to a dead-letter topic, wrapped in an
//! Avro envelope (`schemas/avro/dead_letter/v1.avsc`) that carries the reason, where the
//! record came from and its raw bytes, so it can be listed, fixed and replayed.
//!
//! Everything is in the message value: Tansu's sqlite engine fetches records with headers
//! superlinearly slowly, and a value survives every tool that copies topics.

use serde::{Deserialize, Serialize};

use crate::codec;

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
    /// A reason this build does not know (read side only).
    #[serde(rename = "OTHER", other)]
    Other,
}

impl DeadLetterReason {
    /// Every reason a service emits, for pre-registering metric labels.
    pub const ALL: [DeadLetterReason; 7] = [
        Self::Undecodable,
        Self::UnknownSchema,
        Self::MissingField,
        Self::InvalidField,
        Self::FutureTimestamp,
        Self::TooOld,
        Self::Oversized,
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

/// The envelope as written to the dead-letter topic.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
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
    #[serde(with = "opt_bytes")]
    pub source_key: Option<&'a [u8]>,
    /// Rejecting service.
    pub service: &'a str,
    /// When rejected, ms.
    pub first_seen: i64,
    /// Raw value.
    #[serde(with = "serde_bytes_borrowed")]
    pub payload: &'a [u8],
}

/// Schema subject of the envelope.
pub const SUBJECT: &str = "wxpulse.dead_letters-value";

impl DeadLetter<'_> {
    /// Encodes in the Confluent wire format with the embedded envelope schema.
    pub fn encode(&self) -> Vec<u8> {
        let embedded = codec::latest(SUBJECT).expect("the envelope schema is embedded");
        let schema = codec::parse(embedded.json).expect("embedded schemas parse (tested)");
        let mut out = Vec::with_capacity(self.payload.len() + self.detail.len() + 64);
        codec::encode_into(self, embedded.id, &schema, &mut out)
            .expect("an envelope always matches its own schema");
        out
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
mod tests {
    use super::*;

    #[test]
    fn envelope_round_trips_with_raw_bytes() {
        let letter = DeadLetter {
            reason: DeadLetterReason::TooOld,
            detail: "arrived 9 days late",
            source_topic: "wxpulse.menu_clicks",
            source_partition: 3,
            source_offset: 12345,
            source_key: Some(b"wxa|o1"),
            service: "menu-clicks",
            first_seen: 1_700_000_000_000,
            payload: &[0, 0, 0, 0, 1, 0xff, 0x00],
        };
        let bytes = letter.encode();
        let (id, datum) = codec::split_frame(&bytes).expect("framed");
        let schema = codec::parse(codec::latest(SUBJECT).expect("embedded").json).expect("parses");
        assert_eq!(id, 7);
        let back: DeadLetter<'_> = codec::decode(datum, &schema).expect("decodes");
        assert_eq!(back, letter);
    }

    #[test]
    fn reason_names_round_trip() {
        for r in DeadLetterReason::ALL {
            assert_eq!(DeadLetterReason::parse(r.as_str()), Some(r));
        }
    }
}
