//! A Twilio webhook app on axum, every request verified by `TwilioSignatureLayer`, with two Auth Tokens
//! accepted while one is rotated.
//!
//! ```sh
//! TWILIO_AUTH_TOKEN=... TWILIO_AUTH_TOKEN_SECONDARY=... cargo run -p twilio-signature-tower --example axum
//! TWILIO_AUTH_TOKEN=... twsig send --url http://127.0.0.1:3000/sms     # 200, "verified with secret #0"
//! ```
//!
//! Environment:
//! - `TWILIO_AUTH_TOKEN` (required) and `TWILIO_AUTH_TOKEN_SECONDARY` (optional): the secrets, tried in
//!   that order. An empty or whitespace-only token is refused at start-up.
//! - `PUBLIC_URL` (optional): the public origin Twilio calls, e.g. `https://example.com`. Without it the
//!   URL verified is `http://` + the `Host` header + the path.
//! - `TRUSTED_PROXIES` (optional): comma-separated CIDR ranges whose `X-Forwarded-Proto` and
//!   `X-Forwarded-Host` are believed.
//! - `BIND` (default `127.0.0.1:3000`; port 0 picks a free one): the address printed on the first line.
//!
//! Refusals are `tracing` events, printed to stderr here by tracing-subscriber's formatter (without a
//! subscriber they would be printed nowhere).

// `make test-tower` builds this example: a warning (an unused import, say) fails it.
#![deny(warnings)]

use std::env;
use std::error::Error;
use std::net::SocketAddr;
use std::process::ExitCode;

use axum::extract::ConnectInfo;
use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;
use axum::routing::post;
use axum::{Extension, Router};
use tokio::net::TcpListener;
use twilio_signature_tower::{Secret, TwilioSignatureLayer, Validator, Verified};

/// Only verified requests get here, with their body intact: take it with any extractor (`String`,
/// `Bytes`, `Form<T>`, `Json<T>`).
async fn sms(Extension(verified): Extension<Verified>, body: String) -> impl IntoResponse {
    let from = body
        .split('&')
        .find_map(|pair| pair.strip_prefix("From="))
        .unwrap_or("?");
    let twiml = format!(
        "<Response><Message>verified with secret #{} (From={from})</Message></Response>",
        verified.secret_index
    );
    ([(CONTENT_TYPE, "text/xml")], twiml)
}

/// The Auth Tokens from the environment: the primary one is required, the secondary optional.
fn secrets() -> Result<Vec<Secret>, String> {
    let mut secrets = Vec::new();
    for (name, required) in [
        ("TWILIO_AUTH_TOKEN", true),
        ("TWILIO_AUTH_TOKEN_SECONDARY", false),
    ] {
        match env::var(name) {
            Ok(token) if Secret::is_usable(token.as_bytes()) => {
                secrets.push(Secret::new(token.as_bytes()));
            }
            Ok(_) => return Err(format!("{name} is empty or whitespace only")),
            Err(env::VarError::NotPresent) if !required => {}
            Err(_) => return Err(format!("{name} is not set (or not UTF-8)")),
        }
    }
    Ok(secrets)
}

async fn run() -> Result<(), Box<dyn Error>> {
    let validator = Validator::with_secrets(secrets()?);
    let mut twilio = TwilioSignatureLayer::new(validator)
        // axum puts the peer address here when served with `into_make_service_with_connect_info`.
        .peer_addr_from::<ConnectInfo<SocketAddr>>();
    if let Ok(url) = env::var("PUBLIC_URL") {
        twilio = twilio.base_url(&url)?;
    }
    if let Ok(ranges) = env::var("TRUSTED_PROXIES") {
        twilio = twilio.trusted_proxies(ranges.split(',').filter(|r| !r.trim().is_empty()))?;
    }
    // `route_layer`: only the webhook routes are guarded; unknown paths still get 404.
    let app = Router::new().route("/sms", post(sms)).route_layer(twilio);

    let bind = env::var("BIND").unwrap_or_else(|_| "127.0.0.1:3000".to_owned());
    let listener = TcpListener::bind(&bind).await?;
    println!("listening on http://{}", listener.local_addr()?);
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .await?;
    Ok(())
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .init();
    match run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("axum example: {error}");
            ExitCode::from(2)
        }
    }
}
