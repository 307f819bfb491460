//! The associates' contact changes (`wxpulse.dim.associate_contact`) as rows of
//! `associate_contact_events`: the history of who added or removed whom, for the
//! per-associate contact views. The customer's ExternalUserID is pseudonymised with the
//! services' key, so `contact_id` equals the `fan_id` of the same customer's WeCom events
//! (their `openid` is the ExternalUserID) and contacts join their scans.

use clickhouse::Row;
use serde::Serialize;
use wxpulse_runtime::codec::Registry;
use wxpulse_runtime::enrich::{AssociateContactRecord, Dimension, DimensionRecord};
use wxpulse_runtime::pii::Pseudonymizer;

/// A row of `associate_contact_events`.
#[derive(Debug, Clone, PartialEq, Row, Serialize)]
#[allow(missing_docs)]
pub struct ContactRow {
    pub corp_id: String,
    pub userid: String,
    pub contact_id: u64,
    pub change: &'static str,
    pub at: i64,
    pub state: String,
}

/// The row of a contact change. A tombstone writes nothing: the history keeps what
/// happened, as for follows.
pub fn contact_row(pii: &Pseudonymizer, record: AssociateContactRecord) -> ContactRow {
    ContactRow {
        contact_id: pii.fan_id(&record.external_userid),
        corp_id: record.corp_id,
        userid: record.userid,
        change: record.change.as_str(),
        at: record.at,
        state: record.state.unwrap_or_default(),
    }
}

/// Decodes a framed associate-contact record.
pub fn decode_contact(
    registry: &Registry,
    payload: &[u8],
) -> anyhow::Result<AssociateContactRecord> {
    match DimensionRecord::from_framed(Dimension::AssociateContact, payload, registry) {
        Ok(DimensionRecord::AssociateContact(r)) => Ok(r),
        Ok(_) => anyhow::bail!("not an associate contact"),
        Err(why) => anyhow::bail!(why),
    }
}
