//! `send --websocket` against a real WebSocket server on loopback (tungstenite's server handshake),
//! which verifies the handshake's signature with the core before answering 101, or refuses it with
//! 403 (no upgrade).

// Helpers outside `#[test]` functions unwrap too: a test that cannot read its inputs should fail loudly.
#![allow(clippy::unwrap_used)]

mod common;

use std::net::TcpListener;
use std::thread::JoinHandle;
use std::time::Duration;

use common::{twsig, Run, Token};
use tokio_tungstenite::tungstenite::{self, handshake::server, Message};
use twilio_signature::{verify, Request};

const TOKEN: &str = "websocket-test-token";

/// What the server saw and did.
#[derive(Debug)]
struct Seen {
    method: String,
    target: String,
    headers: Vec<(String, String)>,
    /// The URL it verified, and the verdict.
    verified: String,
    verdict: Result<(), twilio_signature::Error>,
    /// For an upgraded connection: the first message the client sent (its Close frame).
    first_message: Option<Message>,
}

impl Seen {
    fn header(&self, name: &str) -> Option<&str> {
        common::header(&self.headers, name)
    }
}

/// A one-handshake WebSocket server: verifies the handshake (a GET, no body) over `public_url` plus
/// the request's path and query (or, without one, the ws:// URL it was reached at), upgrades when it
/// verifies and answers 403 otherwise.
fn serve_handshake(public_url: Option<&str>) -> (u16, JoinHandle<Seen>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let public_url = public_url.map(str::to_owned);
    let handle = std::thread::spawn(move || {
        let (stream, _) = listener.accept().unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        // Filled in by the callback, which the handshake's error keeps.
        let slot = std::rc::Rc::new(std::cell::RefCell::new(None));
        let filled = std::rc::Rc::clone(&slot);
        // tungstenite's callback type: its error is an HTTP response, large by nature.
        #[allow(clippy::result_large_err)]
        let callback = move |request: &server::Request, response: server::Response| {
            let target = request.uri().to_string();
            let verified = match &public_url {
                Some(base) => format!("{base}{target}"),
                None => format!("ws://127.0.0.1:{port}{target}"),
            };
            let signature = request
                .headers()
                .get("X-Twilio-Signature")
                .map(http::HeaderValue::as_bytes);
            let settings = request
                .headers()
                .get("X-Twilio-Webhooks-Signature-Settings")
                .map(http::HeaderValue::as_bytes);
            let mut checked = Request::get(&verified).settings(settings);
            if let Some(signature) = signature {
                checked = checked.signature(signature);
            }
            let verdict = verify(TOKEN.as_bytes(), &checked).map(|_| ());
            *filled.borrow_mut() = Some(Seen {
                method: request.method().to_string(),
                target,
                headers: request
                    .headers()
                    .iter()
                    .map(|(n, v)| (n.to_string(), v.to_str().unwrap().to_owned()))
                    .collect(),
                verified,
                verdict,
                first_message: None,
            });
            match verdict {
                Ok(()) => Ok(response),
                Err(e) => Err(http::Response::builder()
                    .status(403)
                    .body(Some(e.message().to_owned()))
                    .unwrap()),
            }
        };
        let upgraded = tungstenite::accept_hdr(stream, callback);
        let mut seen = slot
            .borrow_mut()
            .take()
            .expect("the handshake reached the callback");
        if let Ok(mut socket) = upgraded {
            seen.first_message = Some(socket.read().unwrap());
        }
        seen
    });
    (port, handle)
}

fn send_websocket(port: u16, path: &str, extra: &[&str], token: &str) -> Run {
    let url = format!("http://127.0.0.1:{port}{path}");
    twsig(
        &[&["send", "--websocket", "--url", &url][..], extra].concat(),
        Token::Env(token),
        b"",
    )
}

#[test]
fn a_signed_handshake_is_upgraded_then_closed() {
    let (port, server) = serve_handshake(None);
    let run = send_websocket(port, "/media", &[], TOKEN);
    let seen = server.join().unwrap();
    assert_eq!(seen.verdict, Ok(()), "{}", seen.verified);
    assert_eq!(seen.verified, format!("ws://127.0.0.1:{port}/media"));
    assert_eq!(
        (seen.method.as_str(), seen.target.as_str()),
        ("GET", "/media")
    );
    assert_eq!(seen.header("Sec-WebSocket-Version"), Some("13"));
    assert_eq!(seen.header("Content-Length"), None);
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    assert!(
        run.stdout.starts_with("HTTP/1.1 101 Switching Protocols\n"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains(&format!(
            "upgraded: the server switched to WebSocket (signed over ws://127.0.0.1:{port}/media)"
        )),
        "{}",
        run.stdout
    );
    // The client closed the WebSocket it opened: a Close frame with 1000 reached the server.
    match seen.first_message {
        Some(Message::Close(Some(frame))) => assert_eq!(u16::from(frame.code), 1000),
        other => panic!("expected a Close frame, got {other:?}"),
    }
}

#[test]
fn the_public_wss_url_behind_a_proxy() {
    // The app behind a TLS-terminating proxy verifies the wss:// URL Twilio was given.
    let (port, server) = serve_handshake(Some("wss://voice.example.com"));
    let run = send_websocket(
        port,
        "/media",
        &[
            "--sign-url",
            "wss://voice.example.com/media",
            "-H",
            "X-Forwarded-Proto: https",
        ],
        TOKEN,
    );
    let seen = server.join().unwrap();
    assert_eq!(seen.verdict, Ok(()));
    assert_eq!(seen.header("X-Forwarded-Proto"), Some("https"));
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    // With a SharedKey (HMAC-SHA256) too, its settings header sent along.
    let (port, server) = serve_handshake(Some("wss://voice.example.com"));
    let run = send_websocket(
        port,
        "/relay",
        &[
            "--sign-url",
            "wss://voice.example.com/relay",
            "--key-id",
            "KS1",
        ],
        TOKEN,
    );
    let seen = server.join().unwrap();
    assert_eq!(seen.verdict, Ok(()));
    assert_eq!(
        seen.header("X-Twilio-Webhooks-Signature-Settings"),
        Some("key=KS1,algorithm=HMAC_SHA256")
    );
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
}

#[test]
fn a_forged_or_mis_signed_handshake_is_refused_without_an_upgrade() {
    for extra in [
        // Forged.
        &["--signature", "AAAAAAAAAAAAAAAAAAAAAAAAAAA="][..],
        // Signed for the https:// URL: the common mistake, refused by an app that verifies wss://.
        &["--sign-url", "https://voice.example.com/media"],
    ] {
        let (port, server) = serve_handshake(Some("wss://voice.example.com"));
        let run = send_websocket(port, "/media", extra, TOKEN);
        let seen = server.join().unwrap();
        assert_eq!(
            seen.verdict,
            Err(twilio_signature::Error::SignatureMismatch)
        );
        assert!(seen.first_message.is_none());
        assert_eq!(run.code, 1, "{}{}", run.stdout, run.stderr);
        assert!(
            run.stdout.starts_with("HTTP/1.1 403 Forbidden\n"),
            "{}",
            run.stdout
        );
        assert!(run.stdout.contains("not upgraded"), "{}", run.stdout);
    }
    // The wrong token.
    let (port, server) = serve_handshake(None);
    let run = send_websocket(port, "/media", &[], "not-the-apps-token");
    assert!(server.join().unwrap().verdict.is_err());
    assert_eq!(run.code, 1);
}

#[test]
fn a_server_that_answers_a_handshake_like_a_post_is_not_upgraded() {
    // A plain HTTP server (no WebSocket support) answering 200: exit 1, its body shown.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let (done, client_finished) = std::sync::mpsc::channel::<()>();
    let server = std::thread::spawn(move || {
        use std::io::{Read, Write};
        let (mut stream, _) = listener.accept().unwrap();
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            assert_eq!(stream.read(&mut byte).unwrap(), 1);
            head.push(byte[0]);
        }
        // Kept open after answering (as a keep-alive server would) until the client has finished: a
        // client that waited for EOF would time out instead (exit 2).
        stream
            .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello")
            .unwrap();
        let _ = client_finished.recv_timeout(Duration::from_secs(30));
        String::from_utf8(head).unwrap()
    });
    let run = send_websocket(port, "/media", &["--timeout", "5"], TOKEN);
    done.send(()).unwrap();
    let head = server.join().unwrap();
    assert!(head.starts_with("GET /media HTTP/1.1\r\n"), "{head}");
    assert!(head.contains("\r\nUpgrade: websocket\r\n"), "{head}");
    assert!(head.contains("\r\nConnection: Upgrade\r\n"), "{head}");
    assert_eq!(run.code, 1, "{}{}", run.stdout, run.stderr);
    assert!(
        run.stdout
            .starts_with("HTTP/1.1 200 OK\nhello\nnot upgraded"),
        "{}",
        run.stdout
    );
}

#[test]
fn handshake_usage_errors() {
    for (extra, message) in [
        (&["--param", "Body=x"][..], "cannot be used with"),
        (&["--json", "{}"], "cannot be used with"),
        (
            &["-H", "Sec-WebSocket-Key: x"],
            "-H cannot set Upgrade, Sec-WebSocket-Key",
        ),
        (&["-H", "X-Twilio-Signature: x"], "use --signature"),
    ] {
        let run = send_websocket(9, "/media", extra, TOKEN);
        assert_eq!(run.code, 2, "{extra:?}: {}", run.stderr);
        assert!(run.stderr.contains(message), "{extra:?}: {}", run.stderr);
    }
    // ws:// names the local server too; wss:// cannot (no TLS to a local server).
    let run = twsig(
        &["send", "--websocket", "--url", "wss://127.0.0.1:9/media"],
        Token::Env(TOKEN),
        b"",
    );
    assert_eq!(run.code, 2);
    assert!(
        run.stderr.contains("must be http:// or ws://"),
        "{}",
        run.stderr
    );
}
