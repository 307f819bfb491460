//! The headline figures, pooled from the other sections' tallies: the tally's last
//! section, so the seed's shapes read apart from how each figure is counted.

use std::collections::{BTreeMap, HashMap};

use super::associates::{quantile, ChatTally};
use super::fans::{follows_at_end, FanKey};
use super::reads::ReadTally;
use super::report::Report;
use crate::spec::Spec;
use crate::world::{World, DAY_MS};

fn ratio(n: f64, d: f64) -> f64 {
    if d > 0.0 {
        n / d
    } else {
        0.0
    }
}

/// The headline figures from the report's tallies and what the sections handed on.
pub(super) fn tally_shapes(
    r: &mut Report,
    spec: &Spec,
    world: &World,
    per_fan: &HashMap<FanKey, BTreeMap<u32, u64>>,
    reads: ReadTally,
    in_span_sources: BTreeMap<String, u64>,
    chats: ChatTally,
) {
    let (_, span_end) = world.span;
    let ReadTally {
        article_readers,
        sources,
        reads_total,
        unfollow_rates,
    } = reads;
    let ChatTally {
        waits,
        mut all_replies,
        contacts,
    } = chats;
    // Headline figures.
    let s = &mut r.shapes;
    let mut by_month: BTreeMap<u32, u64> = BTreeMap::new();
    for cells in r.fan_activity.values() {
        for (m, c) in cells {
            *by_month.entry(*m).or_default() += c.interactions;
        }
    }
    s.month = by_month
        .iter()
        .max_by_key(|(m, n)| (**n, std::cmp::Reverse(**m)))
        .map_or(0, |(m, _)| *m);
    let (mut active, mut followers) = (0.0, 0.0);
    for cells in r.fan_activity.values() {
        if let Some(c) = cells.get(&s.month) {
            active += c.monthly_active_fans as f64;
            followers += c.followers as f64;
        }
    }
    s.monthly_active_share = ratio(active, followers);
    let (mut lifetime, mut end_followers, mut quiet) = (0.0, 0.0, 0.0);
    for acc in r.accounts.values() {
        lifetime += acc.lifetime_active_fans as f64;
        end_followers += acc.followers as f64;
    }
    for (a, fans) in world.fans.iter().enumerate() {
        for (f, fan) in fans.iter().enumerate() {
            if fan
                .as_ref()
                .is_some_and(|fan| follows_at_end(fan, span_end))
            {
                let n: u64 = per_fan
                    .get(&(a as u32, f as u32))
                    .map_or(0, |c| c.values().sum());
                quiet += f64::from(u8::from(n <= 2));
            }
        }
    }
    s.lifetime_active_share = ratio(lifetime, end_followers);
    s.followers_with_0_to_2 = ratio(quiet, end_followers);
    let mut pooled: BTreeMap<&str, (f64, f64)> = BTreeMap::new();
    for a in r.articles.values() {
        if a.fans_reached <= 0 {
            continue;
        }
        for slot in ["all", a.position_class] {
            let e = pooled.entry(slot).or_default();
            e.0 += a.reads.push_readers as f64;
            e.1 += a.fans_reached as f64;
        }
    }
    let rate = |p: &BTreeMap<&str, (f64, f64)>, k: &str| p.get(k).map_or(0.0, |e| ratio(e.0, e.1));
    s.open_rate_single = rate(&pooled, "single");
    s.open_rate_first = rate(&pooled, "first");
    s.open_rate_non_first = rate(&pooled, "non_first");
    s.open_rate_all_articles = rate(&pooled, "all");
    let mut push_pooled: BTreeMap<&str, (f64, f64)> = BTreeMap::new();
    for p in r.pushes.values() {
        if p.fans_reached <= 0 || p.app_id.is_empty() {
            continue;
        }
        if p.articles_in_push > 1 {
            let e = push_pooled.entry("multi").or_default();
            e.0 += p.reads.push_readers as f64;
            e.1 += p.fans_reached as f64;
        }
        let e = push_pooled
            .entry(if p.target_segment == "none" {
                "unsegmented"
            } else {
                "segmented"
            })
            .or_default();
        e.0 += p.reads.readers as f64;
        e.1 += p.fans_reached as f64;
    }
    s.open_rate_multi_cumulative = rate(&push_pooled, "multi");
    s.engagement_segmented = rate(&push_pooled, "segmented");
    s.engagement_unsegmented = rate(&push_pooled, "unsegmented");
    let (mut pairs, mut at_3, mut at_8) = (0.0, 0.0, 0.0);
    for readers in article_readers.values() {
        for reader in readers.values() {
            pairs += 1.0;
            at_3 += f64::from(u8::from(reader.depth >= 3.27));
            at_8 += f64::from(u8::from(reader.depth >= 8.87));
        }
    }
    s.depth_survival_3_27 = ratio(at_3, pairs);
    s.depth_survival_8_87 = ratio(at_8, pairs);
    s.read_sources = sources
        .into_iter()
        .map(|(k, n)| (k, ratio(n as f64, reads_total as f64)))
        .collect();
    let follows: u64 = in_span_sources.values().sum();
    s.follow_sources = in_span_sources
        .into_iter()
        .map(|(k, n)| (k, ratio(n as f64, follows as f64)))
        .collect();
    s.unfollow_after_push = ratio(unfollow_rates.iter().sum(), unfollow_rates.len() as f64);
    s.waits = waits;
    s.waits_answered = ratio(all_replies.len() as f64, waits as f64);
    all_replies.sort_unstable();
    s.first_reply_median_ms = quantile(&all_replies, 0.5).unwrap_or(0);
    s.first_reply_p90_ms = quantile(&all_replies, 0.9).unwrap_or(0);
    let weeks = ((spec.end_ms - spec.start_ms) as f64 / (7 * DAY_MS) as f64).max(1.0 / 7.0);
    let mut per_week: Vec<f64> = world
        .associates
        .iter()
        .filter(|a| a.active)
        .map(|a| contacts.get(&a.userid).copied().unwrap_or(0) as f64 / weeks)
        .collect();
    per_week.sort_by(f64::total_cmp);
    s.new_contacts_per_week_mean = ratio(per_week.iter().sum(), per_week.len() as f64);
    s.new_contacts_per_week_p90 = per_week
        .get(((0.9 * per_week.len() as f64) as usize).min(per_week.len().saturating_sub(1)))
        .copied()
        .unwrap_or(0.0);
    s.new_contacts_per_week_max = per_week.last().copied().unwrap_or(0.0);
}
