//! Orders: purchases and refunds from the mini-program mall and store POS (seed 003's
//! social-selling funnel, seed 004's conversions). The service only records each order,
//! enriched with its store and the share-code associate's store, and stamps the
//! attribution window in force. Crediting an order to the touches before it (associate
//! chats, push or CTA article reads, QR scans, e-commerce menu clicks) happens in
//! ClickHouse (`v_order_credits`, migration 0007) because the touches arrive on four
//! other topics, in any order relative to the order: a join at query time over the
//! effectively-once raw tables is exact whichever arrives first, and has no state of its
//! own to lose on a restart or rebalance.

use std::sync::Arc;

use wxpulse_runtime::config::Config;
use wxpulse_runtime::dlq::{DeadLetterReason as R, Rejection};
use wxpulse_runtime::enrich::{Dimension, Dimensions};
use wxpulse_runtime::events::{Order, OrderChannel, OrderKind};
use wxpulse_runtime::stream::{Context, Stream};
use wxpulse_runtime::streams::EventStream;
use wxpulse_runtime::{event_row, row};

/// The order stream.
pub struct Orders {
    /// `attribution.window` in seconds, stamped on every row.
    window_s: u32,
    /// The last currency written, shared by the rows that repeat it (nearly all: CNY)
    /// instead of copied into each.
    currency: Arc<str>,
}

impl Orders {
    /// Builds the stream from the service config.
    pub fn new(config: &Config) -> Self {
        Orders {
            // Validated at startup to be at most 90 days, so it fits.
            window_s: u32::try_from(config.attribution.window.as_secs()).unwrap_or(u32::MAX),
            currency: Arc::from("CNY"),
        }
    }
}

event_row! {
    /// A row of `wxpulse.orders`.
    pub struct OrderRow {
        pub order_id: String,
        pub kind: &'static str,
        pub amount_fen: i64,
        pub currency: Arc<str>,
        pub channel: &'static str,
        pub store_id: Arc<str>,
        pub region: Arc<str>,
        pub share_code: Arc<str>,
        pub share_store_id: Arc<str>,
        pub share_region: Arc<str>,
        pub items: i32,
        pub attribution_window_s: u32,
    }
}

/// Why an order cannot be counted, or `None` when it can.
pub fn invalid(order: &Order<'_>) -> Option<Rejection> {
    if order.kind == OrderKind::Other {
        return Some(Rejection::new(
            R::InvalidField,
            "kind is neither PURCHASE nor REFUND",
        ));
    }
    if order.order_id.is_empty() {
        return Some(Rejection::new(R::MissingField, "order_id is empty"));
    }
    if order.amount_fen <= 0 {
        return Some(Rejection::new(
            R::InvalidField,
            format!("amount_fen {} is not positive", order.amount_fen),
        ));
    }
    if order.items < 0 {
        return Some(Rejection::new(
            R::InvalidField,
            format!("items {} is negative", order.items),
        ));
    }
    let c = order.currency.as_bytes();
    if c.len() != 3 || !c.iter().all(u8::is_ascii_uppercase) {
        return Some(Rejection::new(
            R::InvalidField,
            format!("currency {:?} is not an ISO 4217 code", order.currency),
        ));
    }
    None
}

/// A store and its region: empty for none, `unknown` for a store the dimension lacks.
fn store_and_region(dims: &Dimensions, store_id: Option<&str>) -> (Arc<str>, Arc<str>) {
    match store_id.filter(|s| !s.is_empty()) {
        None => (dims.empty(), dims.empty()),
        Some(id) => (
            Arc::from(id),
            dims.store(id)
                .map_or_else(|| dims.unknown(), |s| s.region.clone()),
        ),
    }
}

impl Stream for Orders {
    const SERVICE: &'static str = EventStream::Orders.service();
    const TOPIC: &'static str = EventStream::Orders.topic();
    const TABLE: &'static str = EventStream::Orders.table();
    const RECORD: &'static str = EventStream::Orders.record();
    const DIMENSIONS: &'static [Dimension] = &[Dimension::Associate, Dimension::Store];
    type Event<'a> = Order<'a>;
    type Row = OrderRow;

    fn check(&self, order: &Order<'_>) -> Result<(), Rejection> {
        invalid(order).map_or(Ok(()), Err)
    }

    fn row(&mut self, o: &Order<'_>, cx: &Context<'_>) -> OrderRow {
        let dims = cx.dims;
        let (store_id, region) = store_and_region(dims, o.store_id);
        let (share_code, share_store_id, share_region) =
            match o.share_code.filter(|s| !s.is_empty()) {
                None => (dims.empty(), dims.empty(), dims.empty()),
                Some(code) => match dims.associate(code) {
                    Some(a) => {
                        let (store, region) = store_and_region(dims, Some(&a.store_id));
                        (a.userid.clone(), store, region)
                    }
                    None => (Arc::from(code), dims.unknown(), dims.unknown()),
                },
            };
        if *self.currency != *o.currency {
            self.currency = Arc::from(o.currency);
        }
        row!(OrderRow, cx, {
            order_id: o.order_id.to_string(),
            kind: match o.kind {
                OrderKind::Refund => "refund",
                _ => "purchase",
            },
            amount_fen: o.amount_fen,
            currency: self.currency.clone(),
            channel: match o.channel {
                OrderChannel::MiniProgram => "mini_program",
                OrderChannel::StorePos => "store_pos",
                OrderChannel::Other => "other",
            },
            store_id: store_id,
            region: region,
            share_code: share_code,
            share_store_id: share_store_id,
            share_region: share_region,
            items: o.items,
            attribution_window_s: self.window_s,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn order(kind: OrderKind, amount_fen: i64, currency: &str) -> Order<'_> {
        Order {
            event_id: "e",
            order_id: "o1",
            kind,
            app_id: "a",
            openid: "f",
            unionid: None,
            order_time: 1,
            server_time: 2,
            amount_fen,
            currency,
            store_id: None,
            channel: OrderChannel::MiniProgram,
            share_code: None,
            items: 1,
        }
    }

    #[test]
    fn orders_that_cannot_be_counted_are_rejected_with_the_field() {
        assert!(invalid(&order(OrderKind::Purchase, 100, "CNY")).is_none());
        assert!(invalid(&order(OrderKind::Refund, 1, "USD")).is_none());
        let reason = |o: &Order<'_>| invalid(o).map(|r| (r.reason, r.detail));
        assert_eq!(
            reason(&order(OrderKind::Other, 100, "CNY")).map(|r| r.0),
            Some(R::InvalidField)
        );
        assert!(reason(&order(OrderKind::Purchase, 0, "CNY"))
            .is_some_and(|(_, d)| d.contains("amount_fen")));
        assert!(reason(&order(OrderKind::Refund, -5, "CNY")).is_some());
        for bad in ["", "cny", "RMB1", "¥"] {
            assert!(
                reason(&order(OrderKind::Purchase, 1, bad))
                    .is_some_and(|(_, d)| d.contains("currency")),
                "{bad:?}"
            );
        }
        let mut o = order(OrderKind::Purchase, 1, "CNY");
        o.order_id = "";
        assert_eq!(reason(&o).map(|r| r.0), Some(R::MissingField));
        let mut o = order(OrderKind::Purchase, 1, "CNY");
        o.items = -1;
        assert!(reason(&o).is_some_and(|(_, d)| d.contains("items")));
    }

    #[test]
    fn each_row_has_its_own_orders_currency_and_share_code() {
        use wxpulse_runtime::enrich::{AssociateRecord, DimensionRecord, UNKNOWN};
        let zhang = AssociateRecord::of_store("zhang", "sh01");
        let dims = Dimensions::detached_with([DimensionRecord::Associate(zhang)]);
        let cx = Context::detached(&dims, "wxpulse.orders");
        let cfg = Config::load(None, Vec::new()).expect("defaults");
        let mut orders = Orders::new(&cfg);
        let rows: Vec<(String, String, String)> = [
            ("CNY", Some("zhang")),
            ("USD", Some("li")),
            ("USD", None),
            ("CNY", Some("zhang")),
        ]
        .into_iter()
        .map(|(currency, share_code)| {
            let mut o = order(OrderKind::Purchase, 1, currency);
            o.share_code = share_code;
            let row = orders.row(&o, &cx);
            let (c, s, st) = (row.currency, row.share_code, row.share_store_id);
            (c.to_string(), s.to_string(), st.to_string())
        })
        .collect();
        let expected = [
            ("CNY", "zhang", "sh01"),
            ("USD", "li", UNKNOWN),
            ("USD", "", ""),
            ("CNY", "zhang", "sh01"),
        ]
        .map(|(c, s, st)| (c.to_string(), s.to_string(), st.to_string()));
        assert_eq!(rows, expected);
    }
}
