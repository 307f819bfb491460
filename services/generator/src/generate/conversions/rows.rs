//! The conversions' ground truth as data: the views' rows, the whole [`Conversions`] and
//! the constants the views are defined by. A leaf, so the tally's parts all build on it.

use std::collections::{BTreeMap, HashMap};

use serde::Serialize;

use crate::generate::touch::FanKey;
use crate::world::DAY_MS;

/// How far back a purchase looks for touches: the orders service's default
/// `[attribution] window` (7 days), which the ground truth assumes.
pub const ATTRIBUTION_WINDOW_MS: i64 = 7 * DAY_MS;

/// The attribution models, as `v_order_credits.model` names them.
pub const MODELS: [&str; 3] = ["last_touch", "first_touch", "linear"];

/// The funnel's activity threshold: active = more than this many interactions.
pub const ACTIVE_OVER: u64 = 4;

/// The currency of every order the generator plans, as the rows carry it.
pub(super) const CURRENCY: &str = "CNY";

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
    pub(super) basis: FunnelBasis,
}

#[derive(Debug, Default, Clone, PartialEq)]
pub(super) struct FunnelBasis {
    /// Purchases (first row per order): (yyyymm, app_id, fan, store_id, amount_fen).
    pub(super) purchases: Vec<(u32, String, FanKey, String, i64)>,
    /// Buyers' current profile associate ('' when none or no profile).
    pub(super) associates: HashMap<FanKey, String>,
    /// Buyers' interactions per month.
    pub(super) interactions: HashMap<FanKey, BTreeMap<u32, u64>>,
}
