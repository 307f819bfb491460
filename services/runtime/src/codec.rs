//! Avro in the Confluent wire format: `0x00`, a big-endian `u32` schema id, the datum.
//!
//! The writer schema is resolved by id — from a Confluent-compatible registry
//! (`GET /schemas/ids/{id}`, cached forever since ids are immutable) or from the schemas
//! embedded in the binary — and the datum is decoded with `serde_avro_fast` straight into
//! the service's borrowed Rust struct, which plays the reader schema: fields the writer
//! lacks take their `#[serde(default)]`, fields the reader lacks are skipped, `int` widens
//! to `long`, and unknown enum symbols land on the `#[serde(other)]` variant.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

/// A parsed Avro schema (serde_avro_fast's), for producers that encode with one.
pub use serde_avro_fast::Schema;

use crate::config::RegistryConfig;
use crate::secret::Secret;
use crate::tls::{TlsConfig, TlsError};

/// What to check when the registry answers 401 or 403.
const AUTH_HINT: &str = "check schema_registry.username and password (or password_file), or \
                         bearer_token (or bearer_token_file)";

/// Standard base64 with padding, for the Basic auth header (one short string per start:
/// not worth a dependency).
fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | u32::from(*b) << (16 - 8 * i));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[(n >> (18 - 6 * i) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// One schema shipped with wxpulse, with the id it has in the embedded registry.
#[derive(Debug, Clone, Copy)]
pub struct EmbeddedSchema {
    /// Registry id (what the wire format carries).
    pub id: u32,
    /// Confluent subject (TopicNameStrategy: `<topic>-value`).
    pub subject: &'static str,
    /// Version within the subject.
    pub version: u32,
    /// The `.avsc` text.
    pub json: &'static str,
}

macro_rules! schema {
    ($id:expr, $subject:expr, $version:expr, $file:expr) => {
        EmbeddedSchema {
            id: $id,
            subject: $subject,
            version: $version,
            json: include_str!(concat!("../../../schemas/avro/", $file)),
        }
    };
}

/// Every schema version in `schemas/avro/`, with fixed ids; the local stack's registry.
pub const EMBEDDED: &[EmbeddedSchema] = &[
    schema!(1, "wxpulse.menu_clicks-value", 1, "menu_click/v1.avsc"),
    schema!(2, "wxpulse.qr_scans-value", 1, "qr_scan/v1.avsc"),
    schema!(3, "wxpulse.chat_messages-value", 1, "chat_message/v1.avsc"),
    schema!(4, "wxpulse.article_reads-value", 1, "article_read/v1.avsc"),
    schema!(5, "wxpulse.article_reads-value", 2, "article_read/v2.avsc"),
    schema!(6, "wxpulse.orders-value", 1, "order/v1.avsc"),
    schema!(7, "wxpulse.dead_letters-value", 1, "dead_letter/v1.avsc"),
    schema!(8, "wxpulse.dead_letters-value", 2, "dead_letter/v2.avsc"),
    schema!(9, "wxpulse.dead_letters-value", 3, "dead_letter/v3.avsc"),
    schema!(10, "wxpulse.dead_letters-value", 4, "dead_letter/v4.avsc"),
    schema!(11, "wxpulse.dim.account-value", 1, "dim_account/v1.avsc"),
    schema!(12, "wxpulse.dim.store-value", 1, "dim_store/v1.avsc"),
    schema!(
        13,
        "wxpulse.dim.associate-value",
        1,
        "dim_associate/v1.avsc"
    ),
    schema!(14, "wxpulse.dim.qr_scene-value", 1, "dim_qr_scene/v1.avsc"),
    schema!(18, "wxpulse.dim.qr_scene-value", 2, "dim_qr_scene/v2.avsc"),
    schema!(15, "wxpulse.dim.article-value", 1, "dim_article/v1.avsc"),
    schema!(
        16,
        "wxpulse.dim.menu_button-value",
        1,
        "dim_menu_button/v1.avsc"
    ),
    schema!(
        17,
        "wxpulse.dim.fan_profile-value",
        1,
        "dim_fan_profile/v1.avsc"
    ),
    schema!(
        19,
        "wxpulse.dim.fan_follow-value",
        1,
        "dim_fan_follow/v1.avsc"
    ),
    schema!(
        20,
        "wxpulse.dim.associate_contact-value",
        1,
        "dim_associate_contact/v1.avsc"
    ),
    schema!(21, "wxpulse.notifications-value", 1, "notification/v1.avsc"),
    schema!(
        22,
        "wxpulse.dim.fan_profile-value",
        2,
        "dim_fan_profile/v2.avsc"
    ),
];

/// The newest embedded schema of a subject: what producers in this repo write with.
pub fn latest(subject: &str) -> Option<&'static EmbeddedSchema> {
    EMBEDDED
        .iter()
        .filter(|s| s.subject == subject)
        .max_by_key(|s| s.version)
}

/// Why a record could not be turned into an event.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    /// Not the Confluent framing (empty, wrong magic byte, too short).
    #[error("not Confluent-framed Avro: {0}")]
    Framing(&'static str),
    /// The registry does not know this id.
    #[error("unknown schema id {0}")]
    UnknownSchema(u32),
    /// The datum does not match its writer schema or the reader struct.
    #[error("datum does not decode: {0}")]
    Datum(String),
}

/// The registry could not be asked (network, 5xx): retry, do not dead-letter.
#[derive(Debug, thiserror::Error)]
#[error("schema registry unavailable: {0}")]
pub struct RegistryUnavailable(pub String);

/// Splits a Confluent-framed payload into schema id and datum.
pub fn split_frame(payload: &[u8]) -> Result<(u32, &[u8]), DecodeError> {
    match payload {
        [] => Err(DecodeError::Framing("empty payload")),
        [0, a, b, c, d, datum @ ..] => Ok((u32::from_be_bytes([*a, *b, *c, *d]), datum)),
        [0, ..] => Err(DecodeError::Framing("shorter than the 5-byte header")),
        _ => Err(DecodeError::Framing("magic byte is not 0")),
    }
}

/// Decodes a datum written with `writer` into the reader struct `T`.
pub fn decode<'a, T: serde::Deserialize<'a>>(
    datum: &'a [u8],
    writer: &Schema,
) -> Result<T, DecodeError> {
    serde_avro_fast::from_datum_slice(datum, writer).map_err(|e| DecodeError::Datum(e.to_string()))
}

/// Encodes `value` with `schema` and frames it with `schema_id`, appending to `out`.
pub fn encode_into<T: serde::Serialize>(
    value: &T,
    schema_id: u32,
    schema: &Schema,
    out: &mut Vec<u8>,
) -> Result<(), serde_avro_fast::ser::SerError> {
    out.push(0);
    out.extend_from_slice(&schema_id.to_be_bytes());
    let mut config = serde_avro_fast::ser::SerializerConfig::new(schema);
    let buf = std::mem::take(out);
    *out = serde_avro_fast::to_datum(value, buf, &mut config)?;
    Ok(())
}

/// How long the registry's "no such id" is believed: an id registered later is found
/// after this, and meanwhile records with it cost no registry request each.
pub const NEGATIVE_TTL: Duration = Duration::from_secs(300);

/// What the registry knows of an id, without asking it.
#[derive(Clone)]
pub enum Known {
    /// The writer schema.
    Schema(Arc<Writer>),
    /// The registry answered that the id does not exist (within [`NEGATIVE_TTL`]).
    Missing,
    /// Not asked yet, or the negative answer expired.
    Unknown,
}

/// Resolves schema ids to parsed writer schemas.
pub struct Registry {
    url: Option<String>,
    agent: ureq::Agent,
    /// `Authorization` header value (Basic or Bearer), if the registry needs one.
    authorization: Option<Secret>,
    cache: RwLock<HashMap<u32, Arc<Writer>>>,
    missing: RwLock<HashMap<u32, Instant>>,
}

impl Registry {
    /// A registry that only knows the embedded schemas (the local stack).
    pub fn embedded() -> Self {
        let cache = EMBEDDED
            .iter()
            .map(|s| {
                (
                    s.id,
                    Arc::new(Writer::parse(s.json).expect("embedded schemas parse (tested)")),
                )
            })
            .collect();
        Registry {
            url: None,
            agent: ureq::AgentBuilder::new().build(),
            authorization: None,
            cache: RwLock::new(cache),
            missing: RwLock::default(),
        }
    }

    /// A Confluent-compatible registry at `url` without TLS settings or credentials; an
    /// empty url means [`Registry::embedded`].
    pub fn new(url: &str, timeout: Duration) -> Self {
        let cfg = RegistryConfig {
            url: url.to_string(),
            timeout,
            username: String::new(),
            password: Secret::default(),
            password_file: String::new(),
            bearer_token: Secret::default(),
            bearer_token_file: String::new(),
            tls: TlsConfig::default(),
        };
        match Self::from_config(&cfg) {
            Ok(r) => r,
            // Without TLS files only an https URL on a system without roots fails; the
            // request then fails the same way, as unavailable.
            Err(_) => Registry {
                url: Some(url.trim_end_matches('/').to_string()),
                agent: ureq::AgentBuilder::new().timeout(timeout).build(),
                authorization: None,
                cache: RwLock::new(HashMap::new()),
                missing: RwLock::default(),
            },
        }
    }

    /// The registry of `[schema_registry]`: TLS from `tls` for an `https://` URL, Basic auth
    /// (`username`/`password`, a managed registry's API key and secret) or a bearer token.
    pub fn from_config(cfg: &RegistryConfig) -> Result<Self, TlsError> {
        let url = cfg.url.trim();
        if url.is_empty() {
            return Ok(Self::embedded());
        }
        let mut agent = ureq::AgentBuilder::new().timeout(cfg.timeout);
        if url.starts_with("https://") {
            agent = agent.tls_config(Arc::new(cfg.tls.client_config("schema_registry.tls")?));
        }
        let authorization = if !cfg.bearer_token.is_empty() {
            Some(Secret::new(format!("Bearer {}", cfg.bearer_token.expose())))
        } else if !cfg.username.is_empty() {
            let pair = format!("{}:{}", cfg.username, cfg.password.expose());
            Some(Secret::new(format!("Basic {}", base64(pair.as_bytes()))))
        } else {
            None
        };
        Ok(Registry {
            url: Some(url.trim_end_matches('/').to_string()),
            agent: agent.build(),
            authorization,
            cache: RwLock::new(HashMap::new()),
            missing: RwLock::default(),
        })
    }

    /// One request at startup: refused credentials or a TLS failure are settings to fix
    /// and are returned; anything else (the registry is down) is left to the retries.
    pub fn check(&self) -> Result<(), RegistryUnavailable> {
        let Some(url) = &self.url else {
            return Ok(());
        };
        match self.get(&format!("{url}/schemas/types")) {
            Err(ureq::Error::Status(code @ (401 | 403), _)) => Err(RegistryUnavailable(format!(
                "{url} refused the credentials (HTTP {code}): {AUTH_HINT}"
            ))),
            Err(ureq::Error::Transport(t)) => {
                let chain = crate::tls::chain(&t);
                if url.starts_with("https://") && crate::tls::is_tls_failure(&chain) {
                    return Err(RegistryUnavailable(format!(
                        "{url}: TLS failed: {chain} (check schema_registry.tls.ca_file; empty \
                         means the system roots)"
                    )));
                }
                tracing::warn!(%url, error = %chain, "schema registry not reachable yet; lookups will retry");
                Ok(())
            }
            _ => Ok(()),
        }
    }

    /// A GET with the registry's credentials; ureq's error is large but only returned
    /// once per request, next to a network round trip.
    #[allow(clippy::result_large_err)]
    fn get(&self, url: &str) -> Result<ureq::Response, ureq::Error> {
        let mut request = self.agent.get(url);
        if let Some(auth) = &self.authorization {
            request = request.set("Authorization", auth.expose());
        }
        request.call()
    }

    /// What is known of `id` without a request: the pipeline parks a partition's records
    /// only on [`Known::Unknown`] and dead-letters on [`Known::Missing`].
    pub fn known(&self, id: u32) -> Known {
        if let Some(schema) = self.cached(id) {
            return Known::Schema(schema);
        }
        let missing = self
            .missing
            .read()
            .ok()
            .and_then(|m| m.get(&id).copied())
            .is_some_and(|at| at.elapsed() < NEGATIVE_TTL);
        if missing || self.url.is_none() {
            Known::Missing
        } else {
            Known::Unknown
        }
    }

    /// The cached schema for `id`, if already known; the hot path's only call.
    pub fn cached(&self, id: u32) -> Option<Arc<Writer>> {
        self.cache.read().ok()?.get(&id).cloned()
    }

    /// Fetches `id` from the remote registry (blocking; call from `spawn_blocking`).
    /// `Ok(None)` means the registry answered that the id does not exist.
    pub fn fetch_blocking(&self, id: u32) -> Result<Option<Arc<Writer>>, RegistryUnavailable> {
        if let Some(schema) = self.cached(id) {
            return Ok(Some(schema));
        }
        let Some(url) = &self.url else {
            return Ok(None);
        };
        let response = self.get(&format!("{url}/schemas/ids/{id}"));
        let body: serde_json::Value = match response {
            Ok(r) => r
                .into_json()
                .map_err(|e| RegistryUnavailable(e.to_string()))?,
            Err(ureq::Error::Status(404, _)) => {
                self.remember_missing(id);
                return Ok(None);
            }
            Err(ureq::Error::Status(code @ (401 | 403), _)) => {
                return Err(RegistryUnavailable(format!(
                    "{url} refused the credentials (HTTP {code}): {AUTH_HINT}"
                )))
            }
            Err(ureq::Error::Transport(t)) => {
                return Err(RegistryUnavailable(crate::tls::chain(&t)))
            }
            Err(e) => return Err(RegistryUnavailable(e.to_string())),
        };
        let text = body
            .get("schema")
            .and_then(|s| s.as_str())
            .ok_or_else(|| RegistryUnavailable(format!("no `schema` in answer for id {id}")))?;
        // A schema the registry holds but we cannot parse is as good as unknown.
        let Some(schema) = Writer::parse(text) else {
            self.remember_missing(id);
            return Ok(None);
        };
        let schema = Arc::new(schema);
        if let Ok(mut cache) = self.cache.write() {
            cache.insert(id, schema.clone());
        }
        Ok(Some(schema))
    }
}

impl Registry {
    /// The id under which `subject` holds exactly the schema `json`, for a producer that
    /// must frame records with the registry's id (Confluent's "is this schema registered"
    /// lookup; nothing is registered). `Ok(None)`: the subject does not hold it.
    pub fn id_of(&self, subject: &str, json: &str) -> Result<Option<u32>, RegistryUnavailable> {
        let Some(url) = &self.url else {
            return Ok(EMBEDDED
                .iter()
                .find(|s| s.subject == subject && s.json == json)
                .map(|s| s.id));
        };
        let mut request = self
            .agent
            .post(&format!("{url}/subjects/{subject}?normalize=true"))
            .set("Content-Type", "application/vnd.schemaregistry.v1+json");
        if let Some(auth) = &self.authorization {
            request = request.set("Authorization", auth.expose());
        }
        let body = serde_json::json!({ "schema": json });
        let answer: serde_json::Value = match request.send_json(body) {
            Ok(r) => r
                .into_json()
                .map_err(|e| RegistryUnavailable(e.to_string()))?,
            // 40401 no such subject, 40403 schema not found under it.
            Err(ureq::Error::Status(404, _)) => return Ok(None),
            Err(ureq::Error::Status(code @ (401 | 403), _)) => {
                return Err(RegistryUnavailable(format!(
                    "{url} refused the credentials (HTTP {code}): {AUTH_HINT}"
                )))
            }
            Err(ureq::Error::Transport(t)) => {
                return Err(RegistryUnavailable(crate::tls::chain(&t)))
            }
            Err(e) => return Err(RegistryUnavailable(e.to_string())),
        };
        answer
            .get("id")
            .and_then(|id| id.as_u64())
            .and_then(|id| u32::try_from(id).ok())
            .map(Some)
            .ok_or_else(|| RegistryUnavailable(format!("no `id` in the answer for {subject}")))
    }

    fn remember_missing(&self, id: u32) {
        if let Ok(mut missing) = self.missing.write() {
            // Bounded: ids are u32 but a topic carries few; drop expired entries first.
            if missing.len() >= 10_000 {
                missing.retain(|_, at| at.elapsed() < NEGATIVE_TTL);
            }
            missing.insert(id, Instant::now());
        }
    }
}

/// A writer schema and the full name of the record it describes. Avro resolution only
/// matches records of the same name, so a record written with another topic's schema is
/// rejected rather than decoded by a coincidence of field shapes.
pub struct Writer {
    /// Parsed schema.
    pub schema: Schema,
    /// `com.wxpulse.events.MenuClick`, or empty for a non-record schema.
    pub record: String,
}

impl Writer {
    /// Parses an `.avsc` text.
    pub fn parse(json: &str) -> Option<Self> {
        let schema = parse(json).ok()?;
        let value: serde_json::Value = serde_json::from_str(json).ok()?;
        let name = value
            .get("name")
            .and_then(|n| n.as_str())
            .unwrap_or_default();
        let record = match value.get("namespace").and_then(|n| n.as_str()) {
            Some(ns) if !name.contains('.') && !ns.is_empty() => format!("{ns}.{name}"),
            _ => name.to_string(),
        };
        Some(Writer { schema, record })
    }
}

/// Parses an `.avsc` text.
pub fn parse(json: &str) -> Result<Schema, serde_avro_fast::schema::SchemaError> {
    json.parse()
}

#[cfg(test)]
mod tests;
