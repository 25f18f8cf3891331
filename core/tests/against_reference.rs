//! The streaming, allocation-free core against the naive reference, on random requests; and tamper tests:
//! every single-byte change of an accepted request is refused unless the reference says it is the same
//! signed request.

mod common;

use std::fmt::Write as _;

use common::reference;
use proptest::prelude::*;
use twilio_signature::{sign, verify, Request, Secret, Span, Validator};

/// Characters that stress decoding and ordering: separators, escapes, spaces, non-ASCII, emoji.
fn text() -> impl Strategy<Value = String> {
    proptest::collection::vec(
        prop_oneof![
            Just("a"),
            Just("B"),
            Just("z"),
            Just("0"),
            Just(" "),
            Just("+"),
            Just("%"),
            Just("="),
            Just("&"),
            Just("é"),
            Just("日"),
            Just("😀"),
            Just("\u{0}"),
            Just("\r\n"),
            Just("~"),
            Just("/"),
        ],
        0..6,
    )
    .prop_map(|parts| parts.concat())
}

/// Form-encodes one field, choosing among equivalent encodings.
fn encode(s: &str, style: u8) -> String {
    let mut out = String::new();
    for &b in s.as_bytes() {
        match b {
            b' ' if style.is_multiple_of(2) => out.push('+'),
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'~' | b'/' if !style.is_multiple_of(3) => {
                out.push(b as char);
            }
            _ if style.is_multiple_of(5) => {
                let _ = write!(out, "%{b:02x}");
            }
            _ => {
                let _ = write!(out, "%{b:02X}");
            }
        }
    }
    out
}

fn url() -> impl Strategy<Value = String> {
    (
        prop_oneof![Just("https"), Just("http"), Just("HTTPS"), Just("ftp")],
        prop_oneof![Just(""), Just("user:pass@"), Just("a@b@")],
        prop_oneof![
            Just("example.com"),
            Just("EXAMPLE.com"),
            Just("[::1]"),
            Just("[2001:db8::7]")
        ],
        prop_oneof![
            Just(""),
            Just(":443"),
            Just(":80"),
            Just(":8080"),
            Just(":")
        ],
        prop_oneof![
            Just(""),
            Just("/"),
            Just("/sms"),
            Just("/a%2Fb/"),
            Just("/caf%C3%A9")
        ],
        prop_oneof![Just(""), Just("?"), Just("?x=1&y=%20"), Just("?a=1#frag")],
    )
        .prop_map(|(s, u, h, p, path, q)| format!("{s}://{u}{h}{p}{path}{q}"))
}

fn form() -> impl Strategy<Value = (Vec<(String, String)>, String)> {
    proptest::collection::vec((text(), text(), any::<u8>()), 0..8).prop_map(|fields| {
        let mut pairs: Vec<(String, String)> = Vec::new();
        let mut body = Vec::new();
        for (i, (name, value, style)) in fields.iter().enumerate() {
            // Repeat some pairs to exercise de-duplication.
            let (name, value) = if i > 0 && style % 7 == 0 {
                pairs[0].clone()
            } else {
                (name.clone(), value.clone())
            };
            body.push(format!(
                "{}={}",
                encode(&name, *style),
                encode(&value, style / 2)
            ));
            pairs.push((name, value));
        }
        (pairs, body.join("&"))
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn the_reference_decodes_our_encoder(fields in form()) {
        let (pairs, body) = fields;
        let decoded = reference::decode_form(body.as_bytes()).expect("UTF-8");
        // Empty names with empty values are dropped by neither, but encode as "=": compare as sets.
        prop_assert_eq!(reference::params_string(&decoded), reference::params_string(&pairs));
    }

    #[test]
    fn sign_equals_the_reference_hmac(url in url(), fields in form(), sha256 in any::<bool>(), secret in "[!-~][ -~]{0,79}") {
        let (_, body) = fields;
        let settings = sha256.then_some(&b"algorithm=HMAC_SHA256"[..]);
        let request = Request::post(&url, &body).settings(settings);
        let ours = sign(secret.as_bytes(), &request).expect("signable");
        let (strings, _) = reference::signed_strings(url.as_bytes(), body.as_bytes()).expect("well formed");
        prop_assert_eq!(ours.as_str(), reference::mac(sha256, secret.as_bytes(), &strings[0]));
    }

    #[test]
    fn every_candidate_the_reference_lists_is_accepted(url in url(), fields in form(), pick in any::<usize>(), sha256 in any::<bool>()) {
        let (pairs, body) = fields;
        let secret = b"s3cret";
        let (strings, _) = reference::signed_strings(url.as_bytes(), body.as_bytes()).expect("well formed");
        let signature = reference::mac(sha256, secret, &strings[pick % strings.len()]);
        let settings = sha256.then_some(&b"key=k1,algorithm=hmac_sha256"[..]);
        let validator = Validator::new(Secret::new(secret));
        let raw = Request::post(&url, &body).signature(&signature).settings(settings);
        prop_assert!(validator.verify(&raw).is_ok());
        let refs: Vec<(&str, &str)> = pairs.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
        let split = Request::with_params(&url, &refs).signature(&signature).settings(settings);
        prop_assert!(validator.verify(&split).is_ok());
    }

    #[test]
    fn verdicts_agree_with_the_reference_on_arbitrary_signatures(
        url in url(), body in "[a-z=&%+0-9A-F]{0,40}", sha256 in any::<bool>(), other_url in url(), other_body in "[a-z=&%+0-9]{0,40}",
    ) {
        // Sign a neighbouring request: sometimes the same canonical string, mostly not.
        let secret = b"k";
        let signature = match reference::signed_strings(other_url.as_bytes(), other_body.as_bytes()) {
            Some((strings, _)) => reference::mac(sha256, secret, &strings[0]),
            None => reference::mac(sha256, secret, other_url.as_bytes()),
        };
        let settings = sha256.then_some(&b"algorithm=HMAC_SHA256"[..]);
        let ours = verify(secret, &Request::post(&url, &body).signature(&signature).settings(settings)).is_ok();
        prop_assert_eq!(ours, reference::accepts(secret, sha256, url.as_bytes(), body.as_bytes(), &signature));
    }

    #[test]
    fn json_bodies_are_hash_checked_and_the_url_alone_signed(body in "\\PC{0,64}", tamper in any::<bool>()) {
        let url = format!("https://example.com/hook?bodySHA256={}", reference::sha256_hex(body.as_bytes()));
        let signature = reference::mac(false, b"k", url.as_bytes());
        let sent = if tamper { format!("{body} ") } else { body.clone() };
        let ok = verify(b"k", &Request::post(&url, &sent).signature(&signature)).is_ok();
        prop_assert_eq!(ok, !tamper);
        prop_assert_eq!(ok, reference::accepts(b"k", false, url.as_bytes(), sent.as_bytes(), &signature));
    }
}

/// Applies `f` to a copy of `bytes` with byte `i` changed, for every `i` and a couple of replacement values.
fn each_single_byte_change(bytes: &[u8], mut f: impl FnMut(&[u8])) {
    for i in 0..bytes.len() {
        for delta in [1u8, 0x20] {
            let mut changed = bytes.to_vec();
            changed[i] ^= delta;
            f(&changed);
        }
    }
}

#[test]
fn every_single_byte_change_of_an_accepted_vector_is_refused_unless_equivalent() {
    let (mut refused, mut equivalent) = (0usize, 0usize);
    for v in common::twilio_vectors().iter().filter(|v| v.expect) {
        let secret = v.secret.as_bytes();
        let sha256 = v.algorithm == "HMAC_SHA256";
        let settings = v.signature_settings.as_deref().map(str::as_bytes);
        let body = v
            .body
            .as_deref()
            .or(v.form_body.as_deref())
            .unwrap_or("")
            .as_bytes();
        let signature = v
            .signature
            .as_deref()
            .expect("accepted vectors have a signature");
        let mut check = |url: &[u8], body: &[u8], signature: &[u8]| {
            let ours = verify(
                secret,
                &Request::post(url, body)
                    .signature(signature)
                    .settings(settings),
            )
            .is_ok();
            let sig = String::from_utf8_lossy(signature);
            let reference = reference::accepts(secret, sha256, url, body, &sig);
            assert_eq!(
                ours,
                reference,
                "{}: {:?} {:?} {sig}",
                v.id,
                String::from_utf8_lossy(url),
                String::from_utf8_lossy(body)
            );
            if ours {
                equivalent += 1;
            } else {
                refused += 1;
            }
        };
        each_single_byte_change(v.url.as_bytes(), |url| {
            check(url, body, signature.as_bytes());
        });
        each_single_byte_change(body, |body| {
            check(v.url.as_bytes(), body, signature.as_bytes());
        });
        // The signature has no equivalents: every change is refused, by the reference and by us.
        each_single_byte_change(signature.as_bytes(), |sig| {
            assert!(
                verify(
                    secret,
                    &Request::post(&v.url, body)
                        .signature(sig)
                        .settings(settings)
                )
                .is_err(),
                "{}",
                v.id
            );
            refused += 1;
        });
    }
    // Equivalent changes exist by contract (a removed port's digits, dropped userinfo, a duplicate pair, hex
    // case of an escape), but they are rare.
    println!("single-byte changes: {refused} refused, {equivalent} equivalent by contract");
    assert!(refused > 20_000, "{refused}");
    assert!(
        equivalent * 50 < refused,
        "{equivalent} equivalent vs {refused} refused"
    );
}

#[test]
fn changing_any_param_of_a_pre_split_request_is_refused() {
    for v in common::twilio_vectors()
        .iter()
        .filter(|v| v.expect && v.params.as_ref().is_some_and(|p| !p.is_empty()))
    {
        let params = v.params.as_ref().expect("params");
        let signature = v.signature.as_deref().expect("signature");
        let settings = v.signature_settings.as_deref().map(str::as_bytes);
        for i in 0..params.len() {
            for change in 0..3 {
                let mut changed = params.clone();
                match change {
                    0 => changed[i].1.push('x'),
                    1 => changed[i].0.push('x'),
                    _ => {
                        changed.remove(i);
                    }
                }
                let refs: Vec<(&str, &str)> = changed
                    .iter()
                    .map(|(n, x)| (n.as_str(), x.as_str()))
                    .collect();
                let pairs_equal =
                    reference::params_string(&changed) == reference::params_string(params);
                let ok = verify(
                    v.secret.as_bytes(),
                    &Request::with_params(&v.url, &refs)
                        .signature(signature)
                        .settings(settings),
                )
                .is_ok();
                assert_eq!(ok, pairs_equal, "{} param {i} change {change}", v.id);
            }
        }
    }
}

#[test]
fn a_caller_buffer_bounds_and_admits_large_forms() {
    let body: String = (0..3000)
        .map(|i| format!("p{i}=v{}", i % 7))
        .collect::<Vec<_>>()
        .join("&");
    let url = "https://example.com/bulk";
    let signature = reference::mac(
        false,
        b"k",
        &reference::signed_strings(url.as_bytes(), body.as_bytes())
            .expect("ok")
            .0[0],
    );
    let validator = Validator::new(Secret::new(b"k"));
    let request = Request::post(url, &body).signature(&signature);
    assert_eq!(
        validator.verify(&request).err(),
        Some(twilio_signature::Error::TooManyParams)
    );
    let mut scratch = vec![Span::EMPTY; 3000];
    assert!(validator
        .verify_with_scratch(&request, &mut scratch)
        .is_ok());
    assert_eq!(
        validator
            .verify_with_scratch(&request, &mut scratch[..2999])
            .err(),
        Some(twilio_signature::Error::TooManyParams)
    );
}
