//! Enrichment: the dimensions every event is joined with, kept in memory from compacted
//! Kafka topics.

pub mod records;

pub use records::*;
