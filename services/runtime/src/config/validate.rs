//! Validation: every constraint between and within the sections, checked together so a bad
//! deployment fails at startup with the full list of problems.

use super::http::check_tls;
use super::kafka::{check_settings, PROTECTED_CLIENT_KEYS};
use super::sections::{
    Config, ConfigError, DEVELOPMENT_PII_KEY, MAX_ATTRIBUTION_WINDOW, MAX_REPLY_WINDOW,
};

impl Config {
    /// Checks every constraint and returns all violations together.
    pub fn validate(&self, production: bool) -> Result<(), ConfigError> {
        let mut errors = Vec::new();
        let k = &self.kafka;
        if k.brokers.trim().is_empty() {
            errors.push("kafka.brokers is empty".to_string());
        }
        if k.dead_letter_topic.trim().is_empty() {
            errors.push("kafka.dead_letter_topic is empty".to_string());
        }
        if !matches!(
            k.assignment_strategy.as_str(),
            "cooperative-sticky" | "range"
        ) {
            errors.push(format!(
                "kafka.assignment_strategy must be cooperative-sticky or range, not {:?}",
                k.assignment_strategy
            ));
        }
        for (key, why) in PROTECTED_CLIENT_KEYS {
            if k.client.contains_key(*key) {
                errors.push(format!("kafka.client.\"{key}\" cannot be set: {why}"));
            }
        }
        errors.extend(check_settings(k));
        if k.connect_timeout.is_zero() {
            errors.push("kafka.connect_timeout must be > 0".into());
        }
        if k.heartbeat_interval >= k.session_timeout {
            errors
                .push("kafka.heartbeat_interval must be shorter than kafka.session_timeout".into());
        }
        if k.session_timeout > k.max_poll_interval {
            errors.push(
                "kafka.session_timeout must not be longer than kafka.max_poll_interval \
                 (librdkafka refuses the consumer otherwise)"
                    .into(),
            );
        }
        if k.drain_timeout >= k.max_poll_interval {
            errors.push(
                "kafka.drain_timeout must be shorter than kafka.max_poll_interval, or a slow \
                 drain gets the consumer evicted from its group"
                    .into(),
            );
        }
        if self.clickhouse.insert_timeout >= k.drain_timeout {
            errors.push(
                "clickhouse.insert_timeout must be shorter than kafka.drain_timeout so an \
                 in-flight insert resolves before a revoked partition is let go"
                    .into(),
            );
        }
        if !self.clickhouse.url.starts_with("http://")
            && !self.clickhouse.url.starts_with("https://")
        {
            errors.push(format!(
                "clickhouse.url must be http(s)://, not {:?}",
                self.clickhouse.url
            ));
        }
        check_tls(
            &self.clickhouse.url,
            &self.clickhouse.tls,
            "clickhouse",
            &mut errors,
        );
        let r = &self.schema_registry;
        if !r.url.is_empty() && !r.url.starts_with("http://") && !r.url.starts_with("https://") {
            errors.push(format!(
                "schema_registry.url must be empty or http(s)://, not {:?}",
                r.url
            ));
        }
        check_tls(&r.url, &r.tls, "schema_registry", &mut errors);
        if !r.username.is_empty() && r.password.is_empty() {
            errors.push(
                "schema_registry.username is set without schema_registry.password (or \
                 password_file)"
                    .into(),
            );
        }
        if r.username.is_empty() && !r.password.is_empty() {
            errors.push("schema_registry.password is set without schema_registry.username".into());
        }
        if !r.bearer_token.is_empty() && !r.username.is_empty() {
            errors.push(
                "schema_registry.bearer_token and schema_registry.username are both set: \
                 choose bearer or Basic auth"
                    .into(),
            );
        }
        if self.batch.max_rows == 0 || self.batch.max_bytes == 0 || self.batch.queue_capacity == 0 {
            errors.push(
                "batch.max_rows, batch.max_bytes and batch.queue_capacity must be > 0".into(),
            );
        }
        if self.batch.max_age.is_zero() {
            errors.push("batch.max_age must be > 0".into());
        }
        if self.batch.stuck_after <= self.clickhouse.insert_timeout {
            errors.push(
                "batch.stuck_after must be longer than clickhouse.insert_timeout, or one slow \
                 insert attempt reads as a stuck partition"
                    .into(),
            );
        }
        match crate::dlq::limits::message_max_bytes(k.client.get("message.max.bytes").map(String::as_str)) {
            Err(e) => errors.push(e.to_string()),
            Ok(max) if k.dead_letter_truncate_bytes > max / 2 => errors.push(format!(
                "kafka.dead_letter_truncate_bytes ({}) must be at most half the producer's \
                 message.max.bytes ({max}), so a truncated dead letter fits with its key and detail",
                k.dead_letter_truncate_bytes
            )),
            Ok(_) => {}
        }
        if self.retry.initial_backoff.is_zero()
            || self.retry.initial_backoff > self.retry.max_backoff
        {
            errors.push("retry.initial_backoff must be > 0 and <= retry.max_backoff".into());
        }
        if self.dimensions.load_timeout.is_zero() {
            errors.push("dimensions.load_timeout must be > 0".into());
        }
        if self.segment.new_for.is_zero() || self.segment.dormant_after.is_zero() {
            errors.push("segment.new_for and segment.dormant_after must be > 0".into());
        }
        if self.segment.max_fans == 0 || self.segment.max_dormant_fans == 0 {
            errors.push("segment.max_fans and segment.max_dormant_fans must be > 0".into());
        }
        if self.overflow.window_records == 0
            || self.overflow.max_per_window == 0
            || self.overflow.max_per_window >= self.overflow.window_records
        {
            errors.push(
                "overflow.window_records and overflow.max_per_window must be > 0, and \
                 max_per_window < window_records"
                    .into(),
            );
        }
        if self.dedup.max_ids == 0 {
            errors.push("dedup.max_ids must be > 0".into());
        }
        if !self.dedup.horizon.is_zero() && self.dedup.horizon < self.dedup.window {
            errors.push("dedup.horizon must be 0s (off) or >= dedup.window".into());
        }
        let fp = self.dedup.horizon_false_positive;
        if !(fp > 0.0 && fp <= 0.1) || self.dedup.horizon_max_bytes == 0 {
            errors.push(format!(
                "dedup.horizon_false_positive must be in (0, 0.1] (not {fp}) and dedup.horizon_max_bytes > 0"
            ));
        }
        if self.chat.reply_window.is_zero() || self.chat.reply_window > MAX_REPLY_WINDOW {
            errors.push(format!(
                "chat.reply_window must be > 0 and <= 30 days, not {} s",
                self.chat.reply_window.as_secs()
            ));
        }
        if self.chat.max_waits == 0 {
            errors.push("chat.max_waits must be > 0".into());
        }
        if self.attribution.window.is_zero() || self.attribution.window > MAX_ATTRIBUTION_WINDOW {
            errors.push(format!(
                "attribution.window must be > 0 and <= 90 days, not {} s",
                self.attribution.window.as_secs()
            ));
        }
        if self.validation.max_payload_bytes == 0 {
            errors.push("validation.max_payload_bytes must be > 0".into());
        }
        if self.metrics.listen.parse::<std::net::SocketAddr>().is_err() {
            errors.push(format!(
                "metrics.listen is not host:port: {:?}",
                self.metrics.listen
            ));
        }
        if !matches!(self.log.format.as_str(), "json" | "pretty") {
            errors.push(format!(
                "log.format must be json or pretty, not {:?}",
                self.log.format
            ));
        }
        let g = &self.gateway;
        for (rate, burst, name) in [
            (g.callback_rate_limit, g.callback_burst, "callback"),
            (g.beacon_rate_limit, g.beacon_burst, "beacon"),
        ] {
            if rate > 0 && burst == 0 {
                errors.push(format!(
                    "gateway.{name}_burst must be > 0 when gateway.{name}_rate_limit is set"
                ));
            }
        }
        errors.extend(self.notifier.problems());
        if self.pii.key.expose().len() < 16 {
            errors.push("pii.key must be at least 16 bytes".into());
        }
        if production && self.pii.key.expose() == DEVELOPMENT_PII_KEY {
            errors.push("pii.key is the development default; set WXPULSE__PII__KEY".into());
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(ConfigError::Invalid(errors))
        }
    }
}
