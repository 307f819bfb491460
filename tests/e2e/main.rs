//! End-to-end tests: real broker (Tansu), real ClickHouse engine (chdb behind the HTTP
//! adapter), real service binaries. Each test starts its own stack on free ports.
//! Run serially: `cargo test -p wxpulse-e2e -- --test-threads=1` (make test does).

mod broker_stall;
mod chaos;
mod conversions;
mod event_files;
mod fans_to_act_on;
mod faults;
mod foundation;
mod gateway;
mod golden;
mod hot_keys;
mod late_duplicates;
mod mirror;
mod notifications;
mod notifications_views;
mod notifier_downtime;
mod oversized;
mod prometheus;
mod quarantine;
mod reply_pairing;
mod report;
mod row_check;
mod runtime;
mod secure;
mod services;
mod views;
