//! The layer behind real servers on loopback (axum, and plain hyper), spoken to in raw HTTP/1.1 so that
//! the tests can send what well-behaved clients refuse to: bad hosts, lying lengths, endless chunks.

mod capture;
mod loopback;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::Duration;

use axum::extract::ConnectInfo;
use axum::routing::{get, post};
use axum::{Extension, Router};
use loopback::serve_app;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use twilio_signature::{sign, BodyHash, Request};
use twilio_signature_tower::{PeerAddr, Secret, TwilioSignatureLayer, Validator, Verified};

const PRIMARY: &str = "primary-auth-token-0123456789";
const SECONDARY: &str = "secondary-auth-token-9876543210";
const SHARED_KEY: &str = "shared-key-secret-abcdefghij";
const SMS: &str = "From=%2B15551234567&To=%2B15557654321&Body=Hello+world&MessageSid=SM123";

fn rotation() -> Validator<Vec<Secret>> {
    Validator::with_secrets(vec![
        Secret::new(PRIMARY.as_bytes()),
        Secret::new(SECONDARY.as_bytes()),
        Secret::with_key_id(b"wk_01", SHARED_KEY.as_bytes()).expect("short id"),
    ])
}

/// What the handler saw: which secret matched, and the body it read through its own extractor.
async fn echo(Extension(verified): Extension<Verified>, body: String) -> String {
    format!("secret={} body={body}", verified.secret_index)
}

/// An axum app with the layer on its routes, served with the peer address in `ConnectInfo`.
async fn serve(layer: TwilioSignatureLayer<Vec<Secret>>) -> SocketAddr {
    let app = Router::new()
        .route("/sms", post(echo))
        .route("/status", get(echo))
        .route_layer(layer);
    serve_app(app).await
}

fn default_layer() -> TwilioSignatureLayer<Vec<Secret>> {
    TwilioSignatureLayer::new(rotation())
}

/// The app with the default layer, and the `Host` it is reached at.
async fn serve_default() -> (SocketAddr, String) {
    let addr = serve(default_layer()).await;
    (addr, format!("127.0.0.1:{}", addr.port()))
}

/// One raw exchange: writes `head` (and `body`), then reads the response to the end of its body.
async fn exchange(addr: SocketAddr, head: &str, body: &[u8]) -> (u16, String) {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    stream.write_all(head.as_bytes()).await.expect("write head");
    // A refusal may come before the body is read and the server may close on it: that is fine.
    let _ = stream.write_all(body).await;
    read_response(&mut stream).await
}

/// The status and body of one response (`Connection: close`, so it ends at EOF or at its length).
async fn read_response(stream: &mut TcpStream) -> (u16, String) {
    let mut raw = Vec::new();
    let mut buf = [0; 8192];
    loop {
        let read = tokio::time::timeout(Duration::from_secs(10), stream.read(&mut buf))
            .await
            .expect("the server answers within 10 s");
        match read {
            Ok(0) | Err(_) => break,
            Ok(n) => raw.extend_from_slice(&buf[..n]),
        }
        if let Some(response) = parse(&raw) {
            return response;
        }
    }
    parse(&raw)
        .ok_or_else(|| String::from_utf8_lossy(&raw).into_owned())
        .expect("a complete response")
}

fn parse(raw: &[u8]) -> Option<(u16, String)> {
    let text = std::str::from_utf8(raw).ok()?;
    let (head, body) = text.split_once("\r\n\r\n")?;
    let status = head.get(9..12)?.parse().ok()?;
    let length = head
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("content-length:")
                .map(|v| v.trim().to_owned())
        })
        .and_then(|v| v.parse::<usize>().ok())?;
    (body.len() >= length).then(|| (status, body[..length].to_owned()))
}

/// A POST with `Connection: close`, the given host and extra header lines, a form Content-Type and a
/// Content-Length.
fn post_head(path: &str, host: &str, extra: &[String], length: usize) -> String {
    typed_post_head(
        path,
        host,
        extra,
        length,
        Some("application/x-www-form-urlencoded"),
    )
}

/// [`post_head`] with the given Content-Type, or none.
fn typed_post_head(
    path: &str,
    host: &str,
    extra: &[String],
    length: usize,
    content_type: Option<&str>,
) -> String {
    let mut head = format!("POST {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n");
    for line in extra {
        head.push_str(line);
        head.push_str("\r\n");
    }
    if let Some(content_type) = content_type {
        head = head + "Content-Type: " + content_type + "\r\n";
    }
    head + &format!("Content-Length: {length}\r\n\r\n")
}

fn signature(secret: &str, url: &str, body: &str) -> String {
    signature_with(secret, url, body, None)
}

fn signature_with(secret: &str, url: &str, body: &str, settings: Option<&str>) -> String {
    let request = Request::post(url, body).settings(settings.map(str::as_bytes));
    sign(secret.as_bytes(), &request)
        .expect("sign")
        .as_str()
        .to_owned()
}

fn header(name: &str, value: &str) -> String {
    format!("{name}: {value}")
}

#[tokio::test]
async fn a_signed_form_reaches_the_handler_with_its_body_and_the_secret_that_matched() {
    let (addr, host) = serve_default().await;
    let url = format!("http://{host}/sms");
    for (index, secret) in [PRIMARY, SECONDARY].into_iter().enumerate() {
        let sig = header("X-Twilio-Signature", &signature(secret, &url, SMS));
        let head = post_head("/sms", &host, &[sig], SMS.len());
        let (status, body) = exchange(addr, &head, SMS.as_bytes()).await;
        assert_eq!((status, body), (200, format!("secret={index} body={SMS}")));
    }
}

#[tokio::test]
async fn a_signed_get_covers_the_url_alone_and_a_body_added_to_it_is_refused() {
    let (addr, host) = serve_default().await;
    let target = "/status?CallSid=CA1&CallStatus=completed";
    let url = format!("http://{host}{target}");
    let sig = sign(PRIMARY.as_bytes(), &Request::get(&url)).expect("sign");
    let head = |extra: &str| {
        format!(
            "GET {target} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\
             X-Twilio-Signature: {}\r\n{extra}\r\n",
            sig.as_str()
        )
    };
    // As Twilio sends it: no body, the URL alone.
    assert_eq!(
        exchange(addr, &head(""), b"").await,
        (200, "secret=0 body=".to_owned())
    );
    // A captured GET replayed with a body: the body is verified too, and never reaches the handler.
    let replay = head(&format!(
        "Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n",
        SMS.len()
    ));
    let (status, body) = exchange(addr, &replay, SMS.as_bytes()).await;
    assert_eq!(status, 403, "{body}");
    assert!(!body.contains("secret="), "the handler did not run: {body}");
}

#[tokio::test]
async fn a_signed_json_webhook_is_checked_against_its_body_sha256() {
    let (addr, host) = serve_default().await;
    let json = r#"{"type":"com.twilio.messaging.inbound-message.received","data":{"body":"hi"}}"#;
    let path = format!("/sms?bodySHA256={}", BodyHash::of(json.as_bytes()));
    let url = format!("http://{host}{path}");
    let sig = header("X-Twilio-Signature", &signature(SECONDARY, &url, json));
    let head = post_head(&path, &host, std::slice::from_ref(&sig), json.len())
        .replace("application/x-www-form-urlencoded", "application/json");
    assert_eq!(
        exchange(addr, &head, json.as_bytes()).await,
        (200, format!("secret=1 body={json}"))
    );
    // The same signature with another body of the same length: the hash no longer matches.
    let altered = json.replace("hi", "ho");
    assert_eq!(exchange(addr, &head, altered.as_bytes()).await.0, 403);
}

#[tokio::test]
async fn a_sharedkey_signature_with_the_settings_header_passes() {
    let (addr, host) = serve_default().await;
    let url = format!("http://{host}/sms");
    let settings = "key=wk_01,algorithm=HMAC_SHA256";
    let sig = signature_with(SHARED_KEY, &url, SMS, Some(settings));
    assert_eq!(sig.len(), 44, "an HMAC-SHA256 signature");
    let lines = [
        header("X-Twilio-Signature", &sig),
        header("X-Twilio-Webhooks-Signature-Settings", settings),
    ];
    let head = post_head("/sms", &host, &lines, SMS.len());
    assert_eq!(
        exchange(addr, &head, SMS.as_bytes()).await,
        (200, format!("secret=2 body={SMS}"))
    );
    // Without the settings header the same signature is not an HMAC-SHA1 signature at all.
    let head = post_head("/sms", &host, &lines[..1], SMS.len());
    assert_eq!(exchange(addr, &head, SMS.as_bytes()).await.0, 403);
}

#[tokio::test]
async fn a_forged_signature_is_refused_with_403() {
    let (addr, host) = serve_default().await;
    let url = format!("http://{host}/sms");
    let forged = header("X-Twilio-Signature", &signature("not-the-token", &url, SMS));
    let head = post_head("/sms", &host, &[forged], SMS.len());
    let (status, body) = exchange(addr, &head, SMS.as_bytes()).await;
    assert_eq!(status, 403);
    assert!(!body.contains("secret="), "the handler did not run: {body}");
    // A body changed after signing is a forgery too.
    let sig = header("X-Twilio-Signature", &signature(PRIMARY, &url, SMS));
    let tampered = SMS.replace("Hello", "Howdy");
    let head = post_head("/sms", &host, &[sig], tampered.len());
    assert_eq!(exchange(addr, &head, tampered.as_bytes()).await.0, 403);
}

#[tokio::test]
async fn without_the_signature_header_it_is_400_before_the_body_is_read() {
    let (addr, host) = serve_default().await;
    // The body is announced but never sent: an answer at all proves that nothing waited for it.
    let head = post_head("/sms", &host, &[], 100);
    let (status, body) = exchange(addr, &head, b"").await;
    assert_eq!(status, 400);
    assert_eq!(body, "the X-Twilio-Signature header is missing\n");
}

#[tokio::test]
async fn a_declared_body_over_the_limit_is_413_without_reading_it() {
    let (addr, host) = serve_default().await;
    let url = format!("http://{host}/sms");
    let sig = header("X-Twilio-Signature", &signature(PRIMARY, &url, SMS));
    // 2 MiB announced, not a byte sent.
    let head = post_head("/sms", &host, &[sig], 2 * 1024 * 1024);
    assert_eq!(exchange(addr, &head, b"").await.0, 413);
}

#[tokio::test]
async fn a_chunked_body_that_grows_past_the_limit_is_413() {
    let (addr, host) = serve_default().await;
    let url = format!("http://{host}/sms");
    let sig = signature(PRIMARY, &url, SMS);
    let head = format!(
        "POST /sms HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\nX-Twilio-Signature: {sig}\r\n\
         Transfer-Encoding: chunked\r\n\r\n"
    );
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    stream.write_all(head.as_bytes()).await.expect("head");
    // Up to 2 MiB in 64 KiB chunks, stopping as soon as the server has answered.
    let chunk = format!("{:x}\r\n{}\r\n", 65536, "a".repeat(65536));
    let mut sent = 0;
    while sent < 2 * 1024 * 1024 {
        if stream.write_all(chunk.as_bytes()).await.is_err() {
            break;
        }
        sent += 65536;
        let mut probe = [0; 1];
        if matches!(stream.try_read(&mut probe), Ok(1..)) {
            // The answer has started: put the byte back in front of the rest.
            let (status, _) = read_rest(&mut stream, probe[0]).await;
            assert_eq!(status, 413);
            assert!(sent < 2 * 1024 * 1024);
            return;
        }
        tokio::task::yield_now().await;
    }
    assert_eq!(read_response(&mut stream).await.0, 413);
}

async fn read_rest(stream: &mut TcpStream, first: u8) -> (u16, String) {
    let mut raw = vec![first];
    let mut buf = [0; 8192];
    loop {
        if let Some(response) = parse(&raw) {
            return response;
        }
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => raw.extend_from_slice(&buf[..n]),
        }
    }
    parse(&raw).expect("a complete response")
}

/// The app behind a proxy at 127.0.0.1 that forwards `https://example.com`.
fn proxied_head(host: &str) -> String {
    let url = "https://example.com/sms";
    let lines = [
        header("X-Twilio-Signature", &signature(PRIMARY, url, SMS)),
        // Earlier values are the client's to forge; the last is the proxy's.
        header("X-Forwarded-Proto", "http, https"),
        header("X-Forwarded-Host", "evil.example"),
        header("X-Forwarded-Host", "evil.example, example.com"),
    ];
    post_head("/sms", host, &lines, SMS.len())
}

#[tokio::test]
async fn forwarded_headers_are_believed_from_a_trusted_proxy_only() {
    let trusted = default_layer()
        .trusted_proxies(["10.0.0.0/8", "127.0.0.1"])
        .expect("ranges")
        .peer_addr_from::<ConnectInfo<SocketAddr>>();
    let addr = serve(trusted).await;
    let head = proxied_head("app.internal:8080");
    assert_eq!(
        exchange(addr, &head, SMS.as_bytes()).await,
        (200, format!("secret=0 body={SMS}"))
    );

    let untrusted = default_layer()
        .trusted_proxies(["10.0.0.0/8"])
        .expect("ranges")
        .peer_addr_from::<ConnectInfo<SocketAddr>>();
    let addr = serve(untrusted).await;
    assert_eq!(exchange(addr, &head, SMS.as_bytes()).await.0, 403);

    // Trusted, but the layer was not told where axum keeps the peer address: fail closed.
    let unknown_peer = default_layer()
        .trusted_proxies(["127.0.0.1"])
        .expect("ranges");
    let addr = serve(unknown_peer).await;
    assert_eq!(exchange(addr, &head, SMS.as_bytes()).await.0, 403);
}

#[tokio::test]
async fn base_url_replaces_scheme_and_host() {
    let layer = default_layer()
        .base_url("https://example.com/")
        .expect("base url");
    let addr = serve(layer).await;
    let url = "https://example.com/sms?x=%41";
    let sig = header("X-Twilio-Signature", &signature(SECONDARY, url, SMS));
    // The raw target is appended as sent: `%41` is not decoded to `A`.
    let head = post_head("/sms?x=%41", "app.internal:8080", &[sig], SMS.len());
    assert_eq!(
        exchange(addr, &head, SMS.as_bytes()).await,
        (200, format!("secret=1 body={SMS}"))
    );
}

#[tokio::test]
async fn a_host_that_could_move_the_url_is_400() {
    let trusted = default_layer()
        .trusted_proxies(["127.0.0.1"])
        .expect("ranges")
        .peer_addr_from::<ConnectInfo<SocketAddr>>();
    let addr = serve(trusted).await;
    let good_host = format!("127.0.0.1:{}", addr.port());
    let sig = header(
        "X-Twilio-Signature",
        &signature(PRIMARY, "http://x/sms", SMS),
    );
    // A comma: several hosts in one line (what other servers make of repeated Host lines).
    for host in [
        "evil.example@example.com",
        "example.com\\evil",
        "a\tb",
        "x,admin.internal",
    ] {
        let head = post_head("/sms", host, std::slice::from_ref(&sig), SMS.len());
        let (status, body) = exchange(addr, &head, SMS.as_bytes()).await;
        assert_eq!(
            (status, body.as_str()),
            (400, "the Host header is not a host\n"),
            "{host:?}"
        );
    }
    // A second Host line, even a harmless-looking one: 400 (RFC 9112 section 3.2).
    let second = header("Host", "admin.internal");
    let head = post_head("/sms", &good_host, &[sig.clone(), second], SMS.len());
    let (status, body) = exchange(addr, &head, SMS.as_bytes()).await;
    assert_eq!(
        (status, body.as_str()),
        (400, "the request has more than one Host header\n")
    );
    let forwarded = header("X-Forwarded-Host", "example.com/evil");
    let head = post_head("/sms", &good_host, &[sig, forwarded], SMS.len());
    let (status, body) = exchange(addr, &head, SMS.as_bytes()).await;
    assert_eq!(
        (status, body.as_str()),
        (400, "the X-Forwarded-Host header is not a host\n")
    );
}

#[tokio::test]
async fn a_validator_without_a_usable_secret_answers_500() {
    let blank = Validator::with_secrets(vec![Secret::new(b""), Secret::new(b" \n")]);
    let addr = serve(TwilioSignatureLayer::new(blank)).await;
    let host = format!("127.0.0.1:{}", addr.port());
    let url = format!("http://{host}/sms?case=blank-secret");
    let sig = header("X-Twilio-Signature", "AAAAAAAAAAAAAAAAAAAAAAAAAAA=");
    let head = post_head("/sms?case=blank-secret", &host, &[sig], SMS.len());
    let (status, body) = exchange(addr, &head, SMS.as_bytes()).await;
    assert_eq!(
        (status, body.as_str()),
        (500, "no usable secret is configured\n")
    );
    // The app's misconfiguration, not the client's: logged as an error.
    let events = capture::events_with(&url);
    assert_eq!(events.len(), 1, "{events:#?}");
    assert_eq!(events[0].level, tracing::Level::ERROR);
}

#[tokio::test]
async fn without_a_usable_secret_the_clients_400s_come_first_and_500_before_413() {
    let blank = Validator::with_secrets(vec![Secret::new(b"  ")]);
    let addr = serve(TwilioSignatureLayer::new(blank)).await;
    let host = format!("127.0.0.1:{}", addr.port());
    let sig = header("X-Twilio-Signature", "AAAAAAAAAAAAAAAAAAAAAAAAAAA=");
    // An unsigned scanner: 400, whatever the configuration.
    let head = post_head("/sms", &host, &[], SMS.len());
    assert_eq!(
        exchange(addr, &head, SMS.as_bytes()).await,
        (400, "the X-Twilio-Signature header is missing\n".to_owned())
    );
    // A host that could move the URL: 400 too.
    let head = post_head("/sms", "a@b", std::slice::from_ref(&sig), SMS.len());
    assert_eq!(
        exchange(addr, &head, SMS.as_bytes()).await,
        (400, "the Host header is not a host\n".to_owned())
    );
    // A signed request with a declared body over the limit: the misconfiguration (500) before 413.
    let head = post_head("/sms", &host, &[sig], 2 * 1024 * 1024);
    assert_eq!(
        exchange(addr, &head, b"").await,
        (500, "no usable secret is configured\n".to_owned())
    );
}

#[tokio::test]
async fn the_authority_of_an_absolute_form_target_is_checked_as_the_host() {
    let (addr, _) = serve_default().await;
    let url = "http://example.com/sms";
    let sig = header("X-Twilio-Signature", &signature(PRIMARY, url, SMS));
    let absolute = |authority: &str, host: Option<&str>| {
        let host = host.map(|h| header("Host", h) + "\r\n").unwrap_or_default();
        format!(
            "POST http://{authority}/sms HTTP/1.1\r\nConnection: close\r\n{sig}\r\n{host}\
             Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n",
            SMS.len()
        )
    };
    let ok = (200, format!("secret=0 body={SMS}"));
    let authority_refused = (400, "the request's authority is not a host\n".to_owned());
    let cases = [
        // Without a Host header the URL's host is the target's authority...
        ("example.com", None, &ok),
        // ...so userinfo there is refused like userinfo in Host, not spliced into the URL.
        ("x@example.com", None, &authority_refused),
        ("evil.example@example.com", None, &authority_refused),
        // With a Host header, Host is the host (and checked): the authority is not used.
        ("x@other.example", Some("example.com"), &ok),
        (
            "example.com",
            Some("x@example.com"),
            &(400, "the Host header is not a host\n".to_owned()),
        ),
    ];
    for (authority, host, expected) in cases {
        let head = absolute(authority, host);
        let answer = exchange(addr, &head, SMS.as_bytes()).await;
        assert_eq!(&answer, expected, "{authority} Host: {host:?}");
    }
}

#[tokio::test]
async fn each_refusal_is_one_warn_line_with_status_reason_url_and_diagnosis_once_but_no_secret() {
    let (addr, host) = serve_default().await;
    // Twilio signed https; the app sees http (a TLS-terminating proxy it does not trust).
    let path = "/sms?case=warn-event";
    let https = format!("https://{host}{path}");
    let http = format!("http://{host}{path}");
    let good = signature(SECONDARY, &https, SMS);
    let expected_for_http = signature(SECONDARY, &http, SMS);
    let head = post_head(
        path,
        &host,
        &[header("X-Twilio-Signature", &good)],
        SMS.len(),
    );
    let (status, reason) = exchange(addr, &head, SMS.as_bytes()).await;
    assert_eq!(status, 403);

    let events = capture::events_with(&http);
    assert_eq!(events.len(), 1, "{events:#?}");
    let event = &events[0];
    assert_eq!(event.level, tracing::Level::WARN);
    assert_eq!(event.target, "twilio_signature_tower");
    // The line alone: a formatter prints every field after the message, so a diagnosis kept in a
    // field too would be printed twice.
    assert_eq!(
        event.fields.keys().collect::<Vec<_>>(),
        ["message"],
        "{event:#?}"
    );
    let message = event.field("message");
    let prefix = format!(
        "twilio webhook refused: 403 {}; url={http}; ",
        reason.trim_end()
    );
    assert!(message.starts_with(&prefix), "{message}");
    assert_eq!(message.matches("http vs https").count(), 1, "{message}");
    for secret in [PRIMARY, SECONDARY, SHARED_KEY, &expected_for_http] {
        assert!(!format!("{event:?}").contains(secret), "{event:#?}");
    }
}

#[tokio::test]
async fn plain_hyper_with_the_peer_address_inserted_by_hand() {
    use hyper::service::service_fn;
    use hyper_util::rt::TokioIo;
    use tower::{Layer, Service};

    let layer = default_layer()
        .trusted_proxies(["127.0.0.1"])
        .expect("ranges");
    let service = layer.layer(Echo);
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        loop {
            let Ok((stream, remote)) = listener.accept().await else {
                return;
            };
            let service = service.clone();
            let per_request =
                service_fn(move |mut request: http::Request<hyper::body::Incoming>| {
                    // What a hyper server must do for trusted proxies: put the peer address here.
                    request.extensions_mut().insert(PeerAddr(remote));
                    let mut service = service.clone();
                    async move {
                        std::future::poll_fn(|cx| {
                            Service::<http::Request<hyper::body::Incoming>>::poll_ready(
                                &mut service,
                                cx,
                            )
                        })
                        .await?;
                        service.call(request).await
                    }
                });
            tokio::spawn(
                hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), per_request),
            );
        }
    });
    let head = proxied_head("app.internal:8080");
    assert_eq!(
        exchange(addr, &head, SMS.as_bytes()).await,
        (200, format!("secret=0 body={SMS}"))
    );
}

/// A bare tower service for the hyper test: echoes what the axum handler does.
#[derive(Clone)]
struct Echo;

impl tower::Service<http::Request<http_body_util::Full<bytes::Bytes>>> for Echo {
    type Response = http::Response<http_body_util::Full<bytes::Bytes>>;
    type Error = Infallible;
    type Future = std::future::Ready<Result<Self::Response, Infallible>>;

    fn poll_ready(
        &mut self,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Infallible>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<http_body_util::Full<bytes::Bytes>>) -> Self::Future {
        let index = request
            .extensions()
            .get::<Verified>()
            .map(|v| v.secret_index);
        let body = futures_body(request.into_body());
        let text = format!(
            "secret={} body={}",
            index.map_or("none".into(), |i| i.to_string()),
            body
        );
        std::future::ready(Ok(http::Response::new(text.into())))
    }
}

/// The bytes of a `Full` body, which is ready at once.
fn futures_body(body: http_body_util::Full<bytes::Bytes>) -> String {
    use http_body::Body;
    let mut body = std::pin::pin!(body);
    let waker = std::task::Waker::noop();
    match body
        .as_mut()
        .poll_frame(&mut std::task::Context::from_waker(waker))
    {
        std::task::Poll::Ready(Some(Ok(frame))) => {
            String::from_utf8_lossy(frame.data_ref().map_or(&[][..], |d| d)).into_owned()
        }
        _ => String::new(),
    }
}

#[test]
fn verified_can_travel_in_extensions() {
    fn extension<T: Clone + Send + Sync + 'static>() {}
    fn shared<T: Send + Sync + 'static>() {}
    extension::<Verified>();
    shared::<Validator<Vec<Secret>>>();
    shared::<TwilioSignatureLayer<Vec<Secret>>>();
}

#[tokio::test]
async fn forms_beyond_the_stack_scratch_verify_up_to_max_params() {
    let layer = default_layer().max_params(1000);
    let addr = serve(layer).await;
    let host = format!("127.0.0.1:{}", addr.port());
    let url = format!("http://{host}/sms");
    let form = |n: usize| {
        (0..n)
            .map(|i| format!("p{i}={i}"))
            .collect::<Vec<_>>()
            .join("&")
    };
    // `sign` sorts on the stack (512 parameters at most); these need a scratch buffer.
    let sign_large = |body: &str| {
        let mut scratch = vec![twilio_signature::Span::EMPTY; 2000];
        let validator = Validator::new(Secret::new(PRIMARY.as_bytes()));
        let signed = validator.sign_with_scratch(&Request::post(&url, body), &mut scratch);
        header("X-Twilio-Signature", signed.expect("sign").as_str())
    };
    // 600 parameters: more than the 512 sorted on the stack, so a heap scratch is used.
    let body = form(600);
    let sig = sign_large(&body);
    let head = post_head("/sms", &host, &[sig], body.len());
    assert_eq!(
        exchange(addr, &head, body.as_bytes()).await,
        (200, format!("secret=0 body={body}"))
    );
    // 1001 parameters: over the limit, refused whatever the signature.
    let body = form(1001);
    let sig = sign_large(&body);
    let head = post_head("/sms", &host, &[sig], body.len());
    let (status, reason) = exchange(addr, &head, body.as_bytes()).await;
    assert_eq!(status, 403);
    assert!(reason.contains("parameters"), "{reason}");
}

/// Issue 24 item 3: the scheme is the connection's (plain TCP here: http), whatever scheme an
/// absolute-form target names; a target scheme other than http or https is refused.
#[tokio::test]
async fn the_scheme_comes_from_the_connection_never_from_an_absolute_form_target() {
    let (addr, host) = serve_default().await;
    let absolute = |scheme: &str, signed_for: &str| {
        let path = format!("/sms?case=absolute-{scheme}");
        let url = format!("{signed_for}://{host}{path}");
        let sig = header("X-Twilio-Signature", &signature(PRIMARY, &url, SMS));
        post_head(
            &format!("{scheme}://{host}{path}"),
            &host,
            &[sig],
            SMS.len(),
        )
    };
    // Signed for https, sent over plain TCP with an https target: verified as http, refused.
    let (status, _) = exchange(addr, &absolute("https", "https"), SMS.as_bytes()).await;
    assert_eq!(status, 403);
    let events = capture::events_with("case=absolute-https");
    assert_eq!(events.len(), 1, "{events:#?}");
    let line = events[0].field("message");
    assert!(
        line.contains(&format!("url=http://{host}/sms?case=absolute-https;")),
        "{line}"
    );
    // The URL Twilio would have signed for this connection: accepted, target scheme or not.
    let ok = (200, format!("secret=0 body={SMS}"));
    assert_eq!(
        exchange(addr, &absolute("https", "http"), SMS.as_bytes()).await,
        ok
    );
    assert_eq!(
        exchange(addr, &absolute("http", "http"), SMS.as_bytes()).await,
        ok
    );
    // A scheme Twilio never sends, even signed for it: 400.
    for scheme in ["ftp", "ws"] {
        let answer = exchange(addr, &absolute(scheme, scheme), SMS.as_bytes()).await;
        assert_eq!(
            answer,
            (
                400,
                "the request target's scheme is not http or https\n".to_owned()
            ),
            "{scheme}"
        );
    }
}

#[tokio::test]
async fn served_over_tls_makes_the_connection_scheme_https() {
    let addr = serve(default_layer().served_over_tls()).await;
    let host = format!("127.0.0.1:{}", addr.port());
    let sig = |scheme: &str| {
        let url = format!("{scheme}://{host}/sms");
        header("X-Twilio-Signature", &signature(PRIMARY, &url, SMS))
    };
    let head = post_head("/sms", &host, &[sig("https")], SMS.len());
    assert_eq!(
        exchange(addr, &head, SMS.as_bytes()).await,
        (200, format!("secret=0 body={SMS}"))
    );
    let head = post_head("/sms", &host, &[sig("http")], SMS.len());
    assert_eq!(exchange(addr, &head, SMS.as_bytes()).await.0, 403);
}

/// How many times the counted route's handler ran, per test (each uses its own path).
static COUNTED: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());

/// A handler that records its path (the test's case) and echoes like `echo`.
async fn counted(
    uri: axum::http::Uri,
    Extension(verified): Extension<Verified>,
    body: String,
) -> String {
    COUNTED.lock().expect("lock").push(uri.to_string());
    format!("secret={} body={body}", verified.secret_index)
}

fn runs_of(case: &str) -> usize {
    COUNTED
        .lock()
        .expect("lock")
        .iter()
        .filter(|uri| uri.contains(case))
        .count()
}

async fn serve_counted(layer: TwilioSignatureLayer<Vec<Secret>>) -> (SocketAddr, String) {
    let app = Router::new()
        .route("/counted", post(counted))
        .route_layer(layer);
    let addr = serve_app(app).await;
    (addr, format!("127.0.0.1:{}", addr.port()))
}

/// Issue 24 item 1 / rule R1: a captured SMS whose Body the attacker wrote, re-sent as multipart. The
/// raw body decodes as a form to exactly what Twilio signed (the signature holds), but a multipart
/// parser reads a `From` that was never signed: 415, and the handler never runs.
#[tokio::test]
async fn a_signed_form_re_encoded_as_multipart_is_415_and_never_reaches_the_handler() {
    let (addr, host) = serve_counted(default_layer()).await;
    let path = "/counted?case=multipart";
    let url = format!("http://{host}{path}");
    // The SMS text the attacker sent (written raw: the form decoding leaves these bytes alone), then
    // the real fields. As multipart with boundary B it holds one part: From=15550000000.
    let body = "Body=\r\n--B\r\nContent-Disposition: form-data; name=\"From\"\r\n\r\n\
                15550000000\r\n--B--\r\n&From=%2B15551234567&To=%2B15557654321&MessageSid=SM1";
    let sig = header("X-Twilio-Signature", &signature(PRIMARY, &url, body));
    let send = |content_type: Option<&'static str>| {
        let head = typed_post_head(
            path,
            &host,
            std::slice::from_ref(&sig),
            body.len(),
            content_type,
        );
        async move { exchange(addr, &head, body.as_bytes()).await }
    };
    let multipart = send(Some("multipart/form-data; boundary=B")).await;
    assert_eq!(
        multipart,
        (
            415,
            "unsupported content type \"multipart/form-data\" for a form body\n".to_owned()
        )
    );
    assert_eq!(runs_of("case=multipart"), 0, "the handler never ran");
    let events = capture::events_with("case=multipart");
    assert_eq!(events.len(), 1, "{events:#?}");
    assert_eq!(events[0].level, tracing::Level::WARN);
    assert_eq!(
        events[0].field("message"),
        format!(
            "twilio webhook refused: 415 unsupported content type \"multipart/form-data\" for a form \
             body; url={url}; Twilio sends form webhooks as application/x-www-form-urlencoded; a body \
             verified as a form must carry that type"
        )
    );
    // Without a type, or with another one, the same: 415.
    let none = send(None).await;
    assert_eq!(none, (415, "no content type for a form body\n".to_owned()));
    assert_eq!(send(Some("text/plain")).await.0, 415);
    assert_eq!(runs_of("case=multipart"), 0, "the handler never ran");
    // The signature itself is good: as the form it is, the same request passes.
    let form = send(Some("application/x-www-form-urlencoded")).await;
    assert_eq!(form, (200, format!("secret=0 body={body}")));
    assert_eq!(runs_of("case=multipart"), 1);
}

#[tokio::test]
async fn the_form_type_is_matched_case_insensitively_with_parameters_allowed() {
    let (addr, host) = serve_counted(default_layer()).await;
    let path = "/counted?case=form-type";
    let url = format!("http://{host}{path}");
    let sig = header("X-Twilio-Signature", &signature(PRIMARY, &url, SMS));
    for content_type in [
        "application/x-www-form-urlencoded",
        "application/x-www-form-urlencoded; charset=utf-8",
        "Application/X-WWW-Form-URLEncoded ; Charset=UTF-8",
        " application/x-www-form-urlencoded\t",
    ] {
        let head = typed_post_head(
            path,
            &host,
            std::slice::from_ref(&sig),
            SMS.len(),
            Some(content_type),
        );
        assert_eq!(
            exchange(addr, &head, SMS.as_bytes()).await,
            (200, format!("secret=0 body={SMS}")),
            "{content_type:?}"
        );
    }
    // Two Content-Type lines, one of them not a form: a framework may read either, so 415.
    let twice = [
        sig.clone(),
        header("Content-Type", "multipart/form-data; boundary=B"),
    ];
    let head = post_head(path, &host, &twice, SMS.len());
    assert_eq!(exchange(addr, &head, SMS.as_bytes()).await.0, 415);
    // A type near the form's is another type.
    let head = typed_post_head(
        path,
        &host,
        &[sig],
        SMS.len(),
        Some("application/x-www-form-urlencoded-x"),
    );
    assert_eq!(exchange(addr, &head, SMS.as_bytes()).await.0, 415);
}

#[tokio::test]
async fn a_body_sha256_body_may_carry_any_type_and_an_empty_body_none() {
    let (addr, host) = serve_counted(default_layer()).await;
    let json = r#"{"data":{"body":"hi"}}"#;
    let path = format!(
        "/counted?case=any-type&bodySHA256={}",
        BodyHash::of(json.as_bytes())
    );
    let url = format!("http://{host}{path}");
    let sig = header("X-Twilio-Signature", &signature(PRIMARY, &url, json));
    for content_type in [
        Some("application/json"),
        Some("text/plain"),
        Some("multipart/form-data; boundary=B"),
        None,
    ] {
        let head = typed_post_head(
            &path,
            &host,
            std::slice::from_ref(&sig),
            json.len(),
            content_type,
        );
        assert_eq!(
            exchange(addr, &head, json.as_bytes()).await,
            (200, format!("secret=0 body={json}")),
            "{content_type:?}"
        );
    }
    // An empty POST (the URL alone is signed) needs no type, whatever it says.
    let path = "/counted?case=empty-body";
    let url = format!("http://{host}{path}");
    let sig = header("X-Twilio-Signature", &signature(PRIMARY, &url, ""));
    for content_type in [None, Some("multipart/form-data; boundary=B")] {
        let head = typed_post_head(path, &host, std::slice::from_ref(&sig), 0, content_type);
        assert_eq!(
            exchange(addr, &head, b"").await,
            (200, "secret=0 body=".to_owned()),
            "{content_type:?}"
        );
    }
}

#[tokio::test]
async fn the_content_type_is_checked_after_the_signature_header_and_the_body_limit() {
    let (addr, host) = serve_counted(default_layer().body_limit(1000)).await;
    let path = "/counted?case=order";
    let url = format!("http://{host}{path}");
    let multipart = Some("multipart/form-data; boundary=B");
    // No signature header: 400 first.
    let head = typed_post_head(path, &host, &[], SMS.len(), multipart);
    assert_eq!(exchange(addr, &head, SMS.as_bytes()).await.0, 400);
    // Over the body limit: 413 before the type is looked at.
    let big = "a=".to_owned() + &"b".repeat(2000);
    let sig = header("X-Twilio-Signature", &signature(PRIMARY, &url, &big));
    let head = typed_post_head(
        path,
        &host,
        std::slice::from_ref(&sig),
        big.len(),
        multipart,
    );
    assert_eq!(exchange(addr, &head, big.as_bytes()).await.0, 413);
    // A forged signature on a multipart body: 415 (the type is checked before the verdict).
    let forged = header("X-Twilio-Signature", "AAAAAAAAAAAAAAAAAAAAAAAAAAA=");
    let head = typed_post_head(path, &host, &[forged], SMS.len(), multipart);
    assert_eq!(exchange(addr, &head, SMS.as_bytes()).await.0, 415);
    assert_eq!(runs_of("case=order"), 0);
}

/// What an `on_reject` hook saw.
type Seen =
    std::sync::Arc<std::sync::Mutex<Vec<(u16, String, String, String, Option<SocketAddr>)>>>;

#[tokio::test]
async fn on_reject_shapes_the_response_and_replaces_the_default_line() {
    let seen = Seen::default();
    let record = seen.clone();
    let layer = default_layer().on_reject(move |head, rejection| {
        let peer = head
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|info| info.0);
        record.lock().expect("lock").push((
            rejection.status().as_u16(),
            rejection.reason().to_owned(),
            rejection.url().into_owned(),
            rejection.diagnosis().to_owned(),
            peer,
        ));
        let mut response = http::Response::new("<Response><Hangup/></Response>".into());
        *response.status_mut() = rejection.status();
        response
    });
    let addr = serve(layer).await;
    let host = format!("127.0.0.1:{}", addr.port());
    let path = "/sms?case=on-reject";
    let url = format!("http://{host}{path}");
    let forged = header("X-Twilio-Signature", &signature("not-the-token", &url, SMS));
    let head = post_head(path, &host, &[forged], SMS.len());
    assert_eq!(
        exchange(addr, &head, SMS.as_bytes()).await,
        (403, "<Response><Hangup/></Response>".to_owned())
    );
    let head = post_head(path, &host, &[], SMS.len());
    assert_eq!(exchange(addr, &head, SMS.as_bytes()).await.0, 400);

    let seen = seen.lock().expect("lock").clone();
    assert_eq!(seen.len(), 2, "{seen:#?}");
    let (status, reason, seen_url, diagnosis, peer) = &seen[0];
    assert_eq!((*status, seen_url.as_str()), (403, url.as_str()));
    assert!(!reason.is_empty() && !diagnosis.is_empty(), "{seen:#?}");
    assert!(peer.is_some_and(|p| p.ip().is_loopback()), "{peer:?}");
    assert_eq!(
        (seen[1].0, seen[1].1.as_str()),
        (400, "the X-Twilio-Signature header is missing")
    );
    // The hook replaced the default line: nothing was logged for these requests.
    assert!(capture::events_with("case=on-reject").is_empty());
    // Verified requests never reach the hook.
    let sig = header("X-Twilio-Signature", &signature(PRIMARY, &url, SMS));
    let head = post_head(path, &host, &[sig], SMS.len());
    assert_eq!(exchange(addr, &head, SMS.as_bytes()).await.0, 200);
}

/// Rule R3: a refusal line names the forwarding headers that were not believed, and why.
#[tokio::test]
async fn a_refusal_names_the_forwarding_headers_it_ignored_and_why() {
    let connect_info = |ranges: &[&str]| {
        default_layer()
            .trusted_proxies(ranges)
            .expect("ranges")
            .peer_addr_from::<ConnectInfo<SocketAddr>>()
    };
    let cases = [
        (
            "untrusted-peer",
            connect_info(&["10.0.0.0/8"]),
            vec![
                header("X-Forwarded-Host", "example.com"),
                header("X-Forwarded-Proto", "https"),
            ],
            "X-Forwarded-Proto, X-Forwarded-Host ignored: from 127.0.0.1, not in trusted_proxies",
        ),
        (
            "none-configured",
            default_layer(),
            vec![
                header("Forwarded", "proto=https;host=example.com"),
                header("X-Forwarded-Port", "443"),
                header("X-Forwarded-Proto", "https"),
            ],
            "X-Forwarded-Proto, X-Forwarded-Port, Forwarded ignored: no trusted_proxies configured",
        ),
        (
            "no-peer",
            default_layer()
                .trusted_proxies(["127.0.0.1"])
                .expect("ranges"),
            vec![header("X-Forwarded-Proto", "https")],
            "X-Forwarded-Proto ignored: the request carries no peer address (see \
             TwilioSignatureLayer::peer_addr_from)",
        ),
        (
            "trusted-port",
            connect_info(&["127.0.0.1"]),
            vec![
                header("X-Forwarded-Proto", "https"),
                header("X-Forwarded-Port", "8443"),
            ],
            "X-Forwarded-Port ignored: the layer reads only X-Forwarded-Proto and X-Forwarded-Host",
        ),
    ];
    for (case, layer, mut lines, expected) in cases {
        let addr = serve(layer).await;
        let host = format!("127.0.0.1:{}", addr.port());
        let path = format!("/sms?case=ignored-{case}");
        let forged = header("X-Twilio-Signature", "AAAAAAAAAAAAAAAAAAAAAAAAAAA=");
        // Refused at 400 (no signature) and at 403: the note is on every refusal.
        for status in [400, 403] {
            let mut extra = lines.clone();
            if status == 403 {
                extra.push(forged.clone());
            }
            let head = post_head(&path, &host, &extra, SMS.len());
            assert_eq!(
                exchange(addr, &head, SMS.as_bytes()).await.0,
                status,
                "{case}"
            );
        }
        let events = capture::events_with(&format!("case=ignored-{case};"));
        assert_eq!(events.len(), 2, "{case}: {events:#?}");
        for event in &events {
            let line = event.field("message");
            assert!(line.ends_with(&format!("; {expected}")), "{case}: {line}");
        }
        // Without forwarding headers, no note.
        lines.clear();
        let path = format!("/sms?case=ignored-{case}-none");
        let head = post_head(&path, &host, &lines, SMS.len());
        assert_eq!(exchange(addr, &head, SMS.as_bytes()).await.0, 400);
        let events = capture::events_with(&format!("case=ignored-{case}-none;"));
        assert_eq!(events.len(), 1, "{case}: {events:#?}");
        assert!(
            !events[0].field("message").contains(" ignored: "),
            "{events:#?}"
        );
    }
}

/// Rule R4: a route pasted into base_url is warned about once per layer, at the first request.
#[tokio::test]
async fn a_base_url_that_repeats_the_route_is_warned_about_once() {
    let base = "https://overlap.example/twilio/sms";
    let layer = default_layer().base_url(base).expect("base url");
    let app = Router::new()
        .route("/twilio/sms", post(echo))
        .route_layer(layer);
    let addr = serve_app(app).await;
    let doubled = format!("{base}/twilio/sms");
    let sig = header("X-Twilio-Signature", &signature(PRIMARY, &doubled, SMS));
    for _ in 0..3 {
        let head = post_head(
            "/twilio/sms",
            "app.internal",
            std::slice::from_ref(&sig),
            SMS.len(),
        );
        // Verified against the doubled URL, as configured: it passes, and the warning says why.
        assert_eq!(
            exchange(addr, &head, SMS.as_bytes()).await,
            (200, format!("secret=0 body={SMS}"))
        );
    }
    let events = capture::events_with("overlap.example");
    assert_eq!(events.len(), 1, "{events:#?}");
    assert_eq!(events[0].level, tracing::Level::WARN);
    assert_eq!(
        events[0].field("message"),
        "base_url \"https://overlap.example/twilio/sms\" ends with \"/twilio/sms\", which the request \
         path \"/twilio/sms\" starts with: the URL verified is \
         \"https://overlap.example/twilio/sms/twilio/sms\". Give base_url as the public origin plus only \
         the mount prefix the app does not see (usually just the origin)."
    );

    // A mount prefix the app does not see is not a repeat.
    let layer = default_layer()
        .base_url("https://no-overlap.example/twilio")
        .expect("base url");
    let addr = serve(layer).await;
    let url = "https://no-overlap.example/twilio/sms";
    let sig = header("X-Twilio-Signature", &signature(PRIMARY, url, SMS));
    let head = post_head("/sms", "app.internal", &[sig], SMS.len());
    assert_eq!(exchange(addr, &head, SMS.as_bytes()).await.0, 200);
    assert!(capture::events_with("no-overlap.example").is_empty());
}
