//! A Twilio Media Streams app on axum: a TwiML route that connects the call to a stream, and the stream's
//! WebSocket route, both behind `TwilioSignatureLayer`. Twilio signs the stream's handshake over the
//! `wss://` URL; the layer verifies it as such and leaves the upgrade to axum's `WebSocketUpgrade`.
//!
//! ```sh
//! TWILIO_AUTH_TOKEN=... PUBLIC_URL=https://example.com cargo run -p twilio-signature-tower --example media_streams
//! ```
//!
//! Point the number's voice webhook at `https://example.com/voice`: it answers
//! `<Connect><Stream url="wss://example.com/media"/></Connect>`, and Twilio opens the stream there.
//!
//! Environment:
//! - `TWILIO_AUTH_TOKEN` (required): an empty or whitespace-only token is refused at start-up.
//! - `PUBLIC_URL` (optional): the public origin Twilio calls, e.g. `https://example.com`; the stream URL
//!   is its `wss://` twin. Without it the URLs are `http://`/`ws://` + the `Host` header (local tests).
//! - `BIND` (default `127.0.0.1:3000`; port 0 picks a free one): the address printed on the first line.

// `make test-tower` builds and runs this example: a warning fails the build.
#![deny(warnings)]

use std::env;
use std::error::Error;
use std::process::ExitCode;

use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::http::header::{CONTENT_TYPE, HOST};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Router};
use serde_json::{json, Value};
use tokio::net::TcpListener;
use twilio_signature_tower::{Secret, TwilioSignatureLayer, Validator, Verified};

/// The public origin (`https://example.com`), if configured.
#[derive(Clone)]
struct PublicUrl(Option<String>);

/// The call's TwiML: connect it to the stream route. The stream URL is the public one with the `wss`
/// scheme (`ws` for a plain-http origin): the URL Twilio will sign the handshake over.
async fn voice(Extension(public): Extension<PublicUrl>, headers: HeaderMap) -> impl IntoResponse {
    let origin = public.0.unwrap_or_else(|| {
        let host = headers.get(HOST).and_then(|h| h.to_str().ok());
        format!("http://{}", host.unwrap_or("localhost"))
    });
    let stream = match origin.split_once("://") {
        Some((scheme, rest)) if scheme.eq_ignore_ascii_case("https") => format!("wss://{rest}"),
        Some((_, rest)) => format!("ws://{rest}"),
        None => origin,
    };
    let twiml = format!(
        "<Response><Connect><Stream url=\"{}/media\"/></Connect></Response>",
        escape_xml(&stream)
    );
    ([(CONTENT_TYPE, "text/xml")], twiml)
}

/// The stream route: only a verified handshake gets here, with its upgrade intact.
async fn media(ws: WebSocketUpgrade, Extension(verified): Extension<Verified>) -> Response {
    ws.on_upgrade(move |socket| stream(socket, verified.secret_index))
}

/// Reads Twilio's stream events (`connected`, `start`, `media`, `mark`, `stop`) and, once the stream
/// has started, sends a `mark` (Twilio echoes it back when the audio before it has played).
async fn stream(mut socket: WebSocket, secret_index: usize) {
    let mut media = 0_usize;
    while let Some(Ok(message)) = socket.recv().await {
        let Message::Text(text) = message else {
            continue;
        };
        let Ok(event) = serde_json::from_str::<Value>(text.as_str()) else {
            eprintln!("media_streams example: not JSON: {} bytes", text.len());
            continue;
        };
        let sid = event["streamSid"].as_str().unwrap_or_default().to_owned();
        match event["event"].as_str().unwrap_or_default() {
            "connected" => println!("stream connected (secret #{secret_index})"),
            "start" => {
                println!(
                    "stream {sid} started for call {}",
                    event["start"]["callSid"].as_str().unwrap_or("?")
                );
                let mark = json!({"event": "mark", "streamSid": sid, "mark": {"name": "greeting"}});
                if socket
                    .send(Message::Text(mark.to_string().into()))
                    .await
                    .is_err()
                {
                    return;
                }
            }
            "media" => media += 1,
            "mark" => println!("stream {sid}: mark {} played", event["mark"]["name"]),
            "stop" => {
                println!("stream {sid} stopped after {media} media messages");
                return;
            }
            other => println!("stream {sid}: event {other:?}"),
        }
    }
}

fn escape_xml(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('"', "&quot;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

async fn run() -> Result<(), Box<dyn Error>> {
    let token = env::var("TWILIO_AUTH_TOKEN").map_err(|_| "TWILIO_AUTH_TOKEN is not set")?;
    if !Secret::is_usable(token.as_bytes()) {
        return Err("TWILIO_AUTH_TOKEN is empty or whitespace only".into());
    }
    let public = env::var("PUBLIC_URL").ok();
    let mut twilio = TwilioSignatureLayer::new(Validator::new(Secret::new(token.as_bytes())));
    if let Some(url) = &public {
        // The handshake is then verified against wss://<this origin>/media.
        twilio = twilio.base_url(url)?;
    }
    let app = Router::new()
        .route("/voice", post(voice))
        .route("/media", get(media))
        .route_layer(twilio)
        .layer(Extension(PublicUrl(public)));

    let bind = env::var("BIND").unwrap_or_else(|_| "127.0.0.1:3000".to_owned());
    let listener = TcpListener::bind(&bind).await?;
    println!("listening on http://{}", listener.local_addr()?);
    axum::serve(listener, app).await?;
    Ok(())
}

#[tokio::main]
async fn main() -> ExitCode {
    // Refusals are `tracing` events: this prints them to stderr.
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .init();
    match run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("media_streams example: {error}");
            ExitCode::from(2)
        }
    }
}
