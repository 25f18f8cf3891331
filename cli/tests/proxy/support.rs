//! Shared by the `twsig proxy` tests: the proxy as a real process, the upstream apps (Python and Node),
//! a raw HTTP/1.1 client over std's TCP, and signing.

// Test helpers outside `#[test]` functions, where clippy.toml's unwrap allowance does not reach.
#![allow(
    dead_code,
    clippy::unwrap_used,
    clippy::panic,
    clippy::missing_panics_doc
)]

use std::fmt::Write as _;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use twilio_signature::Request;

pub const TOKEN: &str = "proxy test auth token";

/// How long anything may take to start or arrive before a test fails.
const PATIENCE: Duration = Duration::from_secs(20);

/// A child process killed when dropped.
pub struct Killed(pub Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[derive(Clone, Copy, Debug)]
pub enum App {
    Python,
    Node,
}

impl App {
    pub fn name(self) -> &'static str {
        match self {
            Self::Python => "python",
            Self::Node => "node",
        }
    }
}

pub fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/proxy")
}

/// Starts an upstream app on a free loopback port; returns it and its port.
pub fn start_app(app: App) -> (Killed, u16) {
    let mut command = match app {
        App::Python => {
            let mut c = Command::new("python3");
            c.arg(fixtures().join("upstream.py"));
            c
        }
        App::Node => {
            let mut c = Command::new("node");
            c.arg(fixtures().join("upstream.mjs"));
            c
        }
    };
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start the {} app: {e}", app.name()));
    let stdout = child.stdout.take().unwrap();
    let child = Killed(child);
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line).unwrap();
    let port = line
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("the {} app printed {line:?}", app.name()));
    (child, port)
}

/// A loopback port nothing listens on (bound, then released).
pub fn fresh_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `twsig proxy` running, with its standard error collected.
pub struct Proxy {
    child: Killed,
    pub port: u16,
    pub admin_port: Option<u16>,
    log: Arc<Mutex<String>>,
}

impl Proxy {
    /// `twsig proxy --listen 127.0.0.1:0 ARGS` with `TWILIO_AUTH_TOKEN` set to [`TOKEN`].
    pub fn start(args: &[&str]) -> Self {
        Self::start_with(args, &[("TWILIO_AUTH_TOKEN", TOKEN)])
    }

    pub fn start_with(args: &[&str], env: &[(&str, &str)]) -> Self {
        let mut command = Command::new(env!("CARGO_BIN_EXE_twsig"));
        command
            .arg("proxy")
            .args(["--listen", "127.0.0.1:0"])
            .args(args)
            .env_remove("TWILIO_AUTH_TOKEN")
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut child = command.spawn().unwrap();
        let stderr = child.stderr.take().unwrap();
        let child = Killed(child);
        let log = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let collected = Arc::clone(&log);
        std::thread::spawn(move || {
            let mut first = true;
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if first {
                    let _ = tx.send(line.clone());
                    first = false;
                }
                let mut log = collected.lock().unwrap();
                log.push_str(&line);
                log.push('\n');
            }
        });
        let first = rx
            .recv_timeout(PATIENCE)
            .expect("the proxy printed nothing");
        let port_after = |marker: &str| {
            first.split_once(marker).map(|(_, rest)| {
                let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
                digits.parse::<u16>().unwrap()
            })
        };
        let port = port_after("listening on 127.0.0.1:")
            .unwrap_or_else(|| panic!("the proxy did not start: {first}"));
        Self {
            child,
            port,
            admin_port: port_after("admin on 127.0.0.1:"),
            log,
        }
    }

    /// Everything the proxy wrote to standard error so far.
    pub fn log(&self) -> String {
        // Lines are read by another thread, and the proxy writes a request's line just after answering
        // it (when its thread runs out of work), so the client can have the answer first: wait until
        // nothing new has arrived for 100 ms (at most 2 s) rather than a fixed moment.
        let deadline = Instant::now() + Duration::from_secs(2);
        let mut seen = self.log.lock().unwrap().len();
        loop {
            std::thread::sleep(Duration::from_millis(100));
            let log = self.log.lock().unwrap().clone();
            if log.len() == seen || Instant::now() > deadline {
                return log;
            }
            seen = log.len();
        }
    }

    pub fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.child.0.id().to_string())
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// Waits (bounded) for the process to exit.
    pub fn wait(&mut self) -> ExitStatus {
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Some(status) = self.child.0.try_wait().unwrap() {
                return status;
            }
            assert!(Instant::now() < deadline, "the proxy did not exit");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// Polls `condition` every 20 ms for at most [`PATIENCE`].
pub fn wait_until(mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + PATIENCE;
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// One request on a fresh connection (`Connection: close`), the whole response read.
pub fn http(
    port: u16,
    method: &str,
    target: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Response {
    let mut request = format!(
        "{method} {target} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Length: {}\r\n",
        body.len()
    );
    let has_connection = headers
        .iter()
        .any(|(n, _)| n.eq_ignore_ascii_case("connection"));
    if !has_connection {
        request.push_str("Connection: close\r\n");
    }
    for (name, value) in headers {
        let _ = write!(request, "{name}: {value}\r\n");
    }
    request.push_str("\r\n");
    let mut bytes = request.into_bytes();
    bytes.extend_from_slice(body);
    exchange(port, &bytes)
}

/// A request head only (the body it declares is never sent), for refusals that come before the body.
pub fn http_head_only(port: u16, request_line: &str, headers: &[(&str, &str)]) -> Response {
    http_partial_body(port, request_line, headers, b"")
}

/// A request head and the start of its body, the rest never sent (the connection stays open).
pub fn http_partial_body(
    port: u16,
    request_line: &str,
    headers: &[(&str, &str)],
    body_start: &[u8],
) -> Response {
    let mut request = format!("{request_line}\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n");
    for (name, value) in headers {
        let _ = write!(request, "{name}: {value}\r\n");
    }
    request.push_str("\r\n");
    let mut bytes = request.into_bytes();
    bytes.extend_from_slice(body_start);
    exchange(port, &bytes)
}

fn exchange(port: u16, request: &[u8]) -> Response {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream.set_read_timeout(Some(PATIENCE)).unwrap();
    stream.write_all(request).unwrap();
    let mut raw = Vec::new();
    // A response with Content-Length is read to its end; otherwise to the connection's close.
    let mut buffer = vec![0u8; 65536];
    loop {
        match stream.read(&mut buffer) {
            Ok(0) => break,
            Ok(n) => raw.extend_from_slice(&buffer[..n]),
            Err(e) if !raw.is_empty() => {
                eprintln!("reading the response: {e}");
                break;
            }
            Err(e) => panic!("no response: {e}"),
        }
        if let Some(response) = parse(&raw) {
            if response.is_complete {
                return response.response;
            }
        }
    }
    parse(&raw)
        .unwrap_or_else(|| panic!("not an HTTP response: {:?}", String::from_utf8_lossy(&raw)))
        .response
}

struct Parsed {
    response: Response,
    is_complete: bool,
}

fn parse(raw: &[u8]) -> Option<Parsed> {
    let end = raw.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = std::str::from_utf8(&raw[..end]).ok()?;
    let mut lines = head.split("\r\n");
    let status = lines.next()?.split(' ').nth(1)?.parse().ok()?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_owned(), v.trim().to_owned()))
        .collect();
    let body = raw[end + 4..].to_vec();
    let length = headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.parse::<usize>().ok());
    let is_complete = length.is_some_and(|l| body.len() >= l);
    Some(Parsed {
        response: Response {
            status,
            headers,
            body,
        },
        is_complete,
    })
}

/// What an app received: `GET /__received` straight from the app.
pub fn received(app_port: u16) -> Vec<Seen> {
    let response = http(app_port, "GET", "/__received", &[], b"");
    assert_eq!(response.status, 200);
    let values: Vec<serde_json::Value> = serde_json::from_slice(&response.body).unwrap();
    values.into_iter().map(Seen).collect()
}

/// One request as the app saw it.
#[derive(Debug)]
pub struct Seen(pub serde_json::Value);

impl std::ops::Index<&str> for Seen {
    type Output = serde_json::Value;

    fn index(&self, key: &str) -> &serde_json::Value {
        &self.0[key]
    }
}

impl Seen {
    pub fn body(&self) -> Vec<u8> {
        let text = self.0["body_b64"].as_str().unwrap();
        decode_base64(text)
    }
}

/// Every value of the header `name` (any case) as the app received it.
pub fn header_values(seen: &Seen, name: &str) -> Vec<String> {
    seen.0["headers"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|pair| pair[0].as_str().unwrap().eq_ignore_ascii_case(name))
        .map(|pair| pair[1].as_str().unwrap().to_owned())
        .collect()
}

fn decode_base64(text: &str) -> Vec<u8> {
    let value = |c: u8| -> u32 {
        match c {
            b'A'..=b'Z' => u32::from(c - b'A'),
            b'a'..=b'z' => u32::from(c - b'a') + 26,
            b'0'..=b'9' => u32::from(c - b'0') + 52,
            b'+' => 62,
            b'/' => 63,
            _ => panic!("not base64: {c}"),
        }
    };
    let mut out = Vec::new();
    for chunk in text.trim_end_matches('=').as_bytes().chunks(4) {
        let mut bits = 0u32;
        for (i, &c) in chunk.iter().enumerate() {
            bits |= value(c) << (18 - 6 * i);
        }
        let bytes = bits.to_be_bytes();
        out.extend_from_slice(&bytes[1..chunk.len()]);
    }
    out
}

/// The X-Twilio-Signature for a form body POSTed to `url`, with [`TOKEN`].
pub fn sign_form(url: &str, body: &[u8]) -> String {
    sign_form_with(TOKEN.as_bytes(), url, body)
}

pub fn sign_form_with(secret: &[u8], url: &str, body: &[u8]) -> String {
    twilio_signature::sign(secret, &Request::post(url, body))
        .unwrap()
        .as_str()
        .to_owned()
}

/// A JSON webhook: the URL with `?bodySHA256=...` and its signature, from `twsig sign --json-file`.
pub fn sign_json(url: &str, body: &[u8]) -> (String, String) {
    let dir = std::env::temp_dir().join(format!("twsig-proxy-json-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join(format!("{:x}.json", body.len()));
    std::fs::write(&file, body).unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_twsig"))
        .args(["sign", "--url", url, "--json-file"])
        .arg(&file)
        .env("TWILIO_AUTH_TOKEN", TOKEN)
        .output()
        .unwrap();
    assert!(output.status.success());
    let stdout = String::from_utf8(output.stdout).unwrap();
    let signed_url = stdout
        .lines()
        .find_map(|l| l.strip_prefix("URL: "))
        .unwrap()
        .to_owned();
    let signature = stdout.lines().last().unwrap().to_owned();
    (signed_url, signature)
}
