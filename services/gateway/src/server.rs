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
use rdkafka::producer::FutureRecord;
use tokio_util::sync::CancellationToken;
use wxpulse_runtime::enrich::DimensionRecord;

use crate::callback::{self, Mapped};
use crate::crypto;
use crate::limits::Lane;
use crate::state::{now_ms, query, Answer, Gateway, Refusal};

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
            let response = if req.uri().path() == crate::beacon::BEACON_PATH {
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

impl Gateway {
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
                let record = follow.record(account, now_ms());
                self.produce_record(account, record, scan, "follow").await
            }
            Ok(Mapped::Contact { contact, scan }) => {
                self.admit(Lane::Callback, account, 1)?;
                let record = contact.record(account, now_ms());
                self.produce_record(account, record, scan, "contact").await
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

    /// Produces a dimension record (a follow or unfollow, an associate's contact change),
    /// and the QR scan a subscribe or contact addition through a code also is; `success`
    /// once the broker has both (a retry re-sends both: the scan's derived id is dropped by
    /// the consumers, the record is the same one under the same key).
    async fn produce_record(
        &self,
        app_id: &str,
        record: DimensionRecord,
        scan: Option<callback::Interaction>,
        outcome: &'static str,
    ) -> Result<Answer, Refusal> {
        let now = now_ms();
        let dimension = record.dimension();
        let Some((id, schema)) = self.schemas.dimensions.get(&dimension) else {
            return Err(Refusal::new(
                "unavailable",
                StatusCode::INTERNAL_SERVER_ERROR,
                "no schema",
            ));
        };
        let payload = record
            .encode_with(*id, schema)
            .map_err(|e| Refusal::new("malformed", StatusCode::BAD_REQUEST, e))?;
        let scan = scan.map(|s| self.encode(app_id, &s, now)).transpose()?;
        let key = record.key();
        let (record_sent, scan_sent) =
            tokio::join!(self.send(dimension.topic(), &key, &payload), async {
                match &scan {
                    Some((topic, key, payload)) => self.send(topic, key, payload).await,
                    None => Ok(()),
                }
            });
        record_sent?;
        scan_sent?;
        self.metrics.outcome(outcome);
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
}
