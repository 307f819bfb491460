//! A month of an account: its buyers drawn by the brand's funnel over the stores, the
//! mall and a pop-up, and when each buys after the fan's touches.

use std::collections::{BTreeMap, HashMap};

use rand::distributions::WeightedIndex;
use rand::prelude::*;

use super::business::model;
use super::planner::Planner;
use super::pools::{Candidate, Class, Slot};
use crate::generate::touch::{FanKey, TouchKind};
use crate::world::{apportion, standard_normal};

/// Purchases of a repurchasing buyer at the store in the month: 2, 3, 4.
const REPURCHASES: [f64; 3] = [55.0, 30.0, 15.0];

/// Buyers who are not active (or not added) who still buy twice at the store in a month.
const SECOND_PURCHASE_ADDED: f64 = 0.15;
const SECOND_PURCHASE_OTHERS: f64 = 0.10;

/// Odds that a purchase follows one of the fan's touches (else it falls anywhere in the
/// fan's time): with an associate chat among them, with other touches only.
const AFTER_CHAT: f64 = 0.92;
const AFTER_TOUCH: f64 = 0.85;

/// How likely a fan is to buy, relatively: without any touch in the month (a handful of
/// buyers: walk-ins, gifts), and per kind of touch the fan had.
const UNTOUCHED_WEIGHT: f64 = 0.01;
const CHAT_WEIGHT: f64 = 6.0;
const OTHER_TOUCH_WEIGHT: f64 = 1.0;

/// Which touch a purchase follows, by kind: chat, article read or scan, menu click.
const ANCHOR_WEIGHTS: (f64, f64, f64) = (8.0, 2.0, 1.0);

/// Spread (log scale) of a store's share of an account's buyers from month to month.
const STORE_SPREAD: f64 = 0.25;

/// The delay from the touch to the purchase: lognormal, median and spread.
const TOUCH_TO_PURCHASE_MEDIAN_MS: f64 = 18.0 * 3_600_000.0;
const TOUCH_TO_PURCHASE_SIGMA: f64 = 1.1;

/// What a buyer is in the store's funnel.
#[derive(Clone, Copy, PartialEq)]
enum Buyer {
    Other,
    Added,
    Active,
    Repurchasing,
}

impl Planner<'_> {
    /// The month `m` of account `a` ([lo, hi) of it in the span): about `purchases`
    /// purchases, by the brand's funnel, and their refunds.
    pub(super) fn month(
        &mut self,
        a: usize,
        m: u32,
        lo: i64,
        hi: i64,
        purchases: usize,
        interactions: &HashMap<FanKey, BTreeMap<u32, u64>>,
    ) {
        if purchases == 0 {
            return;
        }
        let world = self.world;
        let model = model(world.accounts[a].brand);
        // Candidates by class, in a weighted random order: touches make a buyer likelier.
        let mut candidates: Vec<Candidate> = Vec::new();
        let mut classes: [Class; 3] = Default::default(); // other, added inactive, active
        let mut class_of: Vec<(usize, Option<String>)> = Vec::new();
        for fan in 0..world.fans[a].len() as u32 {
            let (flo, fhi) = self.following(a, fan, lo, hi);
            if flo >= fhi {
                continue;
            }
            let mine = self.touches.get(&(a as u32, fan));
            let during = |k: TouchKind| {
                mine.is_some_and(|t| t.iter().any(|x| x.1 == k && (flo..fhi).contains(&x.0)))
            };
            let kinds = [
                (TouchKind::AssociateChat, CHAT_WEIGHT),
                (TouchKind::Article, OTHER_TOUCH_WEIGHT),
                (TouchKind::QrScan, OTHER_TOUCH_WEIGHT),
                (TouchKind::MenuEcommerce, OTHER_TOUCH_WEIGHT),
            ];
            let weight = kinds
                .iter()
                .filter(|(k, _)| during(*k))
                .map(|(_, w)| w)
                .sum::<f64>()
                .max(UNTOUCHED_WEIGHT);
            let u = 1.0 - self.rng.gen::<f64>();
            let home = world
                .fan(a, fan)
                .and_then(|f| f.associate)
                .map(|i| world.associates[i].store_id.clone());
            let n = interactions
                .get(&(a as u32, fan))
                .and_then(|c| c.get(&m))
                .copied()
                .unwrap_or(0);
            let class = match (&home, n > 4) {
                (None, _) => 0,
                (Some(_), false) => 1,
                (Some(_), true) => 2,
            };
            class_of.push((class, home));
            candidates.push(Candidate {
                fan,
                lo: flo,
                hi: fhi,
                key: -u.ln() / weight,
            });
        }
        let mut order: Vec<usize> = (0..candidates.len()).collect();
        order.sort_by(|&x, &y| {
            candidates[x]
                .key
                .total_cmp(&candidates[y].key)
                .then(x.cmp(&y))
        });
        for &c in &order {
            let (class, home) = &class_of[c];
            let class = &mut classes[*class];
            class.all.order.push(c);
            if let Some(h) = home {
                class.home.entry(h.clone()).or_default().order.push(c);
            }
        }
        // Where: the brand's stores (tier-1 cities sell more), the mall without a store,
        // and a pop-up store no record has, as often as keys miss their records.
        let mut slots: Vec<Slot> = self
            .stores_of(a)
            .into_iter()
            .map(|i| {
                let s = &world.stores[i];
                let tier = if s.tier == "Tier 1" { 1.3 } else { 1.0 };
                Slot {
                    store_id: Some(s.store_id.clone()),
                    home: true,
                    weight: tier * (STORE_SPREAD * standard_normal(&mut self.rng)).exp(),
                }
            })
            .collect();
        let stores_weight: f64 = slots.iter().map(|s| s.weight).sum();
        slots.push(Slot {
            store_id: None,
            home: false,
            weight: 1.0,
        });
        if self.spec.unknown_dimension_share > 0.0 {
            slots.push(Slot {
                store_id: Some(format!(
                    "{}_popup01",
                    world.brand_code(world.accounts[a].brand)
                )),
                home: false,
                weight: 2.0 * self.spec.unknown_dimension_share * stores_weight,
            });
        }
        // The funnel's numbers, exact over the account's month, split over the slots.
        let per_buyer = (1.0 - model.add_rate) * (1.0 + SECOND_PURCHASE_OTHERS)
            + model.add_rate
                * ((1.0 - model.active_rate) * (1.0 + SECOND_PURCHASE_ADDED)
                    + model.active_rate
                        * ((1.0 - model.repurchase_rate)
                            + model.repurchase_rate * mean_repurchases()));
        let buyers = ((purchases as f64 / per_buyer).round() as usize).max(1);
        let added = (model.add_rate * buyers as f64).round() as usize;
        let active = (model.active_rate * added as f64).round() as usize;
        let repurchasing = (model.repurchase_rate * active as f64).round() as usize;
        let weights: Vec<f64> = slots.iter().map(|s| s.weight).collect();
        let b = apportion(buyers, &weights);
        let ad = apportion(added, &as_weights(&b));
        let ac = apportion(active, &as_weights(&ad));
        let re = apportion(repurchasing, &as_weights(&ac));
        let mut taken = vec![false; candidates.len()];
        for (s, slot) in slots.iter().enumerate() {
            let home = slot.store_id.as_deref().filter(|_| slot.home);
            let mut buyers: Vec<(usize, Buyer)> = Vec::new();
            for k in 0..ac[s] {
                let what = if k < re[s] {
                    Buyer::Repurchasing
                } else {
                    Buyer::Active
                };
                if let Some(c) = classes[2].take(home, &mut self.rng, &mut taken) {
                    buyers.push((c, what));
                }
            }
            for _ in ac[s]..ad[s] {
                if let Some(c) = classes[1].take(home, &mut self.rng, &mut taken) {
                    buyers.push((c, Buyer::Added));
                }
            }
            for _ in ad[s]..b[s] {
                if let Some(c) = classes[0].take(None, &mut self.rng, &mut taken) {
                    buyers.push((c, Buyer::Other));
                }
            }
            for (c, what) in buyers {
                let c = &candidates[c];
                let n = match what {
                    Buyer::Repurchasing => {
                        2 + WeightedIndex::new(REPURCHASES)
                            .expect("weights")
                            .sample(&mut self.rng)
                    }
                    Buyer::Active => 1,
                    Buyer::Added => 1 + usize::from(self.rng.gen_bool(SECOND_PURCHASE_ADDED)),
                    Buyer::Other => 1 + usize::from(self.rng.gen_bool(SECOND_PURCHASE_OTHERS)),
                };
                for _ in 0..n {
                    let time = self.when(a as u32, c.fan, c.lo, c.hi);
                    self.purchase(a, c.fan, time, slot, model);
                }
            }
        }
    }

    /// When a fan buys in [lo, hi): most often a while after one of the fan's touches
    /// there (an associate chat preferred), else anywhere in it.
    fn when(&mut self, account: u32, fan: u32, lo: i64, hi: i64) -> i64 {
        let touches: Vec<(i64, TouchKind)> = self
            .touches
            .get(&(account, fan))
            .map(|t| {
                t.iter()
                    .filter(|x| (lo..hi).contains(&x.0))
                    .copied()
                    .collect()
            })
            .unwrap_or_default();
        let chats = touches.iter().any(|t| t.1 == TouchKind::AssociateChat);
        let follow = match (chats, touches.is_empty()) {
            (true, _) => AFTER_CHAT,
            (false, false) => AFTER_TOUCH,
            (false, true) => 0.0,
        };
        if !self.rng.gen_bool(follow) {
            return self.rng.gen_range(lo..hi);
        }
        let pick = WeightedIndex::new(touches.iter().map(|t| match t.1 {
            TouchKind::AssociateChat => ANCHOR_WEIGHTS.0,
            TouchKind::Article | TouchKind::QrScan => ANCHOR_WEIGHTS.1,
            TouchKind::MenuEcommerce => ANCHOR_WEIGHTS.2,
        }))
        .expect("touches");
        let anchor = touches[pick.sample(&mut self.rng)].0;
        let delay = (TOUCH_TO_PURCHASE_MEDIAN_MS
            * (TOUCH_TO_PURCHASE_SIGMA * standard_normal(&mut self.rng)).exp())
            as i64;
        let t = anchor.saturating_add(delay.max(60_000));
        if t < hi {
            t
        } else {
            self.rng.gen_range(anchor..hi)
        }
    }
}

fn mean_repurchases() -> f64 {
    let total: f64 = REPURCHASES.iter().sum();
    REPURCHASES
        .iter()
        .enumerate()
        .map(|(k, w)| (k + 2) as f64 * w)
        .sum::<f64>()
        / total
}

fn as_weights(counts: &[usize]) -> Vec<f64> {
    counts.iter().map(|&n| n as f64).collect()
}
