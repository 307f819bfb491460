//! FanStates: the per-fan rules, and that dropping what no future event can need changes
//! no segment (against unbounded state).

use super::*;
use crate::enrich::CustomerStatus;
use crate::segment::Lifecycle;
use proptest::prelude::*;
use std::time::Duration;

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

fn th() -> Thresholds {
    Thresholds::new(
        Duration::from_secs(30 * 86_400),
        Duration::from_secs(60 * 86_400),
    )
}

/// The defaults: 7 days of lateness, 5 minutes of skew, dormant after 60 days.
const REACH: i64 = 7 * DAY + 10 * 60_000;

fn budget(max_fans: usize, max_dormant_fans: usize) -> (FanBudget, IntCounterVec) {
    let evicted = IntCounterVec::new(prometheus::Opts::new("evicted", "test"), &["reason"])
        .expect("valid counter");
    let limits = FanLimits {
        max_fans,
        max_dormant_fans,
        reach_ms: REACH,
        dormant_after_ms: 60 * DAY,
    };
    (FanBudget::new(limits, &evicted), evicted)
}

fn evicted(counters: &IntCounterVec, why: Eviction) -> u64 {
    counters.with_label_values(&[why.as_str()]).get()
}

#[test]
fn the_limits_follow_the_config() {
    let cfg = Config::load(None, Vec::new()).expect("defaults");
    let l = FanLimits::from_config(&cfg);
    assert_eq!(l.reach_ms, REACH);
    assert_eq!(l.dormant_after_ms, 60 * DAY);
    assert_eq!((l.max_fans, l.max_dormant_fans), (2_000_000, 10_000_000));
}

#[test]
fn fans_shrink_to_what_their_next_event_needs() {
    let (b, counters) = budget(1_000, 1_000);
    let mut s = FanStates::bounded(&b);
    s.observe(1, T); // then silent
    s.observe(4, T + 50 * DAY); // 2025-05-04, then silent
    for day in 0..=100 {
        s.observe(2, T + day * DAY);
    }
    // At T + 100 days (2025-06-23) nothing before June can arrive: fan 4 keeps only its
    // last interaction; fan 1's is over 60 days before anything that can arrive.
    assert_eq!((s.len(), s.dormant_len()), (2, 1));
    assert!(s.get(4).is_none() && s.get(1).is_none());
    assert_eq!(evicted(&counters, Eviction::Dormant), 1);
    let now = T + 100 * DAY;
    let seg = |s: &mut FanStates, fan| s.segment(fan, now, None, th());
    let back = seg(&mut s, 1);
    assert_eq!(
        (back.lifecycle, back.month_interactions),
        (Lifecycle::Dormant, 1)
    );
    let quiet = seg(&mut s, 4);
    assert_eq!(
        (quiet.lifecycle, quiet.month_interactions),
        (Lifecycle::Active, 1)
    );
    let never_seen = seg(&mut s, 3);
    assert_eq!(
        never_seen.lifecycle,
        Lifecycle::Active,
        "not dormant: no history"
    );
    assert_eq!(
        seg(&mut s, 2).month_interactions,
        24,
        "June 1 (Beijing) to 23, and this"
    );
}

#[test]
fn memory_is_given_back_when_fans_move_on() {
    let (b, _) = budget(1_000_000, 1_000_000);
    let mut s = FanStates::bounded(&b);
    for fan in 0..10_000 {
        s.observe(fan, T);
    }
    let full = s.open.capacity();
    s.observe(0, T + 100 * DAY);
    assert_eq!((s.len(), s.dormant_len()), (1, 9_999));
    assert!(
        s.open.capacity() * 100 < full,
        "{} of {full}",
        s.open.capacity()
    );
}

#[test]
fn over_the_cap_the_least_recently_active_go_first() {
    let (b, counters) = budget(16, 1_000);
    let mut s = FanStates::bounded(&b);
    for fan in 0..20 {
        s.observe(fan, T + fan as i64 * 60_000);
    }
    // Each pass frees 1/16 of the share: at 17 fans down to 15, twice.
    assert_eq!(s.len(), 16);
    assert_eq!(evicted(&counters, Eviction::LeastRecent), 4);
    assert!((0..4).all(|fan| s.get(fan).is_none()));
    // The loss: a dropped fan's next event reads as a never-seen fan's.
    assert_eq!(s.observe(0, T + DAY), (None, 1));
    assert_eq!(s.observe(19, T + DAY), (Some(T + 19 * 60_000), 2));
}

#[test]
fn the_budget_is_shared_by_the_partitions_owned() {
    let (b, _) = budget(32, 1_000);
    let mut a = FanStates::bounded(&b);
    let other = FanStates::bounded(&b);
    for fan in 0..40 {
        a.observe(fan, T + fan as i64);
    }
    assert!(a.len() <= 16, "half of 32: {}", a.len());
    drop(other);
    for fan in 40..80 {
        a.observe(fan, T + fan as i64);
    }
    assert!(a.len() > 16 && a.len() <= 32, "all of 32: {}", a.len());
}

#[test]
fn dormant_markers_are_capped_and_forgotten_ones_return_active() {
    let (b, counters) = budget(1_000, 16);
    let mut s = FanStates::bounded(&b);
    for fan in 0..40 {
        s.observe(fan, T);
    }
    s.observe(1_000, T + 100 * DAY);
    assert!(s.dormant_len() <= 16);
    assert_eq!(evicted(&counters, Eviction::Dormant), 40);
    let forgotten = evicted(&counters, Eviction::DormantForgotten);
    assert_eq!(forgotten as usize, 40 - s.dormant_len());
    let lifecycles: Vec<Lifecycle> = (0..40)
        .map(|fan| s.segment(fan, T + 100 * DAY, None, th()).lifecycle)
        .collect();
    let dormant = lifecycles
        .iter()
        .filter(|l| **l == Lifecycle::Dormant)
        .count();
    assert_eq!(dormant, 40 - forgotten as usize, "{lifecycles:?}");
}

/// A history of (fan, clock advance, lateness) steps in which no event is older than the
/// newest minus REACH: the events that can arrive.
fn steps() -> impl Strategy<Value = Vec<(u64, i64, i64)>> {
    let advance = prop_oneof![4 => 0i64..DAY, 1 => 0i64..80 * DAY];
    prop::collection::vec((0u64..8, advance, 0i64..REACH), 1..300)
}

fn profile_of(fan: u64) -> Option<FanProfile> {
    (fan % 3 == 0).then(|| {
        FanProfile::from_crm(
            CustomerStatus::Customer,
            None,
            Some(T + fan as i64 * 20 * DAY),
            (fan == 6).then_some(T + 300 * DAY),
        )
    })
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

    /// Dropping month counts that can no longer receive events, and reducing fans to
    /// their last interaction or a dormant marker, changes no segment of any event that
    /// can arrive.
    #[test]
    fn dropping_what_cannot_be_needed_changes_no_segment(steps in steps()) {
        let (b, _) = budget(1_000_000, 1_000_000);
        let mut bounded = FanStates::bounded(&b);
        let mut unbounded = FanStates::default();
        let mut clock = T;
        for (fan, advance, late) in steps {
            clock += advance;
            let t = clock - late;
            let profile = profile_of(fan);
            prop_assert_eq!(
                bounded.segment(fan, t, profile.as_ref(), th()),
                unbounded.segment(fan, t, profile.as_ref(), th()),
                "fan {} at {}", fan, t
            );
        }
        prop_assert!(bounded.len() + bounded.dormant_len() <= unbounded.len());
    }

    /// The same after a restore from `fan_stream_months` aggregates, read in any order.
    #[test]
    fn restored_bounded_state_segments_like_unbounded(
        history in prop::collection::vec((0u64..8, 0i64..300 * DAY), 0..80),
        reversed in any::<bool>(),
        steps in steps(),
    ) {
        let mut agg: std::collections::BTreeMap<(u64, u32), (u32, i64)> = Default::default();
        for (fan, t) in &history {
            let e = agg.entry((*fan, month_of(T + t))).or_default();
            e.0 += 1;
            e.1 = e.1.max(T + t);
        }
        let mut rows: Vec<_> = agg.into_iter().collect();
        if reversed {
            rows.reverse();
        }
        let (b, _) = budget(1_000_000, 1_000_000);
        let mut bounded = FanStates::bounded(&b);
        let mut unbounded = FanStates::default();
        for ((fan, month), (n, last)) in &rows {
            bounded.restore(*fan, *month, *n, *last);
            unbounded.restore(*fan, *month, *n, *last);
        }
        let mut clock = history.iter().map(|(_, t)| T + t).max().unwrap_or(T);
        for (fan, advance, late) in steps {
            clock += advance;
            let t = clock - late;
            let profile = profile_of(fan);
            prop_assert_eq!(
                bounded.segment(fan, t, profile.as_ref(), th()),
                unbounded.segment(fan, t, profile.as_ref(), th()),
                "fan {} at {}", fan, t
            );
        }
    }
}
