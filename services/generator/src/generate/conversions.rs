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

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use serde::Serialize;
use wxpulse_runtime::enrich::MenuCategory;
use wxpulse_runtime::events::{ConversationKind, ReadSource};

use super::orders::{self, Kind, PlannedOrder, Produced};
use super::plan::{Article, Planned, Scene, What};
pub use super::touch::TouchKind;
pub(crate) use super::touch::{FanKey, Touch};
use crate::world::{shanghai, World, DAY_MS};

/// How far back a purchase looks for touches: the orders service's default
/// `[attribution] window` (7 days), which the ground truth assumes.
pub const ATTRIBUTION_WINDOW_MS: i64 = 7 * DAY_MS;

/// The attribution models, as `v_order_credits.model` names them.
pub const MODELS: [&str; 3] = ["last_touch", "first_touch", "linear"];

/// The funnel's activity threshold: active = more than this many interactions.
pub const ACTIVE_OVER: u64 = 4;

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

/// Figures credited to one group of `v_order_credits` rows: "orders" = Σ weight of
/// purchase rows, buyers = distinct fans of purchase rows, gross = Σ amount of purchase
/// rows, refunded = −Σ amount of refund rows, net = gross − refunded. Sums of weights and
/// weighted amounts are fractional under the linear model.
#[derive(Debug, Default, Clone, PartialEq, Serialize)]
pub struct Credited {
    /// Σ weight of purchase rows.
    pub orders: f64,
    /// Σ weight of refund rows.
    pub refunds: f64,
    /// Distinct fans of purchase rows.
    pub buyers: u64,
    /// Σ weighted purchase amounts, fen.
    pub gross_fen: f64,
    /// −Σ weighted refund amounts, fen (positive).
    pub refunded_fen: f64,
    /// gross − refunded, fen.
    pub net_fen: f64,
}

/// A row of `v_attribution_by_associate` (rows whose associate_userid is not empty).
#[derive(Debug, Default, Clone, PartialEq, Serialize)]
pub struct AssociateCredit {
    /// First day of the month (`yyyy-mm-01`) of the rows' days.
    pub month: String,
    /// Account.
    pub app_id: String,
    /// Currency.
    pub currency: String,
    /// Attribution model.
    pub model: String,
    /// Associate credited (a share code's, a chat's, a scanned code's; `unknown` for a
    /// scene no record has).
    pub associate_userid: String,
    /// The associate's store as the touch carries it.
    pub store_id: String,
    /// Its region.
    pub region: String,
    /// The figures.
    #[serde(flatten)]
    pub credited: Credited,
    /// Σ weight of purchase rows credited through a share code.
    pub share_code_orders: f64,
}

impl AssociateCredit {
    /// The view's grouping columns, in its order: what a comparison joins on.
    pub fn key(&self) -> Vec<String> {
        vec![
            self.month.clone(),
            self.app_id.clone(),
            self.currency.clone(),
            self.model.clone(),
            self.associate_userid.clone(),
            self.store_id.clone(),
            self.region.clone(),
        ]
    }
}

impl PushCredit {
    /// The view's grouping columns, in its order: what a comparison joins on.
    pub fn key(&self) -> Vec<String> {
        vec![
            self.month.clone(),
            self.app_id.clone(),
            self.currency.clone(),
            self.model.clone(),
            self.msgid.to_string(),
            self.article_id.clone(),
            self.campaign.clone(),
        ]
    }
}

impl SceneCredit {
    /// The view's grouping columns, in its order: what a comparison joins on.
    pub fn key(&self) -> Vec<String> {
        vec![
            self.month.clone(),
            self.app_id.clone(),
            self.currency.clone(),
            self.model.clone(),
            self.scene.clone(),
            self.qr_channel.clone(),
        ]
    }
}

/// A row of `v_attribution_by_push` (touch `article`).
#[derive(Debug, Default, Clone, PartialEq, Serialize)]
pub struct PushCredit {
    /// First day of the month.
    pub month: String,
    /// Account.
    pub app_id: String,
    /// Currency.
    pub currency: String,
    /// Attribution model.
    pub model: String,
    /// Push id (the record's, else what the read carried).
    pub msgid: i64,
    /// Article read.
    pub article_id: String,
    /// The push's campaign ('' none, `unknown` for an article no record has).
    pub campaign: String,
    /// The figures.
    #[serde(flatten)]
    pub credited: Credited,
}

/// A row of `v_attribution_by_scene` (touch `qr_scan`).
#[derive(Debug, Default, Clone, PartialEq, Serialize)]
pub struct SceneCredit {
    /// First day of the month.
    pub month: String,
    /// Account.
    pub app_id: String,
    /// Currency.
    pub currency: String,
    /// Attribution model.
    pub model: String,
    /// Scene scanned.
    pub scene: String,
    /// Its channel (`unknown` for a scene no record has).
    pub qr_channel: String,
    /// The figures.
    #[serde(flatten)]
    pub credited: Credited,
}

/// Totals of one model and touch over the whole span (`v_attribution_daily` summed;
/// buyers distinct over the span).
#[derive(Debug, Default, Clone, PartialEq, Serialize)]
pub struct TouchTotals {
    /// Attribution model.
    pub model: String,
    /// `associate_chat`, `article`, `qr_scan`, `menu_ecommerce`, `share_code`, `none`,
    /// `unmatched_refund`.
    pub touch: String,
    /// The figures.
    #[serde(flatten)]
    pub credited: Credited,
}

/// A row of `v_orders_daily` (no attribution).
#[derive(Debug, Default, Clone, PartialEq, Serialize)]
pub struct OrdersDay {
    /// Day (`yyyy-mm-dd`, Asia/Shanghai) of the record's event time.
    pub day: String,
    /// Account.
    pub app_id: String,
    /// Brand (dim account).
    pub brand: String,
    /// Store ('' none).
    pub store_id: String,
    /// Its region ('' no store, `unknown` for a store no record has).
    pub region: String,
    /// `mini_program` or `store_pos`.
    pub channel: String,
    /// Currency.
    pub currency: String,
    /// Purchases (the first purchase row of each order).
    pub purchases: u64,
    /// Refund rows.
    pub refunds: u64,
    /// Distinct fans with a purchase.
    pub buyers: u64,
    /// Line items of the purchases.
    pub items: u64,
    /// Σ purchase amounts, fen.
    pub gross_fen: i64,
    /// Σ refund amounts, fen.
    pub refunded_fen: i64,
    /// gross − refunded.
    pub net_fen: i64,
    /// gross / purchases; `None` without purchases.
    pub basket_fen: Option<f64>,
}

/// A row of the social-selling funnel (`v_social_funnel_monthly`, `social_funnel(...)`).
#[derive(Debug, Default, Clone, PartialEq, Serialize)]
pub struct FunnelRow {
    /// First day of the period's first month.
    pub month: String,
    /// Account.
    pub app_id: String,
    /// Store of the orders ('' orders without a store).
    pub store_id: String,
    /// `store` or `associate`.
    pub level: String,
    /// The associate of an associate row ('' on a store row).
    pub associate_userid: String,
    /// Distinct fans with a purchase at the store in the period.
    pub buyers: u64,
    /// Of them, bound to an associate (associate rows: to this associate).
    pub added: u64,
    /// Of those, with more than `active_over` interactions in the period.
    pub active: u64,
    /// Of those, with 2 or more purchases at the store in the period.
    pub repurchasing: u64,
    /// added / buyers.
    pub add_rate: Option<f64>,
    /// active / added.
    pub active_rate: Option<f64>,
    /// repurchasing / active.
    pub repurchase_rate: Option<f64>,
    /// Purchases at the store in the period: of all buyers (store row), of the row's added
    /// fans (associate row).
    pub purchases: u64,
    /// Their amounts, fen (refunds ignored).
    pub spent_fen: i64,
    /// Purchases of repurchasing fans / repurchasing.
    pub repurchase_frequency: Option<f64>,
    /// spent / purchases.
    pub basket_fen: Option<f64>,
}

/// Pooled funnel of one business model's store rows in the shapes' month.
#[derive(Debug, Default, Clone, PartialEq, Serialize)]
pub struct FunnelShape {
    /// Store rows pooled (stores with buyers, the mall without a store, pop-ups).
    pub stores: u64,
    /// Buyers over them.
    pub buyers: u64,
    /// Σ added / Σ buyers.
    pub add_rate: f64,
    /// Σ active / Σ added.
    pub active_rate: f64,
    /// Σ repurchasing / Σ active.
    pub repurchase_rate: f64,
    /// Purchases of repurchasing fans / repurchasing.
    pub repurchase_frequency: f64,
    /// Σ spent / Σ purchases, yuan.
    pub basket_yuan: f64,
}

/// Headline figures of the orders, to compare with the seed at a glance.
#[derive(Debug, Default, Clone, PartialEq, Serialize)]
pub struct ConversionShapes {
    /// The month with most purchases (`yyyymm`): the funnel figures' month.
    pub month: u32,
    /// Purchases / valid interactions.
    pub purchases_per_event: f64,
    /// Purchases with at least one refund / purchases.
    pub refunded_share: f64,
    /// Of the refunded purchases, those refunded less than their amount.
    pub partly_refunded: f64,
    /// Of the refunded purchases, those with several refunds.
    pub several_refunds: f64,
    /// Purchases with a share code / purchases.
    pub share_code_share: f64,
    /// Purchases by last-touch credit: share per touch.
    pub last_touch: BTreeMap<String, f64>,
    /// Purchases credited to no touch (no share code) whose fan had no touch before them.
    pub touchless_purchases: u64,
    /// Purchases credited to no touch whose fan had touches, all older than the window.
    pub stale_touch_purchases: u64,
    /// Conversion after associate chats over conversion after other touches: the share of
    /// chat touches followed by a purchase of the fan within the window, over that share
    /// of the other touches.
    pub chat_lift: f64,
    /// Per business model (`luxury`, `clothing`): the funnel pooled over store rows.
    pub funnel: BTreeMap<String, FunnelShape>,
}

/// The conversions' ground truth: what `wxpulse.orders` got and what every view of
/// migration 0007 must show. Rows are sorted by their key columns.
#[derive(Debug, Default, Clone, PartialEq, Serialize)]
pub struct Conversions {
    /// Valid purchase records (each once).
    pub purchases: u64,
    /// Valid refund records.
    pub refunds: u64,
    /// Of them, refunds of orders with no purchase (placed before the span).
    pub unmatched_refunds: u64,
    /// Records produced to `wxpulse.orders` in all (valid, copies, malformed).
    pub records: u64,
    /// Retry copies (same event id) among them.
    pub duplicates: u64,
    /// Malformed orders per dead-letter reason (`invalid_field`, `missing_field`).
    pub dead_letters: BTreeMap<String, u64>,
    /// The attribution window assumed, s.
    pub attribution_window_s: u32,
    /// `v_attribution_daily` per model and touch, over the span.
    pub by_touch: Vec<TouchTotals>,
    /// `v_attribution_by_associate`.
    pub by_associate: Vec<AssociateCredit>,
    /// `v_attribution_by_push`.
    pub by_push: Vec<PushCredit>,
    /// `v_attribution_by_scene`.
    pub by_scene: Vec<SceneCredit>,
    /// `v_orders_daily`.
    pub orders_daily: Vec<OrdersDay>,
    /// `v_social_funnel_monthly` (active over [`ACTIVE_OVER`]).
    pub funnel: Vec<FunnelRow>,
    /// Headline figures.
    pub shapes: ConversionShapes,
    /// What [`Conversions::social_funnel`] needs for any period and threshold.
    #[serde(skip)]
    basis: FunnelBasis,
}

#[derive(Debug, Default, Clone, PartialEq)]
struct FunnelBasis {
    /// Purchases (first row per order): (yyyymm, app_id, fan, store_id, amount_fen).
    purchases: Vec<(u32, String, FanKey, String, i64)>,
    /// Buyers' current profile associate ('' when none or no profile).
    associates: HashMap<FanKey, String>,
    /// Buyers' interactions per month.
    interactions: HashMap<FanKey, BTreeMap<u32, u64>>,
}

/// `yyyy-mm-01` of `yyyymm`.
pub fn month_date(yyyymm: u32) -> String {
    format!("{}-{:02}-01", yyyymm / 100, yyyymm % 100)
}

/// Per fan: purchases and their amounts.
type Spending = BTreeMap<FanKey, (u64, i64)>;

fn ratio(n: f64, d: f64) -> Option<f64> {
    (d > 0.0).then(|| n / d)
}

impl Conversions {
    /// The funnel over calendar months `from..=to` (`yyyymm`) with activity threshold
    /// `active_over`: the rows of `social_funnel(from_month, to_month, active_over)`
    /// (`month` is `from`'s first day).
    pub fn social_funnel(&self, from: u32, to: u32, active_over: u64) -> Vec<FunnelRow> {
        let b = &self.basis;
        // (app_id, store) → fan → (purchases, spent).
        let mut stores: BTreeMap<(&str, &str), Spending> = BTreeMap::new();
        for (m, app, fan, store, amount) in &b.purchases {
            if (from..=to).contains(m) {
                let e = stores
                    .entry((app.as_str(), store.as_str()))
                    .or_default()
                    .entry(*fan)
                    .or_default();
                e.0 += 1;
                e.1 += amount;
            }
        }
        let mut out = Vec::new();
        for ((app, store), fans) in stores {
            let mut rows: BTreeMap<&str, FunnelRow> = BTreeMap::new();
            for (fan, &(n, spent)) in &fans {
                let associate = b.associates.get(fan).map_or("", String::as_str);
                let interactions: u64 = b
                    .interactions
                    .get(fan)
                    .map_or(0, |c| c.range(from..=to).map(|(_, n)| n).sum());
                let added = !associate.is_empty();
                let active = added && interactions > active_over;
                let repurchasing = active && n >= 2;
                let count = |row: &mut FunnelRow, all: bool| {
                    row.added += u64::from(added);
                    row.active += u64::from(active);
                    row.repurchasing += u64::from(repurchasing);
                    if all || added {
                        row.purchases += n;
                        row.spent_fen += spent;
                    }
                    if repurchasing {
                        // Repurchases, summed here; divided below.
                        row.repurchase_frequency =
                            Some(row.repurchase_frequency.unwrap_or(0.0) + n as f64);
                    }
                };
                count(rows.entry("").or_default(), true);
                if added {
                    count(rows.entry(associate).or_default(), false);
                }
            }
            let buyers = fans.len() as u64;
            for (associate, mut row) in rows {
                row.month = month_date(from);
                row.app_id = app.to_string();
                row.store_id = store.to_string();
                row.level = if associate.is_empty() {
                    "store"
                } else {
                    "associate"
                }
                .into();
                row.associate_userid = associate.to_string();
                row.buyers = buyers;
                row.add_rate = ratio(row.added as f64, buyers as f64);
                row.active_rate = ratio(row.active as f64, row.added as f64);
                row.repurchase_rate = ratio(row.repurchasing as f64, row.active as f64);
                row.repurchase_frequency = row
                    .repurchase_frequency
                    .and_then(|n| ratio(n, row.repurchasing as f64));
                row.basket_fen = ratio(row.spent_fen as f64, row.purchases as f64);
                out.push(row);
            }
        }
        out
    }
}

/// What a touch carries after enrichment (empty for what its kind does not have).
#[derive(Debug, Default, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
struct Attrs {
    associate_userid: String,
    store_id: String,
    region: String,
    msgid: i64,
    article_id: String,
    campaign: String,
    scene: String,
    qr_channel: String,
}

/// The world's records as the services' dimensions hold them.
struct Dims<'w> {
    world: &'w World,
    regions: HashMap<&'w str, &'w str>,
}

impl Dims<'_> {
    /// Region of a store: the record's, `unknown` without one.
    fn region(&self, store_id: &str) -> String {
        self.regions
            .get(store_id)
            .map_or(orders_unknown(), |r| r.to_string())
    }

    /// Store and region of an associate: `unknown` both when no record has the userid.
    fn associate_place(&self, userid: &str) -> (String, String) {
        match self.world.associate_index(userid) {
            Some(i) => {
                let store = &self.world.associates[i].store_id;
                (store.clone(), self.region(store))
            }
            None => (orders_unknown(), orders_unknown()),
        }
    }

    /// What the services write for a touch.
    fn attributes(&self, e: &Planned) -> Attrs {
        let world = self.world;
        match &e.what {
            What::Menu => Attrs::default(),
            What::Chat(c) => {
                let userid = c.associate.userid(world).unwrap_or_default().to_string();
                let (store_id, region) = self.associate_place(&userid);
                Attrs {
                    associate_userid: userid,
                    store_id,
                    region,
                    ..Attrs::default()
                }
            }
            What::Read(r) => match &r.article {
                Article::Known(i) => {
                    let a = &world.articles[*i];
                    Attrs {
                        msgid: a.msgid,
                        article_id: a.article_id.clone(),
                        campaign: a.campaign.clone().unwrap_or_default(),
                        ..Attrs::default()
                    }
                }
                Article::Unknown { id, msgid, .. } => Attrs {
                    msgid: *msgid,
                    article_id: id.clone(),
                    campaign: orders_unknown(),
                    ..Attrs::default()
                },
            },
            What::Scan { scene, .. } => match scene {
                Scene::Known(i) => {
                    let s = &world.scenes[*i];
                    let userid = s.userid.clone().unwrap_or_default();
                    // The code's store, else its associate's (the qr-scans service's rule).
                    let store = match (&s.store_id, &s.userid) {
                        (Some(store), _) => Some(store.clone()),
                        (None, Some(u)) => world
                            .associate_index(u)
                            .map(|i| world.associates[i].store_id.clone()),
                        (None, None) => None,
                    };
                    let region = store.as_deref().map_or(String::new(), |s| self.region(s));
                    Attrs {
                        associate_userid: userid,
                        store_id: store.unwrap_or_default(),
                        region,
                        scene: s.scene.clone(),
                        qr_channel: s.channel.as_str().to_string(),
                        ..Attrs::default()
                    }
                }
                Scene::Unknown(s) => Attrs {
                    associate_userid: orders_unknown(),
                    store_id: orders_unknown(),
                    region: orders_unknown(),
                    scene: s.clone(),
                    qr_channel: orders_unknown(),
                    ..Attrs::default()
                },
            },
        }
    }
}

fn orders_unknown() -> String {
    super::UNKNOWN.to_string()
}

/// One credit of an order: the touch it goes to, with what the touch carries.
#[derive(Clone)]
struct Credit {
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

    // The purchase of each order: its first PURCHASE record by (event time, event id).
    let mut first: BTreeMap<(u32, &str), &PlannedOrder> = BTreeMap::new();
    for o in orders.iter().filter(|o| o.kind == Kind::Purchase) {
        let e = first.entry((o.account, o.order_id.as_str())).or_insert(o);
        if (o.time, o.event_id.as_u128()) < (e.time, e.event_id.as_u128()) {
            *e = o;
        }
    }
    // Credits per purchase and model.
    let mut credits: HashMap<(u32, &str), [Vec<Credit>; 3]> = HashMap::new();
    let (mut touchless, mut stale) = (0u64, 0u64);
    for (&key, p) in &first {
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
    for (key, p) in &first {
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
    const CURRENCY: &str = "CNY";
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

    // Orders per day, store and channel.
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
    c
}

#[cfg(test)]
mod tests;
