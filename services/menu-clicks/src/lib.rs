//! Menu clicks: a fan tapped a custom-menu button (70% of interactions, seed 000).

use clickhouse::Row;
use serde::Serialize;
use wxpulse_runtime::config::Config;
use wxpulse_runtime::events::{MenuClick, MenuEvent};
use wxpulse_runtime::stream::{Meta, Stream};

/// The menu-click stream.
pub struct MenuClicks;

impl MenuClicks {
    /// Builds the stream from the service config.
    pub fn new(_config: &Config) -> Self {
        MenuClicks
    }
}

/// A row of `wxpulse.menu_clicks`.
#[derive(Debug, Clone, Row, Serialize)]
#[allow(missing_docs)]
pub struct MenuClickRow {
    #[serde(with = "clickhouse::serde::uuid")]
    pub event_id: uuid::Uuid,
    pub app_id: String,
    pub fan_id: u64,
    pub union_id: u64,
    pub event_time: i64,
    pub server_time: i64,
    pub event: &'static str,
    pub event_key: String,
    pub menu_id: Option<i64>,
    pub kafka_topic: &'static str,
    pub kafka_partition: i32,
    pub kafka_offset: i64,
}

/// The stored name of a menu event.
pub fn event_name(event: MenuEvent) -> &'static str {
    match event {
        MenuEvent::Click => "CLICK",
        MenuEvent::View => "VIEW",
        MenuEvent::ViewMiniprogram => "VIEW_MINIPROGRAM",
        MenuEvent::Other => "OTHER",
    }
}

impl Stream for MenuClicks {
    const SERVICE: &'static str = "menu-clicks";
    const TOPIC: &'static str = "wxpulse.menu_clicks";
    const TABLE: &'static str = "menu_clicks";
    const RECORD: &'static str = "com.wxpulse.events.MenuClick";
    type Event<'a> = MenuClick<'a>;
    type Row = MenuClickRow;

    fn row(&mut self, e: &MenuClick<'_>, meta: &Meta) -> MenuClickRow {
        MenuClickRow {
            event_id: meta.event_id,
            app_id: e.app_id.to_string(),
            fan_id: meta.fan_id,
            union_id: meta.union_id,
            event_time: e.client_time,
            server_time: e.server_time,
            event: event_name(e.event),
            event_key: e.event_key.to_string(),
            menu_id: e.menu_id,
            kafka_topic: meta.topic,
            kafka_partition: meta.partition,
            kafka_offset: meta.offset,
        }
    }
}
