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

mod fit;
mod letter;
pub(crate) mod limits;
mod sink;

pub use fit::Fitted;
pub use letter::{
    sha256_hex, DeadLetter, DeadLetterReason, DeadLetterRow, Envelope, Rejection, SUBJECT,
};
pub use limits::{message_max_bytes, DeadLetterError, Limits, DEFAULT_MESSAGE_MAX_BYTES};
pub use sink::{classify, DeadLetterSink, Failure, Pending};

#[cfg(test)]
mod tests;
