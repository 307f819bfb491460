//! The per-fan state of one partition: the time of each fan's previous interaction and
//! its interactions per month (see the parent module for how it is restored).

use super::{lifecycle, month_of, Relationship, Segment, Thresholds};
use crate::enrich::FanProfile;
use crate::pii::FanId;

/// What a partition remembers about one fan.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FanState {
    /// Latest event time seen, ms (0 = none).
    pub last_event_time: i64,
    /// Interactions per `yyyymm` (month 0 = free slot), the newest [`MONTHS_KEPT`]
    /// months, inline so tracking a fan allocates nothing.
    pub months: [(u32, u32); MONTHS_KEPT],
}

/// Months kept per fan: late events are at most `validation.max_lateness` (7 days) old,
/// so the current and previous month suffice; one more leaves room for a longer lateness.
pub const MONTHS_KEPT: usize = 3;

/// Per-fan state of one partition.
#[derive(Debug, Default)]
pub struct FanStates {
    fans: hashbrown::HashMap<FanId, FanState>,
}

impl FanStates {
    /// Fans held.
    pub fn len(&self) -> usize {
        self.fans.len()
    }

    /// True when no fan is held.
    pub fn is_empty(&self) -> bool {
        self.fans.is_empty()
    }

    /// Restores one (fan, month) aggregate read from `fan_stream_months`.
    pub fn restore(&mut self, fan: FanId, month: u32, interactions: u32, last_event_time: i64) {
        let state = self.fans.entry(fan).or_default();
        state.last_event_time = state.last_event_time.max(last_event_time);
        add_month(&mut state.months, month, interactions);
    }

    /// Records an interaction at `t` and returns the fan's previous interaction time (if
    /// any) and the month count including this one.
    pub fn observe(&mut self, fan: FanId, t: i64) -> (Option<i64>, u32) {
        let state = self.fans.entry(fan).or_default();
        let previous = (state.last_event_time > 0).then_some(state.last_event_time);
        state.last_event_time = state.last_event_time.max(t);
        let count = add_month(&mut state.months, month_of(t), 1);
        (previous, count)
    }

    /// Segments an interaction of `fan` at `t` and records it.
    pub fn segment(
        &mut self,
        fan: FanId,
        t: i64,
        profile: Option<&FanProfile>,
        th: Thresholds,
    ) -> Segment {
        let (previous, month_interactions) = self.observe(fan, t);
        Segment {
            relationship: Relationship::of(profile),
            lifecycle: lifecycle(t, profile, previous, th),
            month_interactions,
        }
    }

    /// The state of a fan (tests, debugging).
    pub fn get(&self, fan: FanId) -> Option<&FanState> {
        self.fans.get(&fan)
    }
}

/// Adds `n` to `month`, keeping the newest [`MONTHS_KEPT`] months (a month older than all
/// kept ones is counted from zero and not kept); returns the new count.
fn add_month(months: &mut [(u32, u32); MONTHS_KEPT], month: u32, n: u32) -> u32 {
    if let Some(entry) = months.iter_mut().find(|(m, _)| *m == month) {
        entry.1 += n;
        return entry.1;
    }
    // The free or oldest slot, if older than `month`.
    let oldest = months
        .iter_mut()
        .min_by_key(|(m, _)| *m)
        .expect("MONTHS_KEPT > 0");
    if oldest.0 < month {
        *oldest = (month, n);
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const DAY: i64 = 86_400_000;
    /// 2025-03-15T00:00:00Z.
    const T: i64 = 1_741_996_800_000;

    #[test]
    fn month_counts_and_previous_interaction() {
        let mut s = FanStates::default();
        assert_eq!(s.observe(7, T), (None, 1));
        assert_eq!(s.observe(7, T + DAY), (Some(T), 2));
        // A late event from the previous month counts there and keeps the latest time.
        assert_eq!(s.observe(7, T - 20 * DAY), (Some(T + DAY), 1));
        assert_eq!(s.observe(7, T + 2 * DAY), (Some(T + DAY), 3));
        assert_eq!(s.observe(8, T), (None, 1));
    }

    proptest! {
        /// Restoring from per-month aggregates gives the state that processing gave, in any
        /// split of the history: the crux of resuming after a restart or rebalance.
        #[test]
        fn restore_equals_replay(
            times in prop::collection::vec(0i64..200 * DAY, 1..60),
            split in 0usize..60,
        ) {
            let split = split.min(times.len());
            let mut live = FanStates::default();
            for t in &times {
                live.observe(1, T + t);
            }
            let mut agg: std::collections::BTreeMap<u32, (u32, i64)> = Default::default();
            for t in &times[..split] {
                let e = agg.entry(month_of(T + t)).or_default();
                e.0 += 1;
                e.1 = e.1.max(T + t);
            }
            let mut restored = FanStates::default();
            for (m, (n, last)) in &agg {
                restored.restore(1, *m, *n, *last);
            }
            for t in &times[split..] {
                restored.observe(1, T + t);
            }
            let (a, b) = (live.get(1).cloned().unwrap_or_default(), restored.get(1).cloned().unwrap_or_default());
            prop_assert_eq!(a.last_event_time, b.last_event_time);
            let newest = |s: &FanState| { let mut m = s.months.to_vec(); m.retain(|e| e.0 > 0); m.sort_unstable(); m.into_iter().rev().take(2).collect::<Vec<_>>() };
            prop_assert_eq!(newest(&a), newest(&b));
        }
    }
}
