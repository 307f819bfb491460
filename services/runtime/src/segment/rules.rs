//! The segment rules: relationship from the profile, lifecycle from the follow times and
//! the previous interaction, and the thresholds. Pure functions of their inputs, below the
//! per-fan state (`fans.rs`) that feeds them.

use std::time::Duration;

use crate::enrich::{CustomerStatus, FanProfile};

/// Relationship segment (seed 002), or unknown when the fan has no profile.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Relationship {
    /// Follower without a purchase.
    Prospect,
    /// Has bought.
    Customer,
    /// Top tier.
    Vip,
    /// No profile (yet), or a status this build does not know.
    Unknown,
}

impl Relationship {
    /// Stored name.
    pub const fn as_str(self) -> &'static str {
        match self {
            Relationship::Prospect => "prospect",
            Relationship::Customer => "customer",
            Relationship::Vip => "vip",
            Relationship::Unknown => "unknown",
        }
    }

    /// From its stored name.
    pub fn parse(name: &str) -> Option<Self> {
        [Self::Prospect, Self::Customer, Self::Vip, Self::Unknown]
            .into_iter()
            .find(|r| r.as_str() == name)
    }

    /// From the fan's profile.
    pub fn of(profile: Option<&FanProfile>) -> Self {
        match profile.map(|p| p.status) {
            Some(CustomerStatus::Prospect) => Relationship::Prospect,
            Some(CustomerStatus::Customer) => Relationship::Customer,
            Some(CustomerStatus::Vip) => Relationship::Vip,
            Some(CustomerStatus::Other) | None => Relationship::Unknown,
        }
    }
}

/// Lifecycle stage at event time (seed 001).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lifecycle {
    /// Followed within `segment.new_for` (30 days).
    New,
    /// Interacting, neither new nor back from dormancy.
    Active,
    /// Back after `segment.dormant_after` (60 days) without an interaction: the event
    /// wakes a dormant fan, which is what re-engagement campaigns count.
    Dormant,
    /// Unfollowed before this event (e.g. still reading forwarded articles).
    Churned,
}

impl Lifecycle {
    /// Stored name.
    pub const fn as_str(self) -> &'static str {
        match self {
            Lifecycle::New => "new",
            Lifecycle::Active => "active",
            Lifecycle::Dormant => "dormant",
            Lifecycle::Churned => "churned",
        }
    }

    /// From its stored name.
    pub fn parse(name: &str) -> Option<Self> {
        [Self::New, Self::Active, Self::Dormant, Self::Churned]
            .into_iter()
            .find(|l| l.as_str() == name)
    }
}

/// The thresholds, from config.
#[derive(Debug, Clone, Copy)]
pub struct Thresholds {
    /// ms a fan stays new after following.
    pub new_for_ms: i64,
    /// ms without an interaction that make a fan dormant.
    pub dormant_after_ms: i64,
}

impl Thresholds {
    /// From `segment.new_for` and `segment.dormant_after`.
    pub fn new(new_for: Duration, dormant_after: Duration) -> Self {
        Thresholds {
            new_for_ms: new_for.as_millis() as i64,
            dormant_after_ms: dormant_after.as_millis() as i64,
        }
    }
}

/// The lifecycle stage of an interaction at `t`, given the fan's profile and the time of
/// the fan's previous interaction (`None`: none known). Pure, so it is property-tested.
///
/// In order: churned if the profile's last unfollow is at or before `t` and after its
/// last follow; new within `new_for` of the follow; dormant if the fan's previous known
/// interaction is at least `dormant_after` before `t`; else active. A fan with no known
/// previous interaction is active: a history that starts with the deployment is no
/// evidence of dormancy, and calling every fan's first event "dormant" would swamp the
/// segment.
pub fn lifecycle(
    t: i64,
    profile: Option<&FanProfile>,
    previous: Option<i64>,
    th: Thresholds,
) -> Lifecycle {
    let followed = profile.and_then(FanProfile::followed_at);
    if let Some(unfollowed) = profile.and_then(FanProfile::unfollowed_at) {
        if unfollowed <= t && followed.is_none_or(|f| f < unfollowed) {
            return Lifecycle::Churned;
        }
    }
    if let Some(f) = followed {
        if t < f + th.new_for_ms {
            return Lifecycle::New;
        }
    }
    match previous {
        Some(before) if t - before >= th.dormant_after_ms => Lifecycle::Dormant,
        _ => Lifecycle::Active,
    }
}

/// A fan's segment on one event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Segment {
    /// Prospect, customer, VIP or unknown.
    pub relationship: Relationship,
    /// New, active, dormant or churned.
    pub lifecycle: Lifecycle,
    /// The fan's interactions in this stream this calendar month so far, this one included.
    pub month_interactions: u32,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::calendar::month_of;
    use proptest::prelude::*;

    const DAY: i64 = 86_400_000;
    /// 2025-03-15T00:00:00Z.
    const T: i64 = 1_741_996_800_000;

    fn th() -> Thresholds {
        Thresholds::new(
            Duration::from_secs(30 * 86_400),
            Duration::from_secs(60 * 86_400),
        )
    }

    fn profile(followed: Option<i64>, unfollowed: Option<i64>) -> FanProfile {
        FanProfile::from_crm(CustomerStatus::Customer, None, followed, unfollowed)
    }

    #[test]
    fn months_are_beijing_months() {
        assert_eq!(month_of(T), 202503);
        // 2025-03-31T16:00:00Z is 2025-04-01 00:00 in Shanghai.
        assert_eq!(month_of(1_743_436_800_000), 202504);
        assert_eq!(month_of(1_743_436_800_000 - 1), 202503);
        // 2024-12-31T16:00Z = 2025-01-01 Beijing; leap day 2024-02-29.
        assert_eq!(month_of(1_735_660_800_000), 202501);
        assert_eq!(month_of(1_709_164_800_000), 202402);
    }

    #[test]
    fn lifecycle_rules_in_order() {
        let new = profile(Some(T - 10 * DAY), None);
        assert_eq!(lifecycle(T, Some(&new), None, th()), Lifecycle::New);
        let old = profile(Some(T - 400 * DAY), None);
        assert_eq!(
            lifecycle(T, Some(&old), Some(T - DAY), th()),
            Lifecycle::Active
        );
        assert_eq!(
            lifecycle(T, Some(&old), Some(T - 61 * DAY), th()),
            Lifecycle::Dormant
        );
        assert_eq!(lifecycle(T, Some(&old), None, th()), Lifecycle::Active);
        assert_eq!(lifecycle(T, None, None, th()), Lifecycle::Active);
        let gone = profile(Some(T - 400 * DAY), Some(T - DAY));
        assert_eq!(
            lifecycle(T, Some(&gone), Some(T - DAY), th()),
            Lifecycle::Churned
        );
        // Before the unfollow the fan was not churned yet.
        assert_eq!(
            lifecycle(T - 2 * DAY, Some(&gone), Some(T - 3 * DAY), th()),
            Lifecycle::Active
        );
        // Followed again after unfollowing: new again.
        let back = profile(Some(T - DAY), Some(T - 5 * DAY));
        assert_eq!(lifecycle(T, Some(&back), None, th()), Lifecycle::New);
    }

    proptest! {
        /// Lifecycle is a function of its inputs, and churned only after an unfollow.
        #[test]
        fn churned_only_after_unfollow(t in 0i64..400 * DAY, f in 0i64..400 * DAY, prev in proptest::option::of(0i64..400 * DAY)) {
            let p = profile(Some(T + f), None);
            prop_assert_ne!(lifecycle(T + t, Some(&p), prev.map(|x| T + x), th()), Lifecycle::Churned);
        }
    }
}
