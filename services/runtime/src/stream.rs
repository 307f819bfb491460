//! What a service says about its stream; everything else is the runtime's.

use std::future::Future;
use std::sync::Arc;

use clickhouse::{RowOwned, RowWrite};
use serde::{Deserialize, Serialize};

use crate::dlq::Rejection;
use crate::enrich::{Dimension, Dimensions};
use crate::events::Interaction;
use crate::pii::FanId;
use crate::segment::Segment;

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
    /// Whether hot keys may be diverted to the overflow lane (`overflow.rs`): only when a
    /// row depends on nothing but its event, the dimensions and the fan's segment — no
    /// per-partition state of the stream's own that needs every record in order.
    const OVERFLOW: bool = true;
    /// Dimensions the stream looks up itself. Account (brand) and fan profile
    /// (segmentation) are joined by the runtime for every stream.
    const DIMENSIONS: &'static [Dimension];
    /// The decoded event (reader struct), borrowing from the record.
    type Event<'a>: Deserialize<'a> + Interaction;
    /// The row written.
    type Row: RowOwned + RowWrite + Serialize + Send + Sync;

    /// Checks what is particular to the stream's events, after the common header checks
    /// and before dedup: a rejected event is dead-lettered with the reason.
    fn check(&self, _event: &Self::Event<'_>) -> Result<(), Rejection> {
        Ok(())
    }

    /// Builds the row of a valid, first-seen event. Must not fail: anything an event can
    /// lack (a dimension, an optional field) becomes an explicit `unknown` value.
    fn row(&mut self, event: &Self::Event<'_>, cx: &Context<'_>) -> Self::Row;

    /// Rebuilds the stream's own per-partition state (beyond segmentation) when a
    /// partition is assigned, from what ClickHouse holds up to its watermark.
    fn restore(
        &mut self,
        _history: &History<'_>,
    ) -> impl Future<Output = Result<(), clickhouse::error::Error>> {
        async { Ok(()) }
    }

    /// Drops a revoked partition's state.
    fn forget(&mut self, _partition: i32) {}

    /// Registers the stream's own metrics (e.g. a gauge of its per-partition state) in the
    /// service's registry, which adds the `service` label. Called once at startup, before
    /// any partition is assigned. Names follow `wxpulse_<subsystem>_<what>_<unit>`.
    fn register_metrics(&self, _registry: &prometheus::Registry) -> prometheus::Result<()> {
        Ok(())
    }
}

/// What a stream may read to restore a partition's state.
pub struct History<'a> {
    /// Client bound to the wxpulse database.
    pub client: &'a clickhouse::Client,
    /// The stream's table.
    pub table: &'a str,
    /// Kafka topic.
    pub topic: &'a str,
    /// Partition being restored.
    pub partition: i32,
    /// Highest offset already in ClickHouse (-1: none).
    pub watermark_offset: i64,
    /// Newest server time already in ClickHouse, ms.
    pub watermark_server_time: i64,
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
    /// On an overflow lane's row: the diverted record's partition in the primary topic;
    /// -1 otherwise.
    pub source_partition: i32,
    /// On an overflow lane's row: the diverted record's offset in the primary topic; -1
    /// otherwise.
    pub source_offset: i64,
}

/// An event's context: ids, account, segment, and the dimensions for the stream's own
/// lookups.
pub struct Context<'a> {
    /// Ids and Kafka coordinates.
    pub meta: Meta,
    /// The event's AppID (shared allocation).
    pub app_id: Arc<str>,
    /// Brand of the account, or `unknown`.
    pub brand: Arc<str>,
    /// Client time, ms: the event time.
    pub event_time: i64,
    /// Server receive time, ms.
    pub server_time: i64,
    /// The fan's segment at event time.
    pub segment: Segment,
    /// Every loaded dimension.
    pub dims: &'a Dimensions,
}

impl<'a> Context<'a> {
    /// The context of a prospect's active event at time 0, offset 0 of partition 0 of
    /// `topic`, in account `wxa`: for a stream's tests of `Stream::row`.
    #[doc(hidden)]
    pub fn detached(dims: &'a Dimensions, topic: &'static str) -> Self {
        use crate::segment::{Lifecycle, Relationship};
        Context {
            meta: Meta {
                event_id: uuid::Uuid::nil(),
                fan_id: 1,
                union_id: 0,
                topic,
                partition: 0,
                offset: 0,
                source_partition: -1,
                source_offset: -1,
            },
            app_id: Arc::from("wxa"),
            brand: Arc::from("brand"),
            event_time: 0,
            server_time: 0,
            segment: Segment {
                relationship: Relationship::Prospect,
                lifecycle: Lifecycle::Active,
                month_interactions: 1,
            },
            dims,
        }
    }
}

/// Defines a row struct with the columns every raw event table has, followed by the
/// stream's own; build one with [`row!`](crate::row).
///
/// Common columns: `event_id, app_id, brand, fan_id, union_id, event_time, server_time,
/// relationship, lifecycle, month_interactions, kafka_topic, kafka_partition,
/// kafka_offset, source_partition, source_offset` (see `schemas/clickhouse/migrations/`).
#[macro_export]
macro_rules! event_row {
    ($(#[$meta:meta])* pub struct $name:ident { $($(#[$fmeta:meta])* pub $field:ident : $ty:ty),* $(,)? }) => {
        $(#[$meta])*
        #[derive(
            Debug,
            Clone,
            $crate::reexports::clickhouse::Row,
            $crate::reexports::serde::Serialize,
        )]
        #[clickhouse(crate = "wxpulse_runtime::reexports::clickhouse")]
        #[serde(crate = "wxpulse_runtime::reexports::serde")]
        #[allow(missing_docs)]
        pub struct $name {
            #[serde(with = "wxpulse_runtime::reexports::clickhouse::serde::uuid")]
            pub event_id: $crate::reexports::uuid::Uuid,
            pub app_id: std::sync::Arc<str>,
            pub brand: std::sync::Arc<str>,
            pub fan_id: u64,
            pub union_id: u64,
            pub event_time: i64,
            pub server_time: i64,
            pub relationship: &'static str,
            pub lifecycle: &'static str,
            pub month_interactions: u32,
            $($(#[$fmeta])* pub $field: $ty,)*
            pub kafka_topic: &'static str,
            pub kafka_partition: i32,
            pub kafka_offset: i64,
            pub source_partition: i32,
            pub source_offset: i64,
        }
    };
}

/// Builds a row defined with [`event_row!`](crate::event_row): the common columns from
/// the [`Context`], the stream's own as given.
#[macro_export]
macro_rules! row {
    ($name:ident, $cx:expr, { $($field:ident : $value:expr),* $(,)? }) => {{
        let cx: &$crate::stream::Context<'_> = $cx;
        $name {
            event_id: cx.meta.event_id,
            app_id: cx.app_id.clone(),
            brand: cx.brand.clone(),
            fan_id: cx.meta.fan_id,
            union_id: cx.meta.union_id,
            event_time: cx.event_time,
            server_time: cx.server_time,
            relationship: cx.segment.relationship.as_str(),
            lifecycle: cx.segment.lifecycle.as_str(),
            month_interactions: cx.segment.month_interactions,
            $($field: $value,)*
            kafka_topic: cx.meta.topic,
            kafka_partition: cx.meta.partition,
            kafka_offset: cx.meta.offset,
            source_partition: cx.meta.source_partition,
            source_offset: cx.meta.source_offset,
        }
    }};
}
