//! The heuristic for a request nothing explains: whether the URL verified looks like an app's own
//! address (plain http, a private address, an internal name, an unusual port) rather than the public
//! URL Twilio signs. Hands [`InternalUrl`] to [`super::Explanation`], whose report names the signs.

use core::fmt;

use super::shown::ShownUrl;

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
    pub(super) shown: ShownUrl,
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
    pub(super) fn write_signs(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
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

#[cfg(test)]
mod tests {
    extern crate std;
    use super::super::shown::SHOWN_URL_LEN;
    use super::*;
    use std::format;

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
}
