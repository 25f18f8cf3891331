//! The service: request in → signature header → URL → body within the limit → verdict → inner service.

use std::borrow::Cow;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::request::Parts;
use http::{HeaderName, HeaderValue, Request, Response, StatusCode};
use http_body::Body;
use http_body_util::{Either, Full};
use tower::Service;
use twilio_signature::{Error, Overflow, Secret, Span, Validator, Verified};

use crate::body::{declared_too_large, read_limited, ReadError};
use crate::layer::Config;
use crate::proxy::{is_bad_host, last_value};
use crate::refusal::{Refusal, ResponseBody};

const SIGNATURE: HeaderName = HeaderName::from_static("x-twilio-signature");
const SETTINGS: HeaderName = HeaderName::from_static("x-twilio-webhooks-signature-settings");
const FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
const FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");

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
            let checked = match check_head(&config, &parts, &target, &body) {
                Ok(checked) => checked,
                Err(refusal) => return Ok(refusal.respond(&target.url)),
            };
            let bytes = match read_limited(body, config.body_limit).await {
                Ok(bytes) => bytes,
                Err(error) => {
                    return Ok(read_refusal(error, config.body_limit).respond(&target.url))
                }
            };
            let verified = match verify(&config, &parts, &target, &checked, &bytes) {
                Ok(verified) => verified,
                Err(refusal) => return Ok(refusal.respond(&target.url)),
            };
            let mut request = Request::from_parts(parts, Full::new(bytes));
            request.extensions_mut().insert(verified);
            inner
                .call(request)
                .await
                .map(|response| response.map(Either::Left))
        })
    }
}

/// The URL verified, and what went into it.
struct Target {
    url: Vec<u8>,
    /// Whether the forwarding headers were believed.
    forwarded: bool,
    /// Trusted proxies are configured, the request has forwarding headers, but no peer address was
    /// found in its extensions: the headers were ignored.
    peer_unknown: bool,
}

impl Target {
    /// `base_url` + the raw request target, or scheme `://` host + the raw request target. Worked out
    /// before any check so that every refusal can log it; nothing here is trusted yet.
    fn of<S>(config: &Config<S>, parts: &Parts) -> Self {
        let headers = &parts.headers;
        let has_forwarding =
            headers.contains_key(&FORWARDED_PROTO) || headers.contains_key(&FORWARDED_HOST);
        let peer = (config.peer_addr)(&parts.extensions);
        let forwarded = peer.is_some_and(|peer| {
            config
                .trusted_proxies
                .iter()
                .any(|range| range.contains(peer.ip()))
        });
        let peer_unknown = !config.trusted_proxies.is_empty() && has_forwarding && peer.is_none();
        // The request target as sent: HTTP/1 origin-form keeps its bytes; absolute-form and HTTP/2
        // give the path and query separately from the authority.
        let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
        let mut url = Vec::new();
        if let Some(base) = &config.base_url {
            url.extend_from_slice(base.as_bytes());
        } else {
            let scheme = forwarded
                .then(|| last_value(headers, &FORWARDED_PROTO))
                .flatten()
                .unwrap_or(parts.uri.scheme_str().unwrap_or("http").as_bytes());
            url.extend_from_slice(scheme);
            url.extend_from_slice(b"://");
            url.extend_from_slice(host(parts, forwarded).unwrap_or_default());
        }
        url.extend_from_slice(path.as_bytes());
        Self {
            url,
            forwarded,
            peer_unknown,
        }
    }
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

/// Every check that needs no body, in the shared order: the signature header (400), the host and
/// forwarded scheme (400), the configuration (500), the declared length (413).
fn check_head<'p, S: AsRef<[Secret]>>(
    config: &Config<S>,
    parts: &'p Parts,
    target: &Target,
    body: &impl Body,
) -> Result<Checked<'p>, Refusal> {
    let Some(signature) = parts.headers.get(&SIGNATURE) else {
        return Err(Refusal::new(
            StatusCode::BAD_REQUEST,
            "the X-Twilio-Signature header is missing",
            "the request was not sent by Twilio (or a proxy dropped the header)",
        ));
    };
    let headers = &parts.headers;
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
            return Err(Refusal::new(
                StatusCode::BAD_REQUEST,
                format!("{name} is not a host"),
                "a host with / ? # @ \\, whitespace or control characters could move the URL",
            ));
        }
    }
    if config.base_url.is_none() {
        if host(parts, target.forwarded).is_none() {
            return Err(Refusal::new(
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
            return Err(Refusal::new(
                StatusCode::BAD_REQUEST,
                "the X-Forwarded-Proto header is not http or https",
                "check what the trusted proxy sends",
            ));
        }
    }
    // The app's misconfiguration, checked once the client's request head is known to be well formed
    // (an unsigned scanner gets 400, not 500) and before the body is read.
    if !config.validator.has_usable_secret() {
        return Err(Refusal::new(
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

fn read_refusal(error: ReadError, limit: usize) -> Refusal {
    match error {
        ReadError::TooLarge => Refusal::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("the body is larger than the body limit ({limit} bytes)"),
            "Twilio's webhooks are small; raise body_limit if yours really are larger",
        ),
        ReadError::Failed => Refusal::new(
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
) -> Result<Verified, Refusal> {
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
    Err(Refusal::new(
        status,
        error.to_string(),
        diagnosis(&explanation.to_string(), target),
    ))
}

/// The lines of an explanation after its verdict, as one line, plus a word on ignored forwarding
/// headers.
fn diagnosis(explanation: &str, target: &Target) -> Cow<'static, str> {
    let mut lines = explanation.lines().map(str::trim).filter(|l| !l.is_empty());
    let first = lines.next().unwrap_or_default();
    let mut text: Vec<&str> = if first.starts_with("invalid:") {
        Vec::new()
    } else {
        vec![first]
    };
    text.extend(lines);
    let mut text = if text.is_empty() {
        "no common mistake explains it: check the Auth Token and the URL Twilio calls".to_owned()
    } else {
        text.join(" ")
    };
    if target.peer_unknown {
        text.push_str(
            " (X-Forwarded-Proto/-Host were ignored: trusted proxies are configured but the request \
             carries no peer address; see TwilioSignatureLayer::peer_addr_from)",
        );
    }
    text.into()
}
