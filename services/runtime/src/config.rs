//! Typed configuration of a consumer service.
//!
//! Layers, later wins: the defaults checked in at `config/default.toml` (embedded in the
//! binary), an optional file given with `--config`, then `WXPULSE__SECTION__KEY` environment
//! variables. [`Config::validate`] reports every problem at once so a bad deployment fails
//! at startup with the full list, not one error per restart.

mod http;
pub(crate) mod kafka;
mod load;
mod notifier;
mod sections;
mod validate;

pub use http::{ClickHouseConfig, Compression, RegistryConfig, RowValidation};
pub use kafka::{ClientProperties, KafkaConfig, PROTECTED_CLIENT_KEYS};
pub use load::DEFAULT_TOML;
pub use notifier::{minute_of_day, NotifierConfig, NotifierRules, QuietHours, RuleConfig};
pub use sections::{
    AttributionConfig, BatchConfig, ChatConfig, Config, ConfigError, DedupConfig, DimensionsConfig,
    GatewayConfig, Lane, LogConfig, MetricsConfig, OverflowConfig, PiiConfig, RetryConfig,
    SegmentConfig, UnknownAccount, ValidationConfig, MAX_ATTRIBUTION_WINDOW, MAX_REPLY_WINDOW,
};

#[cfg(test)]
mod tests;
