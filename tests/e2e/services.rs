//! Each service against golden input, on the local stack. Every scenario runs
//! the same acts — dimensions published, events (with an upstream-retry duplicate and a
//! late event), a dimension updated and a missing one arriving while the service runs,
//! SIGKILL and restart, more events — and compares every stored row with values written
//! out by hand here: enrichment, segment and the stream's own state across the restart.

mod article_reads;
mod chat_messages;
mod menu_clicks;
mod qr_scans;
