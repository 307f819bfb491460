//! The shared runtime every wxpulse consumer service is built from.
//!
//! ```text
//!  Kafka ──► source ──► codec ──► validate ──► dedup ──► pii ──► Stream::row ──► sink ──► ClickHouse
//!  (thread,   (bounded   (Avro,    (dlq on      (event_id   (HMAC)  (the service's    (batches per
//!   rebalance  channel =  registry) rejection)   window,                enrichment)      partition,
//!   callbacks) backpressure)                     watermark)                              dedup token)
//! ```
//!
//! A service implements [`stream::Stream`] (topic, table, event → row) and calls
//! [`service::main`]. Offsets are committed only after ClickHouse acknowledged the rows;
//! redeliveries are filtered by a per-partition watermark kept in ClickHouse, and retried
//! inserts by `insert_deduplication_token` — see `docs/effectively-once.md`.

// `event_row!` names this crate by its name (derive attributes take a string path), which
// must resolve inside it too.
extern crate self as wxpulse_runtime;

/// What the stream crates' rows are built with, so `event_row!` works without each crate
/// naming `clickhouse`, `serde` and `uuid` itself.
#[doc(hidden)]
pub mod reexports {
    pub use clickhouse;
    pub use serde;
    pub use uuid;
}

pub mod batch;
pub mod calendar;
pub mod codec;
pub mod config;
pub mod decode;
pub mod dedup;
pub mod dlq;
pub mod enrich;
pub mod events;
pub(crate) mod fan_table;
pub mod kafka;
pub mod metrics;
pub mod overflow;
pub mod pii;
pub mod pipeline;
pub mod prefetch;
pub mod retry;
pub mod secret;
pub mod segment;
pub mod service;
pub mod shutdown;
pub mod sink;
pub mod source;
pub mod stream;
pub mod streams;
pub mod tls;
pub mod validate;
