//! What to generate: the knobs of a run and the streams it spreads events over, and the
//! marker rows carry for a key no record has. The bottom of the generator: every other
//! module may import it, it imports none of them.

use wxpulse_runtime::streams::EventStream;

/// What to generate.
#[derive(Debug, Clone)]
pub struct Spec {
    /// RNG seed: same seed, same records.
    pub seed: u64,
    /// Brands.
    pub brands: u32,
    /// Official Accounts per brand.
    pub accounts_per_brand: u32,
    /// Fans per account.
    pub fans_per_account: u32,
    /// Distinct valid interactions.
    pub events: u64,
    /// Event times are spread over [start_ms, end_ms).
    pub start_ms: i64,
    /// End of the span.
    pub end_ms: i64,
    /// Share of extra copies of valid events (upstream retries, 5 s later).
    pub duplicate_share: f64,
    /// Share of valid events sent again minutes to days later (a gateway replaying after
    /// an outage, a mini-program retrying after reconnecting): a third within the hour, a
    /// third within the day, a third up to 3 days later. Same bytes, so the pipeline must
    /// drop them as duplicates.
    pub resend_share: f64,
    /// Share of valid events that arrive hours to days late.
    pub late_share: f64,
    /// Share of extra malformed records.
    pub malformed_share: f64,
    /// Share of keys events carry that no dimension record has (button keys, scenes,
    /// articles, associates) and of fans without a profile, so `unknown` gets exercised.
    pub unknown_dimension_share: f64,
    /// Share of extra interactions of accounts the world does not publish (a misrouted
    /// feed); the pipeline dead-letters them as `unknown_account` once accounts are
    /// published, so the truth counts them there.
    pub unknown_account_share: f64,
}

/// The four interaction streams with their topic and share of interactions (seed 000).
pub const STREAMS: [(&str, &str, f64); 4] = [
    ("menu_click", EventStream::MenuClicks.topic(), 0.70),
    ("article_read", EventStream::ArticleReads.topic(), 0.13),
    ("chat_message", EventStream::ChatMessages.topic(), 0.11),
    ("qr_scan", EventStream::QrScans.topic(), 0.06),
];

/// When an upstream retry arrives after the original (WeChat: 5 s timeout, then retry).
pub const RETRY_AFTER_MS: i64 = 5_000;

/// What rows carry for a key no dimension record has (the pipeline's marker).
pub const UNKNOWN: &str = "unknown";
