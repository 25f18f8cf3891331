//! One test per rule of the verification contract (docs/contract.md), named after the rule.

mod common;

use common::reference;
use twilio_signature::{
    explain, sign, verify, Algorithm, Candidate, Error, Mistake, Request, Secret,
    SignatureSettings, Validator,
};

const SHA256: Option<&[u8]> = Some(b"key=wk_01,algorithm=HMAC_SHA256");

fn signed(secret: &[u8], sha256: bool, string: &str) -> String {
    reference::mac(sha256, secret, string.as_bytes())
}

#[test]
fn hmac_sha1_with_the_auth_token_is_the_default() {
    let sig = signed(b"token", false, "https://h/pa1");
    assert_eq!(
        verify(
            b"token",
            &Request::post("https://h/p", "a=1").signature(&sig)
        )
        .map(|v| v.algorithm),
        Ok(Algorithm::HmacSha1)
    );
}

#[test]
fn the_settings_header_selects_the_algorithm_case_insensitively() {
    let sig = signed(b"shared", true, "https://h/pa1");
    for header in [
        &b"key=wk_01,algorithm=HMAC_SHA256"[..],
        b"algorithm=hmac_sha256",
        b" Algorithm = Hmac_Sha256 , key=x ",
    ] {
        let request = Request::post("https://h/p", "a=1")
            .signature(&sig)
            .settings(Some(header));
        assert_eq!(
            verify(b"shared", &request).map(|v| v.algorithm),
            Ok(Algorithm::HmacSha256),
            "{header:?}"
        );
    }
}

#[test]
fn an_unknown_algorithm_fails_closed_with_its_own_error() {
    let sig = signed(b"k", false, "https://h/p");
    let request = Request::get("https://h/p")
        .signature(&sig)
        .settings(Some(b"algorithm=HMAC_SHA512"));
    assert_eq!(
        verify(b"k", &request).err(),
        Some(Error::UnsupportedAlgorithm)
    );
}

#[test]
fn a_settings_header_without_algorithm_means_hmac_sha1() {
    assert_eq!(
        SignatureSettings::parse(Some(b"key=abc")).map(|s| s.algorithm),
        Ok(Algorithm::HmacSha1)
    );
    assert_eq!(
        SignatureSettings::parse(Some(b"")).map(|s| s.algorithm),
        Ok(Algorithm::HmacSha1)
    );
    let sig = signed(b"k", false, "https://h/p");
    assert!(verify(
        b"k",
        &Request::get("https://h/p")
            .signature(&sig)
            .settings(Some(b"key=abc"))
    )
    .is_ok());
}

#[test]
fn a_signature_is_exactly_28_or_44_canonical_base64_characters_checked_before_any_hmac() {
    let good1 = signed(b"k", false, "https://h/p");
    let good256 = signed(b"k", true, "https://h/p");
    assert_eq!((good1.len(), good256.len()), (28, 44));
    // The last character of a 20-byte MAC carries 2 unused bits: a non-zero one is non-canonical.
    let mut non_canonical = good1.clone().into_bytes();
    let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let pos = alphabet
        .iter()
        .position(|&c| c == non_canonical[26])
        .expect("base64");
    non_canonical[26] = alphabet[pos ^ 1];
    for bad in [
        &good1.as_bytes()[..27],
        good256.as_bytes(),
        &non_canonical,
        good1.trim_end_matches('=').as_bytes(),
    ] {
        assert_eq!(
            verify(b"k", &Request::get("https://h/p").signature(bad)).err(),
            Some(Error::MalformedSignature)
        );
    }
    assert_eq!(
        verify(
            b"k",
            &Request::get("https://h/p")
                .signature(&good1)
                .settings(SHA256)
        )
        .err(),
        Some(Error::MalformedSignature),
        "a SHA-1-length signature under a SHA-256 header"
    );
}

#[test]
fn with_a_key_id_only_secrets_with_that_id_or_none_are_tried() {
    let secrets = [
        Secret::with_key_id(b"other", b"s-other").expect("id"),
        Secret::with_key_id(b"wk_01", b"s-01").expect("id"),
        Secret::new(b"auth-token"),
    ];
    let validator = Validator::with_secrets(&secrets);
    let verified = |secret: &[u8]| {
        let sig = signed(secret, true, "https://h/p");
        validator
            .verify(&Request::get("https://h/p").signature(&sig).settings(SHA256))
            .map(|v| v.secret_index)
    };
    assert_eq!(verified(b"s-01"), Ok(1));
    assert_eq!(verified(b"auth-token"), Ok(2));
    assert_eq!(verified(b"s-other"), Err(Error::SignatureMismatch));
    assert!(Secret::with_key_id(&[b'x'; 65], b"s").is_err());
}

#[test]
fn a_validator_can_own_its_secrets_and_be_shared_across_threads() {
    // Secrets read from configuration at start-up: the validator outlives the function that read them.
    fn from_config(tokens: &[&str]) -> std::sync::Arc<Validator<Vec<Secret>>> {
        let secrets = tokens.iter().map(|t| Secret::new(t.as_bytes())).collect();
        std::sync::Arc::new(Validator::with_secrets(secrets))
    }
    fn shareable<T: Clone + Send + Sync + 'static>(value: T) -> T {
        value
    }
    let validator = shareable(from_config(&["primary", "secondary"]));
    let sig = signed(b"secondary", false, "https://h/p");
    let threads: Vec<_> = (0..2)
        .map(|_| {
            let validator = std::sync::Arc::clone(&validator);
            let sig = sig.clone();
            std::thread::spawn(move || {
                validator
                    .verify(&Request::get("https://h/p").signature(&sig))
                    .map(|v| v.secret_index)
            })
        })
        .collect();
    for thread in threads {
        assert_eq!(thread.join().expect("thread"), Ok(1));
    }
    // Every storage gives the same verdict: owned array, borrowed slice, shared slice.
    let array = [Secret::new(b"primary"), Secret::new(b"secondary")];
    let request = Request::get("https://h/p").signature(&sig);
    let owned = Validator::with_secrets(array.clone()).verify(&request);
    let borrowed = Validator::with_secrets(&array[..]).verify(&request);
    let shared: std::sync::Arc<[Secret]> = array.into();
    let shared = shareable(Validator::with_secrets(shared)).verify(&request);
    assert_eq!(owned.map(|v| v.secret_index), Ok(1));
    assert_eq!(owned, borrowed);
    assert_eq!(owned, shared);
}

#[test]
fn without_a_key_id_every_secret_is_tried_and_the_match_reported() {
    let secrets = [
        Secret::new(b"primary"),
        Secret::new(b"secondary"),
        Secret::with_key_id(b"sk", b"shared").expect("id"),
    ];
    let validator = Validator::with_secrets(&secrets);
    for (i, secret) in [&b"primary"[..], b"secondary", b"shared"]
        .into_iter()
        .enumerate()
    {
        let sig = signed(secret, false, "https://h/p");
        assert_eq!(
            validator
                .verify(&Request::get("https://h/p").signature(&sig))
                .map(|v| v.secret_index),
            Ok(i)
        );
    }
}

#[test]
fn the_url_is_opaque_bytes_never_reparsed_reencoded_or_lowercased() {
    for url in [
        "HTTPS://Example.COM/A%2fb?q=%7e&x=a%20b",
        "https://h/caf\u{e9}?",
        "https://h/./a/../b",
    ] {
        let sig = signed(b"k", false, url);
        assert_eq!(
            verify(b"k", &Request::get(url).signature(&sig)).map(|v| v.candidate),
            Ok(Candidate::AsGiven),
            "{url}"
        );
        let lowered = url.to_lowercase();
        if lowered != url {
            assert!(
                verify(b"k", &Request::get(&lowered).signature(&sig)).is_err(),
                "{url}"
            );
        }
    }
}

#[test]
fn the_port_toggled_url_is_tried_second() {
    let cases = [
        ("https://h:8443/p", "https://h/p"),
        ("https://h/p", "https://h:443/p"),
        ("http://h?x", "http://h:80?x"),
        ("https://[::1]:99/p", "https://[::1]/p"),
        // A WebSocket handshake's URL: wss like https, ws like http, any case.
        ("wss://h/p", "wss://h:443/p"),
        ("WSS://h:443/p?x", "WSS://h/p?x"),
        ("ws://h/p", "ws://h:80/p"),
        ("wS://h:80/p", "wS://h/p"),
    ];
    for (received, signed_url) in cases {
        let sig = signed(b"k", false, signed_url);
        assert_eq!(
            verify(b"k", &Request::get(received).signature(&sig)).map(|v| v.candidate),
            Ok(Candidate::PortToggled),
            "{received}"
        );
    }
    // The default port of the other kind is never added: wss is not given :80, ws not :443.
    for (received, signed_url) in [("wss://h/p", "wss://h:80/p"), ("ws://h/p", "ws://h:443/p")] {
        let sig = signed(b"k", false, signed_url);
        assert!(verify(b"k", &Request::get(received).signature(&sig)).is_err());
    }
    // Other schemes get no default port.
    let sig = signed(b"k", false, "ftp://h:21/p");
    assert!(verify(b"k", &Request::get("ftp://h/p").signature(&sig)).is_err());
}

#[test]
fn userinfo_is_removed_only_when_present() {
    let sig = signed(b"k", false, "https://h/p");
    assert_eq!(
        verify(b"k", &Request::get("https://u:p@h:1/p").signature(&sig)).map(|v| v.candidate),
        Ok(Candidate::WithoutUserinfoPortToggled)
    );
    let sig = signed(b"k", false, "https://h:1/p");
    assert_eq!(
        verify(b"k", &Request::get("https://u:p@h:1/p").signature(&sig)).map(|v| v.candidate),
        Ok(Candidate::WithoutUserinfo)
    );
}

#[test]
fn form_params_are_decoded_sorted_by_bytes_and_duplicates_count_once() {
    // `+` is a space, `%XX` a byte, a stray `%` literal, blank values kept, names then values in byte order.
    let body = "b=2&%C3%A9=x&a=%&b=1&B=&b=2&&c+d=e%2Bf";
    let sig = signed(b"k", false, "https://h/pBa%b1b2c de+féx");
    assert!(verify(b"k", &Request::post("https://h/p", body).signature(&sig)).is_ok());
}

#[test]
fn byte_order_is_code_point_order_not_utf16() {
    // U+FF61 sorts before U+1F600 in UTF-8/code points, after it in UTF-16 (node, java).
    let body = "%F0%9F%98%80=1&%EF%BD%A1=2";
    let sig = signed(b"k", false, "https://h/\u{ff61}2\u{1f600}1");
    assert!(verify(b"k", &Request::post("https://h/", body).signature(&sig)).is_ok());
}

#[test]
fn decoded_names_and_values_must_be_utf8() {
    let sig = signed(b"k", false, "https://h/");
    assert_eq!(
        verify(
            b"k",
            &Request::post("https://h/", "a=%C0%AF").signature(&sig)
        )
        .err(),
        Some(Error::MalformedBody)
    );
}

#[test]
fn a_form_that_does_not_decode_to_utf8_is_malformed_whoever_checks_it() {
    // Escapes of high bytes are checked as the form is decoded for the MAC: the verdict must not depend
    // on whether any secret was tried, which one, or where the bad field is.
    let sig = signed(b"k", false, "https://h/");
    for body in [
        "a=%C0%AF",
        "%FF=1&b=2",
        &format!("b=1&a={}%F0%9F%98", "%C3%A9".repeat(3000)),
        &format!(
            "a={}%ED%A0%80{}&z=1",
            "x".repeat(2000),
            "%C3%A9".repeat(500)
        ),
    ] {
        let request = Request::post("https://h/", body).signature(&sig);
        let malformed = Some(Error::MalformedBody);
        assert_eq!(verify(b"k", &request).err(), malformed, "{body}");
        let two = [Secret::new(b"k"), Secret::new(b"j")];
        assert_eq!(
            Validator::with_secrets(&two).verify(&request).err(),
            malformed
        );
        // No secret at all, or none with the key id the settings header names: nothing is fed.
        let none: [Secret; 0] = [];
        assert_eq!(
            Validator::with_secrets(&none).verify(&request).err(),
            malformed
        );
        let named = Secret::with_key_id(b"KS1", b"k").unwrap();
        let other_key = request.settings(Some(b"key=KS2"));
        assert_eq!(
            Validator::with_secrets([named]).verify(&other_key).err(),
            malformed
        );
        assert_eq!(sign(b"k", &request).err(), malformed);
        assert_eq!(explain(b"k", &request).verdict.err(), malformed);
    }
}

#[test]
fn a_bodysha256_url_makes_the_body_opaque_hash_checked_and_unsigned() {
    let body = r#"{"a": "b=c&d"}"#;
    let url = format!(
        "https://h/j?x=1&bodySHA256={}&bodySHA256=ignored",
        reference::sha256_hex(body.as_bytes())
    );
    let sig = signed(b"k", false, &url);
    assert!(verify(b"k", &Request::post(&url, body).signature(&sig)).is_ok());
    assert_eq!(
        verify(b"k", &Request::post(&url, &body[1..]).signature(&sig)).err(),
        Some(Error::BodyHashMismatch)
    );
    let upper = url
        .to_uppercase()
        .replace("HTTPS://H/J?X=1&BODYSHA256=", "https://h/j?x=1&bodySHA256=");
    let sig_upper = signed(b"k", false, &upper);
    assert_eq!(
        verify(b"k", &Request::post(&upper, body).signature(&sig_upper)).err(),
        Some(Error::BodyHashMismatch),
        "upper-case hex"
    );
}

#[test]
fn a_bodysha256_url_with_parsed_params_is_an_error_never_a_pass() {
    let url = format!("https://h/j?bodySHA256={}", reference::sha256_hex(b"{}"));
    let sig = signed(b"k", false, &url);
    assert_eq!(
        verify(b"k", &Request::with_params(&url, &[]).signature(&sig)).err(),
        Some(Error::BodyRequired)
    );
    assert_eq!(
        sign(b"k", &Request::with_params(&url, &[])).err(),
        Some(Error::BodyRequired)
    );
}

#[test]
fn a_get_covers_the_url_alone() {
    let sig = signed(b"k", false, "https://h/p?a=1");
    assert!(verify(b"k", &Request::get("https://h/p?a=1").signature(&sig)).is_ok());
    assert!(verify(
        b"k",
        &Request::post("https://h/p?a=1", "a=1").signature(&sig)
    )
    .is_err());
}

#[test]
fn errors_separate_malformed_input_from_mismatch() {
    assert!(Error::SignatureMismatch.is_mismatch() && Error::BodyHashMismatch.is_mismatch());
    for e in [
        Error::MissingSignature,
        Error::MalformedSignature,
        Error::MalformedSettings,
        Error::UnsupportedAlgorithm,
        Error::MalformedBody,
        Error::BodyTooLarge,
        Error::TooManyParams,
        Error::BodyRequired,
        Error::NoEligibleSecret,
    ] {
        assert!(!e.is_mismatch(), "{e:?}");
        assert!(!e.message().is_empty());
    }
}

#[test]
fn secrets_never_appear_in_errors_or_debug_output() {
    let secret = b"super-secret-token-9f8e7d";
    let secrets = [
        Secret::new(secret),
        Secret::with_key_id(b"wk_01", secret).expect("id"),
    ];
    let validator = Validator::with_secrets(&secrets);
    let debug = format!("{validator:?} {:?}", secrets[1]);
    assert!(
        debug.contains("wk_01") && debug.contains("redacted"),
        "{debug}"
    );
    let sig = signed(secret, false, "https://h/p");
    let verified = validator
        .verify(&Request::get("https://h/p").signature(&sig))
        .expect("valid");
    let mut outputs = vec![debug, format!("{verified:?}")];
    for req in [
        Request::get("http://h/p").signature(&sig),
        Request::post("https://h/p", "a=%FF").signature(&sig),
    ] {
        let report = validator.explain(&req);
        outputs.push(format!("{report} {report:?} {:?}", validator.verify(&req)));
    }
    for out in outputs {
        assert!(!out.contains("super-secret"), "{out}");
    }
}

#[test]
fn the_replay_key_identifies_the_signed_request() {
    let validator = Validator::new(Secret::new(b"k"));
    let body = "a=1&b=2";
    let sig = signed(b"k", false, "https://h/pa1b2");
    let key = |url: &str, body: &str| {
        validator
            .verify(&Request::post(url, body).signature(&sig))
            .map(|v| v.replay_key())
    };
    let first = key("https://h/p", body).expect("valid");
    assert_eq!(
        key("https://h/p", body),
        Ok(first),
        "a retry has the same key"
    );
    assert_eq!(
        key("https://h/p", "b=2&a=1"),
        Ok(first),
        "the same signed params in another order"
    );
    let other_sig = signed(b"k", false, "https://h/pa1b3");
    let other = validator
        .verify(&Request::post("https://h/p", "a=1&b=3").signature(&other_sig))
        .expect("valid");
    assert_ne!(other.replay_key(), first);
}

#[test]
fn explain_names_each_common_mistake_and_never_accepts() {
    let form = "Body=Hi&From=%2B15551234567";
    let at = |url: &str| format!("{url}BodyHiFrom+15551234567");
    let json = "{\"a\":1}";
    let json_url = format!(
        "https://h/j?bodySHA256={}",
        reference::sha256_hex(json.as_bytes())
    );
    let sha256_sig = signed(b"k", true, &at("https://h/sms"));
    let check = |request: Request<'_>, mistake: Mistake| {
        let report = explain(b"k", &request);
        assert!(report.verdict.is_err(), "{mistake:?}");
        assert_eq!(
            report.diagnosis.map(|d| d.mistake),
            Some(mistake),
            "{report}"
        );
        assert!(report.to_string().contains(mistake.fix()), "{report}");
    };
    let behind_proxy = signed(b"k", false, &at("https://h/sms"));
    check(
        Request::post("http://h:8080/sms", form).signature(&behind_proxy),
        Mistake::SchemeSwapped,
    );
    let slash = signed(b"k", false, &at("https://h/sms/"));
    check(
        Request::post("https://h/sms", form).signature(&slash),
        Mistake::TrailingSlash,
    );
    check(
        Request::post("http://h/sms/", form).signature(&behind_proxy),
        Mistake::SchemeSwappedAndTrailingSlash,
    );
    check(
        Request::post("https://h/sms?utm=1", form).signature(&behind_proxy),
        Mistake::ExtraQuery,
    );
    let url_only = signed(b"k", false, "https://h/j");
    check(
        Request::post("https://h/j", json).signature(&url_only),
        Mistake::ParamsNotSigned,
    );
    let json_sig = signed(b"k", false, &json_url);
    check(
        Request::post(&json_url, "{\"a\": 1}").signature(&json_sig),
        Mistake::BodyAltered,
    );
    check(
        Request::post("https://h/sms", form).signature(&sha256_sig),
        Mistake::SettingsHeaderMissing,
    );
    check(
        Request::post("https://h/sms", form)
            .signature(&behind_proxy)
            .settings(SHA256),
        Mistake::SettingsHeaderUnexpected,
    );
    let secrets = [Secret::with_key_id(b"old", b"k").expect("id")];
    let report = Validator::with_secrets(&secrets).explain(
        &Request::post("https://h/sms", form)
            .signature(&sha256_sig)
            .settings(SHA256),
    );
    assert_eq!(
        report.diagnosis.map(|d| d.mistake),
        Some(Mistake::KeyIdMismatch),
        "{report}"
    );
    // The wrong token: nothing explains it, and the report says what to check.
    let report = explain(
        b"wrong",
        &Request::post("https://h/sms", form).signature(&behind_proxy),
    );
    assert!(
        report.diagnosis.is_none() && report.to_string().contains("secret"),
        "{report}"
    );
}

#[test]
fn an_empty_secret_matches_nothing() {
    // HMAC accepts an empty key, so anyone can sign with it: an unset token must not accept requests.
    let sig = signed(b"", false, "https://h/p");
    let request = Request::get("https://h/p").signature(&sig);
    assert_eq!(verify(b"", &request).err(), Some(Error::SignatureMismatch));
    let secrets = [Secret::new(b""), Secret::new(b"real")];
    let validator = Validator::with_secrets(&secrets);
    assert_eq!(
        validator.verify(&request).err(),
        Some(Error::SignatureMismatch)
    );
    assert!(validator.explain(&request).diagnosis.is_none());
    assert_eq!(
        sign(b"", &Request::get("https://h/p")).err(),
        Some(Error::NoEligibleSecret)
    );
    let real = validator
        .sign(&Request::get("https://h/p"))
        .expect("the non-empty secret signs");
    assert_eq!(real.as_str(), signed(b"real", false, "https://h/p"));
}

#[test]
fn a_whitespace_only_secret_matches_nothing() {
    // A token file holding only a newline, or a variable set to " ", is as unset as an empty one.
    // The vertical tab (0x0B) counts too: Rust's is_ascii_whitespace leaves it out, C's isspace has it.
    for blank in [
        &b" "[..],
        b"\n",
        b"\r\n",
        b"\t \x0c",
        b"\x0b",
        b" \x0b ",
        b"\t\n\x0b\x0c\r ",
        &[b'\x0b'; 40],
    ] {
        assert!(!Secret::is_usable(blank));
        let sig = signed(blank, false, "https://h/p");
        let request = Request::get("https://h/p").signature(&sig);
        assert_eq!(
            verify(blank, &request).err(),
            Some(Error::SignatureMismatch)
        );
        let validator = Validator::new(Secret::new(blank));
        assert_eq!(
            validator.verify(&request).err(),
            Some(Error::SignatureMismatch)
        );
        assert_eq!(
            sign(blank, &Request::get("https://h/p")).err(),
            Some(Error::NoEligibleSecret)
        );
    }
    // Whitespace around a real secret is part of it (Twilio's tokens have none, but we do not guess).
    assert!(Secret::is_usable(b" x "));
    // The bytes either side of the blank controls, and NUL, are not whitespace.
    for not_blank in [
        &b"\x08"[..],
        b"\x0e",
        b"\0",
        b" \x1f ",
        b"\x0b\x85\x0b",
        b"\xa0",
    ] {
        assert!(Secret::is_usable(not_blank), "{not_blank:?}");
    }
    let sig = signed(b" x ", false, "https://h/p");
    assert!(verify(b" x ", &Request::get("https://h/p").signature(&sig)).is_ok());
}

#[test]
fn sign_and_explain_take_a_caller_buffer_like_verify() {
    use twilio_signature::Span;
    let body: String = (0..2000)
        .map(|i| format!("p{i}=v"))
        .collect::<Vec<_>>()
        .join("&");
    let validator = Validator::new(Secret::new(b"k"));
    let url = "https://h/bulk";
    assert_eq!(
        validator.sign(&Request::post(url, &body)).err(),
        Some(Error::TooManyParams)
    );
    let mut scratch = vec![Span::EMPTY; 2000];
    let sig = validator
        .sign_with_scratch(&Request::post(url, &body), &mut scratch)
        .expect("fits");
    let request = Request::post("http://h/bulk", &body).signature(sig.as_bytes());
    let report = validator.explain_with_scratch(&request, &mut scratch);
    assert_eq!(report.verdict.err(), Some(Error::SignatureMismatch));
    assert_eq!(
        report.diagnosis.map(|d| d.mistake),
        Some(Mistake::SchemeSwapped)
    );
}
