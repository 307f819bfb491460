//! The accounts' pushes: how many an account sends, when they go out (the seed's push-time
//! table), their articles and targets, and the fans who unfollow after one.

use rand::distributions::WeightedIndex;
use rand::prelude::*;
use rand_chacha::ChaCha8Rng;
use wxpulse_runtime::calendar::{shanghai, SHANGHAI_OFFSET_MS};
use wxpulse_runtime::enrich::{AccountType, ArticleRecord, CustomerStatus};

use super::model::{Push, World};
use super::naming::segment_name;
use super::seed::{
    ALL_FOUR_PUSHES, CAMPAIGNS, DAY_MS, PUSHES_PER_MONTH, PUSH_HEATMAP, TITLES, UNFOLLOW_AFTER_PUSH,
};

impl World {
    /// Pushes of the account over the span: a service account uses all 4 a month with the
    /// seed's odds (else 3), a subscription account 2.
    pub(super) fn push_count(&self, a: usize, rng: &mut ChaCha8Rng, start: i64, end: i64) -> usize {
        let per_month = match self.accounts[a].record.account_type {
            AccountType::Service if rng.gen_bool(ALL_FOUR_PUSHES) => PUSHES_PER_MONTH.0,
            AccountType::Service => PUSHES_PER_MONTH.1,
            _ => PUSHES_PER_MONTH.2,
        };
        let span = end - start;
        ((span as f64 / (30.0 * DAY_MS as f64) * per_month).round() as usize).clamp(1, 120)
    }

    /// The account's pushes, one per `kinds` (articles in it, segment it targets).
    pub(super) fn add_pushes(
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
