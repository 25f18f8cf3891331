//! The naive reference: build the whole canonical string on the heap, then HMAC it with `ring` (an
//! independent crypto stack). Written from docs/contract.md without looking at the streaming core.

use ring::hmac;

pub fn base64(bytes: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n =
            chunk.iter().fold(0u32, |acc, &b| acc << 8 | u32::from(b)) << (8 * (3 - chunk.len()));
        for i in 0..4 {
            out.push(if i <= chunk.len() {
                T[(n >> (18 - 6 * i) & 63) as usize] as char
            } else {
                '='
            });
        }
    }
    out
}

pub fn mac(sha256: bool, secret: &[u8], message: &[u8]) -> String {
    let alg = if sha256 {
        hmac::HMAC_SHA256
    } else {
        hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY
    };
    base64(hmac::sign(&hmac::Key::new(alg, secret), message).as_ref())
}

pub fn sha256_hex(body: &[u8]) -> String {
    use std::fmt::Write;
    ring::digest::digest(&ring::digest::SHA256, body)
        .as_ref()
        .iter()
        .fold(String::new(), |mut hex, b| {
            let _ = write!(hex, "{b:02x}");
            hex
        })
}

/// The candidate URLs, in order, duplicates dropped.
pub fn candidates(url: &[u8]) -> Vec<Vec<u8>> {
    let mut out = vec![url.to_vec()];
    let Some(sep) = url.windows(3).position(|w| w == b"://") else {
        return out;
    };
    let (scheme, after) = (&url[..sep], &url[sep + 3..]);
    let auth_len = after
        .iter()
        .position(|b| b"/?#".contains(b))
        .unwrap_or(after.len());
    let (authority, rest) = after.split_at(auth_len);
    let (userinfo, hostport) = match authority.iter().rposition(|&b| b == b'@') {
        Some(at) => (&authority[..=at], &authority[at + 1..]),
        None => (&authority[..0], authority),
    };
    let host_len = if hostport.first() == Some(&b'[') {
        let close = hostport
            .iter()
            .position(|&b| b == b']')
            .map_or(hostport.len(), |i| i + 1);
        close
            + hostport[close..]
                .iter()
                .position(|&b| b == b':')
                .unwrap_or(hostport.len() - close)
    } else {
        hostport
            .iter()
            .position(|&b| b == b':')
            .unwrap_or(hostport.len())
    };
    let host = &hostport[..host_len];
    let toggled: Option<Vec<u8>> = if host_len < hostport.len() {
        Some(host.to_vec())
    } else if scheme.eq_ignore_ascii_case(b"https") || scheme.eq_ignore_ascii_case(b"wss") {
        Some([host, b":443"].concat())
    } else if scheme.eq_ignore_ascii_case(b"http") || scheme.eq_ignore_ascii_case(b"ws") {
        Some([host, b":80"].concat())
    } else {
        None
    };
    let build =
        |userinfo: &[u8], hostport: &[u8]| [scheme, b"://", userinfo, hostport, rest].concat();
    if let Some(t) = &toggled {
        out.push(build(userinfo, t));
    }
    if !userinfo.is_empty() {
        out.push(build(b"", hostport));
        if let Some(t) = &toggled {
            out.push(build(b"", t));
        }
    }
    let mut seen = Vec::new();
    out.retain(|u| {
        let new = !seen.contains(u);
        seen.push(u.clone());
        new
    });
    out
}

fn percent_decode(raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < raw.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        match raw[i] {
            b'+' => out.push(b' '),
            b'%' => {
                if let (Some(h), Some(l)) = (
                    raw.get(i + 1).and_then(|&b| hex(b)),
                    raw.get(i + 2).and_then(|&b| hex(b)),
                ) {
                    out.push((h * 16 + l) as u8);
                    i += 3;
                    continue;
                }
                out.push(b'%');
            }
            b => out.push(b),
        }
        i += 1;
    }
    out
}

/// Decoded form pairs, or `None` when a name or value is not UTF-8.
pub fn decode_form(body: &[u8]) -> Option<Vec<(String, String)>> {
    body.split(|&b| b == b'&')
        .filter(|s| !s.is_empty())
        .map(|segment| {
            let (name, value) = match segment.iter().position(|&b| b == b'=') {
                Some(eq) => (&segment[..eq], &segment[eq + 1..]),
                None => (segment, &segment[..0]),
            };
            Some((
                String::from_utf8(percent_decode(name)).ok()?,
                String::from_utf8(percent_decode(value)).ok()?,
            ))
        })
        .collect()
}

/// `name ++ value` for each distinct pair, names then values in byte order.
pub fn params_string(pairs: &[(String, String)]) -> Vec<u8> {
    let mut sorted: Vec<&(String, String)> = pairs.iter().collect();
    sorted.sort_by(|a, b| {
        a.0.as_bytes()
            .cmp(b.0.as_bytes())
            .then(a.1.as_bytes().cmp(b.1.as_bytes()))
    });
    sorted.dedup();
    sorted
        .iter()
        .flat_map(|(n, v)| [n.as_bytes(), v.as_bytes()].concat())
        .collect()
}

fn body_sha256(url: &[u8]) -> Option<Vec<u8>> {
    let url = &url[..url.iter().position(|&b| b == b'#').unwrap_or(url.len())];
    let q = url.iter().position(|&b| b == b'?')?;
    url[q + 1..].split(|&b| b == b'&').find_map(|p| {
        if p == b"bodySHA256" {
            Some(Vec::new())
        } else {
            p.strip_prefix(b"bodySHA256=").map(<[u8]>::to_vec)
        }
    })
}

/// What the signature of a raw-body request must cover, per candidate; `None` for a malformed body.
/// The bool is whether the body hash (if any) matches.
pub fn signed_strings(url: &[u8], body: &[u8]) -> Option<(Vec<Vec<u8>>, bool)> {
    let (params, hash_ok) = match body_sha256(url) {
        Some(hash) => (Vec::new(), sha256_hex(body).as_bytes() == hash.as_slice()),
        None => (params_string(&decode_form(body)?), true),
    };
    Some((
        candidates(url)
            .into_iter()
            .map(|c| [c, params.clone()].concat())
            .collect(),
        hash_ok,
    ))
}

/// The reference verdict for a raw-body request.
pub fn accepts(secret: &[u8], sha256: bool, url: &[u8], body: &[u8], signature: &str) -> bool {
    match signed_strings(url, body) {
        Some((strings, hash_ok)) => {
            hash_ok && strings.iter().any(|s| mac(sha256, secret, s) == signature)
        }
        None => false,
    }
}
