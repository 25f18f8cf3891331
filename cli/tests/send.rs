//! `send` against a real HTTP server on loopback that checks the signature with the core.

// Helpers outside `#[test]` functions unwrap too: a test that cannot read its inputs should fail loudly.
#![allow(clippy::unwrap_used)]

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::thread::JoinHandle;

use common::{twsig, Run, Token};
use twilio_signature::{verify, Request};

const TOKEN: &str = "send-test-token";

/// What the server received and decided.
#[derive(Debug)]
struct Seen {
    target: String,
    headers: Vec<(String, String)>,
    body: String,
    verdict: Result<(), twilio_signature::Error>,
}

impl Seen {
    fn header(&self, name: &str) -> Option<&str> {
        common::header(&self.headers, name)
    }
}

/// A one-request server: verifies against `public_url` (or the URL it was reached at) and answers
/// 200 with TwiML, or 403.
fn serve_once(public_url: Option<&str>) -> (u16, JoinHandle<Seen>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let public_url = public_url.map(str::to_owned);
    let handle = std::thread::spawn(move || {
        let (stream, _) = listener.accept().unwrap();
        let mut reader = BufReader::new(stream);
        let mut line = String::new();
        reader.read_line(&mut line).unwrap();
        let target = line.split(' ').nth(1).unwrap().to_owned();
        let mut headers = Vec::new();
        loop {
            let mut line = String::new();
            reader.read_line(&mut line).unwrap();
            let line = line.trim_end();
            if line.is_empty() {
                break;
            }
            let (name, value) = line.split_once(':').unwrap();
            headers.push((name.trim().to_owned(), value.trim().to_owned()));
        }
        let length: usize = headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
            .map(|(_, v)| v.parse().unwrap())
            .unwrap();
        let mut body = vec![0; length];
        reader.read_exact(&mut body).unwrap();
        let url = public_url.map_or_else(
            || format!("http://127.0.0.1:{port}{target}"),
            |base| format!("{base}{}", target.find('?').map_or("", |i| &target[i..])),
        );
        let get = |name: &str| {
            headers
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.as_bytes())
        };
        let request = Request::post(&url, &body);
        let request = match get("X-Twilio-Signature") {
            Some(signature) => request.signature(signature),
            None => request,
        }
        .settings(get("X-Twilio-Webhooks-Signature-Settings"));
        let verdict = verify(TOKEN.as_bytes(), &request).map(|_| ());
        let answer = match verdict {
            Ok(()) => "HTTP/1.1 200 OK\r\nContent-Type: text/xml\r\nContent-Length: 22\r\n\r\n<Response></Response>\n".to_owned(),
            Err(e) => format!(
                "HTTP/1.1 403 Forbidden\r\nContent-Length: {}\r\n\r\n{}",
                e.message().len(),
                e.message()
            ),
        };
        let mut stream = reader.into_inner();
        stream.write_all(answer.as_bytes()).unwrap();
        Seen {
            target,
            headers,
            body: String::from_utf8(body).unwrap(),
            verdict,
        }
    });
    (port, handle)
}

fn send(port: u16, path: &str, extra: &[&str], token: &str) -> Run {
    let url = format!("http://127.0.0.1:{port}{path}");
    twsig(
        &[&["send", "--url", &url][..], extra].concat(),
        Token::Env(token),
        b"",
    )
}

#[test]
fn a_signed_sms_webhook_is_accepted() {
    let (port, server) = serve_once(None);
    let run = send(port, "/sms", &[], TOKEN);
    let seen = server.join().unwrap();
    assert_eq!(seen.verdict, Ok(()));
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        run.stdout
            .starts_with("HTTP/1.1 200 OK\n<Response></Response>"),
        "{}",
        run.stdout
    );
    assert_eq!(seen.target, "/sms");
    assert_eq!(
        seen.header("Content-Type"),
        Some("application/x-www-form-urlencoded")
    );
    for field in [
        "MessageSid=SM",
        "AccountSid=AC",
        "From=%2B1",
        "To=%2B1",
        "Body=Hello+from+twsig",
        "NumMedia=0",
    ] {
        assert!(seen.body.contains(field), "{field}: {}", seen.body);
    }
}

#[test]
fn params_replace_the_defaults() {
    let (port, server) = serve_once(None);
    let run = send(
        port,
        "/sms?tenant=1",
        &[
            "--param",
            "Body=STOP now",
            "--param",
            "MediaUrl0=https://x/y",
        ],
        TOKEN,
    );
    let seen = server.join().unwrap();
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(seen.verdict, Ok(()));
    assert_eq!(seen.target, "/sms?tenant=1");
    assert!(seen.body.contains("Body=STOP+now"), "{}", seen.body);
    assert!(!seen.body.contains("Hello"), "{}", seen.body);
    assert!(
        seen.body.contains("MediaUrl0=https%3A%2F%2Fx%2Fy"),
        "{}",
        seen.body
    );
}

#[test]
fn a_forged_webhook_is_refused() {
    let (port, server) = serve_once(None);
    let run = send(port, "/sms", &[], "not-the-apps-token");
    let seen = server.join().unwrap();
    assert_eq!(
        seen.verdict,
        Err(twilio_signature::Error::SignatureMismatch)
    );
    assert_eq!(run.code, 1);
    assert!(
        run.stdout.starts_with("HTTP/1.1 403 Forbidden\n"),
        "{}",
        run.stdout
    );

    let (port, server) = serve_once(None);
    let run = send(
        port,
        "/sms",
        &["--signature", "AAAAAAAAAAAAAAAAAAAAAAAAAAA="],
        TOKEN,
    );
    assert_eq!(
        server.join().unwrap().verdict,
        Err(twilio_signature::Error::SignatureMismatch)
    );
    assert_eq!(run.code, 1);
}

#[test]
fn json_webhooks_carry_body_sha256_in_the_url() {
    let (port, server) = serve_once(None);
    let run = send(port, "/events", &["--json", r#"{"type":"test"}"#], TOKEN);
    let seen = server.join().unwrap();
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    assert_eq!(seen.verdict, Ok(()));
    assert!(
        seen.target.starts_with("/events?bodySHA256="),
        "{}",
        seen.target
    );
    assert_eq!(seen.header("Content-Type"), Some("application/json"));
    assert_eq!(seen.body, r#"{"type":"test"}"#);
}

#[test]
fn shared_key_and_a_public_url_behind_a_proxy() {
    let (port, server) = serve_once(Some("https://example.com/sms"));
    let run = send(
        port,
        "/sms",
        &["--sign-url", "https://example.com/sms", "--key-id", "KS1"],
        TOKEN,
    );
    let seen = server.join().unwrap();
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    assert_eq!(seen.verdict, Ok(()));
    assert_eq!(
        seen.header("X-Twilio-Webhooks-Signature-Settings"),
        Some("key=KS1,algorithm=HMAC_SHA256")
    );
    assert_eq!(seen.header("X-Twilio-Signature").map(str::len), Some(44));
}

#[test]
fn only_local_servers() {
    for url in [
        "http://example.com/sms",
        "http://192.0.2.1:5000/sms",
        "https://127.0.0.1/sms",
    ] {
        let run = twsig(&["send", "--url", url], Token::Env(TOKEN), b"");
        assert_eq!(run.code, 2, "{url}");
        assert_eq!(run.stderr.lines().count(), 1, "{}", run.stderr);
        assert!(run.stdout.is_empty());
    }
    let run = twsig(
        &["send", "--url", "http://example.com/sms"],
        Token::Env(TOKEN),
        b"",
    );
    assert!(
        run.stderr.contains("only talks to servers on this machine"),
        "{}",
        run.stderr
    );

    // Nothing listening: a clear error, not a hang.
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let run = send(port, "/sms", &[], TOKEN);
    assert_eq!(run.code, 2);
    assert!(run.stderr.contains("cannot connect"), "{}", run.stderr);
}

/// Reads one request's raw bytes (head and body) as they arrived on the wire, answers 200, and
/// returns them. The head ends at the first empty line, with or without CR, so a bare LF cannot hang it.
/// The raw head (request line and headers, up to the empty line) and the body, as received.
type RawRequest = (Vec<u8>, Vec<u8>);

fn capture_raw_request() -> (u16, JoinHandle<RawRequest>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let handle = std::thread::spawn(move || {
        let (mut stream, _) = listener.accept().unwrap();
        stream
            .set_read_timeout(Some(std::time::Duration::from_secs(10)))
            .unwrap();
        let mut raw = Vec::new();
        let mut byte = [0u8; 1];
        while !(raw.ends_with(b"\r\n\r\n") || raw.ends_with(b"\n\n")) {
            assert_eq!(stream.read(&mut byte).unwrap(), 1, "the head ended early");
            raw.push(byte[0]);
        }
        let head = String::from_utf8(raw.clone()).unwrap();
        let length: usize = head
            .lines()
            .find_map(|line| line.strip_prefix("Content-Length:"))
            .map(|v| v.trim().parse().unwrap())
            .unwrap();
        let mut body = vec![0; length];
        stream.read_exact(&mut body).unwrap();
        stream
            .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            .unwrap();
        (raw, body)
    });
    (port, handle)
}

#[test]
fn every_header_line_ends_with_crlf_on_the_wire() {
    for extra in [&[][..], &["--key-id", "KS1"], &["--json", r#"{"a":1}"#]] {
        let (port, server) = capture_raw_request();
        let run = send(port, "/sms", extra, TOKEN);
        let (head, body) = server.join().unwrap();
        assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
        // Every LF in the head follows a CR, and every CR precedes an LF.
        for (i, &b) in head.iter().enumerate() {
            if b == b'\n' {
                assert_eq!(head[i - 1], b'\r', "bare LF at byte {i}: {head:?}");
            }
            if b == b'\r' {
                assert_eq!(head.get(i + 1), Some(&b'\n'), "bare CR at byte {i}");
            }
        }
        assert!(head.ends_with(b"\r\n\r\n"), "{head:?}");
        let text = std::str::from_utf8(&head).unwrap();
        let lines: Vec<&str> = text.split("\r\n").collect();
        assert!(
            lines[0].starts_with("POST /sms") && lines[0].ends_with(" HTTP/1.1"),
            "{text}"
        );
        let names: Vec<&str> = lines[1..]
            .iter()
            .take_while(|l| !l.is_empty())
            .map(|l| l.split_once(": ").unwrap().0)
            .collect();
        for name in [
            "Host",
            "Content-Type",
            "X-Twilio-Signature",
            "Content-Length",
            "Connection",
        ] {
            assert!(names.contains(&name), "{name} missing: {text}");
        }
        assert_eq!(
            text.matches("\r\n").count(),
            names.len() + 2,
            "request line, one CRLF per header, the empty line: {text}"
        );
        assert_eq!(
            body.len(),
            text.lines()
                .find_map(|l| l.strip_prefix("Content-Length: "))
                .unwrap()
                .parse::<usize>()
                .unwrap()
        );
    }
}

#[test]
fn a_line_break_in_a_header_value_is_refused_before_connecting() {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let run = send(
        port,
        "/sms",
        &["--signature", "AAAAAAAAAAAAAAAAAAAAAAAAAAA=\r\nX-Evil: 1"],
        TOKEN,
    );
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(run.stderr.contains("line break"), "{}", run.stderr);
}

#[test]
fn extra_headers_reach_the_server_and_replace_defaults_by_name() {
    let (port, server) = serve_once(None);
    let run = send(
        port,
        "/sms",
        &[
            "-H",
            "I-Twilio-Idempotency-Token: 0f3b2c4e-retry-1",
            "--header",
            "X-Forwarded-For: 203.0.113.7",
            "-H",
            "X-Forwarded-For:10.0.0.1",
            "-H",
            "user-agent: my-test/2",
        ],
        TOKEN,
    );
    let seen = server.join().unwrap();
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    assert_eq!(seen.verdict, Ok(()));
    assert_eq!(
        seen.header("I-Twilio-Idempotency-Token"),
        Some("0f3b2c4e-retry-1")
    );
    // Repeated names are all sent, in order.
    let forwarded: Vec<&str> = common::header_values(&seen.headers, "X-Forwarded-For");
    assert_eq!(forwarded, ["203.0.113.7", "10.0.0.1"]);
    // A default of the same name is replaced, not sent twice.
    let agents: Vec<&str> = common::header_values(&seen.headers, "User-Agent");
    assert_eq!(agents, ["my-test/2"]);

    // A Content-Type of the caller's choosing (to check that an app refuses a form sent as
    // multipart): the signature still covers the same form.
    let (port, server) = serve_once(None);
    let run = send(
        port,
        "/sms",
        &["-H", "Content-Type: multipart/form-data; boundary=B"],
        TOKEN,
    );
    let seen = server.join().unwrap();
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    assert_eq!(
        seen.header("Content-Type"),
        Some("multipart/form-data; boundary=B")
    );
    assert_eq!(
        common::header_values(&seen.headers, "Content-Type").len(),
        1
    );
}

#[test]
fn bad_or_overriding_headers_are_refused_before_connecting() {
    // Nothing listens on the port: a refusal must come before any connection (exit 2, one line).
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    for (header, message) in [
        ("X-A: 1\r\nX-Evil: 1", "line break (CR or LF): refused"),
        ("X-A: 1\n", "line break (CR or LF): refused"),
        ("X-A: 1\r", "line break (CR or LF): refused"),
        ("X-A: \u{1b}[31m", "control character: refused"),
        ("no colon here", "expected 'Name: value'"),
        (": empty name", "is not an HTTP field name"),
        ("Bad Name: v", "is not an HTTP field name"),
        (
            "X-Twilio-Signature: AAAAAAAAAAAAAAAAAAAAAAAAAAA=",
            "use --signature",
        ),
        (
            "x-twilio-webhooks-signature-settings: key=K",
            "use --signature-settings",
        ),
        ("Host: example.com", "send writes them to frame the request"),
        ("Content-Length: 0", "send writes them to frame the request"),
        (
            "Transfer-Encoding: chunked",
            "send writes them to frame the request",
        ),
    ] {
        let run = send(port, "/sms", &["-H", header], TOKEN);
        assert_eq!(run.code, 2, "{header:?}: {}", run.stderr);
        assert!(run.stderr.contains(message), "{header:?}: {}", run.stderr);
        assert_eq!(run.stderr.lines().count(), 1, "{}", run.stderr);
        assert!(!run.stderr.contains("cannot connect"), "{}", run.stderr);
        assert!(run.stdout.is_empty(), "{}", run.stdout);
    }
}
