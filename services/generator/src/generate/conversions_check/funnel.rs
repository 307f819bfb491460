//! The social-selling funnel recomputed from the purchases, the published profiles and
//! the interactions, and its comparison with the truth's monthly rows and
//! `social_funnel(...)`.

use std::collections::{BTreeMap, HashMap};

use super::rows::Fan;
use crate::generate::orders::decoded::OrderIn;
use crate::generate::{month_date, Conversions, FunnelRow};
use crate::world;

/// (month, app_id, store) → (level, associate) → (buyers, added, active, repurchasing,
/// purchases, spent, repurchases).
type Funnel = BTreeMap<(String, String, String, String), [i64; 7]>;

fn funnel(
    purchases: &[(u32, Fan, String, i64)],
    profiles: &HashMap<Fan, String>,
    interactions: &HashMap<Fan, BTreeMap<u32, u64>>,
    (from, to): (u32, u32),
    over: u64,
) -> Funnel {
    let mut by_store: BTreeMap<(String, String), BTreeMap<Fan, (i64, i64)>> = BTreeMap::new();
    for (m, fan, store, amount) in purchases {
        if (from..=to).contains(m) {
            let e = by_store
                .entry((fan.0.clone(), store.clone()))
                .or_default()
                .entry(fan.clone())
                .or_default();
            e.0 += 1;
            e.1 += amount;
        }
    }
    let mut out = Funnel::new();
    for ((app, store), fans) in by_store {
        for (fan, (n, spent)) in &fans {
            let associate = profiles.get(fan).cloned().unwrap_or_default();
            let count: u64 = interactions
                .get(fan)
                .map_or(0, |m| m.range(from..=to).map(|x| x.1).sum());
            let added = !associate.is_empty();
            let active = added && count > over;
            let repurchasing = active && *n >= 2;
            let mut rows = vec![(String::new(), true)];
            if added {
                rows.push((associate, false));
            }
            for (associate, store_row) in rows {
                let r = out
                    .entry((app.clone(), store.clone(), associate, month_date(from)))
                    .or_default();
                r[0] = fans.len() as i64;
                r[1] += i64::from(added);
                r[2] += i64::from(active);
                r[3] += i64::from(repurchasing);
                if store_row || added {
                    r[4] += n;
                    r[5] += spent;
                }
                if repurchasing {
                    r[6] += n;
                }
            }
        }
    }
    out
}

/// The funnel, monthly (active over 4) and over both months (active over 2).
pub(super) fn check_funnel(
    c: &Conversions,
    first: &BTreeMap<Fan, &OrderIn>,
    profiles: &HashMap<Fan, String>,
    interactions: &HashMap<Fan, BTreeMap<u32, u64>>,
) {
    let purchases: Vec<(u32, Fan, String, i64)> = first
        .values()
        .map(|p| {
            (
                world::shanghai(p.order_time).yyyymm(),
                (p.app_id.clone(), p.openid.clone()),
                p.store_id.clone().unwrap_or_default(),
                p.amount_fen,
            )
        })
        .collect();
    let as_funnel = |rows: &[FunnelRow]| -> Funnel {
        rows.iter()
            .map(|r| {
                let ratio = |n: u64, d: u64| (d > 0).then(|| n as f64 / d as f64);
                assert_eq!(r.add_rate, ratio(r.added, r.buyers));
                assert_eq!(r.active_rate, ratio(r.active, r.added));
                assert_eq!(r.repurchase_rate, ratio(r.repurchasing, r.active));
                assert_eq!(r.level == "store", r.associate_userid.is_empty());
                let repurchases = r
                    .repurchase_frequency
                    .map_or(0.0, |f| f * r.repurchasing as f64);
                (
                    (
                        r.app_id.clone(),
                        r.store_id.clone(),
                        r.associate_userid.clone(),
                        r.month.clone(),
                    ),
                    [
                        r.buyers as i64,
                        r.added as i64,
                        r.active as i64,
                        r.repurchasing as i64,
                        r.purchases as i64,
                        r.spent_fen,
                        repurchases.round() as i64,
                    ],
                )
            })
            .collect()
    };
    let mut monthly = Funnel::new();
    for m in [202610, 202611] {
        monthly.extend(funnel(&purchases, profiles, interactions, (m, m), 4));
    }
    assert_eq!(as_funnel(&c.funnel), monthly, "v_social_funnel_monthly");
    let both = funnel(&purchases, profiles, interactions, (202610, 202611), 2);
    assert_eq!(
        as_funnel(&c.social_funnel(202610, 202611, 2)),
        both,
        "social_funnel('2026-10-01', '2026-11-01', 2)"
    );
    assert!(monthly.values().any(|r| r[3] > 0), "repurchasers");
    assert!(
        c.funnel.iter().any(|r| r.store_id.is_empty()),
        "mall orders"
    );
}
