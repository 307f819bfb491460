//! Enrichment: the dimensions every event is joined with, held in memory and kept current
//! from compacted Kafka topics (`follow`).
//!
//! The pipeline task owns the [`Dimensions`] and applies updates between records, so the
//! hot path looks them up without locks. Values written to rows are `Arc<str>`: a row
//! clones a reference count, not a string. A key that is present on the event but absent
//! from its dimension yields `None`, counts in `wxpulse_enrich_dimension_missing_total`,
//! and the row gets [`UNKNOWN`]; once the record arrives, later events pick it up.

pub mod follow;
pub mod records;
pub mod snapshot;

use std::num::NonZeroI64;
use std::sync::Arc;

use prometheus::IntCounter;

use crate::pii::{FanId, Pseudonymizer};
pub use records::*;

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
    /// Store the associate works in.
    pub store_id: Arc<str>,
    /// False once the associate left.
    pub active: bool,
}

/// A QR scene.
#[derive(Debug, Clone)]
pub struct Scene {
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
    fans: Map<FanId, FanProfile>,
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
            fans: Map::new(),
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
                    store_id: self.intern(&r.store_id),
                    active: r.active,
                };
                self.associates.insert(r.userid.into(), associate);
            }
            DimensionRecord::QrScene(r) => {
                let scene = Scene {
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
                let fan = self.fans.entry(self.pii.fan_id(&r.openid)).or_default();
                self.reported += usize::from(fan.reported.is_empty());
                let at = NonZeroI64::new(r.at);
                match r.kind {
                    FollowKind::Follow => fan.reported.followed = fan.reported.followed.max(at),
                    FollowKind::Unfollow => {
                        fan.reported.unfollowed = fan.reported.unfollowed.max(at)
                    }
                }
            }
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
        let fan = self.fans.entry(fan_id).or_default();
        self.profiled += usize::from(!fan.profiled);
        let reported = fan.reported;
        *fan = FanProfile::from_crm(status, associate, followed_at, unfollowed_at);
        fan.reported = reported;
    }

    /// Drops one source's part of a fan (`crm` for a profile, `reported` for callbacks),
    /// and the fan once neither source knows it.
    fn forget_fan(&mut self, fan_id: FanId, source: Dimension, kind: Option<FollowKind>) {
        let Some(fan) = self.fans.get_mut(&fan_id) else {
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
            self.fans.remove(&fan_id);
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
            Dimension::FanProfile | Dimension::FanFollow => {
                let fans: Vec<FanId> = self.fans.keys().copied().collect();
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
                let Some((rest, kind)) = key.rsplit_once('|') else {
                    return;
                };
                let kind = match kind {
                    "follow" => FollowKind::Follow,
                    "unfollow" => FollowKind::Unfollow,
                    _ => return,
                };
                if let Some((_, openid)) = rest.split_once('|') {
                    self.forget_fan(self.pii.fan_id(openid), dimension, Some(kind));
                }
            }
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

    /// A fan's profile by pseudonymous id: also a fan only callbacks told of (status
    /// `Other`, no associate, with follow times), which still counts as a profile miss.
    pub fn fan(&self, fan_id: FanId) -> Option<&FanProfile> {
        let fan = self.fans.get(&fan_id);
        if !fan.is_some_and(|f| f.profiled) {
            self.missing[Dimension::FanProfile as usize].inc();
        }
        fan
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dims() -> Dimensions {
        Dimensions::detached(Pseudonymizer::new(b"k"))
    }

    fn button(app_id: &str, key: &str, category: MenuCategory, label: &str) -> DimensionRecord {
        DimensionRecord::MenuButton(MenuButtonRecord {
            app_id: app_id.into(),
            event_key: key.into(),
            category,
            label: label.into(),
            updated_at: 0,
        })
    }

    #[test]
    fn the_latest_record_of_a_key_wins_and_tombstones_delete() {
        let mut d = dims();
        let first = button("wxa", "SHOP", MenuCategory::BrandInfo, "Shop");
        let second = button("wxa", "SHOP", MenuCategory::Ecommerce, "Mall");
        d.apply(Dimension::MenuButton, &first.key(), Some(first.clone()));
        d.apply(Dimension::MenuButton, &second.key(), Some(second.clone()));
        let b = d.button("wxa", "SHOP").expect("present");
        assert_eq!(b.category, MenuCategory::Ecommerce);
        assert_eq!(&*b.label, "Mall");
        assert!(d.button("wxb", "SHOP").is_none(), "buttons are per account");
        d.apply(Dimension::MenuButton, "wxa|SHOP", None);
        assert!(d.button("wxa", "SHOP").is_none());
        assert_eq!(d.len(Dimension::MenuButton), 0);
    }

    #[test]
    fn scenes_are_per_account_with_a_fallback_to_codes_of_every_account() {
        let mut d = dims();
        let scene = |app_id: &str, store: &str| {
            DimensionRecord::QrScene(QrSceneRecord {
                scene: "1001".into(),
                channel: SceneChannel::Store,
                store_id: Some(store.into()),
                userid: None,
                campaign: None,
                updated_at: 0,
                app_id: app_id.into(),
            })
        };
        for record in [
            scene("wxa", "sh01"),
            scene("wxb", "bj01"),
            scene("", "gz01"),
        ] {
            let key = record.key();
            d.apply(Dimension::QrScene, &key, Some(record));
        }
        let store = |d: &Dimensions, app_id| {
            d.scene(app_id, "1001")
                .and_then(|s| s.store_id.as_deref().map(str::to_string))
        };
        assert_eq!(store(&d, "wxa").as_deref(), Some("sh01"));
        assert_eq!(store(&d, "wxb").as_deref(), Some("bj01"), "no collision");
        assert_eq!(store(&d, "wxc").as_deref(), Some("gz01"), "a v1 code");
        assert_eq!(d.len(Dimension::QrScene), 3);
        d.apply(Dimension::QrScene, "wxa|1001", None);
        assert_eq!(store(&d, "wxa").as_deref(), Some("gz01"));
        d.apply(Dimension::QrScene, "1001", None);
        assert_eq!(store(&d, "wxa"), None);
        assert_eq!(store(&d, "wxb").as_deref(), Some("bj01"));
    }

    #[test]
    fn reported_follows_merge_with_the_crm_profile_by_the_later_time() {
        // One per fan of the brand in every service: a second source must not grow it.
        assert!(std::mem::size_of::<FanProfile>() <= 56);
        let counters: [IntCounter; Dimension::COUNT] =
            std::array::from_fn(|i| IntCounter::new(format!("f{i}"), "f").expect("counter"));
        let mut d = Dimensions::new(Pseudonymizer::new(b"k"), counters.clone());
        let pii = Pseudonymizer::new(b"k");
        let profile = |followed: i64| {
            DimensionRecord::FanProfile(FanProfileRecord {
                app_id: "wxa".into(),
                openid: "o1".into(),
                status: CustomerStatus::Vip,
                member_tier: None,
                associate_userid: Some("zhang".into()),
                followed_at: Some(followed),
                unfollowed_at: None,
                follow_source: None,
                updated_at: 0,
            })
        };
        let reported = |openid: &str, kind, at| {
            DimensionRecord::FanFollow(FanFollowRecord {
                app_id: "wxa".into(),
                openid: openid.into(),
                kind,
                at,
                follow_source: None,
                updated_at: 0,
            })
        };
        let apply = |d: &mut Dimensions, r: DimensionRecord| {
            let (dimension, key) = (r.dimension(), r.key());
            d.apply(dimension, &key, Some(r));
        };
        let times = |d: &Dimensions, openid: &str| {
            let f = d.fan(pii.fan_id(openid)).expect("known");
            (f.status, f.followed_at(), f.unfollowed_at())
        };
        apply(&mut d, profile(100));
        apply(&mut d, reported("o1", FollowKind::Unfollow, 200));
        assert_eq!(times(&d, "o1"), (CustomerStatus::Vip, Some(100), Some(200)));
        // The CRM republishes its (older) view: the reported unfollow stays.
        apply(&mut d, profile(100));
        assert_eq!(times(&d, "o1"), (CustomerStatus::Vip, Some(100), Some(200)));
        apply(&mut d, reported("o1", FollowKind::Follow, 300));
        // An older report delivered late moves nothing back.
        apply(&mut d, reported("o1", FollowKind::Follow, 250));
        assert_eq!(times(&d, "o1"), (CustomerStatus::Vip, Some(300), Some(200)));
        assert_eq!(
            d.fan(pii.fan_id("o1"))
                .and_then(|f| f.associate.clone())
                .as_deref(),
            Some("zhang"),
            "the CRM's fields are not touched"
        );
        // Only callbacks know o2: follow times, no relationship, and still a profile miss.
        let misses = counters[Dimension::FanProfile as usize].get();
        apply(&mut d, reported("o2", FollowKind::Follow, 50));
        assert_eq!(times(&d, "o2"), (CustomerStatus::Other, Some(50), None));
        assert_eq!(counters[Dimension::FanProfile as usize].get(), misses + 1);
        assert_eq!(
            (d.len(Dimension::FanProfile), d.len(Dimension::FanFollow)),
            (1, 2)
        );
        // A profile tombstone keeps what callbacks said; their tombstones then forget it.
        d.apply(Dimension::FanProfile, "wxa|o1", None);
        assert_eq!(
            times(&d, "o1"),
            (CustomerStatus::Other, Some(300), Some(200))
        );
        d.apply(Dimension::FanFollow, "wxa|o1|follow", None);
        assert_eq!(times(&d, "o1"), (CustomerStatus::Other, None, Some(200)));
        d.apply(Dimension::FanFollow, "wxa|o1|unfollow", None);
        assert!(d.fan(pii.fan_id("o1")).is_none());
        assert_eq!(
            (d.len(Dimension::FanProfile), d.len(Dimension::FanFollow)),
            (0, 1)
        );
        d.clear(Dimension::FanFollow);
        assert!(d.fan(pii.fan_id("o2")).is_none());
    }

    #[test]
    fn misses_are_counted_per_dimension() {
        let counters: [IntCounter; Dimension::COUNT] =
            std::array::from_fn(|i| IntCounter::new(format!("c{i}"), "c").expect("counter"));
        let mut d = Dimensions::new(Pseudonymizer::new(b"k"), counters.clone());
        assert!(d.store("s1").is_none());
        assert!(d.store("s1").is_none());
        d.apply(
            Dimension::Store,
            "s1",
            Some(DimensionRecord::Store(StoreRecord {
                store_id: "s1".into(),
                name: "n".into(),
                city: "Shanghai".into(),
                region: "East".into(),
                tier: "1".into(),
                updated_at: 0,
            })),
        );
        assert_eq!(&*d.store("s1").expect("arrived").region, "East");
        assert_eq!(counters[Dimension::Store as usize].get(), 2);
        assert_eq!(counters[Dimension::Account as usize].get(), 0);
    }

    #[test]
    fn fan_profiles_are_keyed_by_pseudonym_never_by_raw_openid() {
        let mut d = dims();
        let profile = DimensionRecord::FanProfile(FanProfileRecord {
            app_id: "wxa".into(),
            openid: "oRAW".into(),
            status: CustomerStatus::Vip,
            member_tier: None,
            associate_userid: Some("zhang.wei".into()),
            followed_at: Some(1),
            unfollowed_at: None,
            follow_source: None,
            updated_at: 0,
        });
        d.apply(Dimension::FanProfile, &profile.key(), Some(profile));
        let id = Pseudonymizer::new(b"k").fan_id("oRAW");
        assert_eq!(d.fan(id).expect("by pseudonym").status, CustomerStatus::Vip);
        d.apply(Dimension::FanProfile, "wxa|oRAW", None);
        assert!(d.fan(id).is_none());
    }

    proptest::proptest! {
        /// Whatever the interleaving of updates and tombstones, the table ends with the
        /// last record per key: what reading an uncompacted topic from the start must give.
        #[test]
        fn last_write_per_key_wins(ops in proptest::collection::vec((0u8..4, proptest::option::of(0u8..3)), 0..40)) {
            let mut d = dims();
            let mut model = std::collections::HashMap::new();
            let categories = [MenuCategory::Ecommerce, MenuCategory::BrandInfo, MenuCategory::Crm];
            for (key, value) in ops {
                let k = format!("K{key}");
                let record = value.map(|v| button("wxa", &k, categories[v as usize], &format!("L{v}")));
                d.apply(Dimension::MenuButton, &format!("wxa|{k}"), record);
                match value {
                    Some(v) => { model.insert(k, v); }
                    None => { model.remove(&k); }
                }
            }
            for key in 0u8..4 {
                let k = format!("K{key}");
                let got = d.button("wxa", &k).map(|b| b.label.to_string());
                proptest::prop_assert_eq!(got, model.get(&k).map(|v| format!("L{v}")));
            }
            proptest::prop_assert_eq!(d.len(Dimension::MenuButton), model.len());
        }
    }

    #[test]
    fn equal_values_share_one_allocation() {
        let mut d = dims();
        for (id, region) in [("s1", "East"), ("s2", "East")] {
            let store = DimensionRecord::Store(StoreRecord {
                store_id: id.into(),
                name: id.into(),
                city: "c".into(),
                region: region.into(),
                tier: "1".into(),
                updated_at: 0,
            });
            d.apply(Dimension::Store, id, Some(store));
        }
        let (a, b) = (d.store("s1").expect("s1"), d.store("s2").expect("s2"));
        assert!(Arc::ptr_eq(&a.region, &b.region));
    }
}
