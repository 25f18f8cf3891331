//! The Redis store (feature `redis`) against a real redis-server each test starts on a free loopback
//! port (no persistence) and stops: the Go/Python values and scripts, two axum instances sharing it,
//! a Redis that is down, and a mixed fleet (the Python store reads what this one wrote, and the other
//! way round). Without redis-server (or the venv's Python with `redis`) the tests say so and pass,
//! unless TWILIOSIG_REQUIRE_REDIS=1 (`make test-tower` sets it): then they fail.
#![cfg(feature = "redis")]

mod capture;
mod loopback;
mod retry;

use std::net::{SocketAddr, TcpListener as StdListener};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::routing::post;
use axum::Router;
use bytes::Bytes;
use http::{HeaderName, HeaderValue, StatusCode};
use loopback::serve_app;
use retry::Answer;
use twilio_signature_tower::idempotency::{
    delivery_key, Claim, Idempotency, IdempotencyStore, OnStoreError, RedisStore, StoredResponse,
};
use twilio_signature_tower::{Secret, TwilioSignatureLayer, Validator};

const TOKEN: &str = "auth-token-for-redis-retries-42";
const LEASE: Duration = Duration::from_secs(60);
const TTL: Duration = Duration::from_secs(3600);

fn required() -> bool {
    std::env::var("TWILIOSIG_REQUIRE_REDIS").is_ok_and(|v| v == "1")
}

/// A redis-server of the test's own, killed when dropped.
struct RedisServer {
    child: Child,
    port: u16,
    _dir: TempDir,
}

struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

impl RedisServer {
    /// Started and answering, or `None` (after saying why) when redis-server is not installed.
    fn start() -> Option<Self> {
        let port = StdListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        Self::start_on(port)
    }

    fn start_on(port: u16) -> Option<Self> {
        let dir =
            std::env::temp_dir().join(format!("tws-tower-redis-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let spawned = Command::new("redis-server")
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
            ])
            .args(["--appendonly", "no", "--loglevel", "warning", "--dir"])
            .arg(&dir)
            .stdout(Stdio::null())
            .spawn();
        let child = match spawned {
            Ok(child) => child,
            Err(error) => {
                assert!(
                    !required(),
                    "redis-server: {error} (TWILIOSIG_REQUIRE_REDIS=1)"
                );
                eprintln!("skipped: no redis-server ({error}); `make test-tower` installs it");
                return None;
            }
        };
        let server = Self {
            child,
            port,
            _dir: TempDir(dir),
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "redis-server listens within 10 s"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Some(server)
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// The raw value under `key` and its time to live in milliseconds.
    async fn raw(&self, key: &str) -> (Option<Vec<u8>>, i64) {
        let client = redis::Client::open(self.url()).expect("url");
        let mut connection = client
            .get_multiplexed_async_connection()
            .await
            .expect("connect");
        let value: Option<Vec<u8>> = redis::cmd("GET")
            .arg(key)
            .query_async(&mut connection)
            .await
            .expect("GET");
        let ttl: i64 = redis::cmd("PTTL")
            .arg(key)
            .query_async(&mut connection)
            .await
            .expect("PTTL");
        (value, ttl)
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn redirect() -> StoredResponse {
    StoredResponse::new(
        StatusCode::FOUND,
        vec![
            (
                HeaderName::from_static("location"),
                HeaderValue::from_static("/next"),
            ),
            (
                HeaderName::from_static("set-cookie"),
                HeaderValue::from_static("a=1"),
            ),
            (
                HeaderName::from_static("set-cookie"),
                HeaderValue::from_static("b=2"),
            ),
        ],
        Bytes::from_static(b"<Response/>"),
    )
}

#[tokio::test]
async fn claims_and_responses_are_the_values_and_scripts_go_and_python_use() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let store = RedisStore::connect(&redis.url()).await.expect("connect");
    store.ping().await.expect("ping");
    let raw_key = format!("twilio-signature:idempotency:{}", "k1");
    assert_eq!(
        store.claim("k1", "owner-a", LEASE).await.expect("claim"),
        Claim::Ours
    );
    let (value, ttl) = redis.raw(&raw_key).await;
    assert_eq!(value.as_deref(), Some(&b"Powner-a"[..]));
    assert!(ttl > 0 && ttl <= 60_000, "the lease: {ttl}");
    // A client re-sending a claim that succeeded finds its own owner: ours, not busy with itself.
    assert_eq!(
        store.claim("k1", "owner-a", LEASE).await.expect("claim"),
        Claim::Ours
    );
    assert_eq!(
        store.claim("k1", "owner-b", LEASE).await.expect("claim"),
        Claim::Busy
    );
    assert!(!store
        .complete("k1", "owner-b", &redirect(), TTL)
        .await
        .expect("complete"));
    assert!(!store.release("k1", "owner-b").await.expect("release"));
    assert!(store
        .complete("k1", "owner-a", &redirect(), TTL)
        .await
        .expect("complete"));
    let (value, ttl) = redis.raw(&raw_key).await;
    let mut expected = b"D".to_vec();
    expected.extend(redirect().encode().expect("encode"));
    assert_eq!(value, Some(expected));
    assert!(ttl > 60_000 && ttl <= 3_600_000, "the TTL: {ttl}");
    assert_eq!(
        store.claim("k1", "owner-c", LEASE).await.expect("claim"),
        Claim::Done(redirect())
    );
    // Release frees only its own claim.
    assert_eq!(
        store.claim("k2", "owner-a", LEASE).await.expect("claim"),
        Claim::Ours
    );
    assert!(store.release("k2", "owner-a").await.expect("release"));
    assert_eq!(redis.raw("twilio-signature:idempotency:k2").await.0, None);
    // Another prefix is another namespace.
    let other = store.clone().with_prefix("elsewhere:");
    assert_eq!(
        other.claim("k1", "owner-d", LEASE).await.expect("claim"),
        Claim::Ours
    );
}

#[tokio::test]
async fn a_malformed_stored_value_is_a_store_error() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let client = redis::Client::open(redis.url()).expect("url");
    let mut connection = client
        .get_multiplexed_async_connection()
        .await
        .expect("connect");
    let _: () = redis::cmd("SET")
        .arg("twilio-signature:idempotency:bad")
        .arg(b"D\xff\x03\x00\xc8\x00\x00".as_slice())
        .query_async(&mut connection)
        .await
        .expect("SET");
    let store = RedisStore::connect(&redis.url()).await.expect("connect");
    let error = store
        .claim("bad", "o", LEASE)
        .await
        .expect_err("unknown layout version");
    assert!(
        error.to_string().contains("unknown layout version 3"),
        "{error}"
    );
}

/// The layer of one instance of a fleet behind `https://example.com` (so that every instance verifies
/// the same URL, and a delivery has the same key on each).
fn layer(retries: impl Into<Idempotency>) -> TwilioSignatureLayer<[Secret; 1]> {
    TwilioSignatureLayer::new(Validator::new(Secret::new(TOKEN.as_bytes())))
        .base_url("https://example.com")
        .expect("base URL")
        .idempotency(retries)
}

fn app(runs: &Arc<AtomicUsize>, instance: &'static str) -> Router {
    let runs = Arc::clone(runs);
    Router::new().route(
        "/sms",
        post(move || {
            let run = runs.fetch_add(1, Ordering::SeqCst) + 1;
            async move {
                (
                    [("set-cookie", "session=abc")],
                    format!("{instance} run {run}"),
                )
            }
        }),
    )
}

/// A signed SMS webhook with the token, as Twilio sends it to `https://example.com/sms`.
async fn deliver(addr: SocketAddr, token: &str) -> Answer {
    retry::deliver(addr, "/sms", "https://example.com/sms", Some(token), TOKEN).await
}

#[tokio::test]
async fn two_instances_sharing_redis_answer_a_retry_with_the_first_response() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let runs = Arc::new(AtomicUsize::new(0));
    let store = RedisStore::connect(&redis.url()).await.expect("connect");
    let one = serve_app(app(&runs, "one").route_layer(layer(store.clone()))).await;
    let two = serve_app(app(&runs, "two").route_layer(layer(store))).await;
    let first = deliver(one, "RC-1").await;
    assert_eq!(
        (first.status, first.replayed(), first.body.as_str()),
        (200, false, "one run 1")
    );
    // The retry reaches the other instance: the first response, its cookie, marked replayed.
    let retry = deliver(two, "RC-1").await;
    assert_eq!(
        (retry.status, retry.replayed(), retry.body.as_str()),
        (200, true, "one run 1")
    );
    assert_eq!(retry.all("set-cookie"), ["session=abc"]);
    assert_eq!(runs.load(Ordering::SeqCst), 1);
    let other = deliver(two, "RC-2").await;
    assert_eq!(
        (other.replayed(), other.body.as_str()),
        (false, "two run 2")
    );
}

#[tokio::test]
async fn a_redis_that_is_down_processes_unguarded_or_answers_503_and_comes_back() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let port = redis.port;
    let runs = Arc::new(AtomicUsize::new(0));
    let store = RedisStore::connect(&redis.url()).await.expect("connect");
    let processing = serve_app(app(&runs, "p").route_layer(layer(store.clone()))).await;
    let refusing = Idempotency::new(store.clone()).on_store_error(OnStoreError::Refuse);
    let refusing = serve_app(app(&runs, "r").route_layer(layer(refusing))).await;
    drop(redis);
    let started = Instant::now();
    let unguarded = deliver(processing, "RC-1").await;
    assert_eq!(
        (
            unguarded.status,
            unguarded.replayed(),
            unguarded.body.as_str()
        ),
        (200, false, "p run 1")
    );
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "{:?}",
        started.elapsed()
    );
    let refused = deliver(refusing, "RC-1").await;
    assert_eq!(
        (refused.status, refused.body.as_str()),
        (503, "retry store unavailable; retry later\n")
    );
    assert_eq!(runs.load(Ordering::SeqCst), 1);
    let failed = capture::events_with("retry store failed (claim): Redis: claim");
    assert!(failed
        .iter()
        .any(|e| e.field("message").contains("processed unguarded")));
    // Redis back on the same port: the store reconnects.
    let _redis = RedisServer::start_on(port).expect("restarted");
    let deadline = Instant::now() + Duration::from_secs(10);
    while store.ping().await.is_err() {
        assert!(
            Instant::now() < deadline,
            "the store reconnects within 10 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(!deliver(processing, "RC-9").await.replayed());
    assert!(
        deliver(processing, "RC-9").await.replayed(),
        "guarded again"
    );
}

#[tokio::test]
async fn a_store_opened_while_redis_is_down_works_once_it_is_up() {
    let port = StdListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let store = RedisStore::open(&format!("redis://127.0.0.1:{port}/")).expect("a valid URL");
    let error = store
        .claim("k", "o", LEASE)
        .await
        .expect_err("nothing listens yet");
    assert!(error.to_string().starts_with("Redis: claim"), "{error}");
    let Some(_redis) = RedisServer::start_on(port) else {
        return;
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match store.claim("k", "o", LEASE).await {
            Ok(claim) => break assert_eq!(claim, Claim::Ours),
            Err(error) => assert!(
                Instant::now() < deadline,
                "still failing after 10 s: {error}"
            ),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let error = RedisStore::open("http://:hunter2@not-redis/").expect_err("not a Redis URL");
    assert!(!error.to_string().contains("hunter2"), "{error}");
    let secret = RedisStore::open("redis://:hunter2@127.0.0.1:1/").expect("valid");
    assert!(!format!("{secret:?}").contains("hunter2"));
}

/// The venv's Python (with the `redis` package), or `None` (after saying why) without it.
fn python() -> Option<PathBuf> {
    let python = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../.venv/bin/python"));
    let ok = Command::new(&python)
        .args(["-c", "import redis"])
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        assert!(
            !required(),
            "{} with the redis package (make test-idempotency's venv) (TWILIOSIG_REQUIRE_REDIS=1)",
            python.display()
        );
        eprintln!("skipped: no {} with the redis package", python.display());
        return None;
    }
    Some(python)
}

/// Runs `script` with the Python face's idempotency module (loaded from bindings-python's source: it
/// needs only the standard library and `redis`) as `idem`, a `RedisStore` over the server as `store`.
fn run_python(python: &PathBuf, port: u16, script: &str) -> String {
    let module = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../bindings-python/python/twilio_signature/idempotency.py"
    );
    let prelude = format!(
        "import importlib.util, sys, redis\n\
         spec = importlib.util.spec_from_file_location('idem', {module:?})\n\
         idem = importlib.util.module_from_spec(spec); sys.modules['idem'] = idem\n\
         spec.loader.exec_module(idem)\n\
         store = idem.RedisStore(redis.Redis(host='127.0.0.1', port={port}))\n"
    );
    let output = Command::new(python)
        .args(["-c", &(prelude + script)])
        .output()
        .expect("python runs");
    assert!(
        output.status.success(),
        "python failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).expect("UTF-8")
}

#[tokio::test]
async fn a_mixed_fleet_python_replays_what_tower_stored_and_tower_what_python_stored() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let Some(python) = python() else {
        return;
    };
    let store = RedisStore::connect(&redis.url()).await.expect("connect");
    let replay_key = [7u8; 32];

    // Stored by tower, claimed by Python: the same key, the whole response.
    let key = delivery_key(&replay_key, b"RC-mixed-1");
    assert_eq!(
        store.claim(&key, "tower", LEASE).await.expect("claim"),
        Claim::Ours
    );
    assert!(store
        .complete(&key, "tower", &redirect(), TTL)
        .await
        .expect("complete"));
    let seen = run_python(
        &python,
        redis.port,
        "key = idem.delivery_key(bytes([7] * 32), 'RC-mixed-1')\n\
         found = store.claim(key, 'python', 60.0)\n\
         print(key, found.status, found.lines(), found.body)\n",
    );
    assert_eq!(
        seen.trim(),
        format!(
            "{key} 302 [('location', '/next'), ('set-cookie', 'a=1'), ('set-cookie', 'b=2')] \
             b'<Response/>'"
        )
    );

    // Stored by Python, claimed by tower.
    let printed = run_python(
        &python,
        redis.port,
        "key = idem.delivery_key(bytes([7] * 32), 'RC-mixed-2')\n\
         assert store.claim(key, 'python', 60.0) is idem.Claim.OURS\n\
         response = idem.StoredResponse.of(200, [('Content-Type', 'text/xml'), ('X-Note', 'caf\\xe9'), \
         ('Date', 'today')], b'<Response><Say>hi</Say></Response>')\n\
         assert store.complete(key, 'python', response)\n\
         print(key)\n",
    );
    let key = delivery_key(&replay_key, b"RC-mixed-2");
    assert_eq!(printed.trim(), key);
    let Claim::Done(stored) = store.claim(&key, "tower", LEASE).await.expect("claim") else {
        panic!("Python's stored response");
    };
    assert_eq!(stored.status(), StatusCode::OK);
    let lines: Vec<(&str, &[u8])> = stored
        .headers()
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_bytes()))
        .collect();
    assert_eq!(
        lines,
        [("content-type", &b"text/xml"[..]), ("x-note", b"caf\xe9")]
    );
    assert_eq!(
        stored.body().as_ref(),
        b"<Response><Say>hi</Say></Response>"
    );
}
