//! Enrichment: the dimensions every event is joined with, held in memory and kept current
//! from compacted Kafka topics (`follow`).
//!
//! The pipeline task owns the [`Dimensions`] and applies updates between records, so the
//! hot path looks them up without locks. Values written to rows are `Arc<str>`: a row
//! clones a reference count, not a string. A key that is present on the event but absent
//! from its dimension yields `None`, counts in `wxpulse_enrich_dimension_missing_total`,
//! and the row gets [`UNKNOWN`]; once the record arrives, later events pick it up.

pub mod birthday;
pub mod follow;
pub mod records;
pub mod reported;
pub mod snapshot;

use std::num::NonZeroI64;
use std::sync::Arc;

use prometheus::IntCounter;

use crate::fan_table::FanTable;
use crate::pii::{FanId, Pseudonymizer};
pub use birthday::{Birthday, NotABirthday};
pub use records::*;
pub use reported::{
    split_contact_key, split_follow_key, AssociateContactRecord, ContactChange, FanFollowRecord,
    FollowKind,
};

/// What a row says for a dimension value it could not find.
pub const UNKNOWN: &str = "unknown";

type Map<K, V> = hashbrown::HashMap<K, V>;

/// An Official Account.
#[derive(Debug, Clone)]
pub struct Account {
    /// Brand that owns it.
    pub brand: Arc<str>,
}

/// A store.
#[derive(Debug, Clone)]
pub struct Store {
    /// City.
    pub city: Arc<str>,
    /// Sales region.
    pub region: Arc<str>,
}

/// A WeCom sales associate.
#[derive(Debug, Clone)]
pub struct Associate {
    /// The userid itself, shared so rows of known associates do not copy it.
    pub userid: Arc<str>,
    /// Store the associate works in.
    pub store_id: Arc<str>,
    /// False once the associate left.
    pub active: bool,
}

/// A QR scene.
#[derive(Debug, Clone)]
pub struct Scene {
    /// The scene itself, shared so rows of known scenes do not copy it.
    pub scene: Arc<str>,
    /// The EventKey of a scan that makes the fan follow, `qrscene_<scene>`, shared likewise.
    pub subscribe_key: Arc<str>,
    /// What the code is printed on.
    pub channel: SceneChannel,
    /// Store of the code.
    pub store_id: Option<Arc<str>>,
    /// Associate of the code.
    pub userid: Option<Arc<str>>,
    /// Campaign.
    pub campaign: Option<Arc<str>>,
}

/// An article of a push.
#[derive(Debug, Clone)]
pub struct Article {
    /// The article id itself, shared so rows of known articles do not copy it.
    pub article_id: Arc<str>,
    /// Push id.
    pub msgid: i64,
    /// Position in the push, 1 = first.
    pub idx: i32,
    /// Articles in the push.
    pub articles_in_push: i32,
    /// When the push went out, ms.
    pub published_at: i64,
    /// Campaign.
    pub campaign: Option<Arc<str>>,
    /// Segment the push targeted; `None` = everyone.
    pub target_segment: Option<Arc<str>>,
    /// Followers the push reached.
    pub fans_reached: i64,
}

/// A custom-menu button.
#[derive(Debug, Clone)]
pub struct Button {
    /// The key/URL/page itself, shared so rows of known buttons do not copy it.
    pub event_key: Arc<str>,
    /// Category.
    pub category: MenuCategory,
    /// Label.
    pub label: Arc<str>,
}

/// A fan's CRM binding, and when the fan last followed and unfollowed by whichever source
/// knows later: the CRM's profile or WeChat's own callbacks through the gateway. As small as
/// the CRM binding alone (56 bytes): a service holds one per fan of the brand.
#[derive(Debug, Clone, Default)]
pub struct FanProfile {
    /// Relationship segment.
    pub status: CustomerStatus,
    /// Bound associate.
    pub associate: Option<Arc<str>>,
    /// What the CRM's profile says.
    crm: FollowTimes,
    /// The latest follow and unfollow WeChat reported through the gateway.
    reported: FollowTimes,
    /// Whether the CRM published a profile (else only callbacks told of the fan).
    profiled: bool,
}

/// A fan's follow and unfollow times as one source tells them (ms; 0 reads as unknown).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct FollowTimes {
    followed: Option<NonZeroI64>,
    unfollowed: Option<NonZeroI64>,
}

impl FollowTimes {
    fn new(followed: Option<i64>, unfollowed: Option<i64>) -> Self {
        FollowTimes {
            followed: followed.and_then(NonZeroI64::new),
            unfollowed: unfollowed.and_then(NonZeroI64::new),
        }
    }

    fn is_empty(self) -> bool {
        self.followed.is_none() && self.unfollowed.is_none()
    }
}

impl FanProfile {
    /// A CRM profile (what a `dim_fan_profile` record or the mirror's snapshot says).
    pub fn from_crm(
        status: CustomerStatus,
        associate: Option<Arc<str>>,
        followed_at: Option<i64>,
        unfollowed_at: Option<i64>,
    ) -> Self {
        FanProfile {
            status,
            associate,
            crm: FollowTimes::new(followed_at, unfollowed_at),
            reported: FollowTimes::default(),
            profiled: true,
        }
    }

    /// Latest follow, ms: the later of the CRM's and the reported one. Follows and
    /// unfollows only move forward, so merging the sources in any order gives the same.
    pub fn followed_at(&self) -> Option<i64> {
        self.crm
            .followed
            .max(self.reported.followed)
            .map(NonZeroI64::get)
    }

    /// Latest unfollow, ms: the later of the CRM's and the reported one.
    pub fn unfollowed_at(&self) -> Option<i64> {
        self.crm
            .unfollowed
            .max(self.reported.unfollowed)
            .map(NonZeroI64::get)
    }

    /// Whether the CRM published this fan (else only callbacks told of them).
    pub fn is_profiled(&self) -> bool {
        self.profiled
    }
}

/// Every dimension a service joins with, keyed for lookup by what events carry.
pub struct Dimensions {
    pii: Pseudonymizer,
    accounts: Map<Box<str>, Account>,
    stores: Map<Box<str>, Store>,
    associates: Map<Box<str>, Associate>,
    /// app_id ("" for a code of every account) → scene → scene.
    scenes: Map<Box<str>, Map<Box<str>, Scene>>,
    articles: Map<Box<str>, Article>,
    /// app_id → button key → button.
    buttons: Map<Box<str>, Map<Box<str>, Button>>,
    fans: FanTable<FanProfile>,
    /// Fans with a CRM profile, and fans with reported follow times (kept as they change:
    /// counting 400k fans per dimension update would cost a millisecond each time).
    profiled: usize,
    reported: usize,
    /// Shares one allocation per distinct low-cardinality value (regions, campaigns, …).
    strings: Map<Box<str>, Arc<str>>,
    unknown: Arc<str>,
    empty: Arc<str>,
    missing: [IntCounter; Dimension::COUNT],
}

impl Dimensions {
    /// Empty tables. `missing` are the per-dimension counters of failed lookups, in
    /// [`Dimension::ALL`] order; `pii` pseudonymises fan-profile openids like events'.
    pub fn new(pii: Pseudonymizer, missing: [IntCounter; Dimension::COUNT]) -> Self {
        Dimensions {
            pii,
            accounts: Map::new(),
            stores: Map::new(),
            associates: Map::new(),
            scenes: Map::new(),
            articles: Map::new(),
            buttons: Map::new(),
            fans: FanTable::default(),
            profiled: 0,
            reported: 0,
            strings: Map::new(),
            unknown: Arc::from(UNKNOWN),
            empty: Arc::from(""),
            missing,
        }
    }

    /// Tables with counters nobody reads: tests and benchmarks.
    pub fn detached(pii: Pseudonymizer) -> Self {
        let counter = || IntCounter::new("unused", "unused").expect("valid counter name");
        Dimensions::new(pii, std::array::from_fn(|_| counter()))
    }

    /// Detached tables holding `records` (each applied under its own key): a stream's
    /// tests of `Stream::row`.
    #[doc(hidden)]
    pub fn detached_with(records: impl IntoIterator<Item = DimensionRecord>) -> Self {
        let mut dims = Dimensions::detached(Pseudonymizer::new(b"tests"));
        for record in records {
            let dimension = record.dimension();
            dims.apply(dimension, &record.key(), Some(record));
        }
        dims
    }

    /// The shared [`UNKNOWN`] marker.
    pub fn unknown(&self) -> Arc<str> {
        self.unknown.clone()
    }

    /// A shared empty string: "this event has none" (as opposed to [`UNKNOWN`]).
    pub fn empty(&self) -> Arc<str> {
        self.empty.clone()
    }

    /// Records in a dimension's table.
    pub fn len(&self, dimension: Dimension) -> usize {
        match dimension {
            Dimension::Account => self.accounts.len(),
            Dimension::Store => self.stores.len(),
            Dimension::Associate => self.associates.len(),
            Dimension::QrScene => self.scenes.values().map(Map::len).sum(),
            Dimension::Article => self.articles.len(),
            Dimension::MenuButton => self.buttons.values().map(Map::len).sum(),
            Dimension::FanProfile => self.profiled,
            Dimension::FanFollow => self.reported,
            // Not held: no event looks an associate's contacts up.
            Dimension::AssociateContact => 0,
        }
    }

    /// Applies the latest record of a key, or deletes it (`None`: a tombstone). Later
    /// records of a key replace earlier ones, so a topic that was never compacted still
    /// ends with the latest value per key.
    pub fn apply(&mut self, dimension: Dimension, key: &str, record: Option<DimensionRecord>) {
        let Some(record) = record else {
            self.delete(dimension, key);
            return;
        };
        match record {
            DimensionRecord::Account(r) => {
                let brand = self.intern(&r.brand);
                self.accounts.insert(r.app_id.into(), Account { brand });
            }
            DimensionRecord::Store(r) => {
                let store = Store {
                    city: self.intern(&r.city),
                    region: self.intern(&r.region),
                };
                self.stores.insert(r.store_id.into(), store);
            }
            DimensionRecord::Associate(r) => {
                let associate = Associate {
                    userid: Arc::from(r.userid.as_str()),
                    store_id: self.intern(&r.store_id),
                    active: r.active,
                };
                self.associates.insert(r.userid.into(), associate);
            }
            DimensionRecord::QrScene(r) => {
                let scene = Scene {
                    scene: Arc::from(r.scene.as_str()),
                    subscribe_key: Arc::from(format!("qrscene_{}", r.scene)),
                    channel: r.channel,
                    store_id: r.store_id.as_deref().map(|s| self.intern(s)),
                    userid: r.userid.as_deref().map(|s| self.intern(s)),
                    campaign: r.campaign.as_deref().map(|s| self.intern(s)),
                };
                self.scenes
                    .entry(r.app_id.into())
                    .or_default()
                    .insert(r.scene.into(), scene);
            }
            DimensionRecord::Article(r) => {
                let article = Article {
                    article_id: Arc::from(r.article_id.as_str()),
                    msgid: r.msgid,
                    idx: r.idx,
                    articles_in_push: r.articles_in_push,
                    published_at: r.published_at,
                    campaign: r.campaign.as_deref().map(|s| self.intern(s)),
                    target_segment: r.target_segment.as_deref().map(|s| self.intern(s)),
                    fans_reached: r.fans_reached,
                };
                self.articles.insert(r.article_id.into(), article);
            }
            DimensionRecord::MenuButton(r) => {
                let button = Button {
                    event_key: Arc::from(r.event_key.as_str()),
                    category: r.category,
                    label: self.intern(&r.label),
                };
                self.buttons
                    .entry(r.app_id.into())
                    .or_default()
                    .insert(r.event_key.into(), button);
            }
            DimensionRecord::FanProfile(r) => {
                let fan_id = self.pii.fan_id(&r.openid);
                self.insert_fan(
                    fan_id,
                    r.status,
                    r.associate_userid.as_deref(),
                    r.followed_at,
                    r.unfollowed_at,
                );
            }
            DimensionRecord::FanFollow(r) => {
                let fan = self.fans.get_or_default(self.pii.fan_id(&r.openid));
                self.reported += usize::from(fan.reported.is_empty());
                let at = NonZeroI64::new(r.at);
                match r.kind {
                    FollowKind::Follow => fan.reported.followed = fan.reported.followed.max(at),
                    FollowKind::Unfollow => {
                        fan.reported.unfollowed = fan.reported.unfollowed.max(at)
                    }
                }
            }
            DimensionRecord::AssociateContact(_) => {}
        }
    }

    /// A fan profile already pseudonymised (the mirror's snapshot in ClickHouse holds no
    /// openid): what [`Dimensions::apply`] stores for a fan-profile record.
    pub fn insert_fan(
        &mut self,
        fan_id: FanId,
        status: CustomerStatus,
        associate: Option<&str>,
        followed_at: Option<i64>,
        unfollowed_at: Option<i64>,
    ) {
        let associate = associate.map(|s| self.intern(s));
        let fan = self.fans.get_or_default(fan_id);
        self.profiled += usize::from(!fan.profiled);
        let reported = fan.reported;
        *fan = FanProfile::from_crm(status, associate, followed_at, unfollowed_at);
        fan.reported = reported;
    }

    /// Drops one source's part of a fan (`crm` for a profile, `reported` for callbacks),
    /// and the fan once neither source knows it.
    fn forget_fan(&mut self, fan_id: FanId, source: Dimension, kind: Option<FollowKind>) {
        let Some(fan) = self.fans.get_mut(fan_id) else {
            return;
        };
        let (had_crm, had_reported) = (fan.profiled, !fan.reported.is_empty());
        match (source, kind) {
            (Dimension::FanFollow, Some(FollowKind::Follow)) => fan.reported.followed = None,
            (Dimension::FanFollow, Some(FollowKind::Unfollow)) => fan.reported.unfollowed = None,
            (Dimension::FanFollow, None) => fan.reported = FollowTimes::default(),
            _ => {
                let reported = fan.reported;
                *fan = FanProfile {
                    reported,
                    ..FanProfile::default()
                };
            }
        }
        self.profiled -= usize::from(had_crm && !fan.profiled);
        self.reported -= usize::from(had_reported && fan.reported.is_empty());
        if !fan.profiled && fan.reported.is_empty() {
            self.fans.remove(fan_id);
        }
    }

    /// Forgets every value of `dimension` (a snapshot that failed half-way).
    pub fn clear(&mut self, dimension: Dimension) {
        match dimension {
            Dimension::Account => self.accounts.clear(),
            Dimension::Store => self.stores.clear(),
            Dimension::Associate => self.associates.clear(),
            Dimension::QrScene => self.scenes.clear(),
            Dimension::Article => self.articles.clear(),
            Dimension::MenuButton => self.buttons.clear(),
            Dimension::AssociateContact => {}
            Dimension::FanProfile | Dimension::FanFollow => {
                let fans: Vec<FanId> = self.fans.fans().collect();
                for fan_id in fans {
                    self.forget_fan(fan_id, dimension, None);
                }
            }
        }
    }

    fn delete(&mut self, dimension: Dimension, key: &str) {
        match dimension {
            Dimension::Account => drop(self.accounts.remove(key)),
            Dimension::Store => drop(self.stores.remove(key)),
            Dimension::Associate => drop(self.associates.remove(key)),
            Dimension::QrScene => {
                let (app_id, scene) = key.split_once('|').unwrap_or(("", key));
                if let Some(scenes) = self.scenes.get_mut(app_id) {
                    scenes.remove(scene);
                }
            }
            Dimension::Article => drop(self.articles.remove(key)),
            Dimension::MenuButton => {
                if let Some((app_id, event_key)) = key.split_once('|') {
                    if let Some(buttons) = self.buttons.get_mut(app_id) {
                        buttons.remove(event_key);
                    }
                }
            }
            Dimension::FanProfile => {
                if let Some((_, openid)) = key.split_once('|') {
                    self.forget_fan(self.pii.fan_id(openid), dimension, None);
                }
            }
            Dimension::FanFollow => {
                if let Some((_, openid, kind)) = split_follow_key(key) {
                    self.forget_fan(self.pii.fan_id(openid), dimension, Some(kind));
                }
            }
            Dimension::AssociateContact => {}
        }
    }

    /// One shared `Arc` per distinct value; dimension values are few and repeat.
    fn intern(&mut self, value: &str) -> Arc<str> {
        if let Some(s) = self.strings.get(value) {
            return s.clone();
        }
        let shared: Arc<str> = Arc::from(value);
        self.strings.insert(value.into(), shared.clone());
        shared
    }

    fn found<'a, T>(&self, dimension: Dimension, value: Option<&'a T>) -> Option<&'a T> {
        if value.is_none() {
            self.missing[dimension as usize].inc();
        }
        value
    }

    /// Whether `app_id` is a published account, or no account is published at all (then
    /// the deployment does not use the dimension and cannot tell). Not counted as a miss.
    pub fn knows_account(&self, app_id: &str) -> bool {
        self.accounts.is_empty() || self.accounts.contains_key(app_id)
    }

    /// Every account held, with its AppID.
    pub fn accounts(&self) -> impl Iterator<Item = (&str, &Account)> {
        self.accounts.iter().map(|(k, v)| (&**k, v))
    }

    /// The account of an `app_id`.
    pub fn account(&self, app_id: &str) -> Option<&Account> {
        self.found(Dimension::Account, self.accounts.get(app_id))
    }

    /// A store by id.
    pub fn store(&self, store_id: &str) -> Option<&Store> {
        self.found(Dimension::Store, self.stores.get(store_id))
    }

    /// An associate by WeCom userid.
    pub fn associate(&self, userid: &str) -> Option<&Associate> {
        self.found(Dimension::Associate, self.associates.get(userid))
    }

    /// A QR scene of account `app_id` by scene_id/scene_str: the account's own code, else
    /// a code published for every account (a v1 record without app_id).
    pub fn scene(&self, app_id: &str, scene: &str) -> Option<&Scene> {
        let of = |app: &str| self.scenes.get(app).and_then(|s| s.get(scene));
        self.found(Dimension::QrScene, of(app_id).or_else(|| of("")))
    }

    /// An article by id.
    pub fn article(&self, article_id: &str) -> Option<&Article> {
        self.found(Dimension::Article, self.articles.get(article_id))
    }

    /// A menu button of an account by key/URL/page.
    pub fn button(&self, app_id: &str, event_key: &str) -> Option<&Button> {
        let button = self.buttons.get(app_id).and_then(|b| b.get(event_key));
        self.found(Dimension::MenuButton, button)
    }

    /// Starts loading `fan_id`'s profile, so [`Dimensions::fan`] a few events later finds
    /// it in cache: the pipeline looks ahead in a batch (`decode::Decoder::look_ahead`).
    #[inline]
    pub fn prefetch_fan(&self, fan_id: FanId) {
        self.fans.prefetch(fan_id);
    }

    /// A fan's profile by pseudonymous id: also a fan only callbacks told of (status
    /// `Other`, no associate, with follow times), which still counts as a profile miss.
    pub fn fan(&self, fan_id: FanId) -> Option<&FanProfile> {
        let fan = self.fans.get(fan_id);
        if !fan.is_some_and(|f| f.profiled) {
            self.missing[Dimension::FanProfile as usize].inc();
        }
        fan
    }
}

#[cfg(test)]
mod tests;
