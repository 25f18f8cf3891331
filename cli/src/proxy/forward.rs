//! The service behind the tower layer: sends a verified request to the upstream, as received plus
//! `X-Twilio-Verified`, and returns the upstream's answer (or 502/504). A verified WebSocket handshake
//! that the upstream accepts becomes a tunnel between the two connections.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::header::{self, HeaderName, HeaderValue};
use http::{HeaderMap, Method, Request, Response, StatusCode, Uri, Version};
use http_body_util::{Either, Full};
use hyper::body::Incoming;
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use twilio_signature::{Candidate, Verified};

use super::config::Upstream;
use super::metrics::{Metrics, Reason};
use super::pool::Pool;

/// The response body the forwarder returns: the upstream's, streamed, or the proxy's own text.
pub type Body = Either<Incoming, Full<Bytes>>;

/// The header the upstream reads to know what was verified.
pub const VERIFIED: HeaderName = HeaderName::from_static("x-twilio-verified");

/// When the request arrived (put in its extensions before the layer runs).
#[derive(Clone, Copy, Debug)]
pub struct Arrived(pub Instant);

/// What happened past the layer, put in the response's extensions for the request's log line. A
/// response without it was answered by the layer itself (a refusal).
#[derive(Clone, Debug)]
pub struct Passed {
    pub reason: Reason,
    pub verified: HeaderValue,
    pub upstream_time: Option<Duration>,
    pub detail: Option<String>,
}

/// One route's forwarder.
#[derive(Clone, Debug)]
pub struct Forward {
    pub(super) route: Arc<Route>,
}

#[derive(Debug)]
pub struct Route {
    pub upstream: Upstream,
    /// The key id of the route's secrets, named in X-Twilio-Verified.
    pub key_id: Option<String>,
    /// This thread's keep-alive connections to the upstream.
    pub pool: Pool,
    pub timeout: Duration,
    pub metrics: Arc<Metrics>,
    /// Upgraded to a sender each tunnel holds while it runs (see `server::serve`'s drain).
    pub tunnels: tokio::sync::mpsc::WeakSender<()>,
}

impl tower::Service<Request<Full<Bytes>>> for Forward {
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response<Body>, Infallible>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<Full<Bytes>>) -> Self::Future {
        let route = Arc::clone(&self.route);
        Box::pin(async move { Ok(route.forward(request).await) })
    }
}

impl Route {
    async fn forward(&self, mut request: Request<Full<Bytes>>) -> Response<Body> {
        if let Some(Arrived(at)) = request.extensions().get::<Arrived>() {
            self.metrics.verify(at.elapsed());
        }
        // The layer puts `Verified` in every request it passes.
        let verified = request.extensions().get::<Verified>().map_or_else(
            || HeaderValue::from_static("none"),
            |v| self.verified_header(v),
        );
        let client_upgrade = request.extensions_mut().remove::<OnUpgrade>();
        // The handshake the layer verified over ws(s)://: an HTTP/1.1 GET asking for websocket.
        let websocket = client_upgrade.is_some()
            && request.method() == Method::GET
            && is_websocket_upgrade(request.headers());

        let (mut parts, body) = request.into_parts();
        if let Err(e) = self.upstream_head(&mut parts, &verified, websocket) {
            return Self::failure(
                StatusCode::BAD_GATEWAY,
                Reason::UpstreamUnavailable,
                verified,
                None,
                format!("cannot build the upstream request: {e}"),
            );
        }
        let outgoing = Request::from_parts(parts, body);

        let sent = Instant::now();
        let answer = tokio::time::timeout(self.timeout, self.pool.send(outgoing)).await;
        let upstream_time = sent.elapsed();
        self.metrics.upstream(upstream_time);
        let mut response = match answer {
            Ok(Ok(response)) => response,
            Ok(Err(e)) => {
                return Self::failure(
                    StatusCode::BAD_GATEWAY,
                    Reason::UpstreamUnavailable,
                    verified,
                    Some(upstream_time),
                    format!(
                        "upstream {} unavailable: {}",
                        self.upstream.authority,
                        error_chain(&e)
                    ),
                )
            }
            Err(_) => {
                return Self::failure(
                    StatusCode::GATEWAY_TIMEOUT,
                    Reason::UpstreamTimeout,
                    verified,
                    Some(upstream_time),
                    format!(
                        "upstream {} did not answer within {:?} (--upstream-timeout)",
                        self.upstream.authority, self.timeout
                    ),
                )
            }
        };
        let switching = response.status() == StatusCode::SWITCHING_PROTOCOLS;
        let upgrade_value = response.headers().get(header::UPGRADE).cloned();
        strip_hop_by_hop(response.headers_mut());
        // A tunnel only to a WebSocket: a 101 to another protocol is not what was verified.
        let upgrade_value = upgrade_value.filter(|value| {
            value
                .to_str()
                .is_ok_and(|v| v.trim().eq_ignore_ascii_case("websocket"))
        });
        if switching && websocket {
            if let (Some(client), Some(value)) = (client_upgrade, upgrade_value) {
                response.headers_mut().insert(header::UPGRADE, value);
                response
                    .headers_mut()
                    .insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
                let upstream = hyper::upgrade::on(&mut response);
                self.metrics.tunnel_opened();
                // No sender once shutdown has begun: the tunnel still runs, untracked.
                tokio::spawn(tunnel(client, upstream, self.tunnels.upgrade()));
            }
        }
        let mut response = response.map(Either::Left);
        response.extensions_mut().insert(Passed {
            reason: Reason::Ok,
            verified,
            upstream_time: Some(upstream_time),
            detail: None,
        });
        response
    }

    /// The request head the upstream gets: the client's, less its hop-by-hop headers and any
    /// X-Twilio-Verified, plus the proxy's X-Twilio-Verified, sent to the upstream over HTTP/1.1. A
    /// WebSocket handshake keeps `Upgrade` and `Connection: upgrade` (they are hop-by-hop, and this
    /// hop asks for the upgrade too).
    fn upstream_head(
        &self,
        parts: &mut http::request::Parts,
        verified: &HeaderValue,
        websocket: bool,
    ) -> Result<(), http::Error> {
        let upgrade_value = parts.headers.get(header::UPGRADE).cloned();
        strip_hop_by_hop(&mut parts.headers);
        // The expectation was this hop's: hyper answered 100 Continue when the layer read the body,
        // which is now whole.
        parts.headers.remove(header::EXPECT);
        // Whatever a client calls X-Twilio-Verified never reaches the app: only the proxy's own does.
        // That includes X_Twilio_Verified, which CGI-style servers (PHP, older gunicorn and Puma)
        // read as the same HTTP_X_TWILIO_VERIFIED variable.
        let spoofs: Vec<HeaderName> = parts
            .headers
            .keys()
            .filter(|name| {
                name.as_str().len() == VERIFIED.as_str().len()
                    && name
                        .as_str()
                        .bytes()
                        .zip(VERIFIED.as_str().bytes())
                        .all(|(a, b)| a == b || (a == b'_' && b == b'-'))
            })
            .cloned()
            .collect();
        for name in spoofs {
            parts.headers.remove(name);
        }
        parts.headers.insert(VERIFIED, verified.clone());
        if websocket {
            // The layer verified a WebSocket handshake: the upstream is asked for exactly that, whatever
            // other protocols the client's Upgrade lines named.
            if upgrade_value.is_some() {
                parts
                    .headers
                    .insert(header::UPGRADE, HeaderValue::from_static("websocket"));
                parts
                    .headers
                    .insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
            }
        }
        // Origin-form, as an HTTP/1.1 request to a server (not a proxy) is sent: the route's path
        // prefix and the target as the client sent it. The client's Host goes with it, or the
        // upstream's when it sent none (HTTP/1.0).
        if parts.uri.scheme().is_some() || !self.upstream.prefix.is_empty() {
            let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
            parts.uri = Uri::builder()
                .path_and_query(format!("{}{path}", self.upstream.prefix))
                .build()?;
        }
        if !parts.headers.contains_key(header::HOST) {
            let host = HeaderValue::from_str(self.upstream.authority.as_str())?;
            parts.headers.insert(header::HOST, host);
        }
        // HTTP/1.1 to the upstream whatever the client spoke (keep-alive, chunked responses).
        parts.version = Version::HTTP_11;
        Ok(())
    }

    /// `[key=ID; ]secret=N; candidate=NAME`.
    fn verified_header(&self, verified: &Verified) -> HeaderValue {
        let candidate = match verified.candidate {
            Candidate::AsGiven => "as-given",
            Candidate::PortToggled => "port-toggled",
            Candidate::WithoutUserinfo => "without-userinfo",
            Candidate::WithoutUserinfoPortToggled => "without-userinfo-port-toggled",
        };
        let text = match &self.key_id {
            Some(id) => format!(
                "key={id}; secret={}; candidate={candidate}",
                verified.secret_index
            ),
            None => format!("secret={}; candidate={candidate}", verified.secret_index),
        };
        HeaderValue::from_str(&text).unwrap_or_else(|_| HeaderValue::from_static("verified"))
    }

    fn failure(
        status: StatusCode,
        reason: Reason,
        verified: HeaderValue,
        upstream_time: Option<Duration>,
        detail: String,
    ) -> Response<Body> {
        let text = match reason {
            Reason::UpstreamTimeout => "the app behind the proxy did not answer in time\n",
            _ => "the app behind the proxy cannot be reached\n",
        };
        let mut response = Response::new(Either::Right(Full::new(Bytes::from_static(
            text.as_bytes(),
        ))));
        *response.status_mut() = status;
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        );
        response.extensions_mut().insert(Passed {
            reason,
            verified,
            upstream_time,
            detail: Some(detail),
        });
        response
    }
}

/// Joins the client's and the upstream's upgraded connections and copies bytes both ways until one
/// side closes.
async fn tunnel(
    client: OnUpgrade,
    upstream: OnUpgrade,
    _running: Option<tokio::sync::mpsc::Sender<()>>,
) {
    let (client, upstream) = tokio::join!(client, upstream);
    let (Ok(client), Ok(upstream)) = (client, upstream) else {
        super::log::note("WARN", "a WebSocket upgrade did not complete on one side");
        return;
    };
    let mut client = TokioIo::new(client);
    let mut upstream = TokioIo::new(upstream);
    let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
}

/// An HTTP/1.1 WebSocket handshake: `Upgrade: websocket` and a Connection header with the token
/// `upgrade` (both case-insensitive).
pub fn is_websocket_upgrade(headers: &HeaderMap) -> bool {
    let upgrade = headers
        .get_all(header::UPGRADE)
        .iter()
        .any(|v| tokens(v).any(|t| t.eq_ignore_ascii_case(b"websocket")));
    upgrade
        && headers
            .get_all(header::CONNECTION)
            .iter()
            .any(|v| tokens(v).any(|t| t.eq_ignore_ascii_case(b"upgrade")))
}

fn tokens(value: &HeaderValue) -> impl Iterator<Item = &[u8]> {
    value
        .as_bytes()
        .split(|&b| b == b',')
        .map(<[u8]>::trim_ascii)
        .filter(|t| !t.is_empty())
}

/// The hop-by-hop headers of RFC 9110 section 7.6.1, and the obsolete ones proxies still drop.
fn is_hop_by_hop(name: &HeaderName) -> bool {
    matches!(
        name.as_str(),
        "connection"
            | "keep-alive"
            | "proxy-authenticate"
            | "proxy-authorization"
            | "proxy-connection"
            | "te"
            | "trailer"
            | "transfer-encoding"
            | "upgrade"
    )
}

/// Removes the hop-by-hop headers and every header the Connection header names.
pub fn strip_hop_by_hop(headers: &mut HeaderMap) {
    // Most requests carry none, and most responses only `Connection: keep-alive`: one pass over the
    // names finds them, instead of a lookup for each name that could be there.
    if !headers.keys().any(is_hop_by_hop) {
        return;
    }
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .flat_map(tokens)
        .filter_map(|t| HeaderName::from_bytes(t).ok())
        .collect();
    // Rebuilt rather than removed from: `HeaderMap::remove` moves the last header into the removed
    // one's place, and the headers that stay keep the order they came in.
    let mut kept = HeaderMap::with_capacity(headers.len());
    let mut name = None;
    for (first, value) in std::mem::take(headers) {
        // The name comes with a header's first value only; `None` repeats the one before.
        if let Some(first) = first {
            name = (!is_hop_by_hop(&first) && !named.contains(&first)).then_some(first);
        }
        if let Some(name) = &name {
            kept.append(name.clone(), value);
        }
    }
    *headers = kept;
}

/// An error and its causes on one line (hyper's own message alone says little, e.g. "client error").
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hop_by_hop_headers_and_those_connection_names_are_dropped() {
        let mut headers = HeaderMap::new();
        for (name, value) in [
            ("connection", "keep-alive, X-Secret-Hop"),
            ("keep-alive", "timeout=5"),
            ("x-secret-hop", "1"),
            ("transfer-encoding", "chunked"),
            ("te", "trailers"),
            ("upgrade", "h2c"),
            ("proxy-connection", "keep-alive"),
            ("x-twilio-signature", "abc="),
            ("content-type", "application/x-www-form-urlencoded"),
            ("upgrade", "h2c"),
            ("x-forwarded-for", "203.0.113.7"),
            ("x-forwarded-for", "10.0.0.5"),
        ] {
            headers.append(
                HeaderName::from_static(name),
                HeaderValue::from_static(value),
            );
        }
        strip_hop_by_hop(&mut headers);
        let left: Vec<(&str, &str)> = headers
            .iter()
            .map(|(name, value)| (name.as_str(), value.to_str().unwrap()))
            .collect();
        assert_eq!(
            left,
            [
                ("x-twilio-signature", "abc="),
                ("content-type", "application/x-www-form-urlencoded"),
                ("x-forwarded-for", "203.0.113.7"),
                ("x-forwarded-for", "10.0.0.5"),
            ],
            "the rest stay, in the order they came"
        );
    }

    #[test]
    fn a_websocket_upgrade_needs_both_headers() {
        let mut headers = HeaderMap::new();
        headers.insert(header::UPGRADE, HeaderValue::from_static("WebSocket"));
        assert!(!is_websocket_upgrade(&headers));
        headers.insert(
            header::CONNECTION,
            HeaderValue::from_static("keep-alive, Upgrade"),
        );
        assert!(is_websocket_upgrade(&headers));
        headers.insert(header::UPGRADE, HeaderValue::from_static("h2c"));
        assert!(!is_websocket_upgrade(&headers));
    }
}
