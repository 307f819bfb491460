//! Typed configuration of a consumer service.
//!
//! Layers, later wins: the defaults checked in at `config/default.toml` (embedded in the
//! binary), an optional file given with `--config`, then `WXPULSE__SECTION__KEY` environment
//! variables. [`Config::validate`] reports every problem at once so a bad deployment fails
//! at startup with the full list, not one error per restart.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use figment::providers::{Format, Serialized, Toml};
use figment::Figment;
use serde::Deserialize;

use crate::secret::{scalar_string, Secret};
use crate::tls::TlsConfig;

/// The defaults, embedded so a binary runs with no file at all.
pub const DEFAULT_TOML: &str = include_str!("../../../config/default.toml");

/// Why configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A layer did not parse or a value has the wrong type.
    #[error("configuration does not parse: {0}")]
    Parse(Box<figment::Error>),
    /// Values parse but contradict each other or are out of range; all are listed.
    #[error("invalid configuration:\n  - {}", .0.join("\n  - "))]
    Invalid(Vec<String>),
}

/// Everything a consumer service can be told.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Kafka connection and consumer behaviour.
    pub kafka: KafkaConfig,
    /// Where writer schemas come from.
    pub schema_registry: RegistryConfig,
    /// ClickHouse connection.
    pub clickhouse: ClickHouseConfig,
    /// Batching thresholds per partition.
    pub batch: BatchConfig,
    /// Backoff of retried inserts and dead-letter deliveries.
    pub retry: RetryConfig,
    /// What makes an event invalid.
    pub validation: ValidationConfig,
    /// Upstream-retry dedup window.
    pub dedup: DedupConfig,
    /// Prometheus and health endpoints.
    pub metrics: MetricsConfig,
    /// Logging.
    pub log: LogConfig,
    /// Pseudonymisation of fan ids.
    pub pii: PiiConfig,
    /// Dimension topics the services join events with.
    pub dimensions: DimensionsConfig,
    /// Fan segmentation thresholds.
    pub segment: SegmentConfig,
    /// Conversion attribution (the orders service).
    pub attribution: AttributionConfig,
    /// Reply waits (the chat-messages service).
    pub chat: ChatConfig,
    /// The callback gateway (`wxpulse-gateway`).
    pub gateway: GatewayConfig,
}

/// The callback gateway: where WeChat's callbacks arrive and how long they may wait.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GatewayConfig {
    /// Address of the callback endpoint (plain HTTP: TLS ends at the ingress).
    pub listen: String,
    /// TOML file of the Official Accounts (`[[account]]` app_id, token, encoding_aes_key);
    /// re-read when it changes, so an account is added or a key rotated without a restart.
    pub accounts_file: String,
    /// Larger callback bodies are refused (413).
    pub max_body_bytes: usize,
    /// How long a callback waits for the broker to acknowledge its event before the
    /// gateway answers 503 (WeChat gives up after 5 s and retries).
    #[serde(with = "humantime_serde")]
    pub answer_timeout: Duration,
    /// Callbacks (events) one account may send per second; 0 = unlimited. Over it: 429.
    pub callback_rate_limit: u32,
    /// Callbacks one account may send at once above the rate.
    pub callback_burst: u32,
    /// Article reads one account's beacon may send per second; 0 = unlimited. The key is
    /// public (page source), so this is what bounds a runaway or hostile page.
    pub beacon_rate_limit: u32,
    /// Beacon reads one account may send at once above the rate (at least one request's
    /// worth of reads, or that request is always refused).
    pub beacon_burst: u32,
}

/// Kafka settings; `client` passes raw librdkafka properties through (SASL/SSL).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KafkaConfig {
    /// Bootstrap servers, comma separated.
    pub brokers: String,
    /// Consumer group; empty means `wxpulse-<service>`.
    pub group_id: String,
    /// Topic to consume; empty means the service's own topic.
    pub topic: String,
    /// Where undecodable or invalid records go.
    pub dead_letter_topic: String,
    /// An oversized record's dead letter keeps only this many first bytes of its value
    /// (with the whole value's length and SHA-256), as does any envelope that would not
    /// fit the producer's `message.max.bytes`: a dead letter must always be deliverable.
    pub dead_letter_truncate_bytes: usize,
    /// Group session timeout.
    #[serde(with = "humantime_serde")]
    pub session_timeout: Duration,
    /// Group heartbeat interval.
    #[serde(with = "humantime_serde")]
    pub heartbeat_interval: Duration,
    /// librdkafka's max.poll.interval.ms.
    #[serde(with = "humantime_serde")]
    pub max_poll_interval: Duration,
    /// `cooperative-sticky` or `range`.
    pub assignment_strategy: String,
    /// Time to flush revoked partitions' batches before letting them go.
    #[serde(with = "humantime_serde")]
    pub drain_timeout: Duration,
    /// Raw librdkafka properties.
    #[serde(default)]
    pub client: ClientProperties,
    /// SASL user (`WXPULSE_KAFKA_SASL_USERNAME`); used when `security.protocol` is SASL_*.
    #[serde(default, deserialize_with = "scalar_string")]
    pub sasl_username: String,
    /// SASL password (`WXPULSE_KAFKA_SASL_PASSWORD`).
    #[serde(default)]
    pub sasl_password: Secret,
    /// File holding the SASL password (`WXPULSE_KAFKA_SASL_PASSWORD_FILE`), e.g. a mounted
    /// Kubernetes Secret; instead of `sasl_password`.
    #[serde(default)]
    pub sasl_password_file: String,
    /// How long a client may take to reach a broker and authenticate at startup before
    /// the command or service gives up with the reason.
    #[serde(with = "humantime_serde")]
    pub connect_timeout: Duration,
}

/// `[kafka.client]`: librdkafka properties, passed through as given. `Debug` hides the
/// values of secret ones (`ssl.key.password`, `sasl.oauthbearer.client.secret`, …).
#[derive(Clone, Default, Deserialize)]
#[serde(transparent)]
pub struct ClientProperties(pub BTreeMap<String, String>);

impl ClientProperties {
    /// Whether librdkafka property `key` holds a secret.
    pub fn is_secret(key: &str) -> bool {
        let key = key.to_ascii_lowercase();
        ["password", "secret", "key.pem", "oauthbearer.config"]
            .iter()
            .any(|w| key.contains(w))
    }

    /// The value as it may be shown: secret ones redacted.
    pub fn shown(&self, key: &str) -> String {
        match self.0.get(key) {
            Some(_) if Self::is_secret(key) => "<redacted>".to_string(),
            Some(v) => format!("{v:?}"),
            None => "<unset>".to_string(),
        }
    }
}

impl std::ops::Deref for ClientProperties {
    type Target = BTreeMap<String, String>;
    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl std::ops::DerefMut for ClientProperties {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.0
    }
}

impl std::fmt::Debug for ClientProperties {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut map = f.debug_map();
        for key in self.0.keys() {
            map.entry(key, &format_args!("{}", self.shown(key)));
        }
        map.finish()
    }
}

/// Schema registry; an empty URL means the schemas embedded in the binary.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegistryConfig {
    /// Confluent-compatible REST endpoint, or empty.
    pub url: String,
    /// Per request.
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
    /// Basic auth user (a managed registry's API key); empty = no Basic auth.
    #[serde(default, deserialize_with = "scalar_string")]
    pub username: String,
    /// Basic auth password (the API secret).
    #[serde(default)]
    pub password: Secret,
    /// File holding the Basic auth password, instead of `password`.
    #[serde(default)]
    pub password_file: String,
    /// Bearer token (`Authorization: Bearer`), instead of Basic auth.
    #[serde(default)]
    pub bearer_token: Secret,
    /// File holding the bearer token, instead of `bearer_token`.
    #[serde(default)]
    pub bearer_token_file: String,
    /// CA and client certificate for an `https://` URL.
    #[serde(default)]
    pub tls: TlsConfig,
}

/// ClickHouse HTTP interface.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClickHouseConfig {
    /// `http://host:8123`, or `https://host:8443` (TLS, see `tls`).
    pub url: String,
    /// Database holding wxpulse's tables.
    pub database: String,
    /// User.
    #[serde(deserialize_with = "scalar_string")]
    pub user: String,
    /// Password.
    pub password: Secret,
    /// File holding the password, instead of `password`.
    #[serde(default)]
    pub password_file: String,
    /// CA and client certificate for an `https://` URL.
    #[serde(default)]
    pub tls: TlsConfig,
    /// Upper bound of one insert attempt.
    #[serde(with = "humantime_serde")]
    pub insert_timeout: Duration,
}

/// Per-partition batch thresholds: flush at whichever is reached first.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BatchConfig {
    /// Rows per insert.
    pub max_rows: usize,
    /// Approximate bytes per insert.
    pub max_bytes: usize,
    /// Age of the oldest buffered record.
    #[serde(with = "humantime_serde")]
    pub max_age: Duration,
    /// Records queued between the Kafka thread and the pipeline.
    pub queue_capacity: usize,
    /// A flush (dead-letter delivery, then insert) in flight longer than this makes
    /// `/readyz` answer 503 and counts in `wxpulse_pipeline_flush_stuck_partitions`.
    #[serde(with = "humantime_serde")]
    pub stuck_after: Duration,
}

/// Exponential backoff bounds.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetryConfig {
    /// First wait.
    #[serde(with = "humantime_serde")]
    pub initial_backoff: Duration,
    /// Cap.
    #[serde(with = "humantime_serde")]
    pub max_backoff: Duration,
}

/// Validation bounds; events outside them are dead-lettered with their reason.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ValidationConfig {
    /// How far server_time may be ahead of this machine's clock.
    #[serde(with = "humantime_serde")]
    pub max_future_skew: Duration,
    /// How late (server_time − client_time) an event may arrive.
    #[serde(with = "humantime_serde")]
    pub max_lateness: Duration,
    /// Larger records are dead-lettered as oversized.
    pub max_payload_bytes: usize,
    /// What becomes of an event whose `app_id` is not in the account dimension.
    pub unknown_account: UnknownAccount,
}

/// What becomes of an event of an account the account dimension does not hold: such events
/// are a misrouted feed, a test account or an account not yet published, and counting them
/// would add phantom accounts and purchases to every total that does not filter by account.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UnknownAccount {
    /// Dead-lettered with reason `unknown_account` (replayable once the account is
    /// published), as long as the account dimension holds at least one account: an empty
    /// one means the deployment publishes none, and every event is kept. The default, so
    /// that no total without an account filter counts a phantom account.
    DeadLetter,
    /// Written, enriched and segmented like any event, but to the stream table's
    /// `<table>_quarantine` twin, which no rollup and no view reads: the events are kept
    /// and queryable (`v_quarantine_daily`) without being counted, without dead-letter
    /// alerts for what is usually an account published late, and `wxpulse quarantine
    /// release` moves them into the stream table, once, when the account is published.
    Quarantine,
    /// Written with brand `unknown`, as any account: for a deployment that wants every
    /// event counted even before its account is published, at the price of totals that
    /// include accounts it does not know.
    Keep,
}

/// Upstream-retry dedup.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DedupConfig {
    /// How long an event_id is remembered (by server_time).
    #[serde(with = "humantime_serde")]
    pub window: Duration,
    /// Most ids remembered per partition; past it the oldest go first, before their
    /// window ends (counted in `wxpulse_dedup_ids_evicted_total`).
    pub max_ids: usize,
    /// How long past ids are remembered (Bloom filters, checked exactly in ClickHouse):
    /// a copy re-sent within it is dropped. `0s` turns the horizon off.
    #[serde(with = "humantime_serde")]
    pub horizon: Duration,
    /// Share of fresh ids the horizon flags wrongly; each costs a ClickHouse lookup.
    pub horizon_false_positive: f64,
    /// Most memory of the horizon's filters per partition; past it lookups grow instead.
    pub horizon_max_bytes: usize,
}

/// Metrics and health endpoints.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsConfig {
    /// `host:port` to serve `/metrics`, `/healthz`, `/readyz` on.
    pub listen: String,
}

/// Logging.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogConfig {
    /// `json` or `pretty`.
    pub format: String,
    /// A tracing filter, e.g. `info` or `wxpulse_runtime=debug,info`.
    pub level: String,
}

/// Pseudonymisation key.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PiiConfig {
    /// HMAC key; never logged.
    pub key: Secret,
    /// File holding the key, instead of `key`.
    #[serde(default)]
    pub key_file: String,
}

/// Dimension topics: loaded before consuming, then followed.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DimensionsConfig {
    /// How long startup waits to read every dimension topic to its end; past it the
    /// service starts with what it has (missing values become `unknown`) and keeps reading.
    #[serde(with = "humantime_serde")]
    pub load_timeout: Duration,
    /// Start from the fan-profile mirror's copy in ClickHouse and read the topic only past
    /// its watermarks (falls back to the whole topic when it cannot).
    pub fan_profile_snapshot: bool,
}

/// Lifecycle thresholds (seed 001).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SegmentConfig {
    /// A fan is `new` for this long after following.
    #[serde(with = "humantime_serde")]
    pub new_for: Duration,
    /// A fan whose previous interaction is at least this old was `dormant`.
    #[serde(with = "humantime_serde")]
    pub dormant_after: Duration,
    /// Most fans held with their state (last interaction, open months) per service, shared
    /// evenly by the partitions it owns; past it the least recently active are dropped.
    pub max_fans: usize,
    /// Most fans remembered only as "dormant when they return" per service, shared the
    /// same way; past it some are forgotten (their return is `active`).
    pub max_dormant_fans: usize,
}

/// How far back an order looks for the touch that earned it (seed 003's social selling).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AttributionConfig {
    /// Touches up to this long before an order qualify. Stamped on every order row, so
    /// changing it applies to orders ingested from then on and never rewrites history.
    #[serde(with = "humantime_serde")]
    pub window: Duration,
}

/// Reply waits of WeCom 1:1 conversations (the chat-messages service).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChatConfig {
    /// An associate's message answers a fan's waiting message (and gets `first_reply_ms`)
    /// only within this much server time; older waits can no longer be answered and are
    /// dropped. A restart replays twice this much history.
    #[serde(with = "humantime_serde")]
    pub reply_window: Duration,
    /// Most waits held per service, shared evenly by the partitions it owns; past it the
    /// oldest go first and their replies get no `first_reply_ms`.
    pub max_waits: usize,
}

/// Longest reply window accepted: every assignment replays twice the window of chat rows.
pub const MAX_REPLY_WINDOW: Duration = Duration::from_secs(30 * 86_400);

/// Longest attribution window accepted: beyond a quarter, "the touch that earned the
/// order" stops meaning anything and the attribution join grows without bound.
pub const MAX_ATTRIBUTION_WINDOW: Duration = Duration::from_secs(90 * 86_400);

/// The key shipped in `config/default.toml`, refused in production.
const DEVELOPMENT_PII_KEY: &str = "wxpulse-local-development-key";

impl Config {
    /// Loads defaults, then `file` (if any), then `env` (pass `std::env::vars()` in
    /// production; tests pass their own), and validates the result.
    pub fn load(
        file: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, ConfigError> {
        let mut figment = Figment::from(Toml::string(DEFAULT_TOML));
        if let Some(path) = file {
            figment = figment.merge(Toml::file_exact(path));
        }
        let env: Vec<(String, String)> = env.into_iter().collect();
        let overrides: Vec<(String, String)> = env
            .iter()
            .filter_map(|(k, v)| {
                k.strip_prefix("WXPULSE__")
                    .map(|rest| (rest.to_ascii_lowercase().replace("__", "."), v.clone()))
            })
            .collect();
        for (key, value) in overrides {
            // Values are parsed like TOML scalars when they can be (numbers, bools),
            // and taken as strings otherwise, as figment's Env provider does.
            figment = figment.merge(Serialized::default(&key, coerce(&value)));
        }
        let mut config: Config = figment
            .extract()
            .map_err(|e| ConfigError::Parse(Box::new(e)))?;
        let lookup = |name: &str| env.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
        if let Some(user) = lookup("WXPULSE_KAFKA_SASL_USERNAME") {
            config.kafka.sasl_username = user;
        }
        if let Some(password) = lookup("WXPULSE_KAFKA_SASL_PASSWORD") {
            config.kafka.sasl_password = Secret::new(password);
        }
        if let Some(path) = lookup("WXPULSE_KAFKA_SASL_PASSWORD_FILE") {
            config.kafka.sasl_password_file = path;
        }
        let production = lookup("WXPULSE_ENV").is_some_and(|v| v == "production");
        let mut errors = config.read_secret_files();
        if let Err(ConfigError::Invalid(more)) = config.validate(production) {
            errors.extend(more);
        }
        if errors.is_empty() {
            Ok(config)
        } else {
            Err(ConfigError::Invalid(errors))
        }
    }

    /// Fills each secret from its `*_file` setting; a secret given both ways, or a file
    /// that cannot be read, is an error naming the setting.
    fn read_secret_files(&mut self) -> Vec<String> {
        let mut errors = Vec::new();
        let slots: [(&str, &str, &mut Secret, &str); 5] = [
            (
                "kafka.sasl_password",
                "kafka.sasl_password_file",
                &mut self.kafka.sasl_password,
                &self.kafka.sasl_password_file,
            ),
            (
                "clickhouse.password",
                "clickhouse.password_file",
                &mut self.clickhouse.password,
                &self.clickhouse.password_file,
            ),
            (
                "schema_registry.password",
                "schema_registry.password_file",
                &mut self.schema_registry.password,
                &self.schema_registry.password_file,
            ),
            (
                "schema_registry.bearer_token",
                "schema_registry.bearer_token_file",
                &mut self.schema_registry.bearer_token,
                &self.schema_registry.bearer_token_file,
            ),
            (
                "pii.key",
                "pii.key_file",
                &mut self.pii.key,
                &self.pii.key_file,
            ),
        ];
        for (name, file_name, secret, file) in slots {
            if file.is_empty() {
                continue;
            }
            // The shipped development PII key is a default, not a choice.
            let defaulted = name == "pii.key" && secret.expose() == DEVELOPMENT_PII_KEY;
            if !secret.is_empty() && !defaulted {
                errors.push(format!("{name} and {file_name} are both set; keep one"));
                continue;
            }
            match crate::secret::read_file(file) {
                Ok(value) if value.is_empty() => {
                    errors.push(format!("{file_name} = {file:?} is empty"))
                }
                Ok(value) => *secret = value,
                Err(e) => errors.push(format!("{file_name} = {file:?} cannot be read: {e}")),
            }
        }
        errors
    }

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
        errors.extend(crate::kafka::check_settings(k));
        if k.connect_timeout.is_zero() {
            errors.push("kafka.connect_timeout must be > 0".into());
        }
        if k.heartbeat_interval >= k.session_timeout {
            errors
                .push("kafka.heartbeat_interval must be shorter than kafka.session_timeout".into());
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
        match crate::dlq::message_max_bytes(k.client.get("message.max.bytes").map(String::as_str)) {
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

/// librdkafka properties `[kafka.client]` may not override, because effectively-once or
/// the service's identity rests on wxpulse's own value; each with what to do instead.
pub const PROTECTED_CLIENT_KEYS: &[(&str, &str)] = &[
    (
        "enable.auto.commit",
        "offsets are committed only after ClickHouse has the rows",
    ),
    (
        "enable.auto.offset.store",
        "offsets are stored only after ClickHouse has the rows",
    ),
    (
        "auto.offset.reset",
        "a new group must start at the earliest record, or records are never written",
    ),
    ("group.id", "set kafka.group_id"),
    ("bootstrap.servers", "set kafka.brokers"),
    (
        "sasl.username",
        "set kafka.sasl_username or WXPULSE_KAFKA_SASL_USERNAME",
    ),
    (
        "sasl.password",
        "set WXPULSE_KAFKA_SASL_PASSWORD or kafka.sasl_password_file, so it is never printed",
    ),
];

/// TLS files of `section` are checked when set (read and parsed), so a wrong path fails at
/// startup naming the setting; they are refused on a plain `http://` URL, where they would
/// silently not be used.
fn check_tls(url: &str, tls: &TlsConfig, section: &str, errors: &mut Vec<String>) {
    let set = !(tls.ca_file.is_empty() && tls.cert_file.is_empty() && tls.key_file.is_empty());
    if !set {
        return;
    }
    if !url.starts_with("https://") {
        errors.push(format!(
            "{section}.tls is set but {section}.url is not https:// ({url:?})"
        ));
        return;
    }
    if let Err(e) = tls.client_config(&format!("{section}.tls")) {
        errors.push(e.to_string());
    }
}

/// Parses an env value as a TOML scalar when it is one and nothing is lost, so
/// `WXPULSE__BATCH__MAX_ROWS=10` becomes a number; anything else stays a string — a
/// password `0123` stays `0123`, not 123 (string settings accept numbers, see `secret.rs`).
fn coerce(value: &str) -> figment::value::Value {
    use figment::value::Value;
    if let Ok(n) = value.parse::<i64>() {
        if n.to_string() == value {
            return Value::from(n);
        }
    }
    if let Ok(b) = value.parse::<bool>() {
        return Value::from(b);
    }
    Value::from(value.to_string())
}

#[cfg(test)]
mod tests;
