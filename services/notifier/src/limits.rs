//! What was already sent, and what may still be: the notifications of the lookback (read
//! back from the topic and added as they are sent) answer "was this one sent?" (never
//! twice, even after a crash) and "how many did this fan / associate get?" (the limits).
//! Every limit counts in the triggers' server time, not the wall clock, so re-reading the
//! same records after a restart decides the same way.

use std::collections::VecDeque;
use std::sync::Arc;

use hashbrown::HashMap;
use uuid::Uuid;
use wxpulse_runtime::config::{minute_of_day, NotifierConfig, QuietHours};
use wxpulse_runtime::pii::FanId;

use crate::rules::{Candidate, Rule};

const MINUTE_MS: i64 = 60_000;
const DAY_MIN: i64 = 1440;
/// Asia/Shanghai is UTC+8 all year (no daylight saving).
const SHANGHAI_OFFSET_MIN: i64 = 480;

/// The associates' quiet hours, `[start, end)` in Asia/Shanghai minutes of the day.
#[derive(Debug, Clone, Copy)]
pub struct Quiet {
    start: i64,
    end: i64,
}

impl Quiet {
    /// From the validated config (`quiet_start`, `quiet_end`).
    pub fn new(cfg: &NotifierConfig) -> Self {
        Quiet {
            start: i64::from(minute_of_day(&cfg.quiet_start).unwrap_or(0)),
            end: i64::from(minute_of_day(&cfg.quiet_end).unwrap_or(0)),
        }
    }

    fn minute(ms: i64) -> i64 {
        (ms.div_euclid(MINUTE_MS) + SHANGHAI_OFFSET_MIN).rem_euclid(DAY_MIN)
    }

    /// Whether `ms` falls in the quiet hours.
    pub fn contains(&self, ms: i64) -> bool {
        let m = Self::minute(ms);
        match self.start.cmp(&self.end) {
            std::cmp::Ordering::Equal => false,
            std::cmp::Ordering::Less => (self.start..self.end).contains(&m),
            std::cmp::Ordering::Greater => m >= self.start || m < self.end,
        }
    }

    /// The end of the quiet hours that contain `ms` (or `ms` itself outside them).
    pub fn end_after(&self, ms: i64) -> i64 {
        if !self.contains(ms) {
            return ms;
        }
        let m = Self::minute(ms);
        let wait_min = (self.end - m).rem_euclid(DAY_MIN);
        (ms.div_euclid(MINUTE_MS) + wait_min) * MINUTE_MS
    }
}

/// What happens to a candidate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Send, not before `deliver_after`.
    Send {
        /// End of the quiet hours, or the trigger's server time.
        deliver_after: i64,
    },
    /// Sent before (a replay after a restart, or an upstream retry of the trigger).
    AlreadySent,
    /// Over the rule's per-fan limit.
    FanLimited,
    /// Over the associate's hourly limit.
    AssociateLimited,
    /// In the quiet hours of a rule that drops.
    Quiet,
}

impl Verdict {
    /// Label of `wxpulse_notifier_notifications_total{outcome}`.
    pub fn outcome(self, deferred: bool) -> &'static str {
        match self {
            Verdict::Send { .. } if deferred => "deferred",
            Verdict::Send { .. } => "sent",
            Verdict::AlreadySent => "replayed",
            Verdict::FanLimited => "fan_limited",
            Verdict::AssociateLimited => "associate_limited",
            Verdict::Quiet => "quiet_hours",
        }
    }
}

/// A notification as the limits remember it.
#[derive(Debug, Clone)]
pub struct SentNote {
    /// Its id.
    pub id: Uuid,
    /// Its rule.
    pub rule: Rule,
    /// Associate told.
    pub associate: Arc<str>,
    /// The fan.
    pub fan_id: FanId,
    /// The trigger's server time, ms.
    pub server_time: i64,
}

/// The notifications of the lookback, indexed for the limits. Bounded by time (older
/// than the lookback before the newest are forgotten) and by `cap` entries.
pub struct Sent {
    ids: HashMap<Uuid, i64>,
    by_fan: HashMap<(FanId, Rule), VecDeque<i64>>,
    by_associate: HashMap<Arc<str>, VecDeque<i64>>,
    order: VecDeque<(i64, Uuid, FanId, Rule, Arc<str>)>,
    lookback_ms: i64,
    cap: usize,
    newest: i64,
}

impl Sent {
    /// Remembers up to `cap` notifications of `lookback_ms`.
    pub fn new(lookback_ms: i64, cap: usize) -> Self {
        Sent {
            ids: HashMap::new(),
            by_fan: HashMap::new(),
            by_associate: HashMap::new(),
            order: VecDeque::new(),
            lookback_ms,
            cap: cap.max(1),
            newest: i64::MIN,
        }
    }

    /// Notifications remembered.
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    /// Whether none is remembered.
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// Whether `id` was sent.
    pub fn contains(&self, id: &Uuid) -> bool {
        self.ids.contains_key(id)
    }

    /// Adds a sent notification; `false` if it was already known.
    pub fn record(&mut self, note: SentNote) -> bool {
        if self.ids.contains_key(&note.id) {
            return false;
        }
        self.ids.insert(note.id, note.server_time);
        insert_sorted(
            self.by_fan.entry((note.fan_id, note.rule)).or_default(),
            note.server_time,
        );
        insert_sorted(
            self.by_associate.entry(note.associate.clone()).or_default(),
            note.server_time,
        );
        self.order.push_back((
            note.server_time,
            note.id,
            note.fan_id,
            note.rule,
            note.associate,
        ));
        self.newest = self.newest.max(note.server_time);
        self.expire();
        true
    }

    /// Notifications of `(fan, rule)` with server time in `(at - window, at]`.
    pub fn fan_count(&self, fan: FanId, rule: Rule, at: i64, window_ms: i64) -> usize {
        self.by_fan
            .get(&(fan, rule))
            .map_or(0, |t| count_in(t, at - window_ms, at))
    }

    /// Notifications of `associate` with server time in `(at - window, at]`.
    pub fn associate_count(&self, associate: &str, at: i64, window_ms: i64) -> usize {
        self.by_associate
            .get(associate)
            .map_or(0, |t| count_in(t, at - window_ms, at))
    }

    fn expire(&mut self) {
        let horizon = self.newest.saturating_sub(self.lookback_ms);
        // Insertion order is close to time order (one topic read in order, then live
        // sends): the front is the oldest up to the readers' interleaving.
        while let Some((t, ..)) = self.order.front() {
            if *t >= horizon && self.order.len() <= self.cap {
                break;
            }
            let Some((t, id, fan, rule, associate)) = self.order.pop_front() else {
                break;
            };
            self.ids.remove(&id);
            forget(&mut self.by_fan, &(fan, rule), t);
            forget(&mut self.by_associate, &associate, t);
        }
    }
}

fn insert_sorted(times: &mut VecDeque<i64>, t: i64) {
    let at = times.partition_point(|x| *x <= t);
    times.insert(at, t);
}

fn count_in(times: &VecDeque<i64>, after: i64, upto: i64) -> usize {
    times.partition_point(|x| *x <= upto) - times.partition_point(|x| *x <= after)
}

fn forget<K: std::hash::Hash + Eq>(map: &mut HashMap<K, VecDeque<i64>>, key: &K, t: i64) {
    if let Some(times) = map.get_mut(key) {
        if let Some(i) = times.iter().position(|x| *x == t) {
            times.remove(i);
        }
        if times.is_empty() {
            map.remove(key);
        }
    }
}

/// Decides a candidate whose id is `id` against what was sent, the limits and the
/// quiet hours.
pub fn decide(
    cfg: &NotifierConfig,
    quiet: &Quiet,
    sent: &Sent,
    id: &Uuid,
    c: &Candidate,
) -> Verdict {
    if sent.contains(id) {
        return Verdict::AlreadySent;
    }
    let Some(rule) = c.rule.config(cfg) else {
        return Verdict::Quiet;
    };
    let window = i64::try_from(rule.fan_window.as_millis()).unwrap_or(i64::MAX);
    if rule.per_fan > 0
        && sent.fan_count(c.fan_id, c.rule, c.server_time, window) >= rule.per_fan as usize
    {
        return Verdict::FanLimited;
    }
    if cfg.associate_per_hour > 0
        && sent.associate_count(&c.associate, c.server_time, 3_600_000)
            >= cfg.associate_per_hour as usize
    {
        return Verdict::AssociateLimited;
    }
    match rule.quiet_hours {
        QuietHours::Drop if quiet.contains(c.server_time) => Verdict::Quiet,
        QuietHours::Defer => Verdict::Send {
            deliver_after: quiet.end_after(c.server_time),
        },
        _ => Verdict::Send {
            deliver_after: c.server_time,
        },
    }
}

#[cfg(test)]
mod tests;
