//! The conversions' ground truth: the conversion views of migration 0007
//! (schemas/clickhouse/VIEWS.md, "Conversions"), computed from the plan (the touches as the generator decided them, the orders it
//! planned) and the world's records — never from the pipeline, and without its code.
//!
//! Touches carry what the services write after enrichment with the world's records: a chat
//! with an associate no record has has store and region `unknown`; a scan of a scene no
//! record has has channel, associate, store and region `unknown`; a read of an article no
//! record has has campaign `unknown` and the push id the client sent. Attribution uses the
//! orders service's default window (7 days, [`ATTRIBUTION_WINDOW_MS`]); the funnel's
//! activity is the fans' interactions of the four streams by calendar month (Asia/Shanghai,
//! event time), the tally [`super::truth`] counts monthly active fans with. Money is in fen:
//! integers, but credited amounts are weighted (linear credit is fractional).

use std::collections::{BTreeMap, BTreeSet, HashMap};

use wxpulse_runtime::enrich::MenuCategory;
use wxpulse_runtime::events::{ConversationKind, ReadSource};

use super::orders::{Kind, PlannedOrder, Produced};
use super::plan::{Planned, What};
pub use super::touch::TouchKind;
pub(crate) use super::touch::{FanKey, Touch};
use crate::world::{shanghai, World};

mod credit;
mod daily;
mod dims;
mod funnel;
mod rows;
mod shapes;

use dims::Dims;
pub use funnel::month_date;
pub use rows::{
    AssociateCredit, ConversionShapes, Conversions, Credited, FunnelRow, FunnelShape, OrdersDay,
    PushCredit, SceneCredit, TouchTotals, ACTIVE_OVER, ATTRIBUTION_WINDOW_MS, MODELS,
};

/// Whether a planned event is a qualifying touch, and which (`menu`: the category of the
/// clicked button as its record resolves it, for menu clicks).
pub(crate) fn touch_kind(
    world: &World,
    e: &Planned,
    menu: Option<MenuCategory>,
) -> Option<TouchKind> {
    match &e.what {
        What::Menu => (menu == Some(MenuCategory::Ecommerce)).then_some(TouchKind::MenuEcommerce),
        What::Read(r) => (r.source == ReadSource::Push || r.cta).then_some(TouchKind::Article),
        What::Chat(c) => (c.conversation == ConversationKind::WecomPrivate
            && c.associate.userid(world).is_some_and(|u| !u.is_empty()))
        .then_some(TouchKind::AssociateChat),
        What::Scan { .. } => Some(TouchKind::QrScan),
    }
}

/// Tallies the conversions from the planned events' touches and the planned orders.
pub(crate) fn tally(
    world: &World,
    planned: &[Planned],
    touches: &[Touch],
    orders: &[PlannedOrder],
    interactions: &HashMap<FanKey, BTreeMap<u32, u64>>,
    produced: Produced,
    events: u64,
) -> Conversions {
    let dims = Dims {
        world,
        regions: world
            .stores
            .iter()
            .map(|s| (s.store_id.as_str(), s.region.as_str()))
            .collect(),
    };
    let app = |a: u32| world.accounts[a as usize].record.app_id.as_str();
    let mut c = Conversions {
        records: produced.records,
        duplicates: produced.duplicates,
        dead_letters: produced.dead_letters,
        attribution_window_s: (ATTRIBUTION_WINDOW_MS / 1000) as u32,
        ..Conversions::default()
    };

    // The purchase of each order: its first PURCHASE record by (event time, event id).
    let mut first: BTreeMap<(u32, &str), &PlannedOrder> = BTreeMap::new();
    for o in orders.iter().filter(|o| o.kind == Kind::Purchase) {
        let e = first.entry((o.account, o.order_id.as_str())).or_insert(o);
        if (o.time, o.event_id.as_u128()) < (e.time, e.event_id.as_u128()) {
            *e = o;
        }
    }

    // Credits per purchase and model, and the credit rows in the views' groups.
    let (credits, touchless, stale) = credit::credits(&dims, planned, touches, &first);
    credit::credit_rows(&mut c, world, orders, &first, &credits);

    // Orders per day, store and channel.
    daily::orders_daily(&mut c, world, &dims, orders, &first);

    // The funnel: purchases, the buyers' profile associates and interactions.
    let basis = &mut c.basis;
    for p in first.values() {
        let fan = (p.account, p.fan);
        basis.purchases.push((
            shanghai(p.time).yyyymm(),
            app(p.account).to_string(),
            fan,
            p.store_id.clone().unwrap_or_default(),
            p.amount_fen,
        ));
        let associate = world
            .fan(p.account as usize, p.fan)
            .and_then(|f| f.associate)
            .map(|i| world.associates[i].userid.clone())
            .unwrap_or_default();
        basis.associates.insert(fan, associate);
        if let Some(n) = interactions.get(&fan) {
            basis.interactions.insert(fan, n.clone());
        }
    }
    let months: BTreeSet<u32> = basis.purchases.iter().map(|p| p.0).collect();
    c.funnel = months
        .iter()
        .flat_map(|&m| c.social_funnel(m, m, ACTIVE_OVER))
        .collect();

    // Headline figures.
    shapes::shapes(
        &mut c, world, planned, touches, orders, &first, events, touchless, stale,
    );
    c
}

// What the tests (`use super::*`) name here, from where it now lives.
#[cfg(test)]
use super::plan::{Article, Scene};
#[cfg(test)]
use crate::world::DAY_MS;

#[cfg(test)]
mod tests;
