//! Per-account admission: how many events one account may send per second, separately for
//! WeChat's signed callbacks and for the article-read beacon (whose key is public). GCRA
//! (`governor`), keyed by account id; keys are only created for accounts that passed the
//! signature or key check, so memory grows with the accounts file, never with a flood.

use std::num::NonZeroU32;

use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use wxpulse_runtime::config::GatewayConfig;

/// Which budget a request draws on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lane {
    /// A WeChat or WeCom callback.
    Callback,
    /// Reads posted to `/v1/article_reads`.
    Beacon,
}

/// The two budgets; `None` where the setting is 0 (unlimited).
pub struct Limits {
    callback: Option<DefaultKeyedRateLimiter<String>>,
    beacon: Option<DefaultKeyedRateLimiter<String>>,
}

/// Why a request was not admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// Over the rate now; the sender may come back later.
    OverRate,
    /// More events in one request than the burst can ever allow.
    OverBurst,
}

fn limiter(rate: u32, burst: u32) -> Option<DefaultKeyedRateLimiter<String>> {
    let rate = NonZeroU32::new(rate)?;
    let burst = NonZeroU32::new(burst).unwrap_or(rate);
    Some(RateLimiter::keyed(
        Quota::per_second(rate).allow_burst(burst),
    ))
}

impl Limits {
    /// The budgets of `[gateway]`.
    pub fn new(config: &GatewayConfig) -> Limits {
        Limits {
            callback: limiter(config.callback_rate_limit, config.callback_burst),
            beacon: limiter(config.beacon_rate_limit, config.beacon_burst),
        }
    }

    /// No limits (tests and benchmarks of everything else).
    pub fn unlimited() -> Limits {
        Limits {
            callback: None,
            beacon: None,
        }
    }

    /// Admits `events` of `account` on `lane`, or says why not.
    pub fn admit(&self, lane: Lane, account: &str, events: u32) -> Result<(), Refused> {
        let limiter = match lane {
            Lane::Callback => &self.callback,
            Lane::Beacon => &self.beacon,
        };
        let (Some(limiter), Some(n)) = (limiter, NonZeroU32::new(events)) else {
            return Ok(());
        };
        let key = account.to_string();
        match limiter.check_key_n(&key, n) {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_)) => Err(Refused::OverRate),
            Err(_) => Err(Refused::OverBurst),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(rate: u32, burst: u32) -> GatewayConfig {
        let mut c = wxpulse_runtime::config::Config::load(None, Vec::new())
            .expect("defaults")
            .gateway;
        c.callback_rate_limit = rate;
        c.callback_burst = burst;
        c.beacon_rate_limit = rate;
        c.beacon_burst = burst;
        c
    }

    #[test]
    fn an_account_over_its_burst_is_refused_and_others_are_not() {
        let limits = Limits::new(&config(1, 3));
        for _ in 0..3 {
            assert_eq!(limits.admit(Lane::Callback, "wxa", 1), Ok(()));
        }
        assert_eq!(
            limits.admit(Lane::Callback, "wxa", 1),
            Err(Refused::OverRate)
        );
        assert_eq!(limits.admit(Lane::Callback, "wxb", 1), Ok(()));
        // The lanes are separate budgets.
        assert_eq!(limits.admit(Lane::Beacon, "wxa", 3), Ok(()));
        assert_eq!(
            limits.admit(Lane::Beacon, "wxb", 4),
            Err(Refused::OverBurst)
        );
    }

    #[test]
    fn zero_means_unlimited() {
        let limits = Limits::new(&config(0, 0));
        for _ in 0..10_000 {
            assert_eq!(limits.admit(Lane::Callback, "wxa", 1), Ok(()));
        }
        assert_eq!(limits.admit(Lane::Beacon, "wxa", 0), Ok(()));
    }
}
