//! Harness of the end-to-end tests: a private local stack (Tansu + chdb-http, started by
//! `deploy/local/stack.sh` on free ports in a temp dir), the real service binaries as child
//! processes, and helpers to produce, wait and query.
//!
//! Service binaries are taken from the cargo target dir; `make test` builds them first.

mod events;
mod logs;
mod query;
mod service;
mod stack;

pub use events::{encode_event, expected_fan_id};
pub use logs::{log_tail, service_log};
pub use query::{count, last_month, mirror_profiles, rollup, view_statement, wait_for};
pub use service::{
    binary, cli, http_get, metric, owns_partitions, ready, until_ok, Gateway, Service, SERVICES,
    SESSION_TIMEOUT, TEST_PII_KEY,
};
pub use stack::{free_port, kafka, repo_root, Stack};
