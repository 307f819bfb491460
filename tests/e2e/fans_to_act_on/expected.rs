//! What the two views must return, computed from what the test sent: dates by walking the
//! Asia/Shanghai calendar day by day (not with the views' date arithmetic), purchases,
//! refunds and medians in plain Rust.

use std::collections::BTreeMap;

use wxpulse_e2e::expected_fan_id;
use wxpulse_runtime::calendar::{shanghai, Civil, DAY_MS, SHANGHAI_OFFSET_MS};

use super::APP;

/// Today's day number (days since 1970-01-01, Asia/Shanghai), from this machine's clock.
pub(super) fn today() -> i64 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after 1970")
        .as_millis() as i64;
    (now + SHANGHAI_OFFSET_MS).div_euclid(DAY_MS)
}

/// The instant (ms) of `hour`:00 on day `day`, Asia/Shanghai.
pub(super) fn at(day: i64, hour: i64) -> i64 {
    day * DAY_MS + hour * 3_600_000 - SHANGHAI_OFFSET_MS
}

pub(super) fn civil(day: i64) -> Civil {
    shanghai(at(day, 12))
}

fn leap(year: i64) -> bool {
    (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
}

/// `MM-DD` of a day.
pub(super) fn mm_dd(day: i64) -> String {
    let c = civil(day);
    format!("{:02}-{:02}", c.month, c.day)
}

/// The next day, from `today` on, that is the birthday `mm_dd` (02-29 on 03-01 in a year
/// without it).
fn next_birthday(today: i64, birthday: &str) -> i64 {
    let mm: u32 = birthday[..2].parse().expect("month");
    let dd: u32 = birthday[3..].parse().expect("day");
    (today..today + 400)
        .find(|&d| {
            let c = civil(d);
            (c.month, c.day) == (mm, dd)
                || ((mm, dd) == (2, 29) && !leap(c.year) && (c.month, c.day) == (3, 1))
        })
        .expect("within a year")
}

/// A fan of the birthday scenario, as published.
pub(super) struct BirthdayFan {
    pub(super) openid: &'static str,
    pub(super) status: &'static str,
    pub(super) associate: Option<&'static str>,
    pub(super) followed: Option<i64>,
    pub(super) unfollowed: Option<i64>,
    pub(super) birthday: String,
    /// Listed when the birthday is within 30 days: bound to an associate, following now
    /// (by the profile and the gateway's reports), a birthday, not deleted.
    pub(super) eligible: bool,
}

/// `v_birthdays_upcoming` on `today`.
pub(super) fn birthdays(today: i64, fans: &[BirthdayFan]) -> Vec<String> {
    let mut out: Vec<String> = fans
        .iter()
        .filter(|b| b.eligible)
        .filter_map(|b| {
            let next = next_birthday(today, &b.birthday);
            (next - today <= 30).then(|| {
                format!(
                    "{APP}|{}|{}|{}|{}|{}|{}|Maison",
                    expected_fan_id(b.openid),
                    b.associate.unwrap_or(""),
                    b.status,
                    b.birthday,
                    civil(next).date(),
                    next - today
                )
            })
        })
        .collect();
    out.sort();
    out
}

/// One order record as sent.
#[derive(Clone)]
pub(super) struct Sent {
    pub(super) openid: &'static str,
    pub(super) order_id: String,
    pub(super) purchase: bool,
    pub(super) day: i64,
    pub(super) hour: i64,
    pub(super) amount: i64,
    pub(super) share_code: Option<&'static str>,
}

/// `v_replenishment_due` on `today`, from the records sent and the profiles' (status,
/// associate): each order's first purchase record, unless its refunds add up to its amount;
/// fans with 3 purchase days or more; the median gap, rounded half up.
pub(super) fn replenishment(
    today: i64,
    sent: &[Sent],
    profiles: &BTreeMap<&str, (&str, &str)>,
) -> Vec<String> {
    let mut orders: BTreeMap<(&str, &str), (Option<&Sent>, i64, bool)> = BTreeMap::new();
    for s in sent {
        let o = orders.entry((s.openid, &s.order_id)).or_default();
        if !s.purchase {
            o.1 += s.amount;
            o.2 = true;
        } else if o.0.is_none_or(|p| (p.day, p.hour) > (s.day, s.hour)) {
            o.0 = Some(s);
        }
    }
    let mut by_fan: BTreeMap<&str, Vec<&Sent>> = BTreeMap::new();
    for (first, refunded, any_refund) in orders.into_values() {
        if let Some(p) = first.filter(|p| !(any_refund && refunded >= p.amount)) {
            by_fan.entry(p.openid).or_default().push(p);
        }
    }
    let mut out = Vec::new();
    for (openid, mut purchases) in by_fan {
        purchases.sort_by_key(|p| (p.day, p.hour, p.order_id.clone()));
        let mut days: Vec<i64> = purchases.iter().map(|p| p.day).collect();
        days.dedup();
        if days.len() < 3 {
            continue;
        }
        let mut gaps: Vec<i64> = days.windows(2).map(|w| w[1] - w[0]).collect();
        gaps.sort_unstable();
        let n = gaps.len();
        let median = if n % 2 == 1 {
            gaps[n / 2] as f64
        } else {
            (gaps[n / 2 - 1] + gaps[n / 2]) as f64 / 2.0
        };
        let due = days[n] + (median + 0.5).floor() as i64;
        let last = purchases.last().expect("purchases");
        let (status, bound) = profiles.get(openid).copied().unwrap_or(("unknown", ""));
        let associate = Some(bound)
            .filter(|b| !b.is_empty())
            .or(last.share_code)
            .unwrap_or("");
        if due > today || associate.is_empty() {
            continue;
        }
        out.push(format!(
            "{APP}|{}|{associate}|{status}|{}|{} {:02}:00:00.000|{median}|{}|{}|Maison",
            expected_fan_id(openid),
            purchases.len(),
            civil(last.day).date(),
            last.hour,
            civil(due).date(),
            today - due
        ));
    }
    out.sort();
    out
}
