//! Sizing: a dead letter's envelope always fits the producer's `message.max.bytes` — an
//! oversized record keeps only a prefix of its value, any envelope still too large is cut
//! until it fits — and, sealed, holds no readable PII.

use super::letter::{sha256_hex, DeadLetter, DeadLetterReason, Envelope};
use super::limits::{Limits, RECORD_OVERHEAD};
use crate::pii::{letter_origin, Sealer};

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
    pub(super) fn fit(&self, key: Option<&'a [u8]>, keep: usize, limits: &Limits) -> Fitted {
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
