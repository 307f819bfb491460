//! The fans' side of the ground truth: interactions per fan and month, monthly and
//! lifetime activity per account, and follows and unfollows from the profiles — the
//! tally's first and third sections, apart from the reads and the chats.

use std::collections::{BTreeMap, HashMap};

use super::report::{AccountActivity, MonthActivity, Report};
use crate::generate::plan::Planned;
use crate::world::{follow_source_group, month_start_ms, next_month, shanghai, Fan, World};

/// A fan of an account.
pub(super) type FanKey = (u32, u32);

/// Interactions (valid events of the four streams) per fan and month (`yyyymm`, by event
/// time, Asia/Shanghai): what monthly activity and the social-selling funnel count.
pub(crate) fn interactions(planned: &[Planned]) -> HashMap<FanKey, BTreeMap<u32, u64>> {
    let mut per_fan: HashMap<FanKey, BTreeMap<u32, u64>> = HashMap::new();
    for e in planned {
        *per_fan
            .entry((e.account, e.fan))
            .or_default()
            .entry(shanghai(e.client).yyyymm())
            .or_default() += 1;
    }
    per_fan
}

/// Whether a profile follows at `end`: followed before it, and not unfollowed before it.
pub(super) fn follows_at_end(f: &Fan, end: i64) -> bool {
    f.followed_at < end && f.unfollowed_at.is_none_or(|u| u >= end)
}

/// Fan activity per account and month, and per account over the span.
pub(super) fn tally_activity(
    r: &mut Report,
    world: &World,
    per_fan: &HashMap<FanKey, BTreeMap<u32, u64>>,
) {
    let (_, span_end) = world.span;
    // Account → month → activity.
    let mut months: BTreeMap<u32, BTreeMap<u32, MonthActivity>> = BTreeMap::new();
    for ((a, _), by_month) in per_fan {
        for (&m, &n) in by_month {
            let cell = months.entry(*a).or_default().entry(m).or_default();
            cell.interactions += n;
            cell.interacting_fans += 1;
            cell.fans_over_4 += u64::from(n > 4);
            let bucket = match n {
                1..=4 => n as usize - 1,
                5..=9 => 4,
                10..=19 => 5,
                _ => 6,
            };
            cell.fans_by_interactions[bucket] += 1;
        }
    }
    for (a, account) in world.accounts.iter().enumerate() {
        let a32 = a as u32;
        let by_month = months.remove(&a32).unwrap_or_default();
        let mut out = BTreeMap::new();
        for (m, mut cell) in by_month {
            let end = month_start_ms(next_month(m));
            for (f, fan) in world.fans[a].iter().enumerate() {
                let Some(fan) = fan else { continue };
                if !follows_at_end(fan, end) {
                    continue;
                }
                cell.followers += 1;
                let counts = per_fan.get(&(a32, f as u32));
                let this = counts.and_then(|c| c.get(&m)).copied().unwrap_or(0);
                let upto: u64 = counts.map_or(0, |c| c.range(..=m).map(|(_, n)| n).sum());
                cell.monthly_active_fans += u64::from(this > 4);
                cell.lifetime_active_fans += u64::from(upto > 4);
            }
            out.insert(m, cell);
        }
        let mut total = AccountActivity::default();
        for (f, fan) in world.fans[a].iter().enumerate() {
            let n: u64 = per_fan
                .get(&(a32, f as u32))
                .map_or(0, |c| c.values().sum());
            total.interactions += n;
            total.interacting_fans += u64::from(n > 0);
            if fan.as_ref().is_some_and(|f| follows_at_end(f, span_end)) {
                total.followers += 1;
                total.lifetime_active_fans += u64::from(n > 4);
            }
        }
        r.fan_activity.insert(account.record.app_id.clone(), out);
        r.accounts.insert(account.record.app_id.clone(), total);
    }
}

/// Follows and unfollows from the profiles, per account, day and source; returns the
/// span's new follows by source group.
pub(super) fn tally_follows(r: &mut Report, world: &World) -> BTreeMap<String, u64> {
    let (span_start, span_end) = world.span;
    // Follows and unfollows from the profiles.
    let from = month_start_ms(shanghai(span_start).yyyymm());
    let mut in_span_sources: BTreeMap<String, u64> = BTreeMap::new();
    for (a, account) in world.accounts.iter().enumerate() {
        let days = r.follows.entry(account.record.app_id.clone()).or_default();
        for fan in world.fans[a].iter().flatten() {
            if (from..span_end).contains(&fan.followed_at) {
                days.entry(shanghai(fan.followed_at).date())
                    .or_default()
                    .entry(fan.source.to_string())
                    .or_default()
                    .new_follows += 1;
            }
            if (span_start..span_end).contains(&fan.followed_at) {
                *in_span_sources
                    .entry(follow_source_group(fan.source).to_string())
                    .or_default() += 1;
            }
            if let Some(u) = fan.unfollowed_at.filter(|u| (from..span_end).contains(u)) {
                days.entry(shanghai(u).date())
                    .or_default()
                    .entry(fan.source.to_string())
                    .or_default()
                    .unfollows += 1;
            }
        }
    }
    in_span_sources
}
