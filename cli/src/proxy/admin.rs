//! The admin listener: `/healthz` (the process serves), `/readyz` (every upstream accepts a TCP
//! connection, and Redis answers) and `/metrics` (Prometheus text format). Kept off the proxied port so that it is never
//! exposed to Twilio's side.

use std::convert::Infallible;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{header, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};

use twilio_signature_tower::idempotency::RedisStore;

use super::metrics::Metrics;
use super::{log, Failure};

/// How long `/readyz` waits for each upstream's TCP handshake.
const READY_TIMEOUT: Duration = Duration::from_secs(1);

struct Admin {
    upstreams: Vec<String>,
    redis: Option<RedisStore>,
    metrics: Arc<Metrics>,
}

/// Binds `address` and serves the admin endpoints in the background; returns the bound address.
pub async fn start(
    address: SocketAddr,
    upstreams: Vec<String>,
    redis: Option<RedisStore>,
    metrics: &Arc<Metrics>,
) -> Result<SocketAddr, Failure> {
    let listener = TcpListener::bind(address)
        .await
        .map_err(|e| Failure::usage(format!("cannot listen on --admin-listen {address}: {e}")))?;
    let local = listener
        .local_addr()
        .map_err(|e| Failure::usage(format!("cannot listen on --admin-listen {address}: {e}")))?;
    let admin = Arc::new(Admin {
        upstreams,
        redis,
        metrics: Arc::clone(metrics),
    });
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            };
            let admin = Arc::clone(&admin);
            tokio::spawn(async move {
                let service = service_fn(move |request| Arc::clone(&admin).answer(request));
                let _ = http1::Builder::new()
                    .timer(TokioTimer::new())
                    .header_read_timeout(Duration::from_secs(10))
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    Ok(local)
}

impl Admin {
    async fn answer(
        self: Arc<Self>,
        request: Request<Incoming>,
    ) -> Result<Response<Full<Bytes>>, Infallible> {
        if request.method() != Method::GET && request.method() != Method::HEAD {
            return Ok(text(StatusCode::METHOD_NOT_ALLOWED, "GET only\n".into()));
        }
        Ok(match request.uri().path() {
            "/healthz" => text(StatusCode::OK, "ok\n".into()),
            "/readyz" => self.ready().await,
            "/metrics" => {
                let mut response = text(StatusCode::OK, self.metrics.render());
                response.headers_mut().insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
                );
                response
            }
            _ => text(
                StatusCode::NOT_FOUND,
                "the admin listener serves /healthz, /readyz and /metrics\n".into(),
            ),
        })
    }

    /// 200 when every upstream accepts a connection and Redis (with --redis) answers, else 503 naming what
    /// does not.
    async fn ready(&self) -> Response<Full<Bytes>> {
        let mut down = String::new();
        for upstream in &self.upstreams {
            match tokio::time::timeout(READY_TIMEOUT, TcpStream::connect(upstream.as_str())).await {
                Ok(Ok(_)) => {}
                Ok(Err(e)) => {
                    let _ = writeln!(down, "upstream {upstream} unreachable: {e}");
                }
                Err(_) => {
                    let _ = writeln!(
                        down,
                        "upstream {upstream} did not accept a connection within {READY_TIMEOUT:?}"
                    );
                }
            }
        }
        if let Some(redis) = &self.redis {
            match tokio::time::timeout(READY_TIMEOUT * 3, redis.ping()).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    let _ = writeln!(down, "the retry store is unreachable: {e}");
                }
                Err(_) => {
                    let _ = writeln!(down, "the retry store did not answer a PING in time");
                }
            }
        }
        if down.is_empty() {
            text(StatusCode::OK, "ready\n".into())
        } else {
            log::note("WARN", &format!("/readyz: {}", down.trim_end()));
            text(StatusCode::SERVICE_UNAVAILABLE, down)
        }
    }
}

fn text(status: StatusCode, body: String) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}
