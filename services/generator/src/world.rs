//! The generator's world: brands, their Official Accounts, stores, associates, QR scenes,
//! pushes and articles, menu buttons and fan profiles, built deterministically from the
//! [`Spec`] and its seed.
//!
//! Events reference the world (menu keys, scenes, articles, associates, fans), and the
//! world publishes itself as dimension records, so enrichment can be checked end to end:
//! what the generator meant is what the pipeline must resolve. The world is published as
//! its end state before the events: a profile already carries a follow or an unfollow that
//! happens during the span.
//!
//! Shapes: menu categories 45/33/22 (seed 000); articles per push 1: 74.32%, 2: 14.49%
//! (seed 000), at most 3 here, over the world's pushes exact to rounding; 4 pushes a month
//! on service accounts, all that WeChat allows (seed 000: 65.71% of brands use all 4, the
//! others 3 here), 2 on subscription accounts (every brand pushes at least twice), a
//! quarter of all pushes to a segment; publish times by the seed's weekday × hour table;
//! relationship segments prospect / customer / VIP (seed 002) at 80/17/3; new follows in
//! the span by source search 41.4%, QR code 27.7%, paid media 1.15% (seed 000), exact to
//! rounding; 0.4% of the fans a push reaches unfollow within 24 h (seed 000); associates in
//! stores, some of whom left (seeds 001, 004), with a skill that drives their code's scans
//! and their replies.
//!
//! Fans differ: each has an activity propensity, lognormal with a heavy tail, that weighs
//! every choice of a fan (who clicks, scans, writes, reads a push), so most fans interact
//! 0–2 times a month and about 1 in 11 more than 4 times (seed 000: 9.33% monthly active).

use std::collections::{HashMap, HashSet};

use rand::distributions::WeightedIndex;
use rand::prelude::*;
use rand_chacha::ChaCha8Rng;
use wxpulse_runtime::enrich::{
    AccountRecord, AccountType, ArticleRecord, AssociateRecord, CustomerStatus, Dimension,
    DimensionRecord, FanProfileRecord, MenuButtonRecord, MenuCategory, QrSceneRecord, SceneChannel,
    StoreRecord,
};
use wxpulse_runtime::events::MenuEvent;

use crate::spec::Spec;

/// Fictional brands of one luxury group: (name, short code used in ids).
const BRANDS: [(&str, &str); 8] = [
    ("Maison Aurel", "aur"),
    ("Velmont", "vlm"),
    ("Casa Lumen", "lum"),
    ("Orsay Atelier", "ors"),
    ("Kestrel & Vane", "kst"),
    ("Lune Dorée", "lnd"),
    ("Atelier Sorel", "srl"),
    ("Hollis Row", "hlr"),
];

/// A city a brand has stores in.
struct City {
    code: &'static str,
    name: &'static str,
    chinese: &'static str,
    region: &'static str,
    tier: &'static str,
    /// Malls with a store of every brand, one store each.
    malls: &'static [&'static str],
}

const fn city(
    code: &'static str,
    name: &'static str,
    chinese: &'static str,
    region: &'static str,
    tier: &'static str,
    malls: &'static [&'static str],
) -> City {
    City {
        code,
        name,
        chinese,
        region,
        tier,
        malls,
    }
}

const CITIES: [City; 8] = [
    city(
        "sh",
        "Shanghai",
        "上海",
        "East",
        "Tier 1",
        &["恒隆广场", "国金中心"],
    ),
    city(
        "bj",
        "Beijing",
        "北京",
        "North",
        "Tier 1",
        &["SKP", "国贸商城"],
    ),
    city("cd", "Chengdu", "成都", "West", "New Tier 1", &["太古里"]),
    city("sz", "Shenzhen", "深圳", "South", "Tier 1", &["万象城"]),
    city(
        "hz",
        "Hangzhou",
        "杭州",
        "East",
        "New Tier 1",
        &["湖滨银泰in77"],
    ),
    city("gz", "Guangzhou", "广州", "South", "Tier 1", &["太古汇"]),
    city(
        "wh",
        "Wuhan",
        "武汉",
        "Central",
        "New Tier 1",
        &["武汉国际广场"],
    ),
    city("xa", "Xi'an", "西安", "West", "New Tier 1", &["SKP"]),
];

const SURNAMES: [(&str, &str); 12] = [
    ("zhang", "张"),
    ("wang", "王"),
    ("li", "李"),
    ("zhao", "赵"),
    ("chen", "陈"),
    ("liu", "刘"),
    ("yang", "杨"),
    ("huang", "黄"),
    ("zhou", "周"),
    ("wu", "吴"),
    ("xu", "徐"),
    ("sun", "孙"),
];

const GIVEN_NAMES: [(&str, &str); 16] = [
    ("wei", "伟"),
    ("fang", "芳"),
    ("na", "娜"),
    ("min", "敏"),
    ("jing", "静"),
    ("lei", "磊"),
    ("yang", "洋"),
    ("ting", "婷"),
    ("xue", "雪"),
    ("jie", "杰"),
    ("lin", "琳"),
    ("hao", "浩"),
    ("yan", "燕"),
    ("qiang", "强"),
    ("xin", "欣"),
    ("yu", "宇"),
];

/// Menu buttons of every account: (key or URL or page, category, event, label). `{code}`
/// is the brand's code.
const BUTTONS: [(&str, MenuCategory, MenuEvent, &str); 9] = [
    (
        "SHOP_NEW_ARRIVALS",
        MenuCategory::Ecommerce,
        MenuEvent::Click,
        "新品上市",
    ),
    (
        "https://mall.{code}.example.com/",
        MenuCategory::Ecommerce,
        MenuEvent::View,
        "官方商城",
    ),
    (
        "pages/mall/index",
        MenuCategory::Ecommerce,
        MenuEvent::ViewMiniprogram,
        "小程序商城",
    ),
    (
        "BRAND_STORY",
        MenuCategory::BrandInfo,
        MenuEvent::Click,
        "品牌故事",
    ),
    (
        "https://www.{code}.example.com/collections",
        MenuCategory::BrandInfo,
        MenuEvent::View,
        "系列作品",
    ),
    (
        "LOOKBOOK",
        MenuCategory::BrandInfo,
        MenuEvent::Click,
        "当季型录",
    ),
    (
        "MEMBER_CENTER",
        MenuCategory::Crm,
        MenuEvent::Click,
        "会员中心",
    ),
    (
        "CONTACT_SERVICE",
        MenuCategory::Crm,
        MenuEvent::Click,
        "联系客服",
    ),
    (
        "pages/booking/index",
        MenuCategory::Crm,
        MenuEvent::ViewMiniprogram,
        "预约到店",
    ),
];

/// Click weights per button so categories come out 45 / 33 / 22 (seed 000).
const BUTTON_WEIGHTS: [f64; 9] = [15.0, 15.0, 15.0, 11.0, 11.0, 11.0, 7.34, 7.33, 7.33];

/// Keys of buttons taken out of the menu that old clients still send: no record has them.
const RETIRED_BUTTONS: [(&str, MenuEvent); 3] = [
    ("SHOP_LEGACY_SALE", MenuEvent::Click),
    ("https://mall.{code}.example.com/legacy", MenuEvent::View),
    ("pages/legacy/index", MenuEvent::ViewMiniprogram),
];

/// Share of QR scans per channel (no seed figure; stores and associates lead offline).
const SCAN_CHANNELS: [(SceneChannel, f64); 7] = [
    (SceneChannel::Store, 30.0),
    (SceneChannel::Associate, 30.0),
    (SceneChannel::Event, 10.0),
    (SceneChannel::Article, 8.0),
    (SceneChannel::Ad, 7.0),
    (SceneChannel::Packaging, 8.0),
    (SceneChannel::Payment, 7.0),
];

/// Articles per push: 1, 2, 3 (seed 000: 74.32% and 14.49%; the rest here 3).
const ARTICLES_PER_PUSH: [f64; 3] = [74.32, 14.49, 11.19];

const TITLES: [&str; 10] = [
    "新品上市 | 早春系列",
    "匠心工坊 | 一只手袋的诞生",
    "七夕限定 | 为心意而作",
    "会员私享 | 秋冬系列预览",
    "门店活动 | 城市快闪店开幕",
    "搭配指南 | 本季五种穿法",
    "品牌故事 | 百年工艺传承",
    "预约到店 | 专属礼遇",
    "限量发售 | 联名系列",
    "保养指南 | 皮具护理",
];

const CAMPAIGNS: [&str; 5] = [
    "spring_collection",
    "qixi_gifting",
    "aw_preview",
    "double11",
    "chinese_new_year",
];

/// Relationship segments (seed 002) and their shares.
const STATUSES: [(CustomerStatus, f64); 3] = [
    (CustomerStatus::Prospect, 80.0),
    (CustomerStatus::Customer, 17.0),
    (CustomerStatus::Vip, 3.0),
];

/// WeChat `subscribe_scene` values with the seed's new-follower mix (seed 000: search
/// 41.4%, QR code 27.7%, paid media 1.15%); the rest spread over article and other
/// sources. `ADD_SCENE_PAID` is a follow after a payment, not paid media: the BI views
/// group scenes with [`follow_source_group`].
const FOLLOW_SOURCES: [(&str, f64); 10] = [
    ("ADD_SCENE_SEARCH", 41.4),
    ("ADD_SCENE_QR_CODE", 27.7),
    ("ADD_SCENE_WECHAT_ADVERTISEMENT", 1.15),
    ("ADD_SCENE_PROFILE_LINK", 10.0),
    ("ADD_SCENE_PROFILE_ITEM", 5.0),
    ("ADD_SCENE_REPRINT", 3.0),
    ("ADD_SCENE_PROFILE_CARD", 7.0),
    ("ADD_SCENE_ACCOUNT_MIGRATION", 1.5),
    ("ADD_SCENE_PAID", 0.75),
    ("ADD_SCENE_OTHERS", 2.5),
];

/// The follow source a QR scan's `SUBSCRIBE` carries in the profile.
pub const QR_FOLLOW_SOURCE: &str = "ADD_SCENE_QR_CODE";

/// Share of fans who follow during the span (the rest followed up to 3 years before).
const FOLLOW_IN_SPAN: f64 = 0.10;

/// Share of fans who unfollow at a random time of the span, pushes aside.
const BACKGROUND_UNFOLLOW: f64 = 0.003;

/// Share of the fans a push reaches who unfollow within 24 h of it (seed 000: 0.4%).
pub const UNFOLLOW_AFTER_PUSH: f64 = 0.004;

/// Pushes a month: a service account uses all 4 WeChat allows with the seed's odds, else
/// 3; subscription accounts push twice (seed 000: 65.71% of brands use all 4, every brand
/// pushes at least twice).
const PUSHES_PER_MONTH: (f64, f64, f64) = (4.0, 3.0, 2.0);
/// Share of pushes sent to a segment (VIPs or customers) only: no seed figure; enough that
/// a month has both kinds to compare (seed 000 compares their engagement).
const SEGMENTED_PUSHES: f64 = 0.25;
/// Of the segmented pushes, those to VIPs (the rest go to customers).
const VIP_OF_SEGMENTED: f64 = 0.67;

/// Odds that a service account uses all its pushes (seed 000).
const ALL_FOUR_PUSHES: f64 = 0.6571;

/// Spread of the fans' activity propensity: the standard deviation of its logarithm.
/// Tuned on the default spec (20,000 fans an account, 2.5 interactions a fan a month) so
/// that about 9.33% of followers interact more than 4 times in a calendar month (seed 000);
/// most fans interact 0–2 times.
pub const ACTIVITY_SIGMA: f64 = 2.5;

/// Propensities are capped at this many standard deviations: a long tail, not a single fan
/// with a tenth of the traffic.
const ACTIVITY_CAP_Z: f64 = 3.0;

/// Spread of associates' skill (log scale of how often their code is scanned).
const SKILL_SCAN_SIGMA: f64 = 0.9;

/// Share of pushes sent to each hour (row, 0..23, Asia/Shanghai) and weekday (column,
/// Monday..Sunday), in % of all pushes: seed 000's push-time table (图文推送时间分布),
/// reordered from its Sunday-first columns; hours it lists no row for are 0.
pub const PUSH_HEATMAP: [[f64; 7]; 24] = [
    [0.27, 0.20, 0.14, 0.14, 0.61, 0.27, 0.07],
    [0.0; 7],
    [0.07, 0.00, 0.00, 0.00, 0.00, 0.00, 0.00],
    [0.0; 7],
    [0.0; 7],
    [0.00, 0.00, 0.14, 0.00, 0.00, 0.00, 0.00],
    [0.0; 7],
    [0.41, 0.27, 0.27, 0.68, 0.54, 0.00, 0.00],
    [0.34, 0.07, 0.20, 0.27, 1.09, 0.00, 0.00],
    [0.95, 0.61, 1.70, 0.54, 1.97, 0.41, 0.27],
    [0.48, 0.48, 1.29, 1.49, 2.58, 1.43, 0.14],
    [0.14, 0.20, 0.14, 0.48, 1.09, 0.34, 0.20],
    [1.22, 1.77, 2.45, 2.38, 5.03, 1.02, 0.27],
    [0.00, 0.14, 0.34, 0.20, 1.22, 0.27, 0.00],
    [0.20, 0.20, 0.07, 0.27, 0.54, 0.41, 0.14],
    [0.00, 0.41, 0.54, 1.97, 1.09, 0.07, 0.00],
    [0.14, 0.20, 0.61, 0.68, 0.95, 0.41, 0.00],
    [0.54, 0.75, 1.43, 1.22, 2.85, 0.41, 0.07],
    [0.88, 1.15, 1.77, 2.04, 3.46, 0.41, 0.14],
    [0.75, 0.48, 1.77, 1.49, 2.38, 1.09, 0.00],
    [0.34, 0.68, 2.24, 4.62, 1.70, 0.20, 0.27],
    [0.95, 1.36, 2.31, 1.97, 1.97, 0.34, 0.00],
    [0.27, 1.90, 1.22, 1.77, 0.68, 0.20, 0.00],
    [0.07, 0.48, 0.41, 0.20, 0.54, 0.00, 0.07],
];

/// First push id: WeChat msg ids are large; unknown articles use ids far below.
const FIRST_MSGID: i64 = 2_650_000_001;
/// First numeric scene id; unknown numeric scenes start at [`UNKNOWN_SCENE_ID`].
const FIRST_SCENE_ID: u32 = 1001;
const UNKNOWN_SCENE_ID: u32 = 900_000;

/// A day in ms.
pub const DAY_MS: i64 = 86_400_000;

/// Name of a relationship segment as rows carry it (lowercase, like the other enums'
/// stored names); `unknown` is the pipeline's marker for a fan without a profile.
pub fn segment_name(status: CustomerStatus) -> &'static str {
    match status {
        CustomerStatus::Prospect => "prospect",
        CustomerStatus::Customer => "customer",
        CustomerStatus::Vip => "vip",
        CustomerStatus::Other => "other",
    }
}

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
    button_pick: WeightedIndex<f64>,
    /// Pushes in time order.
    pub pushes: Vec<Push>,
}

/// A fan's CRM profile, compact (the world holds one per fan); see [`FanProfileRecord`].
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
}

impl Fan {
    /// Whether the fan follows the account at `t`: a fan only interacts while following.
    pub fn follows_at(&self, t: i64) -> bool {
        self.followed_at <= t && self.unfollowed_at.is_none_or(|u| t < u)
    }
}

struct Brand {
    code: String,
    /// Active associates, indexes into the world's associates.
    active_associates: Vec<usize>,
    /// Scenes per channel ([`SCAN_CHANNELS`] order) that scans may use.
    scannable: Vec<Vec<usize>>,
    /// Picks among the associate codes of `scannable` by their associate's skill.
    associate_code_pick: Option<WeightedIndex<f64>>,
    /// The brand's codes, indexes into the world's scenes; every account of the brand
    /// publishes them under its app_id (scene ids are per Official Account).
    scenes: std::ops::Range<usize>,
}

/// The generator's world; see the module doc.
pub struct World {
    brands: Vec<Brand>,
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
    as_of: i64,
    /// The span the world was built for, ms: follows, unfollows and pushes fall in it.
    pub span: (i64, i64),
    /// Per account, per fan number: the activity propensity, a relative weight (lognormal
    /// of mean 1 before its cap); see [`ACTIVITY_SIGMA`].
    pub activity: Vec<Vec<f64>>,
    /// Per associate: skill, a standard normal draw (better associates are found more
    /// through their code and answer more, sooner).
    pub skill: Vec<f64>,
    channel_pick: WeightedIndex<f64>,
    buttons_by_key: HashMap<(String, String), MenuCategory>,
    scenes_by_key: HashMap<String, SceneChannel>,
    article_ids: HashSet<String>,
    associate_ids: HashMap<String, usize>,
}

impl World {
    /// Builds the world of `spec`: the same spec and seed, the same world.
    pub fn new(spec: &Spec) -> World {
        let mut rng = ChaCha8Rng::seed_from_u64(spec.seed ^ 0x0077_6f72_6c64); // "world"
        let (start, end) = (spec.start_ms, spec.end_ms.max(spec.start_ms + 1));
        let mut world = World {
            brands: Vec::new(),
            accounts: Vec::new(),
            stores: Vec::new(),
            associates: Vec::new(),
            scenes: Vec::new(),
            articles: Vec::new(),
            fans: Vec::new(),
            as_of: start,
            span: (start, end),
            activity: Vec::new(),
            skill: Vec::new(),
            channel_pick: WeightedIndex::new(SCAN_CHANNELS.iter().map(|c| c.1))
                .expect("positive weights"),
            buttons_by_key: HashMap::new(),
            scenes_by_key: HashMap::new(),
            article_ids: HashSet::new(),
            associate_ids: HashMap::new(),
        };
        let mut next_scene_id = FIRST_SCENE_ID;
        for b in 0..spec.brands as usize {
            world.add_brand(b, spec, &mut rng, &mut next_scene_id);
        }
        assert!(
            next_scene_id < UNKNOWN_SCENE_ID,
            "numeric scene ids stay below the unknown ones"
        );
        world.associate_ids = world
            .associates
            .iter()
            .enumerate()
            .map(|(i, a)| (a.userid.clone(), i))
            .collect();
        // How many pushes each account sends, then their sizes and targets over all of
        // them, exact to rounding (a month has few pushes: drawn one by one, a small world
        // could have no multi-article or no segmented push).
        let counts: Vec<usize> = (0..world.accounts.len())
            .map(|a| world.push_count(a, &mut rng, start, end))
            .collect();
        let total = counts.iter().sum();
        let mut kinds: Vec<(i32, Option<CustomerStatus>)> = Vec::with_capacity(total);
        let mut sizes = expand(apportion(total, &ARTICLES_PER_PUSH), [1, 2, 3]);
        let segments = [
            None,
            Some(CustomerStatus::Vip),
            Some(CustomerStatus::Customer),
        ];
        let shares = [
            1.0 - SEGMENTED_PUSHES,
            SEGMENTED_PUSHES * VIP_OF_SEGMENTED,
            SEGMENTED_PUSHES * (1.0 - VIP_OF_SEGMENTED),
        ];
        let mut targets = expand(apportion(total, &shares), segments);
        sizes.shuffle(&mut rng);
        targets.shuffle(&mut rng);
        kinds.extend(sizes.into_iter().zip(targets));
        let mut next_msgid = FIRST_MSGID;
        let mut kinds = kinds.into_iter();
        for (a, n) in counts.into_iter().enumerate() {
            world.add_fans(a, spec, &mut rng, start, end);
            let mine: Vec<_> = kinds.by_ref().take(n).collect();
            world.add_pushes(a, &mine, &mut rng, start, end, &mut next_msgid);
        }
        // Propensities from their own stream ("activity"): the profiles do not depend on them.
        let mut activity = ChaCha8Rng::seed_from_u64(spec.seed ^ 0x6163_7469_7669_7479);
        world.activity = world
            .fans
            .iter()
            .map(|fans| {
                fans.iter()
                    .map(|_| {
                        let z =
                            standard_normal(&mut activity).clamp(-ACTIVITY_CAP_Z, ACTIVITY_CAP_Z);
                        (ACTIVITY_SIGMA * z - ACTIVITY_SIGMA * ACTIVITY_SIGMA / 2.0).exp()
                    })
                    .collect()
            })
            .collect();
        for account in &world.accounts {
            for button in &account.buttons {
                world.buttons_by_key.insert(
                    (account.record.app_id.clone(), button.key.clone()),
                    button.category,
                );
            }
        }
        world.scenes_by_key = world
            .scenes
            .iter()
            .map(|s| (s.scene.clone(), s.channel))
            .collect();
        world.article_ids = world
            .articles
            .iter()
            .map(|a| a.article_id.clone())
            .collect();
        world
    }

    fn add_brand(&mut self, b: usize, spec: &Spec, rng: &mut ChaCha8Rng, next_scene_id: &mut u32) {
        let (base_name, base_code) = BRANDS[b % BRANDS.len()];
        let round = b / BRANDS.len();
        let (name, code) = if round == 0 {
            (base_name.to_string(), base_code.to_string())
        } else {
            (
                format!("{base_name} {}", round + 1),
                format!("{base_code}{}", round + 1),
            )
        };
        let mut numeric_scene = || {
            let id = *next_scene_id;
            *next_scene_id += 1;
            id.to_string()
        };
        let mut scenes: Vec<QrSceneRecord> = Vec::new();
        let scene =
            |scene: String, channel, store_id: Option<&str>, userid: Option<&str>| QrSceneRecord {
                scene,
                channel,
                store_id: store_id.map(str::to_string),
                userid: userid.map(str::to_string),
                campaign: None,
                updated_at: 0,
                app_id: String::new(),
            };
        // Stores, their associates (the first of each store stays), counter and payment codes.
        let mut taken: HashSet<String> = self.associates.iter().map(|a| a.userid.clone()).collect();
        let mut active = Vec::new();
        for city in &CITIES {
            for (n, mall) in city.malls.iter().enumerate() {
                let store_id = format!("{code}_{}{:02}", city.code, n + 1);
                self.stores.push(StoreRecord {
                    store_id: store_id.clone(),
                    name: format!("{name} {}{mall}店", city.chinese),
                    city: city.name.to_string(),
                    region: city.region.to_string(),
                    tier: city.tier.to_string(),
                    updated_at: self.as_of,
                });
                scenes.push(scene(
                    format!("store_{store_id}_counter"),
                    SceneChannel::Store,
                    Some(&store_id),
                    None,
                ));
                scenes.push(scene(
                    numeric_scene(),
                    SceneChannel::Payment,
                    Some(&store_id),
                    None,
                ));
                for k in 0..rng.gen_range(3..=6) {
                    let (sp, sc) = SURNAMES[rng.gen_range(0..SURNAMES.len())];
                    let (gp, gc) = GIVEN_NAMES[rng.gen_range(0..GIVEN_NAMES.len())];
                    let mut userid = format!("{sp}{gp}");
                    let mut n = 2;
                    while !taken.insert(userid.clone()) {
                        userid = format!("{sp}{gp}{n:02}");
                        n += 1;
                    }
                    let is_active = k == 0 || !rng.gen_bool(0.08);
                    if is_active {
                        active.push(self.associates.len());
                    }
                    self.skill.push(standard_normal(rng));
                    scenes.push(scene(
                        format!("assoc_{userid}"),
                        SceneChannel::Associate,
                        Some(&store_id),
                        Some(&userid),
                    ));
                    self.associates.push(AssociateRecord {
                        userid,
                        name: format!("{sc}{gc}"),
                        store_id: store_id.clone(),
                        active: is_active,
                        updated_at: self.as_of,
                    });
                }
            }
        }
        for (kind, city) in [
            ("spring_popup", "sh"),
            ("vip_salon", "bj"),
            ("trunk_show", "cd"),
        ] {
            let mut s = scene(
                format!("event_{code}_{city}_{kind}"),
                SceneChannel::Event,
                Some(&format!("{code}_{city}01")),
                None,
            );
            s.campaign = Some(format!("{kind}_{city}"));
            scenes.push(s);
        }
        for (n, campaign) in CAMPAIGNS.iter().take(2).enumerate() {
            let mut s = scene(
                format!("article_{code}_{:02}", n + 1),
                SceneChannel::Article,
                None,
                None,
            );
            s.campaign = Some(campaign.to_string());
            scenes.push(s);
        }
        for platform in ["moments", "douyin", "xiaohongshu"] {
            let mut s = scene(
                format!("ad_{code}_{platform}"),
                SceneChannel::Ad,
                None,
                None,
            );
            s.campaign = Some(format!("{platform}_ads"));
            scenes.push(s);
        }
        for _ in 0..2 {
            scenes.push(scene(numeric_scene(), SceneChannel::Packaging, None, None));
        }
        // Scans use the codes of associates still there: a code of one who left is void.
        let first = self.scenes.len();
        let mut scannable = vec![Vec::new(); SCAN_CHANNELS.len()];
        for (i, s) in scenes.iter_mut().enumerate() {
            s.updated_at = self.as_of;
            let void = s
                .userid
                .as_ref()
                .is_some_and(|u| self.associates.iter().any(|a| &a.userid == u && !a.active));
            let c = SCAN_CHANNELS
                .iter()
                .position(|(c, _)| *c == s.channel)
                .expect("every scene channel is scannable");
            if !void {
                scannable[c].push(first + i);
            }
        }
        let skill_of = |userid: &str| {
            self.associates
                .iter()
                .position(|a| a.userid == userid)
                .map_or(0.0, |i| self.skill[i])
        };
        let a = SCAN_CHANNELS
            .iter()
            .position(|(c, _)| *c == SceneChannel::Associate)
            .expect("associates have codes");
        let associate_code_pick = WeightedIndex::new(scannable[a].iter().map(|&i| {
            let userid = scenes[i - first].userid.as_deref().unwrap_or_default();
            (SKILL_SCAN_SIGMA * skill_of(userid)).exp()
        }))
        .ok();
        let brand_scenes = first..first + scenes.len();
        self.scenes.extend(scenes);
        let button_pick = WeightedIndex::new(BUTTON_WEIGHTS).expect("positive weights");
        for a in 0..spec.accounts_per_brand as usize {
            let (account_type, suffix) = match a {
                0 => (AccountType::Service, "官方".to_string()),
                1 => (AccountType::Subscription, "会员俱乐部".to_string()),
                2 => (AccountType::Subscription, "精品店".to_string()),
                n => (AccountType::Subscription, format!("账号{}", n + 1)),
            };
            let buttons = BUTTONS
                .iter()
                .map(|(key, category, event, label)| Button {
                    key: key.replace("{code}", &code),
                    event: *event,
                    category: *category,
                    label,
                })
                .collect();
            self.accounts.push(Account {
                record: AccountRecord {
                    app_id: format!("wxb{b:02}a{a:02}"),
                    brand: name.clone(),
                    name: format!("{name} {suffix}"),
                    account_type,
                    fans: i64::from(spec.fans_per_account),
                    updated_at: self.as_of,
                },
                brand: b,
                buttons,
                button_pick: button_pick.clone(),
                pushes: Vec::new(),
            });
        }
        self.brands.push(Brand {
            code,
            active_associates: active,
            scannable,
            associate_code_pick,
            scenes: brand_scenes,
        });
    }

    fn add_fans(&mut self, a: usize, spec: &Spec, rng: &mut ChaCha8Rng, start: i64, end: i64) {
        let status_pick = WeightedIndex::new(STATUSES.iter().map(|s| s.1)).expect("weights");
        let source_pick = WeightedIndex::new(FOLLOW_SOURCES.iter().map(|s| s.1)).expect("weights");
        let brand = self.accounts[a].brand;
        let active = &self.brands[brand].active_associates;
        let mut fans: Vec<Option<Fan>> = (0..spec.fans_per_account)
            .map(|_| {
                if rng.gen_bool(spec.unknown_dimension_share) {
                    return None; // followed, but never bound in the CRM
                }
                let status = STATUSES[status_pick.sample(rng)].0;
                let (tier, bound) = match status {
                    CustomerStatus::Vip => (Some(["GOLD", "BLACK"][rng.gen_range(0..2)]), 0.9),
                    CustomerStatus::Customer => {
                        (Some(["SILVER", "GOLD"][rng.gen_range(0..2)]), 0.9)
                    }
                    _ => (rng.gen_bool(0.3).then_some("CLASSIC"), 0.35),
                };
                let associate = rng
                    .gen_bool(bound)
                    .then(|| active[rng.gen_range(0..active.len())]);
                let followed_at = if rng.gen_bool(FOLLOW_IN_SPAN) {
                    start + rng.gen_range(0..end - start)
                } else {
                    start - rng.gen_range(DAY_MS..3 * 365 * DAY_MS)
                };
                let gone_from = followed_at.max(start);
                let unfollowed_at = (rng.gen_bool(BACKGROUND_UNFOLLOW) && gone_from + 1 < end)
                    .then(|| rng.gen_range(gone_from + 1..end));
                Some(Fan {
                    status,
                    tier,
                    associate,
                    followed_at,
                    unfollowed_at,
                    source: FOLLOW_SOURCES[source_pick.sample(rng)].0,
                    follow_scene: None,
                })
            })
            .collect();
        // The span's new follows get the seed's sources exactly (to rounding), and a QR
        // follow its scene: the generator scans it at the follow, and a fan who followed
        // through an associate's code is that associate's customer.
        let mut new: Vec<usize> = (0..fans.len())
            .filter(|&i| fans[i].as_ref().is_some_and(|f| f.followed_at >= start))
            .collect();
        new.shuffle(rng);
        let sources = expand(
            apportion(new.len(), &FOLLOW_SOURCES.map(|s| s.1)),
            FOLLOW_SOURCES.map(|s| s.0),
        );
        for (i, source) in new.into_iter().zip(sources) {
            let scene = (source == QR_FOLLOW_SOURCE).then(|| self.pick_scene_of_brand(brand, rng));
            let associate = scene
                .and_then(|s| self.scenes[s].userid.as_ref())
                .and_then(|u| self.associate_ids.get(u).copied());
            if let Some(f) = fans[i].as_mut() {
                f.source = source;
                f.follow_scene = scene;
                if associate.is_some() {
                    f.associate = associate;
                }
            }
        }
        self.fans.push(fans);
    }

    /// Pushes of the account over the span: a service account uses all 4 a month with the
    /// seed's odds (else 3), a subscription account 2.
    fn push_count(&self, a: usize, rng: &mut ChaCha8Rng, start: i64, end: i64) -> usize {
        let per_month = match self.accounts[a].record.account_type {
            AccountType::Service if rng.gen_bool(ALL_FOUR_PUSHES) => PUSHES_PER_MONTH.0,
            AccountType::Service => PUSHES_PER_MONTH.1,
            _ => PUSHES_PER_MONTH.2,
        };
        let span = end - start;
        ((span as f64 / (30.0 * DAY_MS as f64) * per_month).round() as usize).clamp(1, 120)
    }

    /// The account's pushes, one per `kinds` (articles in it, segment it targets).
    fn add_pushes(
        &mut self,
        a: usize,
        kinds: &[(i32, Option<CustomerStatus>)],
        rng: &mut ChaCha8Rng,
        start: i64,
        end: i64,
        next_msgid: &mut i64,
    ) {
        let span = end - start;
        let n = kinds.len().max(1) as i64;
        let app_id = self.accounts[a].record.app_id.clone();
        let followers = self.accounts[a].record.fans;
        let in_segment = |status: CustomerStatus| {
            self.fans[a]
                .iter()
                .filter(|f| f.as_ref().is_some_and(|f| f.status == status))
                .count() as i64
        };
        let (vips, customers) = (
            in_segment(CustomerStatus::Vip),
            in_segment(CustomerStatus::Customer),
        );
        let segment_size = |status: CustomerStatus| match status {
            CustomerStatus::Vip => vips,
            _ => customers,
        };
        let mut pushes = Vec::new();
        let slot = span / n;
        for (k, &(count, segment)) in (0..).zip(kinds) {
            // One push per slot, at a time brands push (seed 000's table); a day apart from
            // the next slot when slots are long, so 24 h after a push hold no other push.
            let lo = start + k * slot;
            let hi = if slot > 2 * DAY_MS {
                lo + slot - DAY_MS
            } else {
                lo + slot.max(1)
            }
            .min(end);
            let published_at = publish_time(lo, hi, rng);
            let msgid = *next_msgid;
            *next_msgid += 1;
            let campaign = rng
                .gen_bool(0.5)
                .then(|| CAMPAIGNS[rng.gen_range(0..CAMPAIGNS.len())].to_string());
            // A segmented push reaches its segment only: the open-rate denominator.
            let fans_reached = segment.map_or(followers, segment_size);
            let mut articles = Vec::new();
            for idx in 1..=count {
                articles.push(self.articles.len());
                self.articles.push(ArticleRecord {
                    article_id: format!("{app_id}_{msgid}_{idx}"),
                    msgid,
                    idx,
                    articles_in_push: count,
                    title: TITLES[rng.gen_range(0..TITLES.len())].to_string(),
                    published_at,
                    campaign: campaign.clone(),
                    target_segment: segment.map(|s| segment_name(s).to_string()),
                    fans_reached,
                    updated_at: self.as_of,
                });
            }
            self.unfollow_after_push(a, published_at, segment, fans_reached, end, rng);
            pushes.push(Push {
                msgid,
                published_at,
                articles,
                segment,
            });
        }
        self.accounts[a].pushes = pushes;
    }

    /// Some fans a push reached unfollow within 24 h of it (seed 000: 0.4% of them), those
    /// who had not decided to leave anyway; an unfollow after the span is not placed.
    fn unfollow_after_push(
        &mut self,
        a: usize,
        published_at: i64,
        segment: Option<CustomerStatus>,
        fans_reached: i64,
        end: i64,
        rng: &mut ChaCha8Rng,
    ) {
        let mut reached: Vec<usize> = (0..self.fans[a].len())
            .filter(|&i| {
                self.fans[a][i].as_ref().is_some_and(|f| {
                    segment.is_none_or(|s| s == f.status)
                        && f.follows_at(published_at)
                        && f.unfollowed_at.is_none()
                })
            })
            .collect();
        let n = ((UNFOLLOW_AFTER_PUSH * fans_reached as f64).round() as usize).min(reached.len());
        let (leaving, _) = reached.partial_shuffle(rng, n);
        for &i in leaving.iter() {
            // Most leave soon after the push arrives.
            let u: f64 = rng.gen();
            let at = published_at + 1 + (u * u * (DAY_MS - 1) as f64) as i64;
            if let (true, Some(f)) = (at < end, self.fans[a][i].as_mut()) {
                f.unfollowed_at = Some(at);
            }
        }
    }

    /// Every record of the world, dimension by dimension, referenced before referencing.
    pub fn dimension_records(&self) -> Vec<DimensionRecord> {
        let mut out = Vec::new();
        out.extend(
            self.accounts
                .iter()
                .map(|a| DimensionRecord::Account(a.record.clone())),
        );
        out.extend(self.stores.iter().cloned().map(DimensionRecord::Store));
        out.extend(
            self.associates
                .iter()
                .cloned()
                .map(DimensionRecord::Associate),
        );
        for account in &self.accounts {
            let codes = self.brands[account.brand].scenes.clone();
            out.extend(self.scenes[codes].iter().map(|s| {
                DimensionRecord::QrScene(QrSceneRecord {
                    app_id: account.record.app_id.clone(),
                    ..s.clone()
                })
            }));
        }
        out.extend(self.articles.iter().cloned().map(DimensionRecord::Article));
        for account in &self.accounts {
            out.extend(account.buttons.iter().map(|b| {
                DimensionRecord::MenuButton(MenuButtonRecord {
                    app_id: account.record.app_id.clone(),
                    event_key: b.key.clone(),
                    category: b.category,
                    label: b.label.to_string(),
                    updated_at: self.as_of,
                })
            }));
        }
        for (account, fans) in self.accounts.iter().zip(&self.fans) {
            let app_id = &account.record.app_id;
            out.extend(fans.iter().enumerate().filter_map(|(n, f)| {
                let f = f.as_ref()?;
                Some(DimensionRecord::FanProfile(FanProfileRecord {
                    app_id: app_id.clone(),
                    openid: openid(app_id, n as u32),
                    status: f.status,
                    member_tier: f.tier.map(str::to_string),
                    associate_userid: f.associate.map(|i| self.associates[i].userid.clone()),
                    followed_at: Some(f.followed_at),
                    unfollowed_at: f.unfollowed_at,
                    follow_source: Some(f.source.to_string()),
                    updated_at: self.as_of,
                }))
            }));
        }
        out
    }

    /// Records per dimension, without building them (the ground truth reports these).
    pub fn record_counts(&self) -> Vec<(Dimension, usize)> {
        vec![
            (Dimension::Account, self.accounts.len()),
            (Dimension::Store, self.stores.len()),
            (Dimension::Associate, self.associates.len()),
            (
                Dimension::QrScene,
                self.accounts
                    .iter()
                    .map(|a| self.brands[a.brand].scenes.len())
                    .sum(),
            ),
            (Dimension::Article, self.articles.len()),
            (
                Dimension::MenuButton,
                self.accounts.iter().map(|a| a.buttons.len()).sum(),
            ),
            (
                Dimension::FanProfile,
                self.fans.iter().flatten().filter(|f| f.is_some()).count(),
            ),
        ]
    }

    /// The short code of a brand (index into the world's brands), which prefixes its store
    /// ids (`{code}_…`).
    pub fn brand_code(&self, brand: usize) -> &str {
        &self.brands[brand].code
    }

    /// A fan's profile, if the CRM has one.
    pub fn fan(&self, account: usize, fan: u32) -> Option<&Fan> {
        self.fans[account].get(fan as usize)?.as_ref()
    }

    /// Whether the fan may interact at `t`: following then, or unknown to the CRM.
    pub fn follows_at(&self, account: usize, fan: u32, t: i64) -> bool {
        self.fan(account, fan).is_none_or(|f| f.follows_at(t))
    }

    /// A button of the account, weighted so categories come out 45/33/22.
    pub fn pick_button(&self, account: usize, rng: &mut impl Rng) -> &Button {
        let a = &self.accounts[account];
        &a.buttons[a.button_pick.sample(rng)]
    }

    /// A retired button's key (no record has it) and the event it sends.
    pub fn unknown_button(&self, account: usize, rng: &mut impl Rng) -> (String, MenuEvent) {
        let code = &self.brands[self.accounts[account].brand].code;
        let (key, event) = RETIRED_BUTTONS[rng.gen_range(0..RETIRED_BUTTONS.len())];
        (key.replace("{code}", code), event)
    }

    /// A scene of the account's brand: channel by [`SCAN_CHANNELS`], then a code of it
    /// (an associate's code by the associate's skill: good associates get scanned more).
    pub fn pick_scene(&self, account: usize, rng: &mut impl Rng) -> &QrSceneRecord {
        &self.scenes[self.pick_scene_index(account, rng)]
    }

    /// Like [`World::pick_scene`], the index into [`World::scenes`].
    pub fn pick_scene_index(&self, account: usize, rng: &mut impl Rng) -> usize {
        self.pick_scene_of_brand(self.accounts[account].brand, rng)
    }

    fn pick_scene_of_brand(&self, brand: usize, rng: &mut impl Rng) -> usize {
        let brand = &self.brands[brand];
        let channel = self.channel_pick.sample(rng);
        let scenes = &brand.scannable[channel];
        match &brand.associate_code_pick {
            Some(pick) if SCAN_CHANNELS[channel].0 == SceneChannel::Associate => {
                scenes[pick.sample(rng)]
            }
            _ => scenes[rng.gen_range(0..scenes.len())],
        }
    }

    /// A scene no record has: a retired code string or a numeric id never issued.
    pub fn unknown_scene(&self, account: usize, rng: &mut impl Rng) -> String {
        let n = rng.gen_range(0..20);
        if rng.gen_bool(0.5) {
            let code = &self.brands[self.accounts[account].brand].code;
            format!("retired_{code}_{n:02}")
        } else {
            (UNKNOWN_SCENE_ID + n).to_string()
        }
    }

    /// An article of the account published by `t`: the latest push most often, the first
    /// article of a push most often (seed 000: first articles are opened most).
    pub fn pick_article(&self, account: usize, t: i64, rng: &mut impl Rng) -> &ArticleRecord {
        let pushes = &self.accounts[account].pushes;
        let published = pushes.partition_point(|p| p.published_at <= t).max(1);
        let push = if rng.gen_bool(0.6) {
            &pushes[published - 1]
        } else {
            &pushes[rng.gen_range(0..published)]
        };
        let n = push.articles.len();
        let pos = if n == 1 || rng.gen_bool(0.7) {
            0
        } else {
            rng.gen_range(1..n)
        };
        &self.articles[push.articles[pos]]
    }

    /// An article of a push no record has (sent by another tool): (id, msgid, idx).
    pub fn unknown_article(&self, account: usize, rng: &mut impl Rng) -> (String, i64, i32) {
        let msgid = 1_000_000 + rng.gen_range(0..50);
        let app_id = &self.accounts[account].record.app_id;
        (format!("{app_id}_{msgid}_1"), msgid, 1)
    }

    /// The associate a fan talks to: the bound one, else one of the brand's active
    /// associates by fan number (every fan of a brand keeps one associate).
    pub fn associate_of(&self, account: usize, fan: u32) -> &AssociateRecord {
        &self.associates[self.associate_index_of(account, fan)]
    }

    /// Like [`World::associate_of`], the index into [`World::associates`].
    pub fn associate_index_of(&self, account: usize, fan: u32) -> usize {
        let bound = self.fan(account, fan).and_then(|f| f.associate);
        let active = &self.brands[self.accounts[account].brand].active_associates;
        bound.unwrap_or_else(|| active[fan as usize % active.len()])
    }

    /// The index into [`World::associates`] of a userid, if a record has it.
    pub fn associate_index(&self, userid: &str) -> Option<usize> {
        self.associate_ids.get(userid).copied()
    }

    /// A WeCom userid no record has (an associate HR has not exported yet).
    pub fn unknown_associate(&self, rng: &mut impl Rng) -> String {
        format!("newhire{:02}", rng.gen_range(0..20))
    }

    /// The category of an account's button key, as the button records resolve it.
    pub fn button_category(&self, app_id: &str, key: &str) -> Option<MenuCategory> {
        self.buttons_by_key
            .get(&(app_id.to_string(), key.to_string()))
            .copied()
    }

    /// The channel of a scene, as the scene records resolve it.
    pub fn scene_channel(&self, scene: &str) -> Option<SceneChannel> {
        self.scenes_by_key.get(scene).copied()
    }

    /// Whether an article record has this id.
    pub fn has_article(&self, article_id: &str) -> bool {
        self.article_ids.contains(article_id)
    }

    /// Whether an associate record has this userid.
    pub fn has_associate(&self, userid: &str) -> bool {
        self.associate_ids.contains_key(userid)
    }
}

/// The source group the BI views report a `subscribe_scene` under (`fan_follow_history`
/// in the views' migration): `search`, `qr`, `paid_media`, `article`, `unknown` (empty) or
/// `other`, so the ground truth speaks the views' language.
pub fn follow_source_group(source: &str) -> &'static str {
    match source {
        "ADD_SCENE_SEARCH" | "search" => "search",
        "ADD_SCENE_QR_CODE" | "qr" => "qr",
        s if s.starts_with("qr_") => "qr",
        "ADD_SCENE_WECHAT_ADVERTISEMENT" | "ad" | "paid_media" => "paid_media",
        "ADD_SCENE_PROFILE_LINK" | "ADD_SCENE_PROFILE_ITEM" | "ADD_SCENE_REPRINT" | "article" => {
            "article"
        }
        "" => "unknown",
        _ => "other",
    }
}

/// Splits `total` in proportion to `weights`, exactly (largest remainders, ties to the
/// earlier weight): shares the seed gives as percentages come out to the unit.
pub fn apportion(total: usize, weights: &[f64]) -> Vec<usize> {
    let sum: f64 = weights.iter().sum();
    if sum <= 0.0 || weights.is_empty() {
        return vec![0; weights.len()];
    }
    let exact: Vec<f64> = weights.iter().map(|w| total as f64 * w / sum).collect();
    let mut out: Vec<usize> = exact.iter().map(|x| x.floor() as usize).collect();
    let mut order: Vec<usize> = (0..weights.len()).collect();
    order.sort_by(|&i, &j| {
        let (ri, rj) = (exact[i] - exact[i].floor(), exact[j] - exact[j].floor());
        rj.total_cmp(&ri).then(i.cmp(&j))
    });
    let given: usize = out.iter().sum();
    for &i in order.iter().cycle().take(total.saturating_sub(given)) {
        out[i] += 1;
    }
    out
}

/// `counts[i]` copies of `values[i]`, in order.
fn expand<T: Copy, const N: usize>(counts: Vec<usize>, values: [T; N]) -> Vec<T> {
    counts
        .into_iter()
        .zip(values)
        .flat_map(|(n, v)| std::iter::repeat_n(v, n))
        .collect()
}

/// A standard normal draw (Box–Muller): lognormal propensities, skills and delays.
pub fn standard_normal(rng: &mut impl Rng) -> f64 {
    let u1 = 1.0 - rng.gen::<f64>(); // (0, 1]: ln is finite
    let u2: f64 = rng.gen();
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

/// A publish time in [lo, hi): an hour drawn by [`PUSH_HEATMAP`] (Asia/Shanghai), then a
/// moment in it; uniform when the window holds no hour brands push in.
fn publish_time(lo: i64, hi: i64, rng: &mut impl Rng) -> i64 {
    const HOUR: i64 = 3_600_000;
    if hi <= lo + 1 {
        return lo;
    }
    let mut cells = Vec::new();
    let mut h = (lo + SHANGHAI_OFFSET_MS).div_euclid(HOUR) * HOUR - SHANGHAI_OFFSET_MS;
    while h < hi {
        let (from, to) = (h.max(lo), (h + HOUR).min(hi));
        let c = shanghai(h);
        let weight = PUSH_HEATMAP[c.hour as usize][c.weekday as usize - 1];
        if weight > 0.0 && to > from {
            cells.push((from, to, weight * (to - from) as f64 / HOUR as f64));
        }
        h += HOUR;
    }
    match WeightedIndex::new(cells.iter().map(|c| c.2)) {
        Ok(pick) => {
            let (from, to, _) = cells[pick.sample(rng)];
            rng.gen_range(from..to)
        }
        Err(_) => rng.gen_range(lo..hi),
    }
}

pub use wxpulse_runtime::calendar::{
    month_start_ms, next_month, shanghai, Civil, SHANGHAI_OFFSET_MS,
};

/// A fan's openid on an account (raw: the generator plays WeChat).
pub fn openid(app_id: &str, fan: u32) -> String {
    format!("o{app_id}_{fan:06}")
}

#[cfg(test)]
mod tests;
