//! Article reads: the seed's open rates and read depth, and the planning of reads per
//! push (push readers, readers from elsewhere, reads again, reads of unknown articles).

use rand::distributions::WeightedIndex;
use rand::prelude::*;
use wxpulse_runtime::events::ReadSource;

use super::model::{Article, Read, What};
use super::planner::Planner;
use crate::world::{apportion, standard_normal, DAY_MS};

/// Open rate of a single-article push: push readers / fans reached (seed 000: 10.26%).
pub const OPEN_SINGLE: f64 = 0.1026;
/// Open rate of the first article of a multi-article push (seed 000: 10.54%).
pub const OPEN_MULTI_FIRST: f64 = 0.1054;
/// Cumulative open rate of a multi-article push: distinct push readers of any of its
/// articles / fans reached (seed 000: 15.18%).
pub const OPEN_MULTI_CUMULATIVE: f64 = 0.1518;
/// Segmented pushes interest their fans more: the seed's engagement rates, segmented
/// 7.86% vs unsegmented 6.33%, as a lift on every rate of a segmented push.
pub const SEGMENTED_LIFT: f64 = 7.86 / 6.33;
/// Share of a multi-article push's first-article readers who also open a later article.
const SECOND_ARTICLE_TOO: f64 = 0.10;
/// Later articles of a 3-article push: how readers of a non-first article split.
const LATER_POSITIONS: [f64; 2] = [0.6, 0.4];
/// Push readers take at most this share of the read budget, so other sources always
/// have some reads.
const PUSH_READS_CAP: f64 = 0.95;
/// Fans who open a push's article elsewhere than from the push (a chat, Moments, search,
/// the history), per push reader; fewer when the read budget runs out.
const OTHER_SOURCE_READERS: f64 = 0.10;
/// Where fans who did not open the push message find the article.
const OTHER_SOURCES: [(ReadSource, f64); 4] = [
    (ReadSource::Chat, 35.0),
    (ReadSource::Moments, 35.0),
    (ReadSource::Search, 10.0),
    (ReadSource::History, 20.0),
];
/// Where readers open an article again.
const REREAD_SOURCES: [(ReadSource, f64); 5] = [
    (ReadSource::Push, 65.0),
    (ReadSource::History, 15.0),
    (ReadSource::Chat, 10.0),
    (ReadSource::Moments, 7.0),
    (ReadSource::Search, 3.0),
];
/// Read depth, screens: a Weibull through the seed's two points (seed 000: 20% of readers
/// lost by 3.27 screens, 50% by 8.87), survival S(x) = exp(-(x/scale)^shape).
pub const DEPTH_POINTS: [(f64, f64); 2] = [(3.27, 0.8), (8.87, 0.5)];
/// Deeper than this no one scrolls (an article is not endless).
const MAX_DEPTH: f64 = 60.0;

/// The Weibull (shape, scale) through [`DEPTH_POINTS`]: from -ln S = (x/scale)^shape at both.
pub fn depth_weibull() -> (f64, f64) {
    let [(x1, s1), (x2, s2)] = DEPTH_POINTS;
    let shape = (s2.ln() / s1.ln()).ln() / (x2 / x1).ln();
    let scale = x1 / (-s1.ln()).powf(1.0 / shape);
    (shape, scale)
}

impl Planner<'_> {
    fn depth(&mut self, shape: f64, scale: f64) -> f32 {
        let u = 1.0 - self.rng.gen::<f64>();
        (scale * (-u.ln()).powf(1.0 / shape)).min(MAX_DEPTH) as f32
    }

    fn read(&mut self, article: usize, source: ReadSource, depth: f32, again: bool) -> Read {
        let per_screen = 15.0 * (0.5 * standard_normal(&mut self.rng)).exp();
        let (share, favorite, cta) = if again {
            (0.01, 0.005, 0.03)
        } else {
            (0.04, 0.02, 0.06)
        };
        Read {
            article: Article::Known(article),
            source,
            depth,
            seconds: ((f64::from(depth) * per_screen).round() as i64).clamp(3, 3_600),
            shared: self.rng.gen_bool(share),
            favorited: self.rng.gen_bool(favorite),
            cta: self.rng.gen_bool(cta),
        }
    }

    /// Exactly `budget` article reads: each push's readers at the seed's open rates (scaled
    /// down when the budget cannot pay for them), fans who find its articles elsewhere,
    /// then readers opening articles again.
    pub(super) fn reads(&mut self, budget: usize) {
        if budget == 0 {
            return;
        }
        let (shape, scale) = depth_weibull();
        let world = self.world;
        // Per push: the fans it reached (following when it went out, in its segment) and
        // the readers the seed's rates ask for.
        struct Target {
            account: usize,
            push: usize,
            at: i64,
            reached: Vec<u32>,
            cumulative: f64,
            first: f64,
            second_too: f64,
        }
        let mut targets = Vec::new();
        for (a, account) in world.accounts.iter().enumerate() {
            for (p, push) in account.pushes.iter().enumerate() {
                let at = push.published_at + self.offset;
                if at >= self.end {
                    continue;
                }
                let reached: Vec<u32> = (0..world.fans[a].len() as u32)
                    .filter(|&f| match world.fan(a, f) {
                        None => push.segment.is_none(),
                        Some(fan) => {
                            push.segment.is_none_or(|s| s == fan.status)
                                && fan.follows_at(push.published_at)
                        }
                    })
                    .collect();
                let fans_reached = world.articles[push.articles[0]].fans_reached as f64;
                let lift = if push.segment.is_some() {
                    SEGMENTED_LIFT
                } else {
                    1.0
                };
                let (cumulative, first) = if push.articles.len() == 1 {
                    (OPEN_SINGLE, OPEN_SINGLE)
                } else {
                    (OPEN_MULTI_CUMULATIVE, OPEN_MULTI_FIRST)
                };
                let first = first * lift * fans_reached;
                targets.push(Target {
                    account: a,
                    push: p,
                    at,
                    reached,
                    cumulative: cumulative * lift * fans_reached,
                    first,
                    second_too: if push.articles.len() > 1 {
                        SECOND_ARTICLE_TOO * first
                    } else {
                        0.0
                    },
                });
            }
        }
        let demand: f64 = targets.iter().map(|t| t.cumulative + t.second_too).sum();
        let factor = if demand > 0.0 {
            (PUSH_READS_CAP * budget as f64 / demand).min(1.0)
        } else {
            1.0
        };
        // First reads: (account, fan, article, time, depth, follows until, from the push).
        let mut firsts: Vec<(usize, u32, usize, i64, f32, i64, bool)> = Vec::new();
        let mut by_push: Vec<(usize, Vec<u32>)> = Vec::new(); // target → its readers
        for (ti, t) in targets.iter().enumerate() {
            let push = &world.accounts[t.account].pushes[t.push];
            let n = push.articles.len();
            let readers = ((t.cumulative * factor).round() as usize).min(t.reached.len());
            let first = ((t.first * factor).round() as usize).min(readers);
            let both = ((t.second_too * factor).round() as usize).min(first);
            // Weighted sampling without replacement (Efraimidis–Spirakis): the active read.
            let mut keyed: Vec<(f64, u32)> = t
                .reached
                .iter()
                .map(|&f| {
                    let u = 1.0 - self.rng.gen::<f64>();
                    (-u.ln() / world.activity[t.account][f as usize], f)
                })
                .collect();
            if readers < keyed.len() && readers > 0 {
                keyed.select_nth_unstable_by(readers - 1, |x, y| x.0.total_cmp(&y.0));
            }
            keyed.truncate(readers);
            keyed.sort_by(|x, y| x.0.total_cmp(&y.0).then(x.1.cmp(&y.1)));
            let later = WeightedIndex::new(&LATER_POSITIONS[..(n.max(2) - 1).min(2)])
                .expect("positive weights");
            let mut reads: Vec<(u32, usize)> = Vec::new();
            for (k, &(_, fan)) in keyed.iter().enumerate() {
                if k < first {
                    reads.push((fan, 0));
                    if k < both {
                        reads.push((fan, 1 + later.sample(&mut self.rng)));
                    }
                } else {
                    reads.push((fan, 1 + later.sample(&mut self.rng)));
                }
            }
            for (fan, pos) in reads {
                let (_, until) = self.following(t.account, fan);
                let Some(when) = self.after(t.at, until, 2.0 * 3_600_000.0, 1.3) else {
                    continue;
                };
                let depth = self.depth(shape, scale);
                firsts.push((t.account, fan, push.articles[pos], when, depth, until, true));
            }
            by_push.push((ti, keyed.iter().map(|k| k.1).collect()));
        }
        while firsts.len() > budget {
            let i = self.rng.gen_range(0..firsts.len());
            firsts.swap_remove(i);
        }
        for &(account, fan, article, when, depth, _, _) in &firsts {
            let read = self.read(article, ReadSource::Push, depth, false);
            self.push_at_client(account, fan, when, What::Read(read));
        }
        let mut planned = firsts.len();
        // Fans who find a push's article elsewhere, shared to a chat or Moments, searched.
        let other =
            ((OTHER_SOURCE_READERS * planned as f64).round() as usize).min(budget - planned);
        let weights: Vec<f64> = by_push.iter().map(|(_, r)| r.len() as f64).collect();
        let sources = WeightedIndex::new(OTHER_SOURCES.map(|s| s.1)).expect("weights");
        for ((ti, readers), n) in by_push.iter().zip(apportion(other, &weights)) {
            let t = &targets[*ti];
            let push = &world.accounts[t.account].pushes[t.push];
            let Ok(pick) = WeightedIndex::new(
                t.reached
                    .iter()
                    .map(|&f| world.activity[t.account][f as usize]),
            ) else {
                continue;
            };
            let mut seen: std::collections::HashSet<u32> = readers.iter().copied().collect();
            for _ in 0..n {
                let Some(fan) = (0..20)
                    .map(|_| t.reached[pick.sample(&mut self.rng)])
                    .find(|f| !seen.contains(f))
                else {
                    continue;
                };
                seen.insert(fan);
                let (_, until) = self.following(t.account, fan);
                let Some(when) = self.after(t.at, until, DAY_MS as f64, 1.0) else {
                    continue;
                };
                let pos = if push.articles.len() == 1 || self.rng.gen_bool(0.7) {
                    0
                } else {
                    self.rng.gen_range(1..push.articles.len())
                };
                let depth = self.depth(shape, scale);
                let source = OTHER_SOURCES[sources.sample(&mut self.rng)].0;
                firsts.push((
                    t.account,
                    fan,
                    push.articles[pos],
                    when,
                    depth,
                    until,
                    false,
                ));
                let read = self.read(push.articles[pos], source, depth, false);
                self.push_at_client(t.account, fan, when, What::Read(read));
                planned += 1;
            }
        }
        // The rest: readers opening an article again, no deeper than their first read, from
        // the push only if they had opened it from there (open rates count push readers).
        let again = WeightedIndex::new(REREAD_SOURCES.map(|s| s.1)).expect("weights");
        let elsewhere =
            WeightedIndex::new(REREAD_SOURCES[1..].iter().map(|s| s.1)).expect("weights");
        while planned < budget {
            if firsts.is_empty() {
                self.orphan_read();
                planned += 1;
                continue;
            }
            let (account, fan, article, first, depth, until, from_push) =
                firsts[self.rng.gen_range(0..firsts.len())];
            let when = self
                .after(first, until, 6.0 * 3_600_000.0, 1.2)
                .unwrap_or(first);
            let depth = depth * self.rng.gen_range(0.2f32..=1.0);
            let source = if from_push {
                REREAD_SOURCES[again.sample(&mut self.rng)].0
            } else {
                REREAD_SOURCES[1 + elsewhere.sample(&mut self.rng)].0
            };
            let read = self.read(article, source, depth, true);
            self.push_at_client(account, fan, when, What::Read(read));
            planned += 1;
        }
        // Now and then a read of an article no record has (sent by another tool).
        for e in &mut self.out {
            if let What::Read(r) = &mut e.what {
                if self.rng.gen_bool(self.spec.unknown_dimension_share) {
                    let (id, msgid, idx) = self
                        .world
                        .unknown_article(e.account as usize, &mut self.rng);
                    r.article = Article::Unknown { id, msgid, idx };
                }
            }
        }
    }

    /// A read when no push reached anyone: a fan, then an article already published.
    fn orphan_read(&mut self) {
        let (shape, scale) = depth_weibull();
        let (account, fan, lo, hi) = self.pick_fan();
        let first = self.world.accounts[account]
            .pushes
            .first()
            .map_or(self.start, |p| p.published_at + self.offset);
        let from = lo.max(first);
        let when = if from < hi {
            self.rng.gen_range(from..hi)
        } else {
            first.clamp(self.start, self.end - 1)
        };
        let article = self
            .world
            .pick_article(account, when - self.offset, &mut self.rng);
        let index = self
            .world
            .articles
            .iter()
            .position(|a| a.article_id == article.article_id)
            .expect("the world's article");
        let depth = self.depth(shape, scale);
        let read = self.read(index, ReadSource::History, depth, false);
        self.push_at_client(account, fan, when, What::Read(read));
    }
}
