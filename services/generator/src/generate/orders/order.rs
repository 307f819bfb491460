//! The planned order records (purchase or refund, channel) and what the topic got
//! besides them: the types the planner makes, the encoder writes and the conversions'
//! tally reads. A leaf below all three.

use std::collections::BTreeMap;

use serde::Serialize;

/// Purchase or refund.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub(crate) enum Kind {
    #[serde(rename = "PURCHASE")]
    Purchase,
    #[serde(rename = "REFUND")]
    Refund,
    /// Only in malformed records.
    #[serde(rename = "OTHER")]
    Other,
}

/// Where the order was placed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub(crate) enum Channel {
    #[serde(rename = "MINI_PROGRAM")]
    MiniProgram,
    #[serde(rename = "STORE_POS")]
    StorePos,
}

impl Channel {
    /// As the orders table stores it.
    pub fn as_str(self) -> &'static str {
        match self {
            Channel::MiniProgram => "mini_program",
            Channel::StorePos => "store_pos",
        }
    }
}

/// A valid order record: produced once (plus retry copies the pipeline drops).
#[derive(Debug, Clone)]
pub(crate) struct PlannedOrder {
    pub account: u32,
    pub fan: u32,
    pub event_id: uuid::Uuid,
    pub order_id: String,
    pub kind: Kind,
    /// Order time, ms: the event time.
    pub time: i64,
    /// Server time, ms.
    pub server: i64,
    pub amount_fen: i64,
    pub store_id: Option<String>,
    pub channel: Channel,
    pub share_code: Option<String>,
    pub items: i32,
}

/// What the orders topic got besides the valid records.
#[derive(Debug, Default, Clone)]
pub(crate) struct Produced {
    /// Records produced to the orders topic in all.
    pub records: u64,
    /// Retry copies (same event id).
    pub duplicates: u64,
    /// Malformed orders per dead-letter reason.
    pub dead_letters: BTreeMap<String, u64>,
}
