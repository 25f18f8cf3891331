//! Retries answered once (rule R2): the stored layout against tests/vectors/idempotency.json, the
//! memory store, and the layer's `idempotency` option behind a real axum server on loopback.

mod capture;
mod loopback;
mod retry;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::http::{HeaderMap as AxumHeaders, StatusCode as AxumStatus};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::Router;
use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use loopback::serve_app;
use retry::{read_answer, Answer};
use serde_json::Value;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use twilio_signature::{sign, Request};
use twilio_signature_tower::idempotency::{
    delivery_key, Claim, Idempotency, IdempotencyStore, MemoryStore, OnStoreError, StoreError,
    StoreFuture, StoredResponse,
};
use twilio_signature_tower::{Secret, TwilioSignatureLayer, Validator};

const TOKEN: &str = "auth-token-for-retries-0123456789";

// ---- The shared vectors -------------------------------------------------------------------------

fn vectors() -> Value {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../tests/vectors/idempotency.json"
    );
    serde_json::from_str(&std::fs::read_to_string(path).expect("read the vectors")).expect("JSON")
}

fn unhex(text: &str) -> Vec<u8> {
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).expect("hex"))
        .collect()
}

/// A JSON string as the bytes sent: each character one latin-1 byte (the vectors' "café").
fn latin1(value: &Value) -> Vec<u8> {
    value
        .as_str()
        .expect("string")
        .chars()
        .map(|c| u8::try_from(u32::from(c)).expect("latin-1"))
        .collect()
}

fn lines(value: &Value) -> Vec<(String, Vec<u8>)> {
    value
        .as_array()
        .expect("lines")
        .iter()
        .map(|line| (line[0].as_str().expect("name").to_owned(), latin1(&line[1])))
        .collect()
}

fn stored_lines(stored: &StoredResponse) -> Vec<(String, Vec<u8>)> {
    stored
        .headers()
        .iter()
        .map(|(n, v)| (n.as_str().to_owned(), v.as_bytes().to_vec()))
        .collect()
}

#[test]
fn the_delivery_key_is_the_one_every_face_computes() {
    let cases = vectors()["delivery_key"].as_array().expect("cases").clone();
    assert!(!cases.is_empty());
    for case in cases {
        let replay_key: [u8; 32] = unhex(case["replay_key_hex"].as_str().expect("hex"))
            .try_into()
            .expect("32 bytes");
        let token = case["token"].as_str().expect("token");
        assert_eq!(
            delivery_key(&replay_key, token.as_bytes()),
            case["key"].as_str().expect("key")
        );
    }
}

#[test]
fn responses_encode_to_layout_v2_byte_for_byte_and_decode_back() {
    let cases = vectors()["encode"].as_array().expect("cases").clone();
    assert!(cases.len() >= 4);
    for case in cases {
        let name = case["name"].as_str().expect("name");
        let mut headers = HeaderMap::new();
        for (header, value) in lines(&case["headers"]) {
            headers.append(
                HeaderName::from_bytes(header.as_bytes()).expect("name"),
                HeaderValue::from_bytes(&value).expect("value"),
            );
        }
        let status =
            StatusCode::from_u16(case["status"].as_u64().expect("status") as u16).expect("status");
        let body = Bytes::from(unhex(case["body_hex"].as_str().expect("body")));
        let stored = StoredResponse::from_parts(status, &headers, body.clone());
        assert_eq!(
            stored_lines(&stored),
            lines(&case["stored_headers"]),
            "{name}"
        );
        let encoded = stored.encode().expect("encode");
        assert_eq!(
            encoded,
            unhex(case["encoded_hex"].as_str().expect("hex")),
            "{name}"
        );
        let decoded = StoredResponse::decode(&encoded).expect("decode");
        assert_eq!(decoded, stored, "{name}");
        assert_eq!(decoded.body(), &body, "{name}");
    }
}

#[test]
fn layout_v1_is_still_read_its_content_type_becoming_a_line() {
    for case in vectors()["decode_v1"].as_array().expect("cases") {
        let name = case["name"].as_str().expect("name");
        let decoded = StoredResponse::decode(&unhex(case["encoded_hex"].as_str().expect("hex")))
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(
            u64::from(decoded.status().as_u16()),
            case["status"].as_u64().expect("status")
        );
        assert_eq!(
            stored_lines(&decoded),
            lines(&case["stored_headers"]),
            "{name}"
        );
        assert_eq!(
            decoded.body().as_ref(),
            unhex(case["body_hex"].as_str().expect("body")),
            "{name}"
        );
        // Never written back as v1.
        assert_eq!(
            decoded.encode().expect("encode")[..2],
            [0xff, 0x02],
            "{name}"
        );
    }
}

#[test]
fn malformed_stored_responses_are_errors() {
    let cases = vectors()["malformed"].as_array().expect("cases").clone();
    assert!(cases.len() >= 9);
    for case in cases {
        let name = case["name"].as_str().expect("name");
        let result = StoredResponse::decode(&unhex(case["encoded_hex"].as_str().expect("hex")));
        assert!(result.is_err(), "{name}: {result:?}");
    }
}

// ---- The layer behind axum ----------------------------------------------------------------------

/// A signed SMS webhook to `path` of this server, with the idempotency token if given, answered in full.
async fn deliver(addr: SocketAddr, path: &str, token: Option<&str>) -> Answer {
    deliver_signed_with(addr, path, token, TOKEN).await
}

async fn deliver_signed_with(
    addr: SocketAddr,
    path: &str,
    token: Option<&str>,
    secret: &str,
) -> Answer {
    let url = format!("http://127.0.0.1:{}{path}", addr.port());
    retry::deliver(addr, path, &url, token, secret).await
}

fn layer(retries: impl Into<Idempotency>) -> TwilioSignatureLayer<[Secret; 1]> {
    TwilioSignatureLayer::new(Validator::new(Secret::new(TOKEN.as_bytes()))).idempotency(retries)
}

/// A handler that counts its runs and answers a redirect with two cookies and a body naming the run.
fn redirect_app(runs: &Arc<AtomicUsize>) -> Router {
    let runs = Arc::clone(runs);
    Router::new().route(
        "/sms",
        post(move || {
            let run = runs.fetch_add(1, Ordering::SeqCst) + 1;
            async move {
                let mut headers = AxumHeaders::new();
                headers.insert("location", "/next?step=2".parse().expect("value"));
                headers.append("set-cookie", "a=1; Path=/".parse().expect("value"));
                headers.append("set-cookie", "b=2".parse().expect("value"));
                headers.insert(
                    "x-note",
                    HeaderValue::from_bytes(b"caf\xe9").expect("latin-1"),
                );
                (AxumStatus::FOUND, headers, format!("run {run}"))
            }
        }),
    )
}

#[tokio::test]
async fn a_retry_gets_the_first_response_with_its_headers_and_the_handler_runs_once() {
    let runs = Arc::new(AtomicUsize::new(0));
    let store = Arc::new(MemoryStore::new());
    // A store chosen at run time (as `twsig proxy` picks memory or Redis) is an `Arc<dyn _>`.
    let dynamic: Arc<dyn IdempotencyStore> = Arc::clone(&store) as _;
    let retries = Idempotency::new(dynamic);
    let addr = serve_app(redirect_app(&runs).route_layer(layer(retries.clone()))).await;

    let first = deliver(addr, "/sms", Some("RC-1")).await;
    assert_eq!((first.status, first.body.as_str()), (302, "run 1"));
    assert_eq!(first.header("idempotent-replayed"), None);
    let retry = deliver(addr, "/sms", Some("RC-1")).await;
    assert_eq!(
        (retry.status, retry.body.as_str()),
        (302, "run 1"),
        "{retry:?}"
    );
    assert_eq!(retry.header("idempotent-replayed"), Some("true"));
    assert_eq!(retry.header("location"), Some("/next?step=2"));
    assert_eq!(retry.all("set-cookie"), ["a=1; Path=/", "b=2"]);
    assert_eq!(retry.header("content-type"), first.header("content-type"));
    assert_eq!(
        runs.load(Ordering::SeqCst),
        1,
        "the retry did not run the handler"
    );
    // The latin-1 byte went out and came back as sent (lossily shown by the test's parser).
    assert_eq!(retry.header("x-note"), first.header("x-note"));
    assert!(
        !retry.all("date").is_empty(),
        "the server's own Date, not a stored one"
    );

    // A new delivery with identical content (a new token) runs; so does one without a token.
    assert_eq!(deliver(addr, "/sms", Some("RC-2")).await.body, "run 2");
    assert_eq!(deliver(addr, "/sms", None).await.body, "run 3");
    assert_eq!(deliver(addr, "/sms", None).await.body, "run 4");
    assert_eq!(
        store.len(),
        2,
        "two deliveries stored, none for the requests without a token"
    );
    assert_eq!(
        retries.unguarded(),
        2,
        "the requests without a token, counted"
    );
}

#[tokio::test]
async fn only_verified_requests_touch_the_store() {
    let runs = Arc::new(AtomicUsize::new(0));
    let store = Arc::new(MemoryStore::new());
    let addr = serve_app(redirect_app(&runs).route_layer(layer(Arc::clone(&store)))).await;
    let forged = deliver_signed_with(addr, "/sms", Some("RC-1"), "not-the-auth-token").await;
    assert_eq!(forged.status, 403);
    assert!(store.is_empty(), "a forged request claimed nothing");
    // The real delivery with that token then runs.
    assert_eq!(deliver(addr, "/sms", Some("RC-1")).await.body, "run 1");
}

/// A handler that takes `delay` on its first run only, counting runs.
fn slow_first_app(runs: &Arc<AtomicUsize>, delay: Duration, status: AxumStatus) -> Router {
    let runs = Arc::clone(runs);
    Router::new().route(
        "/sms",
        post(move || {
            let run = runs.fetch_add(1, Ordering::SeqCst) + 1;
            async move {
                if run == 1 {
                    tokio::time::sleep(delay).await;
                }
                (status, format!("run {run}"))
            }
        }),
    )
}

#[tokio::test]
async fn a_retry_during_the_first_run_waits_for_its_response_or_gets_409() {
    let runs = Arc::new(AtomicUsize::new(0));
    let store = MemoryStore::new();
    let retries = Idempotency::new(store).wait(Duration::from_millis(1500));
    let app = slow_first_app(&runs, Duration::from_millis(700), AxumStatus::OK);
    let addr = serve_app(app.route_layer(layer(retries))).await;
    let first = tokio::spawn(async move { deliver(addr, "/sms", Some("RC-1")).await });
    tokio::time::sleep(Duration::from_millis(200)).await;
    // Waits (up to 1.5 s) for the first run, which ends ~0.5 s later: its response, replayed.
    let retry = deliver(addr, "/sms", Some("RC-1")).await;
    assert_eq!((retry.status, retry.body.as_str()), (200, "run 1"));
    assert_eq!(retry.header("idempotent-replayed"), Some("true"));
    assert_eq!(first.await.expect("first").body, "run 1");

    // With a short wait the retry gives up: 409, and the handler still ran once.
    let runs = Arc::new(AtomicUsize::new(0));
    let retries = Idempotency::new(MemoryStore::new()).wait(Duration::from_millis(200));
    let app = slow_first_app(&runs, Duration::from_secs(1), AxumStatus::OK);
    let addr = serve_app(app.route_layer(layer(retries))).await;
    let first = tokio::spawn(async move { deliver(addr, "/sms", Some("RC-1")).await });
    tokio::time::sleep(Duration::from_millis(200)).await;
    let started = Instant::now();
    let retry = deliver(addr, "/sms", Some("RC-1")).await;
    assert_eq!(retry.status, 409, "{retry:?}");
    assert_eq!(
        retry.body,
        "this delivery is still being handled; retry later\n"
    );
    assert!(
        started.elapsed() >= Duration::from_millis(190),
        "it waited first"
    );
    assert_eq!(first.await.expect("first").body, "run 1");
    assert_eq!(runs.load(Ordering::SeqCst), 1);
    let refused = capture::events_with("409 the first delivery is still being handled");
    assert!(refused
        .iter()
        .any(|e| e.target == "twilio_signature_tower" && e.field("message").contains("key=")));
}

#[tokio::test]
async fn a_5xx_is_not_stored_and_the_retry_runs_the_handler_again() {
    let runs = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&runs);
    let app = Router::new().route(
        "/sms",
        post(move || {
            let run = counter.fetch_add(1, Ordering::SeqCst) + 1;
            async move {
                let status = if run == 1 {
                    AxumStatus::SERVICE_UNAVAILABLE
                } else {
                    AxumStatus::OK
                };
                (status, format!("run {run}"))
            }
        }),
    );
    let store = Arc::new(MemoryStore::new());
    let addr = serve_app(app.route_layer(layer(Arc::clone(&store)))).await;
    assert_eq!(deliver(addr, "/sms", Some("RC-1")).await.status, 503);
    assert!(store.is_empty(), "the failure's claim was released");
    let retry = deliver(addr, "/sms", Some("RC-1")).await;
    assert_eq!((retry.status, retry.body.as_str()), (200, "run 2"));
    assert_eq!(retry.header("idempotent-replayed"), None);
    assert_eq!(
        deliver(addr, "/sms", Some("RC-1"))
            .await
            .header("idempotent-replayed"),
        Some("true")
    );
}

#[tokio::test]
async fn a_body_over_max_body_is_sent_whole_but_not_stored() {
    let runs = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&runs);
    let app = Router::new().route(
        "/sms",
        post(move || {
            counter.fetch_add(1, Ordering::SeqCst);
            async { "x".repeat(3000) }
        }),
    );
    let retries = Idempotency::new(MemoryStore::new()).max_body(1024);
    let addr = serve_app(app.route_layer(layer(retries))).await;
    for _ in 0..2 {
        let answer = deliver(addr, "/sms", Some("RC-1")).await;
        assert_eq!((answer.status, answer.body.len()), (200, 3000));
        assert_eq!(answer.header("idempotent-replayed"), None);
    }
    assert_eq!(
        runs.load(Ordering::SeqCst),
        2,
        "not stored: the retry ran again"
    );
}

#[tokio::test]
async fn a_claim_is_released_when_the_client_goes_away_during_the_first_run() {
    let runs = Arc::new(AtomicUsize::new(0));
    let store = Arc::new(MemoryStore::new());
    let retries = Idempotency::new(Arc::clone(&store)).wait(Duration::from_millis(300));
    let app = slow_first_app(&runs, Duration::from_secs(5), AxumStatus::OK);
    let addr = serve_app(app.route_layer(layer(retries))).await;
    let url = format!("http://127.0.0.1:{}/sms", addr.port());
    let stream = retry::send(addr, "/sms", &url, Some("RC-1"), TOKEN).await;
    // The first run has claimed the delivery and is in its handler; then the client hangs up.
    let deadline = Instant::now() + Duration::from_secs(5);
    while runs.load(Ordering::SeqCst) == 0 {
        assert!(
            Instant::now() < deadline,
            "the first delivery reached the handler"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(store.len(), 1, "claimed");
    drop(stream);
    let deadline = Instant::now() + Duration::from_secs(5);
    while !store.is_empty() {
        assert!(
            Instant::now() < deadline,
            "the dropped request's claim was released"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // Twilio's retry runs the handler at once instead of waiting out the 60 s lease (409).
    let retry = deliver(addr, "/sms", Some("RC-1")).await;
    assert_eq!((retry.status, retry.body.as_str()), (200, "run 2"));
}

/// A store that fails the chosen operations, passing the rest to a memory store.
struct Failing {
    memory: MemoryStore,
    claim: bool,
    complete: bool,
}

impl IdempotencyStore for Failing {
    fn claim<'a>(
        &'a self,
        key: &'a str,
        owner: &'a str,
        lease: Duration,
    ) -> StoreFuture<'a, Claim> {
        if self.claim {
            return Box::pin(async { Err(StoreError::new("connection refused")) });
        }
        self.memory.claim(key, owner, lease)
    }

    fn complete<'a>(
        &'a self,
        key: &'a str,
        owner: &'a str,
        response: &'a StoredResponse,
        ttl: Duration,
    ) -> StoreFuture<'a, bool> {
        if self.complete {
            return Box::pin(async { Err(StoreError::new("connection reset")) });
        }
        self.memory.complete(key, owner, response, ttl)
    }

    fn release<'a>(&'a self, key: &'a str, owner: &'a str) -> StoreFuture<'a, bool> {
        self.memory.release(key, owner)
    }
}

#[tokio::test]
async fn a_failing_store_processes_unguarded_by_default_or_answers_503() {
    let runs = Arc::new(AtomicUsize::new(0));
    let down = || Failing {
        memory: MemoryStore::new(),
        claim: true,
        complete: false,
    };
    let addr = serve_app(redirect_app(&runs).route_layer(layer(down()))).await;
    assert_eq!(deliver(addr, "/sms", Some("RC-1")).await.body, "run 1");
    assert_eq!(
        deliver(addr, "/sms", Some("RC-1")).await.body,
        "run 2",
        "unguarded"
    );
    assert!(!capture::events_with(
        "retry store failed (claim): connection refused; processed unguarded"
    )
    .is_empty());

    let retries = Idempotency::new(down()).on_store_error(OnStoreError::Refuse);
    let addr = serve_app(redirect_app(&runs).route_layer(layer(retries))).await;
    let refused = deliver(addr, "/sms", Some("RC-1")).await;
    assert_eq!(
        (refused.status, refused.body.as_str()),
        (503, "retry store unavailable; retry later\n")
    );
    assert_eq!(
        runs.load(Ordering::SeqCst),
        2,
        "the refused request did not run"
    );
}

#[tokio::test]
async fn a_failed_complete_releases_the_claim_so_the_retry_runs_again() {
    let runs = Arc::new(AtomicUsize::new(0));
    let retries = Idempotency::new(Failing {
        memory: MemoryStore::new(),
        claim: false,
        complete: true,
    })
    .wait(Duration::from_millis(300));
    let addr = serve_app(redirect_app(&runs).route_layer(layer(retries))).await;
    assert_eq!(deliver(addr, "/sms", Some("RC-1")).await.body, "run 1");
    let retry = deliver(addr, "/sms", Some("RC-1")).await;
    assert_eq!(
        (retry.status, retry.body.as_str()),
        (302, "run 2"),
        "not 409: the claim was freed"
    );
}

#[tokio::test]
async fn a_memory_store_full_of_running_deliveries_applies_the_store_failure_policy() {
    let runs = Arc::new(AtomicUsize::new(0));
    let retries =
        Idempotency::new(MemoryStore::with_max_entries(1)).on_store_error(OnStoreError::Refuse);
    let app = slow_first_app(&runs, Duration::from_millis(800), AxumStatus::OK);
    let addr = serve_app(app.route_layer(layer(retries))).await;
    let first = tokio::spawn(async move { deliver(addr, "/sms", Some("RC-1")).await });
    tokio::time::sleep(Duration::from_millis(200)).await;
    // Another delivery while the only place holds a running one: never evicted, so 503 (refuse).
    let other = deliver(addr, "/sms", Some("RC-2")).await;
    assert_eq!(other.status, 503, "{other:?}");
    assert_eq!(first.await.expect("first").body, "run 1");
    assert!(!capture::events_with("memory store full: 1 deliveries in flight").is_empty());
    // Once it is stored it may be evicted for a new delivery.
    assert_eq!(deliver(addr, "/sms", Some("RC-2")).await.body, "run 2");
}

#[tokio::test]
async fn a_websocket_handshake_bypasses_the_store() {
    let runs = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&runs);
    let app = Router::new().route(
        "/stream",
        get(move || {
            counter.fetch_add(1, Ordering::SeqCst);
            async { "no upgrade here".into_response() }
        }),
    );
    let store = Arc::new(MemoryStore::new());
    let addr = serve_app(app.route_layer(layer(Arc::clone(&store)))).await;
    let host = format!("127.0.0.1:{}", addr.port());
    // Twilio signs a handshake over ws://.
    let signature = sign(
        TOKEN.as_bytes(),
        &Request::get(&format!("ws://{host}/stream")),
    )
    .expect("sign");
    for _ in 0..2 {
        let head = format!(
            "GET /stream HTTP/1.1\r\nHost: {host}\r\nConnection: Upgrade, close\r\nUpgrade: websocket\r\n\
             X-Twilio-Signature: {}\r\nI-Twilio-Idempotency-Token: RC-ws\r\n\r\n",
            signature.as_str()
        );
        let mut stream = TcpStream::connect(addr).await.expect("connect");
        stream.write_all(head.as_bytes()).await.expect("write");
        let answer = read_answer(&mut stream).await;
        assert_eq!(answer.status, 200, "{answer:?}");
    }
    assert_eq!(runs.load(Ordering::SeqCst), 2);
    assert!(store.is_empty(), "a handshake claimed nothing");
}
