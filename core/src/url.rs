//! URL candidates: the URL as given, with its port toggled, and without userinfo. The toggle adds the
//! default port of `https` and `wss` (443) or `http` and `ws` (80).
//!
//! The URL is opaque bytes. Nothing is parsed and re-serialised, re-encoded or re-cased: each candidate is
//! the original bytes with one span of the authority cut out or one port spliced in, represented as up to
//! four borrowed pieces that are fed to the HMAC one after another.

use crate::scan::bytes_eq;

/// Which candidate URL matched.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Candidate {
    /// The URL exactly as given.
    AsGiven,
    /// The URL with its port removed, or with `:443`/`:80` added (https and wss; http and ws).
    PortToggled,
    /// The URL without `user:pass@`.
    WithoutUserinfo,
    /// The URL without `user:pass@`, port toggled.
    WithoutUserinfoPortToggled,
}

impl Candidate {
    /// A short description for reports.
    pub const fn describe(self) -> &'static str {
        match self {
            Self::AsGiven => "the URL as given",
            Self::PortToggled => "the URL with its port toggled",
            Self::WithoutUserinfo => "the URL without credentials",
            Self::WithoutUserinfoPortToggled => "the URL without credentials, port toggled",
        }
    }
}

/// A URL made of up to four borrowed pieces.
#[derive(Clone, Copy, Debug)]
pub(crate) struct UrlPieces<'a> {
    pieces: [&'a [u8]; 4],
}

impl<'a> UrlPieces<'a> {
    pub(crate) const fn whole(url: &'a [u8]) -> Self {
        Self {
            pieces: [url, &[], &[], &[]],
        }
    }

    pub(crate) fn pieces(&self) -> impl Iterator<Item = &'a [u8]> + '_ {
        self.pieces.iter().copied().filter(|p| !p.is_empty())
    }

    fn bytes(&self) -> impl Iterator<Item = u8> + '_ {
        self.pieces().flat_map(|p| p.iter().copied())
    }

    fn len(&self) -> usize {
        self.pieces.iter().map(|p| p.len()).sum()
    }

    fn same_as(&self, other: &Self) -> bool {
        self.len() == other.len() && self.bytes().eq(other.bytes())
    }
}

/// Where things are in a URL's authority, as offsets into the URL.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Authority {
    /// Just after `://`.
    start: usize,
    /// Just after the last `@` of the authority (== start when there is no userinfo).
    host: usize,
    /// Where the port's `:` is, or `end` when there is no port.
    port: usize,
    /// The first `/`, `?` or `#` after `start`, or the end of the URL.
    end: usize,
    /// The default port to add when there is none, for http and https (and ws and wss).
    default_port: Option<&'static [u8]>,
}

impl Authority {
    fn find(url: &[u8]) -> Option<Self> {
        let start = url.windows(3).position(|w| w == b"://")? + 3;
        let scheme = &url[..start - 3];
        let end = url[start..]
            .iter()
            .position(|&b| matches!(b, b'/' | b'?' | b'#'))
            .map_or(url.len(), |i| start + i);
        let host = url[start..end]
            .iter()
            .rposition(|&b| b == b'@')
            .map_or(start, |i| start + i + 1);
        // In an IPv6 literal the colons belong to the address: the port can only follow the `]`.
        let port_search_from = if url.get(host) == Some(&b'[') {
            url[host..end]
                .iter()
                .position(|&b| b == b']')
                .map_or(end, |i| host + i + 1)
        } else {
            host
        };
        let port = url[port_search_from..end]
            .iter()
            .position(|&b| b == b':')
            .map_or(end, |i| port_search_from + i);
        // A WebSocket handshake is signed over its `wss://` (or `ws://`) URL, whose default ports are
        // those of https and http (RFC 6455 section 3). Tried after https and http, so their test is
        // unchanged.
        let default_port: Option<&'static [u8]> = if scheme.eq_ignore_ascii_case(b"https") {
            Some(b":443")
        } else if scheme.eq_ignore_ascii_case(b"http") {
            Some(b":80")
        } else if scheme.eq_ignore_ascii_case(b"wss") {
            Some(b":443")
        } else if scheme.eq_ignore_ascii_case(b"ws") {
            Some(b":80")
        } else {
            None
        };
        Some(Self {
            start,
            host,
            port,
            end,
            default_port,
        })
    }
}

/// Where explain may edit a URL's authority: the offset of the port's `:` (or where one would go),
/// the authority's end, and the scheme's default port (`:443` or `:80`; `None` for other schemes).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct PortSlot {
    pub(crate) port: usize,
    pub(crate) end: usize,
    pub(crate) default_port: Option<&'static [u8]>,
}

/// The [`PortSlot`] of `url`, if it has a `://`.
pub(crate) fn port_slot(url: &[u8]) -> Option<PortSlot> {
    let auth = Authority::find(url)?;
    Some(PortSlot {
        port: auth.port,
        end: auth.end,
        default_port: auth.default_port,
    })
}

/// The candidates for one URL, in the contract's order, duplicates dropped.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Candidates<'a> {
    list: [(Candidate, UrlPieces<'a>); 4],
    len: usize,
}

impl<'a> Candidates<'a> {
    pub(crate) fn new(url: &'a [u8]) -> Self {
        let mut this = Self {
            list: [(Candidate::AsGiven, UrlPieces::whole(url)); 4],
            len: 1,
        };
        let Some(auth) = Authority::find(url) else {
            return this;
        };
        let (head, host_to_port, rest) = (
            &url[..auth.host],
            &url[auth.host..auth.port],
            &url[auth.end..],
        );
        this.push(
            Candidate::PortToggled,
            toggled(head, host_to_port, rest, &auth),
        );
        if auth.host > auth.start {
            let scheme = &url[..auth.start];
            this.push(
                Candidate::WithoutUserinfo,
                Some(UrlPieces {
                    pieces: [scheme, &url[auth.host..], &[], &[]],
                }),
            );
            if let Some(mut pieces) = toggled(head, host_to_port, rest, &auth) {
                pieces.pieces[0] = scheme;
                this.push(Candidate::WithoutUserinfoPortToggled, Some(pieces));
            }
        }
        this
    }

    fn push(&mut self, which: Candidate, pieces: Option<UrlPieces<'a>>) {
        let Some(pieces) = pieces else { return };
        if self.list[..self.len]
            .iter()
            .any(|(_, seen)| seen.same_as(&pieces))
        {
            return;
        }
        self.list[self.len] = (which, pieces);
        self.len += 1;
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = (Candidate, UrlPieces<'a>)> + '_ {
        self.list[..self.len].iter().copied()
    }
}

/// `head` is everything before the host, `host` runs to the port's `:` (or the authority's end).
fn toggled<'a>(
    head: &'a [u8],
    host: &'a [u8],
    rest: &'a [u8],
    auth: &Authority,
) -> Option<UrlPieces<'a>> {
    if auth.port < auth.end {
        Some(UrlPieces {
            pieces: [head, host, rest, &[]],
        })
    } else {
        auth.default_port.map(|port| UrlPieces {
            pieces: [head, host, port, rest],
        })
    }
}

/// Where the first `?` or `#` of `url` is, eight bytes at a time (every request looks).
fn query_or_fragment(url: &[u8]) -> Option<usize> {
    let mut at = 0;
    while let Some(chunk) = url.get(at..at + 8) {
        let word = u64::from_le_bytes(chunk.try_into().unwrap_or_default());
        let found = bytes_eq(word, b'?') | bytes_eq(word, b'#');
        if found != 0 {
            return Some(at + found.trailing_zeros() as usize / 8);
        }
        at += 8;
    }
    url[at..]
        .iter()
        .position(|&b| b == b'?' || b == b'#')
        .map(|i| at + i)
}

/// The raw value of the first `bodySHA256` in the URL's query, if any: when there is one, the body is
/// opaque and checked by its hash, never read as a form. Web faces use it for the Content-Type rule
/// (a body covered by its hash may carry any type), so they share the core's reading of the query.
///
/// ```
/// use twilio_signature::body_sha256_param;
/// assert_eq!(body_sha256_param(b"https://h/p?bodySHA256=ab&x=1"), Some(&b"ab"[..]));
/// assert_eq!(body_sha256_param(b"https://h/p?xbodySHA256=ab"), None);
/// assert_eq!(body_sha256_param(b"https://h/p#?bodySHA256=ab"), None);
/// ```
pub fn body_sha256_param(url: &[u8]) -> Option<&[u8]> {
    let query_start = query_or_fragment(url)?;
    if url[query_start] == b'#' {
        return None;
    }
    let query = &url[query_start + 1..];
    let query = query
        .iter()
        .position(|&b| b == b'#')
        .map_or(query, |i| &query[..i]);
    query.split(|&b| b == b'&').find_map(|pair| {
        let value = pair.strip_prefix(b"bodySHA256")?;
        match value.first() {
            None => Some(&value[..0]),
            Some(b'=') => Some(&value[1..]),
            Some(_) => None,
        }
    })
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use std::vec::Vec;

    fn candidates(url: &str) -> Vec<(Candidate, std::string::String)> {
        Candidates::new(url.as_bytes())
            .iter()
            .map(|(c, p)| {
                (
                    c,
                    std::string::String::from_utf8(p.bytes().collect()).unwrap(),
                )
            })
            .collect()
    }

    fn urls(url: &str) -> Vec<std::string::String> {
        candidates(url).into_iter().map(|(_, u)| u).collect()
    }

    #[test]
    fn a_port_is_removed_and_a_missing_one_added() {
        assert_eq!(
            urls("https://h.com:1234/p?q=1"),
            ["https://h.com:1234/p?q=1", "https://h.com/p?q=1"]
        );
        assert_eq!(
            urls("https://h.com/p"),
            ["https://h.com/p", "https://h.com:443/p"]
        );
        assert_eq!(
            urls("HTTP://h.com?x"),
            ["HTTP://h.com?x", "HTTP://h.com:80?x"]
        );
        assert_eq!(
            urls("http://h.com#f"),
            ["http://h.com#f", "http://h.com:80#f"]
        );
        assert_eq!(
            urls("https://h.com"),
            ["https://h.com", "https://h.com:443"]
        );
    }

    #[test]
    fn websocket_schemes_toggle_like_https_and_http() {
        assert_eq!(
            urls("wss://h.com/media?x=1"),
            ["wss://h.com/media?x=1", "wss://h.com:443/media?x=1"]
        );
        assert_eq!(
            urls("WSS://h.com:443/media"),
            ["WSS://h.com:443/media", "WSS://h.com/media"]
        );
        assert_eq!(urls("ws://h.com/m"), ["ws://h.com/m", "ws://h.com:80/m"]);
        assert_eq!(urls("Ws://h.com:80"), ["Ws://h.com:80", "Ws://h.com"]);
        assert_eq!(
            urls("wss://[::1]/m"),
            ["wss://[::1]/m", "wss://[::1]:443/m"]
        );
        // Only the exact schemes: `wsx` and `xws` are other schemes, which only lose a port.
        assert_eq!(urls("wsx://h.com/m"), ["wsx://h.com/m"]);
        assert_eq!(urls("xws://h.com/m"), ["xws://h.com/m"]);
    }

    #[test]
    fn other_schemes_only_lose_a_port() {
        assert_eq!(urls("ftp://h.com/p"), ["ftp://h.com/p"]);
        assert_eq!(
            urls("ftp://h.com:21/p"),
            ["ftp://h.com:21/p", "ftp://h.com/p"]
        );
        assert_eq!(urls("not a url"), ["not a url"]);
        assert_eq!(urls(""), [""]);
    }

    #[test]
    fn ipv6_ports_start_after_the_bracket() {
        assert_eq!(
            urls("https://[::1]:8443/p"),
            ["https://[::1]:8443/p", "https://[::1]/p"]
        );
        assert_eq!(
            urls("https://[::1]/p"),
            ["https://[::1]/p", "https://[::1]:443/p"]
        );
    }

    #[test]
    fn userinfo_is_dropped_after_the_last_at() {
        assert_eq!(
            candidates("https://u:p@x@h.com:8/p"),
            [
                (Candidate::AsGiven, "https://u:p@x@h.com:8/p".into()),
                (Candidate::PortToggled, "https://u:p@x@h.com/p".into()),
                (Candidate::WithoutUserinfo, "https://h.com:8/p".into()),
                (
                    Candidate::WithoutUserinfoPortToggled,
                    "https://h.com/p".into()
                ),
            ]
        );
        // An `@` after the authority is path, not userinfo.
        assert_eq!(
            urls("https://h.com/a@b"),
            ["https://h.com/a@b", "https://h.com:443/a@b"]
        );
    }

    #[test]
    fn body_sha256_first_occurrence_wins() {
        assert_eq!(
            body_sha256_param(b"https://h/p?a=1&bodySHA256=ab&bodySHA256=cd"),
            Some(&b"ab"[..])
        );
        assert_eq!(
            body_sha256_param(b"https://h/p?bodySHA256="),
            Some(&b""[..])
        );
        assert_eq!(
            body_sha256_param(b"https://h/p?xbodySHA256=1&bodySHA2567=2"),
            None
        );
        assert_eq!(body_sha256_param(b"https://h/p#?bodySHA256=1"), None);
        // The search for `?` and `#` goes a word at a time: each place in and after the first words.
        for at in 0..40 {
            let mut url = std::vec![b'x'; 48];
            url[at] = b'?';
            assert_eq!(query_or_fragment(&url), Some(at));
            url[at] = b'#';
            url[at + 3] = b'?';
            assert_eq!(query_or_fragment(&url), Some(at));
            assert_eq!(query_or_fragment(&url[..at]), None);
        }
        assert_eq!(body_sha256_param(b"https://h/p?a#bodySHA256=1"), None);
    }
}
