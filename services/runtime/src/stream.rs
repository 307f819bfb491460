//! What a service says about its stream; everything else is the runtime's.

use clickhouse::{RowOwned, RowWrite};
use serde::{Deserialize, Serialize};

use crate::events::Interaction;
use crate::pii::FanId;

/// One consumer service: which topic, which table, and how an event becomes a row.
pub trait Stream: Send + 'static {
    /// Service name: metric label, log field, default consumer group `wxpulse-<name>`.
    const SERVICE: &'static str;
    /// Topic consumed by default.
    const TOPIC: &'static str;
    /// ClickHouse table written.
    const TABLE: &'static str;
    /// Full name of the Avro record the topic carries; writer schemas of another record
    /// are dead-lettered as undecodable.
    const RECORD: &'static str;
    /// The decoded event (reader struct), borrowing from the record.
    type Event<'a>: Deserialize<'a> + Interaction;
    /// The row written.
    type Row: RowOwned + RowWrite + Serialize + Send + Sync;

    /// Builds the row of a valid, first-seen event. Must not fail: anything an event can
    /// lack (a dimension, an optional field) becomes an explicit `unknown` value.
    fn row(&mut self, event: &Self::Event<'_>, meta: &Meta) -> Self::Row;
}

/// What the runtime derived for an event before the service sees it.
#[derive(Debug, Clone, Copy)]
pub struct Meta {
    /// Parsed event_id.
    pub event_id: uuid::Uuid,
    /// Pseudonymised openid.
    pub fan_id: FanId,
    /// Pseudonymised unionid, 0 when absent.
    pub union_id: FanId,
    /// Kafka topic (interned for the process's life).
    pub topic: &'static str,
    /// Kafka partition.
    pub partition: i32,
    /// Kafka offset.
    pub offset: i64,
}
