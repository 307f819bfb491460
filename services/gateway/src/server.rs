//! The callback endpoint: `GET /wechat/<app_id>` answers WeChat's server verification,
//! `POST /wechat/<app_id>` receives a message push in plaintext, compatible or safe mode.
//! An event is answered `success` only once the idempotent producer (acks=all) has it, and
//! within `gateway.answer_timeout` or 503 (WeChat then retries the same callback, whose
//! derived event id the consumers drop if the first attempt did land).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::{Method, Request, Response, StatusCode};
use rdkafka::producer::{FutureProducer, FutureRecord};
use tokio_util::sync::CancellationToken;
use wxpulse_runtime::streams::EventStream;

use crate::accounts::Accounts;
use crate::callback::{self, Mapped};
use crate::crypto;
use crate::metrics::GatewayMetrics;

/// The writer schema (registry id and parsed) of each stream the gateway produces to.
pub struct Schemas(pub HashMap<EventStream, (u32, serde_avro_fast::Schema)>);

/// What a request handler needs.
pub struct Gateway {
    /// The accounts.
    pub accounts: Arc<Accounts>,
    /// Idempotent, acks=all.
    pub producer: FutureProducer,
    /// Writer schemas.
    pub schemas: Schemas,
    /// Metrics.
    pub metrics: Arc<GatewayMetrics>,
    /// Body cap.
    pub max_body_bytes: usize,
    /// Broker acknowledgement deadline.
    pub answer_timeout: Duration,
    /// What the consumers reject, so a beacon's bad event is refused at once.
    pub validation: wxpulse_runtime::config::ValidationConfig,
}

/// Most article reads one beacon request may carry.
pub const MAX_BEACON_EVENTS: usize = 500;

/// Serves until `shutdown`; returns the bound address.
pub async fn serve(
    gateway: Arc<Gateway>,
    listen: std::net::SocketAddr,
    shutdown: CancellationToken,
) -> anyhow::Result<std::net::SocketAddr> {
    wxpulse_runtime::metrics::serve_http("callbacks", listen, shutdown, move |req| {
        let gateway = gateway.clone();
        async move {
            let started = Instant::now();
            let response = if req.uri().path() == "/v1/article_reads" {
                gateway.beacon(req).await
            } else {
                let (status, body) = gateway.handle(req).await;
                Response::builder()
                    .status(status)
                    .header("content-type", "text/plain; charset=utf-8")
                    .body(Full::new(Bytes::from(body)))
                    .unwrap_or_default()
            };
            gateway
                .metrics
                .answer_seconds
                .observe(started.elapsed().as_secs_f64());
            response
        }
    })
    .await
}

/// The query string's parameters (WeChat's are URL-safe; `+` and `%xx` are decoded).
fn query(req: &Request<hyper::body::Incoming>) -> HashMap<String, String> {
    fn decode(s: &str) -> String {
        let bytes = s.as_bytes();
        let mut out = Vec::with_capacity(bytes.len());
        let mut i = 0;
        while i < bytes.len() {
            match bytes[i] {
                b'+' => out.push(b' '),
                b'%' if i + 2 < bytes.len() => {
                    let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("zz");
                    match u8::from_str_radix(hex, 16) {
                        Ok(b) => {
                            out.push(b);
                            i += 2;
                        }
                        Err(_) => out.push(b'%'),
                    }
                }
                b => out.push(b),
            }
            i += 1;
        }
        String::from_utf8_lossy(&out).into_owned()
    }
    req.uri()
        .query()
        .unwrap_or_default()
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (decode(k), decode(v)))
        .collect()
}

/// A refused callback: its status and a short reason for the caller.
type Refusal = (StatusCode, String);

impl Gateway {
    /// Counts a refusal under `outcome` and words it.
    fn refuse(&self, outcome: &str, status: StatusCode, why: impl std::fmt::Display) -> Refusal {
        self.metrics.outcome(outcome);
        (status, format!("{why}\n"))
    }

    /// The callback body's XML fields (size-capped, UTF-8).
    async fn read_fields(
        &self,
        body: hyper::body::Incoming,
    ) -> Result<HashMap<String, String>, Refusal> {
        let body = match Limited::new(body, self.max_body_bytes).collect().await {
            Ok(b) => b.to_bytes(),
            Err(_) => {
                return Err(self.refuse(
                    "too_large",
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "body too large",
                ))
            }
        };
        let xml = std::str::from_utf8(&body)
            .map_err(|_| self.refuse("malformed", StatusCode::BAD_REQUEST, "not UTF-8"))?;
        callback::fields(xml).map_err(|why| self.refuse("malformed", StatusCode::BAD_REQUEST, why))
    }

    /// Checks `msg_signature` over `encrypt`, decrypts it for `receive_id` and reads the
    /// inner callback's fields (WeChat's safe mode and every WeCom callback).
    fn open(
        &self,
        token: &str,
        key: &crypto::AesKey,
        receive_id: &str,
        q: &HashMap<String, String>,
        encrypt: &str,
    ) -> Result<HashMap<String, String>, Refusal> {
        let param = |k: &str| q.get(k).map(String::as_str).unwrap_or_default();
        let expected = crypto::signature(&[token, param("timestamp"), param("nonce"), encrypt]);
        if !crypto::signature_matches(&expected, param("msg_signature")) {
            return Err(self.refuse(
                "bad_signature",
                StatusCode::UNAUTHORIZED,
                "bad msg_signature",
            ));
        }
        let inner = key
            .decrypt(encrypt, receive_id)
            .map_err(|e| self.refuse("undecryptable", StatusCode::BAD_REQUEST, e))?;
        callback::fields(&inner)
            .map_err(|why| self.refuse("malformed", StatusCode::BAD_REQUEST, why))
    }

    /// Produces a mapped event, or acknowledges what is not one.
    async fn answer(&self, account: &str, mapped: Result<Mapped, String>) -> Refusal {
        match mapped {
            Ok(Mapped::Event(interaction)) => self.produce(account, interaction).await,
            Ok(Mapped::Ignored(what)) => {
                self.metrics.outcome("ignored");
                tracing::debug!(what, "callback acknowledged, not a pipeline event");
                (StatusCode::OK, "success".into())
            }
            Err(why) => self.refuse("malformed", StatusCode::BAD_REQUEST, why),
        }
    }

    async fn handle(&self, req: Request<hyper::body::Incoming>) -> Refusal {
        let result = if req.uri().path().starts_with("/wecom/") {
            self.wecom(req).await
        } else {
            self.wechat(req).await
        };
        result.unwrap_or_else(|refusal| refusal)
    }

    /// `/wechat/<AppID>`: an Official Account's server URL. GET is the verification; a
    /// POST is a message push in plaintext, compatible or safe mode (`encrypt_type=aes`).
    async fn wechat(&self, req: Request<hyper::body::Incoming>) -> Result<Refusal, Refusal> {
        let Some(app_id) = req
            .uri()
            .path()
            .strip_prefix("/wechat/")
            .map(|a| a.trim_end_matches('/').to_string())
        else {
            return Err((StatusCode::NOT_FOUND, "not found\n".into()));
        };
        let Some(account) = self.accounts.get(&app_id) else {
            return Err(self.refuse("unknown_account", StatusCode::NOT_FOUND, "unknown account"));
        };
        let q = query(&req);
        let param = |k: &str| q.get(k).map(String::as_str).unwrap_or_default();
        let expected = crypto::signature(&[&account.token, param("timestamp"), param("nonce")]);
        if !crypto::signature_matches(&expected, param("signature")) {
            return Err(self.refuse("bad_signature", StatusCode::UNAUTHORIZED, "bad signature"));
        }
        if req.method() == Method::GET {
            self.metrics.outcome("verified");
            return Ok((StatusCode::OK, param("echostr").to_string()));
        }
        if req.method() != Method::POST {
            return Err((StatusCode::METHOD_NOT_ALLOWED, "GET or POST\n".into()));
        }
        let safe = param("encrypt_type") == "aes";
        let outer = self.read_fields(req.into_body()).await?;
        let fields = if safe {
            let (Some(encrypt), Some(key)) = (outer.get("Encrypt"), account.key.as_ref()) else {
                return Err(self.refuse(
                    "undecryptable",
                    StatusCode::BAD_REQUEST,
                    "encrypt_type=aes needs Encrypt and the account's EncodingAESKey",
                ));
            };
            self.open(&account.token, key, &app_id, &q, encrypt)?
        } else {
            outer
        };
        Ok(self.answer(&app_id, callback::map(&fields)).await)
    }

    /// Encodes and produces one event; `success` once the broker has it.
    async fn produce(
        &self,
        app_id: &str,
        interaction: callback::Interaction,
    ) -> (StatusCode, String) {
        let Some((schema_id, schema)) = self.schemas.0.get(&interaction.stream) else {
            return (StatusCode::INTERNAL_SERVER_ERROR, "no schema\n".into());
        };
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64);
        let payload = match interaction.encode(app_id, now, *schema_id, schema) {
            Ok(p) => p,
            Err(why) => {
                self.metrics.outcome("malformed");
                return (StatusCode::BAD_REQUEST, format!("{why}\n"));
            }
        };
        let key = format!("{app_id}|{}", interaction.openid);
        let record = FutureRecord::to(interaction.stream.topic())
            .key(&key)
            .payload(&payload);
        let sent = tokio::time::timeout(
            self.answer_timeout,
            self.producer.send(record, Duration::from_millis(100)),
        )
        .await;
        match sent {
            Ok(Ok(_)) => {
                self.metrics.outcome("event");
                (StatusCode::OK, "success".into())
            }
            Ok(Err((e, _))) => {
                self.metrics.outcome("unavailable");
                tracing::warn!(error = %e, topic = interaction.stream.topic(), "event not acknowledged; WeChat will retry");
                (StatusCode::SERVICE_UNAVAILABLE, "retry\n".into())
            }
            Err(_) => {
                self.metrics.outcome("unavailable");
                tracing::warn!(
                    topic = interaction.stream.topic(),
                    "event not acknowledged in time; WeChat will retry"
                );
                (StatusCode::SERVICE_UNAVAILABLE, "retry\n".into())
            }
        }
    }

    /// `/wecom/<CorpID>`: a WeCom app's callback URL. Always encrypted (receive id = the
    /// CorpID): the GET verification's `echostr` is decrypted and echoed; a POST is an
    /// event, mapped by [`callback::map_wecom`].
    async fn wecom(&self, req: Request<hyper::body::Incoming>) -> Result<Refusal, Refusal> {
        let corp_id = req
            .uri()
            .path()
            .trim_start_matches("/wecom/")
            .trim_end_matches('/')
            .to_string();
        let Some(account) = self.accounts.get(&corp_id) else {
            return Err(self.refuse("unknown_account", StatusCode::NOT_FOUND, "unknown corp"));
        };
        let Some(key) = account.key.clone() else {
            return Err(self.refuse(
                "undecryptable",
                StatusCode::BAD_REQUEST,
                "no EncodingAESKey for this corp",
            ));
        };
        let q = query(&req);
        if req.method() == Method::GET {
            let echostr = q.get("echostr").cloned().unwrap_or_default();
            let param = |k: &str| q.get(k).map(String::as_str).unwrap_or_default();
            let expected =
                crypto::signature(&[&account.token, param("timestamp"), param("nonce"), &echostr]);
            if !crypto::signature_matches(&expected, param("msg_signature")) {
                return Err(self.refuse(
                    "bad_signature",
                    StatusCode::UNAUTHORIZED,
                    "bad msg_signature",
                ));
            }
            let plain = key
                .decrypt(&echostr, &corp_id)
                .map_err(|e| self.refuse("undecryptable", StatusCode::BAD_REQUEST, e))?;
            self.metrics.outcome("verified");
            return Ok((StatusCode::OK, plain));
        }
        let outer = self.read_fields(req.into_body()).await?;
        let Some(encrypt) = outer.get("Encrypt") else {
            return Err(self.refuse("malformed", StatusCode::BAD_REQUEST, "no Encrypt"));
        };
        let fields = self.open(&account.token, &key, &corp_id, &q, encrypt)?;
        Ok(self.answer(&corp_id, callback::map_wecom(&fields)).await)
    }

    /// `POST /v1/article_reads?key=<beacon_key>`: article reads from the brand's article
    /// pages and mini-program, a JSON array (or `{"events": [...]}`) of `article_read`
    /// objects without `server_time` (the gateway stamps it) and `app_id` (the key's
    /// account). Each is checked as `wxpulse events load` checks a line; the valid ones are
    /// produced, and the answer lists the rejected ones by index. CORS-open, and the key is
    /// in the query, so `navigator.sendBeacon` (no custom headers) works.
    async fn beacon(&self, req: Request<hyper::body::Incoming>) -> Response<Full<Bytes>> {
        let json = |status: StatusCode, body: serde_json::Value| {
            Response::builder()
                .status(status)
                .header("content-type", "application/json")
                .header("access-control-allow-origin", "*")
                .header("access-control-allow-methods", "POST, OPTIONS")
                .header("access-control-allow-headers", "content-type")
                .body(Full::new(Bytes::from(body.to_string())))
                .unwrap_or_default()
        };
        if req.method() == Method::OPTIONS {
            return json(StatusCode::NO_CONTENT, serde_json::Value::Null);
        }
        if req.method() != Method::POST {
            return json(
                StatusCode::METHOD_NOT_ALLOWED,
                serde_json::json!({"error": "POST"}),
            );
        }
        let q = query(&req);
        let Some(app_id) = q.get("key").and_then(|k| self.accounts.by_beacon_key(k)) else {
            self.metrics.outcome("bad_beacon_key");
            return json(
                StatusCode::UNAUTHORIZED,
                serde_json::json!({"error": "unknown key"}),
            );
        };
        let body = match Limited::new(req.into_body(), self.max_body_bytes)
            .collect()
            .await
        {
            Ok(b) => b.to_bytes(),
            Err(_) => {
                self.metrics.outcome("too_large");
                return json(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    serde_json::json!({"error": "body too large"}),
                );
            }
        };
        let events = match serde_json::from_slice::<serde_json::Value>(&body) {
            Ok(serde_json::Value::Array(a)) => a,
            Ok(serde_json::Value::Object(mut o)) => match o.remove("events") {
                Some(serde_json::Value::Array(a)) => a,
                _ => vec![serde_json::Value::Object(o)],
            },
            _ => {
                self.metrics.outcome("malformed");
                return json(
                    StatusCode::BAD_REQUEST,
                    serde_json::json!({"error": "not a JSON array of article reads"}),
                );
            }
        };
        if events.len() > MAX_BEACON_EVENTS {
            self.metrics.outcome("too_large");
            return json(
                StatusCode::PAYLOAD_TOO_LARGE,
                serde_json::json!({"error": format!("at most {MAX_BEACON_EVENTS} events per request")}),
            );
        }
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64);
        let stream = EventStream::ArticleReads;
        let Some((schema_id, _)) = self.schemas.0.get(&stream) else {
            return json(
                StatusCode::INTERNAL_SERVER_ERROR,
                serde_json::json!({"error": "no schema"}),
            );
        };
        let encoder = match wxpulse_cli::events::Encoder::new(
            stream,
            *schema_id,
            self.validation.clone(),
            now,
        ) {
            Ok(e) => e,
            Err(e) => {
                return json(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    serde_json::json!({"error": e.to_string()}),
                )
            }
        };
        let mut rejected = Vec::new();
        let mut pending = Vec::new();
        for (index, event) in events.into_iter().enumerate() {
            let serde_json::Value::Object(mut object) = event else {
                rejected.push(serde_json::json!({"index": index, "reason": "not an object"}));
                continue;
            };
            match object.get("app_id").and_then(|a| a.as_str()) {
                Some(a) if a != app_id => {
                    rejected.push(serde_json::json!({"index": index, "reason": "app_id is not the key's account"}));
                    continue;
                }
                _ => {}
            }
            object.insert("app_id".into(), serde_json::Value::String(app_id.clone()));
            object.insert("server_time".into(), serde_json::Value::from(now));
            match encoder.from_json(&object) {
                Ok(record) => pending.push(record),
                Err(reason) => rejected.push(serde_json::json!({"index": index, "reason": reason})),
            }
        }
        let mut deliveries = Vec::with_capacity(pending.len());
        for record in &pending {
            let mut r = FutureRecord::to(record.topic).key(&record.key);
            r.payload = record.payload.as_ref();
            deliveries.push(self.producer.send(r, Duration::from_millis(100)));
        }
        let acked = tokio::time::timeout(self.answer_timeout, futures_all(deliveries)).await;
        let accepted = pending.len();
        for _ in &rejected {
            self.metrics.outcome("beacon_rejected");
        }
        match acked {
            Ok(true) => {
                for _ in 0..accepted {
                    self.metrics.outcome("beacon_event");
                }
                json(
                    StatusCode::OK,
                    serde_json::json!({"accepted": accepted, "rejected": rejected}),
                )
            }
            _ => {
                self.metrics.outcome("unavailable");
                json(
                    StatusCode::SERVICE_UNAVAILABLE,
                    serde_json::json!({"error": "not acknowledged; send again (event ids make it safe)"}),
                )
            }
        }
    }
}

/// Awaits every delivery; false if any failed.
async fn futures_all<F, T, E>(deliveries: Vec<F>) -> bool
where
    F: std::future::Future<Output = Result<T, E>>,
{
    let mut ok = true;
    for d in deliveries {
        ok &= d.await.is_ok();
    }
    ok
}
