//! Attribution: which touches each purchase is credited to under each model, and the
//! credit rows summed into the views' groups (`v_attribution_daily`, by associate, by
//! push, by scene).

use std::collections::{BTreeMap, HashMap, HashSet};

use super::dims::{Attrs, Dims};
use super::rows::{
    AssociateCredit, Conversions, Credited, PushCredit, SceneCredit, TouchTotals,
    ATTRIBUTION_WINDOW_MS, CURRENCY, MODELS,
};
use crate::generate::orders::{Kind, PlannedOrder};
use crate::generate::plan::Planned;
use crate::generate::touch::{FanKey, Touch, TouchKind};
use crate::world::{shanghai, World};

/// One credit of an order: the touch it goes to, with what the touch carries.
#[derive(Clone)]
pub(super) struct Credit {
    touch: &'static str,
    attrs: Attrs,
    weight: f64,
}

/// Sums of a group of credit rows.
#[derive(Default)]
struct Acc {
    orders: f64,
    refunds: f64,
    gross: f64,
    refunded: f64,
    share_code_orders: f64,
    buyers: HashSet<FanKey>,
}

impl Acc {
    fn add(&mut self, purchase: bool, fan: FanKey, weight: f64, amount: f64, share_code: bool) {
        if purchase {
            self.orders += weight;
            self.gross += amount;
            self.buyers.insert(fan);
            if share_code {
                self.share_code_orders += weight;
            }
        } else {
            self.refunds += weight;
            self.refunded -= amount;
        }
    }

    fn credited(&self) -> Credited {
        Credited {
            orders: self.orders,
            refunds: self.refunds,
            buyers: self.buyers.len() as u64,
            gross_fen: self.gross,
            refunded_fen: self.refunded,
            net_fen: self.gross - self.refunded,
        }
    }
}

/// Per purchase (account, order id): its credits under each model.
pub(super) type Credits<'o> = HashMap<(u32, &'o str), [Vec<Credit>; 3]>;

/// Credits per purchase (`first`: the first purchase record of each order) and model,
/// and how many purchases are credited to no touch: without any touch before them, and
/// with touches all older than the window.
pub(super) fn credits<'o>(
    dims: &Dims,
    planned: &[Planned],
    touches: &[Touch],
    first: &BTreeMap<(u32, &'o str), &'o PlannedOrder>,
) -> (Credits<'o>, u64, u64) {
    // Each fan's touches by (touch time, event id): toString of a UUID orders as its
    // 128-bit value does (fixed-width lowercase hex and dashes).
    let mut by_fan: HashMap<FanKey, Vec<(i64, u128, usize, TouchKind)>> = HashMap::new();
    for t in touches {
        let e = &planned[t.index as usize];
        by_fan.entry((e.account, e.fan)).or_default().push((
            e.client,
            t.event_id,
            t.index as usize,
            t.kind,
        ));
    }
    for list in by_fan.values_mut() {
        list.sort_unstable();
    }

    // Credits per purchase and model.
    let mut credits: HashMap<(u32, &str), [Vec<Credit>; 3]> = HashMap::new();
    let (mut touchless, mut stale) = (0u64, 0u64);
    for (&key, p) in first {
        let fan = (p.account, p.fan);
        let mut per_model: [Vec<Credit>; 3] = Default::default();
        if let Some(code) = p.share_code.as_deref().filter(|s| !s.is_empty()) {
            let (store_id, region) = dims.associate_place(code);
            let credit = Credit {
                touch: "share_code",
                attrs: Attrs {
                    associate_userid: code.to_string(),
                    store_id,
                    region,
                    ..Attrs::default()
                },
                weight: 1.0,
            };
            per_model = std::array::from_fn(|_| vec![credit.clone()]);
        } else {
            let list = by_fan.get(&fan).map_or(&[][..], Vec::as_slice);
            let lo = list.partition_point(|t| t.0 < p.time - ATTRIBUTION_WINDOW_MS);
            let hi = list.partition_point(|t| t.0 <= p.time);
            let candidates = &list[lo..hi];
            if candidates.is_empty() {
                let none = Credit {
                    touch: "none",
                    attrs: Attrs::default(),
                    weight: 1.0,
                };
                per_model = std::array::from_fn(|_| vec![none.clone()]);
                if lo == 0 {
                    touchless += 1;
                } else {
                    stale += 1;
                }
            } else {
                let credit = |t: &(i64, u128, usize, TouchKind), weight: f64| Credit {
                    touch: t.3.as_str(),
                    attrs: dims.attributes(&planned[t.2]),
                    weight,
                };
                let n = candidates.len();
                per_model[0] = vec![credit(&candidates[n - 1], 1.0)];
                per_model[1] = vec![credit(&candidates[0], 1.0)];
                per_model[2] = candidates
                    .iter()
                    .map(|t| credit(t, 1.0 / n as f64))
                    .collect();
            }
        }
        credits.insert(key, per_model);
    }
    (credits, touchless, stale)
}

/// Credit rows of the purchases and refunds into the views' groups.
pub(super) fn credit_rows(
    c: &mut Conversions,
    world: &World,
    orders: &[PlannedOrder],
    first: &BTreeMap<(u32, &str), &PlannedOrder>,
    credits: &Credits,
) {
    let app = |a: u32| world.accounts[a as usize].record.app_id.as_str();
    // Credit rows into the views' groups.
    type AssociateKey = (String, String, usize, String, String, String);
    let mut by_associate: BTreeMap<AssociateKey, Acc> = BTreeMap::new();
    let mut by_push: BTreeMap<(String, String, usize, i64, String, String), Acc> = BTreeMap::new();
    let mut by_scene: BTreeMap<(String, String, usize, String, String), Acc> = BTreeMap::new();
    let mut by_touch: BTreeMap<(usize, &'static str), Acc> = BTreeMap::new();
    let unmatched = Credit {
        touch: "unmatched_refund",
        attrs: Attrs::default(),
        weight: 1.0,
    };
    let unmatched_models: [Vec<Credit>; 3] = std::array::from_fn(|_| vec![unmatched.clone()]);
    let mut rows = |o: &PlannedOrder, per_model: &[Vec<Credit>; 3]| {
        let purchase = o.kind == Kind::Purchase;
        let fan = (o.account, o.fan);
        let day = shanghai(o.time).date();
        let month = format!("{}-01", &day[..7]);
        let app_id = app(o.account).to_string();
        for (m, list) in per_model.iter().enumerate() {
            for cr in list {
                let amount = if purchase { 1.0 } else { -1.0 } * o.amount_fen as f64 * cr.weight;
                let share = cr.touch == "share_code";
                let add = |acc: &mut Acc| acc.add(purchase, fan, cr.weight, amount, share);
                add(by_touch.entry((m, cr.touch)).or_default());
                if !cr.attrs.associate_userid.is_empty() {
                    let a = &cr.attrs;
                    add(by_associate
                        .entry((
                            month.clone(),
                            app_id.clone(),
                            m,
                            a.associate_userid.clone(),
                            a.store_id.clone(),
                            a.region.clone(),
                        ))
                        .or_default());
                }
                match cr.touch {
                    "article" => add(by_push
                        .entry((
                            month.clone(),
                            app_id.clone(),
                            m,
                            cr.attrs.msgid,
                            cr.attrs.article_id.clone(),
                            cr.attrs.campaign.clone(),
                        ))
                        .or_default()),
                    "qr_scan" => add(by_scene
                        .entry((
                            month.clone(),
                            app_id.clone(),
                            m,
                            cr.attrs.scene.clone(),
                            cr.attrs.qr_channel.clone(),
                        ))
                        .or_default()),
                    _ => {}
                }
            }
        }
    };
    for (key, p) in first {
        rows(p, &credits[key]);
    }
    for o in orders.iter().filter(|o| o.kind == Kind::Refund) {
        let key = (o.account, o.order_id.as_str());
        match credits.get(&key) {
            Some(per_model) => rows(o, per_model),
            None => {
                c.unmatched_refunds += 1;
                rows(o, &unmatched_models);
            }
        }
    }
    c.by_touch = by_touch
        .into_iter()
        .map(|((m, touch), acc)| TouchTotals {
            model: MODELS[m].to_string(),
            touch: touch.to_string(),
            credited: acc.credited(),
        })
        .collect();
    c.by_associate = by_associate
        .into_iter()
        .map(
            |((month, app_id, m, associate_userid, store_id, region), acc)| AssociateCredit {
                month,
                app_id,
                currency: CURRENCY.to_string(),
                model: MODELS[m].to_string(),
                associate_userid,
                store_id,
                region,
                credited: acc.credited(),
                share_code_orders: acc.share_code_orders,
            },
        )
        .collect();
    c.by_push = by_push
        .into_iter()
        .map(
            |((month, app_id, m, msgid, article_id, campaign), acc)| PushCredit {
                month,
                app_id,
                currency: CURRENCY.to_string(),
                model: MODELS[m].to_string(),
                msgid,
                article_id,
                campaign,
                credited: acc.credited(),
            },
        )
        .collect();
    c.by_scene = by_scene
        .into_iter()
        .map(|((month, app_id, m, scene, qr_channel), acc)| SceneCredit {
            month,
            app_id,
            currency: CURRENCY.to_string(),
            model: MODELS[m].to_string(),
            scene,
            qr_channel,
            credited: acc.credited(),
        })
        .collect();
}
