//! Benchmark workloads for twilio-signature, and the "hashing limit" they are measured against.
//!
//! A [`Workload`] is one signed webhook (URL, raw body, signature) plus the exact string its MAC covers,
//! built here the slow, obvious way (decode everything, sort, concatenate). The [`Limit`] is the least work
//! any verifier must do: a pre-keyed HMAC from the same RustCrypto crates, cloned and run over that string
//! (plus the body's SHA-256 for a `bodySHA256` webhook). `verify / limit` is the cost of everything else:
//! URL candidates, form decoding, sorting, the constant-time compare.

pub mod race;

use core::fmt::Write as _;

use base64ct::{Base64, Encoding};
use hmac::digest::KeyInit;
use hmac::{Hmac, Mac};
use sha1::Sha1;
use sha2::{Digest, Sha256};
use twilio_signature::{Request, Secret, Validator};

/// The Auth Token every workload is signed with.
pub const SECRET: &[u8] = b"12345678901234567890123456789012";

/// Where every form workload is posted.
pub const SMS_URL: &str = "https://example.com/twilio/sms?tenant=acme";

/// One signed webhook request and what its signature covers.
#[derive(Clone)]
pub struct Workload {
    /// Short name used in benchmark ids and tables.
    pub name: String,
    /// The URL Twilio requested.
    pub url: String,
    /// The raw request body.
    pub body: Vec<u8>,
    /// `X-Twilio-Signature`: the limit's MAC of [`Workload::canonical`], accepted by the core.
    pub signature: String,
    /// The canonical string `URL ++ name ++ value ++ …` built naively.
    pub canonical: Vec<u8>,
    /// Number of form parameters in the body (0 for JSON bodies).
    pub params: usize,
    /// True when the URL carries `bodySHA256` (opaque body).
    pub json: bool,
}

impl core::fmt::Debug for Workload {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Workload")
            .field("name", &self.name)
            .field("body_len", &self.body.len())
            .field("params", &self.params)
            .finish_non_exhaustive()
    }
}

impl Workload {
    /// The request as the core takes it.
    pub fn request(&self) -> Request<'_> {
        Request::post(&self.url, &self.body).signature(&self.signature)
    }

    fn form(name: &str, url: &str, pairs: &[(String, String)]) -> Self {
        let body = encode_form(pairs);
        Self::signed(name, url.to_owned(), body, false)
    }

    fn signed(name: &str, url: String, body: Vec<u8>, json: bool) -> Self {
        let canonical = if json {
            url.as_bytes().to_vec()
        } else {
            canonical_form(&url, &body)
        };
        let params = if json {
            0
        } else {
            body.split(|&b| b == b'&').filter(|s| !s.is_empty()).count()
        };
        // Signed with the limit's own HMAC over the naive string; the core must agree, or the limit would
        // be measuring different bytes.
        let signature = Base64::encode_string(&Limit::new(SECRET).mac(&canonical));
        let mut scratch = vec![twilio_signature::Span::EMPTY; params.max(1)];
        let request = Request::post(&url, &body).signature(&signature);
        let verdict =
            Validator::new(Secret::new(SECRET)).verify_with_scratch(&request, &mut scratch);
        assert!(
            verdict.is_ok(),
            "the core refuses benchmark workload {name}: {verdict:?}"
        );
        Self {
            name: name.to_owned(),
            url,
            body,
            signature,
            canonical,
            params,
            json,
        }
    }
}

/// The hashing limit: HMAC-SHA1 keyed once, cloned per operation.
#[derive(Clone)]
pub struct Limit {
    keyed: Hmac<Sha1>,
}

impl core::fmt::Debug for Limit {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("Limit { .. }")
    }
}

impl Limit {
    /// Keys HMAC-SHA1 with `secret`.
    pub fn new(secret: &[u8]) -> Self {
        Self {
            keyed: <Hmac<Sha1> as KeyInit>::new_from_slice(secret).unwrap_or_else(|_| {
                unreachable!("HMAC accepts keys of any length");
            }),
        }
    }

    /// The MAC of an already-built canonical string.
    pub fn mac(&self, canonical: &[u8]) -> [u8; 20] {
        let mut mac = self.keyed.clone();
        mac.update(canonical);
        let mut out = [0u8; 20];
        out.copy_from_slice(&mac.finalize().into_bytes());
        out
    }

    /// The least work for a workload: the MAC, plus the body hash for a `bodySHA256` webhook.
    pub fn run(&self, workload: &Workload) -> [u8; 20] {
        let mut mac = self.mac(&workload.canonical);
        if workload.json {
            let digest = Sha256::digest(&workload.body);
            mac[0] ^= digest[0];
        }
        mac
    }
}

/// `application/x-www-form-urlencoded` encoding, as Twilio sends it (space as `+`).
pub fn encode_form(pairs: &[(String, String)]) -> Vec<u8> {
    let mut out = String::new();
    for (i, (name, value)) in pairs.iter().enumerate() {
        if i > 0 {
            out.push('&');
        }
        encode_component(name, &mut out);
        out.push('=');
        encode_component(value, &mut out);
    }
    out.into_bytes()
}

fn encode_component(s: &str, out: &mut String) {
    for &b in s.as_bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'*' => {
                out.push(char::from(b));
            }
            b' ' => out.push('+'),
            _ => {
                let _ = write!(out, "%{b:02X}");
            }
        }
    }
}

fn decode_component(raw: &[u8]) -> Vec<u8> {
    let hex = |b: u8| char::from(b).to_digit(16).map(|d| d as u8);
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        match raw[i] {
            b'+' => out.push(b' '),
            b'%' => match (
                raw.get(i + 1).and_then(|&b| hex(b)),
                raw.get(i + 2).and_then(|&b| hex(b)),
            ) {
                (Some(hi), Some(lo)) => {
                    out.push(hi << 4 | lo);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            other => out.push(other),
        }
        i += 1;
    }
    out
}

/// The naive canonical string: decode every pair, sort by bytes, drop duplicates, concatenate.
pub fn canonical_form(url: &str, body: &[u8]) -> Vec<u8> {
    let mut pairs: Vec<(Vec<u8>, Vec<u8>)> = body
        .split(|&b| b == b'&')
        .filter(|s| !s.is_empty())
        .map(|segment| {
            let (name, value) = match segment.iter().position(|&b| b == b'=') {
                Some(eq) => (&segment[..eq], &segment[eq + 1..]),
                None => (segment, &b""[..]),
            };
            (decode_component(name), decode_component(value))
        })
        .collect();
    pairs.sort();
    pairs.dedup();
    let mut out = url.as_bytes().to_vec();
    for (name, value) in pairs {
        out.extend_from_slice(&name);
        out.extend_from_slice(&value);
    }
    out
}

/// A tiny deterministic generator, so every run benchmarks the same bytes.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        self.0 >> 33
    }
}

/// A real inbound SMS webhook body, parameters in the order Twilio sends them. Shared with `bench/run.py`.
pub const SMS_BODY: &str = include_str!("../sms-webhook.form");

/// The decoded parameters of [`SMS_BODY`], in order.
pub fn sms_pairs() -> Vec<(String, String)> {
    SMS_BODY
        .trim_end()
        .split('&')
        .map(|pair| {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            let text =
                |raw: &str| String::from_utf8_lossy(&decode_component(raw.as_bytes())).into_owned();
            (text(name), text(value))
        })
        .collect()
}

/// The realistic case: a 20-parameter inbound SMS.
pub fn sms() -> Workload {
    Workload::form("sms-20", SMS_URL, &sms_pairs())
}

/// A JSON webhook (Event Streams style) whose URL carries `bodySHA256`.
pub fn json() -> Workload {
    json_sized("json", 0)
}

fn json_sized(name: &str, pad_to: usize) -> Workload {
    let mut body = String::from(
        r#"[{"specversion":"1.0","type":"com.twilio.messaging.inbound-message.received","source":"/2010-04-01/Accounts/ACd7ae2e7b6c1a5a3f4c8a7d6e0f1b2c3d/Messages/SM1f0e8ae6ade43cb3c0ce4525424e404f.json","id":"EZ1f0e8ae6ade43cb3c0ce4525424e404f","dataschema":"https://events-schemas.twilio.com/Messaging.InboundMessageV1/5","datacontenttype":"application/json","time":"2026-11-23T09:30:00.000Z","data":{"numMedia":0,"timestamp":"2026-11-23T09:30:00.000Z","accountSid":"ACd7ae2e7b6c1a5a3f4c8a7d6e0f1b2c3d","to":"+14155550100","numSegments":1,"messageSid":"SM1f0e8ae6ade43cb3c0ce4525424e404f","eventName":"com.twilio.messaging.inbound-message.received","body":"Hey, are we still on for lunch tomorrow?","from":"+14155550199"}}]"#,
    );
    while body.len() < pad_to {
        body.push(' ');
    }
    let hash = twilio_signature::BodyHash::of(body.as_bytes());
    let url = format!(
        "https://example.com/twilio/events?bodySHA256={}",
        hash.as_str()
    );
    Workload::signed(name, url, body.into_bytes(), true)
}

/// `n` parameters shaped like Twilio's (`Name`=`Value`, some escaping), in a scrambled order so the
/// sort has real work to do.
pub fn params(n: usize) -> Workload {
    let mut rng = Lcg(0x5eed + n as u64);
    let mut list: Vec<(String, String)> = (0..n)
        .map(|i| {
            (
                format!("Param{i:06}"),
                format!("+1415555{:04} {}", rng.next() % 10_000, rng.next()),
            )
        })
        .collect();
    for i in (1..list.len()).rev() {
        let j = (rng.next() as usize) % (i + 1);
        list.swap(i, j);
    }
    Workload::form(&format!("params-{n}"), SMS_URL, &list)
}

/// The SMS parameters with a `Body` grown to make the whole body `size` bytes.
pub fn big_form(name: &str, size: usize) -> Workload {
    let mut list = sms_pairs();
    if let Some(body) = list.iter_mut().find(|(n, _)| n == "Body") {
        body.1.clear();
    }
    let base = encode_form(&list).len();
    let words = ["lunch ", "tomorrow ", "12:30 ", "pizza ", "café ", "ok? "];
    let mut text = String::new();
    let mut rng = Lcg(7);
    let mut encoded_len = base;
    while encoded_len < size {
        let word = words[(rng.next() as usize) % words.len()];
        let mut enc = String::new();
        encode_component(word, &mut enc);
        encoded_len += enc.len();
        text.push_str(word);
    }
    if let Some(body) = list.iter_mut().find(|(n, _)| n == "Body") {
        body.1 = text;
    }
    Workload::form(name, SMS_URL, &list)
}

/// Deep `%` encoding: every byte of every name and value escaped, names sharing a long common prefix so
/// each comparison in the sort decodes far before it finds a difference. About `size` bytes.
pub fn deep_percent(size: usize) -> Workload {
    let prefix = "x".repeat(200);
    let mut list = Vec::new();
    let mut len = 0;
    let mut rng = Lcg(99);
    while len < size {
        let name = format!("{prefix}{:08}", rng.next());
        let value = format!("{:016}", rng.next());
        // 3 bytes per escaped character, plus '=' and '&'.
        len += 3 * (name.len() + value.len()) + 2;
        list.push((name, value));
    }
    let mut body = Vec::new();
    for (i, (name, value)) in list.iter().enumerate() {
        if i > 0 {
            body.push(b'&');
        }
        for b in name.bytes() {
            body.extend_from_slice(format!("%{b:02X}").as_bytes());
        }
        body.push(b'=');
        for b in value.bytes() {
            body.extend_from_slice(format!("%{b:02x}").as_bytes());
        }
    }
    Workload::signed(
        &format!("deep-percent-{}KiB", size / 1024),
        SMS_URL.to_owned(),
        body,
        false,
    )
}

/// A 1 MiB (or `size`) JSON body with `bodySHA256`.
pub fn big_json(size: usize) -> Workload {
    json_sized(&format!("json-{}KiB", size / 1024), size)
}

/// The everyday workloads: realistic SMS, JSON, 0/5/50/200 params, a 64 KiB body.
pub fn everyday() -> Vec<Workload> {
    vec![
        sms(),
        json(),
        params(0),
        params(5),
        params(50),
        params(200),
        big_form("body-64KiB", 64 * 1024),
    ]
}

/// The hostile workloads: many parameters, deep escaping, 1 MiB bodies.
pub fn adversarial() -> Vec<Workload> {
    vec![
        params(10_000),
        params(100_000),
        deep_percent(1 << 20),
        big_form("form-1MiB", 1 << 20),
        big_json(1 << 20),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn verify_all(workloads: &[Workload]) {
        let validator = Validator::new(Secret::new(SECRET));
        for w in workloads {
            let mut scratch = vec![twilio_signature::Span::EMPTY; w.params.max(1)];
            let verdict = validator.verify_with_scratch(&w.request(), &mut scratch);
            assert!(verdict.is_ok(), "{}: {verdict:?}", w.name);
            // The limit hashes exactly the bytes the core signs.
            let sig = Base64::encode_string(&Limit::new(SECRET).mac(&w.canonical));
            assert_eq!(sig, w.signature, "{}", w.name);
        }
    }

    #[test]
    fn the_sms_webhook_has_twilios_twenty_params() {
        let names: Vec<String> = sms_pairs().into_iter().map(|(n, _)| n).collect();
        assert_eq!(names.len(), 20);
        for name in [
            "ToCountry",
            "SmsMessageSid",
            "Body",
            "MessagingServiceSid",
            "AccountSid",
            "ApiVersion",
        ] {
            assert!(names.iter().any(|n| n == name), "{name}");
        }
        assert_eq!(encode_form(&sms_pairs()), SMS_BODY.trim_end().as_bytes());
    }

    #[test]
    fn everyday_workloads_verify_and_limit_hashes_the_same_string() {
        let all = everyday();
        verify_all(&all);
        let sms = &all[0];
        assert_eq!(sms.params, 20);
        assert!(all.iter().any(|w| w.json));
        assert!(all.iter().any(|w| w.body.len() >= 64 * 1024));
    }

    #[test]
    fn adversarial_workloads_verify() {
        let all = adversarial();
        verify_all(&all);
        assert!(all.iter().any(|w| w.params == 100_000));
        assert!(all
            .iter()
            .all(|w| w.params > 500 || w.body.len() >= 1 << 20));
    }

    #[test]
    fn a_tampered_workload_is_refused() {
        let mut w = sms();
        let last = w.body.len() - 1;
        w.body[last] ^= 1;
        assert!(twilio_signature::verify(SECRET, &w.request()).is_err());
    }
}
