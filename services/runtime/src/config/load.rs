//! Loading: the embedded defaults, an optional file and environment overrides are layered
//! into a [`Config`], secrets are read from their `*_file` settings, and the result is
//! validated (`validate.rs`).

use std::path::Path;

use figment::providers::{Format, Serialized, Toml};
use figment::Figment;

use super::sections::{Config, ConfigError, DEVELOPMENT_PII_KEY};
use crate::secret::Secret;

/// The defaults, embedded so a binary runs with no file at all.
pub const DEFAULT_TOML: &str = include_str!("../../../../config/default.toml");

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
