//! The event-id window, the horizon's filters and the suspects' answers.

use super::*;
use proptest::prelude::*;

#[test]
fn repeats_inside_the_window_are_duplicates() {
    let mut w = EventIdWindow::new(10_000);
    assert!(w.insert(1, 1_000));
    assert!(!w.insert(1, 6_000), "WeChat's retry 5 s later");
    assert!(w.insert(2, 20_000));
    assert!(w.insert(1, 20_500), "forgotten once out of the window");
}

#[test]
fn unwritten_ids_stay_past_the_window() {
    let mut w = EventIdWindow::new(10_000).written_up_to(99);
    assert!(w.insert_at(1, 1_000, 100));
    assert!(w.insert_at(2, 50_000, 101));
    assert!(w.contains(1), "offset 100 is not in ClickHouse yet");
    w.written(100);
    assert!(
        !w.contains(1),
        "written and out of the window: ClickHouse answers for it"
    );
    assert!(w.contains(2));
}

#[test]
fn the_horizon_never_misses_an_id_and_forgets_old_segments() {
    let day = 86_400_000;
    let mut h = Horizon::new(7 * day, 0.001, usize::MAX);
    for i in 0..200_000u128 {
        h.insert(i, (i as i64) * 3_000); // ~7 days of ids
    }
    assert!((0..200_000u128).all(|i| h.might_contain(i)));
    let false_positives = (1_000_000..1_100_000u128)
        .filter(|i| h.might_contain(*i))
        .count();
    assert!(false_positives < 500, "{false_positives} of 100k at 0.1%");
    let bytes = h.bytes();
    h.insert(7, 30 * day);
    assert!(
        h.bytes() < bytes,
        "segments older than the horizon are freed"
    );
    assert!(!h.might_contain(5) || h.might_contain(5_000_000));
}

#[test]
fn the_memory_cap_overfills_instead_of_forgetting() {
    let mut h = Horizon::new(i64::MAX / 4, 0.001, 1);
    for i in 0..300_000u128 {
        h.insert(i, i as i64);
    }
    assert_eq!(h.segments.len(), 1);
    assert!((0..300_000u128).all(|i| h.might_contain(i)));
}

#[test]
fn suspects_wait_for_clickhouse_and_are_bucketed_by_age() {
    let hour = 3_600_000;
    let mut ids = EventIds::new(
        EventIdWindow::new(600_000).written_up_to(-1),
        Horizon::new(7 * 24 * hour, 0.001, usize::MAX),
    );
    assert_eq!(ids.check(1, 0, 0), Seen::Fresh);
    assert_eq!(ids.check(1, 5_000, 1), Seen::Duplicate(Age::Window));
    ids.window.written(1);
    assert_eq!(ids.check(2, 3 * hour, 2), Seen::Fresh);
    assert_eq!(
        ids.check(1, 3 * hour, 3),
        Seen::Suspect,
        "out of the window"
    );
    assert_eq!(ids.check(1, 3 * hour, 3), Seen::Suspect, "until settled");
    ids.settle(1, Some(0));
    assert_eq!(ids.check(1, 3 * hour, 3), Seen::Duplicate(Age::Day));
    ids.settle(1, None); // a false positive
    assert_eq!(ids.check(1, 3 * hour, 4), Seen::Fresh);
    assert_eq!(ids.check(1, 3 * hour, 5), Seen::Duplicate(Age::Window));
}

#[test]
fn a_suspect_parked_behind_another_is_known_without_a_check_and_answered_ahead() {
    let hour = 3_600_000;
    let mut ids = EventIds::new(
        EventIdWindow::new(600_000).written_up_to(-1),
        Horizon::new(7 * 24 * hour, 0.001, usize::MAX),
    );
    assert_eq!(ids.check(1, 0, 0), Seen::Fresh);
    assert_eq!(ids.check(2, 0, 1), Seen::Fresh);
    assert!(!ids.would_be_suspect(1), "in the window");
    ids.window.written(1);
    assert_eq!(ids.check(3, 3 * hour, 2), Seen::Fresh);
    assert!(ids.would_be_suspect(1) && ids.would_be_suspect(2));
    assert!(!ids.would_be_suspect(4), "never seen");
    // Both asked in one query: the answers wait for each id's own check.
    ids.settle(1, Some(0));
    ids.settle(2, None);
    assert!(!ids.would_be_suspect(1), "answered");
    assert_eq!(ids.check(1, 3 * hour, 3), Seen::Duplicate(Age::Day));
    assert_eq!(ids.check(2, 3 * hour, 4), Seen::Fresh);
    // An answer no record applied is dropped once the line is empty.
    ids.settle(1, None);
    assert!(!ids.would_be_suspect(1));
    ids.forget_settled();
    assert!(ids.would_be_suspect(1), "flagged by the horizon again");
}

#[test]
fn the_cap_drops_the_oldest_ids_first_and_counts_them() {
    let evicted = IntCounter::new("evicted", "test").expect("valid counter");
    let mut w = EventIdWindow::new(600_000).capped(3, evicted.clone());
    for (id, t) in [(1, 1_000), (2, 2_000), (3, 3_000), (4, 4_000)] {
        assert!(w.insert(id, t));
    }
    assert_eq!(w.len(), 3);
    assert_eq!(evicted.get(), 1, "id 1 went inside its window");
    assert!(
        w.insert(1, 5_000),
        "a retry of a dropped id passes: the counted risk"
    );
    assert!(!w.insert(4, 5_000), "the newest are kept");
    // Expiry, not the cap, drops ids that left the window: not counted.
    assert!(w.insert(9, 700_000));
    assert_eq!(w.len(), 1);
    assert_eq!(evicted.get(), 2);
}

proptest! {
    /// Under the cap the window keeps the newest `cap` distinct ids, whatever the
    /// sequence: never more, and every repeat of a kept id is a duplicate.
    #[test]
    fn the_cap_keeps_the_newest_ids(ids in proptest::collection::vec(0u128..40, 1..300), cap in 1usize..20) {
        let evicted = IntCounter::new("evicted", "test").expect("valid counter");
        let mut w = EventIdWindow::new(i64::MAX / 4).capped(cap, evicted);
        let mut kept: VecDeque<u128> = VecDeque::new();
        for (t, id) in ids.iter().enumerate() {
            let fresh = !kept.contains(id);
            prop_assert_eq!(w.insert(*id, t as i64), fresh);
            if fresh {
                kept.push_back(*id);
                if kept.len() > cap {
                    kept.pop_front();
                }
            }
            prop_assert!(w.len() <= cap);
        }
        prop_assert_eq!(w.len(), kept.len());
    }

    /// Against a model: within the window exactly the first occurrence passes.
    #[test]
    fn first_occurrence_passes(ids in proptest::collection::vec(0u128..50, 1..400)) {
        let mut w = EventIdWindow::new(i64::MAX / 4);
        let mut model = std::collections::HashSet::new();
        for (t, id) in ids.iter().enumerate() {
            prop_assert_eq!(w.insert(*id, t as i64), model.insert(*id));
        }
        prop_assert_eq!(w.len(), model.len());
    }
}
