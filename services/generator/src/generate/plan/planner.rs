//! The planner: its state (the spec, the world, the plan's random stream, the events so
//! far) and what every stream's planning shares: picking a fan by propensity and time
//! following, placing an event in server or client time, scenes, delays. Each stream's
//! own planning is an `impl` block of its own module ([`super::reads`], [`super::chats`]).

use rand::distributions::WeightedIndex;
use rand::prelude::*;
use rand_chacha::ChaCha8Rng;

use super::model::{Planned, Scene, What};
use crate::spec::Spec;
use crate::world::{standard_normal, World, DAY_MS};

/// A late event reaches the gateway this long after it happened, at least...
const LATE_MIN_MS: i64 = 3_600_000;
/// ...and at most (well inside the pipeline's 7-day lateness limit).
const LATE_MAX_MS: i64 = 3 * DAY_MS;

pub(super) struct Planner<'a> {
    pub(super) spec: &'a Spec,
    pub(super) world: &'a World,
    pub(super) rng: ChaCha8Rng,
    pub(super) offset: i64,
    pub(super) start: i64,
    pub(super) end: i64,
    /// First flat fan index of each account.
    base: Vec<usize>,
    /// Fans by activity × time following in the span, flat over accounts.
    pick: Option<WeightedIndex<f64>>,
    pub(super) out: Vec<Planned>,
}

impl<'a> Planner<'a> {
    pub(super) fn new(spec: &'a Spec, world: &'a World, offset: i64) -> Self {
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
    pub(super) fn following(&self, account: usize, fan: u32) -> (i64, i64) {
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
    pub(super) fn pick_fan(&mut self) -> (usize, u32, i64, i64) {
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
    pub(super) fn push_at_server(&mut self, account: usize, fan: u32, server: i64, what: What) {
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
    pub(super) fn push_at_client(&mut self, account: usize, fan: u32, client: i64, what: What) {
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
    pub(super) fn scene(&mut self, account: usize) -> Scene {
        if self.rng.gen_bool(self.spec.unknown_dimension_share) {
            Scene::Unknown(self.world.unknown_scene(account, &mut self.rng))
        } else {
            Scene::Known(self.world.pick_scene_index(account, &mut self.rng))
        }
    }

    /// The span's QR follows of the profiles, each at its follow time with its scene.
    pub(super) fn qr_follows(&mut self) -> Vec<(usize, u32, i64, Scene)> {
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
    pub(super) fn lognormal(&mut self, median_ms: f64, sigma: f64) -> i64 {
        (median_ms * (sigma * standard_normal(&mut self.rng)).exp()) as i64
    }

    /// `from` + a lognormal delay, inside [from, limit); uniform there when the delay
    /// would reach the limit (a push late in the span still gets its readers).
    pub(super) fn after(
        &mut self,
        from: i64,
        limit: i64,
        median_ms: f64,
        sigma: f64,
    ) -> Option<i64> {
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
}
