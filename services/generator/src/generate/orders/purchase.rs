//! A purchase of the planner: where it is placed, its line items and price, its share
//! code, when the backend gets it, and its refunds; and refunds of orders from before
//! the span.

use rand::distributions::WeightedIndex;
use rand::prelude::*;

use super::business::{model, Model};
use super::order::{Channel, Kind, PlannedOrder};
use super::planner::Planner;
use super::pools::Slot;
use crate::world::{self, standard_normal};

/// Share of purchases refunded (fully, partly, or in several parts).
pub const REFUND_SHARE: f64 = 0.04;

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

/// A late upload reaches the backend this long after the order, at least and at most
/// (well inside the pipeline's 7-day lateness limit).
pub(super) const LATE_MIN_MS: i64 = 3_600_000;
pub(super) const LATE_MAX_MS: i64 = 3 * world::DAY_MS;

impl Planner<'_> {
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
    pub(super) fn purchase(&mut self, a: usize, fan: u32, time: i64, slot: &Slot, model: Model) {
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
    pub(super) fn unmatched_refunds(&mut self, n: usize) {
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
