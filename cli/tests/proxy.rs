//! `twsig proxy` as a real process (the built binary) in front of real apps that verify nothing: a
//! Python `http.server` app and a Node `node:http` app (cli/tests/proxy/), on loopback. Each app records
//! what it received, so a test can prove that a refused request never reached it.

#![allow(clippy::panic, clippy::unwrap_used)] // test helpers outside #[test] functions

#[path = "proxy/support.rs"]
mod proxy_support;

use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use proxy_support::{
    fresh_port, header_values, http, received, sign_form, sign_json, start_app, App, Proxy, TOKEN,
};

const FORM: &[u8] = b"AccountSid=AC123&Body=Hello+there&From=%2B15557654321&To=%2B15551234567";
const FORM_TYPE: &str = "application/x-www-form-urlencoded";

/// The proxy in front of the app on `app_port`, verifying `https://example.com` + the request target.
fn behind(app_port: u16, extra: &[&str]) -> Proxy {
    let upstream = format!("http://127.0.0.1:{app_port}");
    let mut args = vec!["--upstream", &upstream, "--base-url", "https://example.com"];
    args.extend_from_slice(extra);
    Proxy::start(&args)
}

/// A form POST with `signature` through the proxy on `port`.
fn post_form(port: u16, target: &str, signature: &str, body: &[u8]) -> proxy_support::Response {
    http(
        port,
        "POST",
        target,
        &[
            ("Content-Type", FORM_TYPE),
            ("X-Twilio-Signature", signature),
        ],
        body,
    )
}

/// A signed SMS webhook, a spoofed X-Twilio-Verified and hop-by-hop headers: the app gets the request
/// byte for byte, with the proxy's X-Twilio-Verified only and no hop-by-hop header.
fn signed_form_reaches(app: App) {
    let (_app, app_port) = start_app(app);
    let proxy = behind(app_port, &[]);
    let target = "/sms?a=1&b=%20x";
    let signature = sign_form(&format!("https://example.com{target}"), FORM);
    let response = http(
        proxy.port,
        "POST",
        target,
        &[
            ("Content-Type", FORM_TYPE),
            ("X-Twilio-Signature", &signature),
            ("X-Twilio-Verified", "secret=9; candidate=as-given"),
            ("X_Twilio_Verified", "key=KS9; secret=9; candidate=as-given"),
            ("X-Custom", "kept as is"),
            ("Keep-Alive", "timeout=5"),
            ("Connection", "close, X-Hop"),
            ("X-Hop", "dropped"),
        ],
        FORM,
    );
    assert_eq!(response.status, 200, "{response:?}\n{}", proxy.log());
    // The app's own response header comes back.
    assert_eq!(response.header("x-upstream"), Some(app.name()));
    let seen = received(app_port);
    assert_eq!(seen.len(), 1, "{seen:?}");
    let seen = &seen[0];
    assert_eq!(seen["method"], "POST");
    assert_eq!(seen["target"], target);
    assert_eq!(seen.body(), FORM);
    assert_eq!(
        header_values(seen, "x-twilio-verified"),
        ["secret=0; candidate=as-given"],
        "the client's copy is removed, the proxy's is added"
    );
    assert!(
        header_values(seen, "x_twilio_verified").is_empty(),
        "the underscore spelling CGI servers read as the same variable is removed too"
    );
    assert_eq!(header_values(seen, "x-twilio-signature"), [signature]);
    assert_eq!(header_values(seen, "content-type"), [FORM_TYPE]);
    assert_eq!(header_values(seen, "x-custom"), ["kept as is"]);
    for hop in ["keep-alive", "x-hop"] {
        assert!(header_values(seen, hop).is_empty(), "{hop} forwarded");
    }
    assert_eq!(
        header_values(seen, "content-length"),
        [FORM.len().to_string()]
    );
    // The names the client wrote, in its case and order; the proxy's own header last (hyper writes it
    // in the case of the client's copy it replaced).
    let names: Vec<&str> = seen["headers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|pair| pair[0].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "Host",
            "Content-Length",
            "Content-Type",
            "X-Twilio-Signature",
            "X-Custom",
            "X-Twilio-Verified"
        ]
    );
    let log = proxy.log();
    assert!(
        log.contains("\"POST /sms?a=1&b=%20x\" 200 forwarded reason=ok")
            && log.contains("verified=\"secret=0; candidate=as-given\""),
        "{log}"
    );
}

#[test]
fn a_signed_form_reaches_a_python_app_with_x_twilio_verified() {
    signed_form_reaches(App::Python);
}

#[test]
fn a_signed_form_reaches_a_node_app_with_x_twilio_verified() {
    signed_form_reaches(App::Node);
}

#[test]
fn a_json_webhook_signed_with_body_sha256_is_forwarded() {
    for app in [App::Python, App::Node] {
        let (_app, app_port) = start_app(app);
        let proxy = behind(app_port, &[]);
        let body = br#"{"event":"message.delivered","sid":"SM123"}"#;
        let (url, signature) = sign_json("https://example.com/events", body);
        let target = url.trim_start_matches("https://example.com");
        let response = http(
            proxy.port,
            "POST",
            target,
            &[
                ("Content-Type", "application/json"),
                ("X-Twilio-Signature", &signature),
            ],
            body,
        );
        assert_eq!(response.status, 200, "{response:?}\n{}", proxy.log());
        let seen = received(app_port);
        assert_eq!(seen.len(), 1);
        assert_eq!(seen[0]["target"], target);
        assert_eq!(seen[0].body(), body);
        assert_eq!(
            header_values(&seen[0], "x-twilio-verified"),
            ["secret=0; candidate=as-given"]
        );
    }
}

#[test]
fn refused_requests_never_reach_the_app() {
    let (_app, app_port) = start_app(App::Node);
    let proxy = behind(app_port, &[]);
    let signature = sign_form("https://example.com/sms", FORM);
    // Forged: a signature made with another token.
    let forged = proxy_support::sign_form_with(b"not the token", "https://example.com/sms", FORM);
    let response = post_form(proxy.port, "/sms", &forged, FORM);
    assert_eq!(response.status, 403);
    // Unsigned.
    let response = http(
        proxy.port,
        "POST",
        "/sms",
        &[("Content-Type", FORM_TYPE)],
        FORM,
    );
    assert_eq!(response.status, 400);
    // A captured signed form re-sent as multipart: the body still verifies as a form, but the app would
    // parse it by its Content-Type.
    let response = http(
        proxy.port,
        "POST",
        "/sms",
        &[
            ("Content-Type", "multipart/form-data; boundary=B"),
            ("X-Twilio-Signature", &signature),
        ],
        FORM,
    );
    assert_eq!(response.status, 415, "{response:?}");
    // Signed for another body.
    let response = post_form(
        proxy.port,
        "/sms",
        &signature,
        b"AccountSid=AC123&Body=Hello+there&From=%2B19995550000&To=%2B15551234567",
    );
    assert_eq!(response.status, 403);
    assert!(received(app_port).is_empty(), "{:?}", received(app_port));

    let log = proxy.log();
    for expected in [
        "403 refused reason=invalid_signature",
        "400 refused reason=missing_signature",
        "415 refused reason=unsupported_content_type",
        "twilio webhook refused: 403",
        "twilio webhook refused: 415 unsupported content type",
        "url=https://example.com/sms",
    ] {
        assert!(log.contains(expected), "{expected:?} not in\n{log}");
    }
    // One line per request (plus the start-up line): the refusal is part of the request's line.
    assert_eq!(log.lines().count(), 5, "{log}");
}

#[test]
fn a_second_host_header_is_400_and_connect_405_and_neither_reaches_the_app() {
    let (_app, app_port) = start_app(App::Python);
    let proxy = behind(app_port, &[]);
    let signature = sign_form("https://example.com/sms", FORM);
    // Validly signed: only the second Host line is wrong (the helper sends the first).
    let response = http(
        proxy.port,
        "POST",
        "/sms",
        &[
            ("Host", "admin.internal"),
            ("Content-Type", FORM_TYPE),
            ("X-Twilio-Signature", &signature),
        ],
        FORM,
    );
    assert_eq!(response.status, 400, "{response:?}");
    assert!(response.text().contains("more than one Host header"));
    let response = http(
        proxy.port,
        "CONNECT",
        "example.com:443",
        &[("X-Twilio-Signature", &signature)],
        b"",
    );
    assert_eq!(response.status, 405, "{response:?}");
    assert!(received(app_port).is_empty(), "{:?}", received(app_port));
    let log = proxy.log();
    assert!(
        log.contains("400 refused reason=bad_request") && log.contains("405 refused"),
        "{log}"
    );
    // The same webhook with one Host is forwarded.
    assert_eq!(post_form(proxy.port, "/sms", &signature, FORM).status, 200);
}

#[test]
fn a_body_over_the_limit_is_413_and_never_forwarded() {
    let (_app, app_port) = start_app(App::Python);
    let proxy = behind(app_port, &[]);
    let signature = sign_form("https://example.com/sms", FORM);
    // 2 MiB declared: refused before the body is read, so only the head is sent.
    let response = proxy_support::http_head_only(
        proxy.port,
        "POST /sms HTTP/1.1",
        &[
            ("Content-Type", FORM_TYPE),
            ("X-Twilio-Signature", &signature),
            ("Content-Length", "2097152"),
        ],
    );
    assert_eq!(response.status, 413, "{response:?}");
    // A smaller limit, a body just over it, sent whole.
    let proxy = behind(app_port, &["--body-limit", "64"]);
    let body = vec![b'a'; 65];
    let signature = sign_form("https://example.com/sms", &body);
    let response = post_form(proxy.port, "/sms", &signature, &body);
    assert_eq!(response.status, 413);
    assert!(received(app_port).is_empty());
    assert!(proxy.log().contains("413 refused reason=body_too_large"));
}

/// A keep-alive upstream written by hand: answers every request `200 ok` and, when `close_after` is
/// set, closes the connection right after each answer (an upstream whose keep-alive timeout is shorter
/// than the proxy's wait between requests). Returns its port and how many connections it accepted.
fn keep_alive_upstream(close_after: bool) -> (u16, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let accepted = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&accepted);
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            counter.fetch_add(1, Ordering::SeqCst);
            std::thread::spawn(move || {
                let mut pending = Vec::new();
                let mut buffer = [0u8; 4096];
                loop {
                    // One request: the head, then the body its Content-Length declares.
                    let complete = |data: &[u8]| {
                        let end = data.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
                        let head = String::from_utf8_lossy(&data[..end]).to_ascii_lowercase();
                        let length: usize = head
                            .lines()
                            .find_map(|l| l.strip_prefix("content-length:"))
                            .map_or(0, |v| v.trim().parse().unwrap());
                        (data.len() >= end + length).then_some(end + length)
                    };
                    let used = loop {
                        if let Some(used) = complete(&pending) {
                            break used;
                        }
                        match stream.read(&mut buffer) {
                            Ok(0) | Err(_) => return,
                            Ok(n) => pending.extend_from_slice(&buffer[..n]),
                        }
                    };
                    pending.drain(..used);
                    let answer = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
                    if stream.write_all(answer).is_err() || close_after {
                        return;
                    }
                }
            });
        }
    });
    (port, accepted)
}

#[test]
fn upstream_connections_are_kept_alive_and_one_the_upstream_closed_costs_no_request() {
    let signature = sign_form("https://example.com/sms", FORM);
    let threads = std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get);
    // Reused: each of the proxy's threads opens one connection for twenty requests in turn.
    let (port, accepted) = keep_alive_upstream(false);
    let proxy = behind(port, &[]);
    for _ in 0..20 {
        let response = post_form(proxy.port, "/sms", &signature, FORM);
        assert_eq!(response.status, 200, "{response:?}\n{}", proxy.log());
    }
    let opened = accepted.load(Ordering::SeqCst);
    assert!(
        (1..=threads).contains(&opened),
        "{opened} upstream connections for 20 requests on {threads} threads"
    );
    // Closed by the upstream after each answer: the next request goes on a new connection, never a
    // 502 for the closed one.
    let (port, accepted) = keep_alive_upstream(true);
    let proxy = behind(port, &[]);
    for _ in 0..20 {
        let response = post_form(proxy.port, "/sms", &signature, FORM);
        assert_eq!(response.status, 200, "{response:?}\n{}", proxy.log());
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(accepted.load(Ordering::SeqCst), 20);
}

#[test]
fn an_upstream_that_is_down_is_502_and_one_that_is_slow_504() {
    let down = fresh_port();
    let proxy = behind(down, &[]);
    let signature = sign_form("https://example.com/sms", FORM);
    let response = post_form(proxy.port, "/sms", &signature, FORM);
    assert_eq!(response.status, 502, "{response:?}");
    let log = proxy.log();
    assert!(
        log.contains("502 upstream_error reason=upstream_unavailable")
            && log.contains(&format!("upstream 127.0.0.1:{down} unavailable")),
        "{log}"
    );

    let (_app, app_port) = start_app(App::Python);
    let proxy = behind(app_port, &["--upstream-timeout", "0.5"]);
    let signature = sign_form("https://example.com/slow?ms=3000", FORM);
    let started = std::time::Instant::now();
    let response = post_form(proxy.port, "/slow?ms=3000", &signature, FORM);
    assert_eq!(response.status, 504, "{response:?}");
    assert!(started.elapsed() < std::time::Duration::from_millis(2500));
    assert!(proxy
        .log()
        .contains("504 upstream_error reason=upstream_timeout"));
}

#[test]
fn sigterm_lets_the_request_in_flight_finish_and_refuses_new_connections() {
    let (_app, app_port) = start_app(App::Python);
    let mut proxy = behind(app_port, &[]);
    let port = proxy.port;
    let slow = std::thread::spawn(move || {
        let signature = sign_form("https://example.com/slow?ms=1500", FORM);
        post_form(port, "/slow?ms=1500", &signature, FORM)
    });
    // The request is at the app (it records before sleeping) when the signal comes.
    proxy_support::wait_until(|| received(app_port).len() == 1);
    proxy.signal("TERM");
    proxy_support::wait_until(|| proxy.log().contains("shutting down"));
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", port)).is_err(),
        "a new connection was accepted after SIGTERM"
    );
    let response = slow.join().expect("the slow request");
    assert_eq!(response.status, 200, "{response:?}");
    let status = proxy.wait();
    assert_eq!(status.code(), Some(0));
    let log = proxy.log();
    assert!(
        log.contains("\"POST /slow?ms=1500\" 200 forwarded")
            && log.contains("shut down: every request in flight"),
        "{log}"
    );
}

#[test]
fn json_log_lines() {
    let (_app, app_port) = start_app(App::Node);
    let proxy = behind(app_port, &["--log-format", "json"]);
    let signature = sign_form("https://example.com/sms", FORM);
    let ok = post_form(proxy.port, "/sms", &signature, FORM);
    assert_eq!(ok.status, 200);
    let refused = post_form(proxy.port, "/sms?x='q'", &signature, FORM);
    assert_eq!(refused.status, 403, "{refused:?}");
    let lines: Vec<serde_json::Value> = proxy
        .log()
        .lines()
        .map(|line| serde_json::from_str(line).expect("every line is JSON"))
        .collect();
    assert_eq!(lines.len(), 3, "{lines:?}");
    // The start-up line, then the two requests' lines in either order: each proxy thread writes its
    // own lines in batches, and the two requests may have been served by different threads.
    let line = |outcome: &str| {
        let found: Vec<_> = lines.iter().filter(|l| l["outcome"] == outcome).collect();
        assert_eq!(found.len(), 1, "one {outcome} line: {lines:?}");
        found[0]
    };
    let forwarded = line("forwarded");
    assert_eq!(forwarded["status"], 200);
    assert_eq!(forwarded["verified"], "secret=0; candidate=as-given");
    assert!(forwarded["upstream_ms"].as_f64().is_some());
    let refused = line("refused");
    assert_eq!(refused["target"], "/sms?x='q'");
    assert!(refused["detail"]
        .as_str()
        .is_some_and(|d| d.starts_with("twilio webhook refused: 403")));
}

#[test]
fn bad_usage_is_exit_2_and_a_secret_is_never_an_argument() {
    let run = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_twsig"))
            .arg("proxy")
            .args(args)
            .env("TWILIO_AUTH_TOKEN", TOKEN)
            .output()
            .expect("twsig runs")
    };
    let output = run(&["--listen", "127.0.0.1:0"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("no upstream"));
    let output = run(&[
        "--listen",
        "127.0.0.1:0",
        "--upstream",
        "https://127.0.0.1:1",
    ]);
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("not http://"));
    let output = run(&[
        "--listen",
        "127.0.0.1:0",
        "--upstream",
        "http://127.0.0.1:1",
        "--token",
        "hunter2-secret-value",
    ]);
    assert_eq!(output.status.code(), Some(2));
    assert!(!String::from_utf8_lossy(&output.stderr).contains("hunter2"));
    let output = run(&[
        "--listen",
        "127.0.0.1:0",
        "--upstream",
        "http://127.0.0.1:1",
        "--trusted-proxy",
        "10.0.0.0/40",
    ]);
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("10.0.0.0/40"));
}

/// The value of the `/metrics` sample `series`, as written.
fn sample<'m>(metrics: &'m str, series: &str) -> &'m str {
    metrics
        .lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("{series} not in\n{metrics}"))
}

#[test]
fn the_admin_listener_answers_health_readiness_and_metrics() {
    let (app, app_port) = start_app(App::Python);
    let proxy = behind(app_port, &["--admin-listen", "127.0.0.1:0"]);
    let admin = proxy
        .admin_port
        .expect("the start-up line names the admin port");
    let health = http(admin, "GET", "/healthz", &[], b"");
    assert_eq!((health.status, health.text().as_str()), (200, "ok\n"));
    assert_eq!(http(admin, "GET", "/readyz", &[], b"").status, 200);

    let signature = sign_form("https://example.com/sms", FORM);
    assert_eq!(post_form(proxy.port, "/sms", &signature, FORM).status, 200);
    assert_eq!(
        post_form(proxy.port, "/sms", &signature, b"Body=forged").status,
        403
    );
    assert_eq!(http(proxy.port, "POST", "/sms", &[], FORM).status, 400);

    let metrics = http(admin, "GET", "/metrics", &[], b"");
    assert_eq!(metrics.status, 200);
    assert!(metrics
        .header("content-type")
        .is_some_and(|t| t.starts_with("text/plain; version=0.0.4")));
    let metrics = metrics.text();
    let requests = |outcome: &str, reason: &str| {
        sample(
            &metrics,
            &format!("twsig_proxy_requests_total{{outcome=\"{outcome}\",reason=\"{reason}\"}}"),
        )
    };
    assert_eq!(requests("forwarded", "ok"), "1");
    assert_eq!(requests("refused", "invalid_signature"), "1");
    assert_eq!(requests("refused", "missing_signature"), "1");
    assert_eq!(requests("upstream_error", "upstream_unavailable"), "0");
    assert_eq!(
        sample(&metrics, "twsig_proxy_verify_duration_seconds_count"),
        "3",
        "{metrics}\n{}",
        proxy.log()
    );
    assert_eq!(
        sample(&metrics, "twsig_proxy_upstream_duration_seconds_count"),
        "1"
    );
    assert_eq!(
        sample(
            &metrics,
            "twsig_proxy_upstream_duration_seconds_bucket{le=\"+Inf\"}"
        ),
        "1"
    );
    let upstream_seconds: f64 = sample(&metrics, "twsig_proxy_upstream_duration_seconds_sum")
        .parse()
        .expect("a number");
    assert!(upstream_seconds > 0.0);

    // The app stops: not ready, and said why.
    drop(app);
    let ready = http(admin, "GET", "/readyz", &[], b"");
    assert_eq!(ready.status, 503);
    assert!(
        ready
            .text()
            .contains(&format!("upstream 127.0.0.1:{app_port} unreachable")),
        "{}",
        ready.text()
    );
    assert_eq!(http(admin, "GET", "/healthz", &[], b"").status, 200);
    assert_eq!(http(admin, "GET", "/nothing", &[], b"").status, 404);
}

#[test]
#[allow(clippy::too_many_lines)] // one proxy and two apps, every routing rule against them
fn a_config_file_routes_prefixes_to_upstreams_each_with_its_secrets() {
    let (_python, python_port) = start_app(App::Python);
    let (_node, node_port) = start_app(App::Node);
    let dir = std::env::temp_dir().join(format!("twsig-proxy-config-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let sms_token = dir.join("sms-token");
    let voice_secret = dir.join("voice-secret");
    std::fs::write(&sms_token, "sms route token\n").unwrap();
    std::fs::write(&voice_secret, "voice route shared key secret\n").unwrap();
    let config = dir.join("proxy.toml");
    std::fs::write(
        &config,
        format!(
            r#"
base_url = "https://example.com"
log_format = "text"

[[route]]
prefix = "/sms"
upstream = "http://127.0.0.1:{python_port}"
token_files = ["{}"]

[[route]]
prefix = "/voice/"
upstream = "http://127.0.0.1:{node_port}"
token_files = ["{}"]
key_id = "KS1"
"#,
            sms_token.display(),
            voice_secret.display()
        ),
    )
    .unwrap();
    // Every route has its own secrets: no TWILIO_AUTH_TOKEN needed.
    let proxy = Proxy::start_with(&["--config", config.to_str().unwrap()], &[]);

    let signature =
        proxy_support::sign_form_with(b"sms route token", "https://example.com/sms/status", FORM);
    let response = post_form(proxy.port, "/sms/status", &signature, FORM);
    assert_eq!(response.status, 200, "{}", proxy.log());
    assert_eq!(response.header("x-upstream"), Some("python"));

    // The voice route takes only its SharedKey secret (HMAC-SHA256, key KS1).
    let settings = "key=KS1,algorithm=HMAC_SHA256";
    let voice_url = "https://example.com/voice/answer";
    let sms_signed = proxy_support::sign_form_with(b"sms route token", voice_url, FORM);
    assert_eq!(
        post_form(proxy.port, "/voice/answer", &sms_signed, FORM).status,
        403
    );
    let voice_signed = twilio_signature::sign(
        b"voice route shared key secret",
        &twilio_signature::Request::post(voice_url, FORM).settings(Some(settings.as_bytes())),
    )
    .unwrap();
    let response = http(
        proxy.port,
        "POST",
        "/voice/answer",
        &[
            ("Content-Type", FORM_TYPE),
            ("X-Twilio-Signature", voice_signed.as_str()),
            ("X-Twilio-Webhooks-Signature-Settings", settings),
        ],
        FORM,
    );
    assert_eq!(response.status, 200, "{}", proxy.log());
    assert_eq!(response.header("x-upstream"), Some("node"));
    let seen = received(node_port);
    assert_eq!(seen.len(), 1);
    assert_eq!(
        header_values(&seen[0], "x-twilio-verified"),
        ["key=KS1; secret=0; candidate=as-given"]
    );

    // No route: 404, forwarded nowhere. A prefix matches whole segments only.
    for path in ["/other", "/smsx"] {
        let response = post_form(proxy.port, path, &signature, FORM);
        assert_eq!(response.status, 404, "{path}");
    }
    assert_eq!(received(python_port).len(), 1);
    assert!(proxy.log().contains("404 no_route reason=no_route"));

    // Letter case does not move a path to another route: /VOICE/answer is the voice route's (app
    // servers that route without case would run its handler), so the sms token does not pass there.
    let upper_url = "https://example.com/VOICE/answer";
    let sms_signed = proxy_support::sign_form_with(b"sms route token", upper_url, FORM);
    assert_eq!(
        post_form(proxy.port, "/VOICE/answer", &sms_signed, FORM).status,
        403
    );
    // A path an app could resolve elsewhere is refused before any route is chosen: 400, never sent.
    for path in [
        "/sms/../voice/answer",
        "/sms/%2e%2e/voice/answer",
        "/sms%2Fstatus",
    ] {
        let signed = proxy_support::sign_form_with(
            b"sms route token",
            &format!("https://example.com{path}"),
            FORM,
        );
        let response = post_form(proxy.port, path, &signed, FORM);
        assert_eq!(response.status, 400, "{path}: {}", proxy.log());
    }
    assert_eq!(received(python_port).len(), 1);
    assert_eq!(received(node_port).len(), 1);
    assert!(proxy.log().contains("ambiguous path"), "{}", proxy.log());

    // A misspelt key is an error at start-up, not a setting silently dropped.
    let bad = dir.join("bad.toml");
    std::fs::write(&bad, "listen = \"127.0.0.1:0\"\nbody_limt = 10\n").unwrap();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_twsig"))
        .args(["proxy", "--config", bad.to_str().unwrap()])
        .env("TWILIO_AUTH_TOKEN", TOKEN)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("body_limt"),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_client_that_stops_sending_its_body_is_cut_off_and_never_forwarded() {
    let (_app, app_port) = start_app(App::Python);
    let proxy = behind(app_port, &["--body-timeout", "0.5"]);
    let signature = sign_form("https://example.com/sms", FORM);
    let started = std::time::Instant::now();
    // The head declares the whole form; only its first 10 bytes are sent, then nothing.
    let response = proxy_support::http_partial_body(
        proxy.port,
        "POST /sms HTTP/1.1",
        &[
            ("Content-Type", FORM_TYPE),
            ("X-Twilio-Signature", &signature),
            ("Content-Length", &FORM.len().to_string()),
        ],
        &FORM[..10],
    );
    assert_eq!(response.status, 400, "{response:?}");
    let waited = started.elapsed();
    assert!(
        waited >= std::time::Duration::from_millis(450)
            && waited < std::time::Duration::from_secs(10),
        "{waited:?}"
    );
    assert!(received(app_port).is_empty());
    let log = proxy.log();
    assert!(
        log.contains("400 refused reason=bad_request")
            && log.contains("the body could not be read"),
        "{log}"
    );
}

#[test]
fn during_key_rotation_x_twilio_verified_names_the_secret_that_matched() {
    let (_app, app_port) = start_app(App::Python);
    let dir = std::env::temp_dir().join(format!("twsig-proxy-rotation-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (primary, secondary) = (dir.join("primary"), dir.join("secondary"));
    std::fs::write(&primary, "the new auth token\n").unwrap();
    std::fs::write(&secondary, "the old auth token\n").unwrap();
    let upstream = format!("http://127.0.0.1:{app_port}");
    let proxy = Proxy::start_with(
        &[
            "--upstream",
            &upstream,
            "--base-url",
            "https://example.com:8443",
            "--token-file",
            primary.to_str().unwrap(),
            "--token-file",
            secondary.to_str().unwrap(),
        ],
        &[],
    );
    // Signed with the old token, for the URL without its port (Twilio's port toggle).
    let signature =
        proxy_support::sign_form_with(b"the old auth token", "https://example.com/sms", FORM);
    assert_eq!(post_form(proxy.port, "/sms", &signature, FORM).status, 200);
    let seen = received(app_port);
    assert_eq!(
        header_values(&seen[0], "x-twilio-verified"),
        ["secret=1; candidate=port-toggled"]
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_chunked_body_reaches_the_app_whole_with_its_length() {
    let (_app, app_port) = start_app(App::Node);
    let proxy = behind(app_port, &[]);
    let signature = sign_form("https://example.com/sms", FORM);
    let (first, second) = FORM.split_at(20);
    let mut body = Vec::new();
    for chunk in [first, second] {
        body.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
        body.extend_from_slice(chunk);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(b"0\r\n\r\n");
    let response = proxy_support::http_partial_body(
        proxy.port,
        "POST /sms HTTP/1.1",
        &[
            ("Content-Type", FORM_TYPE),
            ("X-Twilio-Signature", &signature),
            ("Transfer-Encoding", "chunked"),
            // A conflicting length (request smuggling's raw material): the chunking wins, and the app
            // never sees this value.
            ("Content-Length", "3"),
        ],
        &body,
    );
    assert_eq!(response.status, 200, "{response:?}");
    let seen = received(app_port);
    assert_eq!(seen[0].body(), FORM);
    // Transfer-Encoding is hop-by-hop: the app gets the body with its true length instead.
    assert!(header_values(&seen[0], "transfer-encoding").is_empty());
    assert_eq!(
        header_values(&seen[0], "content-length"),
        [FORM.len().to_string()]
    );
}

#[test]
fn without_a_secret_the_proxy_does_not_start() {
    let start = |token: Option<&str>| {
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_twsig"));
        command
            .args([
                "proxy",
                "--listen",
                "127.0.0.1:0",
                "--upstream",
                "http://127.0.0.1:1",
            ])
            .env_remove("TWILIO_AUTH_TOKEN");
        if let Some(token) = token {
            command.env("TWILIO_AUTH_TOKEN", token);
        }
        let output = command.output().unwrap();
        assert_eq!(output.status.code(), Some(2));
        String::from_utf8_lossy(&output.stderr).into_owned()
    };
    assert!(start(None).contains("no secret"));
    assert!(start(Some(" \t\x0b ")).contains("empty or only whitespace"));
}

#[test]
fn a_twilio_retry_gets_the_first_response_and_the_app_runs_once() {
    let (_app, app_port) = start_app(App::Node);
    let proxy = behind(app_port, &[]);
    let signature = sign_form("https://example.com/sms", FORM);
    let delivery = |token: &str| {
        http(
            proxy.port,
            "POST",
            "/sms",
            &[
                ("Content-Type", FORM_TYPE),
                ("X-Twilio-Signature", &signature),
                ("I-Twilio-Idempotency-Token", token),
            ],
            FORM,
        )
    };
    let first = delivery("delivery-1");
    assert_eq!(first.status, 200);
    assert_eq!(first.header("idempotent-replayed"), None);
    let retry = delivery("delivery-1");
    assert_eq!(retry.status, 200, "{retry:?}");
    assert_eq!(retry.header("idempotent-replayed"), Some("true"));
    assert_eq!(retry.header("x-upstream"), Some("node"));
    assert_eq!(retry.body, first.body);
    assert_eq!(received(app_port).len(), 1, "the retry reached the app");
    // Another delivery of the same content (a new token) runs again.
    assert_eq!(delivery("delivery-2").header("idempotent-replayed"), None);
    assert_eq!(received(app_port).len(), 2);
    let log = proxy.log();
    assert!(
        log.contains("\"POST /sms\" 200 retry reason=replayed"),
        "{log}"
    );
    // One line per request: no second line for the replay.
    assert_eq!(log.lines().count(), 4, "{log}");
}
