//! `twsig`: sign, verify and explain Twilio webhook signatures, and send signed test webhooks to a local
//! app. The secret comes from `TWILIO_AUTH_TOKEN` or `--token-file`, never from the command line.

// mimalloc: the proxy allocates a few dozen small blocks per request (headers, bodies, futures), and
// glibc's malloc and free were an eighth of its own work per webhook (callgrind).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod body;
mod proxy;
mod secrets;
mod send;

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use twilio_signature::{Algorithm, Request, Validator};

use body::{BodyArgs, Kind};

/// Why the command stopped: exit code 1 (invalid) or 2 (bad usage), and one line saying why.
#[derive(Debug)]
pub struct Failure {
    code: u8,
    message: String,
}

impl Failure {
    pub fn usage(message: impl Into<String>) -> Self {
        Self {
            code: EXIT_USAGE,
            message: message.into(),
        }
    }
}

const EXIT_VALID: u8 = 0;
const EXIT_INVALID: u8 = 1;
const EXIT_USAGE: u8 = 2;

const ABOUT: &str = "Sign, verify and explain Twilio webhook signatures (X-Twilio-Signature)";

const LONG_ABOUT: &str = "\
Sign, verify and explain Twilio webhook signatures (X-Twilio-Signature), and send signed test
webhooks to an app on this machine.

The secret (Auth Token, or SharedKey secret for HMAC-SHA256) comes from the environment variable
TWILIO_AUTH_TOKEN or from --token-file FILE. It is never accepted as an argument: command lines are
visible to other users in `ps` and are kept in shell history.";

const EXAMPLES: &str = "\
Examples:
  export TWILIO_AUTH_TOKEN=...            # or: --token-file ~/.twilio-token
  twsig sign --url https://example.com/sms --form-file body.txt
  twsig verify --url https://example.com/sms --signature 'RSOYDt4T1cUTdK1PDd93/VVr8B8=' --form-file body.txt
  twsig explain --url http://example.com/sms --signature 'RSOYDt4T1cUTdK1PDd93/VVr8B8=' --form-file body.txt
  twsig send --url http://127.0.0.1:5000/sms --param Body=hello

Exit codes: 0 valid (or sent, 2xx/3xx), 1 invalid (or 4xx/5xx answer), 2 bad usage.";

#[derive(Parser, Debug)]
#[command(name = "twsig", version, about = ABOUT, long_about = LONG_ABOUT, after_help = EXAMPLES)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Print the X-Twilio-Signature Twilio would send for a request (last line of output)
    #[command(after_help = SIGN_EXAMPLES)]
    Sign(SignArgs),
    /// Check a signature: exit 0 valid, 1 invalid, 2 bad usage; says which secret and URL form matched
    #[command(after_help = VERIFY_EXAMPLES)]
    Verify(CheckArgs),
    /// Like verify, and when it fails name the likely mistake (http vs https, slash, query, ...) and the fix
    #[command(after_help = EXPLAIN_EXAMPLES)]
    Explain(CheckArgs),
    /// POST a signed, Twilio-shaped webhook (an inbound SMS by default), or a signed WebSocket
    /// handshake, to a server on this machine
    #[command(after_help = SEND_EXAMPLES)]
    Send(SendArgs),
    /// Verifying reverse proxy: forward only requests signed by Twilio to an app in any language
    #[command(about = proxy::PROXY_ABOUT, after_help = proxy::PROXY_EXAMPLES)]
    Proxy(proxy::ProxyArgs),
}

const SIGN_EXAMPLES: &str = "\
Examples:
  # A form webhook (the body exactly as sent, application/x-www-form-urlencoded)
  printf '%s' 'From=%2B15551234567&Body=Hi' | twsig sign --url https://example.com/sms
  # A JSON webhook: prints the URL with ?bodySHA256=... that Twilio signs, then the signature
  twsig sign --url https://example.com/events --json-file event.json
  # SharedKey (HMAC-SHA256): prints the settings header to send, then the signature
  TWILIO_AUTH_TOKEN=\"$SHARED_KEY_SECRET\" twsig sign --url https://example.com/sms --key-id KS123 --form-file body.txt
  # A GET (no body): the signature covers the URL alone
  twsig sign --url 'https://example.com/voice?CallSid=CA123' --get";

const VERIFY_EXAMPLES: &str = "\
Examples:
  twsig verify --url https://example.com/sms --signature 'RSOYDt4T1cUTdK1PDd93/VVr8B8=' --form-file body.txt
  # Key rotation: try the primary and the secondary Auth Token, report which matched
  twsig verify --token-file primary.txt --token-file secondary.txt --url ... --signature ... --form-file body.txt
  # SharedKey: pass the settings header exactly as received
  twsig verify --url ... --signature ... --signature-settings 'key=KS123,algorithm=HMAC_SHA256' --body-file body
  # JSON: the URL as requested, with its bodySHA256, and the raw body
  twsig verify --url 'https://example.com/events?bodySHA256=...' --signature ... --json-file event.json

Exit codes: 0 valid, 1 invalid, 2 bad usage.";

const EXPLAIN_EXAMPLES: &str = "\
Examples:
  # The app saw http:// behind a TLS-terminating proxy; Twilio signed https://
  twsig explain --url http://example.com/sms --signature '...' --form-file body.txt
  # A 44-character signature without its settings header
  twsig explain --url https://example.com/sms --signature '...' --form-file body.txt
  # A Media Streams handshake (no body) checked against the https:// URL the app saw
  twsig explain --url https://example.com/media --signature '...' --get

Common causes it recognises: http vs https, a port, a trailing slash, an added query string, a JSON
body verified as a form (its URL without its bodySHA256), a missing or unexpected settings header, a
SharedKey id mismatch, a WebSocket handshake verified as https:// (Twilio signs its wss:// URL) or
the reverse, a path doubled by a base URL that ends with the route, a port the app does not see
(8443, 8080, 8000, 3000, 5000). When nothing matches it says whether the URL looks internal (an app
behind a proxy verifying its own address: Twilio signs the public URL) or, for a public URL, to
check the token. Exit codes as for verify.";

const SEND_EXAMPLES: &str = "\
Examples:
  # An inbound SMS to a local Flask app, signed with $TWILIO_AUTH_TOKEN
  twsig send --url http://127.0.0.1:5000/sms
  twsig send --url http://127.0.0.1:5000/sms --param Body=STOP --param From=+15557654321
  # The app sits behind a proxy and verifies its public https URL
  twsig send --url http://127.0.0.1:8000/sms --sign-url https://example.com/sms
  # A JSON webhook (signed over the URL with ?bodySHA256=...)
  twsig send --url http://127.0.0.1:5000/events --json '{\"type\":\"test\"}'
  # A forged request, to check that the app refuses it
  twsig send --url http://127.0.0.1:5000/sms --signature 'AAAAAAAAAAAAAAAAAAAAAAAAAAA='
  # A retry of the same delivery, and a header a proxy would add
  twsig send --url http://127.0.0.1:5000/sms -H 'I-Twilio-Idempotency-Token: 1234' -H 'X-Forwarded-Proto: https'
  # The signed WebSocket handshake of a Media Streams call (Twilio signs the wss:// URL it was given)
  twsig send --websocket --url http://127.0.0.1:8000/media --sign-url wss://example.com/media

Only loopback hosts are accepted (localhost, 127.0.0.0/8, [::1]). Prints the status line and the body.
-H may not set X-Twilio-Signature or its settings header (use --signature, --signature-settings) nor
Host, Content-Length, Transfer-Encoding or Connection; a CR or LF in a header is refused (exit 2).
Exit codes: 0 for a 2xx/3xx answer (--websocket: a 101 with the right Sec-WebSocket-Accept), 1 for
4xx/5xx (--websocket: anything else), 2 bad usage or no connection.";

/// Where the secrets come from.
#[derive(Args, Debug)]
struct SecretArgs {
    /// File holding the Auth Token or SharedKey secret (trailing newline ignored); repeat to try
    /// several (key rotation, subaccounts). Default: $TWILIO_AUTH_TOKEN
    #[arg(long, value_name = "FILE")]
    token_file: Vec<PathBuf>,
    /// Refused: a secret on the command line is visible in `ps` and shell history
    #[arg(long, hide = true, value_name = "TOKEN", num_args = 0..=1, aliases = ["auth-token", "secret"])]
    token: Option<OsString>,
    /// Stray positional arguments: refused without echoing them (one could be a token).
    #[arg(hide = true)]
    stray: Vec<OsString>,
}

impl SecretArgs {
    fn check(&self) -> Result<(), Failure> {
        if self.token.is_some() {
            return Err(Failure::usage(
                "--token is refused: a secret on the command line is visible to other users in `ps` and \
                 stays in shell history; set TWILIO_AUTH_TOKEN or pass --token-file FILE",
            ));
        }
        if !self.stray.is_empty() {
            return Err(Failure::usage(format!(
                "{} unexpected argument(s), not shown (one could be a secret): options take --name VALUE; \
                 the body comes from a file option or standard input, the secret from TWILIO_AUTH_TOKEN \
                 or --token-file",
                self.stray.len()
            )));
        }
        Ok(())
    }

    fn load(&self) -> Result<Vec<secrets::Loaded>, Failure> {
        self.check()?;
        secrets::load(&self.token_file)
    }
}

/// The algorithm and key: `--signature-settings` verbatim, or built from `--algorithm`/`--key-id`.
#[derive(Args, Debug)]
struct SettingsArgs {
    /// X-Twilio-Webhooks-Signature-Settings header value, exactly as received
    /// (e.g. key=KS123,algorithm=HMAC_SHA256)
    #[arg(long, value_name = "HEADER", conflicts_with = "algorithm")]
    signature_settings: Option<String>,
    /// HMAC_SHA1 (Auth Token, the default) or HMAC_SHA256 (SharedKey); builds the settings header
    #[arg(long, value_name = "ALGORITHM", value_parser = parse_algorithm)]
    algorithm: Option<Algorithm>,
    /// SharedKey id: goes into the settings header (with HMAC_SHA256 unless --algorithm says
    /// otherwise) and is attached to the secret(s)
    #[arg(long, value_name = "ID")]
    key_id: Option<String>,
}

fn parse_algorithm(text: &str) -> Result<Algorithm, String> {
    let upper = text.to_ascii_uppercase().replace('-', "_");
    let name = if upper.starts_with("HMAC_") {
        upper
    } else {
        format!("HMAC_{upper}")
    };
    Algorithm::from_name(name.as_bytes())
        .ok_or_else(|| format!("unknown algorithm {text:?}: use HMAC_SHA1 or HMAC_SHA256"))
}

impl SettingsArgs {
    /// The settings header value to use, if any.
    fn header(&self) -> Option<String> {
        if let Some(header) = &self.signature_settings {
            return Some(header.clone());
        }
        let algorithm = match (self.algorithm, &self.key_id) {
            (None, None) => return None,
            (Some(algorithm), _) => algorithm,
            (None, Some(_)) => Algorithm::HmacSha256,
        };
        Some(match &self.key_id {
            Some(id) => format!("key={id},algorithm={}", algorithm.name()),
            None => format!("algorithm={}", algorithm.name()),
        })
    }
}

#[derive(Args, Debug)]
struct SignArgs {
    /// The full URL Twilio requests (as configured in the console: scheme, host, port, path, query)
    #[arg(long)]
    url: String,
    #[command(flatten)]
    settings: SettingsArgs,
    #[command(flatten)]
    body: BodyArgs,
    #[command(flatten)]
    secrets: SecretArgs,
}

#[derive(Args, Debug)]
struct CheckArgs {
    /// The full URL Twilio requested, as your app reconstructs it
    #[arg(long)]
    url: String,
    /// The X-Twilio-Signature header value
    #[arg(long, value_name = "SIGNATURE", allow_hyphen_values = true)]
    signature: String,
    #[command(flatten)]
    settings: SettingsArgs,
    #[command(flatten)]
    body: BodyArgs,
    #[command(flatten)]
    secrets: SecretArgs,
}

#[derive(Args, Debug)]
struct SendArgs {
    /// Where to POST: an http:// URL on this machine (localhost, 127.0.0.0/8, [::1]); with
    /// --websocket, http:// or ws://
    #[arg(long)]
    url: String,
    /// The URL to sign, when the app verifies another one (its public https URL behind a proxy; the
    /// wss:// URL for --websocket). Used as given
    #[arg(long, value_name = "URL")]
    sign_url: Option<String>,
    /// Perform a signed WebSocket handshake (a Media Streams / ConversationRelay stream: a GET with
    /// Upgrade: websocket, no body) instead of a POST, signed over the ws:// form of --url unless
    /// --sign-url is given; exit 0 when the server answers 101 Switching Protocols
    #[arg(long, conflicts_with_all = ["params", "no_default_params", "json", "json_file"])]
    websocket: bool,
    /// An extra request header 'Name: value'; repeat for more. It replaces a default of that name
    /// (Content-Type, User-Agent, Accept). The signature headers and the framing ones (Host,
    /// Content-Length, Connection, ...) are refused: use --signature / --signature-settings
    #[arg(short = 'H', long = "header", value_name = "NAME: VALUE", value_parser = send::parse_header)]
    headers: Vec<(String, String)>,
    /// A form parameter NAME=VALUE; replaces the default of that name; repeat for more
    #[arg(long = "param", value_name = "NAME=VALUE", value_parser = send::parse_param)]
    params: Vec<(String, String)>,
    /// Send only the --param parameters, not the default inbound-SMS ones
    #[arg(long)]
    no_default_params: bool,
    /// Send this JSON body instead of a form (signed with ?bodySHA256=... added to the URL)
    #[arg(long, value_name = "JSON", conflicts_with_all = ["params", "json_file"])]
    json: Option<String>,
    /// Send the JSON body in this file instead of a form
    #[arg(long, value_name = "FILE", conflicts_with = "params")]
    json_file: Option<PathBuf>,
    /// Send this X-Twilio-Signature instead of computing one (to check that a forgery is refused)
    #[arg(long, value_name = "SIGNATURE", allow_hyphen_values = true)]
    signature: Option<String>,
    #[command(flatten)]
    settings: SettingsArgs,
    /// Seconds to wait for the server
    #[arg(long, value_name = "SECONDS", default_value_t = 10)]
    timeout: u64,
    #[command(flatten)]
    secrets: SecretArgs,
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) if e.kind() == clap::error::ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
            // `twsig` alone: the help is the answer, but it is still not a command.
            let _ = e.print();
            return ExitCode::from(EXIT_USAGE);
        }
        Err(e) if e.use_stderr() => {
            // One line: clap's first paragraph names the problem; --help has the rest.
            let rendered = e.render().to_string();
            let problem: Vec<&str> = rendered
                .lines()
                .take_while(|line| !line.trim().is_empty())
                .map(str::trim)
                .collect();
            let problem = problem.join(" ");
            eprintln!(
                "twsig: {} (see --help)",
                problem.trim_start_matches("error: ")
            );
            return ExitCode::from(EXIT_USAGE);
        }
        Err(e) => {
            let _ = e.print();
            return ExitCode::SUCCESS;
        }
    };
    let outcome = match &cli.command {
        Command::Sign(args) => sign(args),
        Command::Verify(args) => check(args, false),
        Command::Explain(args) => check(args, true),
        Command::Send(args) => send_webhook(args),
        Command::Proxy(args) => proxy::run(args),
    };
    match outcome {
        Ok(code) => ExitCode::from(code),
        Err(failure) => {
            eprintln!("twsig: {}", failure.message);
            ExitCode::from(failure.code)
        }
    }
}

fn sign(args: &SignArgs) -> Result<u8, Failure> {
    let loaded = args.secrets.load()?;
    let body = args.body.read()?;
    let header = args.settings.header();
    let url = match body.kind {
        Kind::Json => body::with_body_hash(&args.url, &body.bytes),
        Kind::Form if body::has_body_hash(&args.url) => {
            return Err(Failure::usage(
                "the URL carries bodySHA256 (a JSON webhook URL) but --form-file was given: use --json-file",
            ))
        }
        Kind::Form | Kind::Raw => args.url.clone(),
    };
    let request = Request::post(&url, &body.bytes).settings(header.as_deref().map(str::as_bytes));
    let signature = twilio_signature::sign(loaded[0].bytes(), &request)
        .map_err(|e| Failure::usage(format!("cannot sign: {e}")))?;
    if url != args.url || body.kind == Kind::Json {
        println!("URL: {url}");
    }
    if let Some(header) = &header {
        println!("X-Twilio-Webhooks-Signature-Settings: {header}");
    }
    println!("{}", signature.as_str());
    Ok(EXIT_VALID)
}

/// `verify` (just the verdict) and `explain` (the verdict, and the likely mistake with its fix).
fn check(args: &CheckArgs, explain: bool) -> Result<u8, Failure> {
    let loaded = args.secrets.load()?;
    let secrets = secrets::prepare(&loaded, args.settings.key_id.as_deref())?;
    let validator = Validator::with_secrets(&secrets);
    let body = args.body.read()?;
    if body.kind == Kind::Form && body::has_body_hash(&args.url) {
        return Err(Failure::usage(
            "the URL carries bodySHA256 (a JSON webhook URL) but --form-file was given: use --json-file",
        ));
    }
    let header = args.settings.header();
    let request = Request::post(&args.url, &body.bytes)
        .signature(&args.signature)
        .settings(header.as_deref().map(str::as_bytes));
    let origin = |index: usize| {
        if loaded.len() > 1 {
            format!(" ({})", loaded[index].origin)
        } else {
            String::new()
        }
    };
    let json_without_hash = body.kind == Kind::Json && !body::has_body_hash(&args.url);

    if !explain {
        return Ok(match validator.verify(&request) {
            Ok(verified) => {
                println!(
                    "valid: {} signature by secret #{}{} over {}",
                    verified.algorithm,
                    verified.secret_index,
                    origin(verified.secret_index),
                    verified.candidate.describe()
                );
                EXIT_VALID
            }
            Err(error) => {
                println!("invalid: {error}");
                if json_without_hash {
                    println!(
                        "note: the URL has no bodySHA256, so the JSON body was read as a form"
                    );
                }
                println!("hint: run `twsig explain` with the same options for the likely cause");
                EXIT_INVALID
            }
        });
    }

    let explanation = validator.explain(&request);
    println!("{explanation}");
    if let Some(index) = explanation
        .verdict
        .map(|v| v.secret_index)
        .ok()
        .or(explanation.diagnosis.map(|d| d.secret_index))
    {
        if loaded.len() > 1 {
            println!("secret #{index} is{}", origin(index));
        }
    }
    Ok(if explanation.verdict.is_ok() {
        EXIT_VALID
    } else {
        EXIT_INVALID
    })
}

fn send_webhook(args: &SendArgs) -> Result<u8, Failure> {
    let target = send::loopback_target(&args.url, args.websocket)?;
    if let Some(refusal) = args
        .headers
        .iter()
        .find_map(|(name, _)| send::refused_header(name, args.websocket))
    {
        return Err(Failure::usage(refusal));
    }
    let loaded = args.secrets.load()?;
    let header = args.settings.header();
    if args.websocket {
        return send_handshake(args, &target, &loaded, header.as_deref());
    }
    let signed_url = args.sign_url.as_deref().unwrap_or(&args.url);

    let json = match (&args.json, &args.json_file) {
        (Some(json), _) => Some(json.clone().into_bytes()),
        (None, Some(path)) => Some(body::read_file(path)?),
        (None, None) => None,
    };
    let (body, content_type, signed_url, target) = if let Some(json) = json {
        // The body hash travels in the query of the URL that is requested and of the URL signed.
        let target = send::Target {
            path: body::with_body_hash(&target.path, &json),
            ..target
        };
        let signed = body::with_body_hash(signed_url, &json);
        (json, "application/json", signed, target)
    } else {
        let params = send::merge_params(args.no_default_params, &args.params);
        let form = send::form_encode(&params).into_bytes();
        (
            form,
            "application/x-www-form-urlencoded",
            signed_url.to_owned(),
            target,
        )
    };

    let request = Request::post(&signed_url, &body).settings(header.as_deref().map(str::as_bytes));
    let computed = twilio_signature::sign(loaded[0].bytes(), &request)
        .map_err(|e| Failure::usage(format!("cannot sign: {e}")))?;
    let signature = args.signature.as_deref().unwrap_or(computed.as_str());

    let mut headers = send::with_extra_headers(
        &[
            ("Content-Type", content_type),
            ("User-Agent", "TwilioProxy/1.1"),
            ("Accept", "*/*"),
        ],
        &args.headers,
    );
    headers.push(("X-Twilio-Signature", signature));
    if let Some(header) = &header {
        headers.push(("X-Twilio-Webhooks-Signature-Settings", header));
    }
    let response = send::post(&target, &headers, &body, Duration::from_secs(args.timeout))?;
    println!("{}", response.status_line);
    let text = String::from_utf8_lossy(&response.body);
    if !text.is_empty() {
        println!("{}", text.trim_end());
    }
    Ok(if response.status < 400 {
        EXIT_VALID
    } else {
        EXIT_INVALID
    })
}

/// `send --websocket`: the handshake Twilio makes to a `<Stream>`/`<Connect><Stream>` URL, signed over
/// its URL alone (no body), and the server's answer.
fn send_handshake(
    args: &SendArgs,
    target: &send::Target,
    loaded: &[secrets::Loaded],
    settings: Option<&str>,
) -> Result<u8, Failure> {
    // Twilio signs the wss:// URL it was given; locally that is the ws:// form of --url.
    let signed_url = match &args.sign_url {
        Some(url) => url.clone(),
        None => match args.url.split_once("://") {
            Some((scheme, rest)) if scheme.eq_ignore_ascii_case("http") => format!("ws://{rest}"),
            _ => args.url.clone(),
        },
    };
    let request = Request::get(&signed_url).settings(settings.map(str::as_bytes));
    let computed = twilio_signature::sign(loaded[0].bytes(), &request)
        .map_err(|e| Failure::usage(format!("cannot sign: {e}")))?;
    let signature = args.signature.as_deref().unwrap_or(computed.as_str());
    let mut headers = send::with_extra_headers(&[("User-Agent", "TwilioProxy/1.1")], &args.headers);
    headers.push(("X-Twilio-Signature", signature));
    if let Some(settings) = settings {
        headers.push(("X-Twilio-Webhooks-Signature-Settings", settings));
    }
    let handshake = send::websocket_handshake(target, &headers, Duration::from_secs(args.timeout))?;
    let response = &handshake.response;
    println!("{}", response.status_line);
    match handshake.accept_matches {
        Some(true) => {
            println!(
                "upgraded: the server switched to WebSocket (signed over {signed_url}); closed it"
            );
            Ok(EXIT_VALID)
        }
        Some(false) => {
            println!(
                "not a WebSocket server: the 101's Sec-WebSocket-Accept does not answer the key sent"
            );
            Ok(EXIT_INVALID)
        }
        None => {
            let text = String::from_utf8_lossy(&response.body);
            if !text.is_empty() {
                println!("{}", text.trim_end());
            }
            println!(
                "not upgraded: the handshake (signed over {signed_url}) was answered without 101"
            );
            Ok(EXIT_INVALID)
        }
    }
}
