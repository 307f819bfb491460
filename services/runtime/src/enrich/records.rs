//! The dimension records as Rust structs: the reader side of `schemas/avro/dim_*`, and
//! what `wxpulse dims load` parses from CSV/JSON and publishes.
//!
//! Owned strings: dimensions change slowly and are decoded off the hot path. Every
//! optional field has a serde default so a CSV/JSON file may omit it.

use serde::{Deserialize, Serialize};

use crate::codec::{decode, encode_into, DecodeError};
use crate::enrich::reported::{AssociateContactRecord, FanFollowRecord};

/// The dimensions, each a compacted topic keyed by [`Dimension::key`] of its record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Dimension {
    /// `app_id` → brand, account name.
    Account,
    /// `store_id` → city, region, tier.
    Store,
    /// WeCom `userid` → store, active/left.
    Associate,
    /// QR scene → channel, store, associate, campaign.
    QrScene,
    /// `article_id` → push, position, campaign, target segment.
    Article,
    /// `app_id` + button key/URL → category, label.
    MenuButton,
    /// `app_id` + `openid` → relationship, follow time, bound associate.
    FanProfile,
    /// `app_id` + `openid` + kind → the latest follow or unfollow WeChat reported through
    /// the gateway; merged into the fan's profile by the later of the two sources' times.
    FanFollow,
    /// `corp_id` + associate `userid` + `external_userid` + added/removed → a WeCom
    /// associate's external contacts. Mirrored into ClickHouse; no service looks it up.
    AssociateContact,
}

impl Dimension {
    /// Every dimension, in metric-label order.
    pub const ALL: [Dimension; Dimension::COUNT] = [
        Dimension::Account,
        Dimension::Store,
        Dimension::Associate,
        Dimension::QrScene,
        Dimension::Article,
        Dimension::MenuButton,
        Dimension::FanProfile,
        Dimension::FanFollow,
        Dimension::AssociateContact,
    ];

    /// How many dimensions there are (per-dimension arrays are this long).
    pub const COUNT: usize = 9;

    /// Metric label and CLI name.
    pub const fn as_str(self) -> &'static str {
        match self {
            Dimension::Account => "account",
            Dimension::Store => "store",
            Dimension::Associate => "associate",
            Dimension::QrScene => "qr_scene",
            Dimension::Article => "article",
            Dimension::MenuButton => "menu_button",
            Dimension::FanProfile => "fan_profile",
            Dimension::FanFollow => "fan_follow",
            Dimension::AssociateContact => "associate_contact",
        }
    }

    /// The compacted topic that carries it.
    pub const fn topic(self) -> &'static str {
        match self {
            Dimension::Account => "wxpulse.dim.account",
            Dimension::Store => "wxpulse.dim.store",
            Dimension::Associate => "wxpulse.dim.associate",
            Dimension::QrScene => "wxpulse.dim.qr_scene",
            Dimension::Article => "wxpulse.dim.article",
            Dimension::MenuButton => "wxpulse.dim.menu_button",
            Dimension::FanProfile => "wxpulse.dim.fan_profile",
            Dimension::FanFollow => "wxpulse.dim.fan_follow",
            Dimension::AssociateContact => "wxpulse.dim.associate_contact",
        }
    }

    /// Full Avro record name its schema declares.
    pub const fn record(self) -> &'static str {
        match self {
            Dimension::Account => "com.wxpulse.dims.Account",
            Dimension::Store => "com.wxpulse.dims.Store",
            Dimension::Associate => "com.wxpulse.dims.Associate",
            Dimension::QrScene => "com.wxpulse.dims.QrScene",
            Dimension::Article => "com.wxpulse.dims.Article",
            Dimension::MenuButton => "com.wxpulse.dims.MenuButton",
            Dimension::FanProfile => "com.wxpulse.dims.FanProfile",
            Dimension::FanFollow => "com.wxpulse.dims.FanFollow",
            Dimension::AssociateContact => "com.wxpulse.dims.AssociateContact",
        }
    }

    /// Parses a CLI/metric name.
    pub fn parse(name: &str) -> Option<Dimension> {
        Dimension::ALL.into_iter().find(|d| d.as_str() == name)
    }

    /// The dimension a topic carries.
    pub fn of_topic(topic: &str) -> Option<Dimension> {
        Dimension::ALL.into_iter().find(|d| d.topic() == topic)
    }
}

/// Joins the parts of a composite key (`app_id|event_key`, `app_id|openid`). `|` cannot
/// appear in an AppID, so the first `|` always splits it back.
pub fn composite_key(app_id: &str, rest: &str) -> String {
    format!("{app_id}|{rest}")
}

/// WeChat account type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum AccountType {
    /// Service account (4 pushes a month).
    #[serde(rename = "SERVICE")]
    Service,
    /// Subscription account (a push a day).
    #[serde(rename = "SUBSCRIPTION")]
    Subscription,
    /// Unknown to this build.
    #[serde(rename = "OTHER", other)]
    #[default]
    Other,
}

/// An Official Account (`dim_account` v1).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AccountRecord {
    /// AppID (key).
    pub app_id: String,
    /// Brand that owns it.
    pub brand: String,
    /// Account name.
    pub name: String,
    /// Service or subscription.
    #[serde(default)]
    pub account_type: AccountType,
    /// Followers at the last update.
    #[serde(default)]
    pub fans: i64,
    /// When the source system changed it, ms.
    #[serde(default)]
    pub updated_at: i64,
}

/// A store (`dim_store` v1).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoreRecord {
    /// Store id (key).
    pub store_id: String,
    /// Store name.
    pub name: String,
    /// City.
    pub city: String,
    /// Sales region.
    pub region: String,
    /// City tier or store format.
    pub tier: String,
    /// When the source system changed it, ms.
    #[serde(default)]
    pub updated_at: i64,
}

/// A WeCom sales associate (`dim_associate` v1).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AssociateRecord {
    /// WeCom userid (key).
    pub userid: String,
    /// Display name.
    pub name: String,
    /// Store the associate works in.
    pub store_id: String,
    /// False once the associate left (customers are reassigned, seeds 001/004).
    #[serde(default = "yes")]
    pub active: bool,
    /// When the source system changed it, ms.
    #[serde(default)]
    pub updated_at: i64,
}

impl AssociateRecord {
    /// An active associate of `store_id`, named by userid: fixtures and tests.
    #[doc(hidden)]
    pub fn of_store(userid: &str, store_id: &str) -> Self {
        AssociateRecord {
            userid: userid.into(),
            name: userid.into(),
            store_id: store_id.into(),
            active: true,
            updated_at: 0,
        }
    }
}

fn yes() -> bool {
    true
}

/// What a QR code is printed on or attached to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum SceneChannel {
    /// Store counter.
    #[serde(rename = "STORE")]
    Store,
    /// An associate's personal code.
    #[serde(rename = "ASSOCIATE")]
    Associate,
    /// Event or pop-up.
    #[serde(rename = "EVENT")]
    Event,
    /// In an article.
    #[serde(rename = "ARTICLE")]
    Article,
    /// Paid media.
    #[serde(rename = "AD")]
    Ad,
    /// Product packaging.
    #[serde(rename = "PACKAGING")]
    Packaging,
    /// Payment receipt.
    #[serde(rename = "PAYMENT")]
    Payment,
    /// Unknown to this build.
    #[serde(rename = "OTHER", other)]
    #[default]
    Other,
}

impl SceneChannel {
    /// Stored name.
    pub const fn as_str(self) -> &'static str {
        match self {
            SceneChannel::Store => "store",
            SceneChannel::Associate => "associate",
            SceneChannel::Event => "event",
            SceneChannel::Article => "article",
            SceneChannel::Ad => "ad",
            SceneChannel::Packaging => "packaging",
            SceneChannel::Payment => "payment",
            SceneChannel::Other => "other",
        }
    }
}

/// A parametric QR scene (`dim_qr_scene` v2). Scene ids are per Official Account: two
/// accounts may both print scene `1001` on different codes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QrSceneRecord {
    /// scene_id (decimal) or scene_str (key).
    pub scene: String,
    /// What the code is printed on.
    #[serde(default)]
    pub channel: SceneChannel,
    /// Store of the code, when any.
    #[serde(default)]
    pub store_id: Option<String>,
    /// Associate of the code, when any.
    #[serde(default)]
    pub userid: Option<String>,
    /// Campaign, when any.
    #[serde(default)]
    pub campaign: Option<String>,
    /// When the source system changed it, ms.
    #[serde(default)]
    pub updated_at: i64,
    /// Official Account of the code; empty: every account (v1 records carry none).
    #[serde(default)]
    pub app_id: String,
}

/// An article of a push (`dim_article` v1).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ArticleRecord {
    /// Article id (key).
    pub article_id: String,
    /// Push (mass message) id.
    pub msgid: i64,
    /// Position in the push, 1 = first.
    pub idx: i32,
    /// Articles in the push.
    pub articles_in_push: i32,
    /// Title.
    #[serde(default)]
    pub title: String,
    /// When the push went out, ms.
    pub published_at: i64,
    /// Campaign, when any.
    #[serde(default)]
    pub campaign: Option<String>,
    /// Segment the push targeted; none = sent to all followers.
    #[serde(default)]
    pub target_segment: Option<String>,
    /// Followers the push was delivered to (open-rate denominator).
    #[serde(default)]
    pub fans_reached: i64,
    /// When the source system changed it, ms.
    #[serde(default)]
    pub updated_at: i64,
}

/// Menu button category (seed 000: e-commerce 45%, brand/product info 33%, CRM 22%).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum MenuCategory {
    /// Mall, mini-program shop, product pages.
    #[serde(rename = "ECOMMERCE")]
    Ecommerce,
    /// Brand story, collections, product information.
    #[serde(rename = "BRAND_INFO")]
    BrandInfo,
    /// Membership lookup, contact service, bookings.
    #[serde(rename = "CRM")]
    Crm,
    /// Unknown to this build.
    #[serde(rename = "OTHER", other)]
    #[default]
    Other,
}

impl MenuCategory {
    /// Stored name.
    pub const fn as_str(self) -> &'static str {
        match self {
            MenuCategory::Ecommerce => "ecommerce",
            MenuCategory::BrandInfo => "brand_info",
            MenuCategory::Crm => "crm",
            MenuCategory::Other => "other",
        }
    }
}

/// A custom-menu button (`dim_menu_button` v1); key `app_id|event_key`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MenuButtonRecord {
    /// AppID.
    pub app_id: String,
    /// Button key (CLICK), URL (VIEW) or page path (mini-program).
    pub event_key: String,
    /// Category.
    #[serde(default)]
    pub category: MenuCategory,
    /// Label shown in the menu.
    pub label: String,
    /// When the source system changed it, ms.
    #[serde(default)]
    pub updated_at: i64,
}

/// Relationship segment (seed 002): membership does not require a purchase.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum CustomerStatus {
    /// Follower without a purchase.
    #[serde(rename = "PROSPECT")]
    Prospect,
    /// Has bought.
    #[serde(rename = "CUSTOMER")]
    Customer,
    /// Top tier.
    #[serde(rename = "VIP")]
    Vip,
    /// Unknown to this build.
    #[serde(rename = "OTHER", other)]
    #[default]
    Other,
}

impl CustomerStatus {
    /// Stored name: the `relationship` vocabulary of the raw tables.
    pub const fn as_str(self) -> &'static str {
        match self {
            CustomerStatus::Prospect => "prospect",
            CustomerStatus::Customer => "customer",
            CustomerStatus::Vip => "vip",
            CustomerStatus::Other => "unknown",
        }
    }
}

/// A fan's CRM binding (`dim_fan_profile` v2); key `app_id|openid`. The openid is raw
/// here (the CRM's own data); services keep only its pseudonym.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FanProfileRecord {
    /// AppID.
    pub app_id: String,
    /// Raw openid.
    pub openid: String,
    /// Relationship segment.
    #[serde(default)]
    pub status: CustomerStatus,
    /// Membership tier.
    #[serde(default)]
    pub member_tier: Option<String>,
    /// Bound associate.
    #[serde(default)]
    pub associate_userid: Option<String>,
    /// Follow time, ms.
    #[serde(default)]
    pub followed_at: Option<i64>,
    /// Unfollow time, ms (after the last follow: the fan is gone).
    #[serde(default)]
    pub unfollowed_at: Option<i64>,
    /// How the fan followed (search, qr, ad, article, other).
    #[serde(default)]
    pub follow_source: Option<String>,
    /// When the source system changed it, ms.
    #[serde(default)]
    pub updated_at: i64,
    /// Birthday, `"MM-DD"` without a year (v2; personal data, not an identifier). Read
    /// through [`Birthday::parse`](crate::enrich::Birthday::parse): a value of another
    /// form is an unknown birthday, never an error.
    #[serde(default)]
    pub birthday: Option<String>,
}

/// Any dimension record, keyed: what the loader publishes and the follower applies.
#[derive(Debug, Clone, PartialEq)]
pub enum DimensionRecord {
    /// See [`AccountRecord`].
    Account(AccountRecord),
    /// See [`StoreRecord`].
    Store(StoreRecord),
    /// See [`AssociateRecord`].
    Associate(AssociateRecord),
    /// See [`QrSceneRecord`].
    QrScene(QrSceneRecord),
    /// See [`ArticleRecord`].
    Article(ArticleRecord),
    /// See [`MenuButtonRecord`].
    MenuButton(MenuButtonRecord),
    /// See [`FanProfileRecord`].
    FanProfile(FanProfileRecord),
    /// See [`FanFollowRecord`].
    FanFollow(FanFollowRecord),
    /// See [`AssociateContactRecord`].
    AssociateContact(AssociateContactRecord),
}

impl DimensionRecord {
    /// Which dimension.
    pub fn dimension(&self) -> Dimension {
        match self {
            DimensionRecord::Account(_) => Dimension::Account,
            DimensionRecord::Store(_) => Dimension::Store,
            DimensionRecord::Associate(_) => Dimension::Associate,
            DimensionRecord::QrScene(_) => Dimension::QrScene,
            DimensionRecord::Article(_) => Dimension::Article,
            DimensionRecord::MenuButton(_) => Dimension::MenuButton,
            DimensionRecord::FanProfile(_) => Dimension::FanProfile,
            DimensionRecord::FanFollow(_) => Dimension::FanFollow,
            DimensionRecord::AssociateContact(_) => Dimension::AssociateContact,
        }
    }

    /// The Kafka key: compaction keeps the latest record per key.
    pub fn key(&self) -> String {
        match self {
            DimensionRecord::Account(r) => r.app_id.clone(),
            DimensionRecord::Store(r) => r.store_id.clone(),
            DimensionRecord::Associate(r) => r.userid.clone(),
            DimensionRecord::QrScene(r) if r.app_id.is_empty() => r.scene.clone(),
            DimensionRecord::QrScene(r) => composite_key(&r.app_id, &r.scene),
            DimensionRecord::Article(r) => r.article_id.clone(),
            DimensionRecord::MenuButton(r) => composite_key(&r.app_id, &r.event_key),
            DimensionRecord::FanProfile(r) => composite_key(&r.app_id, &r.openid),
            DimensionRecord::FanFollow(r) => {
                format!(
                    "{}|{}",
                    composite_key(&r.app_id, &r.openid),
                    r.kind.as_str()
                )
            }
            DimensionRecord::AssociateContact(r) => r.key(),
        }
    }

    /// Encodes in the Confluent wire format with the newest embedded schema.
    pub fn encode(&self) -> Result<Vec<u8>, RecordError> {
        let dimension = self.dimension();
        let subject = format!("{}-value", dimension.topic());
        let embedded = crate::codec::latest(&subject).ok_or(RecordError::NoSchema(dimension))?;
        let schema = crate::codec::parse(embedded.json)
            .map_err(|e| RecordError::Encode(dimension, e.to_string()))?;
        self.encode_with(embedded.id, &schema)
    }

    /// Encodes in the Confluent wire format with a schema the producer looked up in the
    /// registry (`id` is the registry's, which a real registry assigns itself).
    pub fn encode_with(
        &self,
        id: u32,
        schema: &serde_avro_fast::Schema,
    ) -> Result<Vec<u8>, RecordError> {
        let dimension = self.dimension();
        let mut out = Vec::with_capacity(96);
        let encoded = match self {
            DimensionRecord::Account(r) => encode_into(r, id, schema, &mut out),
            DimensionRecord::Store(r) => encode_into(r, id, schema, &mut out),
            DimensionRecord::Associate(r) => encode_into(r, id, schema, &mut out),
            DimensionRecord::QrScene(r) => encode_into(r, id, schema, &mut out),
            DimensionRecord::Article(r) => encode_into(r, id, schema, &mut out),
            DimensionRecord::MenuButton(r) => encode_into(r, id, schema, &mut out),
            DimensionRecord::FanProfile(r) => encode_into(r, id, schema, &mut out),
            DimensionRecord::FanFollow(r) => encode_into(r, id, schema, &mut out),
            DimensionRecord::AssociateContact(r) => encode_into(r, id, schema, &mut out),
        };
        encoded.map_err(|e| RecordError::Encode(dimension, e.to_string()))?;
        Ok(out)
    }

    /// Decodes a Confluent-framed payload of `dimension`'s topic: the writer schema by id
    /// (cached, else fetched from the registry), checked to be that dimension's record.
    /// The error says why, for a log line or a metric.
    pub fn from_framed(
        dimension: Dimension,
        payload: &[u8],
        registry: &crate::codec::Registry,
    ) -> Result<Self, String> {
        let (id, datum) = crate::codec::split_frame(payload).map_err(|e| e.to_string())?;
        let writer = match registry.cached(id) {
            Some(w) => w,
            None => registry
                .fetch_blocking(id)
                .map_err(|e| e.to_string())?
                .ok_or_else(|| format!("unknown schema id {id}"))?,
        };
        if writer.record != dimension.record() {
            return Err(format!("schema id {id} is not a {}", dimension.record()));
        }
        Self::decode(dimension, datum, &writer.schema).map_err(|e| e.to_string())
    }

    /// Decodes a datum written with `schema` as `dimension`'s record.
    pub fn decode(
        dimension: Dimension,
        datum: &[u8],
        schema: &serde_avro_fast::Schema,
    ) -> Result<Self, DecodeError> {
        Ok(match dimension {
            Dimension::Account => DimensionRecord::Account(decode(datum, schema)?),
            Dimension::Store => DimensionRecord::Store(decode(datum, schema)?),
            Dimension::Associate => DimensionRecord::Associate(decode(datum, schema)?),
            Dimension::QrScene => DimensionRecord::QrScene(decode(datum, schema)?),
            Dimension::Article => DimensionRecord::Article(decode(datum, schema)?),
            Dimension::MenuButton => DimensionRecord::MenuButton(decode(datum, schema)?),
            Dimension::FanProfile => DimensionRecord::FanProfile(decode(datum, schema)?),
            Dimension::FanFollow => DimensionRecord::FanFollow(decode(datum, schema)?),
            Dimension::AssociateContact => {
                DimensionRecord::AssociateContact(decode(datum, schema)?)
            }
        })
    }
}

/// A dimension record that cannot be published.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    /// No embedded schema for the dimension's topic.
    #[error("no embedded schema for dimension {0:?}")]
    NoSchema(Dimension),
    /// The record does not fit its schema.
    #[error("{0:?} record does not encode: {1}")]
    Encode(Dimension, String),
}
