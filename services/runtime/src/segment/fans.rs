//! The per-fan state of one partition — the time of each fan's previous interaction and
//! its interactions per month — and what bounds it.
//!
//! A fan is held in one of three forms, each with only what its future events can need:
//! - **open**: it has a count for a month that can still receive events ([`FanState`]);
//! - **quiet**: all its months are closed, so only its last interaction is left to know,
//!   for "dormant after `segment.dormant_after`";
//! - **dormant**: its last interaction is so old that its next event is dormant whenever
//!   it comes, so a marker is enough.
//!
//! "Can still receive": an event whose time is more than `validation.max_lateness` before
//! its server time is dead-lettered as too_old, and server time within a partition does not
//! go back by more than `validation.max_future_skew` (the gateways' clocks agree within
//! it). So no event older than the newest event time seen minus [`FanLimits::reach_ms`]
//! (max_lateness + twice the skew: an event time may lead its server time by the skew)
//! arrives, and moving a fan to a smaller form never changes the segment of one that does
//! (property-tested below against unbounded state). Records produced again long after the
//! fact (`wxpulse dlq replay` of old dead letters) are outside that: their month may count
//! from zero, and a fan reduced to a marker reads dormant.
//!
//! Past `segment.max_fans` (per service, split evenly between the partitions it owns) the
//! least recently active fans are dropped after the dormant ones: their next event is
//! segmented like a never-seen fan's (active, month count from one). Markers past
//! `segment.max_dormant_fans` are forgotten (the fan's return reads active). Both losses
//! are counted in `wxpulse_segment_fans_evicted_total{reason}`.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use prometheus::{IntCounter, IntCounterVec};

use super::rules::{lifecycle, Relationship, Segment, Thresholds};
use crate::calendar::month_of;
use crate::config::Config;
use crate::enrich::FanProfile;
use crate::fan_table::{FanTable, Packed};
use crate::pii::FanId;

/// What a partition remembers about one fan.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FanState {
    /// Latest event time seen, ms (0 = none).
    pub last_event_time: i64,
    /// Interactions per `yyyymm` (month 0 = free slot), the newest [`MONTHS_KEPT`]
    /// months, inline so tracking a fan allocates nothing.
    pub months: [(u32, u32); MONTHS_KEPT],
}

/// Months kept per fan: late events are at most `validation.max_lateness` (7 days) old,
/// so the current and previous month suffice; one more leaves room for a longer lateness.
pub const MONTHS_KEPT: usize = 3;

/// Quiet fans become markers when the newest event time has advanced this much: dormancy is
/// counted in days. Open fans are looked at only when a month closes.
const SWEEP_EVERY_MS: i64 = 86_400_000;

/// Why a fan's state was dropped: the `reason` of `wxpulse_segment_fans_evicted_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Eviction {
    /// Reduced to a dormant marker: exact.
    Dormant,
    /// Dropped over `segment.max_fans`: the fan's next event reads as a never-seen fan's.
    LeastRecent,
    /// A marker dropped over `segment.max_dormant_fans`: the fan's return reads active.
    DormantForgotten,
}

impl Eviction {
    /// Every reason, in counter order.
    pub const ALL: [Eviction; 3] = [
        Eviction::Dormant,
        Eviction::LeastRecent,
        Eviction::DormantForgotten,
    ];

    /// Metric label.
    pub const fn as_str(self) -> &'static str {
        match self {
            Eviction::Dormant => "dormant",
            Eviction::LeastRecent => "least_recent",
            Eviction::DormantForgotten => "dormant_forgotten",
        }
    }
}

/// The bounds of a service's fan state.
#[derive(Debug, Clone, Copy)]
pub struct FanLimits {
    /// Fans held with their state (open and quiet), per service.
    pub max_fans: usize,
    /// Dormant markers, per service.
    pub max_dormant_fans: usize,
    /// No event older than the newest event time seen minus this arrives, ms.
    pub reach_ms: i64,
    /// `segment.dormant_after`, ms.
    pub dormant_after_ms: i64,
}

impl FanLimits {
    /// From `[segment]` and `[validation]`.
    pub fn from_config(cfg: &Config) -> Self {
        let ms = |d: std::time::Duration| i64::try_from(d.as_millis()).unwrap_or(i64::MAX / 4);
        FanLimits {
            max_fans: cfg.segment.max_fans,
            max_dormant_fans: cfg.segment.max_dormant_fans,
            reach_ms: ms(cfg.validation.max_lateness)
                .saturating_add(ms(cfg.validation.max_future_skew).saturating_mul(2)),
            dormant_after_ms: ms(cfg.segment.dormant_after),
        }
    }
}

/// The service-wide bounds, shared by the [`FanStates`] of every partition it owns: each
/// may hold an even share, so owning more partitions does not raise memory.
#[derive(Debug, Clone)]
pub struct FanBudget {
    inner: Arc<Budget>,
}

#[derive(Debug)]
struct Budget {
    limits: FanLimits,
    /// Live bounded `FanStates`.
    partitions: AtomicUsize,
    /// By [`Eviction`], in `Eviction::ALL` order.
    evicted: [IntCounter; 3],
}

impl FanBudget {
    /// A budget counting evictions in `evicted` (labelled by reason).
    pub fn new(limits: FanLimits, evicted: &IntCounterVec) -> Self {
        FanBudget {
            inner: Arc::new(Budget {
                limits,
                partitions: AtomicUsize::new(0),
                evicted: Eviction::ALL.map(|e| evicted.with_label_values(&[e.as_str()])),
            }),
        }
    }

    fn join(&self) -> Member {
        self.inner.partitions.fetch_add(1, Ordering::Relaxed);
        Member(self.inner.clone())
    }
}

/// A partition's place in the budget, given back when its state is dropped.
#[derive(Debug)]
struct Member(Arc<Budget>);

impl Member {
    /// This partition's share of (fans, markers): the limits over the partitions owned.
    /// A partition that receives nothing after more are assigned keeps its older, larger
    /// share until its next new fan.
    fn shares(&self) -> (usize, usize) {
        let n = self.0.partitions.load(Ordering::Relaxed).max(1);
        let l = &self.0.limits;
        ((l.max_fans / n).max(1), (l.max_dormant_fans / n).max(1))
    }

    fn evicted(&self, why: Eviction, n: usize) {
        if n > 0 {
            self.0.evicted[why as usize].inc_by(n as u64);
        }
    }
}

impl Drop for Member {
    fn drop(&mut self) {
        self.0.partitions.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Per-fan state of one partition.
#[derive(Debug, Default)]
pub struct FanStates {
    /// Fans with a month that can still receive events: the form an event looks up, so
    /// the pipeline can prefetch it ([`FanStates::prefetch`]).
    open: FanTable<FanState, Packed>,
    /// Fans whose months are all closed: their last interaction time.
    quiet: hashbrown::HashMap<FanId, i64>,
    /// Fans whose next event is dormant whenever it comes.
    dormant: hashbrown::HashSet<FanId>,
    /// Newest event time seen, ms.
    newest: i64,
    /// `newest` at the last sweep.
    swept_at: i64,
    /// The earliest month that could still receive events at the last sweep of `open`.
    open_from: u32,
    /// `None`: unbounded, nothing ever moves or goes (tests, benchmarks).
    budget: Option<Member>,
}

impl FanStates {
    /// Empty state bounded by `budget`, whose share it takes for as long as it lives.
    pub fn bounded(budget: &FanBudget) -> Self {
        FanStates {
            budget: Some(budget.join()),
            ..FanStates::default()
        }
    }

    /// Fans held with their state (open and quiet; not the dormant markers).
    pub fn len(&self) -> usize {
        self.open.len() + self.quiet.len()
    }

    /// True when no fan is held with its state.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Fans held only as "dormant when they return".
    pub fn dormant_len(&self) -> usize {
        self.dormant.len()
    }

    /// Of `len()`, the quiet fans: only their last interaction held, every month closed.
    pub fn quiet_len(&self) -> usize {
        self.quiet.len()
    }

    /// Restores one (fan, month) aggregate read from `fan_stream_months`.
    pub fn restore(&mut self, fan: FanId, month: u32, interactions: u32, last_event_time: i64) {
        self.saw(last_event_time);
        let (mut state, _) = self.take(fan);
        state.last_event_time = state.last_event_time.max(last_event_time);
        add_month(&mut state.months, month, interactions);
        self.put(fan, state);
    }

    /// Records an interaction at `t` and returns the fan's previous interaction time (if
    /// any; for a dormant marker, a time its last interaction was at or before) and the
    /// month count including this one.
    pub fn observe(&mut self, fan: FanId, t: i64) -> (Option<i64>, u32) {
        self.saw(t);
        if let Some(state) = self.open.get_mut(fan) {
            return record(state, t);
        }
        let (mut state, held) = self.take(fan);
        let seen = record(&mut state, t);
        self.open.insert(fan, state);
        if !held {
            self.enforce_cap();
        }
        seen
    }

    /// Segments an interaction of `fan` at `t` and records it.
    pub fn segment(
        &mut self,
        fan: FanId,
        t: i64,
        profile: Option<&FanProfile>,
        th: Thresholds,
    ) -> Segment {
        let (previous, month_interactions) = self.observe(fan, t);
        Segment {
            relationship: Relationship::of(profile),
            lifecycle: lifecycle(t, profile, previous, th),
            month_interactions,
        }
    }

    /// The state of a fan held open (tests, debugging).
    pub fn get(&self, fan: FanId) -> Option<&FanState> {
        self.open.get(fan)
    }

    /// Starts loading `fan`'s open state, so [`FanStates::observe`] a few records later
    /// finds it in cache (`decode::Decoder::look_ahead`).
    #[inline]
    pub fn prefetch(&self, fan: FanId) {
        self.open.prefetch(fan);
    }

    /// Removes `fan` from whichever form holds it; `true` if it was held with its state
    /// (open or quiet), so putting it back does not add a fan.
    fn take(&mut self, fan: FanId) -> (FanState, bool) {
        if let Some(state) = self.open.remove(fan) {
            return (state, true);
        }
        if let Some(last) = self.quiet.remove(&fan) {
            let state = FanState {
                last_event_time: last,
                ..FanState::default()
            };
            return (state, true);
        }
        let last_event_time = match self.dormant.remove(&fan) {
            // Its last interaction was at or before this, whatever it was.
            true => self.dormant_before().max(1),
            false => 0,
        };
        let state = FanState {
            last_event_time,
            ..FanState::default()
        };
        (state, false)
    }

    /// Holds `fan` in the smallest form that keeps what its future events need.
    fn put(&mut self, fan: FanId, mut state: FanState) {
        let Some(limits) = self.limits() else {
            self.open.insert(fan, state);
            return;
        };
        let open_from = month_of(self.newest - limits.reach_ms);
        if close_months(&mut state, open_from) {
            self.open.insert(fan, state);
        } else if state.last_event_time <= self.dormant_before() {
            self.dormant.insert(fan);
            self.enforce_marker_cap();
            return;
        } else {
            self.quiet.insert(fan, state.last_event_time);
        }
        self.enforce_cap();
    }

    fn limits(&self) -> Option<FanLimits> {
        self.budget.as_ref().map(|m| m.0.limits)
    }

    /// A fan whose last interaction is at or before this is dormant at its next event.
    fn dormant_before(&self) -> i64 {
        self.limits()
            .map_or(i64::MIN, |l| self.newest - l.reach_ms - l.dormant_after_ms)
    }

    /// Advances the newest event time; moves fans to smaller forms once a day of it (a
    /// backlog read at full speed pays one pass over the quiet fans per day of events).
    fn saw(&mut self, t: i64) {
        if t <= self.newest {
            return;
        }
        self.newest = t;
        if self.budget.is_some() && t - self.swept_at >= SWEEP_EVERY_MS {
            self.sweep();
        }
    }

    /// Drops every month that can no longer receive events; a fan left without one keeps
    /// only its last interaction, or a dormant marker once that is old enough.
    fn sweep(&mut self) {
        let Some(limits) = self.limits() else {
            return;
        };
        self.swept_at = self.newest;
        let open_from = month_of(self.newest - limits.reach_ms);
        let dormant_before = self.dormant_before();
        let mut to_dormant = 0;
        // An open fan only moves when one of its months closes.
        if open_from != self.open_from {
            self.open_from = open_from;
            self.open.extract_if(
                |_, state| !close_months(state, open_from),
                |fan, state| {
                    if state.last_event_time <= dormant_before {
                        self.dormant.insert(fan);
                        to_dormant += 1;
                    } else {
                        self.quiet.insert(fan, state.last_event_time);
                    }
                },
            );
        }
        for (fan, _) in self.quiet.extract_if(|_, last| *last <= dormant_before) {
            self.dormant.insert(fan);
            to_dormant += 1;
        }
        if let Some(member) = &self.budget {
            member.evicted(Eviction::Dormant, to_dormant);
        }
        self.enforce_marker_cap();
        // A hash table never gives memory back by itself: once a form holds under a
        // quarter of its room (fans moved on), shrink it, keeping room to double.
        if self.open.len() * 4 < self.open.capacity() {
            self.open.shrink_to(self.open.len() * 2);
        }
        if self.quiet.len() * 4 < self.quiet.capacity() {
            self.quiet.shrink_to(self.quiet.len() * 2);
        }
    }

    /// Over this partition's share of `max_fans`: sweeps, then drops the least recently
    /// active fans until 1/16 of the share is free, so the O(n) passes are amortised.
    fn enforce_cap(&mut self) {
        let Some((share, _)) = self.budget.as_ref().map(Member::shares) else {
            return;
        };
        if self.len() <= share {
            return;
        }
        self.sweep();
        let target = share - share / 16;
        if self.len() <= target {
            return;
        }
        let excess = self.len() - target;
        let mut lasts: Vec<i64> = self
            .open
            .values()
            .map(|s| s.last_event_time)
            .chain(self.quiet.values().copied())
            .collect();
        let (_, cutoff, _) = lasts.select_nth_unstable(excess - 1);
        let cutoff = *cutoff;
        drop(lasts);
        // Strictly older than the cut first, then fans at it until `excess` are gone.
        let mut left = excess;
        for strict in [true, false] {
            let mut goes = |last: i64| {
                let go = left > 0 && (last < cutoff || (!strict && last == cutoff));
                left -= usize::from(go);
                !go
            };
            self.quiet.retain(|_, last| goes(*last));
            self.open.retain(|_, s| goes(s.last_event_time));
        }
        if let Some(member) = &self.budget {
            member.evicted(Eviction::LeastRecent, excess - left);
        }
    }

    /// Over this partition's share of `max_dormant_fans`: forgets markers (any; they
    /// carry no time) until 1/16 of the share is free.
    fn enforce_marker_cap(&mut self) {
        let Some(member) = &self.budget else {
            return;
        };
        let (_, share) = member.shares();
        if self.dormant.len() <= share {
            return;
        }
        let excess = self.dormant.len() - (share - share / 16);
        let mut left = excess;
        self.dormant.retain(|_| {
            let go = left > 0;
            left -= usize::from(go);
            !go
        });
        member.evicted(Eviction::DormantForgotten, excess - left);
    }
}

/// Records an interaction at `t` in a fan's state.
fn record(state: &mut FanState, t: i64) -> (Option<i64>, u32) {
    let previous = (state.last_event_time > 0).then_some(state.last_event_time);
    state.last_event_time = state.last_event_time.max(t);
    let count = add_month(&mut state.months, month_of(t), 1);
    (previous, count)
}

/// Frees the slots of months before `open_from`; `true` if a month is left.
fn close_months(state: &mut FanState, open_from: u32) -> bool {
    let mut open = false;
    for m in &mut state.months {
        if m.0 < open_from {
            *m = (0, 0);
        }
        open |= m.0 != 0;
    }
    open
}

/// Adds `n` to `month`, keeping the newest [`MONTHS_KEPT`] months (a month older than all
/// kept ones is counted from zero and not kept); returns the new count.
fn add_month(months: &mut [(u32, u32); MONTHS_KEPT], month: u32, n: u32) -> u32 {
    if let Some(entry) = months.iter_mut().find(|(m, _)| *m == month) {
        entry.1 += n;
        return entry.1;
    }
    // The free or oldest slot, if older than `month`.
    let oldest = months
        .iter_mut()
        .min_by_key(|(m, _)| *m)
        .expect("MONTHS_KEPT > 0");
    if oldest.0 < month {
        *oldest = (month, n);
    }
    n
}

#[cfg(test)]
mod tests;
