//! A Media Streams WebSocket through `twsig proxy`: a real tokio-tungstenite client and server on
//! loopback. The handshake Twilio signs over `wss://` is verified by the tower layer (the proxy's
//! base URL is https), then the proxy tunnels the upgraded connection both ways. A handshake signed
//! for `https://` (the common mistake) is refused with 403 and never reaches the app.

#![allow(clippy::panic)]
// tungstenite's handshake callback returns its own (large) error response type.
#![allow(clippy::result_large_err)]

#[path = "proxy/support.rs"]
mod proxy_support;

use std::sync::{Arc, Mutex};

use futures_util::{SinkExt, StreamExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::handshake::server::{Request, Response};
use tokio_tungstenite::tungstenite::{Error, Message};

use proxy_support::{sign_form_with, Proxy, TOKEN};

/// What the app saw: each handshake's X-Twilio-Verified and target, and each text message.
#[derive(Debug, Default)]
struct Seen {
    handshakes: Vec<(String, String)>,
    messages: Vec<String>,
}

/// A Media Streams app that verifies nothing: records the handshake, answers the `start` event with a
/// `mark`, and records every text message.
async fn start_app() -> (u16, Arc<Mutex<Seen>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("address").port();
    let seen = Arc::new(Mutex::new(Seen::default()));
    let shared = Arc::clone(&seen);
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let seen = Arc::clone(&shared);
            tokio::spawn(async move {
                let record = |request: &Request, response: Response| {
                    let verified = request
                        .headers()
                        .get("x-twilio-verified")
                        .map(|v| v.to_str().unwrap_or("?").to_owned())
                        .unwrap_or_default();
                    let target = request.uri().to_string();
                    seen.lock()
                        .expect("lock")
                        .handshakes
                        .push((verified, target));
                    Ok(response)
                };
                let Ok(mut socket) = tokio_tungstenite::accept_hdr_async(stream, record).await
                else {
                    return;
                };
                while let Some(Ok(message)) = socket.next().await {
                    if let Message::Text(text) = message {
                        let text = text.as_str().to_owned();
                        let start = text.contains("\"event\":\"start\"");
                        seen.lock().expect("lock").messages.push(text);
                        if start {
                            let mark =
                                r#"{"event":"mark","streamSid":"MZ1","mark":{"name":"greeting"}}"#;
                            if socket.send(Message::text(mark)).await.is_err() {
                                return;
                            }
                        }
                    }
                }
            });
        }
    });
    (port, seen)
}

/// `twsig proxy` in front of the app, verifying `https://example.com` (so `wss://` for handshakes).
async fn start_proxy(app_port: u16) -> Proxy {
    tokio::task::spawn_blocking(move || {
        Proxy::start(&[
            "--upstream",
            &format!("http://127.0.0.1:{app_port}"),
            "--base-url",
            "https://example.com",
        ])
    })
    .await
    .expect("the proxy starts")
}

/// A WebSocket handshake to the proxy for `target`, signed over `signed_url` (a GET: the URL alone).
async fn handshake(
    proxy_port: u16,
    target: &str,
    signed_url: &str,
) -> Result<tokio_tungstenite::WebSocketStream<TcpStream>, Error> {
    let signature = sign_form_with(TOKEN.as_bytes(), signed_url, b"");
    let mut request = format!("ws://example.com{target}")
        .into_client_request()
        .expect("a request");
    request
        .headers_mut()
        .insert("x-twilio-signature", signature.parse().expect("header"));
    let stream = TcpStream::connect(("127.0.0.1", proxy_port))
        .await
        .expect("connect");
    tokio_tungstenite::client_async(request, stream)
        .await
        .map(|(socket, _)| socket)
}

/// Waits (bounded) for the app's next message: a `mark` event.
async fn expect_mark(socket: &mut tokio_tungstenite::WebSocketStream<TcpStream>) {
    let reply = tokio::time::timeout(std::time::Duration::from_secs(10), socket.next())
        .await
        .expect("a reply in time")
        .expect("a message")
        .expect("not an error");
    assert!(
        reply
            .to_text()
            .expect("text")
            .contains("\"event\":\"mark\""),
        "{reply:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_media_streams_handshake_is_verified_over_wss_and_tunnelled_both_ways() {
    let (app_port, seen) = start_app().await;
    let proxy = start_proxy(app_port).await;

    // The common mistake: signed over https://, not the wss:// URL Twilio signs. Refused, no upgrade.
    let refused = handshake(proxy.port, "/media", "https://example.com/media").await;
    match refused {
        Err(Error::Http(response)) => assert_eq!(response.status(), 403),
        other => panic!("expected an HTTP 403, got {other:?}"),
    }
    assert!(seen.lock().expect("lock").handshakes.is_empty());

    let mut socket = handshake(
        proxy.port,
        "/media?CallSid=CA123",
        "wss://example.com/media?CallSid=CA123",
    )
    .await
    .unwrap_or_else(|e| panic!("handshake refused: {e}\n{}", proxy.log()));
    let connected = r#"{"event":"connected","protocol":"Call","version":"1.0.0"}"#;
    let start =
        r#"{"event":"start","sequenceNumber":"1","start":{"streamSid":"MZ1","callSid":"CA123"}}"#;
    socket.send(Message::text(connected)).await.expect("send");
    socket.send(Message::text(start)).await.expect("send");
    expect_mark(&mut socket).await;
    socket.close(None).await.expect("close");

    let seen = seen.lock().expect("lock");
    assert_eq!(
        seen.handshakes,
        [(
            "secret=0; candidate=as-given".to_owned(),
            "/media?CallSid=CA123".to_owned()
        )]
    );
    assert_eq!(seen.messages, [connected, start]);
    let log = proxy.log();
    assert!(
        log.contains("\"GET /media\" 403 refused reason=invalid_signature")
            && log.contains("url=wss://example.com/media")
            && log.contains("\"GET /media?CallSid=CA123\" 101 forwarded"),
        "{log}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_sigterm_an_open_stream_keeps_flowing_until_it_ends() {
    let (app_port, seen) = start_app().await;
    let mut proxy = start_proxy(app_port).await;
    let mut socket = handshake(proxy.port, "/media", "wss://example.com/media")
        .await
        .expect("a verified handshake");
    proxy.signal("TERM");
    // The call goes on after the signal: a start event in, a mark out.
    let start = r#"{"event":"start","sequenceNumber":"1","start":{"streamSid":"MZ2"}}"#;
    socket.send(Message::text(start)).await.expect("send");
    expect_mark(&mut socket).await;
    assert_eq!(seen.lock().expect("lock").messages, [start]);
    socket.close(None).await.expect("close");
    drop(socket);
    let status = tokio::task::spawn_blocking(move || {
        let status = proxy.wait();
        (status, proxy.log())
    })
    .await
    .expect("the proxy exits");
    assert_eq!(status.0.code(), Some(0), "{}", status.1);
    assert!(
        status
            .1
            .contains("shut down: every request in flight and WebSocket tunnel finished"),
        "{}",
        status.1
    );
}
