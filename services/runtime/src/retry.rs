//! One backoff for every retry loop (inserts, restores, schema fetches, dead letters):
//! exponential with jitter, so replicas of a service that failed together do not retry
//! together, and every wait ends early when the work is no longer wanted (revoked
//! partition, shutdown).

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::config::RetryConfig;

/// Exponential backoff with "equal jitter": each wait is uniform in `[d/2, d]`, where `d`
/// doubles from `retry.initial_backoff` up to `retry.max_backoff`.
#[derive(Debug, Clone)]
pub struct Backoff {
    next: Duration,
    max: Duration,
    seed: u64,
}

impl Backoff {
    /// A backoff starting at `cfg.initial_backoff`.
    pub fn new(cfg: &RetryConfig) -> Self {
        Self::from_bounds(cfg.initial_backoff, cfg.max_backoff)
    }

    /// A backoff from explicit bounds.
    pub fn from_bounds(initial: Duration, max: Duration) -> Self {
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0x9E37_79B9_7F4A_7C15, |d| d.as_nanos() as u64)
            | 1;
        Backoff {
            next: initial.max(Duration::from_millis(1)),
            max: max.max(initial),
            seed,
        }
    }

    /// The next wait, jittered; advances the exponent.
    pub fn next_delay(&mut self) -> Duration {
        // xorshift64: jitter needs spread, not cryptographic quality.
        self.seed ^= self.seed << 13;
        self.seed ^= self.seed >> 7;
        self.seed ^= self.seed << 17;
        let full = self.next;
        self.next = (self.next * 2).min(self.max);
        let half = full / 2;
        let spread = full.saturating_sub(half).as_nanos() as u64;
        let extra = if spread == 0 {
            0
        } else {
            self.seed % (spread + 1)
        };
        half + Duration::from_nanos(extra)
    }

    /// Sleeps the next delay; `false` (at once) when `cancel` fires first.
    pub async fn wait(&mut self, cancel: &CancellationToken) -> bool {
        let delay = self.next_delay();
        tokio::select! {
            _ = tokio::time::sleep(delay) => true,
            _ = cancel.cancelled() => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn delays_stay_within_half_and_full_of_a_capped_doubling(
            initial_ms in 1u64..2_000,
            max_ms in 1u64..60_000,
            steps in 1usize..40,
        ) {
            let initial = Duration::from_millis(initial_ms);
            let max = Duration::from_millis(max_ms).max(initial);
            let mut b = Backoff::from_bounds(initial, max);
            let mut full = initial;
            for _ in 0..steps {
                let d = b.next_delay();
                prop_assert!(d >= full / 2 && d <= full, "{d:?} outside [{:?}, {full:?}]", full / 2);
                full = (full * 2).min(max);
            }
        }
    }

    #[tokio::test]
    async fn a_cancelled_wait_returns_at_once() {
        let cancel = CancellationToken::new();
        cancel.cancel();
        let mut b = Backoff::from_bounds(Duration::from_secs(60), Duration::from_secs(60));
        let started = std::time::Instant::now();
        assert!(!b.wait(&cancel).await);
        assert!(started.elapsed() < Duration::from_secs(1));
    }
}
