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
use wxpulse_runtime::dlq::{DeadLetter, DeadLetterReason, DeadLetterSink};
use wxpulse_runtime::enrich::Dimension;
use wxpulse_runtime::streams::EventStream;

use crate::accounts::Accounts;
use crate::callback::{self, Mapped};
use crate::crypto;
use crate::limits::{Lane, Limits, Refused as OverLimit};
use crate::metrics::GatewayMetrics;

/// The writer schema (registry id and parsed) of each stream the gateway produces to.
pub struct Schemas {
    /// Of each event stream.
    pub events: HashMap<EventStream, (u32, serde_avro_fast::Schema)>,
    /// Of the fan-follow topic.
    pub follows: (u32, serde_avro_fast::Schema),
}

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
    /// Where a signed body that cannot be read goes (sealed, like every dead letter), so
    /// a key mismatch or a sender's bug loses nothing.
    pub dead_letters: DeadLetterSink,
    /// The `dead_letters` table, so refusals show in `v_dead_letters_daily` beside the
    /// consumers' (best effort: the topic holds the letter either way).
    pub clickhouse: Option<clickhouse::Client>,
    /// Per-account admission.
    pub limits: Limits,
    /// Ends dead-letter retries at shutdown.
    pub shutdown: CancellationToken,
}

/// Where beacons arrive; also the source of their dead letters (`gateway:/v1/article_reads`).
const BEACON_PATH: &str = "/v1/article_reads";

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
            let response = if req.uri().path() == BEACON_PATH {
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

/// The query string's parameters (`+` and `%xx` decoded).
fn query(req: &Request<hyper::body::Incoming>) -> HashMap<String, String> {
    form_urlencoded::parse(req.uri().query().unwrap_or_default().as_bytes())
        .into_owned()
        .collect()
}

/// An answer: status and body text.
type Answer = (StatusCode, String);

/// A refused callback: the outcome it is counted under, its status, the reason told to the
/// caller, and — for a body WeChat signed that cannot be read — the body, which goes to
/// the dead-letter topic.
struct Refusal {
    outcome: &'static str,
    status: StatusCode,
    why: String,
    body: Option<Bytes>,
}

impl Refusal {
    fn new(outcome: &'static str, status: StatusCode, why: impl std::fmt::Display) -> Refusal {
        Refusal {
            outcome,
            status,
            why: why.to_string(),
            body: None,
        }
    }

    /// Keeps `body` for a dead letter when this is a refusal of what the body says.
    fn of_body(mut self, body: &Bytes) -> Refusal {
        if matches!(self.outcome, "malformed" | "undecryptable") {
            self.body = Some(body.clone());
        }
        self
    }
}

impl Gateway {
    /// Counts `refusal` and answers it; a refused body is dead-lettered first, and if the
    /// dead-letter topic does not take it in time the answer is 503 (WeChat retries).
    async fn refused(&self, path: &str, refusal: Refusal) -> Answer {
        self.metrics.outcome(refusal.outcome);
        if let Some(body) = &refusal.body {
            if !self.dead_letter(path, &refusal, body).await {
                self.metrics.outcome("unavailable");
                return (StatusCode::SERVICE_UNAVAILABLE, "retry\n".into());
            }
        }
        (refusal.status, format!("{}\n", refusal.why))
    }

    /// Sends a refused body to the dead-letter topic (reason `undecodable`, source
    /// `gateway:<path>`, never replayed: it is a callback, not an event) and records it in
    /// `dead_letters`; true once the topic has it.
    async fn dead_letter(&self, path: &str, refusal: &Refusal, body: &[u8]) -> bool {
        let now = now_ms();
        // A letter's identity is (source, partition, offset): the time in µs-like units
        // plus bits of the body's hash, so two replicas' letters do not collide.
        let sha = wxpulse_runtime::dlq::sha256_hex(body);
        let salt = i64::from_str_radix(&sha[..5], 16).unwrap_or(0) % 1_000_000;
        let source = format!("gateway:{path}");
        let detail = format!("{}: {}", refusal.outcome, refusal.why);
        let letter = DeadLetter {
            reason: DeadLetterReason::Undecodable,
            detail: &detail,
            source_topic: &source,
            source_partition: -1,
            source_offset: now * 1_000_000 + salt,
            source_key: None,
            service: "gateway",
            first_seen: now,
            payload: body,
        };
        let pending = self.dead_letters.send(&letter);
        let row = pending.row.clone();
        let delivered = tokio::time::timeout(
            self.answer_timeout,
            self.dead_letters.deliver_all(vec![pending], &self.shutdown),
        )
        .await;
        if !matches!(delivered, Ok(true)) {
            tracing::warn!(
                source,
                "refused callback not taken by the dead-letter topic"
            );
            return false;
        }
        tracing::info!(
            source,
            outcome = refusal.outcome,
            "refused callback dead-lettered"
        );
        if let Some(client) = self.clickhouse.clone() {
            tokio::spawn(async move {
                let written = async {
                    let mut insert = client
                        .insert::<wxpulse_runtime::dlq::DeadLetterRow>("dead_letters")
                        .await?;
                    insert.write(&row).await?;
                    insert.end().await
                }
                .await;
                if let Err(e) = written {
                    tracing::warn!(error = %e, "dead letter not recorded in dead_letters (it is in the topic)");
                }
            });
        }
        true
    }

    /// Admits `events` of `account`, or the refusal to answer.
    fn admit(&self, lane: Lane, account: &str, events: u32) -> Result<(), Refusal> {
        self.limits.admit(lane, account, events).map_err(|over| {
            let why = match over {
                OverLimit::OverRate => "rate limit of this account exceeded",
                OverLimit::OverBurst => "more events in one request than the account's burst",
            };
            Refusal::new("rate_limited", StatusCode::TOO_MANY_REQUESTS, why)
        })
    }

    /// The callback body, size-capped.
    async fn read_body(&self, body: hyper::body::Incoming) -> Result<Bytes, Refusal> {
        match Limited::new(body, self.max_body_bytes).collect().await {
            Ok(b) => Ok(b.to_bytes()),
            Err(_) => Err(Refusal::new(
                "too_large",
                StatusCode::PAYLOAD_TOO_LARGE,
                "body too large",
            )),
        }
    }

    /// A callback body's XML fields.
    fn read_fields(body: &Bytes) -> Result<HashMap<String, String>, Refusal> {
        let xml = std::str::from_utf8(body)
            .map_err(|_| Refusal::new("malformed", StatusCode::BAD_REQUEST, "not UTF-8"))?;
        callback::fields(xml).map_err(|why| Refusal::new("malformed", StatusCode::BAD_REQUEST, why))
    }

    /// Checks `msg_signature` over `encrypt`, decrypts it for `receive_id` and reads the
    /// inner callback's fields (WeChat's safe mode and every WeCom callback).
    fn open(
        token: &str,
        key: &crypto::AesKey,
        receive_id: &str,
        q: &HashMap<String, String>,
        encrypt: &str,
    ) -> Result<HashMap<String, String>, Refusal> {
        let param = |k: &str| q.get(k).map(String::as_str).unwrap_or_default();
        let expected = crypto::signature(&[token, param("timestamp"), param("nonce"), encrypt]);
        if !crypto::signature_matches(&expected, param("msg_signature")) {
            return Err(Refusal::new(
                "bad_signature",
                StatusCode::UNAUTHORIZED,
                "bad msg_signature",
            ));
        }
        let inner = key
            .decrypt(encrypt, receive_id)
            .map_err(|e| Refusal::new("undecryptable", StatusCode::BAD_REQUEST, e))?;
        callback::fields(&inner)
            .map_err(|why| Refusal::new("malformed", StatusCode::BAD_REQUEST, why))
    }

    /// Produces a mapped event, or acknowledges what is not one.
    async fn answer(
        &self,
        account: &str,
        mapped: Result<Mapped, String>,
    ) -> Result<Answer, Refusal> {
        match mapped {
            Ok(Mapped::Event(interaction)) => {
                self.admit(Lane::Callback, account, 1)?;
                self.produce(account, interaction).await
            }
            Ok(Mapped::Follow { follow, scan }) => {
                self.admit(Lane::Callback, account, 1)?;
                self.produce_follow(account, follow, scan).await
            }
            Ok(Mapped::Ignored(what)) => {
                self.metrics.outcome("ignored");
                tracing::debug!(what, "callback acknowledged, not a pipeline event");
                Ok((StatusCode::OK, "success".into()))
            }
            Err(why) => Err(Refusal::new("malformed", StatusCode::BAD_REQUEST, why)),
        }
    }

    async fn handle(&self, req: Request<hyper::body::Incoming>) -> Answer {
        let path = req.uri().path().to_string();
        let result = if path.starts_with("/wecom/") {
            self.wecom(req).await
        } else {
            self.wechat(req).await
        };
        match result {
            Ok(answer) => answer,
            Err(refusal) => self.refused(&path, refusal).await,
        }
    }

    /// `/wechat/<AppID>`: an Official Account's server URL. GET is the verification; a
    /// POST is a message push in plaintext, compatible or safe mode (`encrypt_type=aes`).
    async fn wechat(&self, req: Request<hyper::body::Incoming>) -> Result<Answer, Refusal> {
        let Some(app_id) = req
            .uri()
            .path()
            .strip_prefix("/wechat/")
            .map(|a| a.trim_end_matches('/').to_string())
        else {
            return Ok((StatusCode::NOT_FOUND, "not found\n".into()));
        };
        let Some(account) = self.accounts.get(&app_id) else {
            return Err(Refusal::new(
                "unknown_account",
                StatusCode::NOT_FOUND,
                "unknown account",
            ));
        };
        let q = query(&req);
        let param = |k: &str| q.get(k).map(String::as_str).unwrap_or_default();
        let expected = crypto::signature(&[&account.token, param("timestamp"), param("nonce")]);
        if !crypto::signature_matches(&expected, param("signature")) {
            return Err(Refusal::new(
                "bad_signature",
                StatusCode::UNAUTHORIZED,
                "bad signature",
            ));
        }
        if req.method() == Method::GET {
            self.metrics.outcome("verified");
            return Ok((StatusCode::OK, param("echostr").to_string()));
        }
        if req.method() != Method::POST {
            return Ok((StatusCode::METHOD_NOT_ALLOWED, "GET or POST\n".into()));
        }
        let safe = param("encrypt_type") == "aes";
        let body = self.read_body(req.into_body()).await?;
        let read = || {
            let outer = Self::read_fields(&body)?;
            if !safe {
                return Ok(outer);
            }
            let (Some(encrypt), Some(key)) = (outer.get("Encrypt"), account.key.as_ref()) else {
                return Err(Refusal::new(
                    "undecryptable",
                    StatusCode::BAD_REQUEST,
                    "encrypt_type=aes needs Encrypt and the account's EncodingAESKey",
                ));
            };
            Self::open(&account.token, key, &app_id, &q, encrypt)
        };
        let fields = read().map_err(|r| r.of_body(&body))?;
        self.answer(&app_id, callback::map(&fields))
            .await
            .map_err(|r| r.of_body(&body))
    }

    /// Encodes and produces one event; `success` once the broker has it.
    async fn produce(
        &self,
        app_id: &str,
        interaction: callback::Interaction,
    ) -> Result<Answer, Refusal> {
        let (topic, key, payload) = self.encode(app_id, &interaction, now_ms())?;
        self.send(topic, &key, &payload).await?;
        self.metrics.outcome("event");
        Ok((StatusCode::OK, "success".into()))
    }

    /// Produces a follow or unfollow to the fan-follow topic, and the QR scan a subscribe
    /// through a code also is; `success` once the broker has both (a retry re-sends both:
    /// the scan's derived id is dropped by the consumers, the follow is the same record).
    async fn produce_follow(
        &self,
        app_id: &str,
        follow: callback::Follow,
        scan: Option<callback::Interaction>,
    ) -> Result<Answer, Refusal> {
        let now = now_ms();
        let record = follow.record(app_id, now);
        let (id, schema) = &self.schemas.follows;
        let payload = record
            .encode_with(*id, schema)
            .map_err(|e| Refusal::new("malformed", StatusCode::BAD_REQUEST, e))?;
        let scan = scan.map(|s| self.encode(app_id, &s, now)).transpose()?;
        let key = record.key();
        let (follow_sent, scan_sent) = tokio::join!(
            self.send(Dimension::FanFollow.topic(), &key, &payload),
            async {
                match &scan {
                    Some((topic, key, payload)) => self.send(topic, key, payload).await,
                    None => Ok(()),
                }
            }
        );
        follow_sent?;
        scan_sent?;
        self.metrics.outcome("follow");
        if scan.is_some() {
            self.metrics.outcome("event");
        }
        Ok((StatusCode::OK, "success".into()))
    }

    /// An event's topic, key (`app_id|openid`) and framed value.
    fn encode(
        &self,
        app_id: &str,
        interaction: &callback::Interaction,
        server_time: i64,
    ) -> Result<(&'static str, String, Vec<u8>), Refusal> {
        let Some((schema_id, schema)) = self.schemas.events.get(&interaction.stream) else {
            return Err(Refusal::new(
                "unavailable",
                StatusCode::INTERNAL_SERVER_ERROR,
                "no schema",
            ));
        };
        let payload = interaction
            .encode(app_id, server_time, *schema_id, schema)
            .map_err(|why| Refusal::new("malformed", StatusCode::BAD_REQUEST, why))?;
        let key = format!("{app_id}|{}", interaction.openid);
        Ok((interaction.stream.topic(), key, payload))
    }

    /// One record, acknowledged by the broker within `answer_timeout`, else 503 (WeChat
    /// then retries the callback).
    async fn send(&self, topic: &str, key: &str, payload: &[u8]) -> Result<(), Refusal> {
        let record = FutureRecord::to(topic).key(key).payload(payload);
        let sent = tokio::time::timeout(
            self.answer_timeout,
            self.producer.send(record, Duration::from_millis(100)),
        )
        .await;
        let unavailable = || Refusal::new("unavailable", StatusCode::SERVICE_UNAVAILABLE, "retry");
        match sent {
            Ok(Ok(_)) => Ok(()),
            Ok(Err((e, _))) => {
                tracing::warn!(error = %e, topic, "record not acknowledged; WeChat will retry");
                Err(unavailable())
            }
            Err(_) => {
                tracing::warn!(topic, "record not acknowledged in time; WeChat will retry");
                Err(unavailable())
            }
        }
    }

    /// `/wecom/<CorpID>`: a WeCom app's callback URL. Always encrypted (receive id = the
    /// CorpID): the GET verification's `echostr` is decrypted and echoed; a POST is an
    /// event, mapped by [`callback::map_wecom`].
    async fn wecom(&self, req: Request<hyper::body::Incoming>) -> Result<Answer, Refusal> {
        let corp_id = req
            .uri()
            .path()
            .trim_start_matches("/wecom/")
            .trim_end_matches('/')
            .to_string();
        let Some(account) = self.accounts.get(&corp_id) else {
            return Err(Refusal::new(
                "unknown_account",
                StatusCode::NOT_FOUND,
                "unknown corp",
            ));
        };
        let Some(key) = account.key.clone() else {
            return Err(Refusal::new(
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
                return Err(Refusal::new(
                    "bad_signature",
                    StatusCode::UNAUTHORIZED,
                    "bad msg_signature",
                ));
            }
            let plain = key
                .decrypt(&echostr, &corp_id)
                .map_err(|e| Refusal::new("undecryptable", StatusCode::BAD_REQUEST, e))?;
            self.metrics.outcome("verified");
            return Ok((StatusCode::OK, plain));
        }
        let body = self.read_body(req.into_body()).await?;
        let read = || {
            let outer = Self::read_fields(&body)?;
            let Some(encrypt) = outer.get("Encrypt") else {
                return Err(Refusal::new(
                    "malformed",
                    StatusCode::BAD_REQUEST,
                    "no Encrypt",
                ));
            };
            Self::open(&account.token, &key, &corp_id, &q, encrypt)
        };
        let fields = read().map_err(|r| r.of_body(&body))?;
        self.answer(&corp_id, callback::map_wecom(&fields))
            .await
            .map_err(|r| r.of_body(&body))
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
                let why = "not a JSON array of article reads";
                let refusal = Refusal::new("malformed", StatusCode::BAD_REQUEST, why);
                self.metrics.outcome("malformed");
                if !self.dead_letter(BEACON_PATH, &refusal, &body).await {
                    return unavailable();
                }
                return json(StatusCode::BAD_REQUEST, serde_json::json!({"error": why}));
            }
        };
        if events.len() > MAX_BEACON_EVENTS {
            self.metrics.outcome("too_large");
            return json(
                StatusCode::PAYLOAD_TOO_LARGE,
                serde_json::json!({"error": format!("at most {MAX_BEACON_EVENTS} events per request")}),
            );
        }
        if let Err(refusal) = self.admit(Lane::Beacon, &app_id, events.len() as u32) {
            self.metrics.outcome(refusal.outcome);
            return json(refusal.status, serde_json::json!({"error": refusal.why}));
        }
        let now = now_ms();
        let stream = EventStream::ArticleReads;
        let Some((schema_id, _)) = self.schemas.events.get(&stream) else {
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
        // Each rejected read is answered by index and also dead-lettered: a page's script
        // rarely reads the answer, so the letter is what tells someone.
        let mut rejected = Vec::new();
        let mut letters = Vec::new();
        let mut pending = Vec::new();
        for (index, event) in events.into_iter().enumerate() {
            let raw = event.to_string();
            let reason = match event {
                serde_json::Value::Object(mut object) => {
                    match object.get("app_id").and_then(|a| a.as_str()) {
                        Some(a) if a != app_id => {
                            Err("app_id is not the key's account".to_string())
                        }
                        _ => {
                            object
                                .insert("app_id".into(), serde_json::Value::String(app_id.clone()));
                            object.insert("server_time".into(), serde_json::Value::from(now));
                            encoder
                                .from_json(&object)
                                .map(|record| pending.push(record))
                        }
                    }
                }
                _ => Err("not an object".to_string()),
            };
            if let Err(reason) = reason {
                rejected.push(serde_json::json!({"index": index, "reason": reason}));
                letters.push((reason, raw));
            }
        }
        for (reason, raw) in &letters {
            let refusal = Refusal::new("beacon_rejected", StatusCode::BAD_REQUEST, reason);
            if !self
                .dead_letter(BEACON_PATH, &refusal, raw.as_bytes())
                .await
            {
                return unavailable();
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
                unavailable()
            }
        }
    }
}

/// The beacon's answer when the broker did not take what it must: the page sends again
/// (event ids make that safe).
fn unavailable() -> Response<Full<Bytes>> {
    Response::builder()
        .status(StatusCode::SERVICE_UNAVAILABLE)
        .header("content-type", "application/json")
        .header("access-control-allow-origin", "*")
        .body(Full::new(Bytes::from(
            serde_json::json!({"error": "not acknowledged; send again (event ids make it safe)"})
                .to_string(),
        )))
        .unwrap_or_default()
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

/// Unix time now, ms.
fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}
