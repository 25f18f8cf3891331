//! `twsig send`: a Twilio-shaped webhook, signed, POSTed over plain HTTP/1.1 to a server on this machine.
//!
//! Loopback only: the command exists to exercise a webhook handler without Twilio or a tunnel, and a
//! hand-written client that never leaves the machine needs no TLS and no HTTP library.

use std::fmt::Write as _;
use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream, ToSocketAddrs};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use twilio_signature::BodyHash;

use crate::Failure;

/// Where to connect: a loopback address and the request target (path and query).
#[derive(Debug)]
pub struct Target {
    pub host_header: String,
    pub addrs: Vec<SocketAddr>,
    pub path: String,
}

/// Splits an `http://` URL and refuses any host that is not this machine.
pub fn loopback_target(url: &str) -> Result<Target, Failure> {
    let scheme_end = url
        .find("://")
        .ok_or_else(|| Failure::usage(format!("--url {url:?} is not an absolute http:// URL")))?;
    let scheme = &url[..scheme_end];
    if !scheme.eq_ignore_ascii_case("http") {
        return Err(Failure::usage(format!(
            "--url must be http:// (send talks plain HTTP to a server on this machine; got {scheme}://). \
             To sign for the public https URL behind a proxy, add --sign-url https://..."
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
    let request = request_head(target, headers, body.len())?;
    let mut stream = connect(target, timeout)?;
    let io = |e: std::io::Error| Failure::usage(format!("talking to {}: {e}", target.host_header));
    stream.write_all(request.as_bytes()).map_err(io)?;
    stream.write_all(body).map_err(io)?;
    stream.flush().map_err(io)?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).map_err(io)?;
    parse_response(&raw).ok_or_else(|| {
        Failure::usage(format!(
            "{} sent a response that is not HTTP/1.x",
            target.host_header
        ))
    })
}

/// The request line and headers, each line ended by an explicit CRLF (HTTP/1.1 requires it; strict
/// parsers such as Node's answer 400 to a bare LF), and the empty line that ends the head.
fn request_head(
    target: &Target,
    headers: &[(&str, &str)],
    body_len: usize,
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
    let content_length = body_len.to_string();
    let mut head = format!("POST {} HTTP/1.1{CRLF}", target.path);
    let fixed = [
        ("Host", target.host_header.as_str()),
        ("Content-Length", content_length.as_str()),
        ("Connection", "close"),
    ];
    for (name, value) in headers.iter().chain(&fixed) {
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
        let t = loopback_target("http://127.0.0.1:5000/sms?x=1#f").unwrap();
        assert_eq!(t.path, "/sms?x=1");
        assert_eq!(t.addrs, vec!["127.0.0.1:5000".parse().unwrap()]);
        assert_eq!(loopback_target("http://[::1]:8080").unwrap().path, "/");
        assert!(loopback_target("http://localhost:8080/").is_ok());
        assert!(loopback_target("http://127.9.9.9/").is_ok());
        for refused in [
            "http://example.com/sms",
            "http://10.0.0.1:5000/",
            "http://[2001:db8::1]/",
            "https://127.0.0.1/",
            "http://u:p@127.0.0.1/",
            "127.0.0.1:5000/sms",
            "http://127.0.0.1:99999/",
        ] {
            assert!(loopback_target(refused).is_err(), "{refused}");
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
