//! The configuration as a whole ([`Config`], [`ConfigError`]) and its smaller sections:
//! gateway, batching, retries, validation, dedup, metrics, logging, PII, dimensions,
//! segments, attribution and chat. The Kafka and HTTP-service sections have their own
//! modules (`kafka.rs`, `http.rs`).

use std::time::Duration;

use serde::Deserialize;

use super::http::{ClickHouseConfig, RegistryConfig};
use super::kafka::KafkaConfig;
use super::notifier::NotifierConfig;
use crate::secret::Secret;

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
    /// Behaviour notifications for associates (`wxpulse-notifier`).
    pub notifier: NotifierConfig,
    /// The hot-key overflow lane.
    pub overflow: OverflowConfig,
}

/// Which records a consumer service processes: its topic's (`primary`), or the hot keys'
/// diverted to `<topic>.overflow` (`overflow`, the same binary under its own group).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Lane {
    /// Consumes the stream's topic; diverts hot keys when `overflow.enabled`.
    Primary,
    /// Consumes `<topic>.overflow`: rows of diverted records, segments from their headers.
    Overflow,
}

/// The hot-key overflow lane: one bot fan or scripted storm must not stall its partition
/// (and, through backpressure, the service). A key's records past `max_per_window` within
/// a window of `window_records` consecutive offsets of its partition go to
/// `<topic>.overflow`, where other consumers build their rows in parallel. Counted in
/// offsets, not seconds, so the decision is a pure function of the log: a replay after a
/// crash diverts exactly the records it diverted before.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OverflowConfig {
    /// The primary diverts hot keys (the overflow topics must exist and the lane run).
    pub enabled: bool,
    /// Which lane this process is.
    pub lane: Lane,
    /// Offsets per counting window of a partition.
    pub window_records: u32,
    /// Records of one key a window keeps in the primary; the rest are diverted.
    pub max_per_window: u32,
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
pub(super) const DEVELOPMENT_PII_KEY: &str = "wxpulse-local-development-key";
