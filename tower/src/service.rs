//! The service: request in → signature header → URL → body within the limit → verdict → inner service.

use std::borrow::Cow;
use std::fmt;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::request::Parts;
use http::{
    header, HeaderMap, HeaderName, HeaderValue, Method, Request, Response, StatusCode, Version,
};
use http_body::Body;
use http_body_util::{Either, Full};
use tower::Service;
use twilio_signature::{Error, Overflow, Secret, Span, Validator, Verified};

use crate::body::{declared_too_large, read_limited, ReadError};
use crate::config::Config;
use crate::idempotency::run::serve_once;
use crate::idempotency::{delivery_key, Idempotency, TOKEN_HEADER};
use crate::proxy::{is_bad_host, last_value};
use crate::refusal::{OnReject, Rejection, ResponseBody};

const SIGNATURE: HeaderName = HeaderName::from_static("x-twilio-signature");
const SETTINGS: HeaderName = HeaderName::from_static("x-twilio-webhooks-signature-settings");
const FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
const FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
const FORWARDED_PORT: HeaderName = HeaderName::from_static("x-forwarded-port");

/// The service made by [`TwilioSignatureLayer`](crate::TwilioSignatureLayer): verifies each request,
/// then calls the inner service with a `Request<Full<Bytes>>` (the body read, intact) carrying
/// [`Verified`] in its extensions.
pub struct TwilioSignature<Inner, S> {
    inner: Inner,
    config: Arc<Config<S>>,
}

impl<Inner, S> TwilioSignature<Inner, S> {
    pub(crate) fn new(inner: Inner, config: Arc<Config<S>>) -> Self {
        Self { inner, config }
    }
}

impl<Inner: Clone, S> Clone for TwilioSignature<Inner, S> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            config: Arc::clone(&self.config),
        }
    }
}

impl<Inner: fmt::Debug, S: AsRef<[Secret]>> fmt::Debug for TwilioSignature<Inner, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TwilioSignature")
            .field("inner", &self.inner)
            .field("config", &self.config)
            .finish()
    }
}

/// The future of a [`TwilioSignature`] call.
pub type ResponseFuture<T, E> = Pin<Box<dyn Future<Output = Result<T, E>> + Send>>;

impl<Inner, S, ReqBody, ResBody> Service<Request<ReqBody>> for TwilioSignature<Inner, S>
where
    Inner: Service<Request<Full<Bytes>>, Response = Response<ResBody>> + Clone + Send + 'static,
    Inner::Future: Send,
    S: AsRef<[Secret]> + Send + Sync + 'static,
    ReqBody: Body + Send + 'static,
    ReqBody::Data: Send,
    ResBody: Body + Send + 'static,
{
    type Response = Response<ResponseBody<ResBody>>;
    type Error = Inner::Error;
    type Future = ResponseFuture<Self::Response, Self::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<ReqBody>) -> Self::Future {
        // The clone is not ready; the instance that was polled ready serves this call.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let config = Arc::clone(&self.config);
        Box::pin(async move {
            let (parts, body) = request.into_parts();
            let target = Target::of(&config, &parts);
            config.warn_if_base_url_repeats_the_path(&parts, &target.url);
            let hook = config.on_reject.as_ref();
            let checked = match check_head(&config, &parts, &target, &body) {
                Ok(checked) => checked,
                Err(rejection) => return Ok(target.refuse(rejection, &parts, hook)),
            };
            let bytes = match read_limited(body, config.body_limit).await {
                Ok(bytes) => bytes,
                Err(error) => {
                    let rejection = read_refusal(error, config.body_limit);
                    return Ok(target.refuse(rejection, &parts, hook));
                }
            };
            if let Err(rejection) = check_content_type(&parts.headers, &target.url, &bytes) {
                return Ok(target.refuse(rejection, &parts, hook));
            }
            let verified = match verify(&config, &parts, &target, &checked, &bytes) {
                Ok(verified) => verified,
                Err(rejection) => return Ok(target.refuse(rejection, &parts, hook)),
            };
            // Only verified requests reach the retry store; a stream cannot be replayed.
            let guarded = config
                .idempotency
                .as_ref()
                .filter(|_| !target.websocket)
                .and_then(|retries| Some((retries, delivery(retries, &parts, &verified)?)));
            // The parts go on whole: their extensions keep the peer address and, for a WebSocket
            // handshake, hyper's `OnUpgrade`, which axum's `WebSocketUpgrade` takes from there.
            let mut request = Request::from_parts(parts, Full::new(bytes));
            request.extensions_mut().insert(verified);
            match guarded {
                Some((retries, key)) => serve_once(retries, key, move || inner.call(request)).await,
                None => inner
                    .call(request)
                    .await
                    .map(|response| response.map(Either::Left)),
            }
        })
    }
}

/// The delivery key of a verified request carrying an idempotency token; `None` (counted, and logged
/// at DEBUG) for one without.
fn delivery(retries: &Idempotency, parts: &Parts, verified: &Verified) -> Option<String> {
    let token = parts
        .headers
        .get(TOKEN_HEADER)
        .map(HeaderValue::as_bytes)
        .filter(|token| !token.is_empty());
    let Some(token) = token else {
        let so_far = retries.unguarded.fetch_add(1, Ordering::Relaxed) + 1;
        tracing::debug!(
            target: "twilio_signature_tower",
            "twilio webhook without I-Twilio-Idempotency-Token: handled without retry protection \
             ({so_far} so far)"
        );
        return None;
    };
    Some(delivery_key(&verified.replay_key(), token))
}

/// The URL verified, and what went into it.
struct Target {
    url: Vec<u8>,
    /// Whether the forwarding headers were believed.
    forwarded: bool,
    /// Whether the request is a WebSocket handshake.
    websocket: bool,
    /// The forwarding headers the request carried that play no part, and why (see
    /// [`Rejection::ignored_forwarding`]).
    ignored: Option<String>,
}

impl Target {
    /// `base_url` + the raw request target, or scheme `://` host + the raw request target; the scheme
    /// `ws`/`wss` for a WebSocket handshake. Worked out before any check so that every refusal can log
    /// it; nothing here is trusted yet.
    fn of<S>(config: &Config<S>, parts: &Parts) -> Self {
        let headers = &parts.headers;
        let peer = (config.peer_addr)(&parts.extensions);
        let forwarded = peer.is_some_and(|peer| {
            config
                .trusted_proxies
                .iter()
                .any(|range| range.contains(peer.ip()))
        });
        let websocket = is_websocket_handshake(parts);
        // The request target as sent: HTTP/1 origin-form keeps its bytes; absolute-form and HTTP/2
        // give the path and query separately from the authority, whose scheme is never used.
        let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
        let mut url = Vec::new();
        let rest = if let Some(base) = &config.base_url {
            let (scheme, rest) = base.split_once("://").unwrap_or(("https", base));
            url.extend_from_slice(scheme.as_bytes());
            rest.as_bytes()
        } else {
            let scheme = forwarded
                .then(|| last_value(headers, &FORWARDED_PROTO))
                .flatten()
                .unwrap_or(if config.tls { b"https" } else { b"http" });
            url.extend_from_slice(scheme);
            host(parts, forwarded).unwrap_or_default()
        };
        if websocket {
            // Twilio signs a Media Streams or ConversationRelay handshake over the ws(s):// URL.
            if url.eq_ignore_ascii_case(b"https") {
                url = b"wss".to_vec();
            } else if url.eq_ignore_ascii_case(b"http") {
                url = b"ws".to_vec();
            }
        }
        url.extend_from_slice(b"://");
        url.extend_from_slice(rest);
        url.extend_from_slice(path.as_bytes());
        let ignored = if config.base_url.is_some() {
            // The URL is base_url's whatever the headers say: they are not "ignored", just not used.
            None
        } else {
            ignored_forwarding(config, headers, peer, forwarded)
        };
        Self {
            url,
            forwarded,
            websocket,
            ignored,
        }
    }

    fn refuse<B>(
        &self,
        rejection: Rejection,
        parts: &Parts,
        hook: Option<&OnReject>,
    ) -> Response<ResponseBody<B>> {
        rejection
            .about(&self.url, self.ignored.as_deref())
            .respond(parts, hook)
    }
}

/// Whether the request is a WebSocket handshake: an HTTP/1.1 `GET` with `Upgrade: websocket` and a
/// `Connection` header holding the token `upgrade` (both case-insensitive), or (feature `http2`) an
/// HTTP/2 extended CONNECT with `:protocol websocket`.
fn is_websocket_handshake(parts: &Parts) -> bool {
    // HTTP/1.1 only: hyper sets up no upgrade for HTTP/1.0, so such a "handshake" would reach the
    // app as a plain GET verified over ws(s):// — a handshake's signature accepted for a GET.
    let http1 = parts.method == Method::GET
        && parts.version == Version::HTTP_11
        && has_token(&parts.headers, &header::UPGRADE, b"websocket")
        && has_token(&parts.headers, &header::CONNECTION, b"upgrade");
    http1 || is_extended_connect_websocket(parts)
}

/// RFC 8441: hyper reports the `:protocol` pseudo-header as an extension.
#[cfg(feature = "http2")]
fn is_extended_connect_websocket(parts: &Parts) -> bool {
    parts.method == Method::CONNECT
        && parts
            .extensions
            .get::<hyper::ext::Protocol>()
            .is_some_and(|protocol| protocol.as_str().eq_ignore_ascii_case("websocket"))
}

/// Without hyper's HTTP/2 the `:protocol` cannot be seen: such a handshake is verified as http(s).
#[cfg(not(feature = "http2"))]
fn is_extended_connect_websocket(_: &Parts) -> bool {
    false
}

/// Whether a comma-separated header (any of its lines) holds `token`, compared case-insensitively.
fn has_token(headers: &HeaderMap, name: &HeaderName, token: &[u8]) -> bool {
    headers.get_all(name).iter().any(|line| {
        line.as_bytes()
            .split(|&b| b == b',')
            .any(|item| item.trim_ascii().eq_ignore_ascii_case(token))
    })
}

/// The forwarding headers present that were not believed, named in a fixed order, and why.
fn ignored_forwarding<S>(
    config: &Config<S>,
    headers: &HeaderMap,
    peer: Option<SocketAddr>,
    forwarded: bool,
) -> Option<String> {
    let all = [
        (&FORWARDED_PROTO, "X-Forwarded-Proto", true),
        (&FORWARDED_HOST, "X-Forwarded-Host", true),
        (&FORWARDED_PORT, "X-Forwarded-Port", false),
        (&header::FORWARDED, "Forwarded", false),
    ];
    // From a trusted proxy only the two headers the layer reads are believed.
    let names: Vec<&str> = all
        .iter()
        .filter(|(name, _, read)| headers.contains_key(*name) && !(forwarded && *read))
        .map(|(_, shown, _)| *shown)
        .collect();
    if names.is_empty() {
        return None;
    }
    let why = if forwarded {
        "the layer reads only X-Forwarded-Proto and X-Forwarded-Host".to_owned()
    } else if config.trusted_proxies.is_empty() {
        "no trusted_proxies configured".to_owned()
    } else if let Some(peer) = peer {
        format!("from {}, not in trusted_proxies", peer.ip().to_canonical())
    } else {
        "the request carries no peer address (see TwilioSignatureLayer::peer_addr_from)".to_owned()
    };
    Some(format!("{} ignored: {why}", names.join(", ")))
}

/// The host the URL is built from: a believed `X-Forwarded-Host`, else `Host`, else the request URI's
/// authority (HTTP/2, absolute-form).
fn host(parts: &Parts, forwarded: bool) -> Option<&[u8]> {
    forwarded
        .then(|| last_value(&parts.headers, &FORWARDED_HOST))
        .flatten()
        .or_else(|| {
            parts
                .headers
                .get(http::header::HOST)
                .map(HeaderValue::as_bytes)
        })
        .or_else(|| parts.uri.authority().map(|a| a.as_str().as_bytes()))
}

/// What the head of a request gave the verdict: its signature header.
struct Checked<'p> {
    signature: &'p [u8],
}

/// Every check that needs no body, in the shared order: the signature header (400), the host (one
/// Host header that could not move the URL) and forwarded scheme (400), the configuration (500), the
/// declared length (413).
fn check_head<'p, S: AsRef<[Secret]>>(
    config: &Config<S>,
    parts: &'p Parts,
    target: &Target,
    body: &impl Body,
) -> Result<Checked<'p>, Rejection> {
    let Some(signature) = parts.headers.get(&SIGNATURE) else {
        return Err(Rejection::new(
            StatusCode::BAD_REQUEST,
            "the X-Twilio-Signature header is missing",
            "the request was not sent by Twilio (or a proxy dropped the header)",
        ));
    };
    // An absolute-form target (`POST ftp://host/sms HTTP/1.1`) names a scheme the URL never takes (it
    // comes from the connection, base_url or a trusted proxy), but one Twilio never sends is refused.
    if parts.uri.scheme().is_some_and(|s| {
        !s.as_str().eq_ignore_ascii_case("http") && !s.as_str().eq_ignore_ascii_case("https")
    }) {
        return Err(Rejection::new(
            StatusCode::BAD_REQUEST,
            "the request target's scheme is not http or https",
            "Twilio sends origin-form targets (POST /path HTTP/1.1) or http(s) URLs",
        ));
    }
    let headers = &parts.headers;
    // Two Host lines: the URL would take one and the app behind could read the other (RFC 9112
    // section 3.2 makes this a 400 for every server; hyper leaves it to the application).
    if headers.get_all(http::header::HOST).iter().nth(1).is_some() {
        return Err(Rejection::new(
            StatusCode::BAD_REQUEST,
            "the request has more than one Host header",
            "a request has one Host; Twilio sends one",
        ));
    }
    let host_header = headers.get(http::header::HOST).map(HeaderValue::as_bytes);
    let hosts = [
        ("the Host header", host_header),
        (
            "the X-Forwarded-Host header",
            target
                .forwarded
                .then(|| last_value(headers, &FORWARDED_HOST))
                .flatten(),
        ),
        // HTTP/2's `:authority`, or an HTTP/1.1 absolute-form target's: the host `host()` falls back
        // to when there is no `Host` header (with any userinfo, which the check refuses).
        (
            "the request's authority",
            host_header
                .is_none()
                .then(|| parts.uri.authority().map(|a| a.as_str().as_bytes()))
                .flatten(),
        ),
    ];
    for (name, value) in hosts {
        if value.is_some_and(is_bad_host) {
            return Err(Rejection::new(
                StatusCode::BAD_REQUEST,
                format!("{name} is not a host"),
                "a host with / ? # @ \\, whitespace or control characters could move the URL, and a comma is what servers make of several Host lines",
            ));
        }
    }
    if config.base_url.is_none() {
        if host(parts, target.forwarded).is_none() {
            return Err(Rejection::new(
                StatusCode::BAD_REQUEST,
                "the request has no Host header",
                "configure base_url with the public origin Twilio calls",
            ));
        }
        let scheme = target
            .forwarded
            .then(|| last_value(headers, &FORWARDED_PROTO))
            .flatten();
        if scheme
            .is_some_and(|s| !s.eq_ignore_ascii_case(b"http") && !s.eq_ignore_ascii_case(b"https"))
        {
            return Err(Rejection::new(
                StatusCode::BAD_REQUEST,
                "the X-Forwarded-Proto header is not http or https",
                "check what the trusted proxy sends",
            ));
        }
    }
    // The app's misconfiguration, checked once the client's request head is known to be well formed
    // (an unsigned scanner gets 400, not 500) and before the body is read.
    if !config.validator.has_usable_secret() {
        return Err(Rejection::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "no usable secret is configured",
            "every secret given to the validator is empty or whitespace only (an unset variable?): \
             configure the Auth Token",
        ));
    }
    if declared_too_large(headers, body, config.body_limit) {
        return Err(read_refusal(ReadError::TooLarge, config.body_limit));
    }
    Ok(Checked {
        signature: signature.as_bytes(),
    })
}

fn read_refusal(error: ReadError, limit: usize) -> Rejection {
    match error {
        ReadError::TooLarge => Rejection::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("the body is larger than the body limit ({limit} bytes)"),
            "Twilio's webhooks are small; raise body_limit if yours really are larger",
        ),
        ReadError::Failed => Rejection::new(
            StatusCode::BAD_REQUEST,
            "the body could not be read",
            "the client stopped sending it, or the connection failed",
        ),
    }
}

/// Parameters sorted in a stack buffer; a form with more gets a heap buffer.
const STACK_PARAMS: usize = 64;

/// The verdict, with the parameters sorted on the stack when they fit (nearly always) and in a heap
/// buffer of at most `max_params` spans otherwise.
fn verify<S: AsRef<[Secret]>>(
    config: &Config<S>,
    parts: &Parts,
    target: &Target,
    checked: &Checked<'_>,
    body: &[u8],
) -> Result<Verified, Rejection> {
    // The body counts for every method: an empty one (a GET's, as Twilio sends it) leaves the URL
    // alone, and a body added to a signed GET must not reach the inner service unverified.
    let request = twilio_signature::Request::post(&target.url, body)
        .signature(checked.signature)
        .settings(parts.headers.get(&SETTINGS).map(HeaderValue::as_bytes));
    let validator: &Validator<S> = &config.validator;
    // Sorted on the stack when the form fits (nearly always); only a form that overflows it is counted
    // and given a heap buffer of at most `max_params` spans.
    let mut stack = [Span::EMPTY; STACK_PARAMS];
    let small = &mut stack[..config.max_params.min(STACK_PARAMS)];
    let mut verdict = validator.verify_with_scratch(&request, small);
    let mut heap = None;
    if verdict.overflowed() && config.max_params > STACK_PARAMS {
        let scratch = heap.insert(vec![
            Span::EMPTY;
            request.max_params().min(config.max_params)
        ]);
        verdict = validator.verify_with_scratch(&request, scratch);
    }
    let error = match verdict {
        Ok(verified) => return Ok(verified),
        Err(error) => error,
    };
    let scratch = match &mut heap {
        Some(heap) => &mut heap[..],
        None => &mut stack[..config.max_params.min(STACK_PARAMS)],
    };
    let explanation = validator.explain_with_scratch(&request, scratch);
    let status = match error {
        Error::MissingSignature => StatusCode::BAD_REQUEST,
        _ => StatusCode::FORBIDDEN,
    };
    Err(Rejection::new(
        status,
        error.to_string(),
        diagnosis(&explanation.to_string()),
    ))
}

/// The lines of an explanation after its verdict, as one line.
fn diagnosis(explanation: &str) -> Cow<'static, str> {
    let mut lines = explanation.lines().map(str::trim).filter(|l| !l.is_empty());
    let first = lines.next().unwrap_or_default();
    let mut text: Vec<&str> = if first.starts_with("invalid:") {
        Vec::new()
    } else {
        vec![first]
    };
    text.extend(lines);
    if text.is_empty() {
        "no common mistake explains it: check the Auth Token and the URL Twilio calls".into()
    } else {
        text.join(" ").into()
    }
}

/// The form media type, the only one a body verified as a form may carry.
const FORM: &[u8] = b"application/x-www-form-urlencoded";

/// What the app parses is what was verified: a non-empty body that will be verified as a form (the URL
/// has no `bodySHA256`) must say it is one. Otherwise a framework that parses by Content-Type
/// (multipart) could hand the app fields that were never signed: a captured SMS re-sent as multipart
/// with its fields reordered decodes to the same signed form, yet reads with another `From`.
fn check_content_type(headers: &HeaderMap, url: &[u8], body: &[u8]) -> Result<(), Rejection> {
    if body.is_empty() || has_body_sha256(url) {
        return Ok(());
    }
    let mut types = headers.get_all(header::CONTENT_TYPE).iter();
    let first = types.next();
    // Every line must be the form type: a framework may read any one of them.
    let wrong = match first {
        None => Some(None),
        Some(_) => std::iter::once(first)
            .flatten()
            .chain(types)
            .find(|value| !media_type(value.as_bytes()).eq_ignore_ascii_case(FORM))
            .map(Some),
    };
    let Some(wrong) = wrong else {
        return Ok(());
    };
    // The same words as every other face: "no content type" or "unsupported content type \"x\"".
    let what = match wrong {
        None => "no content type".to_owned(),
        Some(value) => {
            let shown = String::from_utf8_lossy(media_type(value.as_bytes()));
            // A hostile type is echoed in the response and the log: a short prefix is enough.
            let shown: String = shown.chars().take(100).collect();
            format!("unsupported content type {shown:?}")
        }
    };
    Err(Rejection::new(
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        format!("{what} for a form body"),
        "Twilio sends form webhooks as application/x-www-form-urlencoded; a body verified as a form \
         must carry that type",
    ))
}

/// A Content-Type's media type: the part before the first `;`, without surrounding ASCII whitespace.
fn media_type(value: &[u8]) -> &[u8] {
    value
        .split(|&b| b == b';')
        .next()
        .unwrap_or(value)
        .trim_ascii()
}

/// Whether the core verifies this URL's body by its hash (the core's own reading of the query), so
/// that no body the core checks as a form escapes the Content-Type rule.
fn has_body_sha256(url: &[u8]) -> bool {
    twilio_signature::body_sha256_param(url).is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_body_is_hashed_when_the_query_has_a_parameter_named_exactly_body_sha256() {
        for url in [
            "https://h/p?bodySHA256=ab",
            "https://h/p?a=1&bodySHA256",
            "https://h/p?bodySHA256=&b=2",
            "https://h/p?bodySHA256=ab#frag",
        ] {
            assert!(has_body_sha256(url.as_bytes()), "{url}");
        }
        for url in [
            "https://h/p",
            "https://h/bodySHA256=ab",
            "https://h/p?bodySHA256x=ab",
            "https://h/p?xbodySHA256=ab",
            "https://h/p?bodysha256=ab",
            "https://h/p#?bodySHA256=ab",
            "https://h/p?a=1#&bodySHA256=ab",
        ] {
            assert!(!has_body_sha256(url.as_bytes()), "{url}");
        }
    }

    #[test]
    fn the_media_type_is_before_the_first_semicolon_trimmed() {
        assert_eq!(
            media_type(b" Application/X-WWW-Form-Urlencoded ; charset=UTF-8"),
            b"Application/X-WWW-Form-Urlencoded"
        );
        assert_eq!(
            media_type(b"multipart/form-data; boundary=B"),
            b"multipart/form-data"
        );
        assert_eq!(media_type(b""), b"");
    }
}
