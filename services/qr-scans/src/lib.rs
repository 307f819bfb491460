//! QR scans: a fan scanned a parametric QR code (6% of interactions, seed 000).
//! `SUBSCRIBE` with `qrscene_<scene>` is a new follower brought by that code.

use clickhouse::Row;
use serde::Serialize;
use wxpulse_runtime::config::Config;
use wxpulse_runtime::events::{QrEvent, QrScan};
use wxpulse_runtime::stream::{Meta, Stream};

/// The QR-scan stream.
pub struct QrScans;

impl QrScans {
    /// Builds the stream from the service config.
    pub fn new(_config: &Config) -> Self {
        QrScans
    }
}

/// A row of `wxpulse.qr_scans`.
#[derive(Debug, Clone, Row, Serialize)]
#[allow(missing_docs)]
pub struct QrScanRow {
    #[serde(with = "clickhouse::serde::uuid")]
    pub event_id: uuid::Uuid,
    pub app_id: String,
    pub fan_id: u64,
    pub union_id: u64,
    pub event_time: i64,
    pub server_time: i64,
    pub event: &'static str,
    pub event_key: String,
    pub scene: String,
    pub is_new_follow: bool,
    pub kafka_topic: &'static str,
    pub kafka_partition: i32,
    pub kafka_offset: i64,
}

/// The scene inside a WeChat EventKey: `qrscene_123` on subscribe, `123` on scan.
pub fn scene_of(event_key: &str) -> &str {
    event_key.strip_prefix("qrscene_").unwrap_or(event_key)
}

impl Stream for QrScans {
    const SERVICE: &'static str = "qr-scans";
    const TOPIC: &'static str = "wxpulse.qr_scans";
    const TABLE: &'static str = "qr_scans";
    const RECORD: &'static str = "com.wxpulse.events.QrScan";
    type Event<'a> = QrScan<'a>;
    type Row = QrScanRow;

    fn row(&mut self, e: &QrScan<'_>, meta: &Meta) -> QrScanRow {
        let event = match e.event {
            QrEvent::Subscribe => "SUBSCRIBE",
            QrEvent::Scan => "SCAN",
            QrEvent::Other => "OTHER",
        };
        QrScanRow {
            event_id: meta.event_id,
            app_id: e.app_id.to_string(),
            fan_id: meta.fan_id,
            union_id: meta.union_id,
            event_time: e.client_time,
            server_time: e.server_time,
            event,
            event_key: e.event_key.to_string(),
            scene: scene_of(e.event_key).to_string(),
            is_new_follow: e.event == QrEvent::Subscribe,
            kafka_topic: meta.topic,
            kafka_partition: meta.partition,
            kafka_offset: meta.offset,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scene_is_parsed_from_both_key_forms() {
        assert_eq!(scene_of("qrscene_store_0042"), "store_0042");
        assert_eq!(scene_of("store_0042"), "store_0042");
        assert_eq!(scene_of("qrscene_123"), "123");
    }
}
