//! Per-partition duplicate filters.
//!
//! Two kinds of duplicate reach a consumer:
//! - **redeliveries**: Kafka hands out records again after a crash between insert and
//!   commit, or after a rebalance. Every row stores its partition and offset, so on
//!   assignment the service asks ClickHouse for the highest offset already written per
//!   partition (the *watermark*) and skips everything at or below it. Exact, and needs no
//!   state outside ClickHouse.
//! - **upstream retries**: WeChat resends an event (3 times after a 5 s timeout) and the
//!   gateway produces it again at a new offset, with the same `event_id`. Producers key by
//!   fan, so the copies share a partition; the filter remembers ids for `window` of
//!   server_time and is re-seeded from ClickHouse on assignment.
//!
//! The window is also capped at `dedup.max_ids` ids per partition, so a burst cannot grow
//! it without bound. Past the cap the oldest ids go first (arrival order, which within a
//! partition is server-time order up to producer reordering — the expiry relies on the
//! same). An id dropped that way is forgotten before its window ends: only a retry of it
//! arriving later than every id kept would be written twice, so each one is counted.

use std::collections::{HashSet, VecDeque};
use std::hash::{BuildHasherDefault, Hasher};

use prometheus::IntCounter;

/// Event ids are random UUIDs: their bits are already uniform, so folding the two halves
/// is a perfect hash and costs nothing next to SipHash (the set is per partition and fed
/// by the brand's own gateway, so hash flooding is not a threat model here).
#[derive(Default)]
struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.0 = (self.0 ^ u64::from_le_bytes(word)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        }
    }

    fn write_u128(&mut self, id: u128) {
        self.0 = (id as u64) ^ ((id >> 64) as u64);
    }
}

type IdSet = HashSet<u128, BuildHasherDefault<IdHasher>>;

/// Remembers event ids of one partition for a window of server time, up to a cap.
#[derive(Debug)]
pub struct EventIdWindow {
    window_ms: i64,
    max_ids: usize,
    seen: IdSet,
    /// Ids in arrival order with their server time; also holds forgotten ids until they
    /// reach the front, and is capped with `seen`.
    order: VecDeque<(i64, u128)>,
    newest_ms: i64,
    /// Ids dropped by the cap while still inside the window.
    evicted: Option<IntCounter>,
}

impl EventIdWindow {
    /// An empty window of `window_ms` milliseconds, without a cap on ids.
    pub fn new(window_ms: i64) -> Self {
        EventIdWindow {
            window_ms,
            max_ids: usize::MAX,
            seen: IdSet::default(),
            order: VecDeque::new(),
            newest_ms: 0,
            evicted: None,
        }
    }

    /// Caps the window at `max_ids` ids (at least one), counting in `evicted` each id
    /// dropped before its window ended.
    pub fn capped(mut self, max_ids: usize, evicted: IntCounter) -> Self {
        self.max_ids = max_ids.max(1);
        self.evicted = Some(evicted);
        self
    }

    /// Records `id` seen at `server_time`; `false` if it was already seen (a duplicate).
    pub fn insert(&mut self, id: u128, server_time: i64) -> bool {
        if !self.seen.insert(id) {
            return false;
        }
        self.order.push_back((server_time, id));
        self.newest_ms = self.newest_ms.max(server_time);
        self.expire();
        self.enforce_cap();
        true
    }

    /// Forgets `id` (its batch was abandoned, so a redelivery must not look like a repeat).
    pub fn forget(&mut self, id: u128) {
        self.seen.remove(&id);
    }

    fn expire(&mut self) {
        let horizon = self.newest_ms - self.window_ms;
        while let Some(&(t, id)) = self.order.front() {
            if t >= horizon {
                break;
            }
            self.order.pop_front();
            self.seen.remove(&id);
        }
    }

    /// Drops the oldest ids while more than `max_ids` are held. Expiry ran first, so
    /// every id still in `seen` is inside the window: its drop is counted.
    fn enforce_cap(&mut self) {
        while self.order.len() > self.max_ids {
            let Some((_, id)) = self.order.pop_front() else {
                break;
            };
            if self.seen.remove(&id) {
                if let Some(evicted) = &self.evicted {
                    evicted.inc();
                }
            }
        }
    }

    /// Ids remembered now.
    pub fn len(&self) -> usize {
        self.seen.len()
    }

    /// Whether nothing is remembered.
    pub fn is_empty(&self) -> bool {
        self.seen.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn repeats_inside_the_window_are_duplicates() {
        let mut w = EventIdWindow::new(10_000);
        assert!(w.insert(1, 1_000));
        assert!(!w.insert(1, 6_000), "WeChat's retry 5 s later");
        assert!(w.insert(2, 20_000));
        assert!(w.insert(1, 20_500), "forgotten once out of the window");
        w.forget(2);
        assert!(w.insert(2, 20_600));
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
}
