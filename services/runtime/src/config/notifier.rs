//! The notifier's section (`wxpulse-notifier`): which fan behaviours tell an associate,
//! how often, and when not. Seed 000's WeCom CRM chapter (通知提醒): the decisive feature of
//! social selling is a notification at the moment a customer acts — and an associate who
//! gets fifty a day, or one at 3 a.m., stops reading them, hence the limits and quiet hours.

use std::time::Duration;

use serde::Deserialize;

/// `[notifier]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NotifierConfig {
    /// Topic the notifications are produced to, keyed by associate userid.
    pub topic: String,
    /// How much of the notification topic is read back at start and after a rebalance:
    /// what was already sent (never sent twice) and what counts against the limits. At
    /// least the longest limit window.
    #[serde(with = "humantime_serde")]
    pub lookback: Duration,
    /// A trigger received longer ago than this tells nobody (a backlog read after an
    /// outage would otherwise flood associates with news of yesterday).
    #[serde(with = "humantime_serde")]
    pub max_age: Duration,
    /// Start of the quiet hours, `HH:MM` Asia/Shanghai.
    pub quiet_start: String,
    /// End of the quiet hours, `HH:MM` Asia/Shanghai (may be earlier than the start: the
    /// hours then span midnight). Equal to the start: no quiet hours.
    pub quiet_end: String,
    /// Most notifications per associate in any hour of server time, all rules together;
    /// 0: no limit.
    pub associate_per_hour: u32,
    /// A read of a push article to at least this many screens is high intent.
    pub high_intent_depth: f32,
    /// A fan's WeCom message with no reply from the associate for this long is unanswered.
    #[serde(with = "humantime_serde")]
    pub reply_target: Duration,
    /// A partition that received nothing for this long judges its waits by the wall
    /// clock instead of the newest server time it saw (an idle chat would otherwise never
    /// tell an associate of the last message of the day).
    #[serde(with = "humantime_serde")]
    pub idle_after: Duration,
    /// Most waiting messages held (all partitions); past it the oldest are told at once.
    pub max_waits: usize,
    /// A birthday this many days ahead (Asia/Shanghai dates) tells the associate.
    pub birthday_days_ahead: u16,
    /// How often the scheduled rules (birthday, replenishment) read their ClickHouse
    /// views (`v_birthdays_upcoming`, `v_replenishment_due`), and the relationship changes
    /// of the last `max_age` are read from `fan_relationship_changes` (those made while no
    /// notifier ran, which the profiles loaded at start do not show as changes).
    #[serde(with = "humantime_serde")]
    pub scheduled_every: Duration,
    /// Page of the associate's WeCom sidebar or mini-program a notification opens.
    pub link_page: String,
    /// Each rule's switches and limits.
    pub rules: NotifierRules,
}

/// One entry per rule.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NotifierRules {
    /// A customer or VIP scans the associate's or their store's QR code: in the store now.
    pub in_store_scan: RuleConfig,
    /// A customer or VIP reads a push article deeply or clicks its call to action.
    pub high_intent_read: RuleConfig,
    /// A fan's message waits longer than `reply_target`.
    pub unanswered_message: RuleConfig,
    /// A purchase by one of the associate's fans.
    pub purchase: RuleConfig,
    /// A refund by one of the associate's fans.
    pub refund: RuleConfig,
    /// The fan's relationship (prospect, customer, VIP) changed in the CRM's profile.
    pub tier_change: RuleConfig,
    /// The fan's birthday is `birthday_days_ahead` days away.
    pub birthday: RuleConfig,
    /// The fan's usual time between purchases has passed since their last one.
    pub replenishment: RuleConfig,
}

/// What a notification does during the quiet hours.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum QuietHours {
    /// Not sent: the moment has passed by morning (a fan in the store at 22:30).
    Drop,
    /// Sent with `deliver_after` at the end of the quiet hours (a purchase at midnight).
    Defer,
    /// Sent at once.
    Ignore,
}

/// A rule's switches and limits.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleConfig {
    /// Whether the rule fires at all.
    pub enabled: bool,
    /// Relationships (prospect, customer, vip, unknown) whose fans it fires for; empty:
    /// every fan.
    pub relationships: Vec<String>,
    /// Most notifications of this rule per fan within `fan_window`; 0: no limit.
    pub per_fan: u32,
    /// The per-fan window (server time).
    #[serde(with = "humantime_serde")]
    pub fan_window: Duration,
    /// What it does in the quiet hours.
    pub quiet_hours: QuietHours,
}

/// Parses `HH:MM` into minutes after midnight.
pub fn minute_of_day(hhmm: &str) -> Option<u32> {
    let (h, m) = hhmm.split_once(':')?;
    let (h, m): (u32, u32) = (h.parse().ok()?, m.parse().ok()?);
    (h < 24 && m < 60).then_some(h * 60 + m)
}

impl NotifierConfig {
    /// Server time (Unix ms) before which a trigger at `now_ms` is too old to tell anyone:
    /// the one cut-off of the live path and of the poll for changes made while none ran.
    pub fn stale_before(&self, now_ms: i64) -> i64 {
        now_ms.saturating_sub(i64::try_from(self.max_age.as_millis()).unwrap_or(i64::MAX))
    }

    /// The rules by name, for validation and metrics.
    pub fn named_rules(&self) -> [(&'static str, &RuleConfig); 8] {
        let r = &self.rules;
        [
            ("in_store_scan", &r.in_store_scan),
            ("high_intent_read", &r.high_intent_read),
            ("unanswered_message", &r.unanswered_message),
            ("purchase", &r.purchase),
            ("refund", &r.refund),
            ("tier_change", &r.tier_change),
            ("birthday", &r.birthday),
            ("replenishment", &r.replenishment),
        ]
    }

    /// Every problem of the section.
    pub(super) fn problems(&self) -> Vec<String> {
        let mut errors = Vec::new();
        if self.topic.trim().is_empty() {
            errors.push("notifier.topic is empty".to_string());
        }
        for (key, value) in [
            ("quiet_start", &self.quiet_start),
            ("quiet_end", &self.quiet_end),
        ] {
            if minute_of_day(value).is_none() {
                errors.push(format!("notifier.{key} is not HH:MM: {value:?}"));
            }
        }
        if self.high_intent_depth.is_nan() || self.high_intent_depth <= 0.0 {
            errors.push("notifier.high_intent_depth must be > 0".into());
        }
        // A trigger young enough to send must still be remembered when it is read again.
        if self.max_age.is_zero() || self.max_age > self.lookback {
            errors.push(format!(
                "notifier.max_age must be > 0 and <= notifier.lookback ({} s), not {} s",
                self.lookback.as_secs(),
                self.max_age.as_secs()
            ));
        }
        if self.scheduled_every.is_zero() || self.birthday_days_ahead > 30 {
            errors.push(
                "notifier.scheduled_every must be > 0 and notifier.birthday_days_ahead <= 30 (the view's horizon)"
                    .into(),
            );
        }
        if self.reply_target.is_zero() || self.idle_after.is_zero() || self.max_waits == 0 {
            errors.push(
                "notifier.reply_target, notifier.idle_after and notifier.max_waits must be > 0"
                    .into(),
            );
        }
        let hour = Duration::from_secs(3600);
        let longest = self
            .named_rules()
            .iter()
            .map(|(_, r)| r.fan_window)
            .chain([hour])
            .max()
            .unwrap_or(hour);
        if self.lookback < longest {
            errors.push(format!(
                "notifier.lookback ({} s) must cover the longest limit window ({} s)",
                self.lookback.as_secs(),
                longest.as_secs()
            ));
        }
        for (name, rule) in self.named_rules() {
            if rule.per_fan > 0 && rule.fan_window.is_zero() {
                errors.push(format!(
                    "notifier.rules.{name}.fan_window must be > 0 when per_fan is set"
                ));
            }
            for r in &rule.relationships {
                if !matches!(r.as_str(), "prospect" | "customer" | "vip" | "unknown") {
                    errors.push(format!(
                        "notifier.rules.{name}.relationships: {r:?} is not prospect, customer, vip or unknown"
                    ));
                }
            }
        }
        errors
    }
}

#[cfg(test)]
mod tests {
    use super::minute_of_day;

    #[test]
    fn quiet_hour_bounds_parse_as_minutes() {
        assert_eq!(minute_of_day("22:00"), Some(1320));
        assert_eq!(minute_of_day("09:30"), Some(570));
        assert_eq!(minute_of_day("24:00"), None);
        assert_eq!(minute_of_day("9"), None);
    }
}
