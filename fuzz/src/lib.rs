//! A naive reference for the fuzz targets: the contract of `docs/contract.md` written the slow, obvious way.
//!
//! Everything here allocates and builds whole strings: the URL candidates by parsing the URL into
//! named parts and gluing them back, the canonical string by decoding the form into a sorted map, and
//! the verdict by HMACing the whole string (with the crate's `twilio_signature::hmac`, the only piece
//! shared with the core) and comparing base64 text. None of it shares code with the core's streaming,
//! allocation-free path, so a disagreement is a bug in one of them.
//!
//! It also holds the `arbitrary` shapes the targets draw requests from, so that the fuzzer reaches
//! accepted signatures, real ports, userinfo, IPv6 literals and `bodySHA256` URLs instead of spending
//! its time on bytes that fail the first check.

use std::collections::{BTreeMap, BTreeSet};

use arbitrary::Arbitrary;
use sha2::{Digest, Sha256};
use twilio_signature::{Algorithm, Candidate, Error};

/// The core's default bound on form parameters (`DEFAULT_MAX_PARAMS`), counted before de-duplication.
pub const MAX_PARAMS: usize = twilio_signature::DEFAULT_MAX_PARAMS;

// ---------------------------------------------------------------------------------------------------
// URL candidates
// ---------------------------------------------------------------------------------------------------

/// A URL split the way the contract describes it: `scheme://userinfo@host:port<rest>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UrlParts {
    pub scheme: Vec<u8>,
    pub userinfo: Option<Vec<u8>>,
    pub host: Vec<u8>,
    /// The port's digits (or whatever follows the `:`), without the `:`.
    pub port: Option<Vec<u8>>,
    /// Path, query and fragment: everything from the first `/`, `?` or `#` after the authority.
    pub rest: Vec<u8>,
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

impl UrlParts {
    /// `None` when the URL has no `://` (then it has no authority and only the URL itself is a candidate).
    pub fn split(url: &[u8]) -> Option<Self> {
        let sep = find(url, b"://")?;
        let scheme = url[..sep].to_vec();
        let after = &url[sep + 3..];
        let auth_len = after
            .iter()
            .position(|b| b"/?#".contains(b))
            .unwrap_or(after.len());
        let (authority, rest) = after.split_at(auth_len);
        let (userinfo, hostport) = match authority.iter().rposition(|&b| b == b'@') {
            Some(at) => (Some(authority[..at].to_vec()), &authority[at + 1..]),
            None => (None, authority),
        };
        // An IPv6 literal keeps its colons: the port can only come after the closing bracket. A `[`
        // without `]` is all host.
        let port_colon = if hostport.first() == Some(&b'[') {
            match hostport.iter().position(|&b| b == b']') {
                Some(close) => hostport[close..]
                    .iter()
                    .position(|&b| b == b':')
                    .map(|i| close + i),
                None => None,
            }
        } else {
            hostport.iter().position(|&b| b == b':')
        };
        let (host, port) = match port_colon {
            Some(colon) => (
                hostport[..colon].to_vec(),
                Some(hostport[colon + 1..].to_vec()),
            ),
            None => (hostport.to_vec(), None),
        };
        Some(Self {
            scheme,
            userinfo,
            host,
            port,
            rest: rest.to_vec(),
        })
    }

    pub fn join(&self) -> Vec<u8> {
        let mut url = self.scheme.clone();
        url.extend_from_slice(b"://");
        if let Some(userinfo) = &self.userinfo {
            url.extend_from_slice(userinfo);
            url.push(b'@');
        }
        url.extend_from_slice(&self.host);
        if let Some(port) = &self.port {
            url.push(b':');
            url.extend_from_slice(port);
        }
        url.extend_from_slice(&self.rest);
        url
    }

    /// The port removed, or the scheme's default port added; `None` for a portless non-HTTP(S) URL.
    pub fn port_toggled(&self) -> Option<Self> {
        let mut other = self.clone();
        if self.port.is_some() {
            other.port = None;
        } else if self.scheme.eq_ignore_ascii_case(b"https")
            || self.scheme.eq_ignore_ascii_case(b"wss")
        {
            other.port = Some(b"443".to_vec());
        } else if self.scheme.eq_ignore_ascii_case(b"http")
            || self.scheme.eq_ignore_ascii_case(b"ws")
        {
            other.port = Some(b"80".to_vec());
        } else {
            return None;
        }
        Some(other)
    }
}

/// The candidate URLs in the contract's order, each with the kind the core reports, duplicates dropped.
pub fn candidates(url: &[u8]) -> Vec<(Candidate, Vec<u8>)> {
    let mut list: Vec<(Candidate, Vec<u8>)> = vec![(Candidate::AsGiven, url.to_vec())];
    let Some(parts) = UrlParts::split(url) else {
        return list;
    };
    let mut push = |kind: Candidate, parts: Option<UrlParts>| {
        if let Some(parts) = parts {
            let joined = parts.join();
            if !list.iter().any(|(_, seen)| *seen == joined) {
                list.push((kind, joined));
            }
        }
    };
    push(Candidate::PortToggled, parts.port_toggled());
    if parts.userinfo.is_some() {
        let bare = UrlParts {
            userinfo: None,
            ..parts.clone()
        };
        push(Candidate::WithoutUserinfo, Some(bare.clone()));
        push(Candidate::WithoutUserinfoPortToggled, bare.port_toggled());
    }
    list
}

// ---------------------------------------------------------------------------------------------------
// Headers
// ---------------------------------------------------------------------------------------------------

/// `X-Twilio-Webhooks-Signature-Settings`: the algorithm and the key id it names.
pub fn parse_settings(header: Option<&[u8]>) -> Result<(Algorithm, Option<Vec<u8>>), Error> {
    let Some(header) = header else {
        return Ok((Algorithm::HmacSha1, None));
    };
    // Header values are visible ASCII, space and tab; anything else is not a header we understand.
    if header
        .iter()
        .any(|&b| !(b == b'\t' || (0x20..0x7f).contains(&b)))
    {
        return Err(Error::MalformedSettings);
    }
    let text = std::str::from_utf8(header).map_err(|_| Error::MalformedSettings)?;
    let trim = |s: &str| s.trim_matches(|c| c == ' ' || c == '\t').to_string();
    let mut algorithm: Option<String> = None;
    let mut key: Option<String> = None;
    for item in text.split(',').map(trim).filter(|s| !s.is_empty()) {
        let (name, value) = item.split_once('=').ok_or(Error::MalformedSettings)?;
        let (name, value) = (trim(name).to_ascii_lowercase(), trim(value));
        let slot = match name.as_str() {
            "algorithm" => &mut algorithm,
            "key" => &mut key,
            _ => continue,
        };
        // A named setting given twice, or given empty, is ambiguous: refuse rather than guess.
        if value.is_empty() || slot.is_some() {
            return Err(Error::MalformedSettings);
        }
        *slot = Some(value);
    }
    let algorithm = match algorithm.map(|a| a.to_ascii_uppercase()) {
        None => Algorithm::HmacSha1,
        Some(a) if a == "HMAC_SHA1" => Algorithm::HmacSha1,
        Some(a) if a == "HMAC_SHA256" => Algorithm::HmacSha256,
        Some(_) => return Err(Error::UnsupportedAlgorithm),
    };
    Ok((algorithm, key.map(String::into_bytes)))
}

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Standard base64 with padding.
pub fn base64(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    for chunk in bytes.chunks(3) {
        let n = chunk.len();
        let word = (u32::from(chunk[0]) << 16)
            | (u32::from(*chunk.get(1).unwrap_or(&0)) << 8)
            | u32::from(*chunk.get(2).unwrap_or(&0));
        for i in 0..4 {
            if i <= n {
                out.push(B64[((word >> (18 - 6 * i)) & 63) as usize]);
            } else {
                out.push(b'=');
            }
        }
    }
    out
}

/// Whether `header` is the canonical base64 of a MAC of `algorithm`: 20 bytes are 27 characters and
/// one `=`, 32 bytes are 43 and one `=`; in both the last character carries 2 unused bits, which must
/// be zero.
pub fn signature_well_formed(header: &[u8], algorithm: Algorithm) -> bool {
    let want = match algorithm {
        Algorithm::HmacSha1 => 28,
        Algorithm::HmacSha256 => 44,
    };
    if header.len() != want || header[want - 1] != b'=' {
        return false;
    }
    let digits: Option<Vec<u8>> = header[..want - 1]
        .iter()
        .map(|c| B64.iter().position(|b| b == c).map(|v| v as u8))
        .collect();
    matches!(digits, Some(d) if d[want - 2] & 0b11 == 0)
}

// ---------------------------------------------------------------------------------------------------
// Bodies and the canonical string
// ---------------------------------------------------------------------------------------------------

/// `application/x-www-form-urlencoded` decoding of one name or value: `+` is a space, `%XX` a byte, any
/// other `%` itself.
pub fn form_decode(raw: &[u8]) -> Vec<u8> {
    let hex = |b: u8| (b as char).to_digit(16).map(|d| d as u8);
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        match raw[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < raw.len() && hex(raw[i + 1]).is_some() && hex(raw[i + 2]).is_some() => {
                out.push(hex(raw[i + 1]).unwrap_or(0) * 16 + hex(raw[i + 2]).unwrap_or(0));
                i += 2;
            }
            other => out.push(other),
        }
        i += 1;
    }
    out
}

/// The form's params as the contract orders them: names ascending, each name's distinct values
/// ascending, concatenated. Also the error a form can produce, in the order the core checks them
/// (each segment is decoded and checked before it is counted).
pub fn form_params(body: &[u8]) -> Result<Vec<u8>, Error> {
    let mut map: BTreeMap<Vec<u8>, BTreeSet<Vec<u8>>> = BTreeMap::new();
    for (count, segment) in body
        .split(|&b| b == b'&')
        .filter(|s| !s.is_empty())
        .enumerate()
    {
        let (name, value) = match segment.iter().position(|&b| b == b'=') {
            Some(eq) => (&segment[..eq], &segment[eq + 1..]),
            None => (segment, &b""[..]),
        };
        let (name, value) = (form_decode(name), form_decode(value));
        if std::str::from_utf8(&name).is_err() || std::str::from_utf8(&value).is_err() {
            return Err(Error::MalformedBody);
        }
        if count == MAX_PARAMS {
            return Err(Error::TooManyParams);
        }
        map.entry(name).or_default().insert(value);
    }
    let mut out = Vec::new();
    for (name, values) in map {
        for value in values {
            out.extend_from_slice(&name);
            out.extend_from_slice(&value);
        }
    }
    Ok(out)
}

/// The raw value of the first `bodySHA256` query parameter.
pub fn body_sha256_param(url: &[u8]) -> Option<Vec<u8>> {
    let q = url.iter().position(|&b| b == b'?')?;
    if url[..q].contains(&b'#') {
        return None;
    }
    let query = &url[q + 1..];
    let query = &query[..query.iter().position(|&b| b == b'#').unwrap_or(query.len())];
    query.split(|&b| b == b'&').find_map(|pair| {
        let (name, value) = match pair.iter().position(|&b| b == b'=') {
            Some(eq) => (&pair[..eq], &pair[eq + 1..]),
            None => (pair, &b""[..]),
        };
        (name == b"bodySHA256").then(|| value.to_vec())
    })
}

/// Lower-case hex SHA-256.
pub fn sha256_hex(body: &[u8]) -> Vec<u8> {
    Sha256::digest(body)
        .iter()
        .flat_map(|b| format!("{b:02x}").into_bytes())
        .collect()
}

/// What the request signs after the URL, and the body-hash check it needs.
#[derive(Debug, Clone)]
pub struct Payload {
    pub params: Vec<u8>,
    pub body_hash_ok: bool,
}

/// A raw body is a form, unless the URL has `bodySHA256`: then it is opaque and hash-checked.
pub fn payload_of_body(url: &[u8], body: &[u8]) -> Result<Payload, Error> {
    match body_sha256_param(url) {
        Some(expected) => Ok(Payload {
            params: Vec::new(),
            body_hash_ok: sha256_hex(body) == expected,
        }),
        None => Ok(Payload {
            params: form_params(body)?,
            body_hash_ok: true,
        }),
    }
}

/// The base64 HMAC of `url ++ params`, computed over the whole string at once.
pub fn signature_of(algorithm: Algorithm, secret: &[u8], url: &[u8], params: &[u8]) -> Vec<u8> {
    let mut message = url.to_vec();
    message.extend_from_slice(params);
    let mut mac = [0u8; 32];
    let len = twilio_signature::hmac(algorithm, secret, &message, &mut mac);
    base64(&mac[..len])
}

/// A secret with an optional key id, as the reference keeps it.
#[derive(Debug, Clone)]
pub struct RefSecret {
    pub key_id: Option<Vec<u8>>,
    pub secret: Vec<u8>,
}

/// The verdict the contract gives: which secret and candidate matched, or the error.
pub fn verify(
    secrets: &[RefSecret],
    url: &[u8],
    body: &[u8],
    signature: Option<&[u8]>,
    settings: Option<&[u8]>,
) -> Result<(usize, Candidate), Error> {
    let (algorithm, key_id) = parse_settings(settings)?;
    let signature = signature.ok_or(Error::MissingSignature)?;
    if !signature_well_formed(signature, algorithm) {
        return Err(Error::MalformedSignature);
    }
    let payload = payload_of_body(url, body)?;
    let candidates = candidates(url);
    for (index, secret) in secrets.iter().enumerate() {
        let eligible = secret_usable(&secret.secret)
            && match (&key_id, &secret.key_id) {
                (Some(wanted), Some(id)) => wanted == id,
                _ => true,
            };
        if !eligible {
            continue;
        }
        for (kind, candidate) in &candidates {
            if signature_of(algorithm, &secret.secret, candidate, &payload.params) == signature {
                return if payload.body_hash_ok {
                    Ok((index, *kind))
                } else {
                    Err(Error::BodyHashMismatch)
                };
            }
        }
    }
    Err(Error::SignatureMismatch)
}

// ---------------------------------------------------------------------------------------------------
// Input shapes
// ---------------------------------------------------------------------------------------------------

/// A URL built from parts the fuzzer picks, so candidates with ports, userinfo and IPv6 are common.
#[derive(Debug, Clone, Arbitrary)]
pub enum UrlShape {
    Raw(Vec<u8>),
    Built {
        scheme: u8,
        userinfo: Option<Vec<u8>>,
        host: u8,
        port: Option<u16>,
        path: Vec<u8>,
        /// Appends `bodySHA256=<hash of the body>` (or this many bytes of it, for a wrong hash).
        body_sha256: Option<u8>,
    },
}

const SCHEMES: &[&[u8]] = &[
    b"https", b"http", b"HTTPS", b"Http", b"ftp", b"", b"wss", b"https:",
];
const HOSTS: &[&[u8]] = &[
    b"example.com",
    b"[::1]",
    b"[2001:db8::7]",
    b"[::1",
    b"h.com:",
    b"UPPER.Example.COM",
    b"",
    b"a@b",
];

impl UrlShape {
    pub fn render(&self, body: &[u8]) -> Vec<u8> {
        match self {
            Self::Raw(bytes) => bytes.clone(),
            Self::Built {
                scheme,
                userinfo,
                host,
                port,
                path,
                body_sha256,
            } => {
                let mut url = SCHEMES[usize::from(*scheme) % SCHEMES.len()].to_vec();
                url.extend_from_slice(b"://");
                if let Some(userinfo) = userinfo {
                    url.extend_from_slice(userinfo);
                    url.push(b'@');
                }
                url.extend_from_slice(HOSTS[usize::from(*host) % HOSTS.len()]);
                if let Some(port) = port {
                    url.extend_from_slice(format!(":{port}").as_bytes());
                }
                url.extend_from_slice(path);
                if let Some(take) = body_sha256 {
                    url.extend_from_slice(if url.contains(&b'?') { b"&" } else { b"?" });
                    url.extend_from_slice(b"bodySHA256=");
                    let hash = sha256_hex(body);
                    let take = if *take >= 64 { 64 } else { usize::from(*take) };
                    url.extend_from_slice(&hash[..take]);
                }
                url
            }
        }
    }
}

/// A body: raw bytes, or pairs encoded the way a client might (escaped or not).
#[derive(Debug, Clone, Arbitrary)]
pub enum BodyShape {
    Raw(Vec<u8>),
    Pairs(Vec<(String, String, bool)>),
}

impl BodyShape {
    pub fn render(&self) -> Vec<u8> {
        match self {
            Self::Raw(bytes) => bytes.clone(),
            Self::Pairs(pairs) => {
                let mut out = Vec::new();
                for (i, (name, value, escape)) in pairs.iter().enumerate() {
                    if i > 0 {
                        out.push(b'&');
                    }
                    let enc = |s: &str, out: &mut Vec<u8>| {
                        for &b in s.as_bytes() {
                            if *escape && !b.is_ascii_alphanumeric() {
                                out.extend_from_slice(format!("%{b:02X}").as_bytes());
                            } else if b == b' ' {
                                out.push(b'+');
                            } else {
                                out.push(b);
                            }
                        }
                    };
                    enc(name, &mut out);
                    out.push(b'=');
                    enc(value, &mut out);
                }
                out
            }
        }
    }
}

/// A settings header: absent, one of the usual values, or arbitrary bytes.
#[derive(Debug, Clone, Arbitrary)]
pub enum SettingsShape {
    Absent,
    Sha256 { key_id: Option<u8> },
    Sha1Named,
    Raw(Vec<u8>),
}

impl SettingsShape {
    pub fn render(&self) -> Option<Vec<u8>> {
        match self {
            Self::Absent => None,
            Self::Sha256 { key_id: None } => Some(b"algorithm=HMAC_SHA256".to_vec()),
            Self::Sha256 { key_id: Some(k) } => {
                Some(format!("key=k{},algorithm=HMAC_SHA256", k % 4).into_bytes())
            }
            Self::Sha1Named => Some(b"algorithm=hmac_sha1".to_vec()),
            Self::Raw(bytes) => Some(bytes.clone()),
        }
    }
}

/// Secrets: each with a key id `k0`..`k3` or none.
#[derive(Debug, Clone, Arbitrary)]
pub struct SecretsShape(pub Vec<(Option<u8>, Vec<u8>)>);

impl SecretsShape {
    pub fn render(&self) -> Vec<RefSecret> {
        let mut secrets: Vec<RefSecret> = self
            .0
            .iter()
            .take(4)
            .map(|(id, secret)| RefSecret {
                key_id: id.map(|k| format!("k{}", k % 4).into_bytes()),
                secret: secret.clone(),
            })
            .collect();
        if secrets.is_empty() {
            secrets.push(RefSecret {
                key_id: None,
                secret: b"12345".to_vec(),
            });
        }
        secrets
    }
}

/// The core's secrets for the reference's.
pub fn core_secrets(secrets: &[RefSecret]) -> Vec<twilio_signature::Secret> {
    secrets
        .iter()
        .map(|s| match &s.key_id {
            Some(id) => twilio_signature::Secret::with_key_id(id, &s.secret)
                .expect("reference key ids are short"),
            None => twilio_signature::Secret::new(&s.secret),
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------------
// Seed records
// ---------------------------------------------------------------------------------------------------

/// A whole request from `tests/vectors/`, as `make_seeds.py` writes it: the magic `TWSV`, then secret,
/// URL, body, signature and settings, each a little-endian `u16` length and its bytes (`0xFFFF`: the
/// header is absent). Whatever follows is left to the target (mutation choices). The fuzzer mutates
/// these too, so it explores the neighbourhood of every real vector, not only the `arbitrary` shapes.
#[derive(Debug, Clone, Default)]
pub struct Record {
    pub secret: Vec<u8>,
    pub url: Vec<u8>,
    pub body: Vec<u8>,
    pub signature: Option<Vec<u8>>,
    pub settings: Option<Vec<u8>>,
    pub rest: Vec<u8>,
}

pub const RECORD_MAGIC: &[u8; 4] = b"TWSV";
const ABSENT: u16 = 0xFFFF;

impl Record {
    pub fn parse(data: &[u8]) -> Option<Self> {
        let mut data = data.strip_prefix(RECORD_MAGIC)?;
        let mut field = || -> Option<Vec<u8>> {
            let (len, tail) = match data {
                [a, b, tail @ ..] => (u16::from_le_bytes([*a, *b]), tail),
                _ => return None,
            };
            if len == ABSENT {
                data = tail;
                return None;
            }
            let len = usize::from(len).min(tail.len());
            let (bytes, tail) = tail.split_at(len);
            data = tail;
            Some(bytes.to_vec())
        };
        let secret = field().unwrap_or_default();
        let url = field().unwrap_or_default();
        let body = field().unwrap_or_default();
        let signature = field();
        let settings = field();
        Some(Self {
            secret,
            url,
            body,
            signature,
            settings,
            rest: data.to_vec(),
        })
    }

    pub fn secrets(&self) -> Vec<RefSecret> {
        // A settings header naming a key: give the secret that id, as the SharedKey it stands for.
        let key_id = parse_settings(self.settings.as_deref())
            .ok()
            .and_then(|(_, id)| id)
            .filter(|id| id.len() <= twilio_signature::MAX_KEY_ID_LEN);
        vec![RefSecret {
            key_id,
            secret: self.secret.clone(),
        }]
    }
}

/// The contract's secret rule (`Secret::is_usable`): a secret made only of ASCII whitespace — space
/// and `\t \n \v \f \r` (`u8::is_ascii_whitespace` leaves out `\v`) — or empty matches nothing.
pub fn secret_usable(secret: &[u8]) -> bool {
    !secret
        .iter()
        .all(|&b| b == b' ' || (b'\t'..=b'\r').contains(&b))
}
