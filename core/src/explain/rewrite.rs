//! The URL mistakes undone: each function rewrites the URL verified as Twilio would have signed it
//! under one [`Mistake`] (the other scheme, slash or WebSocket scheme, no query, the path without a
//! repeat, a port added, the body's hash added), into a stack buffer ([`Rewritten`]), or gives `None`
//! when the mistake cannot apply. [`super::diagnose`](mod@super::diagnose) tries the signature on what they hand back.

use super::mistake::Mistake;
use crate::canonical::BodyHash;
use crate::url;

/// URLs longer than this are not rewritten into diagnostic variants (the verdict is still given).
pub const MAX_EXPLAIN_URL_LEN: usize = 4096;

/// A URL rewritten into a stack buffer.
pub(super) struct Rewritten {
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

    pub(super) fn as_bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}

pub(super) fn swap_scheme(url: &[u8]) -> Option<Rewritten> {
    let (scheme, rest) = if url.len() >= 8 && url[..8].eq_ignore_ascii_case(b"https://") {
        (&b"http://"[..], &url[8..])
    } else if url.len() >= 7 && url[..7].eq_ignore_ascii_case(b"http://") {
        (&b"https://"[..], &url[7..])
    } else {
        return None;
    };
    Rewritten::from_pieces(&[scheme, rest])
}

pub(super) fn toggle_trailing_slash(url: &[u8]) -> Option<Rewritten> {
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

pub(super) fn drop_query(url: &[u8]) -> Option<Rewritten> {
    let start = url.iter().position(|&b| b == b'?')?;
    let end = url[start..]
        .iter()
        .position(|&b| b == b'#')
        .map_or(url.len(), |i| start + i);
    Rewritten::from_pieces(&[&url[..start], &url[end..]])
}

/// The URL with `bodySHA256=<hash>` appended to its query (before any fragment), as Twilio builds a
/// JSON webhook's URL.
pub(super) fn add_body_hash(url: &[u8], hash: &BodyHash) -> Option<Rewritten> {
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
pub(super) fn websocket_rewrite(url: &[u8], mistake: Mistake) -> Option<Rewritten> {
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
pub(super) fn without_doubled_path(url: &[u8]) -> Option<Rewritten> {
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
pub(super) fn with_port(url: &[u8], port: u16) -> Option<Rewritten> {
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

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use std::format;
    use std::string::String;

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
}
