//! The layer behind real servers on loopback (axum, and plain hyper), spoken to in raw HTTP/1.1 so that
//! the tests can send what well-behaved clients refuse to: bad hosts, lying lengths, endless chunks.

mod capture;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::Duration;

use axum::extract::ConnectInfo;
use axum::routing::{get, post};
use axum::{Extension, Router};
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
    capture::install();
    let app = Router::new()
        .route("/sms", post(echo))
        .route("/status", get(echo))
        .route_layer(layer);
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
    });
    addr
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

/// A POST with `Connection: close`, the given host and extra header lines, and a Content-Length.
fn post_head(path: &str, host: &str, extra: &[String], length: usize) -> String {
    let mut head = format!("POST {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n");
    for line in extra {
        head.push_str(line);
        head.push_str("\r\n");
    }
    head + &format!(
        "Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {length}\r\n\r\n"
    )
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
    for host in ["evil.example@example.com", "example.com\\evil", "a\tb"] {
        let head = post_head("/sms", host, std::slice::from_ref(&sig), SMS.len());
        let (status, body) = exchange(addr, &head, SMS.as_bytes()).await;
        assert_eq!(
            (status, body.as_str()),
            (400, "the Host header is not a host\n"),
            "{host:?}"
        );
    }
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
async fn each_refusal_is_one_warn_event_with_status_url_reason_and_diagnosis_but_no_secret() {
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
    assert_eq!(exchange(addr, &head, SMS.as_bytes()).await.0, 403);

    let events = capture::events_with(&http);
    assert_eq!(events.len(), 1, "{events:#?}");
    let event = &events[0];
    assert_eq!(event.level, tracing::Level::WARN);
    assert_eq!(event.target, "twilio_signature_tower");
    assert_eq!(event.field("status"), "403");
    assert_eq!(event.field("url"), http);
    assert!(!event.field("reason").is_empty());
    assert!(
        event.field("diagnosis").contains("http vs https"),
        "{event:#?}"
    );
    let message = event.field("message");
    assert!(
        message.starts_with(&format!(
            "twilio webhook refused: 403 {}; url={http}; ",
            event.field("reason")
        )),
        "{message}"
    );
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
