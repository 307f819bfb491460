//! How rows name the world's things: a segment, a follow source's group, a fan's openid.

use wxpulse_runtime::enrich::CustomerStatus;

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

/// A fan's openid on an account (raw: the generator plays WeChat).
pub fn openid(app_id: &str, fan: u32) -> String {
    format!("o{app_id}_{fan:06}")
}
