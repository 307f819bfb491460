//! The plan: every valid event the generator will produce — who, when, what — decided
//! before any is encoded, so events can depend on the world and on each other (a read
//! follows its push, a reply its message, a QR follow the profile's follow time).
//!
//! Fans are drawn by activity propensity × the time they follow during the span, and the
//! event falls in that time. Reads are planned per push at the seed's open rates; chats
//! as threads with reply times; QR follows at the profiles' follow times.

mod chats;
mod model;
mod planner;
mod reads;

use rand::prelude::*;

use crate::spec::{Spec, STREAMS};
use crate::world::{apportion, World};
pub(crate) use model::{Article, Planned, Read, Scene, What};
use planner::Planner;
pub use reads::{
    depth_weibull, DEPTH_POINTS, OPEN_MULTI_CUMULATIVE, OPEN_MULTI_FIRST, OPEN_SINGLE,
    SEGMENTED_LIFT,
};

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

// The conversions' tests build chat messages by hand.
#[cfg(test)]
pub(crate) use model::{Associate, Chat};
