//! The layer: a validator and the few settings that say which URL Twilio signed.

use std::fmt;
use std::net::SocketAddr;
use std::ops::Deref;
use std::sync::Arc;

use bytes::Bytes;
use http::request::Parts;
use http::Response;
use http_body_util::Full;
use tower::Layer;
use twilio_signature::{Secret, Validator};

use crate::config::Config;
use crate::idempotency::Idempotency;
use crate::proxy::{is_bad_host, peer_addr_of};
use crate::refusal::Rejection;
use crate::service::TwilioSignature;

/// A tower [`Layer`] that lets through only requests signed by Twilio.
///
/// In order: no `X-Twilio-Signature` header → 400, before the body is touched; an absolute-form target
/// whose scheme is not `http`/`https`, a `Host` (or believed `X-Forwarded-Host`, or without `Host` the
/// request's authority) that could move the URL, or a believed `X-Forwarded-Proto` other than
/// `http`/`https` → 400; a validator with no usable secret → 500, before the body is read; a body over
/// the limit → 413 (a declared `Content-Length` without reading, a streamed body as soon as it grows
/// past the limit); a non-empty body verified as a form (no `bodySHA256` in the URL) whose
/// `Content-Type` is not `application/x-www-form-urlencoded` → 415; a signature or body hash that does
/// not match → 403 (the body is verified for every method, GET included). Each refusal is logged
/// through `tracing` at WARN (500: ERROR), target `twilio_signature_tower`, as one line, or handed to
/// the [`on_reject`](Self::on_reject) hook.
///
/// A verified request reaches the inner service with its body intact, its extensions kept (the peer
/// address; hyper's upgrade, for a WebSocket handshake) and [`Verified`](twilio_signature::Verified)
/// added.
///
/// The URL verified is [`base_url`](Self::base_url) followed by the raw request target (path and query
/// as sent), or, without a base URL, the connection's scheme (`http`, or `https` if
/// [`served_over_tls`](Self::served_over_tls); never the scheme an absolute-form target names) and the
/// `Host` header; `X-Forwarded-Proto` / `X-Forwarded-Host` replace them only for requests from
/// [trusted proxies](Self::trusted_proxies). A WebSocket handshake (Media Streams, ConversationRelay) is
/// verified with the scheme `wss` for a public `https` URL and `ws` for `http`, as Twilio signs it.
///
/// ```
/// use std::net::SocketAddr;
/// use axum::{extract::ConnectInfo, routing::post, Extension, Router};
/// use twilio_signature_tower::{Secret, TwilioSignatureLayer, Validator, Verified};
///
/// async fn sms(Extension(verified): Extension<Verified>, body: String) -> String {
///     format!("secret #{} signed {} bytes", verified.secret_index, body.len())
/// }
///
/// # fn main() -> Result<(), twilio_signature_tower::ConfigError> {
/// let secrets = vec![Secret::new(b"primary token"), Secret::new(b"secondary token")];
/// let twilio = TwilioSignatureLayer::new(Validator::with_secrets(secrets))
///     .base_url("https://example.com")?
///     .trusted_proxies(["10.0.0.0/8"])?
///     .peer_addr_from::<ConnectInfo<SocketAddr>>()
///     .body_limit(64 * 1024);
/// let app: Router = Router::new().route("/sms", post(sms)).route_layer(twilio);
/// # let _ = app;
/// # Ok(())
/// # }
/// ```
pub struct TwilioSignatureLayer<S> {
    config: Arc<Config<S>>,
}

impl<S> Clone for TwilioSignatureLayer<S> {
    fn clone(&self) -> Self {
        Self {
            config: Arc::clone(&self.config),
        }
    }
}

impl<S: AsRef<[Secret]>> TwilioSignatureLayer<S> {
    /// A layer that verifies with `validator`: a [`Validator`], or an `Arc` of one shared with the rest
    /// of the app. For key rotation give it both Auth Tokens
    /// (`Validator::with_secrets(vec![primary, secondary])`).
    pub fn new(validator: impl Into<Arc<Validator<S>>>) -> Self {
        Self {
            config: Arc::new(Config::new(validator.into())),
        }
    }

    /// The public origin Twilio calls, optionally with the prefix the app is mounted under
    /// (`https://example.com`, `https://example.com/twilio`): the URL verified is this followed by the
    /// raw request path and query. The scheme, `Host` and forwarding headers then play no part in the
    /// URL (a malformed `Host` is still refused).
    ///
    /// Give the origin, not the route: for `/sms` served at `https://example.com/sms`, the base URL is
    /// `https://example.com`. Under `Router::nest("/twilio", ...)`, where axum strips the prefix from
    /// the path the layer sees, give `https://example.com/twilio`.
    ///
    /// An error if it is not `http://` or `https://` with a host, or has a query or fragment.
    pub fn base_url(mut self, base_url: &str) -> Result<Self, ConfigError> {
        let base_url = parse_base_url(base_url).ok_or(ConfigError::BaseUrl)?;
        self.config_mut().base_url = Some(base_url.into());
        Ok(self)
    }

    /// The proxies whose `X-Forwarded-Proto` and `X-Forwarded-Host` are believed, as CIDR ranges
    /// (`"10.0.0.0/8"`, `"::1/128"`) or single addresses. Only the last value of each header is used
    /// (the last line's last item: what the nearest proxy added). Requests from any other address,
    /// or without a peer address in their extensions (see [`peer_addr_from`](Self::peer_addr_from)),
    /// are verified as if the headers were absent.
    ///
    /// An error names the first entry that is not a range.
    pub fn trusted_proxies<I>(mut self, ranges: I) -> Result<Self, ConfigError>
    where
        I: IntoIterator,
        I::Item: AsRef<str>,
    {
        let ranges = ranges
            .into_iter()
            .map(|range| {
                let range = range.as_ref();
                range
                    .parse()
                    .map_err(|_| ConfigError::TrustedProxy(range.into()))
            })
            .collect::<Result<_, _>>()?;
        self.config_mut().trusted_proxies = ranges;
        Ok(self)
    }

    /// Where the peer address is in the request extensions: the type the server inserts, any
    /// `T: Deref<Target = SocketAddr>`. [`PeerAddr`](crate::PeerAddr) by default (insert it in a hyper accept loop);
    /// for axum, `peer_addr_from::<axum::extract::ConnectInfo<SocketAddr>>()` with the app served by
    /// `into_make_service_with_connect_info::<SocketAddr>()`. Only needed with trusted proxies.
    #[must_use]
    pub fn peer_addr_from<T>(mut self) -> Self
    where
        T: Deref<Target = SocketAddr> + Send + Sync + 'static,
    {
        self.config_mut().peer_addr = peer_addr_of::<T>;
        self
    }

    /// The largest body accepted, in bytes ([`DEFAULT_BODY_LIMIT`](crate::DEFAULT_BODY_LIMIT), 1 MiB, by default). At most this
    /// many bytes (plus the frame that crosses it) are ever read.
    #[must_use]
    pub fn body_limit(mut self, bytes: usize) -> Self {
        self.config_mut().body_limit = bytes;
        self
    }

    /// The most form parameters a request may have ([`DEFAULT_MAX_PARAMS`](crate::DEFAULT_MAX_PARAMS) by default); more are
    /// refused (403, too many parameters). Up to 512 are sorted on the stack, more in a heap buffer.
    #[must_use]
    pub fn max_params(mut self, max_params: usize) -> Self {
        self.config_mut().max_params = max_params;
        self
    }

    /// The server accepts TLS connections itself (axum-server with rustls, hyper over tokio-rustls):
    /// without `base_url` or a believed `X-Forwarded-Proto`, the URL verified starts `https://`
    /// (`wss://` for a WebSocket handshake) instead of `http://` (`ws://`). The layer cannot see the
    /// connection, and never takes the scheme from the request target, which the client writes.
    #[must_use]
    pub fn served_over_tls(mut self) -> Self {
        self.config_mut().tls = true;
        self
    }

    /// Calls `hook` for every refused request instead of logging the default line, and answers what it
    /// returns. It gets the request's head (headers, extensions such as the peer address) and the
    /// [`Rejection`]: status, reason, URL verified, diagnosis. [`Rejection::log`] and
    /// [`Rejection::response`] are what the layer does without a hook, so a hook can keep either:
    ///
    /// ```
    /// use http::{header, Response, StatusCode};
    /// use twilio_signature_tower::{Secret, TwilioSignatureLayer, Validator};
    ///
    /// let layer = TwilioSignatureLayer::new(Validator::new(Secret::new(b"auth token")))
    ///     .on_reject(|_head, rejection| {
    ///         rejection.log(); // the default line, through tracing
    ///         if rejection.status() == StatusCode::FORBIDDEN {
    ///             // TwiML that hangs up, instead of the plain-text reason.
    ///             let mut response = Response::new("<Response><Hangup/></Response>".into());
    ///             *response.status_mut() = StatusCode::FORBIDDEN;
    ///             response.headers_mut().insert(header::CONTENT_TYPE, "text/xml".parse().unwrap());
    ///             return response;
    ///         }
    ///         rejection.response()
    ///     });
    /// # let _ = layer;
    /// ```
    #[must_use]
    pub fn on_reject<F>(mut self, hook: F) -> Self
    where
        F: Fn(&Parts, &Rejection) -> Response<Full<Bytes>> + Send + Sync + 'static,
    {
        self.config_mut().on_reject = Some(Arc::new(hook));
        self
    }

    /// Answers Twilio's retries once: a verified request carrying `I-Twilio-Idempotency-Token` claims
    /// its delivery in the store (a [`MemoryStore`](crate::idempotency::MemoryStore), a
    /// `RedisStore` with feature `redis`, or an [`Idempotency`] with its settings); the first delivery
    /// runs the inner service and its response (status, end-to-end headers, body up to 64 KiB) is
    /// buffered, stored and sent; a retry gets it again with `Idempotent-Replayed: true` and the inner
    /// service does not run; a retry while the first delivery is still running waits (5 s), then gets
    /// 409. A 5xx or an error is not stored, and its claim is released, as is the claim of a request
    /// dropped after claiming (the client gone) or whose response could not be stored.
    ///
    /// Only verified requests reach the store (refusals come first). A request without the token, and
    /// a WebSocket handshake (a stream cannot be replayed), pass unguarded. When the store fails, the
    /// request is processed unguarded and an error logged, or answered 503 with
    /// [`OnStoreError::Refuse`](crate::idempotency::OnStoreError::Refuse). Needs a tokio runtime with its
    /// timer (to wait, and to release a dropped request's claim). The key and stored layout are the Python and Go
    /// faces', so a mixed fleet shares one Redis. See [the module](crate::idempotency).
    ///
    /// ```
    /// use twilio_signature_tower::idempotency::MemoryStore;
    /// use twilio_signature_tower::{Secret, TwilioSignatureLayer, Validator};
    ///
    /// let layer = TwilioSignatureLayer::new(Validator::new(Secret::new(b"auth token")))
    ///     .idempotency(MemoryStore::new());
    /// # let _ = layer;
    /// ```
    #[must_use]
    pub fn idempotency(mut self, idempotency: impl Into<Idempotency>) -> Self {
        self.config_mut().idempotency = Some(idempotency.into());
        self
    }

    fn config_mut(&mut self) -> &mut Config<S> {
        Arc::make_mut(&mut self.config)
    }
}

impl<S, Inner> Layer<Inner> for TwilioSignatureLayer<S> {
    type Service = TwilioSignature<Inner, S>;

    fn layer(&self, inner: Inner) -> Self::Service {
        TwilioSignature::new(inner, Arc::clone(&self.config))
    }
}

impl<S: AsRef<[Secret]>> fmt::Debug for TwilioSignatureLayer<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.config.fmt(f)
    }
}

/// `base_url` without its trailing slashes, if it is `http(s)://authority[/prefix]` with a host that
/// could not move the URL and no query or fragment.
fn parse_base_url(base_url: &str) -> Option<&str> {
    let (scheme, rest) = base_url.split_once("://")?;
    if !scheme.eq_ignore_ascii_case("http") && !scheme.eq_ignore_ascii_case("https") {
        return None;
    }
    if base_url.contains(['?', '#']) {
        return None;
    }
    let authority = rest.split('/').next().unwrap_or(rest);
    // Credentials are allowed (Twilio drops them before signing); the host after them must be clean.
    let host = authority.rsplit('@').next().unwrap_or(authority);
    if is_bad_host(host.as_bytes()) || rest.bytes().any(|b| b <= b' ' || b == 0x7f) {
        return None;
    }
    Some(base_url.trim_end_matches('/'))
}

/// A layer setting that cannot be right.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConfigError {
    /// `base_url` is not `http://` or `https://` with a host, or has a query or fragment.
    BaseUrl,
    /// A trusted proxy entry is not an address or `address/prefix-length`.
    TrustedProxy(Box<str>),
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::BaseUrl => f.write_str(
                "base_url must be the public origin (and mount prefix) Twilio calls, such as \
                 https://example.com or https://example.com/app, with no query or fragment",
            ),
            Self::TrustedProxy(range) => write!(
                f,
                "trusted proxy {range:?} is not an address or a CIDR range such as 10.0.0.0/8 or ::1/128"
            ),
        }
    }
}

impl std::error::Error for ConfigError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_base_url_is_an_http_origin_with_an_optional_prefix() {
        assert_eq!(
            parse_base_url("https://example.com"),
            Some("https://example.com")
        );
        assert_eq!(
            parse_base_url("https://example.com/app/"),
            Some("https://example.com/app")
        );
        assert_eq!(
            parse_base_url("HTTP://example.com:8080"),
            Some("HTTP://example.com:8080")
        );
        assert_eq!(
            parse_base_url("https://u:p@example.com"),
            Some("https://u:p@example.com")
        );
        for bad in [
            "example.com",
            "ftp://example.com",
            "https://",
            "https:///path",
            "https://example.com?x=1",
            "https://example.com/#top",
            "https://exa mple.com",
            "https://example.com/a b",
            "https://a\\b",
        ] {
            assert_eq!(parse_base_url(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn a_malformed_trusted_proxy_is_an_error_that_names_it() {
        let layer = TwilioSignatureLayer::new(Validator::new(Secret::new(b"k")));
        let error = layer
            .trusted_proxies(["10.0.0.0/8", "10.0.0.0/40"])
            .expect_err("a prefix longer than 32 bits");
        assert_eq!(error, ConfigError::TrustedProxy("10.0.0.0/40".into()));
        assert!(error.to_string().contains("10.0.0.0/40"));
    }

    #[test]
    fn debug_shows_the_settings_but_never_a_secret() {
        let layer = TwilioSignatureLayer::new(Validator::new(Secret::new(b"hunter2-secret")))
            .trusted_proxies(["::1"])
            .expect("range");
        let shown = format!("{layer:?}");
        assert!(shown.contains("::1/128"), "{shown}");
        assert!(!shown.contains("hunter2"), "{shown}");
    }
}
