//! Diagnostics for a request that failed: which common mistake, if corrected, would have made it match.
//!
//! For information only. Nothing here ever accepts a request: the verdict in an [`Explanation`] is the
//! one [`crate::Validator::verify`] gives.
//!
//! Bounded: a diagnosis sorts the parameters once more and tries each eligible secret on at most six
//! rewritten URLs with the full parameters, each with its URL candidates as `verify` does (five with a
//! body: the WebSocket rewrites are tried only on a request without one), on at most five URLs with a
//! port added (one HMAC each, [`DROPPED_PORTS`]), plus at most two signed strings made of a URL alone.
//! A flood of forged requests therefore costs the helpers that log diagnoses a bounded number of
//! verifies per request: measured before the WebSocket, doubled-path and port rewrites, 4 to 7 times a
//! verify's time (the most on small requests where fixed costs weigh); those add at most two rewritten
//! URLs and five single HMACs per secret.

use core::fmt;

use crate::canonical::{BodyHash, Payload, Request, Signed};
use crate::form::Span;
use crate::mac::{Algorithm, Tag};
use crate::secret::Key;
use crate::settings::SignatureSettings;
use crate::signature::ReceivedSignature;
use crate::url::{self, Candidate, Candidates, UrlPieces};
use crate::verdict::{find_match, Verified};
use crate::Error;

#[cfg(test)]
extern crate std;

/// URLs longer than this are not rewritten into diagnostic variants (the verdict is still given).
pub const MAX_EXPLAIN_URL_LEN: usize = 4096;

/// A mistake that explains a failed verification.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Mistake {
    /// Twilio signed `https://` but the app passed `http://` (or the reverse): usually a proxy or load
    /// balancer terminates TLS in front of the app.
    SchemeSwapped,
    /// Twilio's URL had a trailing slash where the app's has none, or the reverse.
    TrailingSlash,
    /// Twilio's URL had a different scheme *and* a different trailing slash.
    SchemeSwappedAndTrailingSlash,
    /// Twilio signed the URL without the query string the app passed.
    ExtraQuery,
    /// The signature covers the URL alone: a GET verified with a body, or a body added to a request
    /// signed without one.
    ParamsNotSigned,
    /// A JSON webhook verified as a form: its URL lost the `?bodySHA256=<SHA-256 of the body>` that
    /// Twilio adds to it (the query string was dropped), so the body was read as form parameters. The
    /// signature covers the URL with that hash.
    BodyHashDropped,
    /// The signature matches, but the body is not the one whose hash Twilio put in `bodySHA256`: the app
    /// passed re-serialised or re-decoded JSON instead of the raw bytes.
    BodyAltered,
    /// A 44-character (HMAC-SHA256) signature arrived without `X-Twilio-Webhooks-Signature-Settings`.
    SettingsHeaderMissing,
    /// A 28-character (HMAC-SHA1) signature arrived with a settings header naming HMAC-SHA256.
    SettingsHeaderUnexpected,
    /// A secret matched, but not one with the key id the settings header names.
    KeyIdMismatch,
    /// A WebSocket handshake (Media Streams, ConversationRelay) verified as the `https://` request the
    /// app sees: Twilio signed it over its `wss://` URL.
    HttpsInsteadOfWss,
    /// A WebSocket handshake verified as the `http://` request the app sees: Twilio signed it over its
    /// `ws://` URL.
    HttpInsteadOfWs,
    /// A request verified as a `wss://` handshake that Twilio signed over its `https://` URL: it is not
    /// a WebSocket handshake.
    WssInsteadOfHttps,
    /// A request verified as a `ws://` handshake that Twilio signed over its `http://` URL.
    WsInsteadOfHttp,
    /// A WebSocket handshake verified with the other scheme (`ws` vs `wss`): usually the public scheme
    /// is https but the app saw plain http behind a proxy.
    WebSocketSchemeSwapped,
    /// The URL verified repeats part of its path (`/twilio/sms/twilio/sms`): the route was appended to a
    /// base URL that already ended with it. The URL without the repeat matched.
    DoubledPath,
    /// Twilio signed the URL with a port (`https://example.com:8443/sms`) that the URL verified does not
    /// have: the app is reached through a port it does not see. Only a few common ports are tried
    /// (see [`DROPPED_PORTS`]).
    DroppedPort,
}

/// The ports explain tries when the URL verified has none (or its scheme's default) and nothing else
/// matched: those apps commonly listen on behind a proxy or a tunnel. A port cannot be guessed in
/// general, so the list is short (each costs one HMAC per eligible secret); 443 and 80 are the port
/// toggle's, which `verify` tries itself.
pub const DROPPED_PORTS: [u16; 5] = [8443, 8080, 8000, 3000, 5000];

impl Mistake {
    /// What went wrong, in a sentence.
    pub const fn describe(self) -> &'static str {
        match self {
            Self::SchemeSwapped => "Twilio signed the URL with the other scheme (http vs https)",
            Self::TrailingSlash => "Twilio signed the URL with a different trailing slash",
            Self::SchemeSwappedAndTrailingSlash => {
                "Twilio signed the URL with the other scheme (http vs https) and a different trailing slash"
            }
            Self::ExtraQuery => "Twilio signed the URL without the query string that was passed",
            Self::ParamsNotSigned => "the signature covers the URL alone, not the body's parameters",
            Self::BodyHashDropped => {
                "the URL lost its bodySHA256: this is a JSON webhook, which Twilio signs over its URL with \
                 ?bodySHA256=<SHA-256 of the body>, and without it the body was read as a form"
            }
            Self::BodyAltered => "the URL is signed, but the body does not match its bodySHA256",
            Self::SettingsHeaderMissing => {
                "this is an HMAC-SHA256 (SharedKey) signature, but the X-Twilio-Webhooks-Signature-Settings header was not passed"
            }
            Self::SettingsHeaderUnexpected => {
                "this is an HMAC-SHA1 signature, but a settings header naming HMAC-SHA256 was passed"
            }
            Self::KeyIdMismatch => "a secret with a different key id than the settings header names matched",
            Self::HttpsInsteadOfWss => "verified as https:// but Twilio signed the wss:// handshake",
            Self::HttpInsteadOfWs => "verified as http:// but Twilio signed the ws:// handshake",
            Self::WssInsteadOfHttps => {
                "verified as wss:// but signed over the https:// URL: signed as a plain request, not as Twilio signs a handshake"
            }
            Self::WsInsteadOfHttp => {
                "verified as ws:// but signed over the http:// URL: signed as a plain request, not as Twilio signs a handshake"
            }
            Self::WebSocketSchemeSwapped => "Twilio signed the handshake with the other scheme (ws vs wss)",
            Self::DoubledPath => {
                "the URL verified repeats part of its path: Twilio signed it without the repeat"
            }
            Self::DroppedPort => {
                "Twilio signed the URL with a port that the URL verified does not have"
            }
        }
    }

    /// Whether reports show the URL verified and the URL signed (the mistakes a user cannot see from
    /// the URL verified alone).
    const fn shows_urls(self) -> bool {
        matches!(
            self,
            Self::HttpsInsteadOfWss
                | Self::HttpInsteadOfWs
                | Self::WssInsteadOfHttps
                | Self::WsInsteadOfHttp
                | Self::WebSocketSchemeSwapped
                | Self::DoubledPath
                | Self::DroppedPort
        )
    }

    /// What to change in the app.
    pub const fn fix(self) -> &'static str {
        match self {
            Self::SchemeSwapped | Self::SchemeSwappedAndTrailingSlash => {
                "build the URL from the public scheme: configure the base URL, or trust your proxy's X-Forwarded-Proto"
            }
            Self::TrailingSlash => "pass the URL exactly as configured in the Twilio console, slash included or not",
            Self::ExtraQuery => "pass the URL Twilio requested; do not append a query string",
            Self::ParamsNotSigned => {
                "verify a request without a body (a GET) over its URL alone; for JSON webhooks pass the full URL including ?bodySHA256=..., and the raw body"
            }
            Self::BodyHashDropped => {
                "pass the full URL Twilio requested, query string included, and the raw body"
            }
            Self::BodyAltered => "pass the raw request body bytes, not parsed and re-serialised JSON",
            Self::SettingsHeaderMissing | Self::SettingsHeaderUnexpected => {
                "pass the X-Twilio-Webhooks-Signature-Settings header exactly as received"
            }
            Self::KeyIdMismatch => "give each SharedKey secret its own key id as shown in the Twilio console",
            Self::HttpsInsteadOfWss | Self::HttpInsteadOfWs => {
                "verify a WebSocket handshake (a GET with Upgrade: websocket) over its wss:// URL (ws:// when the public scheme is http), with no body"
            }
            Self::WssInsteadOfHttps | Self::WsInsteadOfHttp => {
                "verify only WebSocket handshakes over the wss:// (or ws://) URL, and other requests over their https:// (or http://) URL"
            }
            Self::WebSocketSchemeSwapped => {
                "build the handshake's URL from the public scheme (wss when it is https): configure the base URL, or trust your proxy's X-Forwarded-Proto"
            }
            Self::DoubledPath => {
                "give the base URL as the public origin plus only the mount prefix the app does not see (usually just the origin), not the route"
            }
            Self::DroppedPort => {
                "verify the URL with the port Twilio requested: put it in the base URL (public scheme, host and port), or trust your proxy so that its X-Forwarded-Host (host:port) is used"
            }
        }
    }
}

impl fmt::Display for Mistake {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.describe())
    }
}

/// A mistake that, corrected, makes the request match.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Diagnosis {
    /// What was wrong.
    pub mistake: Mistake,
    /// The secret that matched the corrected request.
    pub secret_index: usize,
    /// The candidate form of the corrected URL that matched.
    pub candidate: Candidate,
}

/// How many bytes of a URL a [`ShownUrl`] keeps.
const SHOWN_URL_LEN: usize = 200;

/// The start of a URL as reports show it (its first 200 bytes), kept without allocating.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct ShownUrl {
    shown: [u8; SHOWN_URL_LEN],
    shown_len: u8,
    truncated: bool,
}

impl ShownUrl {
    /// The first bytes of the URL made of `pieces` in order.
    fn of<'a>(pieces: impl IntoIterator<Item = &'a [u8]>) -> Self {
        let mut this = Self {
            shown: [0; SHOWN_URL_LEN],
            shown_len: 0,
            truncated: false,
        };
        let mut len = 0;
        for piece in pieces {
            let room = SHOWN_URL_LEN - len;
            let taken = piece.len().min(room);
            this.shown[len..len + taken].copy_from_slice(&piece[..taken]);
            len += taken;
            this.truncated |= piece.len() > room;
        }
        this.shown_len = len as u8;
        this
    }

    /// The URL's first bytes (all of it unless [`ShownUrl::truncated`]).
    pub fn as_bytes(&self) -> &[u8] {
        &self.shown[..usize::from(self.shown_len)]
    }

    /// Whether the URL was longer than what is kept.
    pub const fn truncated(&self) -> bool {
        self.truncated
    }

    /// Printable ASCII as is, anything else `%XX`, so a log line stays one line; `...` when truncated.
    fn write(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for &b in self.as_bytes() {
            if b.is_ascii_graphic() {
                write!(f, "{}", char::from(b))?;
            } else {
                write!(f, "%{b:02X}")?;
            }
        }
        if self.truncated {
            f.write_str("...")?;
        }
        Ok(())
    }
}

impl fmt::Debug for ShownUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("\"")?;
        self.write(f)?;
        f.write_str("\"")
    }
}

/// For a mistake whose URLs reports show: the URL verified and the URL that matched, exactly as
/// Twilio signed it (the matching candidate of the corrected URL).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct UrlCorrection {
    /// The URL passed to the verifier.
    pub verified: ShownUrl,
    /// The URL the signature matched.
    pub signed: ShownUrl,
}

/// The URL verified looks like an app's own address rather than the public URL Twilio signs.
///
/// Reported when nothing matched (no secret, no URL candidate, no correction tried): the usual cause is
/// an app behind a proxy or load balancer that rebuilds the URL from its own connection
/// (`http://10.0.0.5:8080/sms`) while Twilio signed the URL configured in the console
/// (`https://example.com/sms`). It is a heuristic on the URL's text, not a tested correction: the
/// public URL is not known here.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct InternalUrl {
    signs: u8,
    shown: ShownUrl,
}

/// The signs an [`InternalUrl`] records, one bit each.
const HTTP: u8 = 1;
const IP_LITERAL: u8 = 2;
const PRIVATE_ADDRESS: u8 = 4;
const INTERNAL_NAME: u8 = 8;
const NON_DEFAULT_PORT: u8 = 16;

impl InternalUrl {
    /// Inspects a URL's scheme and authority; `None` when it looks like a public URL.
    ///
    /// ```
    /// use twilio_signature::InternalUrl;
    /// let behind_proxy = InternalUrl::detect(b"http://10.0.0.5:8080/sms").unwrap();
    /// assert!(behind_proxy.http() && behind_proxy.private_address() && behind_proxy.non_default_port());
    /// assert!(InternalUrl::detect(b"https://example.com/sms").is_none());
    /// ```
    pub fn detect(url: &[u8]) -> Option<Self> {
        let scheme_end = url.windows(3).position(|w| w == b"://")?;
        let scheme = &url[..scheme_end];
        let start = scheme_end + 3;
        let end = url[start..]
            .iter()
            .position(|&b| matches!(b, b'/' | b'?' | b'#'))
            .map_or(url.len(), |i| start + i);
        let authority = &url[start..end];
        let hostport = authority
            .iter()
            .rposition(|&b| b == b'@')
            .map_or(authority, |i| &authority[i + 1..]);
        let (host, port) = split_host_port(hostport);
        let host = host.strip_suffix(b".").unwrap_or(host);
        // A WebSocket handshake's URL: wss is https's, ws is http's.
        let https = scheme.eq_ignore_ascii_case(b"https") || scheme.eq_ignore_ascii_case(b"wss");
        let http = scheme.eq_ignore_ascii_case(b"http") || scheme.eq_ignore_ascii_case(b"ws");
        let default_port: &[u8] = if https { b"443" } else { b"80" };
        let ipv4 = parse_ipv4(host);
        let ipv6 = host.strip_prefix(b"[").and_then(|h| h.strip_suffix(b"]"));
        let private_address = ipv4.is_some_and(ipv4_is_private)
            || ipv6.is_some_and(ipv6_is_private)
            || host.eq_ignore_ascii_case(b"localhost")
            || ends_with_ignore_case(host, b".localhost");
        let ip_literal = ipv4.is_some() || ipv6.is_some();
        let internal_name = !ip_literal
            && !host.is_empty()
            && !private_address
            && (!host.contains(&b'.')
                || [
                    &b".local"[..],
                    b".internal",
                    b".localdomain",
                    b".lan",
                    b".home.arpa",
                ]
                .iter()
                .any(|suffix| ends_with_ignore_case(host, suffix)));
        let non_default_port = (http || https) && port.is_some_and(|p| p != default_port);
        let signs = [
            (http, HTTP),
            (ip_literal, IP_LITERAL),
            (private_address, PRIVATE_ADDRESS),
            (internal_name, INTERNAL_NAME),
            (non_default_port, NON_DEFAULT_PORT),
        ]
        .iter()
        .filter(|(present, _)| *present)
        .fold(0, |signs, (_, bit)| signs | bit);
        if signs == 0 {
            return None;
        }
        Some(Self {
            signs,
            shown: ShownUrl::of([url]),
        })
    }

    /// The scheme is plain `http` (or `ws`).
    pub const fn http(&self) -> bool {
        self.signs & HTTP != 0
    }

    /// The host is an IP address literal.
    pub const fn ip_literal(&self) -> bool {
        self.signs & IP_LITERAL != 0
    }

    /// The host is `localhost`, or a loopback, private, link-local or shared (CGNAT) address.
    pub const fn private_address(&self) -> bool {
        self.signs & PRIVATE_ADDRESS != 0
    }

    /// The host is a single label (`app`, `web`) or ends in `.local`, `.internal`, `.localdomain`,
    /// `.lan` or `.home.arpa`.
    pub const fn internal_name(&self) -> bool {
        self.signs & INTERNAL_NAME != 0
    }

    /// The URL has a port that is not its scheme's default (80 for http and ws, 443 for https and wss).
    pub const fn non_default_port(&self) -> bool {
        self.signs & NON_DEFAULT_PORT != 0
    }

    /// The start of the URL verified (its first 200 bytes), as reports show it.
    pub fn url(&self) -> &[u8] {
        self.shown.as_bytes()
    }

    /// The signs, in words: `plain http, a private address, a non-default port`.
    fn write_signs(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let signs = [
            (self.http(), "plain http"),
            (
                self.ip_literal() && !self.private_address(),
                "an IP address",
            ),
            (self.private_address(), "a private or loopback address"),
            (self.internal_name(), "an internal host name"),
            (self.non_default_port(), "a non-default port"),
        ];
        let mut first = true;
        for (_, words) in signs.iter().filter(|(present, _)| *present) {
            if !first {
                f.write_str(", ")?;
            }
            f.write_str(words)?;
            first = false;
        }
        Ok(())
    }
}

impl fmt::Debug for InternalUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InternalUrl")
            .field("http", &self.http())
            .field("ip_literal", &self.ip_literal())
            .field("private_address", &self.private_address())
            .field("internal_name", &self.internal_name())
            .field("non_default_port", &self.non_default_port())
            .field("url", &self.shown)
            .finish_non_exhaustive()
    }
}

fn ends_with_ignore_case(text: &[u8], suffix: &[u8]) -> bool {
    text.len() >= suffix.len() && text[text.len() - suffix.len()..].eq_ignore_ascii_case(suffix)
}

/// `host[:port]`, an IPv6 literal's colons included in the host.
fn split_host_port(hostport: &[u8]) -> (&[u8], Option<&[u8]>) {
    let search_from = if hostport.first() == Some(&b'[') {
        hostport
            .iter()
            .position(|&b| b == b']')
            .map_or(hostport.len(), |i| i + 1)
    } else {
        0
    };
    match hostport[search_from..].iter().position(|&b| b == b':') {
        Some(i) => (
            &hostport[..search_from + i],
            Some(&hostport[search_from + i + 1..]),
        ),
        None => (hostport, None),
    }
}

fn parse_ipv4(host: &[u8]) -> Option<[u8; 4]> {
    let mut octets = [0u8; 4];
    let mut parts = host.split(|&b| b == b'.');
    for octet in &mut octets {
        let part = parts.next()?;
        if part.is_empty() || part.len() > 3 || !part.iter().all(u8::is_ascii_digit) {
            return None;
        }
        let value = part.iter().fold(0u16, |n, &d| n * 10 + u16::from(d - b'0'));
        *octet = u8::try_from(value).ok()?;
    }
    parts.next().is_none().then_some(octets)
}

fn ipv4_is_private([a, b, ..]: [u8; 4]) -> bool {
    matches!(
        (a, b),
        (0 | 10 | 127, _) | (172, 16..=31) | (192, 168) | (169, 254) | (100, 64..=127)
    )
}

/// Loopback (`::1`), unique local (`fc00::/7`) and link-local (`fe80::/10`) IPv6 literals.
fn ipv6_is_private(address: &[u8]) -> bool {
    let first = address.split(|&b| b == b':').next().unwrap_or_default();
    let first = first.split(|&b| b == b'%').next().unwrap_or_default();
    let value = (first.len() <= 4 && first.iter().all(u8::is_ascii_hexdigit)).then(|| {
        first.iter().fold(0u16, |n, &d| {
            n * 16 + u16::from(char::from(d).to_digit(16).unwrap_or(0) as u8)
        })
    });
    address == b"::1"
        || address == b"0:0:0:0:0:0:0:1"
        || (!first.is_empty()
            && value.is_some_and(|v| (v & 0xfe00) == 0xfc00 || (v & 0xffc0) == 0xfe80))
}

/// The verdict on a request, and a diagnosis when it failed and a common mistake explains why.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Explanation {
    /// Exactly what `verify` returns for this request.
    pub verdict: Result<Verified, Error>,
    /// Why it failed, when a known mistake explains it; `None` when it passed, or nothing did.
    pub diagnosis: Option<Diagnosis>,
    /// When the signature matched nothing and no correction explains it: the URL verified, if it looks
    /// like an internal address rather than the public URL Twilio signs (see [`InternalUrl`]).
    pub internal_url: Option<InternalUrl>,
    /// For a diagnosis whose URLs a report shows (a WebSocket handshake's scheme, a doubled path, a
    /// port the app did not see): the URL verified and the URL that matched.
    pub correction: Option<UrlCorrection>,
}

const CHECK_SECRET: &str =
    "check that the secret is the Auth Token (or SharedKey secret) of the account \
                            that owns the number";

impl fmt::Display for Explanation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.verdict, &self.diagnosis, &self.internal_url) {
            (Ok(v), _, _) => write!(
                f,
                "valid: {} signature by secret #{} over {}",
                v.algorithm,
                v.secret_index,
                v.candidate.describe()
            ),
            (Err(e), Some(d), _) => {
                write!(f, "invalid: {e}.\nlikely cause: {}", d.mistake)?;
                if let Some(urls) = &self.correction {
                    // The URLs on lines of their own, without a full stop that could be read as theirs.
                    f.write_str(".\nurl verified: ")?;
                    urls.verified.write(f)?;
                    f.write_str("\nurl signed: ")?;
                    urls.signed.write(f)?;
                    return write!(f, "\nfix: {}.", d.mistake.fix());
                }
                if d.candidate != Candidate::AsGiven {
                    write!(f, " (matched {})", d.candidate.describe())?;
                }
                write!(f, ".\nfix: {}.", d.mistake.fix())
            }
            (Err(e), None, Some(internal)) => {
                write!(f, "invalid: {e}.\nlikely cause: the URL verified looks internal (")?;
                internal.write_signs(f)?;
                f.write_str(
                    "); Twilio signs the public URL configured in the console, and an app behind a proxy \
                     or load balancer sees its own address instead. No variant of this URL matched.\n\
                     url verified: ",
                )?;
                internal.shown.write(f)?;
                write!(
                    f,
                    "\nfix: verify the public URL: configure the base URL (public scheme, host and port), or \
                     trust your proxy so that its X-Forwarded-Proto and X-Forwarded-Host are used.\n\
                     if the app really is reached at exactly this URL, {CHECK_SECRET}."
                )
            }
            (Err(e), None, None) if e.is_mismatch() => write!(
                f,
                "invalid: {e}.\nno common mistake explains it: {CHECK_SECRET}, and that the URL is exactly \
                 the one Twilio requested."
            ),
            (Err(e), None, None) => write!(f, "invalid: {e}."),
        }
    }
}

/// A URL rewritten into a stack buffer.
struct Rewritten {
    buf: [u8; MAX_EXPLAIN_URL_LEN + 1],
    len: usize,
}

impl Rewritten {
    fn from_pieces(pieces: &[&[u8]]) -> Option<Self> {
        let mut this = Self {
            buf: [0; MAX_EXPLAIN_URL_LEN + 1],
            len: 0,
        };
        for piece in pieces {
            this.buf
                .get_mut(this.len..this.len + piece.len())?
                .copy_from_slice(piece);
            this.len += piece.len();
        }
        Some(this)
    }

    fn as_bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}

fn swap_scheme(url: &[u8]) -> Option<Rewritten> {
    let (scheme, rest) = if url.len() >= 8 && url[..8].eq_ignore_ascii_case(b"https://") {
        (&b"http://"[..], &url[8..])
    } else if url.len() >= 7 && url[..7].eq_ignore_ascii_case(b"http://") {
        (&b"https://"[..], &url[7..])
    } else {
        return None;
    };
    Rewritten::from_pieces(&[scheme, rest])
}

fn toggle_trailing_slash(url: &[u8]) -> Option<Rewritten> {
    let path_end = url
        .iter()
        .position(|&b| b == b'?' || b == b'#')
        .unwrap_or(url.len());
    let (path, rest) = url.split_at(path_end);
    match path.strip_suffix(b"/") {
        Some(without) if !without.ends_with(b"/") && !without.ends_with(b":") => {
            Rewritten::from_pieces(&[without, rest])
        }
        Some(_) => None,
        None => Rewritten::from_pieces(&[path, b"/", rest]),
    }
}

fn drop_query(url: &[u8]) -> Option<Rewritten> {
    let start = url.iter().position(|&b| b == b'?')?;
    let end = url[start..]
        .iter()
        .position(|&b| b == b'#')
        .map_or(url.len(), |i| start + i);
    Rewritten::from_pieces(&[&url[..start], &url[end..]])
}

/// The URL with `bodySHA256=<hash>` appended to its query (before any fragment), as Twilio builds a
/// JSON webhook's URL.
fn add_body_hash(url: &[u8], hash: &BodyHash) -> Option<Rewritten> {
    let end = url.iter().position(|&b| b == b'#').unwrap_or(url.len());
    let (before, fragment) = url.split_at(end);
    let separator: &[u8] = match before.iter().position(|&b| b == b'?') {
        None => b"?",
        Some(q) if q + 1 == before.len() || before.ends_with(b"&") => b"",
        Some(_) => b"&",
    };
    Rewritten::from_pieces(&[before, separator, b"bodySHA256=", hash.as_bytes(), fragment])
}

/// The URL with its scheme `from` (with its `://`, compared case-insensitively) replaced by `to`.
fn replace_scheme(url: &[u8], from: &[u8], to: &[u8]) -> Option<Rewritten> {
    let scheme = url.get(..from.len())?;
    if !scheme.eq_ignore_ascii_case(from) {
        return None;
    }
    Rewritten::from_pieces(&[to, &url[from.len()..]])
}

/// The URL a WebSocket mistake supposes Twilio signed: the handshake's `wss://`/`ws://` URL for the
/// `https://`/`http://` request the app saw, the reverse, or `ws` and `wss` swapped. `None` when
/// `mistake` is not about this URL's scheme.
fn websocket_rewrite(url: &[u8], mistake: Mistake) -> Option<Rewritten> {
    let (from, to): (&[u8], &[u8]) = match mistake {
        Mistake::HttpsInsteadOfWss => (b"https://", b"wss://"),
        Mistake::HttpInsteadOfWs => (b"http://", b"ws://"),
        Mistake::WssInsteadOfHttps => (b"wss://", b"https://"),
        Mistake::WsInsteadOfHttp => (b"ws://", b"http://"),
        Mistake::WebSocketSchemeSwapped => {
            return replace_scheme(url, b"wss://", b"ws://")
                .or_else(|| replace_scheme(url, b"ws://", b"wss://"));
        }
        _ => return None,
    };
    replace_scheme(url, from, to)
}

/// The most `/` a path may have for [`without_doubled_path`] to search it: the search compares every
/// run of segments with the run after it, so its work grows with the cube of this.
const MAX_PATH_SEGMENTS: usize = 32;

/// The URL without the first longest run of path segments that is repeated right after itself
/// (`/twilio/sms/twilio/sms` -> `/twilio/sms`, `/api/twilio/twilio/sms` -> `/api/twilio/sms`): what
/// a base URL ending with the route, plus the route, makes. Runs of empty segments (`//`) are not
/// taken for a repeat.
fn without_doubled_path(url: &[u8]) -> Option<Rewritten> {
    let start = url::port_slot(url)?.end;
    let end = url[start..]
        .iter()
        .position(|&b| b == b'?' || b == b'#')
        .map_or(url.len(), |i| start + i);
    let path = &url[start..end];
    // Where each segment starts (at its `/`); segment j is path[at(j)..at(j + 1)].
    let mut slashes = [0usize; MAX_PATH_SEGMENTS];
    let mut n = 0;
    for (i, _) in path.iter().enumerate().filter(|(_, &b)| b == b'/') {
        *slashes.get_mut(n)? = i;
        n += 1;
    }
    let at = |j: usize| if j < n { slashes[j] } else { path.len() };
    for k in (1..=n / 2).rev() {
        for i in 0..=n - 2 * k {
            let first = &path[at(i)..at(i + k)];
            if first == &path[at(i + k)..at(i + 2 * k)] && first.iter().any(|&b| b != b'/') {
                return Rewritten::from_pieces(&[&url[..start + at(i)], &url[start + at(i + k)..]]);
            }
        }
    }
    None
}

/// The URL with `:port` where it has no port or its scheme's default one; `None` for a URL with
/// another port, or whose scheme has no default (the port toggle's schemes only).
fn with_port(url: &[u8], port: u16) -> Option<Rewritten> {
    let slot = url::port_slot(url)?;
    let default = slot.default_port?;
    let current = &url[slot.port..slot.end];
    if !current.is_empty() && current != default {
        return None;
    }
    let mut digits = [0u8; 5];
    let mut len = 0;
    let mut rest = port;
    loop {
        digits[len] = b'0' + (rest % 10) as u8;
        len += 1;
        rest /= 10;
        if rest == 0 {
            break;
        }
    }
    digits[..len].reverse();
    Rewritten::from_pieces(&[&url[..slot.port], b":", &digits[..len], &url[slot.end..]])
}

/// Whether a body could be a JSON webhook's (an object, or Event Streams' array of events).
fn looks_like_json(body: &[u8]) -> bool {
    matches!(body.trim_ascii_start().first(), Some(b'{' | b'['))
}

/// Runs the diagnosis for a request that `verify` refused with `error`.
pub(crate) fn explain_with_keys<'k>(
    keys: &(impl Iterator<Item = Key<'k>> + Clone),
    request: &Request<'_>,
    verdict: Result<Verified, Error>,
    scratch: &mut [Span],
) -> Explanation {
    let (diagnosis, correction) = match verdict {
        Ok(_) => None,
        Err(error) => diagnose(keys, request, error, scratch),
    }
    .map_or((None, None), |(diagnosis, correction)| {
        (Some(diagnosis), correction)
    });
    let internal_url = match (verdict, diagnosis) {
        (Err(Error::SignatureMismatch), None) => InternalUrl::detect(request.url),
        _ => None,
    };
    Explanation {
        verdict,
        diagnosis,
        internal_url,
        correction,
    }
}

/// What a diagnosis spent, counted in tests to keep explain bounded (see the module docs).
#[cfg_attr(not(test), allow(dead_code))]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Cost {
    /// Parameter sorts (`Signed::new` over a form or pairs).
    sorts: usize,
    /// Secrets tried on a signed string that includes the parameters (each try is up to one HMAC per URL
    /// candidate, as in `verify`).
    full_tries: usize,
    /// Secrets tried on a signed string made of a URL alone.
    url_only_tries: usize,
    /// Secrets tried on a signed string that includes the parameters, over one URL exactly as given
    /// (one HMAC each: a port the app did not see).
    exact_tries: usize,
}

#[cfg(test)]
std::thread_local! {
    static COST: core::cell::Cell<Cost> = const {
        core::cell::Cell::new(Cost { sorts: 0, full_tries: 0, url_only_tries: 0, exact_tries: 0 })
    };
}

#[cfg(test)]
fn count(f: impl FnOnce(&mut Cost)) {
    COST.with(|cost| {
        let mut now = cost.get();
        f(&mut now);
        cost.set(now);
    });
}

#[cfg(not(test))]
#[inline(always)]
fn count(_: impl FnOnce(&mut Cost)) {}

/// Tries corrected versions of one request against a set of keys.
struct Attempt<'r, K> {
    keys: &'r K,
    signature: Option<&'r [u8]>,
    key_id: Option<&'r [u8]>,
}

/// What a signed string is made of: the URL and the parameters, or the URL alone (counted apart).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Made {
    WithParams,
    UrlOnly,
}

/// Which keys an attempt uses.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Keys {
    All,
    Eligible,
    Ineligible,
}

impl<'k, K: Iterator<Item = Key<'k>> + Clone> Attempt<'_, K> {
    /// Reports `mistake` if some chosen key signs `signed` over `url` (or one of its candidates) with
    /// `algorithm`.
    fn check(
        &self,
        signed: &Signed<'_>,
        made: Made,
        url: &[u8],
        algorithm: Algorithm,
        keys: Keys,
        mistake: Mistake,
    ) -> Option<Diagnosis> {
        let received = ReceivedSignature::parse(self.signature, algorithm).ok()?;
        let key_id = self.key_id;
        let keys = self
            .keys
            .clone()
            .enumerate()
            .filter(|(_, key)| {
                // Empty secrets match nothing, not even for a diagnosis.
                !key.is_empty()
                    && match keys {
                        Keys::All => true,
                        Keys::Eligible => key.eligible(key_id),
                        Keys::Ineligible => !key.eligible(key_id),
                    }
            })
            .inspect(|_| {
                count(|c| match made {
                    Made::UrlOnly => c.url_only_tries += 1,
                    Made::WithParams => c.full_tries += 1,
                });
            });
        let mut tag = Tag::EMPTY;
        let (secret_index, candidate) =
            find_match(keys, algorithm, &received, signed, url, &mut tag).ok()?;
        Some(Diagnosis {
            mistake,
            secret_index,
            candidate,
        })
    }

    /// Reports `mistake` if some eligible key signs `signed` over `url` exactly as given: one HMAC per
    /// key, no other candidate (for a rewritten URL whose other candidates `verify` has already tried).
    fn check_exact(
        &self,
        signed: &Signed<'_>,
        url: &[u8],
        algorithm: Algorithm,
        mistake: Mistake,
    ) -> Option<Diagnosis> {
        let received = ReceivedSignature::parse(self.signature, algorithm).ok()?;
        self.keys
            .clone()
            .enumerate()
            // Empty secrets are never eligible.
            .filter(|(_, key)| key.eligible(self.key_id))
            .inspect(|_| count(|c| c.exact_tries += 1))
            .find_map(|(secret_index, key)| {
                let mut mac = key.mac(algorithm);
                signed
                    .feed(&UrlPieces::whole(url), &mut |bytes| mac.update(bytes))
                    .ok()?;
                bool::from(received.ct_matches(&mac.finalize())).then_some(Diagnosis {
                    mistake,
                    secret_index,
                    candidate: Candidate::AsGiven,
                })
            })
    }

    /// `request`'s URL alone (a GET's signed string) against the eligible keys.
    fn check_url_only(
        &self,
        url: &[u8],
        algorithm: Algorithm,
        mistake: Mistake,
    ) -> Option<Diagnosis> {
        let get = Request::get(url);
        let signed = Signed::new(&get, &mut []).ok()?;
        self.check(
            &signed,
            Made::UrlOnly,
            url,
            algorithm,
            Keys::Eligible,
            mistake,
        )
    }
}

/// Indexes the request's parameters (once per diagnosis).
fn signed_params<'a>(request: &Request<'a>, scratch: &'a mut [Span]) -> Option<Signed<'a>> {
    count(|c| c.sorts += 1);
    Signed::new(request, scratch).ok()
}

/// The URLs a report shows for `diagnosis`, which matched `rewritten` (a correction of `url`), when
/// its mistake is one of those (see [`Mistake::shows_urls`]): the URL signed is the candidate of
/// `rewritten` that matched.
fn correction(url: &[u8], rewritten: &[u8], diagnosis: Diagnosis) -> Option<UrlCorrection> {
    if !diagnosis.mistake.shows_urls() {
        return None;
    }
    let candidates = Candidates::new(rewritten);
    let (_, signed) = candidates
        .iter()
        .find(|(candidate, _)| *candidate == diagnosis.candidate)?;
    Some(UrlCorrection {
        verified: ShownUrl::of([url]),
        signed: ShownUrl::of(signed.pieces()),
    })
}

/// The mistakes tried by rewriting the URL and checking it with the full parameters, in order.
const URL_REWRITES: [Mistake; 10] = [
    Mistake::SchemeSwapped,
    Mistake::TrailingSlash,
    Mistake::SchemeSwappedAndTrailingSlash,
    Mistake::ExtraQuery,
    // At most one of the four applies to a URL (by its scheme), and the fifth only to ws/wss.
    Mistake::HttpsInsteadOfWss,
    Mistake::HttpInsteadOfWs,
    Mistake::WssInsteadOfHttps,
    Mistake::WsInsteadOfHttp,
    Mistake::WebSocketSchemeSwapped,
    Mistake::DoubledPath,
];

fn diagnose<'k>(
    keys: &(impl Iterator<Item = Key<'k>> + Clone),
    request: &Request<'_>,
    error: Error,
    scratch: &mut [Span],
) -> Option<(Diagnosis, Option<UrlCorrection>)> {
    let without_urls = |diagnosis: Diagnosis| (diagnosis, None);
    let settings = SignatureSettings::parse(request.settings).ok()?;
    let attempt = Attempt {
        keys,
        signature: request.signature,
        key_id: settings.key_id,
    };
    let alg = settings.algorithm;
    let url = request.url;
    let body = match request.payload {
        Payload::Body(body) => body,
        Payload::Params(_) => &[],
    };
    // A JSON body read as a form because its URL lost `bodySHA256`: the signature covers the URL with
    // the hash put back. Tried whatever the form reading made of the body (a mismatch, or a body that
    // is not a valid form).
    let body_hash_dropped = || {
        if !looks_like_json(body) || url::body_sha256_param(url).is_some() {
            return None;
        }
        let hashed = add_body_hash(url, &BodyHash::of(body))?;
        attempt
            .check_url_only(hashed.as_bytes(), alg, Mistake::BodyHashDropped)
            .map(without_urls)
    };
    match error {
        Error::MalformedSignature => {
            let (other, mistake) = match alg {
                Algorithm::HmacSha1 => (Algorithm::HmacSha256, Mistake::SettingsHeaderMissing),
                Algorithm::HmacSha256 => (Algorithm::HmacSha1, Mistake::SettingsHeaderUnexpected),
            };
            let signed = signed_params(request, scratch)?;
            attempt
                .check(&signed, Made::WithParams, url, other, Keys::All, mistake)
                .map(without_urls)
        }
        // The URL matched: only the body differs.
        Error::BodyHashMismatch => attempt
            .check_url_only(url, alg, Mistake::BodyAltered)
            .map(without_urls),
        Error::MalformedBody | Error::TooManyParams => body_hash_dropped(),
        Error::SignatureMismatch => {
            let has_payload = match request.payload {
                Payload::Body(body) => !body.is_empty(),
                Payload::Params(pairs) => !pairs.is_empty(),
            };
            let url_only = has_payload
                .then(|| attempt.check_url_only(url, alg, Mistake::ParamsNotSigned))
                .flatten()
                .map(without_urls)
                .or_else(body_hash_dropped);
            if url_only.is_some() {
                return url_only;
            }
            let signed = signed_params(request, scratch)?;
            let key_id_mismatch = || {
                settings.key_id?;
                attempt
                    .check(
                        &signed,
                        Made::WithParams,
                        url,
                        alg,
                        Keys::Ineligible,
                        Mistake::KeyIdMismatch,
                    )
                    .map(without_urls)
            };
            key_id_mismatch().or_else(|| url_corrections(&attempt, &signed, url, alg, has_payload))
        }
        _ => None,
    }
}

/// The URL rewrites ([`URL_REWRITES`]), then the ports ([`DROPPED_PORTS`]): the first that matches.
fn url_corrections<'k>(
    attempt: &Attempt<'_, impl Iterator<Item = Key<'k>> + Clone>,
    signed: &Signed<'_>,
    url: &[u8],
    alg: Algorithm,
    has_payload: bool,
) -> Option<(Diagnosis, Option<UrlCorrection>)> {
    URL_REWRITES
        .into_iter()
        .find_map(|mistake| {
            let rewritten = match mistake {
                Mistake::SchemeSwapped => swap_scheme(url),
                Mistake::TrailingSlash => toggle_trailing_slash(url),
                Mistake::SchemeSwappedAndTrailingSlash => {
                    swap_scheme(url).and_then(|u| toggle_trailing_slash(u.as_bytes()))
                }
                Mistake::ExtraQuery => drop_query(url),
                Mistake::DoubledPath => without_doubled_path(url),
                // A WebSocket handshake has no body: only a request without one is tried as one.
                _ if has_payload => None,
                _ => websocket_rewrite(url, mistake),
            }?;
            let diagnosis = attempt.check(
                signed,
                Made::WithParams,
                rewritten.as_bytes(),
                alg,
                Keys::Eligible,
                mistake,
            )?;
            Some((diagnosis, correction(url, rewritten.as_bytes(), diagnosis)))
        })
        // Last, the ports apps commonly sit behind, each over its URL exactly (verify tried the URL
        // without a port, and with the default one).
        .or_else(|| {
            DROPPED_PORTS.into_iter().find_map(|port| {
                let rewritten = with_port(url, port)?;
                let diagnosis =
                    attempt.check_exact(signed, rewritten.as_bytes(), alg, Mistake::DroppedPort)?;
                Some((diagnosis, correction(url, rewritten.as_bytes(), diagnosis)))
            })
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::Secret;
    use crate::validator::{sign, Validator};
    use std::format;
    use std::string::{String, ToString};
    use std::vec::Vec;

    fn text(r: Option<Rewritten>) -> Option<&'static str> {
        r.map(|r| &*String::from_utf8(r.as_bytes().to_vec()).unwrap().leak())
    }

    #[test]
    fn url_rewrites() {
        assert_eq!(text(swap_scheme(b"http://h/p")), Some("https://h/p"));
        assert_eq!(text(swap_scheme(b"HTTPS://h/p")), Some("http://h/p"));
        assert_eq!(text(swap_scheme(b"ftp://h/p")), None);
        assert_eq!(
            text(toggle_trailing_slash(b"https://h/p?x=1")),
            Some("https://h/p/?x=1")
        );
        assert_eq!(
            text(toggle_trailing_slash(b"https://h/p/#f")),
            Some("https://h/p#f")
        );
        assert_eq!(
            text(toggle_trailing_slash(b"https://h/")),
            Some("https://h")
        );
        assert_eq!(
            text(drop_query(b"https://h/p?x=1#f")),
            Some("https://h/p#f")
        );
        assert_eq!(text(drop_query(b"https://h/p")), None);
        assert!(Rewritten::from_pieces(&[&[b'a'; MAX_EXPLAIN_URL_LEN + 2]]).is_none());
        let hash = BodyHash::of(b"{}");
        let h = hash.as_str();
        assert_eq!(
            text(add_body_hash(b"https://h/e", &hash)).unwrap(),
            format!("https://h/e?bodySHA256={h}")
        );
        assert_eq!(
            text(add_body_hash(b"https://h/e?a=1#f", &hash)).unwrap(),
            format!("https://h/e?a=1&bodySHA256={h}#f")
        );
        assert_eq!(
            text(add_body_hash(b"https://h/e?", &hash)).unwrap(),
            format!("https://h/e?bodySHA256={h}")
        );
    }

    #[test]
    fn internal_urls_are_recognised_and_public_ones_are_not() {
        let signs = |url: &str| {
            InternalUrl::detect(url.as_bytes()).map(|i| {
                (
                    i.http(),
                    i.ip_literal(),
                    i.private_address(),
                    i.internal_name(),
                    i.non_default_port(),
                )
            })
        };
        assert_eq!(
            signs("http://10.0.0.5:8080/sms"),
            Some((true, true, true, false, true))
        );
        assert_eq!(
            signs("http://127.0.0.1:5601/sms"),
            Some((true, true, true, false, true))
        );
        assert_eq!(
            signs("https://localhost/sms"),
            Some((false, false, true, false, false))
        );
        assert_eq!(
            signs("https://[::1]:8443/sms"),
            Some((false, true, true, false, true))
        );
        assert_eq!(
            signs("https://[fd00::5]/sms"),
            Some((false, true, true, false, false))
        );
        assert_eq!(
            signs("https://[2001:db8::1]/sms"),
            Some((false, true, false, false, false))
        );
        assert_eq!(
            signs("https://app/sms"),
            Some((false, false, false, true, false))
        );
        assert_eq!(
            signs("https://api.svc.internal/sms"),
            Some((false, false, false, true, false))
        );
        assert_eq!(
            signs("https://printer.LOCAL./sms"),
            Some((false, false, false, true, false))
        );
        assert_eq!(
            signs("https://example.com:8443/sms"),
            Some((false, false, false, false, true))
        );
        assert_eq!(
            signs("https://user:pw@172.20.1.1/sms"),
            Some((false, true, true, false, false))
        );
        assert_eq!(
            signs("https://8.8.8.8/sms"),
            Some((false, true, false, false, false))
        );
        for public in [
            "https://example.com/sms",
            "https://example.com:443/sms",
            "HTTPS://Example.COM/sms?x=1",
            "https://172.32.0.1.example.com/sms",
            "https://local.example.com/sms",
            "not a url",
        ] {
            assert_eq!(signs(public), None, "{public}");
        }
        let long = format!("http://10.0.0.5/{}", "a".repeat(300));
        let internal = InternalUrl::detect(long.as_bytes()).unwrap();
        assert_eq!(internal.url(), &long.as_bytes()[..SHOWN_URL_LEN]);
        assert!(format!("{internal:?}").ends_with("...\", .. }"));
    }

    /// The keys of a validator with `n` secrets, the last of which signs.
    fn forged_cost(url: &str, body: &str, secrets: usize) -> (Cost, Explanation) {
        let secrets: Vec<Secret> = (0..secrets)
            .map(|i| Secret::new(format!("secret {i}").as_bytes()))
            .collect();
        let validator = Validator::with_secrets(&secrets[..]);
        let forged = "AAAAAAAAAAAAAAAAAAAAAAAAAAA=";
        let request = Request::post(url, body).signature(forged);
        COST.with(|c| c.set(Cost::default()));
        let explanation = validator.explain(&request);
        (COST.with(core::cell::Cell::get), explanation)
    }

    /// What explain spends on a forged request through a validator with `secrets` secrets, and what
    /// it says: the body is a form, or none (a GET, a WebSocket handshake).
    fn forged_get_cost(url: &str, secrets: usize) -> (Cost, Explanation) {
        let secrets: Vec<Secret> = (0..secrets)
            .map(|i| Secret::new(format!("secret {i}").as_bytes()))
            .collect();
        let validator = Validator::with_secrets(&secrets[..]);
        let request = Request::get(url).signature("AAAAAAAAAAAAAAAAAAAAAAAAAAA=");
        COST.with(|c| c.set(Cost::default()));
        let explanation = validator.explain(&request);
        (COST.with(core::cell::Cell::get), explanation)
    }

    #[test]
    fn explain_on_a_forged_request_costs_a_few_verifies() {
        let form: String = (0..100)
            .map(|i| format!("p{i}=value+{i}"))
            .collect::<Vec<_>>()
            .join("&");
        for secrets in [1, 3] {
            // The URL, and the rewrites tried with the full parameters and the ports tried, per
            // secret: the scheme swap, a slash, both, no query, no doubled path; the five ports
            // where the URL has no port of its own.
            for (url, full, ports) in [
                ("https://example.com/sms", 3, 5),
                ("https://example.com/sms?a=1", 4, 5),
                ("https://example.com:443/sms", 3, 5),
                ("http://10.0.0.5:8080/sms/", 3, 0),
                ("https://example.com/twilio/sms/twilio/sms?a=1", 5, 5),
            ] {
                let (cost, explanation) = forged_cost(url, &form, secrets);
                assert_eq!(explanation.verdict.err(), Some(Error::SignatureMismatch));
                assert!(explanation.diagnosis.is_none());
                // verify itself tried every secret once on the full string; explain adds one sort,
                // the rewritten URLs, the ports and one URL-alone string per secret.
                assert_eq!(cost.sorts, 1, "{url}: {cost:?}");
                assert_eq!(cost.full_tries, full * secrets, "{url}: {cost:?}");
                assert_eq!(cost.exact_tries, ports * secrets, "{url}: {cost:?}");
                assert_eq!(cost.url_only_tries, secrets, "{url}: {cost:?}");
            }
            // A forged JSON body read as a form adds one URL-alone try per secret (and one SHA-256).
            let (cost, _) = forged_cost("https://example.com/events", "{\"a\":1}", secrets);
            assert_eq!(cost.url_only_tries, 2 * secrets, "{cost:?}");
            assert!(cost.full_tries <= 5 * secrets, "{cost:?}");
            // Without a body (a GET, a WebSocket handshake), the one WebSocket rewrite that fits the
            // scheme (two for ws and wss: the scheme swap is theirs) is tried too; no URL-alone string.
            for (url, full, ports) in [
                ("https://example.com/twilio/sms/twilio/sms?a=1", 6, 5),
                ("http://example.com/media", 4, 5),
                ("wss://example.com/media?a=1", 4, 5),
                ("ws://example.com:80/a/a", 4, 5),
            ] {
                let (cost, explanation) = forged_get_cost(url, secrets);
                assert_eq!(explanation.verdict.err(), Some(Error::SignatureMismatch));
                assert!(explanation.diagnosis.is_none());
                assert_eq!(cost.sorts, 1, "{url}: {cost:?}");
                assert_eq!(cost.full_tries, full * secrets, "{url}: {cost:?}");
                assert_eq!(cost.exact_tries, ports * secrets, "{url}: {cost:?}");
                assert_eq!(cost.url_only_tries, 0, "{url}: {cost:?}");
            }
        }
    }

    #[test]
    fn doubled_paths_ports_and_websocket_schemes_are_rewritten() {
        let doubled = |url: &str| text(without_doubled_path(url.as_bytes()));
        assert_eq!(
            doubled("https://h/twilio/sms/twilio/sms?x=1#f"),
            Some("https://h/twilio/sms?x=1#f")
        );
        assert_eq!(
            doubled("https://h/api/twilio/twilio/sms"),
            Some("https://h/api/twilio/sms")
        );
        assert_eq!(doubled("https://h/a/b/a/b/"), Some("https://h/a/b/"));
        // The longest run first: /a/a/b/a/a/b has /a/a/b twice, and /a twice inside it.
        assert_eq!(doubled("https://h/a/a/b/a/a/b"), Some("https://h/a/a/b"));
        assert_eq!(doubled("https://h/sms"), None);
        assert_eq!(doubled("https://h/ab/a"), None);
        assert_eq!(doubled("https://h//sms"), None);
        assert_eq!(doubled("https://h/a?/a/a"), None);
        // A query's slashes are not path.
        assert_eq!(doubled("https://h/p?x=/a/a"), None);
        let long = format!("https://h{}", "/a".repeat(MAX_PATH_SEGMENTS + 1));
        assert_eq!(doubled(&long), None);
        let most = format!("https://h{}", "/a".repeat(MAX_PATH_SEGMENTS));
        let half = format!("https://h{}", "/a".repeat(MAX_PATH_SEGMENTS / 2));
        assert_eq!(doubled(&most), Some(half.as_str()));

        let port = |url: &str, p: u16| text(with_port(url.as_bytes(), p));
        assert_eq!(port("https://h/sms?x", 8443), Some("https://h:8443/sms?x"));
        assert_eq!(port("https://h:443/sms", 3000), Some("https://h:3000/sms"));
        assert_eq!(port("HTTP://u:p@h:80", 5), Some("HTTP://u:p@h:5"));
        assert_eq!(port("wss://[::1]/m", 65535), Some("wss://[::1]:65535/m"));
        assert_eq!(port("ws://h:80/m", 8000), Some("ws://h:8000/m"));
        assert_eq!(port("https://h:80/sms", 8443), None);
        assert_eq!(port("https://h:8080/sms", 8443), None);
        assert_eq!(port("ftp://h/sms", 8443), None);
        assert_eq!(port("not a url", 8443), None);

        let ws = |url: &str, m: Mistake| text(websocket_rewrite(url.as_bytes(), m));
        assert_eq!(
            ws("HTTPS://h/m?x", Mistake::HttpsInsteadOfWss),
            Some("wss://h/m?x")
        );
        assert_eq!(ws("http://h/m", Mistake::HttpInsteadOfWs), Some("ws://h/m"));
        assert_eq!(
            ws("wss://h/m", Mistake::WssInsteadOfHttps),
            Some("https://h/m")
        );
        assert_eq!(ws("Ws://h/m", Mistake::WsInsteadOfHttp), Some("http://h/m"));
        assert_eq!(
            ws("ws://h/m", Mistake::WebSocketSchemeSwapped),
            Some("wss://h/m")
        );
        assert_eq!(
            ws("wss://h/m", Mistake::WebSocketSchemeSwapped),
            Some("ws://h/m")
        );
        assert_eq!(ws("https://h/m", Mistake::HttpInsteadOfWs), None);
        assert_eq!(ws("wss://h/m", Mistake::WsInsteadOfHttp), None);
        assert_eq!(ws("https://h/m", Mistake::WebSocketSchemeSwapped), None);
        assert_eq!(ws("https://h/m", Mistake::TrailingSlash), None);
    }

    #[test]
    fn the_proxy_case_names_the_internal_url_and_not_the_token_first() {
        let body = "Body=Hello&From=%2B15551234567";
        let secret = b"12345678901234567890123456789012";
        let sig = sign(secret, &Request::post("https://example.com/sms", body)).unwrap();
        let validator = Validator::new(Secret::new(secret));
        for url in ["http://10.0.0.5:8080/sms", "http://127.0.0.1:5601/sms"] {
            let explanation =
                validator.explain(&Request::post(url, body).signature(sig.as_bytes()));
            assert!(explanation.diagnosis.is_none());
            assert_eq!(
                explanation.internal_url.map(|i| i.url().to_vec()),
                Some(url.as_bytes().to_vec())
            );
            let report = explanation.to_string();
            assert!(
                report.contains("likely cause: the URL verified looks internal")
                    && report.contains(&format!("url verified: {url}\n"))
                    && report.contains("configure the base URL")
                    && !report.contains("no common mistake"),
                "{report}"
            );
            let token = report.find("Auth Token").unwrap();
            assert!(token > report.find("fix:").unwrap(), "{report}");
        }
        // A public URL keeps the token advice.
        let report = validator
            .explain(&Request::post("https://example.com/other", body).signature(sig.as_bytes()))
            .to_string();
        assert!(report.contains("no common mistake explains it"), "{report}");
        assert!(!report.contains("internal"), "{report}");
        // Control bytes in the URL do not break the report's lines.
        let explanation = validator
            .explain(&Request::post("http://10.0.0.5/a\nb\x1b", body).signature(sig.as_bytes()));
        assert!(explanation
            .to_string()
            .contains("url verified: http://10.0.0.5/a%0Ab%1B\n"));
    }
}
