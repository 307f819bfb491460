use super::*;
use std::path::Path;
use std::time::Duration;

fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn defaults_load_and_validate() {
    let c = Config::load(None, env(&[])).expect("defaults are valid");
    assert_eq!(c.batch.max_rows, 50_000);
    assert_eq!(c.kafka.drain_timeout, Duration::from_secs(20));
    assert_eq!(c.validation.max_lateness, Duration::from_secs(7 * 86_400));
    assert_eq!(c.batch.stuck_after, Duration::from_secs(60));
    assert_eq!(c.kafka.dead_letter_truncate_bytes, 8192);
}

#[test]
fn a_session_longer_than_the_poll_interval_is_refused_at_startup() {
    // A longer session for a broker that stalls, without raising the poll interval: said
    // with the settings' names before any connection, not by librdkafka after one.
    let err = Config::load(
        None,
        env(&[
            ("WXPULSE__KAFKA__SESSION_TIMEOUT", "45s"),
            ("WXPULSE__KAFKA__MAX_POLL_INTERVAL", "30s"),
            ("WXPULSE__KAFKA__DRAIN_TIMEOUT", "8s"),
            ("WXPULSE__CLICKHOUSE__INSERT_TIMEOUT", "5s"),
        ]),
    )
    .expect_err("invalid");
    let ConfigError::Invalid(list) = err else {
        panic!("expected Invalid, got {err}")
    };
    assert_eq!(list.len(), 1, "{list:#?}");
    assert!(list[0].contains("kafka.session_timeout"), "{list:#?}");
}

#[test]
fn stuck_after_and_dead_letter_truncation_are_checked() {
    let err = Config::load(
        None,
        env(&[
            ("WXPULSE__BATCH__STUCK_AFTER", "10s"),
            ("WXPULSE__KAFKA__DEAD_LETTER_TRUNCATE_BYTES", "600000"),
        ]),
    )
    .expect_err("invalid");
    let ConfigError::Invalid(list) = err else {
        panic!("expected Invalid, got {err}")
    };
    assert_eq!(list.len(), 2, "{list:#?}");
    assert!(list[0].contains("batch.stuck_after"), "{list:#?}");
    assert!(list[1].contains("1000000"), "{list:#?}");
}

/// A config file in the temp dir, removed on drop.
struct TempFile(std::path::PathBuf);

impl TempFile {
    fn new(name: &str, content: &str) -> Self {
        let path = std::env::temp_dir().join(format!("wxpulse-cfg-{}-{name}", std::process::id()));
        std::fs::write(&path, content).expect("temp file");
        TempFile(path)
    }

    fn path(&self) -> &str {
        self.0.to_str().expect("utf-8 temp path")
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

const SASL: &str =
        "[kafka.client]\n\"security.protocol\" = \"SASL_SSL\"\n\"sasl.mechanism\" = \"SCRAM-SHA-512\"\n";

#[test]
fn env_overrides_nested_keys_with_types() {
    let file = TempFile::new("sasl.toml", SASL);
    let c = Config::load(
        Some(Path::new(file.path())),
        env(&[
            ("WXPULSE__KAFKA__BROKERS", "k1:9092,k2:9092"),
            ("WXPULSE__BATCH__MAX_ROWS", "123"),
            ("WXPULSE__BATCH__MAX_AGE", "250ms"),
            ("WXPULSE_KAFKA_SASL_USERNAME", "wx"),
            ("WXPULSE_KAFKA_SASL_PASSWORD", "s3cret"),
            ("UNRELATED", "x"),
        ]),
    )
    .expect("valid");
    assert_eq!(c.kafka.brokers, "k1:9092,k2:9092");
    assert_eq!(c.batch.max_rows, 123);
    assert_eq!(c.batch.max_age, Duration::from_millis(250));
    assert_eq!(c.kafka.sasl_username, "wx");
    assert_eq!(c.kafka.sasl_password.expose(), "s3cret");
}

#[test]
fn numeric_looking_secrets_stay_strings() {
    let file = TempFile::new("numeric.toml", SASL);
    let c = Config::load(
        Some(Path::new(file.path())),
        env(&[
            ("WXPULSE__CLICKHOUSE__PASSWORD", "0123"),
            ("WXPULSE__CLICKHOUSE__USER", "1001"),
            ("WXPULSE__SCHEMA_REGISTRY__USERNAME", "4711"),
            ("WXPULSE__SCHEMA_REGISTRY__PASSWORD", "007"),
            ("WXPULSE_KAFKA_SASL_USERNAME", "42"),
            ("WXPULSE_KAFKA_SASL_PASSWORD", "12345"),
            ("WXPULSE__PII__KEY", "00001111222233334444"),
        ]),
    )
    .expect("valid");
    assert_eq!(c.clickhouse.password.expose(), "0123");
    assert_eq!(c.clickhouse.user, "1001");
    assert_eq!(c.schema_registry.username, "4711");
    assert_eq!(c.schema_registry.password.expose(), "007");
    assert_eq!(c.kafka.sasl_username, "42");
    assert_eq!(c.kafka.sasl_password.expose(), "12345");
    assert_eq!(c.pii.key.expose(), "00001111222233334444");
}

#[test]
fn secrets_come_from_files_and_never_show_in_debug() {
    let password = TempFile::new("ch-password", "ch-Pa55word\n");
    let sasl = TempFile::new("sasl-password", "sasl-Pa55word");
    let token = TempFile::new("token", "registry-T0ken\n");
    let key = TempFile::new("pii-key", "pii-key-0123456789abcdef\n");
    let file = TempFile::new(
        "files.toml",
        &format!(
            "{SASL}\"ssl.key.password\" = \"ssl-Pa55word\"\n\
                 [clickhouse]\npassword_file = {:?}\n\
                 [schema_registry]\nurl = \"https://registry.example\"\nbearer_token_file = {:?}\n\
                 [pii]\nkey_file = {:?}\n",
            password.path(),
            token.path(),
            key.path()
        ),
    );
    let c = Config::load(
        Some(Path::new(file.path())),
        env(&[
            ("WXPULSE_KAFKA_SASL_USERNAME", "wx"),
            ("WXPULSE_KAFKA_SASL_PASSWORD_FILE", sasl.path()),
        ]),
    )
    .expect("valid");
    assert_eq!(c.clickhouse.password.expose(), "ch-Pa55word");
    assert_eq!(c.kafka.sasl_password.expose(), "sasl-Pa55word");
    assert_eq!(c.schema_registry.bearer_token.expose(), "registry-T0ken");
    assert_eq!(c.pii.key.expose(), "pii-key-0123456789abcdef");
    let printed = format!("{c:#?}");
    for secret in [
        "ch-Pa55word",
        "sasl-Pa55word",
        "registry-T0ken",
        "pii-key-0123456789abcdef",
        "ssl-Pa55word",
    ] {
        assert!(!printed.contains(secret), "{secret} printed:\n{printed}");
    }
    assert!(printed.contains("<redacted>"), "{printed}");
}

#[test]
fn a_secret_given_twice_or_an_unreadable_file_is_named() {
    let err = Config::load(
        None,
        env(&[
            ("WXPULSE__CLICKHOUSE__PASSWORD", "x"),
            ("WXPULSE__CLICKHOUSE__PASSWORD_FILE", "/nonexistent/p"),
            ("WXPULSE__PII__KEY_FILE", "/nonexistent/k"),
        ]),
    )
    .expect_err("invalid");
    let ConfigError::Invalid(list) = err else {
        panic!("expected Invalid, got {err}")
    };
    assert_eq!(list.len(), 2, "{list:#?}");
    assert!(list[0].contains("clickhouse.password and clickhouse.password_file"));
    assert!(list[1].starts_with("pii.key_file = \"/nonexistent/k\" cannot be read"));
}

#[test]
fn every_violation_is_reported_together() {
    let err = Config::load(
        None,
        env(&[
            ("WXPULSE__LOG__FORMAT", "xml"),
            ("WXPULSE__BATCH__MAX_ROWS", "0"),
            ("WXPULSE__KAFKA__DRAIN_TIMEOUT", "600s"),
            ("WXPULSE_ENV", "production"),
        ]),
    )
    .expect_err("invalid");
    let ConfigError::Invalid(list) = err else {
        panic!("expected Invalid, got {err}")
    };
    assert_eq!(list.len(), 4, "{list:#?}");
}

#[test]
fn client_overrides_cannot_turn_auto_commit_back_on() {
    let file = std::env::temp_dir().join(format!("wxpulse-cfg-{}.toml", std::process::id()));
    std::fs::write(
        &file,
        "[kafka.client]\n\"enable.auto.commit\" = \"true\"\n\"security.protocol\" = \"SASL_SSL\"\n",
    )
    .expect("temp file");
    let err = Config::load(Some(&file), env(&[]));
    let _ = std::fs::remove_file(&file);
    match err {
        Err(ConfigError::Invalid(list)) => {
            assert_eq!(list.len(), 1, "{list:#?}");
            assert!(list[0].contains("enable.auto.commit"), "{list:#?}");
        }
        other => panic!("expected Invalid, got {other:?}"),
    }
}

#[test]
fn memory_bounds_have_defaults_env_overrides_and_checks() {
    let c = Config::load(None, env(&[])).expect("defaults");
    assert_eq!(c.dedup.max_ids, 1_000_000);
    assert_eq!(c.dedup.horizon, Duration::from_secs(7 * 86_400));
    assert_eq!(
        (c.segment.max_fans, c.segment.max_dormant_fans),
        (2_000_000, 10_000_000)
    );
    assert_eq!(c.chat.reply_window, Duration::from_secs(7 * 86_400));
    assert_eq!(c.chat.max_waits, 1_000_000);
    let c = Config::load(
        None,
        env(&[
            ("WXPULSE__DEDUP__MAX_IDS", "5000"),
            ("WXPULSE__SEGMENT__MAX_FANS", "300"),
            ("WXPULSE__CHAT__REPLY_WINDOW", "2days"),
        ]),
    )
    .expect("valid");
    assert_eq!(c.dedup.max_ids, 5_000);
    assert_eq!(c.segment.max_fans, 300);
    assert_eq!(c.chat.reply_window, Duration::from_secs(2 * 86_400));
    let err = Config::load(
        None,
        env(&[
            ("WXPULSE__DEDUP__MAX_IDS", "0"),
            ("WXPULSE__SEGMENT__MAX_DORMANT_FANS", "0"),
            ("WXPULSE__CHAT__REPLY_WINDOW", "60days"),
            ("WXPULSE__CHAT__MAX_WAITS", "0"),
        ]),
    )
    .expect_err("invalid");
    let ConfigError::Invalid(list) = err else {
        panic!("expected Invalid, got {err}")
    };
    assert_eq!(list.len(), 4, "{list:#?}");
    for key in [
        "dedup.max_ids",
        "segment.max_dormant_fans",
        "chat.reply_window",
        "chat.max_waits",
    ] {
        assert!(list.iter().any(|e| e.contains(key)), "{key}: {list:#?}");
    }
    let err =
        Config::load(None, env(&[("WXPULSE__SEGMENT__MAX_FANS", "-1")])).expect_err("negative");
    assert!(err.to_string().contains("max_fans"), "{err}");
}

#[test]
fn unknown_keys_are_rejected() {
    let err = Config::load(None, env(&[("WXPULSE__BATCH__MAX_ROWZ", "1")])).expect_err("typo");
    assert!(err.to_string().contains("max_rowz"), "{err}");
}
