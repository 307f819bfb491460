//! Effectively-once under the faults an audit found it broke on: an owner that is revoked
//! while blocked, an INSERT whose materialized view fails followed by a crash, a topic
//! re-created under a stored watermark, and a schema registry that errors. Each test
//! produces to the real broker, reads back from the real ClickHouse engine and compares
//! with what it produced itself.

mod dead_letters;
mod helpers;
mod ingest;
mod registry;
