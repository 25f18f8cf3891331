//! WebSocket handshakes (Media Streams, ConversationRelay) through the layer: a real axum server with
//! `WebSocketUpgrade` behind `TwilioSignatureLayer`, and a real tokio-tungstenite client, on loopback.
//! Twilio signs a handshake over the `wss://` (or `ws://`) URL; the upgrade must survive the check.

mod capture;
mod loopback;

use std::net::SocketAddr;
use std::time::Duration;

use axum::extract::ws::{Message as ServerMessage, WebSocket, WebSocketUpgrade};
use axum::extract::ConnectInfo;
use axum::response::Response;
use axum::routing::get;
use axum::{Extension, Router};
use futures_util::{SinkExt, StreamExt};
use loopback::serve_app;
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_tungstenite::{client_async, WebSocketStream};
use twilio_signature::{sign, Request};
use twilio_signature_tower::{Secret, TwilioSignatureLayer, Validator, Verified};

const TOKEN: &str = "media-streams-auth-token-0123";

fn layer() -> TwilioSignatureLayer<Vec<Secret>> {
    TwilioSignatureLayer::new(Validator::with_secrets(vec![
        Secret::new(b"another-token-first"),
        Secret::new(TOKEN.as_bytes()),
    ]))
}

/// The stream route: reads `connected` and `start`, answers a `mark` named after the secret that
/// verified the handshake (so the test sees that `Verified` reached it).
async fn media(ws: WebSocketUpgrade, Extension(verified): Extension<Verified>) -> Response {
    ws.on_upgrade(move |socket| stream(socket, verified.secret_index))
}

async fn stream(mut socket: WebSocket, secret_index: usize) {
    let mut events = Vec::new();
    while let Some(Ok(message)) = socket.recv().await {
        let ServerMessage::Text(text) = message else {
            continue;
        };
        let event: Value = serde_json::from_str(text.as_str()).expect("JSON from the client");
        events.push(event["event"].as_str().unwrap_or_default().to_owned());
        if events == ["connected", "start"] {
            let mark = json!({
                "event": "mark",
                "streamSid": event["streamSid"],
                "mark": {"name": format!("secret-{secret_index}")},
            });
            let _ = socket
                .send(ServerMessage::Text(mark.to_string().into()))
                .await;
        }
    }
}

async fn serve(layer: TwilioSignatureLayer<Vec<Secret>>) -> SocketAddr {
    // CONNECT too: an HTTP/2 WebSocket handshake is an extended CONNECT.
    let app = Router::new().route("/media", get(media).connect(media));
    serve_app(app.route_layer(layer)).await
}

fn signature(url: &str) -> String {
    sign(TOKEN.as_bytes(), &Request::get(url))
        .expect("sign")
        .as_str()
        .to_owned()
}

/// A WebSocket handshake to `ws://{addr}{path}` with the given extra headers: the open stream, or the
/// status the server answered instead of 101.
#[allow(clippy::panic)] // a test helper outside a #[test] function: its failure is the test's
async fn handshake(
    addr: SocketAddr,
    path: &str,
    headers: &[(&'static str, String)],
) -> Result<WebSocketStream<TcpStream>, u16> {
    let mut request = format!("ws://{addr}{path}")
        .into_client_request()
        .expect("request");
    for (name, value) in headers {
        request
            .headers_mut()
            .append(*name, value.parse().expect("header value"));
    }
    let tcp = TcpStream::connect(addr).await.expect("connect");
    let done = tokio::time::timeout(Duration::from_secs(10), client_async(request, tcp))
        .await
        .expect("the handshake ends within 10 s");
    match done {
        Ok((socket, response)) => {
            assert_eq!(response.status(), 101);
            Ok(socket)
        }
        Err(WsError::Http(response)) => Err(response.status().as_u16()),
        Err(other) => panic!("the handshake failed short of an HTTP answer: {other}"),
    }
}

/// The Media Streams exchange: `connected` and `start` in, a `mark` out; returns the mark's name.
async fn media_streams_exchange<S>(socket: &mut WebSocketStream<S>) -> String
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let connected = json!({"event": "connected", "protocol": "Call", "version": "1.0.0"});
    let start = json!({
        "event": "start",
        "sequenceNumber": "1",
        "streamSid": "MZ0123",
        "start": {
            "accountSid": "AC0123",
            "callSid": "CA0123",
            "streamSid": "MZ0123",
            "tracks": ["inbound"],
            "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1},
        },
    });
    for event in [connected, start] {
        socket
            .send(Message::Text(event.to_string().into()))
            .await
            .expect("send");
    }
    let reply = tokio::time::timeout(Duration::from_secs(10), socket.next())
        .await
        .expect("a reply within 10 s")
        .expect("a message")
        .expect("not an error");
    let text = reply.into_text().expect("a text message");
    let mark: Value = serde_json::from_str(text.as_str()).expect("JSON");
    assert_eq!(mark["event"], "mark", "{mark}");
    assert_eq!(mark["streamSid"], "MZ0123", "{mark}");
    mark["mark"]["name"].as_str().expect("a name").to_owned()
}

#[tokio::test]
async fn a_signed_handshake_is_upgraded_and_media_streams_messages_flow_both_ways() {
    let addr = serve(layer()).await;
    let path = "/media?case=signed";
    let sig = signature(&format!("ws://{addr}{path}"));
    let mut socket = handshake(addr, path, &[("X-Twilio-Signature", sig)])
        .await
        .expect("101 Switching Protocols");
    assert_eq!(media_streams_exchange(&mut socket).await, "secret-1");
    socket.close(None).await.expect("close");
}

#[tokio::test]
async fn a_forged_or_missing_signature_is_refused_without_an_upgrade() {
    let addr = serve(layer()).await;
    let path = "/media?case=forged";
    let url = format!("ws://{addr}{path}");
    let forged = sign(b"not-the-token", &Request::get(&url)).expect("sign");
    let forged = forged.as_str().to_owned();
    assert_eq!(
        handshake(addr, path, &[("X-Twilio-Signature", forged)])
            .await
            .err(),
        Some(403)
    );
    assert_eq!(handshake(addr, path, &[]).await.err(), Some(400));
    let events = capture::events_with("case=forged");
    assert_eq!(events.len(), 2, "{events:#?}");
    assert!(
        events[0]
            .field("message")
            .starts_with("twilio webhook refused: 403 "),
        "{events:#?}"
    );
    assert!(
        events[0].field("message").contains(&format!("url={url};")),
        "{events:#?}"
    );
}

#[tokio::test]
async fn a_handshake_signed_for_http_instead_of_ws_is_refused() {
    // The common mistake (twilio-aspnet#162): validating the handshake over the http(s) URL.
    let addr = serve(layer()).await;
    let path = "/media?case=signed-for-http";
    let sig = signature(&format!("http://{addr}{path}"));
    assert_eq!(
        handshake(addr, path, &[("X-Twilio-Signature", sig)])
            .await
            .err(),
        Some(403)
    );
    let events = capture::events_with("case=signed-for-http");
    assert_eq!(events.len(), 1, "{events:#?}");
    assert!(
        events[0]
            .field("message")
            .contains(&format!("url=ws://{addr}{path};")),
        "{events:#?}"
    );
}

#[tokio::test]
async fn the_public_https_origin_makes_the_handshake_url_wss() {
    let path = "/media?case=wss";
    // Behind a trusted TLS-terminating proxy: X-Forwarded-Proto https, X-Forwarded-Host the public host.
    let proxied = layer()
        .trusted_proxies(["127.0.0.1"])
        .expect("range")
        .peer_addr_from::<ConnectInfo<SocketAddr>>();
    let addr = serve(proxied).await;
    let forwarded = [
        ("X-Forwarded-Proto", "https".to_owned()),
        ("X-Forwarded-Host", "streams.example.com".to_owned()),
    ];
    let with_signature = |url: &str| {
        let mut headers = forwarded.to_vec();
        headers.push(("X-Twilio-Signature", signature(url)));
        headers
    };
    let wss = format!("wss://streams.example.com{path}");
    let mut socket = handshake(addr, path, &with_signature(&wss))
        .await
        .expect("101 for the wss URL");
    assert_eq!(media_streams_exchange(&mut socket).await, "secret-1");
    // Signed for the https URL of the same request: refused.
    let https = format!("https://streams.example.com{path}");
    assert_eq!(
        handshake(addr, path, &with_signature(&https)).await.err(),
        Some(403)
    );

    // base_url https://... and served_over_tls give wss too.
    let based = layer().base_url("https://example.com").expect("base url");
    let addr = serve(based).await;
    let sig = signature(&format!("wss://example.com{path}"));
    let mut socket = handshake(addr, path, &[("X-Twilio-Signature", sig)])
        .await
        .expect("101 with base_url");
    assert_eq!(media_streams_exchange(&mut socket).await, "secret-1");
    let addr = serve(layer().served_over_tls()).await;
    let sig = signature(&format!("wss://{addr}{path}"));
    assert!(handshake(addr, path, &[("X-Twilio-Signature", sig)])
        .await
        .is_ok());
}

#[tokio::test]
async fn a_plain_get_to_the_stream_route_is_verified_as_http() {
    // Not a handshake (no Upgrade): verified over http://, and axum's extractor refuses it after.
    let addr = serve(layer()).await;
    let path = "/media?case=plain-get";
    let sig = signature(&format!("http://{addr}{path}"));
    let mut tcp = TcpStream::connect(addr).await.expect("connect");
    let head = format!(
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nX-Twilio-Signature: {sig}\r\n\r\n"
    );
    tcp.write_all(head.as_bytes()).await.expect("write");
    let mut response = String::new();
    tcp.read_to_string(&mut response).await.expect("read");
    // Past the layer (not 403), refused by WebSocketUpgrade for lacking the upgrade headers.
    let status: u16 = response[9..12].parse().expect("status");
    assert!(
        status != 403 && status != 101 && status >= 400,
        "{response}"
    );
    assert!(capture::events_with("case=plain-get").is_empty());
}

#[tokio::test]
async fn an_http_1_0_get_with_upgrade_headers_is_not_a_handshake() {
    // hyper never upgrades HTTP/1.0: verified as a handshake it would reach the app as a plain GET
    // accepted on a signature over ws://. It is verified over http://, so the ws:// signature fails.
    let addr = serve(layer()).await;
    let path = "/media?case=http10";
    let sig = signature(&format!("ws://{addr}{path}"));
    let mut tcp = TcpStream::connect(addr).await.expect("connect");
    let head = format!(
        "GET {path} HTTP/1.0\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\
         X-Twilio-Signature: {sig}\r\n\r\n"
    );
    tcp.write_all(head.as_bytes()).await.expect("write");
    let mut response = String::new();
    tcp.read_to_string(&mut response).await.expect("read");
    assert_eq!(&response[9..12], "403", "{response}");
    let events = capture::events_with("case=http10");
    assert_eq!(events.len(), 1, "{events:#?}");
    assert!(
        events[0]
            .field("message")
            .contains(&format!("url=http://{addr}{path};")),
        "{events:#?}"
    );
}

/// An HTTP/2 WebSocket handshake (RFC 8441 extended CONNECT, `:protocol websocket`) to
/// `http://{addr}{path}`: the open stream, or the status answered instead of 200.
#[cfg(feature = "http2")]
#[allow(clippy::panic)] // a test helper outside a #[test] function: its failure is the test's
async fn h2_handshake(
    addr: SocketAddr,
    path: &str,
    signature: Option<String>,
) -> Result<WebSocketStream<hyper_util::rt::TokioIo<hyper::upgrade::Upgraded>>, u16> {
    use hyper_util::rt::{TokioExecutor, TokioIo};
    use tokio_tungstenite::tungstenite::protocol::Role;

    let tcp = TcpStream::connect(addr).await.expect("connect");
    let (mut send, connection) = hyper::client::conn::http2::Builder::new(TokioExecutor::new())
        .handshake(TokioIo::new(tcp))
        .await
        .expect("HTTP/2 connection");
    tokio::spawn(connection);
    let request = || {
        let mut request = http::Request::builder()
            .method(http::Method::CONNECT)
            .uri(format!("http://{addr}{path}"))
            .extension(hyper::ext::Protocol::from_static("websocket"))
            .header("sec-websocket-version", "13");
        if let Some(signature) = &signature {
            request = request.header("x-twilio-signature", signature);
        }
        request
            .body(http_body_util::Empty::<bytes::Bytes>::new())
            .expect("request")
    };
    // Until the server's SETTINGS (which allow extended CONNECT) have arrived, the client refuses to
    // send one: try again for up to a second.
    let mut attempts = 0;
    let response = loop {
        send.ready().await.expect("the connection is ready");
        let answer = tokio::time::timeout(Duration::from_secs(10), send.send_request(request()))
            .await
            .expect("an answer within 10 s");
        match answer {
            Ok(response) => break response,
            Err(error) if attempts < 100 && error.is_user() => {
                attempts += 1;
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            Err(error) => panic!("the extended CONNECT failed: {error}"),
        }
    };
    if response.status() != 200 {
        return Err(response.status().as_u16());
    }
    let upgraded = hyper::upgrade::on(response).await.expect("the upgrade");
    Ok(WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Client, None).await)
}

#[cfg(feature = "http2")]
#[tokio::test]
async fn an_http2_extended_connect_handshake_is_verified_over_ws_and_streams() {
    let addr = serve(layer()).await;
    let path = "/media?case=h2";
    let ws = format!("ws://{addr}{path}");
    let mut socket = h2_handshake(addr, path, Some(signature(&ws)))
        .await
        .expect("200 to the extended CONNECT");
    assert_eq!(media_streams_exchange(&mut socket).await, "secret-1");
    // Signed over http://: refused, so it was verified as a handshake (ws://).
    let http = format!("http://{addr}{path}");
    assert_eq!(
        h2_handshake(addr, path, Some(signature(&http))).await.err(),
        Some(403)
    );
    assert_eq!(h2_handshake(addr, path, None).await.err(), Some(400));
}

/// A POST over a fresh connection, read to the end (`Connection: close`): status and body.
async fn post(addr: SocketAddr, path: &str, signature: &str) -> (u16, String) {
    let mut tcp = TcpStream::connect(addr).await.expect("connect");
    let body = "CallSid=CA0123&From=%2B15551234567";
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nX-Twilio-Signature: {signature}\r\n\
         Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    tcp.write_all(head.as_bytes()).await.expect("write");
    let mut response = String::new();
    tcp.read_to_string(&mut response).await.expect("read");
    let status = response[9..12].parse().expect("status");
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

/// The next line the example prints (within 10 s).
async fn next_line(lines: &mut tokio::io::Lines<BufReader<tokio::process::ChildStdout>>) -> String {
    tokio::time::timeout(Duration::from_secs(10), lines.next_line())
        .await
        .expect("a line within 10 s")
        .expect("read")
        .expect("the example is running")
}

/// tower/examples/media_streams.rs, run: its TwiML names the stream URL, and a handshake signed for that
/// URL streams. `make test-tower` runs it with the example's path in `TOWER_MEDIA_EXAMPLE`.
#[tokio::test]
#[ignore = "needs the built example: make test-tower-example runs it"]
async fn the_media_streams_example_answers_twiml_and_verifies_its_stream() {
    let binary = std::env::var("TOWER_MEDIA_EXAMPLE")
        .expect("TOWER_MEDIA_EXAMPLE: the path of the built media_streams example");
    let mut child = tokio::process::Command::new(binary)
        .env("TWILIO_AUTH_TOKEN", TOKEN)
        .env("BIND", "127.0.0.1:0")
        .env_remove("PUBLIC_URL")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("start the example");
    let mut stdout = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let first = next_line(&mut stdout).await;
    let addr: SocketAddr = first
        .strip_prefix("listening on http://")
        .expect("the address line")
        .parse()
        .expect("an address");

    // The voice webhook: TwiML connecting the call to the stream.
    let voice = format!("http://{addr}/voice");
    let body = "CallSid=CA0123&From=%2B15551234567";
    let sig = sign(TOKEN.as_bytes(), &Request::post(&voice, body)).expect("sign");
    let (status, twiml) = post(addr, "/voice", sig.as_str()).await;
    assert_eq!(status, 200, "{twiml}");
    let stream_url = format!("ws://{addr}/media");
    assert_eq!(
        twiml,
        format!("<Response><Connect><Stream url=\"{stream_url}\"/></Connect></Response>")
    );
    // A forged handshake: refused, no upgrade.
    let forged = sign(b"not-the-token", &Request::get(&stream_url)).expect("sign");
    let forged = forged.as_str().to_owned();
    assert_eq!(
        handshake(addr, "/media", &[("X-Twilio-Signature", forged)])
            .await
            .err(),
        Some(403)
    );
    // The handshake Twilio makes for that TwiML: signed over the stream URL.
    let sig = signature(&stream_url);
    let mut socket = handshake(addr, "/media", &[("X-Twilio-Signature", sig)])
        .await
        .expect("101 from the example");
    assert_eq!(media_streams_exchange(&mut socket).await, "greeting");
    let stop = json!({"event": "stop", "sequenceNumber": "2", "streamSid": "MZ0123"});
    socket
        .send(Message::Text(stop.to_string().into()))
        .await
        .expect("send stop");
    let mut printed = Vec::new();
    while !printed.iter().any(|l: &String| l.contains("stopped")) {
        printed.push(next_line(&mut stdout).await);
    }
    assert_eq!(
        printed,
        [
            "stream connected (secret #0)",
            "stream MZ0123 started for call CA0123",
            "stream MZ0123 stopped after 0 media messages",
        ]
    );
    child.kill().await.expect("stop the example");
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .expect("stderr")
        .read_to_string(&mut stderr)
        .await
        .expect("read stderr");
    assert!(
        stderr.contains("WARN twilio_signature_tower: twilio webhook refused: 403 ")
            && stderr.contains(&format!("url={stream_url};")),
        "{stderr}"
    );
    assert!(!stderr.contains(TOKEN), "{stderr}");
}
