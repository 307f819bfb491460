//! The world's types: an account with its buttons and pushes, a fan's profile, a brand's
//! associates and codes, and the [`World`] that holds them with its lookup tables. Below
//! the modules that build and query the world, which each add an `impl World` block.

use std::collections::{HashMap, HashSet};

use rand::distributions::WeightedIndex;
use wxpulse_runtime::enrich::{
    AccountRecord, ArticleRecord, AssociateRecord, Birthday, CustomerStatus, MenuCategory,
    QrSceneRecord, SceneChannel, StoreRecord,
};
use wxpulse_runtime::events::MenuEvent;

/// A custom-menu button of an account, with the WeChat event a tap on it sends.
#[derive(Debug, Clone)]
pub struct Button {
    /// Key (CLICK), URL (VIEW) or page path (mini-program).
    pub key: String,
    /// What a tap sends.
    pub event: MenuEvent,
    /// Category.
    pub category: MenuCategory,
    /// Label.
    pub label: &'static str,
}

/// A push (mass message) of an account.
#[derive(Debug, Clone)]
pub struct Push {
    /// Push id.
    pub msgid: i64,
    /// When it went out, ms.
    pub published_at: i64,
    /// Its articles, indexes into [`World::articles`], in position order.
    pub articles: Vec<usize>,
    /// The segment it targeted (it reached only those fans), or `None` for all followers.
    pub segment: Option<CustomerStatus>,
}

/// An Official Account and what hangs off it.
#[derive(Debug, Clone)]
pub struct Account {
    /// The dimension record.
    pub record: AccountRecord,
    /// Brand, index into the world's brands.
    pub brand: usize,
    /// Menu buttons.
    pub buttons: Vec<Button>,
    pub(super) button_pick: WeightedIndex<f64>,
    /// Pushes in time order.
    pub pushes: Vec<Push>,
}

/// A fan's CRM profile, compact (the world holds one per fan); see
/// [`FanProfileRecord`](wxpulse_runtime::enrich::FanProfileRecord).
#[derive(Debug, Clone)]
pub struct Fan {
    /// Relationship segment.
    pub status: CustomerStatus,
    /// Membership tier.
    pub tier: Option<&'static str>,
    /// Bound associate, index into [`World::associates`].
    pub associate: Option<usize>,
    /// Follow time, ms.
    pub followed_at: i64,
    /// Unfollow time, ms.
    pub unfollowed_at: Option<i64>,
    /// WeChat subscribe scene.
    pub source: &'static str,
    /// For a QR follow during the span: the scene scanned, index into [`World::scenes`]
    /// (the generator's `SUBSCRIBE` scan at `followed_at` carries it).
    pub follow_scene: Option<usize>,
    /// Birthday, when the CRM holds it.
    pub birthday: Option<Birthday>,
}

impl Fan {
    /// Whether the fan follows the account at `t`: a fan only interacts while following.
    pub fn follows_at(&self, t: i64) -> bool {
        self.followed_at <= t && self.unfollowed_at.is_none_or(|u| t < u)
    }
}

pub(super) struct Brand {
    pub(super) code: String,
    /// Active associates, indexes into the world's associates.
    pub(super) active_associates: Vec<usize>,
    /// Scenes per channel ([`SCAN_CHANNELS`](super::seed::SCAN_CHANNELS) order) that scans may use.
    pub(super) scannable: Vec<Vec<usize>>,
    /// Picks among the associate codes of `scannable` by their associate's skill.
    pub(super) associate_code_pick: Option<WeightedIndex<f64>>,
    /// The brand's codes, indexes into the world's scenes; every account of the brand
    /// publishes them under its app_id (scene ids are per Official Account).
    pub(super) scenes: std::ops::Range<usize>,
}

/// The generator's world; see the module doc.
pub struct World {
    pub(super) brands: Vec<Brand>,
    /// Official Accounts, in `wxb{b:02}a{a:02}` order.
    pub accounts: Vec<Account>,
    /// Stores of every brand.
    pub stores: Vec<StoreRecord>,
    /// Associates of every brand.
    pub associates: Vec<AssociateRecord>,
    /// QR scenes of every brand.
    pub scenes: Vec<QrSceneRecord>,
    /// Articles of every push.
    pub articles: Vec<ArticleRecord>,
    /// Per account, per fan number: the profile, or `None` for a fan the CRM does not know.
    pub fans: Vec<Vec<Option<Fan>>>,
    /// When the records were last changed (the start of the span), ms.
    pub(super) as_of: i64,
    /// The span the world was built for, ms: follows, unfollows and pushes fall in it.
    pub span: (i64, i64),
    /// Per account, per fan number: the activity propensity, a relative weight (lognormal
    /// of mean 1 before its cap); see [`ACTIVITY_SIGMA`](super::ACTIVITY_SIGMA).
    pub activity: Vec<Vec<f64>>,
    /// Per associate: skill, a standard normal draw (better associates are found more
    /// through their code and answer more, sooner).
    pub skill: Vec<f64>,
    pub(super) channel_pick: WeightedIndex<f64>,
    pub(super) buttons_by_key: HashMap<(String, String), MenuCategory>,
    pub(super) scenes_by_key: HashMap<String, SceneChannel>,
    pub(super) article_ids: HashSet<String>,
    pub(super) associate_ids: HashMap<String, usize>,
}
