//! The plan: every valid event the generator will produce — who, when, what — decided
//! before any is encoded, so events can depend on the world and on each other (a read
//! follows its push, a reply its message, a QR follow the profile's follow time).
//!
//! Fans are drawn by activity propensity × the time they follow during the span, and the
//! event falls in that time. Reads are planned per push at the seed's open rates; chats
//! as threads with reply times; QR follows at the profiles' follow times.

use rand::distributions::WeightedIndex;
use rand::prelude::*;
use rand_chacha::ChaCha8Rng;
use wxpulse_runtime::events::{ConversationKind, Direction, ReadSource};

use crate::spec::{Spec, STREAMS};
use crate::world::{apportion, standard_normal, World, DAY_MS};

/// A late event reaches the gateway this long after it happened, at least...
const LATE_MIN_MS: i64 = 3_600_000;
/// ...and at most (well inside the pipeline's 7-day lateness limit).
const LATE_MAX_MS: i64 = 3 * DAY_MS;

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

/// What a planned event is.
pub(crate) enum What {
    Menu,
    Scan { subscribe: bool, scene: Scene },
    Read(Read),
    Chat(Chat),
}

/// A scene a scan carries.
pub(crate) enum Scene {
    /// Index into [`World::scenes`].
    Known(usize),
    /// A code no record has.
    Unknown(String),
}

/// An article read.
pub(crate) struct Read {
    pub article: Article,
    pub source: ReadSource,
    pub depth: f32,
    pub seconds: i64,
    pub shared: bool,
    pub favorited: bool,
    pub cta: bool,
}

/// The article a read carries.
pub(crate) enum Article {
    /// Index into [`World::articles`].
    Known(usize),
    /// An article no record has.
    Unknown { id: String, msgid: i64, idx: i32 },
}

/// A chat message.
pub(crate) struct Chat {
    pub conversation: ConversationKind,
    pub direction: Direction,
    pub associate: Associate,
}

/// The associate of a chat message.
pub(crate) enum Associate {
    /// Official-account conversations have none.
    None,
    /// Index into [`World::associates`].
    Known(usize),
    /// A userid no record has.
    Unknown(String),
}

impl Associate {
    /// The userid the message carries.
    pub fn userid<'w>(&'w self, world: &'w World) -> Option<&'w str> {
        match self {
            Associate::None => None,
            Associate::Known(i) => Some(world.associates[*i].userid.as_str()),
            Associate::Unknown(u) => Some(u.as_str()),
        }
    }
}

/// A valid event: produced once (plus retry copies the pipeline drops), stored once.
pub(crate) struct Planned {
    /// Server time, ms: production order.
    pub server: i64,
    /// Client time, ms: the event time.
    pub client: i64,
    pub account: u32,
    pub fan: u32,
    pub late: bool,
    pub what: What,
}

/// Plans the valid events of `spec` in `world`, in production order (server time).
///
/// `offset` moves the world's times to the events' span (live mode publishes the world
/// first and starts the events later; 0 otherwise).
pub(crate) fn plan(spec: &Spec, world: &World, offset: i64) -> Vec<Planned> {
    let mut p = Planner::new(spec, world, offset);
    let total = spec.events as usize;
    let shares: Vec<f64> = STREAMS.iter().map(|s| s.2).collect();
    let mut counts = apportion(total, &shares); // menu, read, chat, qr
    let mut subscribes = p.qr_follows();
    subscribes.truncate(total);
    // Every QR follow of the span is scanned: the QR stream grows if it must, menus give.
    let mut extra = subscribes.len().saturating_sub(counts[3]);
    counts[3] = counts[3].max(subscribes.len());
    for s in [0, 2, 1] {
        let give = extra.min(counts[s]);
        counts[s] -= give;
        extra -= give;
    }
    let scans = counts[3] - subscribes.len();
    for (account, fan, client, scene) in subscribes {
        p.push_at_client(
            account,
            fan,
            client,
            What::Scan {
                subscribe: true,
                scene,
            },
        );
    }
    p.reads(counts[1]);
    p.chats(counts[2]);
    for _ in 0..scans {
        let (account, fan, lo, hi) = p.pick_fan();
        let scene = p.scene(account);
        let server = p.rng.gen_range(lo..hi);
        p.push_at_server(
            account,
            fan,
            server,
            What::Scan {
                subscribe: false,
                scene,
            },
        );
    }
    for _ in 0..counts[0] {
        let (account, fan, lo, hi) = p.pick_fan();
        let server = p.rng.gen_range(lo..hi);
        p.push_at_server(account, fan, server, What::Menu);
    }
    let mut out = p.out;
    out.sort_by_key(|e| e.server); // stable: ties keep plan order
    out
}

struct Planner<'a> {
    spec: &'a Spec,
    world: &'a World,
    rng: ChaCha8Rng,
    offset: i64,
    start: i64,
    end: i64,
    /// First flat fan index of each account.
    base: Vec<usize>,
    /// Fans by activity × time following in the span, flat over accounts.
    pick: Option<WeightedIndex<f64>>,
    out: Vec<Planned>,
}

impl<'a> Planner<'a> {
    fn new(spec: &'a Spec, world: &'a World, offset: i64) -> Self {
        let (start, end) = (spec.start_ms, spec.end_ms.max(spec.start_ms + 1));
        let mut p = Planner {
            spec,
            world,
            rng: ChaCha8Rng::seed_from_u64(spec.seed ^ 0x706c_616e), // "plan"
            offset,
            start,
            end,
            base: Vec::new(),
            pick: None,
            out: Vec::with_capacity(spec.events as usize),
        };
        let mut weights = Vec::new();
        for (a, fans) in world.fans.iter().enumerate() {
            p.base.push(weights.len());
            for f in 0..fans.len() {
                let (lo, hi) = p.following(a, f as u32);
                weights.push(world.activity[a][f] * (hi - lo).max(0) as f64);
            }
        }
        p.pick = WeightedIndex::new(&weights).ok();
        p
    }

    /// When the fan follows within the span, in event time: [lo, hi), maybe empty. Fans
    /// without a profile follow throughout.
    fn following(&self, account: usize, fan: u32) -> (i64, i64) {
        match self.world.fan(account, fan) {
            None => (self.start, self.end),
            Some(f) => (
                (f.followed_at + self.offset).max(self.start),
                f.unfollowed_at
                    .map_or(self.end, |u| (u + self.offset).min(self.end)),
            ),
        }
    }

    /// A fan by propensity and time following, and that time (non-empty).
    fn pick_fan(&mut self) -> (usize, u32, i64, i64) {
        if let Some(pick) = &self.pick {
            let g = pick.sample(&mut self.rng);
            let account = self.base.partition_point(|&b| b <= g) - 1;
            let fan = (g - self.base[account]) as u32;
            let (lo, hi) = self.following(account, fan);
            if lo < hi {
                return (account, fan, lo, hi);
            }
        }
        // No fan follows in the span (or there are none): any fan, any time.
        let account = self.rng.gen_range(0..self.world.accounts.len());
        let fans = self.world.fans[account].len().max(1) as u32;
        (account, self.rng.gen_range(0..fans), self.start, self.end)
    }

    /// The gateway received the event at `server`; it happened a little (or, late, hours
    /// to days) before.
    fn push_at_server(&mut self, account: usize, fan: u32, server: i64, what: What) {
        let late = self.rng.gen_bool(self.spec.late_share);
        let delay = if late {
            self.rng.gen_range(LATE_MIN_MS..LATE_MAX_MS)
        } else {
            self.rng.gen_range(50..3_000)
        };
        self.out.push(Planned {
            server,
            client: server - delay,
            account: account as u32,
            fan,
            late,
            what,
        });
    }

    /// The event happened at `client` (inside the span); the gateway receives it a little
    /// or, late, hours to days after, but before the span ends (live mode sends records
    /// at their server time).
    fn push_at_client(&mut self, account: usize, fan: u32, client: i64, what: What) {
        let room = (self.end - 1 - client).max(0);
        let late = self.rng.gen_bool(self.spec.late_share) && room > LATE_MIN_MS;
        let delay = if late {
            self.rng.gen_range(LATE_MIN_MS..=room.min(LATE_MAX_MS))
        } else {
            self.rng.gen_range(50..3_000).min(room)
        };
        self.out.push(Planned {
            server: client + delay,
            client,
            account: account as u32,
            fan,
            late,
            what,
        });
    }

    /// A scene for a scan of the account's fan, or now and then one no record has.
    fn scene(&mut self, account: usize) -> Scene {
        if self.rng.gen_bool(self.spec.unknown_dimension_share) {
            Scene::Unknown(self.world.unknown_scene(account, &mut self.rng))
        } else {
            Scene::Known(self.world.pick_scene_index(account, &mut self.rng))
        }
    }

    /// The span's QR follows of the profiles, each at its follow time with its scene.
    fn qr_follows(&mut self) -> Vec<(usize, u32, i64, Scene)> {
        let (start, end) = self.world.span;
        let mut out = Vec::new();
        for (a, fans) in self.world.fans.iter().enumerate() {
            for (n, fan) in fans.iter().enumerate() {
                let Some((f, scene)) = fan.as_ref().and_then(|f| Some((f, f.follow_scene?))) else {
                    continue;
                };
                let client = f.followed_at + self.offset;
                if !(start..end).contains(&f.followed_at)
                    || !(self.start..self.end).contains(&client)
                {
                    continue;
                }
                let scene = if self.rng.gen_bool(self.spec.unknown_dimension_share) {
                    Scene::Unknown(self.world.unknown_scene(a, &mut self.rng))
                } else {
                    Scene::Known(scene)
                };
                out.push((a, n as u32, client, scene));
            }
        }
        out.sort_by_key(|s| s.2);
        out
    }

    /// A lognormal delay with this median, ms.
    fn lognormal(&mut self, median_ms: f64, sigma: f64) -> i64 {
        (median_ms * (sigma * standard_normal(&mut self.rng)).exp()) as i64
    }

    /// `from` + a lognormal delay, inside [from, limit); uniform there when the delay
    /// would reach the limit (a push late in the span still gets its readers).
    fn after(&mut self, from: i64, limit: i64, median_ms: f64, sigma: f64) -> Option<i64> {
        if limit <= from {
            return None;
        }
        let t = from.saturating_add(self.lognormal(median_ms, sigma));
        Some(if t < limit {
            t
        } else {
            self.rng.gen_range(from..limit)
        })
    }

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
    fn reads(&mut self, budget: usize) {
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

    /// Exactly `budget` chat messages, as conversations: a fan writes to the account or to
    /// an associate (1:1 or in a group), or an associate reaches out, and the other side
    /// answers — or does not.
    fn chats(&mut self, budget: usize) {
        let mut left = budget;
        while left > 0 {
            let (account, fan, lo, hi) = self.pick_fan();
            let kind = self.rng.gen_range(0..20);
            let associate = if kind <= 3 {
                Associate::None
            } else if self.rng.gen_bool(self.spec.unknown_dimension_share) {
                Associate::Unknown(self.world.unknown_associate(&mut self.rng))
            } else {
                Associate::Known(self.world.associate_index_of(account, fan))
            };
            let skill = match associate {
                Associate::Known(i) => self.world.skill[i],
                _ => 0.0,
            };
            let start = self.rng.gen_range(lo..hi);
            let mut messages = match kind {
                0..=3 => self.official_account(start),
                4..=5 => self.outreach(start, skill),
                6..=15 => self.private(start, skill),
                _ => self.group(start),
            };
            messages.retain(|m| m.0 < hi);
            messages.truncate(left);
            left -= messages.len();
            for (client, conversation, direction) in messages {
                let associate = match &associate {
                    Associate::None => Associate::None,
                    Associate::Known(i) => Associate::Known(*i),
                    Associate::Unknown(u) => Associate::Unknown(u.clone()),
                };
                let chat = Chat {
                    conversation,
                    direction,
                    associate,
                };
                self.push_at_client(account, fan, client, What::Chat(chat));
            }
        }
    }

    /// 1–3 fan messages a few seconds to two minutes apart.
    fn burst(&mut self, from: i64, out: &mut Vec<(i64, ConversationKind, Direction)>) -> i64 {
        let mut t = from;
        for k in 0..self.rng.gen_range(1..=3) {
            if k > 0 {
                t += self.rng.gen_range(5_000..120_000);
            }
            out.push((t, ConversationKind::WecomPrivate, Direction::FanToAssociate));
        }
        t
    }

    /// Whether an associate of this skill answers, and after how long (ms): most within
    /// minutes, some hours later when busy or off shift (seeds 003/004 judge associates on
    /// reply rate and time).
    fn answer(&mut self, skill: f64) -> Option<i64> {
        let p = (0.88 + 0.05 * skill).clamp(0.6, 0.98);
        if !self.rng.gen_bool(p) {
            return None;
        }
        Some(if self.rng.gen_bool(0.12) {
            self.lognormal(2.5 * 3_600_000.0, 0.9)
        } else {
            self.lognormal(4.0 * 60_000.0 * (-0.35 * skill).exp(), 1.1)
        })
        .map(|d| d.max(1_000))
    }

    /// A fan writes to an associate, who answers; they may go on for a few rounds.
    fn private(&mut self, start: i64, skill: f64) -> Vec<(i64, ConversationKind, Direction)> {
        let mut out = Vec::new();
        let mut t = start;
        for _ in 0..4 {
            let last = self.burst(t, &mut out);
            let Some(delay) = self.answer(skill) else {
                break;
            };
            let reply = (t + delay).max(last + 1_000);
            out.push((
                reply,
                ConversationKind::WecomPrivate,
                Direction::AssociateToFan,
            ));
            if !self.rng.gen_bool(0.4) {
                break;
            }
            t = reply + self.lognormal(3.0 * 60_000.0, 1.0).max(5_000);
        }
        out
    }

    /// An associate reaches out (new arrivals, invitations: seed 001); some fans answer.
    fn outreach(&mut self, start: i64, skill: f64) -> Vec<(i64, ConversationKind, Direction)> {
        let mut out = vec![(
            start,
            ConversationKind::WecomPrivate,
            Direction::AssociateToFan,
        )];
        if self.rng.gen_bool(0.35) {
            let back = start + self.lognormal(20.0 * 60_000.0, 1.2).max(5_000);
            out.extend(self.private(back, skill));
        }
        out
    }

    /// A fan writes to the account; customer service answers half the time.
    fn official_account(&mut self, start: i64) -> Vec<(i64, ConversationKind, Direction)> {
        let mut out = vec![(
            start,
            ConversationKind::OfficialAccount,
            Direction::FanToBrand,
        )];
        if self.rng.gen_bool(0.5) {
            out.push((
                start + self.rng.gen_range(5_000..120_000),
                ConversationKind::OfficialAccount,
                Direction::FanToBrand,
            ));
        }
        if self.rng.gen_bool(0.6) {
            let last = out.last().map_or(start, |m| m.0);
            out.push((
                last + self.lognormal(90_000.0, 1.0).max(1_000),
                ConversationKind::OfficialAccount,
                Direction::BrandToFan,
            ));
        }
        out
    }

    /// A fan writes in an associate's customer group; the associate answers now and then.
    fn group(&mut self, start: i64) -> Vec<(i64, ConversationKind, Direction)> {
        let mut out = vec![(
            start,
            ConversationKind::WecomGroup,
            Direction::FanToAssociate,
        )];
        if self.rng.gen_bool(0.4) {
            out.push((
                start + self.lognormal(10.0 * 60_000.0, 1.2).max(1_000),
                ConversationKind::WecomGroup,
                Direction::AssociateToFan,
            ));
        }
        out
    }
}
