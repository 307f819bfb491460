//! The `wxpulse` command line as a library, so end-to-end tests drive the same code.

pub mod dims;
pub mod dlq;
pub mod events;
pub mod ingest;
pub mod migrate;
pub mod mirror;
pub mod produce;
pub mod quarantine;
pub mod topics;
