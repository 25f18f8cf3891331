//! `twsig proxy`: a verifying reverse proxy in front of an app in any language.
//!
//! Every check is the tower layer's (`twilio-signature-tower`): this module only serves HTTP/1.1 with
//! hyper, hands each request to the layer of the route its path selects, forwards what the layer
//! passes to the upstream over keep-alive connections (one pool per thread), and logs and counts what
//! happened.

mod admin;
mod config;
mod deadline;
mod forward;
mod log;
mod metrics;
mod pool;
mod server;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, ValueEnum};

use crate::{Failure, SecretArgs};

pub const PROXY_ABOUT: &str = "\
Verifying reverse proxy: forward only requests signed by Twilio to an app in any language";

pub const PROXY_EXAMPLES: &str = "\
Examples:
  export TWILIO_AUTH_TOKEN=...          # or --token-file FILE (repeat it for key rotation)
  twsig proxy --listen 127.0.0.1:8080 --upstream http://127.0.0.1:9000 --base-url https://example.com
  # Behind a TLS-terminating load balancer at 10.0.0.5 that sets X-Forwarded-Proto (no --base-url:
  # the URL verified is the balancer's scheme + the Host header + the request target)
  twsig proxy --listen 0.0.0.0:8080 --upstream http://127.0.0.1:9000 --trusted-proxy 10.0.0.5/32
  # Several routes, each with its upstream and secrets, plus /healthz, /readyz and /metrics
  twsig proxy --config /etc/twsig/proxy.toml --admin-listen 127.0.0.1:9901

What the upstream gets: the request as sent (method, path, query, body, end-to-end headers with their
names in the client's case and order; hop-by-hop headers such as Connection and Transfer-Encoding are
not forwarded, as RFC 9110 says) plus
X-Twilio-Verified, e.g. `secret=0; candidate=as-given` (the index of the secret that matched, in the
order given, `key=ID` when it has a SharedKey id, and the URL form that was signed). A client's own
X-Twilio-Verified is always removed. WebSocket handshakes (Media Streams, ConversationRelay) are
verified and then tunnelled both ways.

What clients get: 400 (no X-Twilio-Signature, a bad or repeated Host, an ambiguous path), 403
(signature or body hash mismatch), 405 (CONNECT), 413 (body over --body-limit), 415 (a non-empty body
verified as a form whose Content-Type is not application/x-www-form-urlencoded), none of which reach
the upstream; 502 when the upstream cannot be reached, 504 when it has not answered within
--upstream-timeout; 404 when no --config route matches the path. Response header names reach the
client in lower case, as over HTTP/2. One log line per request on standard error (text, or JSON with
--log-format json), written when the thread that served it runs out of work or within 50 ms (a busy
proxy writes many lines in one system call). SIGTERM or Ctrl-C: stop accepting, let requests in flight
and open WebSocket tunnels finish (up to --upstream-timeout plus 5 s, then they are closed), exit 0. A
client must send its body within --body-timeout (default 30 s), else 400.

Retries: Twilio sends the same I-Twilio-Idempotency-Token on each retry of a delivery. The first
delivery reaches the upstream; a retry gets the stored response (Idempotent-Replayed: true), or 409
if the first is still running after 5 s. Stored in this process, or in Redis (--redis, or
$TWSIG_REDIS_URL) to share them between instances, with the key and layout the Python, Go and Node
helpers use. A 5xx is not stored. If Redis fails, the request is forwarded anyway and an error logged.

--config FILE (TOML): top-level keys listen, admin_listen, base_url, trusted_proxies, body_limit,
upstream_timeout, body_timeout, log_format, redis (the options of the same names; options given on the command line win),
and one [[route]] table per route: prefix, upstream, and optionally token_files (that route's secrets
instead of TWILIO_AUTH_TOKEN / --token-file), key_id, base_url. The longest matching prefix wins;
a prefix matches whole path segments (/sms matches /sms and /sms/x, not /smsx).";

/// How log lines are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// One human-readable line per request
    Text,
    /// One JSON object per line
    Json,
}

#[derive(Args, Debug)]
pub struct ProxyArgs {
    /// Address to serve on, HOST:PORT (port 0: any free port, printed at start-up)
    #[arg(long, value_name = "ADDR")]
    listen: Option<SocketAddr>,
    /// The app: http://HOST:PORT, optionally with a path prefix put before every request path
    #[arg(long, value_name = "URL", conflicts_with = "config")]
    upstream: Option<String>,
    /// The public origin Twilio calls (https://example.com), plus the mount prefix the app does not see,
    /// if any. Without it: the connection's scheme (or a trusted proxy's X-Forwarded-Proto) and Host
    #[arg(long, value_name = "URL")]
    base_url: Option<String>,
    /// A load balancer whose X-Forwarded-Proto / X-Forwarded-Host are believed (CIDR or address);
    /// repeat for more
    #[arg(long = "trusted-proxy", value_name = "CIDR")]
    trusted_proxies: Vec<String>,
    /// Largest request body accepted, in bytes (default 1048576, 1 MiB); larger ones get 413
    #[arg(long, value_name = "BYTES")]
    body_limit: Option<usize>,
    /// Seconds to wait for the upstream's response head before answering 504 (default 15, as Twilio
    /// waits 15 s)
    #[arg(long, value_name = "SECONDS", value_parser = parse_seconds)]
    upstream_timeout: Option<Duration>,
    /// Seconds a client may take to send its request body (default 30); a slower one gets 400 and
    /// is not forwarded
    #[arg(long, value_name = "SECONDS", value_parser = parse_seconds)]
    body_timeout: Option<Duration>,
    /// Admin listener for /healthz, /readyz (every upstream accepts a connection) and /metrics
    /// (Prometheus)
    #[arg(long, value_name = "ADDR")]
    admin_listen: Option<SocketAddr>,
    /// text or json
    #[arg(long, value_enum, value_name = "FORMAT")]
    log_format: Option<LogFormat>,
    /// SharedKey id of the secrets (HMAC-SHA256 webhooks): only requests whose settings header names
    /// it, or no key, use them
    #[arg(long, value_name = "ID")]
    key_id: Option<String>,
    /// Share answered retries with other instances through this Redis (redis://HOST:PORT/DB). A URL
    /// with a password goes in $TWSIG_REDIS_URL or --config instead. Default: a store in this process
    #[arg(long, value_name = "URL")]
    redis: Option<String>,
    /// Routes and settings from a TOML file (see below)
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    #[command(flatten)]
    secrets: SecretArgs,
}

fn parse_seconds(text: &str) -> Result<Duration, String> {
    text.trim()
        .parse::<f64>()
        .ok()
        .filter(|s| s.is_finite() && *s > 0.0 && *s <= 86_400.0)
        .map(Duration::from_secs_f64)
        .ok_or_else(|| format!("{text:?} is not a number of seconds between 0 and 86400"))
}

/// `twsig proxy`: runs until SIGTERM or Ctrl-C.
pub fn run(args: &ProxyArgs) -> Result<u8, Failure> {
    args.secrets.check()?;
    let settings = config::Settings::resolve(args)?;
    server::serve(&settings)?;
    Ok(crate::EXIT_VALID)
}
