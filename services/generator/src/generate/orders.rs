//! Orders: purchases and refunds of the fans, planned after their interactions so that
//! conversions follow touches — most often days after a WeCom 1:1 chat with an associate,
//! also after push reads, QR scans and e-commerce menu clicks — and so that every store's
//! social-selling funnel in a month lands on seed 003's figures.
//!
//! Seed 003 gives a funnel per store (unique buyers → added on WeCom → active → repurchasing)
//! for two models: a clothing store (model 1: add rate 35–45%, 11–13% of the added active,
//! 70–80% of those repurchase, basket about 1,500 yuan) and a luxury one (model 3: add
//! 50–60%, active about 10%, repurchase 70–80%, basket 20,000–25,000 yuan). The world's
//! brands have no category of their own, so brands alternate: the first (and every other)
//! is a luxury maison, the next its ready-to-wear house ([`model`]).
//!
//! Per account and calendar month (the part of it the span covers), the month's buyers are
//! split over the brand's stores, mall orders without a store, and now and then a pop-up
//! store no record has; per store the planner takes exactly the funnel's numbers (to
//! rounding, over the account's stores) of buyers with a bound associate ("added", mostly
//! the store's own associates' customers), of those the ones with more than 4 interactions
//! in the month ("active", from the plan's own counts) and of those the repurchasers (2–4
//! purchases at the store). Within each class, fans with touches are likelier buyers, an
//! associate chat most. A purchase falls a lognormal delay (median 18 h) after one of the
//! fan's touches, an associate chat preferred, or anywhere in the fan's time, so some
//! purchases have no touch and some only touches older than the attribution window.
//!
//! Mall orders carry the fan's associate as a share code now and then; a few percent of
//! purchases are refunded, fully, partly, or in several parts; a few refunds are of orders
//! from before the span (no purchase to match). Every order and refund happens inside the
//! span and reaches the backend a little later (POS uploads now and then hours to days
//! late, never after the span ends, always well inside the pipeline's 7-day lateness).

mod business;
mod month;
mod order;
mod planner;
mod pools;
mod purchase;
mod topic;

pub use business::{model, Model, CLOTHING, LUXURY};
pub(crate) use order::{Kind, PlannedOrder, Produced};
pub(crate) use planner::plan;
pub use planner::PURCHASES_PER_EVENT;
pub use purchase::REFUND_SHARE;
pub use topic::ORDERS_TOPIC;
pub(crate) use topic::{encode, merge};

// What the tests (`use super::*`) and the conversions' tests name here, from where it
// now lives.
#[cfg(test)]
use crate::spec::{Spec, RETRY_AFTER_MS};
#[cfg(test)]
use crate::world::{self, month_start_ms, World};
#[cfg(test)]
pub(crate) use order::Channel;
#[cfg(test)]
use purchase::{LATE_MAX_MS, LATE_MIN_MS};
#[cfg(test)]
use std::collections::BTreeMap;
#[cfg(test)]
use topic::unionid;
#[cfg(test)]
use wxpulse_cli::produce::Outgoing;

/// Reading the orders topic back, as the orders service would (tests only).
#[cfg(test)]
pub(crate) mod decoded {
    use serde::Deserialize;
    use wxpulse_runtime::codec::{self, EMBEDDED};

    use wxpulse_cli::produce::Outgoing;

    /// `OrderKind` as read.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
    pub enum KindIn {
        #[serde(rename = "PURCHASE")]
        Purchase,
        #[serde(rename = "REFUND")]
        Refund,
        #[serde(rename = "OTHER", other)]
        Other,
    }

    /// `OrderChannel` as read.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
    pub enum ChannelIn {
        #[serde(rename = "MINI_PROGRAM")]
        MiniProgram,
        #[serde(rename = "STORE_POS")]
        StorePos,
        #[serde(rename = "OTHER", other)]
        Other,
    }

    /// An order record as read.
    #[derive(Debug, Clone, Deserialize)]
    pub struct OrderIn {
        pub event_id: String,
        pub order_id: String,
        pub kind: KindIn,
        pub app_id: String,
        pub openid: String,
        pub unionid: Option<String>,
        pub order_time: i64,
        pub server_time: i64,
        pub amount_fen: i64,
        pub currency: String,
        pub store_id: Option<String>,
        pub channel: ChannelIn,
        pub share_code: Option<String>,
        pub items: i32,
    }

    impl OrderIn {
        /// The dead-letter reason of the orders service's own checks, if any.
        pub fn invalid(&self) -> Option<&'static str> {
            let c = self.currency.as_bytes();
            if self.kind == KindIn::Other {
                Some("invalid_field")
            } else if self.order_id.is_empty() {
                Some("missing_field")
            } else if self.amount_fen <= 0
                || self.items < 0
                || c.len() != 3
                || !c.iter().all(u8::is_ascii_uppercase)
            {
                Some("invalid_field")
            } else {
                None
            }
        }
    }

    /// Every record of the orders topic, decoded with the schema its frame names (which
    /// must be the topic's), in production order, with its key.
    pub fn orders(records: &[Outgoing]) -> Vec<(Vec<u8>, OrderIn)> {
        let s = EMBEDDED
            .iter()
            .find(|s| s.subject == "wxpulse.orders-value" && s.version == 1)
            .expect("order v1");
        let schema = codec::parse(s.json).expect("parses");
        records
            .iter()
            .filter(|r| r.topic == super::ORDERS_TOPIC)
            .map(|r| {
                let payload = r.payload.as_deref().expect("not a tombstone");
                let (id, datum) = codec::split_frame(payload).expect("framed");
                assert_eq!(id, s.id);
                let o: OrderIn = codec::decode(datum, &schema).expect("decodes");
                (r.key.clone(), o)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests;
