//! The planner of the orders: its state, `plan` that runs it month by month, and the
//! small helpers both the month's draw ([`super::month`]) and the purchases
//! ([`super::purchase`]) use. Those add their own `impl Planner` blocks.

use std::collections::{BTreeMap, HashMap};

use rand::prelude::*;
use rand_chacha::ChaCha8Rng;

use super::order::PlannedOrder;
use crate::generate::plan::Planned;
use crate::generate::touch::{FanKey, Touch, TouchKind};
use crate::spec::Spec;
use crate::world::{apportion, month_start_ms, next_month, shanghai, World};

/// Purchases per valid interaction: a modest share of the traffic (about 1.5%).
pub const PURCHASES_PER_EVENT: f64 = 0.015;

/// Refunds of orders placed before the span (no purchase to match), per purchase.
const UNMATCHED_REFUNDS: f64 = 0.002;

/// Plans the valid order records (purchases and refunds, in production order) of the
/// span after the planned interactions and their qualifying touches.
pub(crate) fn plan(
    spec: &Spec,
    world: &World,
    offset: i64,
    planned: &[Planned],
    touches: &[Touch],
    interactions: &HashMap<FanKey, BTreeMap<u32, u64>>,
) -> Vec<PlannedOrder> {
    let mut p = Planner {
        spec,
        world,
        offset,
        rng: ChaCha8Rng::seed_from_u64(spec.seed ^ 0x6f72_6465_7273), // "orders"
        ids: ChaCha8Rng::seed_from_u64(spec.seed ^ 0x6f72_6465_7269_6473), // "orderids"
        start: spec.start_ms,
        end: spec.end_ms.max(spec.start_ms + 1),
        touches: HashMap::new(),
        next_order: vec![0; world.accounts.len()],
        out: Vec::new(),
    };
    for t in touches {
        let e = &planned[t.index as usize];
        p.touches
            .entry((e.account, e.fan))
            .or_default()
            .push((e.client, t.kind));
    }
    for list in p.touches.values_mut() {
        list.sort_by_key(|x| x.0);
    }
    let purchases = (PURCHASES_PER_EVENT * spec.events as f64).round() as usize;
    if purchases == 0 || world.accounts.is_empty() {
        return Vec::new();
    }
    // The span's calendar months (Asia/Shanghai) and the part of each it covers.
    let mut months = Vec::new();
    let mut m = shanghai(p.start).yyyymm();
    while month_start_ms(m) < p.end {
        let (lo, hi) = (
            month_start_ms(m).max(p.start),
            month_start_ms(next_month(m)).min(p.end),
        );
        months.push((m, lo, hi));
        m = next_month(m);
    }
    let accounts = world.accounts.len();
    for (a, n) in apportion(purchases, &vec![1.0; accounts])
        .into_iter()
        .enumerate()
    {
        let weights: Vec<f64> = months.iter().map(|(_, lo, hi)| (hi - lo) as f64).collect();
        for (&(m, lo, hi), n) in months.iter().zip(apportion(n, &weights)) {
            p.month(a, m, lo, hi, n, interactions);
        }
    }
    p.unmatched_refunds(((UNMATCHED_REFUNDS * purchases as f64).ceil()) as usize);
    let mut out = p.out;
    out.sort_by_key(|o| o.server); // stable: ties keep plan order
    out
}

pub(super) struct Planner<'a> {
    pub(super) spec: &'a Spec,
    pub(super) world: &'a World,
    pub(super) offset: i64,
    pub(super) rng: ChaCha8Rng,
    pub(super) ids: ChaCha8Rng,
    pub(super) start: i64,
    pub(super) end: i64,
    /// A fan's qualifying touches in time order: (event time, kind).
    pub(super) touches: HashMap<FanKey, Vec<(i64, TouchKind)>>,
    pub(super) next_order: Vec<u64>,
    pub(super) out: Vec<PlannedOrder>,
}

impl Planner<'_> {
    /// When the fan follows within [lo, hi), in event time; fans without a profile always.
    pub(super) fn following(&self, account: usize, fan: u32, lo: i64, hi: i64) -> (i64, i64) {
        match self.world.fan(account, fan) {
            None => (lo, hi),
            Some(f) => (
                (f.followed_at + self.offset).max(lo),
                f.unfollowed_at.map_or(hi, |u| (u + self.offset).min(hi)),
            ),
        }
    }

    /// The brand's stores (indexes into the world's stores).
    pub(super) fn stores_of(&self, account: usize) -> Vec<usize> {
        let prefix = format!(
            "{}_",
            self.world.brand_code(self.world.accounts[account].brand)
        );
        (0..self.world.stores.len())
            .filter(|&i| self.world.stores[i].store_id.starts_with(&prefix))
            .collect()
    }

    pub(super) fn uuid(&mut self) -> uuid::Uuid {
        uuid::Builder::from_random_bytes(self.ids.gen()).into_uuid()
    }

    pub(super) fn order_id(&mut self, account: usize) -> String {
        self.next_order[account] += 1;
        format!(
            "{}-{:08}",
            self.world.accounts[account].record.app_id, self.next_order[account]
        )
    }
}
