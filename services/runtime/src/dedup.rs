//! Per-partition duplicate filters.
//!
//! Two kinds of duplicate reach a consumer:
//! - **redeliveries**: Kafka hands out records again after a crash between insert and
//!   commit, or after a rebalance. Every row stores its partition and offset, so on
//!   assignment the service asks ClickHouse for the highest offset already written per
//!   partition (the *watermark*) and skips everything at or below it. Exact, and needs no
//!   state outside ClickHouse.
//! - **upstream retries**: the same `event_id` again at a new offset. WeChat resends an
//!   event within seconds (3 times after a 5 s timeout); a gateway replays after an outage
//!   and a mini-program retries after reconnecting, hours or days later. Producers key by
//!   fan, so the copies share a partition. Two layers catch them:
//!   - [`EventIdWindow`]: every id of the last `dedup.window` of server time, exactly, and
//!     every id not yet written to ClickHouse, whatever its age.
//!   - [`Horizon`]: every id of the last `dedup.horizon` (7 days) in split-block Bloom
//!     filters, 15 bits per id at 0.1% false positives. An id it flags is *suspect* and
//!     looked up in ClickHouse before the record goes on; since an id leaves the window only
//!     once it is written, the lookup is exact. Filters only decide which ids cost a lookup.
//!
//! The window is also capped at `dedup.max_ids` ids per partition, so a burst cannot grow
//! it without bound. Past the cap the oldest ids go first (arrival order, which within a
//! partition is server-time order up to producer reordering — the expiry relies on the
//! same). An id dropped that way before it was written is the one case a retry of it could
//! be written twice, so each such drop is counted.

use std::collections::{HashMap, HashSet, VecDeque};
use std::hash::{BuildHasherDefault, Hasher};

use prometheus::IntCounter;

use crate::config::DedupConfig;

/// Event ids are random UUIDs: their bits are already uniform, so folding the two halves
/// is a perfect hash and costs nothing next to SipHash (the set is per partition and fed
/// by the brand's own gateway, so hash flooding is not a threat model here).
#[derive(Default)]
struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.0 = (self.0 ^ u64::from_le_bytes(word)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        }
    }

    fn write_u128(&mut self, id: u128) {
        self.0 = (id as u64) ^ ((id >> 64) as u64);
    }
}

type IdSet = HashSet<u128, BuildHasherDefault<IdHasher>>;

/// Spreads an event id over 64 bits for the Bloom filters. Ids are usually random UUIDs,
/// but hand-made ones (tests, replays of other systems) differ only in their last digits.
fn mix(id: u128) -> u64 {
    let mut x = (id as u64) ^ ((id >> 64) as u64).rotate_left(29);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// Remembers event ids of one partition for a window of server time, up to a cap.
#[derive(Debug)]
pub struct EventIdWindow {
    window_ms: i64,
    max_ids: usize,
    seen: IdSet,
    /// Ids in arrival order with their server time and offset; also holds forgotten ids
    /// until they reach the front, and is capped with `seen`.
    order: VecDeque<(i64, i64, u128)>,
    newest_ms: i64,
    /// Highest offset whose row ClickHouse has: ids above it stay, whatever their age, so
    /// that an id the window lets go can always be found in ClickHouse.
    written: i64,
    /// Ids dropped by the cap while still inside the window.
    evicted: Option<IntCounter>,
}

impl EventIdWindow {
    /// An empty window of `window_ms` milliseconds, without a cap on ids.
    pub fn new(window_ms: i64) -> Self {
        EventIdWindow {
            window_ms,
            max_ids: usize::MAX,
            seen: IdSet::default(),
            order: VecDeque::new(),
            newest_ms: 0,
            written: i64::MAX,
            evicted: None,
        }
    }

    /// Caps the window at `max_ids` ids (at least one), counting in `evicted` each id
    /// dropped before its window ended.
    pub fn capped(mut self, max_ids: usize, evicted: IntCounter) -> Self {
        self.max_ids = max_ids.max(1);
        self.evicted = Some(evicted);
        self
    }

    /// Keeps ids of records above `offset` until [`EventIdWindow::written`] says
    /// ClickHouse has them (a pipeline's window starts at its partition's watermark).
    pub fn written_up_to(mut self, offset: i64) -> Self {
        self.written = offset;
        self
    }

    /// Records `id` seen at `server_time` (already written, e.g. restored from ClickHouse);
    /// `false` if it was already seen (a duplicate).
    pub fn insert(&mut self, id: u128, server_time: i64) -> bool {
        self.insert_at(id, server_time, i64::MIN)
    }

    /// Records `id` of the record at `offset`; `false` if it was already seen.
    pub fn insert_at(&mut self, id: u128, server_time: i64, offset: i64) -> bool {
        if !self.seen.insert(id) {
            return false;
        }
        self.order.push_back((server_time, offset, id));
        self.newest_ms = self.newest_ms.max(server_time);
        self.expire();
        self.enforce_cap();
        true
    }

    /// Whether `id` is remembered.
    pub fn contains(&self, id: u128) -> bool {
        self.seen.contains(&id)
    }

    /// ClickHouse has every row up to `offset`: their ids may leave with the window.
    pub fn written(&mut self, offset: i64) {
        if self.written == i64::MAX || offset > self.written {
            self.written = offset;
        }
        self.expire();
    }

    fn expire(&mut self) {
        let horizon = self.newest_ms - self.window_ms;
        while let Some(&(t, offset, id)) = self.order.front() {
            if t >= horizon || offset > self.written {
                break;
            }
            self.order.pop_front();
            self.seen.remove(&id);
        }
    }

    /// Drops the oldest ids while more than `max_ids` are held. Expiry ran first, so
    /// every id still in `seen` is inside the window: its drop is counted.
    fn enforce_cap(&mut self) {
        while self.order.len() > self.max_ids {
            let Some((_, _, id)) = self.order.pop_front() else {
                break;
            };
            if self.seen.remove(&id) {
                if let Some(evicted) = &self.evicted {
                    evicted.inc();
                }
            }
        }
    }

    /// Ids remembered now.
    pub fn len(&self) -> usize {
        self.seen.len()
    }

    /// Whether nothing is remembered.
    pub fn is_empty(&self) -> bool {
        self.seen.is_empty()
    }
}

/// Segments per horizon: a segment takes ids for half the horizon, so two or three are
/// alive and a fresh id costs that many filter probes (one cache line each), while memory
/// holds at most 1.5x the horizon's ids.
const SEGMENTS_PER_HORIZON: i64 = 2;

/// Bytes of one split-block filter block (eight 32-bit words: sbbf-rs's `BUCKET_SIZE`).
const BLOCK_BYTES: usize = 32;

/// The smallest segment, in ids. A segment that fills before its time is up is followed
/// by one sized for the rate it filled at.
const MIN_SEGMENT_IDS: usize = 65_536;

/// One Bloom filter of the horizon: the ids of a stretch of server time.
#[derive(Debug)]
struct Segment {
    bloom: sbbf_rs_safe::Filter,
    capacity: usize,
    ids: usize,
    first_ms: i64,
    newest_ms: i64,
}

impl Segment {
    fn bytes(&self) -> usize {
        self.bloom.as_bytes().len()
    }
}

/// Every event id of a partition's last `horizon` of server time, in a chain of split-block
/// Bloom filters: `might_contain` is never wrong when it says no, and says yes wrongly for
/// about `false_positive` of fresh ids. Memory grows with the ids held, up to `max_bytes`;
/// past that the newest segment takes more ids than it was sized for, so the false
/// positives — and the ClickHouse lookups they cost — rise instead of duplicates being
/// missed.
#[derive(Debug)]
pub struct Horizon {
    horizon_ms: i64,
    bits_per_id: usize,
    max_bytes: usize,
    segments: VecDeque<Segment>,
    newest_ms: i64,
    bytes: usize,
}

impl Horizon {
    /// An empty horizon; `horizon_ms` 0 remembers nothing.
    pub fn new(horizon_ms: i64, false_positive: f64, max_bytes: usize) -> Self {
        // A split-block filter sets one bit in each of a block's eight words:
        // fp = (1 - e^(-8/bits))^8, so bits = -8 / ln(1 - fp^(1/8)).
        let fp = false_positive.clamp(1e-9, 0.5);
        let bits_per_id = (-8.0 / (1.0 - fp.powf(0.125)).ln()).ceil() as usize;
        Horizon {
            horizon_ms,
            bits_per_id: bits_per_id.max(8),
            max_bytes,
            segments: VecDeque::new(),
            newest_ms: i64::MIN,
            bytes: 0,
        }
    }

    /// Adds `id`, seen at `server_time`.
    pub fn insert(&mut self, id: u128, server_time: i64) {
        if self.horizon_ms <= 0 {
            return;
        }
        self.newest_ms = self.newest_ms.max(server_time);
        self.expire();
        let span = (self.horizon_ms / SEGMENTS_PER_HORIZON).max(1);
        let next_capacity = match self.segments.back() {
            None => Some(MIN_SEGMENT_IDS),
            Some(last) if last.ids >= last.capacity => {
                // Full early: size the next for the rate this one filled at, over a span.
                let took = (last.newest_ms - last.first_ms).max(1);
                let projected = (last.ids as f64 * span as f64 / took as f64 * 1.25) as usize;
                Some(projected.clamp(last.capacity.saturating_mul(2), usize::MAX / 64))
            }
            Some(last) if self.newest_ms - last.first_ms >= span => {
                Some((last.ids + last.ids / 4).max(MIN_SEGMENT_IDS))
            }
            Some(_) => None,
        };
        if let Some(capacity) = next_capacity {
            let want = capacity.saturating_mul(self.bits_per_id) / 8;
            // At the memory cap the newest segment takes the ids on, overfilled.
            if self.segments.is_empty() || self.bytes.saturating_add(want) <= self.max_bytes {
                let segment = Segment {
                    bloom: sbbf_rs_safe::Filter::new(self.bits_per_id, capacity),
                    capacity,
                    ids: 0,
                    first_ms: server_time,
                    newest_ms: server_time,
                };
                self.bytes += segment.bytes();
                self.segments.push_back(segment);
            }
        }
        if let Some(last) = self.segments.back_mut() {
            last.bloom.insert_hash(mix(id));
            last.ids += 1;
            last.newest_ms = last.newest_ms.max(server_time);
        }
    }

    /// Starts loading the filter blocks [`Horizon::might_contain`] will probe for `id`
    /// (one per segment), so the probes overlap instead of waiting in turn.
    #[inline]
    pub fn prefetch(&self, id: u128) {
        let hash = mix(id);
        for s in &self.segments {
            // sbbf-rs's block index: fastrange of the hash's upper half over the blocks.
            let blocks = s.bloom.as_bytes().len() / BLOCK_BYTES;
            let block = ((hash >> 32) * blocks as u64) >> 32;
            let bytes = s.bloom.as_bytes().as_ptr();
            crate::prefetch::line(bytes.wrapping_add(block as usize * BLOCK_BYTES));
        }
    }

    /// `false` if `id` was certainly not inserted within the horizon.
    pub fn might_contain(&self, id: u128) -> bool {
        let hash = mix(id);
        self.segments.iter().any(|s| s.bloom.contains_hash(hash))
    }

    fn expire(&mut self) {
        let oldest = self.newest_ms.saturating_sub(self.horizon_ms);
        while self.segments.len() > 1 && self.segments.front().is_some_and(|s| s.newest_ms < oldest)
        {
            if let Some(gone) = self.segments.pop_front() {
                self.bytes -= gone.bytes();
            }
        }
    }

    /// Memory held by the filters.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Ids held (counting repeats of an id inserted twice).
    pub fn len(&self) -> usize {
        self.segments.iter().map(|s| s.ids).sum()
    }

    /// Whether nothing is held.
    pub fn is_empty(&self) -> bool {
        self.segments.is_empty()
    }
}

/// How old a duplicate was when it arrived: the label of
/// `wxpulse_dedup_duplicates_by_age_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Age {
    /// Caught by the window (usually seconds: WeChat's own retries).
    Window,
    /// Up to an hour.
    Hour,
    /// Up to a day.
    Day,
    /// Older, within the horizon.
    Older,
}

impl Age {
    /// Every bucket, for pre-registering the metric's series.
    pub const ALL: [Age; 4] = [Age::Window, Age::Hour, Age::Day, Age::Older];

    /// The bucket of a duplicate `age_ms` after its original.
    pub fn of(age_ms: i64) -> Self {
        if age_ms <= 3_600_000 {
            Age::Hour
        } else if age_ms <= 86_400_000 {
            Age::Day
        } else {
            Age::Older
        }
    }

    /// The metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            Age::Window => "window",
            Age::Hour => "1h",
            Age::Day => "1d",
            Age::Older => "older",
        }
    }
}

/// What dedup says of an event id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Seen {
    /// Not seen: recorded, the event goes on.
    Fresh,
    /// Seen before, this long ago.
    Duplicate(Age),
    /// The horizon flags it: ClickHouse must say whether it was written, before the event
    /// goes on (see [`EventIds::settle`]).
    Suspect,
}

/// A partition's whole dedup state: the exact window, the horizon, and ClickHouse's
/// answers about suspects waiting to be applied.
#[derive(Debug)]
pub struct EventIds {
    /// Exact, recent and unwritten ids.
    pub window: EventIdWindow,
    /// Bloom filters over the horizon.
    pub horizon: Horizon,
    /// Suspects looked up: the server time of the written copy, or `None` if there is none.
    settled: HashMap<u128, Option<i64>>,
    newest_ms: i64,
}

impl EventIds {
    /// Dedup state of one partition.
    pub fn new(window: EventIdWindow, horizon: Horizon) -> Self {
        EventIds {
            window,
            horizon,
            settled: HashMap::new(),
            newest_ms: i64::MIN,
        }
    }

    /// Decides on `id`, seen at `server_time` in the record at `offset`, recording it
    /// unless it is a duplicate or suspect.
    pub fn check(&mut self, id: u128, server_time: i64, offset: i64) -> Seen {
        if self.window.contains(id) {
            return Seen::Duplicate(Age::Window);
        }
        // Almost always empty: skip hashing the id for it.
        let settled = if self.settled.is_empty() {
            None
        } else {
            self.settled.remove(&id)
        };
        match settled {
            Some(Some(original)) => {
                let arrived = self.newest_ms.max(server_time);
                return Seen::Duplicate(Age::of(arrived - original));
            }
            Some(None) => {}
            None if self.horizon.might_contain(id) => return Seen::Suspect,
            None => {}
        }
        self.newest_ms = self.newest_ms.max(server_time);
        self.window.insert_at(id, server_time, offset);
        self.horizon.insert(id, server_time);
        Seen::Fresh
    }

    /// Empty state as `dedup` configures it, for a partition whose rows up to `written`
    /// (its watermark) are in ClickHouse.
    pub fn configured(dedup: &DedupConfig, evicted: IntCounter, written: i64) -> Self {
        EventIds::new(
            EventIdWindow::new(dedup.window.as_millis() as i64)
                .capped(dedup.max_ids, evicted)
                .written_up_to(written),
            Horizon::new(
                dedup.horizon.as_millis() as i64,
                dedup.horizon_false_positive,
                dedup.horizon_max_bytes,
            ),
        )
    }

    /// ClickHouse's answer about a suspect: `written` is the server time of its written
    /// copy, if any. The next [`EventIds::check`] of the id applies it.
    pub fn settle(&mut self, id: u128, written: Option<i64>) {
        self.settled.insert(id, written);
    }

    /// Whether [`EventIds::check`] of `id` now would say [`Seen::Suspect`]: not in the
    /// window, no answer waiting, flagged by the horizon. Lets the suspects parked behind
    /// one be looked up with it, in one query.
    pub fn would_be_suspect(&self, id: u128) -> bool {
        !self.window.contains(id)
            && !self.settled.contains_key(&id)
            && self.horizon.might_contain(id)
    }

    /// Drops answers no record will apply (their records were rejected before dedup, or
    /// were copies already decided by the window), so the map stays empty between lookups.
    pub fn forget_settled(&mut self) {
        self.settled.clear();
    }

    /// Records an id written before this state existed (restored from ClickHouse).
    pub fn restore(&mut self, id: u128, server_time: i64, in_window: bool) {
        if in_window {
            self.window.insert(id, server_time);
        }
        self.horizon.insert(id, server_time);
        self.newest_ms = self.newest_ms.max(server_time);
    }
}

#[cfg(test)]
#[path = "dedup_tests.rs"]
mod tests;
