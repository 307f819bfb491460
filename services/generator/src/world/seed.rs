//! The world's seed tables: brands, cities and their malls, names, menu buttons, article
//! titles and campaigns, and the shares the seed reports give (scan channels, articles per
//! push, segments, follow sources, pushes a month, the push-time table). Static data
//! only, apart from the code that builds the world from it.

use wxpulse_runtime::enrich::{CustomerStatus, MenuCategory, SceneChannel};
use wxpulse_runtime::events::MenuEvent;

/// Fictional brands of one luxury group: (name, short code used in ids).
pub(super) const BRANDS: [(&str, &str); 8] = [
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
pub(super) struct City {
    pub(super) code: &'static str,
    pub(super) name: &'static str,
    pub(super) chinese: &'static str,
    pub(super) region: &'static str,
    pub(super) tier: &'static str,
    /// Malls with a store of every brand, one store each.
    pub(super) malls: &'static [&'static str],
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

pub(super) const CITIES: [City; 8] = [
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

pub(super) const SURNAMES: [(&str, &str); 12] = [
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

pub(super) const GIVEN_NAMES: [(&str, &str); 16] = [
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
pub(super) const BUTTONS: [(&str, MenuCategory, MenuEvent, &str); 9] = [
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
pub(super) const BUTTON_WEIGHTS: [f64; 9] = [15.0, 15.0, 15.0, 11.0, 11.0, 11.0, 7.34, 7.33, 7.33];

/// Keys of buttons taken out of the menu that old clients still send: no record has them.
pub(super) const RETIRED_BUTTONS: [(&str, MenuEvent); 3] = [
    ("SHOP_LEGACY_SALE", MenuEvent::Click),
    ("https://mall.{code}.example.com/legacy", MenuEvent::View),
    ("pages/legacy/index", MenuEvent::ViewMiniprogram),
];

/// Share of QR scans per channel (no seed figure; stores and associates lead offline).
pub(super) const SCAN_CHANNELS: [(SceneChannel, f64); 7] = [
    (SceneChannel::Store, 30.0),
    (SceneChannel::Associate, 30.0),
    (SceneChannel::Event, 10.0),
    (SceneChannel::Article, 8.0),
    (SceneChannel::Ad, 7.0),
    (SceneChannel::Packaging, 8.0),
    (SceneChannel::Payment, 7.0),
];

/// Articles per push: 1, 2, 3 (seed 000: 74.32% and 14.49%; the rest here 3).
pub(super) const ARTICLES_PER_PUSH: [f64; 3] = [74.32, 14.49, 11.19];

pub(super) const TITLES: [&str; 10] = [
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

pub(super) const CAMPAIGNS: [&str; 5] = [
    "spring_collection",
    "qixi_gifting",
    "aw_preview",
    "double11",
    "chinese_new_year",
];

/// Relationship segments (seed 002) and their shares.
pub(super) const STATUSES: [(CustomerStatus, f64); 3] = [
    (CustomerStatus::Prospect, 80.0),
    (CustomerStatus::Customer, 17.0),
    (CustomerStatus::Vip, 3.0),
];

/// WeChat `subscribe_scene` values with the seed's new-follower mix (seed 000: search
/// 41.4%, QR code 27.7%, paid media 1.15%); the rest spread over article and other
/// sources. `ADD_SCENE_PAID` is a follow after a payment, not paid media: the BI views
/// group scenes with [`follow_source_group`](super::follow_source_group).
pub(super) const FOLLOW_SOURCES: [(&str, f64); 10] = [
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
pub(super) const FOLLOW_IN_SPAN: f64 = 0.10;

/// Share of fans who unfollow at a random time of the span, pushes aside.
pub(super) const BACKGROUND_UNFOLLOW: f64 = 0.003;

/// Share of profiled fans whose birthday the CRM holds (`dim_fan_profile` v2): not a seed
/// figure, enough for the demo's birthday list to have rows every day.
pub(super) const BIRTHDAY_SHARE: f64 = 0.6;

/// Share of the fans a push reaches who unfollow within 24 h of it (seed 000: 0.4%).
pub const UNFOLLOW_AFTER_PUSH: f64 = 0.004;

/// Pushes a month: a service account uses all 4 WeChat allows with the seed's odds, else
/// 3; subscription accounts push twice (seed 000: 65.71% of brands use all 4, every brand
/// pushes at least twice).
pub(super) const PUSHES_PER_MONTH: (f64, f64, f64) = (4.0, 3.0, 2.0);
/// Share of pushes sent to a segment (VIPs or customers) only: no seed figure; enough that
/// a month has both kinds to compare (seed 000 compares their engagement).
pub(super) const SEGMENTED_PUSHES: f64 = 0.25;
/// Of the segmented pushes, those to VIPs (the rest go to customers).
pub(super) const VIP_OF_SEGMENTED: f64 = 0.67;

/// Odds that a service account uses all its pushes (seed 000).
pub(super) const ALL_FOUR_PUSHES: f64 = 0.6571;

/// Spread of the fans' activity propensity: the standard deviation of its logarithm.
/// Tuned on the default spec (20,000 fans an account, 2.5 interactions a fan a month) so
/// that about 9.33% of followers interact more than 4 times in a calendar month (seed 000);
/// most fans interact 0–2 times.
pub const ACTIVITY_SIGMA: f64 = 2.5;

/// Propensities are capped at this many standard deviations: a long tail, not a single fan
/// with a tenth of the traffic.
pub(super) const ACTIVITY_CAP_Z: f64 = 3.0;

/// Spread of associates' skill (log scale of how often their code is scanned).
pub(super) const SKILL_SCAN_SIGMA: f64 = 0.9;

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
pub(super) const FIRST_MSGID: i64 = 2_650_000_001;
/// First numeric scene id; unknown numeric scenes start at [`UNKNOWN_SCENE_ID`].
pub(super) const FIRST_SCENE_ID: u32 = 1001;
pub(super) const UNKNOWN_SCENE_ID: u32 = 900_000;

/// A day in ms.
pub const DAY_MS: i64 = 86_400_000;
