//! Fan segmentation at event time: relationship (seed 002), lifecycle (seed 001) and the
//! fan's interactions so far this calendar month (the monthly-active rule of seed 000).
//!
//! Relationship comes from the fan-profile dimension. Lifecycle and the month count need
//! per-fan state: the time of the fan's previous interaction and a count per month. That
//! state lives with the partition the fan's events are keyed to (every interaction topic
//! is keyed by fan), and is rebuilt on assignment from ClickHouse: `fan_stream_months`
//! holds, per topic × partition × fan × month, the count and the latest event time of the
//! rows already written. The rows up to the partition's offset watermark are exactly the
//! records this state has seen, so restoring from the same inserts that carry the
//! watermark gives the state the previous owner had — no changelog topic to keep in step
//! with ClickHouse, and one source of truth. (Adding partitions to a topic moves fans to
//! other partitions; their state starts over there. The runbook says so.)
//!
//! The month count is per stream: each service sees its own topic. "Monthly active" across
//! streams is exact in the `fan_activity_monthly` rollup, which sums all four.
//!
//! The state is bounded (`segment.max_fans`, `segment.max_dormant_fans`, see `fans.rs`):
//! month counts that no event can reach any more are dropped, dormant fans shrink to a
//! marker, and only past the caps are fans dropped inexactly, counted.

mod fans;
mod rules;

pub use fans::{Eviction, FanBudget, FanLimits, FanState, FanStates, MONTHS_KEPT};
pub use rules::{lifecycle, Lifecycle, Relationship, Segment, Thresholds};

pub use crate::calendar::month_of;
