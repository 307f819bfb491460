//! The dimension records the gateway reports from WeChat's and WeCom's own callbacks,
//! kept on topics apart from the CRM's records so they never overwrite a CRM field:
//! follows and unfollows (merged into the fan's profile by the later time), and an
//! associate's external contacts (WeCom customers; no service looks them up, `wxpulse dims
//! mirror` copies them into ClickHouse's `associate_contact_events`). A backfill may
//! publish either with `wxpulse dims load`.

use serde::{Deserialize, Serialize};

/// Which way a [`FanFollowRecord`] goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum FollowKind {
    /// `subscribe`.
    #[serde(rename = "FOLLOW")]
    Follow,
    /// `unsubscribe`.
    #[serde(rename = "UNFOLLOW")]
    Unfollow,
}

impl FollowKind {
    /// The `kind` of `fan_follow_events` and the last part of the record's key.
    pub const fn as_str(self) -> &'static str {
        match self {
            FollowKind::Follow => "follow",
            FollowKind::Unfollow => "unfollow",
        }
    }
}

/// Splits a fan-follow key (`app_id|openid|follow`, what [`DimensionRecord::key`] makes)
/// back into its AppID, openid and kind; `None` when it is not one.
pub fn split_follow_key(key: &str) -> Option<(&str, &str, FollowKind)> {
    let (fan, kind) = key.rsplit_once('|')?;
    let kind = match kind {
        "follow" => FollowKind::Follow,
        "unfollow" => FollowKind::Unfollow,
        _ => return None,
    };
    let (app_id, openid) = fan.split_once('|')?;
    Some((app_id, openid, kind))
}

/// A follow or unfollow WeChat reported through the gateway (`dim_fan_follow` v1); key
/// `app_id|openid|follow` or `…|unfollow`, so compaction keeps a fan's latest of each. A
/// topic apart from the CRM's profiles: the gateway knows when, never the CRM's fields, and
/// must not overwrite them. The openid is raw here; services keep only its pseudonym.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FanFollowRecord {
    /// AppID.
    pub app_id: String,
    /// Raw openid.
    pub openid: String,
    /// Follow or unfollow.
    pub kind: FollowKind,
    /// When, ms (the callback's CreateTime).
    pub at: i64,
    /// `subscribe_scene` when the callback tells it (`ADD_SCENE_QR_CODE`).
    #[serde(default)]
    pub follow_source: Option<String>,
    /// When the gateway received it, ms.
    #[serde(default)]
    pub updated_at: i64,
}

/// What happened to an associate–customer pair.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ContactChange {
    /// `add_external_contact`: the customer is now the associate's contact.
    #[serde(rename = "ADDED")]
    Added,
    /// `del_external_contact`: the associate deleted the customer.
    #[serde(rename = "REMOVED_BY_ASSOCIATE")]
    RemovedByAssociate,
    /// `del_follow_user`: the customer deleted the associate.
    #[serde(rename = "REMOVED_BY_CUSTOMER")]
    RemovedByCustomer,
    /// A symbol this build does not know (a later schema's); never written by wxpulse.
    #[serde(rename = "OTHER", other)]
    Other,
}

impl ContactChange {
    /// The `change` of `associate_contact_events`.
    pub const fn as_str(self) -> &'static str {
        match self {
            ContactChange::Added => "added",
            ContactChange::RemovedByAssociate => "removed_by_associate",
            ContactChange::RemovedByCustomer => "removed_by_customer",
            ContactChange::Other => "other",
        }
    }

    /// The last part of the record's key: either removal replaces the other, so
    /// compaction keeps a pair's latest addition and latest removal.
    pub const fn key_suffix(self) -> &'static str {
        match self {
            ContactChange::Added => "added",
            ContactChange::RemovedByAssociate | ContactChange::RemovedByCustomer => "removed",
            ContactChange::Other => "other",
        }
    }
}

/// A change of one of an associate's external contacts (`dim_associate_contact` v1); key
/// `corp_id|userid|external_userid|added` or `…|removed`. The ExternalUserID is raw here
/// (it is the `openid` of the corp's WeCom events); the mirror keeps only its pseudonym,
/// the same one those events get, so contacts join their scans.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AssociateContactRecord {
    /// CorpID.
    pub corp_id: String,
    /// The associate's WeCom userid.
    pub userid: String,
    /// The customer's raw ExternalUserID.
    pub external_userid: String,
    /// Added, or removed by either side.
    pub change: ContactChange,
    /// When, ms (the callback's CreateTime).
    pub at: i64,
    /// The contact-me code's State the customer added through, when any.
    #[serde(default)]
    pub state: Option<String>,
    /// When the gateway received it, ms.
    #[serde(default)]
    pub updated_at: i64,
}

impl AssociateContactRecord {
    /// Its Kafka key.
    pub fn key(&self) -> String {
        format!(
            "{}|{}|{}|{}",
            self.corp_id,
            self.userid,
            self.external_userid,
            self.change.key_suffix()
        )
    }
}

/// Splits an associate-contact key back into CorpID, userid and ExternalUserID; `None`
/// when it is not one (a tombstone's key is checked with it).
pub fn split_contact_key(key: &str) -> Option<(&str, &str, &str)> {
    let (pair, kind) = key.rsplit_once('|')?;
    if kind != "added" && kind != "removed" {
        return None;
    }
    let (corp, rest) = pair.split_once('|')?;
    let (userid, external) = rest.split_once('|')?;
    if corp.is_empty() || userid.is_empty() || external.is_empty() || external.contains('|') {
        return None;
    }
    Some((corp, userid, external))
}
