//! The `[kafka]` section: connection, consumer timings, `[kafka.client]` librdkafka
//! properties and SASL credentials, with the check of those settings that config validation
//! runs. It lives on the config side (the `kafka` module builds clients from it and
//! re-exports [`check_settings`] and [`SetupError`]) so the dependency runs one way,
//! kafka → config.

use std::collections::BTreeMap;
use std::time::Duration;

use rdkafka::config::ClientConfig;
use rdkafka::error::KafkaError;
use serde::Deserialize;

use crate::secret::{scalar_string, Secret};

/// Why a Kafka client could not be set up or could not reach the cluster.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    /// librdkafka refused a property.
    #[error("Kafka setting {key} = {value}: {reason}")]
    Setting {
        /// Where it is configured, e.g. `kafka.client."security.protocol"`.
        key: String,
        /// The value (redacted when secret).
        value: String,
        /// librdkafka's reason.
        reason: String,
    },
    /// The client could not be created for another reason.
    #[error("cannot create the Kafka {what} from kafka.brokers and kafka.client: {reason}")]
    Create {
        /// Which client.
        what: String,
        /// librdkafka's reason.
        reason: String,
    },
    /// No broker answered, or none accepted the connection, within the time allowed.
    #[error("cannot connect to Kafka at {brokers} within {timeout:?}: {reason}; {hint}")]
    Connect {
        /// `kafka.brokers`.
        brokers: String,
        /// `kafka.connect_timeout`.
        timeout: Duration,
        /// The last reason librdkafka gave.
        reason: String,
        /// Which settings to check.
        hint: String,
    },
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

pub(crate) fn setting_error(key: &str, value: &str, reason: String) -> SetupError {
    let shown = if ClientProperties::is_secret(key) {
        "<redacted>".to_string()
    } else {
        format!("{value:?}")
    };
    let key = match key {
        "sasl.username" => "kafka.sasl_username".to_string(),
        "sasl.password" => "kafka.sasl_password".to_string(),
        "bootstrap.servers" => "kafka.brokers".to_string(),
        other => format!("kafka.client.\"{other}\""),
    };
    SetupError::Setting {
        key,
        value: shown,
        reason,
    }
}

/// Problems of `cfg`'s client settings, each naming the setting: properties librdkafka
/// does not know or whose value it refuses, and SASL credentials that do not match
/// `security.protocol`.
pub fn check_settings(cfg: &KafkaConfig) -> Vec<String> {
    let mut errors = Vec::new();
    for (key, value) in cfg.client.iter() {
        if PROTECTED_CLIENT_KEYS.iter().any(|(k, _)| k == key) {
            continue; // reported by the caller with what to do instead
        }
        let mut one = ClientConfig::new();
        one.set(key, value);
        if let Err(KafkaError::ClientConfig(_, reason, key, value)) = one.create_native_config() {
            errors.push(setting_error(&key, &value, reason).to_string());
        }
    }
    let protocol = cfg
        .client
        .get("security.protocol")
        .map_or("plaintext".to_string(), |p| p.to_ascii_lowercase());
    let mechanism = cfg
        .client
        .get("sasl.mechanism")
        .or_else(|| cfg.client.get("sasl.mechanisms"))
        .map_or("GSSAPI".to_string(), |m| m.to_ascii_uppercase());
    let credentials = !cfg.sasl_username.is_empty() || !cfg.sasl_password.is_empty();
    if protocol.starts_with("sasl_") {
        if mechanism == "PLAIN" || mechanism.starts_with("SCRAM-") {
            if cfg.sasl_username.is_empty() {
                errors.push(format!(
                    "kafka.client.\"security.protocol\" is {} with sasl.mechanism {mechanism}, \
                     but kafka.sasl_username is not set (WXPULSE_KAFKA_SASL_USERNAME)",
                    protocol.to_ascii_uppercase()
                ));
            }
            if cfg.sasl_password.is_empty() {
                errors.push(format!(
                    "kafka.client.\"security.protocol\" is {} with sasl.mechanism {mechanism}, \
                     but kafka.sasl_password is not set (WXPULSE_KAFKA_SASL_PASSWORD or \
                     WXPULSE_KAFKA_SASL_PASSWORD_FILE)",
                    protocol.to_ascii_uppercase()
                ));
            }
        }
    } else if credentials {
        errors.push(format!(
            "kafka.sasl_username/sasl_password are set but kafka.client.\"security.protocol\" \
             is {}: they would not be used; set it to SASL_SSL (or SASL_PLAINTEXT) and \
             \"sasl.mechanism\"",
            protocol.to_ascii_uppercase()
        ));
    }
    errors
}
