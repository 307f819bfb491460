//! Menu clicks: a fan tapped a custom-menu button (70% of interactions, seed 000). The
//! button (per account, by key, URL or mini-program page) gives the category — e-commerce,
//! brand/product info or CRM (45/33/22 in the seed) — and the label.

use std::sync::Arc;

use wxpulse_runtime::config::Config;
use wxpulse_runtime::enrich::Dimension;
use wxpulse_runtime::events::MenuClick;
use wxpulse_runtime::stream::{Context, Stream};
use wxpulse_runtime::streams::EventStream;
use wxpulse_runtime::{event_row, row};

/// The menu-click stream.
pub struct MenuClicks;

impl MenuClicks {
    /// Builds the stream from the service config.
    pub fn new(_config: &Config) -> Self {
        MenuClicks
    }
}

event_row! {
    /// A row of `wxpulse.menu_clicks`.
    pub struct MenuClickRow {
        pub event: &'static str,
        pub event_key: Arc<str>,
        pub menu_id: Option<i64>,
        pub category: &'static str,
        pub label: Arc<str>,
    }
}

impl Stream for MenuClicks {
    const SERVICE: &'static str = EventStream::MenuClicks.service();
    const TOPIC: &'static str = EventStream::MenuClicks.topic();
    const TABLE: &'static str = EventStream::MenuClicks.table();
    const RECORD: &'static str = EventStream::MenuClicks.record();
    const DIMENSIONS: &'static [Dimension] = &[Dimension::MenuButton];
    type Event<'a> = MenuClick<'a>;
    type Row = MenuClickRow;

    fn row(&mut self, e: &MenuClick<'_>, cx: &Context<'_>) -> MenuClickRow {
        let (event_key, category, label) = match cx.dims.button(e.app_id, e.event_key) {
            Some(b) => (b.event_key.clone(), b.category.as_str(), b.label.clone()),
            None => (
                Arc::from(e.event_key),
                wxpulse_runtime::enrich::UNKNOWN,
                cx.dims.unknown(),
            ),
        };
        row!(MenuClickRow, cx, {
            event: e.event.as_str(),
            event_key: event_key,
            menu_id: e.menu_id,
            category: category,
            label: label,
        })
    }
}
