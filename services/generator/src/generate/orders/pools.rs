//! The draw of a month's buyers: candidates in weighted random order by class, and the
//! slots (stores, the mall, a pop-up) their orders go to. A leaf of the planner.

use std::collections::HashMap;

use rand::prelude::*;
use rand_chacha::ChaCha8Rng;

/// Share of an added buyer's store that is the store of the fan's own associate.
const HOME_STORE: f64 = 0.85;

/// A fan who may buy in the month: when (following, inside the month's part of the span),
/// and how likely (touches), with the key that orders the draws.
pub(super) struct Candidate {
    pub(super) fan: u32,
    pub(super) lo: i64,
    pub(super) hi: i64,
    /// Efraimidis–Spirakis key: smaller draws first.
    pub(super) key: f64,
}

/// Candidates of one class in draw order, and how far the draws went.
#[derive(Default)]
pub(super) struct Pool {
    pub(super) order: Vec<usize>,
    next: usize,
}

impl Pool {
    fn take(&mut self, taken: &mut [bool]) -> Option<usize> {
        while let Some(&c) = self.order.get(self.next) {
            self.next += 1;
            if !taken[c] {
                taken[c] = true;
                return Some(c);
            }
        }
        None
    }
}

/// A class of candidates: all of them, and those whose associate works at a store.
#[derive(Default)]
pub(super) struct Class {
    pub(super) all: Pool,
    pub(super) home: HashMap<String, Pool>,
}

impl Class {
    pub(super) fn take(
        &mut self,
        home: Option<&str>,
        rng: &mut ChaCha8Rng,
        taken: &mut [bool],
    ) -> Option<usize> {
        let at_home = home.is_some() && rng.gen_bool(HOME_STORE);
        if let Some(pool) = home.filter(|_| at_home).and_then(|h| self.home.get_mut(h)) {
            if let Some(c) = pool.take(taken) {
                return Some(c);
            }
        }
        self.all.take(taken)
    }
}

/// Where a month's orders of an account are placed: a store of the brand, the mall
/// without a store, or a pop-up store no record has.
pub(super) struct Slot {
    pub(super) store_id: Option<String>,
    /// The store's associates' customers buy here most (a store of the world).
    pub(super) home: bool,
    pub(super) weight: f64,
}
