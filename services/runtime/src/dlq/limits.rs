//! How large a dead letter may be: the producer's `message.max.bytes` and how it is read.
//! It uses nothing of the config module, so config validation can check
//! `kafka.dead_letter_truncate_bytes` against it while the rest of `dlq` depends on config.

use rdkafka::error::KafkaError;

/// librdkafka's default `message.max.bytes`, used when `[kafka.client]` does not set it.
pub const DEFAULT_MESSAGE_MAX_BYTES: usize = 1_000_000;

/// Bytes librdkafka adds around one record's key and value when it checks
/// `message.max.bytes` (≤ 36, `RD_KAFKAP_MESSAGE_V2_MAX_OVERHEAD`) plus the batch header a
/// large record travels in alone (61), rounded up.
pub(super) const RECORD_OVERHEAD: usize = 128;

/// How large a dead letter may be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// The producer's `message.max.bytes`: key + value + framing must stay within it.
    pub max_message_bytes: usize,
    /// How many first bytes of a value a truncated letter keeps.
    pub truncate_to: usize,
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
