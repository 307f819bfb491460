//! The headline figures of the orders (`ConversionShapes`), to compare with the seed
//! at a glance.

use std::collections::{BTreeMap, HashMap};

use super::funnel::{month_date, ratio};
use super::rows::{Conversions, FunnelShape, ATTRIBUTION_WINDOW_MS, MODELS};
use crate::generate::orders::{self, Kind, PlannedOrder};
use crate::generate::plan::Planned;
use crate::generate::touch::{FanKey, Touch, TouchKind};
use crate::world::World;

/// Headline figures: counts, refunds, share codes, last-touch shares, the touchless and
/// stale purchases (`touchless`, `stale`, counted by the attribution), the chat lift and
/// the funnel pooled per business model.
#[allow(clippy::too_many_arguments)] // the tally's inputs, handed on as they are
pub(super) fn shapes(
    c: &mut Conversions,
    world: &World,
    planned: &[Planned],
    touches: &[Touch],
    orders: &[PlannedOrder],
    first: &BTreeMap<(u32, &str), &PlannedOrder>,
    events: u64,
    touchless: u64,
    stale: u64,
) {
    c.purchases = first.len() as u64;
    c.refunds = orders.iter().filter(|o| o.kind == Kind::Refund).count() as u64;
    let s = &mut c.shapes;
    let mut per_month: BTreeMap<u32, u64> = BTreeMap::new();
    for p in &c.basis.purchases {
        *per_month.entry(p.0).or_default() += 1;
    }
    s.month = per_month
        .iter()
        .max_by_key(|(m, n)| (**n, std::cmp::Reverse(**m)))
        .map_or(0, |(m, _)| *m);
    let n = c.purchases as f64;
    s.purchases_per_event = ratio(n, events as f64).unwrap_or(0.0);
    let mut refunded: HashMap<(u32, &str), (i64, u64)> = HashMap::new();
    for o in orders.iter().filter(|o| o.kind == Kind::Refund) {
        let key = (o.account, o.order_id.as_str());
        if first.contains_key(&key) {
            let r = refunded.entry(key).or_default();
            r.0 += o.amount_fen;
            r.1 += 1;
        }
    }
    s.refunded_share = ratio(refunded.len() as f64, n).unwrap_or(0.0);
    let partly = refunded
        .iter()
        .filter(|(k, r)| r.0 < first[*k].amount_fen)
        .count();
    s.partly_refunded = ratio(partly as f64, refunded.len() as f64).unwrap_or(0.0);
    let several = refunded.values().filter(|r| r.1 > 1).count();
    s.several_refunds = ratio(several as f64, refunded.len() as f64).unwrap_or(0.0);
    let shared = first
        .values()
        .filter(|p| p.share_code.as_deref().is_some_and(|c| !c.is_empty()))
        .count();
    s.share_code_share = ratio(shared as f64, n).unwrap_or(0.0);
    for t in c.by_touch.iter().filter(|t| t.model == MODELS[0]) {
        if t.credited.orders > 0.0 {
            s.last_touch
                .insert(t.touch.clone(), t.credited.orders / n.max(1.0));
        }
    }
    s.touchless_purchases = touchless;
    s.stale_touch_purchases = stale;
    // Conversion within the window after a touch: after associate chats vs other touches.
    let mut bought: HashMap<FanKey, Vec<i64>> = HashMap::new();
    for p in first.values() {
        bought.entry((p.account, p.fan)).or_default().push(p.time);
    }
    for times in bought.values_mut() {
        times.sort_unstable();
    }
    let mut converted = [(0u64, 0u64); 2]; // (touches, followed by a purchase): chat, other
    for t in touches {
        let e = &planned[t.index as usize];
        let c = &mut converted[usize::from(t.kind != TouchKind::AssociateChat)];
        c.0 += 1;
        c.1 += u64::from(bought.get(&(e.account, e.fan)).is_some_and(|times| {
            let i = times.partition_point(|&p| p < e.client);
            times
                .get(i)
                .is_some_and(|&p| p <= e.client + ATTRIBUTION_WINDOW_MS)
        }));
    }
    let rate = |c: (u64, u64)| ratio(c.1 as f64, c.0 as f64).unwrap_or(0.0);
    s.chat_lift = ratio(rate(converted[0]), rate(converted[1])).unwrap_or(0.0);
    let mut pooled: BTreeMap<&'static str, [f64; 8]> = BTreeMap::new();
    for row in c
        .funnel
        .iter()
        .filter(|r| r.level == "store" && r.month == month_date(s.month))
    {
        let account = world
            .accounts
            .iter()
            .find(|a| a.record.app_id == row.app_id)
            .map_or(0, |a| a.brand);
        let p = pooled.entry(orders::model(account).name).or_default();
        let repurchases = row.repurchase_frequency.unwrap_or(0.0) * row.repurchasing as f64;
        for (x, v) in p.iter_mut().zip([
            1.0,
            row.buyers as f64,
            row.added as f64,
            row.active as f64,
            row.repurchasing as f64,
            repurchases,
            row.purchases as f64,
            row.spent_fen as f64,
        ]) {
            *x += v;
        }
    }
    s.funnel = pooled
        .into_iter()
        .map(|(name, p)| {
            let r = |a: f64, b: f64| ratio(a, b).unwrap_or(0.0);
            (
                name.to_string(),
                FunnelShape {
                    stores: p[0] as u64,
                    buyers: p[1] as u64,
                    add_rate: r(p[2], p[1]),
                    active_rate: r(p[3], p[2]),
                    repurchase_rate: r(p[4], p[3]),
                    repurchase_frequency: r(p[5], p[4]),
                    basket_yuan: r(p[7], p[6]) / 100.0,
                },
            )
        })
        .collect();
}
