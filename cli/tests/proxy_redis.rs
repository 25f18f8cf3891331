//! `twsig proxy --redis`: two proxy instances share answered retries through a real redis-server the
//! test starts on a free loopback port (no persistence). A retry sent to the other instance gets the
//! first delivery's response, and the app ran once; `/readyz` says when Redis is down.
//!
//! Needs `redis-server`. `make test-proxy` installs it (mk/idempotency.mk's redis-server target) and sets
//! TWSIG_PROXY_REQUIRE_REDIS=1, making a missing redis-server a failure; elsewhere the test says it
//! is skipped.

#![allow(clippy::panic)]

#[path = "proxy/support.rs"]
mod proxy_support;

use std::process::{Command, Stdio};

use proxy_support::{
    fresh_port, http, received, sign_form, start_app, wait_until, App, Killed, Proxy,
};

const FORM: &[u8] = b"AccountSid=AC123&Body=Hello&From=%2B15557654321&To=%2B15551234567";

fn start_redis(port: u16) -> Option<Killed> {
    let dir = std::env::temp_dir().join(format!("twsig-proxy-redis-{}", std::process::id()));
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
    match spawned {
        Ok(child) => {
            let child = Killed(child);
            wait_until(|| std::net::TcpStream::connect(("127.0.0.1", port)).is_ok());
            Some(child)
        }
        Err(error) => {
            assert!(
                std::env::var_os("TWSIG_PROXY_REQUIRE_REDIS").is_none(),
                "redis-server: {error} (make test-proxy installs it)"
            );
            eprintln!("SKIPPED: no redis-server ({error}); `make test-proxy` installs it and runs this test");
            None
        }
    }
}

#[test]
fn a_retry_to_another_instance_gets_the_first_response_through_redis() {
    let redis_port = fresh_port();
    let Some(redis) = start_redis(redis_port) else {
        return;
    };
    let (_app, app_port) = start_app(App::Python);
    let upstream = format!("http://127.0.0.1:{app_port}");
    let redis_url = format!("redis://127.0.0.1:{redis_port}/");
    let args = [
        "--upstream",
        &upstream,
        "--base-url",
        "https://example.com",
        "--redis",
        &redis_url,
        "--admin-listen",
        "127.0.0.1:0",
    ];
    let first_instance = Proxy::start(&args);
    let second_instance = Proxy::start(&args);

    let signature = sign_form("https://example.com/sms", FORM);
    let delivery = |port: u16| {
        http(
            port,
            "POST",
            "/sms",
            &[
                ("Content-Type", "application/x-www-form-urlencoded"),
                ("X-Twilio-Signature", &signature),
                ("I-Twilio-Idempotency-Token", "retried-delivery"),
            ],
            FORM,
        )
    };
    let first = delivery(first_instance.port);
    assert_eq!(first.status, 200, "{}", first_instance.log());
    let retry = delivery(second_instance.port);
    assert_eq!(retry.status, 200, "{}", second_instance.log());
    assert_eq!(retry.header("idempotent-replayed"), Some("true"));
    assert_eq!(retry.header("x-upstream"), Some("python"));
    assert_eq!(retry.body, first.body);
    assert_eq!(received(app_port).len(), 1, "the app ran twice");
    assert!(second_instance.log().contains("200 retry reason=replayed"));

    let admin = second_instance.admin_port.expect("admin port");
    assert_eq!(http(admin, "GET", "/readyz", &[], b"").status, 200);
    // Redis stops: not ready, and said why; a webhook is still forwarded (the store-failure policy).
    drop(redis);
    let ready = http(admin, "GET", "/readyz", &[], b"");
    assert_eq!(ready.status, 503);
    assert!(ready.text().contains("retry store"), "{}", ready.text());
    let signature = sign_form("https://example.com/sms", b"Body=while+redis+is+down");
    let response = http(
        second_instance.port,
        "POST",
        "/sms",
        &[
            ("Content-Type", "application/x-www-form-urlencoded"),
            ("X-Twilio-Signature", &signature),
            ("I-Twilio-Idempotency-Token", "during-the-outage"),
        ],
        b"Body=while+redis+is+down",
    );
    assert_eq!(response.status, 200, "{}", second_instance.log());
    assert_eq!(received(app_port).len(), 2);
    assert!(
        second_instance.log().contains("retry store failed"),
        "{}",
        second_instance.log()
    );
}

#[test]
fn a_redis_password_is_never_taken_from_the_command_line() {
    let output = Command::new(env!("CARGO_BIN_EXE_twsig"))
        .args([
            "proxy",
            "--listen",
            "127.0.0.1:0",
            "--upstream",
            "http://127.0.0.1:1",
            "--redis",
            "redis://user:hunter2-redis@127.0.0.1:6379/0",
        ])
        .env("TWILIO_AUTH_TOKEN", proxy_support::TOKEN)
        .output()
        .expect("twsig runs");
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("TWSIG_REDIS_URL") && !stderr.contains("hunter2"),
        "{stderr}"
    );
}
