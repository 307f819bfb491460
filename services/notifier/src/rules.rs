//! Which fan behaviours are worth an associate's attention, and whose associate it is.
//! Each function looks at one event and the fan's profile and answers with a
//! [`Candidate`], or why not; limits and quiet hours come after ([`crate::limits`]).

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use wxpulse_runtime::config::{NotifierConfig, RuleConfig};
use wxpulse_runtime::enrich::{CustomerStatus, Dimensions, FanProfile};
use wxpulse_runtime::events::{ArticleRead, Order, OrderKind, QrScan, ReadSource};
use wxpulse_runtime::pii::FanId;

/// A notification rule; the Avro enum `NotificationRule` and the `rule` column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Rule {
    /// A customer or VIP scans the associate's or their store's QR code.
    InStoreScan,
    /// A customer or VIP reads a push article deeply or clicks its call to action.
    HighIntentRead,
    /// A fan's message waits for a reply longer than the target.
    UnansweredMessage,
    /// A purchase by one of the associate's fans.
    Purchase,
    /// A refund by one of the associate's fans.
    Refund,
    /// The fan's relationship changed in the CRM's profile.
    TierChange,
    /// The fan's birthday is near.
    Birthday,
    /// The fan's usual time between purchases has passed.
    Replenishment,
    /// A rule this build does not emit (read back from the topic).
    #[serde(other)]
    Other,
}

impl Rule {
    /// The rules this build emits.
    pub const ALL: [Rule; 8] = [
        Rule::InStoreScan,
        Rule::HighIntentRead,
        Rule::UnansweredMessage,
        Rule::Purchase,
        Rule::Refund,
        Rule::TierChange,
        Rule::Birthday,
        Rule::Replenishment,
    ];

    /// The stored name (`rule` column, metric label, config section).
    pub const fn as_str(self) -> &'static str {
        match self {
            Rule::InStoreScan => "in_store_scan",
            Rule::HighIntentRead => "high_intent_read",
            Rule::UnansweredMessage => "unanswered_message",
            Rule::Purchase => "purchase",
            Rule::Refund => "refund",
            Rule::TierChange => "tier_change",
            Rule::Birthday => "birthday",
            Rule::Replenishment => "replenishment",
            Rule::Other => "other",
        }
    }

    /// The rule's settings; `None` for [`Rule::Other`].
    pub fn config(self, cfg: &NotifierConfig) -> Option<&RuleConfig> {
        let r = &cfg.rules;
        match self {
            Rule::InStoreScan => Some(&r.in_store_scan),
            Rule::HighIntentRead => Some(&r.high_intent_read),
            Rule::UnansweredMessage => Some(&r.unanswered_message),
            Rule::Purchase => Some(&r.purchase),
            Rule::Refund => Some(&r.refund),
            Rule::TierChange => Some(&r.tier_change),
            Rule::Birthday => Some(&r.birthday),
            Rule::Replenishment => Some(&r.replenishment),
            Rule::Other => None,
        }
    }
}

/// What a rule wants to tell, before limits and quiet hours.
#[derive(Debug, Clone, PartialEq)]
pub struct Candidate {
    /// The rule.
    pub rule: Rule,
    /// Associate to tell.
    pub associate: Arc<str>,
    /// The fan.
    pub fan_id: FanId,
    /// The fan's relationship.
    pub relationship: CustomerStatus,
    /// When the fan did it (device time), ms.
    pub event_time: i64,
    /// Receive time (for a wait: receive time plus the reply target), ms; limits count in
    /// this time, so a replay decides as the first pass did.
    pub server_time: i64,
    /// Order amount (purchase, refund).
    pub amount_fen: i64,
    /// Article (high-intent read).
    pub article_id: String,
    /// QR scene (in-store scan).
    pub scene: String,
    /// What the reason text needs besides (tier change: the previous relationship;
    /// birthday: "MM-DD"; replenishment: "<usual days>|<days since the last purchase>").
    pub detail: String,
}

/// Why an event tells nobody, for the outcome metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Skip {
    /// Not the behaviour the rule looks for, or the rule is off.
    NotInteresting,
    /// The fan's relationship is not one the rule is for.
    Relationship,
    /// The behaviour matters but no (active) associate is the fan's.
    NoAssociate,
}

fn relationship_ok(rule: &RuleConfig, status: CustomerStatus) -> bool {
    rule.relationships.is_empty() || rule.relationships.iter().any(|r| r == status.as_str())
}

/// The associate if the dimension does not say they left.
fn active(dims: &Dimensions, userid: &Arc<str>) -> Option<Arc<str>> {
    match dims.associate(userid) {
        Some(a) if !a.active => None,
        _ => Some(userid.clone()),
    }
}

/// A candidate with only the fields every rule has; rules add their own.
pub(crate) fn base(
    rule: Rule,
    associate: Arc<str>,
    fan_id: FanId,
    status: CustomerStatus,
    event_time: i64,
    server_time: i64,
) -> Candidate {
    Candidate {
        rule,
        associate,
        fan_id,
        relationship: status,
        event_time,
        server_time,
        amount_fen: 0,
        article_id: String::new(),
        scene: String::new(),
        detail: String::new(),
    }
}

fn status_of(fan: Option<&FanProfile>) -> CustomerStatus {
    fan.map_or(CustomerStatus::Other, |f| f.status)
}

/// A customer or VIP scans a code of an associate, or of the store of their own
/// associate: they are in the store now. A store's counter code tells the fan's own
/// associate only if that associate works in that store.
pub fn in_store_scan(
    cfg: &NotifierConfig,
    scan: &QrScan<'_>,
    fan_id: FanId,
    fan: Option<&FanProfile>,
    dims: &Dimensions,
) -> Result<Candidate, Skip> {
    let rule = &cfg.rules.in_store_scan;
    let scene_key = wxpulse_qr_scans::scene_of(scan.event_key);
    let scene = dims
        .scene(scan.app_id, scene_key.scene)
        .ok_or(Skip::NotInteresting)?;
    if !rule.enabled || (scene.userid.is_none() && scene.store_id.is_none()) {
        return Err(Skip::NotInteresting);
    }
    let status = status_of(fan);
    if !relationship_ok(rule, status) {
        return Err(Skip::Relationship);
    }
    let own = fan.and_then(|f| f.associate.clone());
    let associate = match (&scene.userid, &scene.store_id) {
        (Some(userid), _) => Some(userid.clone()),
        (None, Some(store)) => own.filter(|a| {
            dims.associate(a)
                .is_some_and(|a| a.store_id.as_ref() == store.as_ref())
        }),
        (None, None) => None,
    };
    let associate = associate
        .and_then(|a| active(dims, &a))
        .ok_or(Skip::NoAssociate)?;
    let mut c = base(
        Rule::InStoreScan,
        associate,
        fan_id,
        status,
        scan.client_time,
        scan.server_time,
    );
    c.scene = scene_key.scene.to_string();
    Ok(c)
}

/// A customer or VIP reads an article of a push to at least `high_intent_depth` screens,
/// or clicks an article's call to action: tells their own associate.
pub fn high_intent_read(
    cfg: &NotifierConfig,
    read: &ArticleRead<'_>,
    fan_id: FanId,
    fan: Option<&FanProfile>,
    dims: &Dimensions,
) -> Result<Candidate, Skip> {
    let rule = &cfg.rules.high_intent_read;
    let deep = read.source == ReadSource::Push && read.read_depth >= cfg.high_intent_depth;
    if !rule.enabled || !(deep || read.cta_clicked) {
        return Err(Skip::NotInteresting);
    }
    let status = status_of(fan);
    if !relationship_ok(rule, status) {
        return Err(Skip::Relationship);
    }
    let associate = fan
        .and_then(|f| f.associate.as_ref())
        .and_then(|a| active(dims, a))
        .ok_or(Skip::NoAssociate)?;
    let mut c = base(
        Rule::HighIntentRead,
        associate,
        fan_id,
        status,
        read.client_time,
        read.server_time,
    );
    c.article_id = read.article_id.to_string();
    Ok(c)
}

/// A purchase or refund: tells the associate whose share code the order carries, else
/// the fan's own associate.
pub fn order(
    cfg: &NotifierConfig,
    order: &Order<'_>,
    fan_id: FanId,
    fan: Option<&FanProfile>,
    dims: &Dimensions,
) -> Result<Candidate, Skip> {
    let (rule_id, rule) = match order.kind {
        OrderKind::Purchase => (Rule::Purchase, &cfg.rules.purchase),
        OrderKind::Refund => (Rule::Refund, &cfg.rules.refund),
        OrderKind::Other => return Err(Skip::NotInteresting),
    };
    if !rule.enabled || order.amount_fen <= 0 {
        return Err(Skip::NotInteresting);
    }
    let status = status_of(fan);
    if !relationship_ok(rule, status) {
        return Err(Skip::Relationship);
    }
    let shared = order
        .share_code
        .filter(|s| !s.is_empty())
        .map(Arc::<str>::from);
    let associate = shared
        .or_else(|| fan.and_then(|f| f.associate.clone()))
        .and_then(|a| active(dims, &a))
        .ok_or(Skip::NoAssociate)?;
    let mut c = base(
        rule_id,
        associate,
        fan_id,
        status,
        order.order_time,
        order.server_time,
    );
    c.amount_fen = order.amount_fen;
    Ok(c)
}

/// Whether a rule fires for this relationship (the unanswered-message rule asks when the
/// wait expires).
pub fn fires_for(rule: &RuleConfig, status: CustomerStatus) -> bool {
    rule.enabled && relationship_ok(rule, status)
}
