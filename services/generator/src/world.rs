//! The generator's world: brands, their Official Accounts, stores, associates, QR scenes,
//! pushes and articles, menu buttons and fan profiles, built deterministically from the
//! [`Spec`](crate::spec::Spec) and its seed.
//!
//! Events reference the world (menu keys, scenes, articles, associates, fans), and the
//! world publishes itself as dimension records, so enrichment can be checked end to end:
//! what the generator meant is what the pipeline must resolve. The world is published as
//! its end state before the events: a profile already carries a follow or an unfollow that
//! happens during the span.
//!
//! Shapes: menu categories 45/33/22 (seed 000); articles per push 1: 74.32%, 2: 14.49%
//! (seed 000), at most 3 here, over the world's pushes exact to rounding; 4 pushes a month
//! on service accounts, all that WeChat allows (seed 000: 65.71% of brands use all 4, the
//! others 3 here), 2 on subscription accounts (every brand pushes at least twice), a
//! quarter of all pushes to a segment; publish times by the seed's weekday × hour table;
//! relationship segments prospect / customer / VIP (seed 002) at 80/17/3; new follows in
//! the span by source search 41.4%, QR code 27.7%, paid media 1.15% (seed 000), exact to
//! rounding; 0.4% of the fans a push reaches unfollow within 24 h (seed 000); associates in
//! stores, some of whom left (seeds 001, 004), with a skill that drives their code's scans
//! and their replies.
//!
//! Fans differ: each has an activity propensity, lognormal with a heavy tail, that weighs
//! every choice of a fan (who clicks, scans, writes, reads a push), so most fans interact
//! 0–2 times a month and about 1 in 11 more than 4 times (seed 000: 9.33% monthly active).

mod build;
mod draw;
mod lookup;
mod model;
mod naming;
mod pushes;
mod seed;

pub use draw::{apportion, standard_normal};
pub use model::{Account, Button, Fan, Push, World};
pub use naming::{follow_source_group, openid, segment_name};
pub use seed::{ACTIVITY_SIGMA, DAY_MS, PUSH_HEATMAP, QR_FOLLOW_SOURCE, UNFOLLOW_AFTER_PUSH};

pub use wxpulse_runtime::calendar::{
    month_start_ms, next_month, shanghai, Civil, SHANGHAI_OFFSET_MS,
};

#[cfg(test)]
mod tests;
