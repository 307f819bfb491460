//! The article-read beacon: `POST /v1/article_reads?key=<beacon_key>` from the brand's
//! article pages and mini-program, since WeChat pushes no reads. Kept apart from the
//! callback endpoint: it is JSON, keyed by an API key instead of a signature, CORS-open,
//! and answers per event.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::{Method, Request, Response, StatusCode};
use rdkafka::producer::FutureRecord;
use wxpulse_runtime::streams::EventStream;

use crate::limits::Lane;
use crate::state::{now_ms, query, Gateway, Refusal};

/// Where beacons arrive; also the source of their dead letters (`gateway:/v1/article_reads`).
pub(crate) const BEACON_PATH: &str = "/v1/article_reads";

/// Most article reads one beacon request may carry.
pub const MAX_BEACON_EVENTS: usize = 500;

impl Gateway {
    /// `POST /v1/article_reads?key=<beacon_key>`: article reads from the brand's article
    /// pages and mini-program, a JSON array (or `{"events": [...]}`) of `article_read`
    /// objects without `server_time` (the gateway stamps it) and `app_id` (the key's
    /// account). Each is checked as `wxpulse events load` checks a line; the valid ones are
    /// produced, and the answer lists the rejected ones by index. CORS-open, and the key is
    /// in the query, so `navigator.sendBeacon` (no custom headers) works.
    pub(crate) async fn beacon(
        &self,
        req: Request<hyper::body::Incoming>,
    ) -> Response<Full<Bytes>> {
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
