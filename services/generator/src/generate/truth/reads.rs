//! Reads per article and per push: the tally's second section, with what a reader did
//! and how reads count, apart from the fans' activity and the chats.

use std::collections::{BTreeMap, HashMap};

use wxpulse_runtime::events::ReadSource;

use super::fans::FanKey;
use super::report::{ArticleTruth, Reads, Report, SCREENS};
use crate::generate::plan::{Article, Planned, Read, What};
use crate::world::{segment_name, shanghai, World, DAY_MS};

/// What a reader did with an article (or a push): deepest read, and from the push or not.
#[derive(Default, Clone, Copy)]
pub(super) struct Reader {
    pub(super) depth: f32,
    from_push: bool,
}

impl Reader {
    fn add(&mut self, depth: f32, from_push: bool) {
        self.depth = self.depth.max(depth);
        self.from_push |= from_push;
    }
}

fn finish(reads: &mut Reads, readers: &HashMap<FanKey, Reader>) {
    reads.readers = readers.len() as u64;
    reads.push_readers = readers.values().filter(|r| r.from_push).count() as u64;
    reads.readers_at_screen = (1..=SCREENS)
        .map(|n| readers.values().filter(|r| r.depth >= n as f32).count() as u64)
        .collect();
}

/// What the reads hand the headline figures.
pub(super) struct ReadTally {
    /// Per article id: its readers.
    pub(super) article_readers: HashMap<String, HashMap<FanKey, Reader>>,
    /// Reads by source.
    pub(super) sources: BTreeMap<String, u64>,
    /// Reads from any source.
    pub(super) reads_total: u64,
    /// Per push reaching fans: `unfollows_24h / fans_reached`.
    pub(super) unfollow_rates: Vec<f64>,
}

/// Reads per article and push; pushes with their reach, unfollows and heatmap.
pub(super) fn tally_reads(r: &mut Report, world: &World, planned: &[Planned]) -> ReadTally {
    let app = |a: u32| world.accounts[a as usize].record.app_id.as_str();
    // Reads per article and push.
    let mut article_readers: HashMap<String, HashMap<FanKey, Reader>> = HashMap::new();
    let mut push_readers: HashMap<i64, HashMap<FanKey, Reader>> = HashMap::new();
    for account in &world.accounts {
        for push in &account.pushes {
            for &i in &push.articles {
                let a = &world.articles[i];
                r.articles.insert(
                    a.article_id.clone(),
                    ArticleTruth {
                        app_id: account.record.app_id.clone(),
                        msgid: a.msgid,
                        idx: a.idx,
                        articles_in_push: a.articles_in_push,
                        position_class: match (a.articles_in_push, a.idx) {
                            (1, _) => "single",
                            (_, 1) => "first",
                            _ => "non_first",
                        },
                        fans_reached: a.fans_reached,
                        reads: Reads::default(),
                    },
                );
            }
        }
    }
    let mut sources: BTreeMap<String, u64> = BTreeMap::new();
    let mut reads_total = 0u64;
    for e in planned {
        let What::Read(read) = &e.what else { continue };
        reads_total += 1;
        *sources
            .entry(source_name(read.source).to_string())
            .or_default() += 1;
        let from_push = read.source == ReadSource::Push;
        let (id, msgid) = match &read.article {
            Article::Known(i) => (
                world.articles[*i].article_id.clone(),
                Some(world.articles[*i].msgid),
            ),
            Article::Unknown { id, .. } => (id.clone(), None),
        };
        let entry = r.articles.entry(id.clone()).or_insert_with(|| {
            let (m, idx) = match &read.article {
                Article::Unknown { msgid, idx, .. } => (*msgid, *idx),
                Article::Known(_) => (0, 0),
            };
            ArticleTruth {
                app_id: app(e.account).to_string(),
                msgid: m,
                idx,
                articles_in_push: 0,
                position_class: "unknown",
                fans_reached: 0,
                reads: Reads::default(),
            }
        });
        count_read(&mut entry.reads, read, from_push);
        article_readers
            .entry(id)
            .or_default()
            .entry((e.account, e.fan))
            .or_default()
            .add(read.depth, from_push);
        if let Some(msgid) = msgid {
            push_readers
                .entry(msgid)
                .or_default()
                .entry((e.account, e.fan))
                .or_default()
                .add(read.depth, from_push);
            let p = r.pushes.entry(msgid).or_default();
            count_read(&mut p.reads, read, from_push);
        }
    }
    let empty = HashMap::new();
    for (id, a) in r.articles.iter_mut() {
        finish(&mut a.reads, article_readers.get(id).unwrap_or(&empty));
    }
    let mut unfollow_rates = Vec::new();
    for (a, account) in world.accounts.iter().enumerate() {
        for push in &account.pushes {
            let first = &world.articles[push.articles[0]];
            let c = shanghai(push.published_at);
            let window = push.published_at..push.published_at + DAY_MS;
            let unfollows_24h = world.fans[a]
                .iter()
                .flatten()
                .filter(|f| f.unfollowed_at.is_some_and(|u| window.contains(&u)))
                .count() as u64;
            let p = r.pushes.entry(push.msgid).or_default();
            p.app_id = account.record.app_id.clone();
            p.published_at = push.published_at;
            p.month = c.yyyymm();
            p.weekday = c.weekday;
            p.hour = c.hour;
            p.articles_in_push = push.articles.len() as i32;
            p.target_segment = push.segment.map_or("none", segment_name).to_string();
            p.fans_reached = first.fans_reached;
            p.unfollows_24h = unfollows_24h;
            finish(
                &mut p.reads,
                push_readers.get(&push.msgid).unwrap_or(&empty),
            );
            if first.fans_reached > 0 {
                unfollow_rates.push(unfollows_24h as f64 / first.fans_reached as f64);
            }
            *r.push_heatmap
                .entry(account.record.app_id.clone())
                .or_default()
                .entry(c.yyyymm())
                .or_default()
                .entry(c.weekday)
                .or_default()
                .entry(c.hour)
                .or_default() += 1;
        }
    }
    ReadTally {
        article_readers,
        sources,
        reads_total,
        unfollow_rates,
    }
}

fn count_read(reads: &mut Reads, read: &Read, from_push: bool) {
    reads.reads += 1;
    reads.push_reads += u64::from(from_push);
    reads.shares += u64::from(read.shared);
    reads.favorites += u64::from(read.favorited);
    reads.cta_clicks += u64::from(read.cta);
    reads.read_seconds += read.seconds.max(0) as u64;
}

/// A read source as the rows store it.
pub fn source_name(s: ReadSource) -> &'static str {
    match s {
        ReadSource::Push => "PUSH",
        ReadSource::Chat => "CHAT",
        ReadSource::Moments => "MOMENTS",
        ReadSource::Search => "SEARCH",
        ReadSource::History => "HISTORY",
        ReadSource::Other => "OTHER",
    }
}
