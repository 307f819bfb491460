//! The HTTP endpoint every long-running wxpulse process serves (`/metrics`, `/healthz`,
//! `/readyz`), and the small HTTP/1 server it and the gateway share.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio_util::sync::CancellationToken;

/// What the endpoint serves: a service's [`Metrics`](super::Metrics), or the registry of another long-running
/// wxpulse process (the fan-profile mirror), so that every process answers the same three
/// paths the same way.
pub trait Exposition: Send + Sync + 'static {
    /// The Prometheus text exposition.
    fn render(&self) -> String;
    /// `Ok` when `/readyz` answers 200; else why not (empty: no particular reason).
    fn readiness(&self) -> Result<(), String>;
}

/// Serves `/metrics`, `/healthz` and `/readyz` until `shutdown` fires.
pub async fn serve<E: Exposition>(
    metrics: Arc<E>,
    listen: SocketAddr,
    shutdown: CancellationToken,
) -> anyhow::Result<SocketAddr> {
    serve_http("metrics", listen, shutdown, move |req| {
        let metrics = metrics.clone();
        async move { respond(&*metrics, req.uri().path()) }
    })
    .await
}

/// An HTTP/1 server on `listen` answering every request with `handle`, one task per
/// connection, until `shutdown` fires; returns the bound address (`what` names it in the
/// error when the address is taken). The metrics endpoint and the gateway share it.
pub async fn serve_http<H, F>(
    what: &str,
    listen: SocketAddr,
    shutdown: CancellationToken,
    handle: H,
) -> anyhow::Result<SocketAddr>
where
    H: Fn(Request<hyper::body::Incoming>) -> F + Clone + Send + Sync + 'static,
    F: std::future::Future<Output = Response<Full<Bytes>>> + Send + 'static,
{
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen for {what} on {listen}: {e}"))?;
    let local = listener.local_addr()?;
    tokio::spawn(async move {
        loop {
            let accepted = tokio::select! {
                _ = shutdown.cancelled() => break,
                accepted = listener.accept() => accepted,
            };
            let Ok((stream, _)) = accepted else { continue };
            let handle = handle.clone();
            tokio::spawn(async move {
                let service =
                    hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
                        let answer = handle(req);
                        async move { Ok::<_, Infallible>(answer.await) }
                    });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    Ok(local)
}

/// The answer to a request for `path` (`pub(crate)` for the tests).
pub(crate) fn respond<E: Exposition + ?Sized>(metrics: &E, path: &str) -> Response<Full<Bytes>> {
    let (status, body, content_type) = match path {
        "/metrics" => (
            StatusCode::OK,
            metrics.render(),
            "text/plain; version=0.0.4",
        ),
        "/healthz" => (StatusCode::OK, "ok\n".to_string(), "text/plain"),
        "/readyz" => match metrics.readiness() {
            Ok(()) => (StatusCode::OK, "ready\n".to_string(), "text/plain"),
            Err(why) if why.is_empty() => (
                StatusCode::SERVICE_UNAVAILABLE,
                "not ready\n".to_string(),
                "text/plain",
            ),
            Err(why) => (
                StatusCode::SERVICE_UNAVAILABLE,
                format!("not ready: {why}\n"),
                "text/plain",
            ),
        },
        _ => (
            StatusCode::NOT_FOUND,
            "not found\n".to_string(),
            "text/plain",
        ),
    };
    Response::builder()
        .status(status)
        .header("content-type", content_type)
        .body(Full::new(Bytes::from(body)))
        .expect("static response parts are valid")
}
