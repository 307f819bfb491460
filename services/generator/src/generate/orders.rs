//! Orders: purchases and refunds of the fans, planned after their interactions so that
//! conversions follow touches — most often days after a WeCom 1:1 chat with an associate,
//! also after push reads, QR scans and e-commerce menu clicks — and so that every store's
//! social-selling funnel in a month lands on seed 003's figures.
//!
//! Seed 003 gives a funnel per store (unique buyers → added on WeCom → active → repurchasing)
//! for two models: a clothing store (model 1: add rate 35–45%, 11–13% of the added active,
//! 70–80% of those repurchase, basket about 1,500 yuan) and a luxury one (model 3: add
//! 50–60%, active about 10%, repurchase 70–80%, basket 20,000–25,000 yuan). The world's
//! brands have no category of their own, so brands alternate: the first (and every other)
//! is a luxury maison, the next its ready-to-wear house ([`model`]).
//!
//! Per account and calendar month (the part of it the span covers), the month's buyers are
//! split over the brand's stores, mall orders without a store, and now and then a pop-up
//! store no record has; per store the planner takes exactly the funnel's numbers (to
//! rounding, over the account's stores) of buyers with a bound associate ("added", mostly
//! the store's own associates' customers), of those the ones with more than 4 interactions
//! in the month ("active", from the plan's own counts) and of those the repurchasers (2–4
//! purchases at the store). Within each class, fans with touches are likelier buyers, an
//! associate chat most. A purchase falls a lognormal delay (median 18 h) after one of the
//! fan's touches, an associate chat preferred, or anywhere in the fan's time, so some
//! purchases have no touch and some only touches older than the attribution window.
//!
//! Mall orders carry the fan's associate as a share code now and then; a few percent of
//! purchases are refunded, fully, partly, or in several parts; a few refunds are of orders
//! from before the span (no purchase to match). Every order and refund happens inside the
//! span and reaches the backend a little later (POS uploads now and then hours to days
//! late, never after the span ends, always well inside the pipeline's 7-day lateness).

use std::collections::{BTreeMap, HashMap};

use rand::distributions::WeightedIndex;
use rand::prelude::*;
use rand_chacha::ChaCha8Rng;
use serde::Serialize;
use wxpulse_runtime::codec::{self, EMBEDDED};

use super::plan::Planned;
use super::touch::{FanKey, Touch, TouchKind};
use crate::spec::{Spec, RETRY_AFTER_MS};
use crate::world::{self, apportion, month_start_ms, next_month, shanghai, standard_normal, World};
use wxpulse_cli::produce::Outgoing;

/// The orders topic.
pub const ORDERS_TOPIC: &str = "wxpulse.orders";

/// Purchases per valid interaction: a modest share of the traffic (about 1.5%).
pub const PURCHASES_PER_EVENT: f64 = 0.015;

/// Share of purchases refunded (fully, partly, or in several parts).
pub const REFUND_SHARE: f64 = 0.04;

/// Refunds of orders placed before the span (no purchase to match), per purchase.
const UNMATCHED_REFUNDS: f64 = 0.002;

/// Share of an added buyer's store that is the store of the fan's own associate.
const HOME_STORE: f64 = 0.85;

/// Share of a store's orders placed at its POS (the rest in the mini-program mall,
/// credited to the store).
const POS_SHARE: f64 = 0.65;

/// Share of an added fan's mall orders placed through the associate's share link.
const SHARE_CODE_ADDED: f64 = 0.4;

/// Share of other fans' mall orders placed through some associate's share link.
const SHARE_CODE_OTHERS: f64 = 0.05;

/// Line items per order: 1, 2, 3, 4.
const ITEMS: [f64; 4] = [60.0, 25.0, 10.0, 5.0];

/// Spread (log scale) of a line item's price.
const PRICE_SIGMA: f64 = 0.5;

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

/// A late upload reaches the backend this long after the order, at least and at most
/// (well inside the pipeline's 7-day lateness limit).
const LATE_MIN_MS: i64 = 3_600_000;
const LATE_MAX_MS: i64 = 3 * world::DAY_MS;

/// A brand's business model, with seed 003's funnel for it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Model {
    /// `luxury` (seed 003's model 3) or `clothing` (model 1).
    pub name: &'static str,
    /// Buyers added on WeCom (bound to an associate) / buyers.
    pub add_rate: f64,
    /// Added buyers with more than 4 interactions in the month / added.
    pub active_rate: f64,
    /// Active buyers with 2 or more purchases at the store in the month / active.
    pub repurchase_rate: f64,
    /// Mean amount of a purchase, fen.
    pub basket_fen: f64,
}

/// Seed 003, model 3 (luxury): add 50–60%, active about 10%, repurchase 70–80%, basket
/// 20,000–25,000 yuan.
pub const LUXURY: Model = Model {
    name: "luxury",
    add_rate: 0.55,
    active_rate: 0.10,
    repurchase_rate: 0.75,
    basket_fen: 2_250_000.0,
};

/// Seed 003, model 1 (a clothing store, 5k buyers a year): add 35–45%, active 11–13%,
/// repurchase 70–80%, basket about 1,500 yuan.
pub const CLOTHING: Model = Model {
    name: "clothing",
    add_rate: 0.40,
    active_rate: 0.12,
    repurchase_rate: 0.75,
    basket_fen: 150_000.0,
};

/// The model of a brand (index into the world's brands): luxury, clothing, luxury, …
pub fn model(brand: usize) -> Model {
    if brand % 2 == 0 {
        LUXURY
    } else {
        CLOTHING
    }
}

/// Purchase or refund.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub(crate) enum Kind {
    #[serde(rename = "PURCHASE")]
    Purchase,
    #[serde(rename = "REFUND")]
    Refund,
    /// Only in malformed records.
    #[serde(rename = "OTHER")]
    Other,
}

/// Where the order was placed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub(crate) enum Channel {
    #[serde(rename = "MINI_PROGRAM")]
    MiniProgram,
    #[serde(rename = "STORE_POS")]
    StorePos,
}

impl Channel {
    /// As the orders table stores it.
    pub fn as_str(self) -> &'static str {
        match self {
            Channel::MiniProgram => "mini_program",
            Channel::StorePos => "store_pos",
        }
    }
}

/// A valid order record: produced once (plus retry copies the pipeline drops).
#[derive(Debug, Clone)]
pub(crate) struct PlannedOrder {
    pub account: u32,
    pub fan: u32,
    pub event_id: uuid::Uuid,
    pub order_id: String,
    pub kind: Kind,
    /// Order time, ms: the event time.
    pub time: i64,
    /// Server time, ms.
    pub server: i64,
    pub amount_fen: i64,
    pub store_id: Option<String>,
    pub channel: Channel,
    pub share_code: Option<String>,
    pub items: i32,
}

/// The order as the Avro record `com.wxpulse.events.Order` (v1), fields in schema order.
#[derive(Serialize)]
struct OrderRecord<'a> {
    event_id: &'a str,
    order_id: &'a str,
    kind: Kind,
    app_id: &'a str,
    openid: &'a str,
    unionid: Option<&'a str>,
    order_time: i64,
    server_time: i64,
    amount_fen: i64,
    currency: &'a str,
    store_id: Option<&'a str>,
    channel: Channel,
    share_code: Option<&'a str>,
    items: i32,
}

/// What the orders topic got besides the valid records.
#[derive(Debug, Default, Clone)]
pub(crate) struct Produced {
    /// Records produced to the orders topic in all.
    pub records: u64,
    /// Retry copies (same event id).
    pub duplicates: u64,
    /// Malformed orders per dead-letter reason.
    pub dead_letters: BTreeMap<String, u64>,
}

/// A fan who may buy in the month: when (following, inside the month's part of the span),
/// and how likely (touches), with the key that orders the draws.
struct Candidate {
    fan: u32,
    lo: i64,
    hi: i64,
    /// Efraimidis–Spirakis key: smaller draws first.
    key: f64,
}

/// Candidates of one class in draw order, and how far the draws went.
#[derive(Default)]
struct Pool {
    order: Vec<usize>,
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
struct Class {
    all: Pool,
    home: HashMap<String, Pool>,
}

impl Class {
    fn take(
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
struct Slot {
    store_id: Option<String>,
    /// The store's associates' customers buy here most (a store of the world).
    home: bool,
    weight: f64,
}

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

struct Planner<'a> {
    spec: &'a Spec,
    world: &'a World,
    offset: i64,
    rng: ChaCha8Rng,
    ids: ChaCha8Rng,
    start: i64,
    end: i64,
    /// A fan's qualifying touches in time order: (event time, kind).
    touches: HashMap<FanKey, Vec<(i64, TouchKind)>>,
    next_order: Vec<u64>,
    out: Vec<PlannedOrder>,
}

/// What a buyer is in the store's funnel.
#[derive(Clone, Copy, PartialEq)]
enum Buyer {
    Other,
    Added,
    Active,
    Repurchasing,
}

impl Planner<'_> {
    /// When the fan follows within [lo, hi), in event time; fans without a profile always.
    fn following(&self, account: usize, fan: u32, lo: i64, hi: i64) -> (i64, i64) {
        match self.world.fan(account, fan) {
            None => (lo, hi),
            Some(f) => (
                (f.followed_at + self.offset).max(lo),
                f.unfollowed_at.map_or(hi, |u| (u + self.offset).min(hi)),
            ),
        }
    }

    /// The brand's stores (indexes into the world's stores).
    fn stores_of(&self, account: usize) -> Vec<usize> {
        let prefix = format!(
            "{}_",
            self.world.brand_code(self.world.accounts[account].brand)
        );
        (0..self.world.stores.len())
            .filter(|&i| self.world.stores[i].store_id.starts_with(&prefix))
            .collect()
    }

    fn uuid(&mut self) -> uuid::Uuid {
        uuid::Builder::from_random_bytes(self.ids.gen()).into_uuid()
    }

    fn order_id(&mut self, account: usize) -> String {
        self.next_order[account] += 1;
        format!(
            "{}-{:08}",
            self.world.accounts[account].record.app_id, self.next_order[account]
        )
    }

    /// The month `m` of account `a` ([lo, hi) of it in the span): about `purchases`
    /// purchases, by the brand's funnel, and their refunds.
    fn month(
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

    /// When the backend gets a record of `time`: soon (POS a little later), or, for a late
    /// upload, hours to days later; never after the span ends.
    fn server_time(&mut self, time: i64, channel: Channel) -> i64 {
        let room = (self.end - 1 - time).max(0);
        let delay = if self.rng.gen_bool(self.spec.late_share) && room > LATE_MIN_MS {
            self.rng.gen_range(LATE_MIN_MS..=room.min(LATE_MAX_MS))
        } else {
            match channel {
                Channel::MiniProgram => self.rng.gen_range(50..2_000),
                Channel::StorePos => self.rng.gen_range(200..10_000),
            }
        };
        time + delay.min(room)
    }

    /// A price, fen: x9 yuan, lognormal around the brand's item price.
    fn price(&mut self, model: Model) -> i64 {
        let items_mean: f64 = ITEMS
            .iter()
            .enumerate()
            .map(|(k, w)| (k + 1) as f64 * w)
            .sum::<f64>()
            / ITEMS.iter().sum::<f64>();
        let median = model.basket_fen / items_mean / (PRICE_SIGMA * PRICE_SIGMA / 2.0).exp();
        let fen = median * (PRICE_SIGMA * standard_normal(&mut self.rng)).exp();
        let yuan = ((fen / 1_000.0).round() as i64 * 10 - 1).max(9);
        yuan * 100
    }

    /// A purchase at `time` in `slot`, and its refunds.
    fn purchase(&mut self, a: usize, fan: u32, time: i64, slot: &Slot, model: Model) {
        let world = self.world;
        let channel = match &slot.store_id {
            Some(_) if slot.home && !self.rng.gen_bool(POS_SHARE) => Channel::MiniProgram,
            Some(_) => Channel::StorePos,
            None => Channel::MiniProgram,
        };
        let bound = world
            .fan(a, fan)
            .and_then(|f| f.associate)
            .map(|i| world.associates[i].userid.clone());
        let share_code = match (channel, bound) {
            (Channel::StorePos, _) => None,
            (_, Some(userid)) if self.rng.gen_bool(SHARE_CODE_ADDED) => {
                if self.rng.gen_bool(self.spec.unknown_dimension_share) {
                    Some(world.unknown_associate(&mut self.rng))
                } else {
                    Some(userid)
                }
            }
            (_, None) if self.rng.gen_bool(SHARE_CODE_OTHERS) => {
                // A friend forwarded an associate's link: one of the store's (or brand's).
                let stores = self.stores_of(a);
                let of_slot: Vec<&str> = world
                    .associates
                    .iter()
                    .filter(|x| {
                        x.active
                            && match &slot.store_id {
                                Some(s) => &x.store_id == s,
                                None => stores
                                    .iter()
                                    .any(|&i| world.stores[i].store_id == x.store_id),
                            }
                    })
                    .map(|x| x.userid.as_str())
                    .collect();
                of_slot.choose(&mut self.rng).map(|u| u.to_string())
            }
            _ => None,
        };
        let items = 1 + WeightedIndex::new(ITEMS)
            .expect("weights")
            .sample(&mut self.rng) as i32;
        let amount_fen: i64 = (0..items).map(|_| self.price(model)).sum();
        let order_id = self.order_id(a);
        let server = self.server_time(time, channel);
        let event_id = self.uuid();
        let purchase = PlannedOrder {
            account: a as u32,
            fan,
            event_id,
            order_id,
            kind: Kind::Purchase,
            time,
            server,
            amount_fen,
            store_id: slot.store_id.clone(),
            channel,
            share_code,
            items,
        };
        self.refunds(&purchase);
        self.out.push(purchase);
    }

    /// Refunds of a purchase, a few percent of them: the whole amount, a part, or several
    /// parts; each inside the span, days after the purchase (or the previous refund).
    fn refunds(&mut self, p: &PlannedOrder) {
        if !self.rng.gen_bool(REFUND_SHARE) {
            return;
        }
        let u: f64 = self.rng.gen();
        let yuan = |x: f64| ((x / 100.0).round() as i64 * 100).max(100);
        let parts: Vec<(i64, i32)> = if u < 0.55 || p.amount_fen < 1_000 {
            vec![(p.amount_fen, p.items)]
        } else if u < 0.85 {
            let part = yuan(p.amount_fen as f64 * self.rng.gen_range(0.2..0.7));
            vec![(part.min(p.amount_fen), 1)]
        } else {
            let mut left = p.amount_fen;
            let mut parts = Vec::new();
            for _ in 0..self.rng.gen_range(2..=3) {
                let part = yuan(p.amount_fen as f64 * self.rng.gen_range(0.15..0.35)).min(left);
                if part <= 0 {
                    break;
                }
                left -= part;
                parts.push((part, 1));
            }
            parts
        };
        let mut t = p.time;
        for (amount_fen, items) in parts {
            let median = if t == p.time { 3.0 } else { 2.0 } * world::DAY_MS as f64;
            t += ((median * (0.7 * standard_normal(&mut self.rng)).exp()) as i64).max(60_000);
            if t >= self.end {
                return;
            }
            let server = self.server_time(t, p.channel);
            let event_id = self.uuid();
            self.out.push(PlannedOrder {
                event_id,
                kind: Kind::Refund,
                time: t,
                server,
                amount_fen,
                items,
                ..p.clone()
            });
        }
    }

    /// Refunds of orders placed before the span: nothing in the table to match.
    fn unmatched_refunds(&mut self, n: usize) {
        let world = self.world;
        for k in 0..n {
            let a = self.rng.gen_range(0..world.accounts.len());
            let fans = world.fans[a].len() as u32;
            if fans == 0 {
                continue;
            }
            let Some((fan, lo, hi)) = (0..20).find_map(|_| {
                let fan = self.rng.gen_range(0..fans);
                let (lo, hi) = self.following(a, fan, self.start, self.end);
                (lo < hi).then_some((fan, lo, hi))
            }) else {
                continue;
            };
            let time = self.rng.gen_range(lo..hi);
            let model = model(world.accounts[a].brand);
            let stores = self.stores_of(a);
            let store_id = stores
                .choose(&mut self.rng)
                .map(|&i| world.stores[i].store_id.clone());
            let amount_fen = self.price(model);
            let server = self.server_time(time, Channel::StorePos);
            let event_id = self.uuid();
            self.out.push(PlannedOrder {
                account: a as u32,
                fan,
                event_id,
                order_id: format!("{}-P{:07}", world.accounts[a].record.app_id, k + 1),
                kind: Kind::Refund,
                time,
                server,
                amount_fen,
                store_id,
                channel: Channel::StorePos,
                share_code: None,
                items: 1,
            });
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

/// The unionid a fan's records carry (as the interaction events do).
pub(crate) fn unionid(app_id: &str, fan: u32) -> Option<String> {
    (fan % 5 != 0).then(|| format!("u{}_{fan:06}", &app_id[..5.min(app_id.len())]))
}

/// Encodes the orders (in production order) with their retry copies and malformed
/// records: (when each is produced, the record), and what was produced.
pub(crate) fn encode(
    spec: &Spec,
    world: &World,
    orders: &[PlannedOrder],
) -> (Vec<(i64, Outgoing)>, Produced) {
    let mut rng = ChaCha8Rng::seed_from_u64(spec.seed ^ 0x6f72_6465_7273_2121); // "orders!!"
    let s = EMBEDDED
        .iter()
        .find(|s| s.subject == format!("{ORDERS_TOPIC}-value") && s.version == 1)
        .expect("order v1 is embedded");
    let (schema_id, schema) = (s.id, codec::parse(s.json).expect("embedded schemas parse"));
    let mut produced = Produced::default();
    let mut out = Vec::with_capacity(orders.len() + orders.len() / 32);
    for o in orders {
        let app_id = world.accounts[o.account as usize].record.app_id.as_str();
        let openid = world::openid(app_id, o.fan);
        let unionid = unionid(app_id, o.fan);
        let event_id = o.event_id.to_string();
        let mut record = OrderRecord {
            event_id: &event_id,
            order_id: &o.order_id,
            kind: o.kind,
            app_id,
            openid: &openid,
            unionid: unionid.as_deref(),
            order_time: o.time,
            server_time: o.server,
            amount_fen: o.amount_fen,
            currency: "CNY",
            store_id: o.store_id.as_deref(),
            channel: o.channel,
            share_code: o.share_code.as_deref(),
            items: o.items,
        };
        let key = format!("{app_id}|{openid}").into_bytes();
        let mut payload = Vec::with_capacity(160);
        codec::encode_into(&record, schema_id, &schema, &mut payload)
            .expect("generated orders match their schema");
        let valid = Outgoing {
            topic: ORDERS_TOPIC,
            key: key.clone(),
            payload: Some(payload),
            at_ms: o.server,
        };
        if rng.gen_bool(spec.duplicate_share) {
            out.push((o.server + RETRY_AFTER_MS, valid.clone()));
            produced.duplicates += 1;
        }
        out.push((o.server, valid));
        if rng.gen_bool(spec.malformed_share) {
            // The same order with one field the orders service must refuse.
            let bad_id = uuid::Builder::from_random_bytes(rng.gen())
                .into_uuid()
                .to_string();
            record.event_id = &bad_id;
            let reason = match rng.gen_range(0..5) {
                0 => {
                    record.kind = Kind::Other;
                    "invalid_field"
                }
                1 => {
                    record.order_id = "";
                    "missing_field"
                }
                2 => {
                    record.amount_fen = -record.amount_fen * i64::from(rng.gen_bool(0.5));
                    "invalid_field"
                }
                3 => {
                    record.currency = ["cny", "RMB ", "CN"][rng.gen_range(0..3)];
                    "invalid_field"
                }
                _ => {
                    record.items = -1;
                    "invalid_field"
                }
            };
            let mut payload = Vec::with_capacity(160);
            codec::encode_into(&record, schema_id, &schema, &mut payload)
                .expect("malformed orders still match their schema");
            *produced.dead_letters.entry(reason.to_string()).or_default() += 1;
            out.push((
                o.server,
                Outgoing {
                    topic: ORDERS_TOPIC,
                    key,
                    payload: Some(payload),
                    at_ms: o.server,
                },
            ));
        }
    }
    out.sort_by_key(|r| r.0); // stable: a copy after its original, a malformed one too
    produced.records = out.len() as u64;
    (out, produced)
}

/// `orders` (sorted by when each is produced) merged into the production order of the
/// other records: an order goes before the first record produced after it.
pub(crate) fn merge(records: Vec<Outgoing>, orders: Vec<(i64, Outgoing)>) -> Vec<Outgoing> {
    let mut out = Vec::with_capacity(records.len() + orders.len());
    let mut orders = orders.into_iter().peekable();
    for r in records {
        if r.at_ms > 0 {
            while let Some((_, o)) = orders.next_if(|(at, _)| *at <= r.at_ms) {
                out.push(o);
            }
        }
        out.push(r);
    }
    out.extend(orders.map(|(_, o)| o));
    out
}

/// Reading the orders topic back, as the orders service would (tests only).
#[cfg(test)]
pub(crate) mod decoded {
    use serde::Deserialize;
    use wxpulse_runtime::codec::{self, EMBEDDED};

    use wxpulse_cli::produce::Outgoing;

    /// `OrderKind` as read.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
    pub enum KindIn {
        #[serde(rename = "PURCHASE")]
        Purchase,
        #[serde(rename = "REFUND")]
        Refund,
        #[serde(rename = "OTHER", other)]
        Other,
    }

    /// `OrderChannel` as read.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
    pub enum ChannelIn {
        #[serde(rename = "MINI_PROGRAM")]
        MiniProgram,
        #[serde(rename = "STORE_POS")]
        StorePos,
        #[serde(rename = "OTHER", other)]
        Other,
    }

    /// An order record as read.
    #[derive(Debug, Clone, Deserialize)]
    pub struct OrderIn {
        pub event_id: String,
        pub order_id: String,
        pub kind: KindIn,
        pub app_id: String,
        pub openid: String,
        pub unionid: Option<String>,
        pub order_time: i64,
        pub server_time: i64,
        pub amount_fen: i64,
        pub currency: String,
        pub store_id: Option<String>,
        pub channel: ChannelIn,
        pub share_code: Option<String>,
        pub items: i32,
    }

    impl OrderIn {
        /// The dead-letter reason of the orders service's own checks, if any.
        pub fn invalid(&self) -> Option<&'static str> {
            let c = self.currency.as_bytes();
            if self.kind == KindIn::Other {
                Some("invalid_field")
            } else if self.order_id.is_empty() {
                Some("missing_field")
            } else if self.amount_fen <= 0
                || self.items < 0
                || c.len() != 3
                || !c.iter().all(u8::is_ascii_uppercase)
            {
                Some("invalid_field")
            } else {
                None
            }
        }
    }

    /// Every record of the orders topic, decoded with the schema its frame names (which
    /// must be the topic's), in production order, with its key.
    pub fn orders(records: &[Outgoing]) -> Vec<(Vec<u8>, OrderIn)> {
        let s = EMBEDDED
            .iter()
            .find(|s| s.subject == "wxpulse.orders-value" && s.version == 1)
            .expect("order v1");
        let schema = codec::parse(s.json).expect("parses");
        records
            .iter()
            .filter(|r| r.topic == super::ORDERS_TOPIC)
            .map(|r| {
                let payload = r.payload.as_deref().expect("not a tombstone");
                let (id, datum) = codec::split_frame(payload).expect("framed");
                assert_eq!(id, s.id);
                let o: OrderIn = codec::decode(datum, &schema).expect("decodes");
                (r.key.clone(), o)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests;
