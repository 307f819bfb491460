//! One Kafka client setup for every consumer, producer and admin client of wxpulse — the
//! services' and the `wxpulse` CLI's alike — so a cluster that needs SASL or TLS is reached
//! the same way by all of them.
//!
//! Every client gets `kafka.brokers`, the `[kafka.client]` librdkafka properties (less the
//! [`PROTECTED_CLIENT_KEYS`], which wxpulse sets itself) and the SASL credentials
//! (`kafka.sasl_username`, `kafka.sasl_password[_file]`, or `WXPULSE_KAFKA_SASL_*`).
//!
//! Failing fast: [`check_settings`] (run by config validation) hands every `[kafka.client]`
//! property to librdkafka's own parser, so a misspelled key or value is an error naming it
//! at startup; [`preflight`] connects and authenticates within `kafka.connect_timeout` and
//! reports librdkafka's reason (SASL failure, TLS failure, connection closed), where a
//! client would otherwise retry silently.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use rdkafka::client::ClientContext;
use rdkafka::config::{ClientConfig, FromClientConfig, RDKafkaLogLevel};
use rdkafka::error::KafkaError;
use rdkafka::producer::{BaseProducer, Producer, ProducerContext};
use rdkafka::types::RDKafkaErrorCode;

use crate::config::kafka::setting_error;
use crate::config::{KafkaConfig, PROTECTED_CLIENT_KEYS};

pub use crate::config::kafka::{check_settings, SetupError};

/// The settings every client of `cfg` shares: brokers, `[kafka.client]`, SASL credentials.
pub fn client_config(cfg: &KafkaConfig) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", &cfg.brokers);
    for (k, v) in cfg.client.iter() {
        // Config validation rejects these; never let an override through regardless.
        if !PROTECTED_CLIENT_KEYS.iter().any(|(key, _)| key == k) {
            c.set(k, v);
        }
    }
    if !cfg.sasl_username.is_empty() {
        c.set("sasl.username", &cfg.sasl_username);
    }
    if !cfg.sasl_password.is_empty() {
        c.set("sasl.password", cfg.sasl_password.expose());
    }
    c
}

/// A consumer of group `group_id` with the settings effectively-once needs (no
/// auto-commit, no auto-store, earliest) and the group timings of `cfg`.
pub fn consumer_config(cfg: &KafkaConfig, group_id: &str) -> ClientConfig {
    let mut c = client_config(cfg);
    c.set("group.id", group_id)
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
        .set(
            "session.timeout.ms",
            cfg.session_timeout.as_millis().to_string(),
        )
        .set(
            "heartbeat.interval.ms",
            cfg.heartbeat_interval.as_millis().to_string(),
        )
        .set(
            "max.poll.interval.ms",
            cfg.max_poll_interval.as_millis().to_string(),
        )
        .set("partition.assignment.strategy", &cfg.assignment_strategy)
        // Bound librdkafka's prefetch so a service stays within its memory budget.
        .set("queued.max.messages.kbytes", "16384")
        .set("fetch.max.bytes", "8388608")
        .set("statistics.interval.ms", "2000");
    c
}

/// Creates a client from `config`; a property librdkafka refuses is reported with its
/// name (and its value, unless secret).
pub fn create<T: FromClientConfig>(config: &ClientConfig, what: &str) -> Result<T, SetupError> {
    config.create().map_err(|e| match e {
        KafkaError::ClientConfig(_, reason, key, value) => setting_error(&key, &value, reason),
        other => SetupError::Create {
            what: what.to_string(),
            reason: other.to_string(),
        },
    })
}

/// Connects to the cluster and authenticates, within `kafka.connect_timeout`: the check
/// every command and service runs before its real clients, which would otherwise retry
/// a refused login or a closed connection silently for as long as their own timeouts.
pub fn preflight(cfg: &KafkaConfig) -> Result<(), SetupError> {
    let mut config = client_config(cfg);
    config.set("client.id", "wxpulse-preflight");
    let producer: BaseProducer<Diagnostics> = config
        .create_with_context(Diagnostics::default())
        .map_err(|e| match e {
            KafkaError::ClientConfig(_, reason, key, value) => setting_error(&key, &value, reason),
            other => SetupError::Create {
                what: "client".into(),
                reason: other.to_string(),
            },
        })?;
    let deadline = Instant::now() + cfg.connect_timeout;
    let mut metadata_error = None;
    loop {
        producer.poll(Duration::ZERO);
        let seen = producer.context().seen();
        if let Some(fatal) = seen.fatal {
            return Err(connect_error(cfg, fatal));
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            let reason = seen
                .last
                .or(metadata_error)
                .unwrap_or_else(|| "no answer".to_string());
            return Err(connect_error(cfg, reason));
        }
        match producer
            .client()
            .fetch_metadata(None, left.min(Duration::from_millis(500)))
        {
            Ok(_) => return Ok(()),
            Err(e) => metadata_error = Some(e.to_string()),
        }
    }
}

fn connect_error(cfg: &KafkaConfig, reason: String) -> SetupError {
    let protocol = cfg
        .client
        .get("security.protocol")
        .map_or("PLAINTEXT".to_string(), |p| p.to_ascii_uppercase());
    let lower = reason.to_ascii_lowercase();
    let hint = if lower.contains("sasl") || lower.contains("authentication") {
        format!(
            "check kafka.sasl_username and the password (WXPULSE_KAFKA_SASL_USERNAME, \
             WXPULSE_KAFKA_SASL_PASSWORD or _FILE) and kafka.client.\"sasl.mechanism\" \
             (now {})",
            cfg.client.shown("sasl.mechanism")
        )
    } else if lower.contains("ssl") || lower.contains("certificate") || lower.contains("tls") {
        format!(
            "check kafka.client.\"security.protocol\" (now {protocol}) and \
             kafka.client.\"ssl.ca.location\" (now {})",
            cfg.client.shown("ssl.ca.location")
        )
    } else if !protocol.starts_with("SASL") {
        format!(
            "check kafka.brokers; if the brokers require SASL or TLS, set \
             kafka.client.\"security.protocol\" (now {protocol}), \"sasl.mechanism\" and the \
             credentials (WXPULSE_KAFKA_SASL_USERNAME/PASSWORD)"
        )
    } else {
        format!("check kafka.brokers and kafka.client.\"security.protocol\" (now {protocol})")
    };
    SetupError::Connect {
        brokers: cfg.brokers.clone(),
        timeout: cfg.connect_timeout,
        reason,
        hint,
    }
}

/// What librdkafka reported while the preflight ran.
#[derive(Debug, Default, Clone)]
struct Seen {
    /// A failure waiting will not fix (authentication, TLS).
    fatal: Option<String>,
    /// The latest error or error-level log line.
    last: Option<String>,
}

/// A client context that keeps librdkafka's errors for the preflight's report.
#[derive(Default)]
struct Diagnostics {
    seen: Mutex<Seen>,
}

impl Diagnostics {
    fn seen(&self) -> Seen {
        self.seen.lock().map(|s| s.clone()).unwrap_or_default()
    }

    fn record(&self, reason: String, fatal: bool) {
        if let Ok(mut seen) = self.seen.lock() {
            if fatal && seen.fatal.is_none() {
                seen.fatal = Some(reason.clone());
            }
            seen.last = Some(reason);
        }
    }
}

impl ProducerContext for Diagnostics {
    type DeliveryOpaque = ();
    fn delivery(&self, _: &rdkafka::message::DeliveryResult<'_>, _: Self::DeliveryOpaque) {}
}

impl ClientContext for Diagnostics {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, message: &str) {
        if matches!(
            level,
            RDKafkaLogLevel::Emerg
                | RDKafkaLogLevel::Alert
                | RDKafkaLogLevel::Critical
                | RDKafkaLogLevel::Error
        ) {
            self.record(format!("{fac}: {message}"), false);
        }
    }

    fn error(&self, error: KafkaError, reason: &str) {
        let fatal = matches!(
            error.rdkafka_error_code(),
            Some(
                RDKafkaErrorCode::Authentication
                    | RDKafkaErrorCode::SaslAuthenticationFailed
                    | RDKafkaErrorCode::UnsupportedSASLMechanism
                    | RDKafkaErrorCode::IllegalSASLState
                    | RDKafkaErrorCode::SSL
            )
        );
        self.record(reason.to_string(), fatal);
    }
}

/// The outcome of a produce handed to librdkafka (or refused at once): `None` when
/// `cancel` fires first; a lost delivery report reads as [`KafkaError::Canceled`].
pub async fn delivered(
    delivery: Option<Result<rdkafka::producer::DeliveryFuture, KafkaError>>,
    cancel: &tokio_util::sync::CancellationToken,
) -> Option<Result<(), KafkaError>> {
    match delivery {
        Some(Ok(delivery)) => tokio::select! {
            r = delivery => Some(match r {
                Ok(Ok(_)) => Ok(()),
                Ok(Err((e, _))) => Err(e),
                Err(_) => Err(KafkaError::Canceled),
            }),
            _ = cancel.cancelled() => None,
        },
        Some(Err(e)) => Some(Err(e)),
        None => Some(Err(KafkaError::Canceled)),
    }
}

/// The partitions of `topic` as the broker lists them now. A topic the broker answers with
/// an error (unknown, a leader being elected) is that error, never an empty list read as
/// "nothing there"; an empty list is only a topic listed without partitions. Blocking.
pub fn topic_partitions<C: rdkafka::consumer::Consumer>(
    consumer: &C,
    topic: &str,
) -> Result<Vec<i32>, KafkaError> {
    let metadata = consumer.fetch_metadata(Some(topic), Duration::from_secs(10))?;
    let Some(t) = metadata.topics().iter().find(|t| t.name() == topic) else {
        return Err(KafkaError::MetadataFetch(
            RDKafkaErrorCode::UnknownTopicOrPartition,
        ));
    };
    if let Some(e) = t.error() {
        return Err(KafkaError::MetadataFetch(e.into()));
    }
    Ok(t.partitions().iter().map(|p| p.id()).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    fn kafka(client: &[(&str, &str)]) -> KafkaConfig {
        let mut k = Config::load(None, Vec::new()).expect("defaults").kafka;
        for (key, value) in client {
            k.client.insert((*key).into(), (*value).into());
        }
        k
    }

    #[test]
    fn every_client_gets_brokers_overrides_and_credentials_but_no_protected_key() {
        let mut k = kafka(&[("security.protocol", "SASL_SSL"), ("linger.ms", "7")]);
        k.client.insert("enable.auto.commit".into(), "true".into());
        k.sasl_username = "wx".into();
        k.sasl_password = crate::secret::Secret::new("pw");
        let c = client_config(&k);
        assert_eq!(c.get("bootstrap.servers"), Some(k.brokers.as_str()));
        assert_eq!(c.get("security.protocol"), Some("SASL_SSL"));
        assert_eq!(c.get("linger.ms"), Some("7"));
        assert_eq!(c.get("sasl.username"), Some("wx"));
        assert_eq!(c.get("sasl.password"), Some("pw"));
        assert_eq!(c.get("enable.auto.commit"), None);
        let consumer = consumer_config(&k, "g");
        assert_eq!(consumer.get("enable.auto.commit"), Some("false"));
        assert_eq!(consumer.get("group.id"), Some("g"));
        assert_eq!(consumer.get("sasl.username"), Some("wx"));
    }

    #[test]
    fn unknown_or_invalid_properties_are_named() {
        let k = kafka(&[
            ("security.protocol", "SASL_SLL"),
            ("linger.mss", "5"),
            ("ssl.key.password", "hush"),
        ]);
        let errors = check_settings(&k);
        assert_eq!(errors.len(), 2, "{errors:#?}");
        assert!(
            errors
                .iter()
                .any(|e| e.contains("kafka.client.\"security.protocol\" = \"SASL_SLL\"")),
            "{errors:#?}"
        );
        assert!(
            errors
                .iter()
                .any(|e| e.contains("kafka.client.\"linger.mss\"")),
            "{errors:#?}"
        );
    }

    #[test]
    fn sasl_needs_credentials_and_credentials_need_sasl() {
        let k = kafka(&[
            ("security.protocol", "SASL_PLAINTEXT"),
            ("sasl.mechanism", "SCRAM-SHA-512"),
        ]);
        let errors = check_settings(&k);
        assert_eq!(errors.len(), 2, "{errors:#?}");
        assert!(errors[0].contains("kafka.sasl_username"), "{errors:#?}");
        assert!(
            errors[1].contains("WXPULSE_KAFKA_SASL_PASSWORD"),
            "{errors:#?}"
        );
        let mut plain = kafka(&[]);
        plain.sasl_username = "wx".into();
        let errors = check_settings(&plain);
        assert_eq!(errors.len(), 1, "{errors:#?}");
        assert!(errors[0].contains("PLAINTEXT"), "{errors:#?}");
    }

    #[test]
    fn preflight_gives_up_in_bounded_time_with_the_reason() {
        let mut k = kafka(&[]);
        k.brokers = "127.0.0.1:1".into();
        k.connect_timeout = Duration::from_secs(2);
        let started = Instant::now();
        let e = preflight(&k).expect_err("nothing listens on port 1");
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{:?}",
            started.elapsed()
        );
        let text = e.to_string();
        assert!(
            text.contains("127.0.0.1:1") && text.contains("security.protocol"),
            "{text}"
        );
    }
}
