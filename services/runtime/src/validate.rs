//! What makes an interaction invalid. Pure: the caller passes the clock in.
//!
//! Lateness is measured as server_time − client_time (how long the event took to reach the
//! brand), not against this machine's clock, so replaying last month's topic is not "too
//! old". Only server_time is compared with the wall clock, for the future-skew check.

use crate::config::ValidationConfig;
use crate::dlq::{DeadLetterReason as R, Rejection};
use crate::events::Header;

/// 2000-01-01T00:00:00Z in ms: anything earlier is a broken clock, not a late event.
const EPOCH_FLOOR_MS: i64 = 946_684_800_000;

/// Checks the common fields; returns the parsed event_id on success.
pub fn validate(h: &Header<'_>, now_ms: i64, cfg: &ValidationConfig) -> Result<u128, Rejection> {
    if h.event_id.is_empty() {
        return Err(Rejection::new(R::MissingField, "event_id is empty"));
    }
    let Ok(event_id) = uuid::Uuid::try_parse(h.event_id) else {
        return Err(Rejection::new(R::InvalidField, "event_id is not a UUID"));
    };
    if h.app_id.is_empty() {
        return Err(Rejection::new(R::MissingField, "app_id is empty"));
    }
    if h.openid.is_empty() {
        return Err(Rejection::new(R::MissingField, "openid is empty"));
    }
    if h.client_time < EPOCH_FLOOR_MS || h.server_time < EPOCH_FLOOR_MS {
        return Err(Rejection::new(
            R::InvalidField,
            "client_time or server_time before 2000",
        ));
    }
    let skew = cfg.max_future_skew.as_millis() as i64;
    if h.server_time > now_ms + skew {
        return Err(Rejection::new(
            R::FutureTimestamp,
            format!(
                "server_time is {} s ahead of this clock",
                (h.server_time - now_ms) / 1000
            ),
        ));
    }
    if h.client_time > h.server_time + skew {
        return Err(Rejection::new(
            R::FutureTimestamp,
            format!(
                "client_time is {} s after server_time",
                (h.client_time - h.server_time) / 1000
            ),
        ));
    }
    let lateness = h.server_time - h.client_time;
    if lateness > cfg.max_lateness.as_millis() as i64 {
        return Err(Rejection::new(
            R::TooOld,
            format!("arrived {} h after it happened", lateness / 3_600_000),
        ));
    }
    Ok(event_id.as_u128())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    const NOW: i64 = 1_760_000_000_000;

    fn cfg() -> ValidationConfig {
        ValidationConfig {
            max_future_skew: Duration::from_secs(300),
            max_lateness: Duration::from_secs(7 * 86_400),
            max_payload_bytes: 1024,
            unknown_account: crate::config::UnknownAccount::DeadLetter,
        }
    }

    fn header<'a>(event_id: &'a str, client: i64, server: i64) -> Header<'a> {
        Header {
            event_id,
            app_id: "wxa",
            openid: "o",
            unionid: None,
            client_time: client,
            server_time: server,
        }
    }

    const ID: &str = "3f2504e0-4f89-41d3-9a0c-0305e82c3301";

    #[test]
    fn classifies_each_reason() {
        let ok = |h: Header<'_>| validate(&h, NOW, &cfg());
        let reason = |h: Header<'_>| ok(h).expect_err("rejected").reason;
        assert!(ok(header(ID, NOW - 1000, NOW)).is_ok());
        assert_eq!(reason(header("", NOW, NOW)), R::MissingField);
        assert_eq!(reason(header("nope", NOW, NOW)), R::InvalidField);
        assert_eq!(
            reason(Header {
                openid: "",
                ..header(ID, NOW, NOW)
            }),
            R::MissingField
        );
        assert_eq!(reason(header(ID, 5, NOW)), R::InvalidField);
        assert_eq!(reason(header(ID, NOW, NOW + 301_000)), R::FutureTimestamp);
        assert_eq!(reason(header(ID, NOW + 400_000, NOW)), R::FutureTimestamp);
        assert_eq!(reason(header(ID, NOW - 8 * 86_400_000, NOW)), R::TooOld);
    }

    #[test]
    fn replaying_old_data_is_not_too_old() {
        let month_ago = NOW - 30 * 86_400_000;
        assert!(validate(&header(ID, month_ago - 60_000, month_ago), NOW, &cfg()).is_ok());
    }
}
