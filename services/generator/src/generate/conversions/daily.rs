//! `v_orders_daily`: orders per day, store and channel, without attribution.

use std::collections::{BTreeMap, HashSet};

use super::dims::{orders_unknown, Dims};
use super::funnel::ratio;
use super::rows::{Conversions, OrdersDay, CURRENCY};
use crate::generate::orders::{Kind, PlannedOrder};
use crate::generate::touch::FanKey;
use crate::world::{shanghai, World};

/// Orders per day, store and channel.
pub(super) fn orders_daily(
    c: &mut Conversions,
    world: &World,
    dims: &Dims,
    orders: &[PlannedOrder],
    first: &BTreeMap<(u32, &str), &PlannedOrder>,
) {
    let app = |a: u32| world.accounts[a as usize].record.app_id.as_str();
    type DayKey = (String, String, String, String, String);
    let mut days: BTreeMap<DayKey, (OrdersDay, HashSet<FanKey>)> = BTreeMap::new();
    let purchases = first.values().copied();
    let refunds = orders.iter().filter(|o| o.kind == Kind::Refund);
    for o in purchases.chain(refunds) {
        let store = o.store_id.clone().unwrap_or_default();
        let region = if store.is_empty() {
            String::new()
        } else {
            dims.region(&store)
        };
        let key = (
            shanghai(o.time).date(),
            app(o.account).to_string(),
            store,
            region,
            o.channel.as_str().to_string(),
        );
        let (d, buyers) = days.entry(key).or_default();
        if o.kind == Kind::Purchase {
            d.purchases += 1;
            d.items += o.items.max(0) as u64;
            d.gross_fen += o.amount_fen;
            buyers.insert((o.account, o.fan));
        } else {
            d.refunds += 1;
            d.refunded_fen += o.amount_fen;
        }
    }
    c.orders_daily = days
        .into_iter()
        .map(
            |((day, app_id, store_id, region, channel), (mut d, buyers))| {
                let account = world
                    .accounts
                    .iter()
                    .find(|a| a.record.app_id == app_id)
                    .map(|a| a.record.brand.clone())
                    .unwrap_or_else(orders_unknown);
                d.day = day;
                d.brand = account;
                d.app_id = app_id;
                d.store_id = store_id;
                d.region = region;
                d.channel = channel;
                d.currency = CURRENCY.to_string();
                d.buyers = buyers.len() as u64;
                d.net_fen = d.gross_fen - d.refunded_fen;
                d.basket_fen = ratio(d.gross_fen as f64, d.purchases as f64);
                d
            },
        )
        .collect();
}
