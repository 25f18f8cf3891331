//! `twsig send`: a Twilio-shaped webhook, signed, POSTed over plain HTTP/1.1 to a server on this machine;
//! or, with `--websocket`, the signed WebSocket handshake of a Media Streams / ConversationRelay call.
//!
//! Loopback only: the command exists to exercise a webhook handler without Twilio or a tunnel, and a
//! hand-written client that never leaves the machine needs no TLS and no HTTP library.

use std::fmt::Write as _;
use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream, ToSocketAddrs};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64ct::{Base64, Encoding};
use sha1::{Digest, Sha1};
use twilio_signature::BodyHash;

use crate::Failure;

/// Where to connect: a loopback address and the request target (path and query).
#[derive(Debug)]
pub struct Target {
    pub host_header: String,
    pub addrs: Vec<SocketAddr>,
    pub path: String,
}

/// Splits an `http://` URL (or `ws://` when `websocket`) and refuses any host that is not this
/// machine.
pub fn loopback_target(url: &str, websocket: bool) -> Result<Target, Failure> {
    let scheme_end = url
        .find("://")
        .ok_or_else(|| Failure::usage(format!("--url {url:?} is not an absolute http:// URL")))?;
    let scheme = &url[..scheme_end];
    let plain =
        scheme.eq_ignore_ascii_case("http") || (websocket && scheme.eq_ignore_ascii_case("ws"));
    if !plain {
        let allowed = if websocket {
            "http:// or ws://"
        } else {
            "http://"
        };
        return Err(Failure::usage(format!(
            "--url must be {allowed} (send talks plain HTTP to a server on this machine; got {scheme}://). \
             To sign for the public URL behind a proxy, add --sign-url https://... (wss://... for a handshake)"
        )));
    }
    let rest = &url[scheme_end + 3..];
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..authority_end];
    let path = rest[authority_end..].split('#').next().unwrap_or_default();
    let path = if path.starts_with('/') {
        path.to_owned()
    } else {
        format!("/{path}")
    };
    if authority.contains('@') {
        return Err(Failure::usage(
            "--url must not carry user:pass@ credentials (send does not authenticate)",
        ));
    }
    let (host, port) = split_host_port(authority)?;
    let refuse = || {
        Failure::usage(format!(
            "refusing to send to {host}: twsig send only talks to servers on this machine \
             (localhost, 127.0.0.1, [::1]); it is for testing a webhook handler locally"
        ))
    };
    let addrs: Vec<SocketAddr> = match host.trim_start_matches('[').trim_end_matches(']').parse() {
        Ok(ip) => vec![SocketAddr::new(ip, port)],
        Err(_) if host.eq_ignore_ascii_case("localhost") => (host, port)
            .to_socket_addrs()
            .map_err(|e| Failure::usage(format!("cannot resolve localhost: {e}")))?
            .collect(),
        Err(_) => return Err(refuse()),
    };
    if addrs.is_empty() || !addrs.iter().all(|a| is_loopback(a.ip())) {
        return Err(refuse());
    }
    Ok(Target {
        host_header: authority.to_owned(),
        addrs,
        path,
    })
}

fn is_loopback(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_loopback(),
        IpAddr::V6(v6) => {
            v6.is_loopback() || v6.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback())
        }
    }
}

fn split_host_port(authority: &str) -> Result<(&str, u16), Failure> {
    let bad_port = || Failure::usage(format!("--url has a bad port in {authority:?}"));
    let (host, port) = if authority.starts_with('[') {
        let close = authority.find(']').ok_or_else(|| {
            Failure::usage(format!(
                "--url has an unclosed IPv6 literal in {authority:?}"
            ))
        })?;
        let (host, after) = authority.split_at(close + 1);
        (host, after.strip_prefix(':'))
    } else {
        match authority.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        }
    };
    if host.is_empty() {
        return Err(Failure::usage("--url has no host"));
    }
    let port = match port {
        None => 80,
        Some(port) => port.parse().map_err(|_| bad_port())?,
    };
    Ok((host, port))
}

/// The parameters of an inbound SMS webhook, as Twilio sends them (synthetic SIDs and numbers).
pub fn default_sms_params() -> Vec<(String, String)> {
    // A fresh MessageSid per run, like Twilio's: handlers that de-duplicate on it see a new message.
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let sid = &BodyHash::of(&nanos.to_le_bytes()).to_string()[..32];
    let account = format!("AC{}", "0".repeat(32));
    [
        ("ToCountry", "US"),
        ("ToState", "CA"),
        ("SmsMessageSid", &format!("SM{sid}")),
        ("NumMedia", "0"),
        ("ToCity", "SAN FRANCISCO"),
        ("FromZip", "94107"),
        ("SmsSid", &format!("SM{sid}")),
        ("FromState", "CA"),
        ("SmsStatus", "received"),
        ("FromCity", "SAN FRANCISCO"),
        ("Body", "Hello from twsig"),
        ("FromCountry", "US"),
        ("To", "+15005550006"),
        ("ToZip", "94105"),
        ("NumSegments", "1"),
        ("MessageSid", &format!("SM{sid}")),
        ("AccountSid", &account),
        ("From", "+15551234567"),
        ("ApiVersion", "2010-04-01"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect()
}

/// The defaults (unless `no_defaults`) with each `--param` name replacing the default of that name;
/// repeated `--param` names are all kept (multi-valued fields).
pub fn merge_params(no_defaults: bool, overrides: &[(String, String)]) -> Vec<(String, String)> {
    let mut params = if no_defaults {
        Vec::new()
    } else {
        default_sms_params()
    };
    params.retain(|(name, _)| !overrides.iter().any(|(n, _)| n == name));
    params.extend(overrides.iter().cloned());
    params
}

/// `k=v` from the command line.
pub fn parse_param(arg: &str) -> Result<(String, String), String> {
    let (name, value) = arg
        .split_once('=')
        .ok_or_else(|| format!("expected NAME=VALUE, got {arg:?}"))?;
    if name.is_empty() {
        return Err("the parameter name is empty".to_owned());
    }
    Ok((name.to_owned(), value.to_owned()))
}

/// `-H 'Name: value'` from the command line: the name an HTTP token, the value without a CR, LF or
/// other control character (a tab is allowed), spaces around it trimmed.
pub fn parse_header(arg: &str) -> Result<(String, String), String> {
    let (name, value) = arg
        .split_once(':')
        .ok_or_else(|| format!("expected 'Name: value', got {arg:?}"))?;
    // RFC 9110 token characters.
    let token = |c: char| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c);
    if name.is_empty() || !name.chars().all(token) {
        return Err(format!(
            "the header name {name:?} is not an HTTP field name (letters, digits and !#$%&'*+-.^_`|~, \
             no spaces)"
        ));
    }
    if value.contains(['\r', '\n']) {
        // A line break would end the header and start another of the caller's choosing.
        return Err(format!(
            "the {name} header value contains a line break (CR or LF): refused"
        ));
    }
    if value.chars().any(|c| c.is_control() && c != '\t') {
        return Err(format!(
            "the {name} header value contains a control character: refused"
        ));
    }
    Ok((name.to_owned(), value.trim_matches([' ', '\t']).to_owned()))
}

/// Headers `-H` may not set: the signature and its settings have their own options (a signature
/// given by `-H` would silently replace the one computed), and the framing headers are written by
/// `send` itself.
pub fn refused_header(name: &str, websocket: bool) -> Option<&'static str> {
    let is = |other: &str| name.eq_ignore_ascii_case(other);
    if is("X-Twilio-Signature") {
        Some("-H cannot set X-Twilio-Signature: send computes it; to send a chosen (forged) signature use --signature")
    } else if is("X-Twilio-Webhooks-Signature-Settings") {
        Some("-H cannot set X-Twilio-Webhooks-Signature-Settings: it must match the signature; use --signature-settings (or --algorithm/--key-id)")
    } else if ["Host", "Content-Length", "Transfer-Encoding", "Connection"]
        .into_iter()
        .any(is)
    {
        Some("-H cannot set Host, Content-Length, Transfer-Encoding or Connection: send writes them to frame the request")
    } else if websocket
        && ["Upgrade", "Sec-WebSocket-Key", "Sec-WebSocket-Version"]
            .into_iter()
            .any(is)
    {
        Some("-H cannot set Upgrade, Sec-WebSocket-Key or Sec-WebSocket-Version with --websocket: send writes the handshake")
    } else {
        None
    }
}

/// The headers to send: `defaults` (name, value) with each one that `-H` names replaced by the `-H`
/// lines of that name, then the other `-H` lines, in order. Repeated `-H` names are all sent.
pub fn with_extra_headers<'a>(
    defaults: &[(&'a str, &'a str)],
    extra: &'a [(String, String)],
) -> Vec<(&'a str, &'a str)> {
    let named = |name: &str| extra.iter().any(|(n, _)| n.eq_ignore_ascii_case(name));
    defaults
        .iter()
        .copied()
        .filter(|(name, _)| !named(name))
        .chain(extra.iter().map(|(n, v)| (n.as_str(), v.as_str())))
        .collect()
}

/// `application/x-www-form-urlencoded`, as Twilio encodes it (space as `+`).
pub fn form_encode(params: &[(String, String)]) -> String {
    fn encode(out: &mut String, text: &str) {
        for &b in text.as_bytes() {
            match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                    out.push(char::from(b));
                }
                b' ' => out.push('+'),
                _ => {
                    let _ = write!(out, "%{b:02X}");
                }
            }
        }
    }
    let mut out = String::new();
    for (i, (name, value)) in params.iter().enumerate() {
        if i > 0 {
            out.push('&');
        }
        encode(&mut out, name);
        out.push('=');
        encode(&mut out, value);
    }
    out
}

/// The server's answer.
#[derive(Debug)]
pub struct Response {
    pub status_line: String,
    pub status: u16,
    pub body: Vec<u8>,
}

/// One POST with `Connection: close`; reads the whole answer.
pub fn post(
    target: &Target,
    headers: &[(&str, &str)],
    body: &[u8],
    timeout: Duration,
) -> Result<Response, Failure> {
    let content_length = body.len().to_string();
    let framing = [
        ("Content-Length", content_length.as_str()),
        ("Connection", "close"),
    ];
    let mut stream = send_request("POST", target, headers, &framing, body, timeout)?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).map_err(io_error(target))?;
    parse_response(&raw).ok_or_else(|| not_http(target))
}

/// Connects, and writes the request (see [`request_head`]) and `body`.
fn send_request(
    method: &str,
    target: &Target,
    headers: &[(&str, &str)],
    framing: &[(&str, &str)],
    body: &[u8],
    timeout: Duration,
) -> Result<TcpStream, Failure> {
    let request = request_head(method, target, headers, framing)?;
    let mut stream = connect(target, timeout)?;
    let io = io_error(target);
    stream.write_all(request.as_bytes()).map_err(&io)?;
    stream.write_all(body).map_err(&io)?;
    stream.flush().map_err(&io)?;
    Ok(stream)
}

fn io_error(target: &Target) -> impl Fn(std::io::Error) -> Failure + '_ {
    move |e| Failure::usage(format!("talking to {}: {e}", target.host_header))
}

fn not_http(target: &Target) -> Failure {
    Failure::usage(format!(
        "{} sent a response that is not HTTP/1.x",
        target.host_header
    ))
}

/// The request line and headers (`headers`, then `Host` and `framing`), each line ended by an explicit
/// CRLF (HTTP/1.1 requires it; strict parsers such as Node's answer 400 to a bare LF), and the empty
/// line that ends the head.
fn request_head(
    method: &str,
    target: &Target,
    headers: &[(&str, &str)],
    framing: &[(&str, &str)],
) -> Result<String, Failure> {
    const CRLF: &str = "\r\n";
    if target
        .path
        .contains(|c: char| c.is_ascii_control() || c == ' ')
    {
        return Err(Failure::usage(
            "--url has a space or a control character in its path or query: percent-encode it",
        ));
    }
    let mut head = format!("{method} {} HTTP/1.1{CRLF}", target.path);
    let host = [("Host", target.host_header.as_str())];
    for (name, value) in headers.iter().chain(&host).chain(framing) {
        // A line break in a value would start a header of the caller's choosing.
        if value.contains(['\r', '\n']) {
            return Err(Failure::usage(format!(
                "the {name} header value contains a line break"
            )));
        }
        let _ = write!(head, "{name}: {value}{CRLF}");
    }
    head.push_str(CRLF);
    Ok(head)
}

/// The GUID RFC 6455 (section 1.3) appends to the client's key to make the server's accept value.
const WEBSOCKET_GUID: &[u8] = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// The most bytes of an answer to a handshake that are read.
const MAX_ANSWER: usize = 1 << 20;

/// A masked Close frame with status 1000 (normal closure): a client's frames are masked (RFC 6455
/// section 5.3); the mask is zero, so the payload reads as is.
const CLOSE_FRAME: [u8; 8] = [0x88, 0x82, 0, 0, 0, 0, 0x03, 0xE8];

/// The answer to a WebSocket handshake.
#[derive(Debug)]
pub struct Handshake {
    pub response: Response,
    /// For a 101: whether its Sec-WebSocket-Accept is the one the key asks for.
    pub accept_matches: Option<bool>,
}

/// A fresh Sec-WebSocket-Key: 16 bytes, base64 (they need not be secret, only new per handshake).
fn websocket_key() -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let seed = [
        nanos.to_le_bytes(),
        u128::from(std::process::id()).to_le_bytes(),
    ]
    .concat();
    let mut buf = [0u8; 24];
    Base64::encode(&BodyHash::of(&seed).as_bytes()[..16], &mut buf)
        .map(str::to_owned)
        .unwrap_or_default()
}

/// What the server must answer in Sec-WebSocket-Accept to `key`.
fn websocket_accept(key: &str) -> String {
    let digest = Sha1::new()
        .chain_update(key.as_bytes())
        .chain_update(WEBSOCKET_GUID)
        .finalize();
    let mut buf = [0u8; 28];
    Base64::encode(&digest, &mut buf)
        .map(str::to_owned)
        .unwrap_or_default()
}

/// A WebSocket opening handshake (RFC 6455 section 4.1): a GET with Upgrade, Connection,
/// Sec-WebSocket-Key and Sec-WebSocket-Version after `headers`. A 101 is closed at once with a Close
/// frame; any other answer is read like a POST's.
pub fn websocket_handshake(
    target: &Target,
    headers: &[(&str, &str)],
    timeout: Duration,
) -> Result<Handshake, Failure> {
    let key = websocket_key();
    let framing = [
        ("Upgrade", "websocket"),
        ("Connection", "Upgrade"),
        ("Sec-WebSocket-Key", key.as_str()),
        ("Sec-WebSocket-Version", "13"),
    ];
    let mut stream = send_request("GET", target, headers, &framing, &[], timeout)?;
    // The connection stays open after the answer (a 101's, or one to `Connection: Upgrade`), so the
    // answer is read until it is complete rather than until the server closes.
    let mut raw = Vec::new();
    let mut chunk = [0u8; 4096];
    while !answer_complete(&raw) {
        let n = stream.read(&mut chunk).map_err(io_error(target))?;
        if n == 0 {
            break;
        }
        raw.extend_from_slice(&chunk[..n]);
        if raw.len() > MAX_ANSWER {
            return Err(Failure::usage(format!(
                "{} sent more than {MAX_ANSWER} bytes in answer to a handshake",
                target.host_header
            )));
        }
    }
    let mut response = parse_response(&raw).ok_or_else(|| not_http(target))?;
    let accept_matches = (response.status == 101).then(|| {
        // What follows the head is the server's first frames, not a body.
        response.body.clear();
        let _ = stream.write_all(&CLOSE_FRAME);
        header_value(&raw, "sec-websocket-accept") == Some(websocket_accept(&key).as_str())
    });
    Ok(Handshake {
        response,
        accept_matches,
    })
}

/// Whether `raw` holds a whole answer: a 101's head, or a head and the body its Content-Length or
/// chunked encoding says. An answer with neither is read until the server closes.
fn answer_complete(raw: &[u8]) -> bool {
    let Some(head_end) = raw.windows(4).position(|w| w == b"\r\n\r\n") else {
        return false;
    };
    let rest = &raw[head_end + 4..];
    if raw.get(9..12) == Some(b"101") {
        return true;
    }
    if header_value(raw, "transfer-encoding")
        .is_some_and(|v| v.to_ascii_lowercase().contains("chunked"))
    {
        return dechunk(rest).is_some();
    }
    header_value(raw, "content-length")
        .and_then(|v| v.trim().parse::<usize>().ok())
        .is_some_and(|length| rest.len() >= length)
}

/// The value of the first header `name` (lower case) in the head of `raw`, trimmed.
fn header_value<'a>(raw: &'a [u8], name: &str) -> Option<&'a str> {
    let head_end = raw.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = std::str::from_utf8(&raw[..head_end]).ok()?;
    head.split("\r\n").skip(1).find_map(|line| {
        let (n, v) = line.split_once(':')?;
        n.trim().eq_ignore_ascii_case(name).then_some(v.trim())
    })
}

fn connect(target: &Target, timeout: Duration) -> Result<TcpStream, Failure> {
    let mut last = None;
    for addr in &target.addrs {
        match TcpStream::connect_timeout(addr, timeout) {
            Ok(stream) => {
                let io = |e: std::io::Error| Failure::usage(format!("socket setup: {e}"));
                stream.set_read_timeout(Some(timeout)).map_err(io)?;
                stream.set_write_timeout(Some(timeout)).map_err(io)?;
                return Ok(stream);
            }
            Err(e) => last = Some(e),
        }
    }
    Err(Failure::usage(format!(
        "cannot connect to {}: {} (is the app running?)",
        target.host_header,
        last.map_or_else(|| "no address".to_owned(), |e| e.to_string())
    )))
}

fn parse_response(raw: &[u8]) -> Option<Response> {
    let head_end = raw.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = std::str::from_utf8(&raw[..head_end]).ok()?;
    let mut lines = head.split("\r\n");
    let status_line = lines.next()?.to_owned();
    let mut words = status_line.split(' ');
    if !words.next()?.starts_with("HTTP/1.") {
        return None;
    }
    let status = words.next()?.parse().ok()?;
    let chunked = lines.any(|line| {
        line.split_once(':').is_some_and(|(name, value)| {
            name.trim().eq_ignore_ascii_case("transfer-encoding")
                && value.to_ascii_lowercase().contains("chunked")
        })
    });
    let rest = &raw[head_end + 4..];
    let body = if chunked {
        dechunk(rest)?
    } else {
        rest.to_vec()
    };
    Some(Response {
        status_line,
        status,
        body,
    })
}

fn dechunk(mut rest: &[u8]) -> Option<Vec<u8>> {
    let mut body = Vec::new();
    loop {
        let line_end = rest.windows(2).position(|w| w == b"\r\n")?;
        let size_text = std::str::from_utf8(&rest[..line_end]).ok()?;
        let size = usize::from_str_radix(size_text.split(';').next()?.trim(), 16).ok()?;
        rest = &rest[line_end + 2..];
        if size == 0 {
            return Some(body);
        }
        body.extend_from_slice(rest.get(..size)?);
        rest = rest.get(size + 2..)?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_hosts_are_accepted() {
        let t = loopback_target("http://127.0.0.1:5000/sms?x=1#f", false).unwrap();
        assert_eq!(t.path, "/sms?x=1");
        assert_eq!(t.addrs, vec!["127.0.0.1:5000".parse().unwrap()]);
        assert_eq!(
            loopback_target("http://[::1]:8080", false).unwrap().path,
            "/"
        );
        assert!(loopback_target("http://localhost:8080/", false).is_ok());
        assert!(loopback_target("http://127.9.9.9/", false).is_ok());
        // A handshake may name its URL ws:// too; a POST may not.
        assert_eq!(
            loopback_target("ws://127.0.0.1:5000/media", true)
                .unwrap()
                .path,
            "/media"
        );
        assert!(loopback_target("WS://127.0.0.1/media", false).is_err());
        assert!(loopback_target("wss://127.0.0.1/media", true).is_err());
        for refused in [
            "http://example.com/sms",
            "http://10.0.0.1:5000/",
            "http://[2001:db8::1]/",
            "https://127.0.0.1/",
            "http://u:p@127.0.0.1/",
            "127.0.0.1:5000/sms",
            "http://127.0.0.1:99999/",
        ] {
            assert!(loopback_target(refused, false).is_err(), "{refused}");
            assert!(loopback_target(refused, true).is_err(), "{refused}");
        }
    }

    #[test]
    fn params_override_defaults_by_name() {
        let overrides = vec![
            ("Body".to_owned(), "hi".to_owned()),
            ("MediaUrl0".to_owned(), "a b".to_owned()),
        ];
        let params = merge_params(false, &overrides);
        assert_eq!(params.iter().filter(|(n, _)| n == "Body").count(), 1);
        assert!(params.contains(&("Body".to_owned(), "hi".to_owned())));
        assert_eq!(merge_params(true, &overrides), overrides);
        assert_eq!(form_encode(&overrides), "Body=hi&MediaUrl0=a+b");
        assert_eq!(
            form_encode(&[("From".to_owned(), "+1 é&".to_owned())]),
            "From=%2B1+%C3%A9%26"
        );
    }

    #[test]
    fn headers_from_the_command_line() {
        assert_eq!(
            parse_header("I-Twilio-Idempotency-Token:  abc-1 "),
            Ok(("I-Twilio-Idempotency-Token".to_owned(), "abc-1".to_owned()))
        );
        assert_eq!(
            parse_header("X-Empty:"),
            Ok(("X-Empty".to_owned(), String::new()))
        );
        assert_eq!(
            parse_header("X-Tab: a\tb"),
            Ok(("X-Tab".to_owned(), "a\tb".to_owned()))
        );
        for bad in [
            "no colon",
            ": value",
            "Bad Name: v",
            "X-A\r\nX-B: v",
            "X-A: v\r\nX-B: w",
            "X-A: v\n",
            "X-A: \u{7}",
        ] {
            assert!(parse_header(bad).is_err(), "{bad:?}");
        }
        assert!(refused_header("x-twilio-signature", false).is_some());
        assert!(refused_header("X-Twilio-Webhooks-Signature-Settings", false).is_some());
        assert!(refused_header("content-length", false).is_some());
        assert!(refused_header("Sec-WebSocket-Key", true).is_some());
        assert!(refused_header("Sec-WebSocket-Key", false).is_none());
        assert!(refused_header("X-Forwarded-Proto", true).is_none());
        let extra = vec![
            ("content-type".to_owned(), "multipart/form-data".to_owned()),
            ("X-Forwarded-For".to_owned(), "203.0.113.7".to_owned()),
            ("X-Forwarded-For".to_owned(), "10.0.0.1".to_owned()),
        ];
        assert_eq!(
            with_extra_headers(&[("Content-Type", "text/plain"), ("Accept", "*/*")], &extra),
            [
                ("Accept", "*/*"),
                ("content-type", "multipart/form-data"),
                ("X-Forwarded-For", "203.0.113.7"),
                ("X-Forwarded-For", "10.0.0.1"),
            ]
        );
    }

    #[test]
    fn websocket_accept_is_rfc_6455s() {
        // RFC 6455 section 1.3's example.
        assert_eq!(
            websocket_accept("dGhlIHNhbXBsZSBub25jZQ=="),
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
        let key = websocket_key();
        assert_eq!(key.len(), 24, "{key}");
        assert!(answer_complete(
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n"
        ));
        assert!(!answer_complete(
            b"HTTP/1.1 403 Forbidden\r\nContent-Length: 5\r\n\r\nno"
        ));
        assert!(answer_complete(
            b"HTTP/1.1 403 Forbidden\r\nContent-Length: 2\r\n\r\nno"
        ));
        assert!(!answer_complete(b"HTTP/1.1 403 Forbidden\r\n\r\nno"));
        assert!(answer_complete(
            b"HTTP/1.1 400 Bad\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nno\r\n0\r\n\r\n"
        ));
    }

    #[test]
    fn responses_plain_and_chunked() {
        let r = parse_response(b"HTTP/1.1 403 FORBIDDEN\r\nContent-Length: 2\r\n\r\nno").unwrap();
        assert_eq!(
            (r.status, r.status_line.as_str(), &r.body[..]),
            (403, "HTTP/1.1 403 FORBIDDEN", &b"no"[..])
        );
        let r = parse_response(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n",
        )
        .unwrap();
        assert_eq!(r.body, b"abcde");
        assert!(parse_response(b"SSH-2.0\r\n\r\n").is_none());
    }
}
