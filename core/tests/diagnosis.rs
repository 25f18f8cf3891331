//! explain on the cases users actually hit (an app behind a proxy verifying its internal URL, a JSON
//! webhook read as a form), the scratch bound on bodies of empty segments, and the re-splitting property
//! of Twilio's signed string that SECURITY.md documents.

mod common;

use common::reference;
use twilio_signature::{
    BodyHash, Error, Mistake, Request, Secret, Span, Validator, DEFAULT_MAX_PARAMS,
};

const TOKEN: &[u8] = b"12345678901234567890123456789012";
const FORM: &str = "Body=Hello&From=%2B15551234567";

fn validator() -> Validator {
    Validator::new(Secret::new(TOKEN))
}

fn twilio_signs(url: &str, body: &str) -> String {
    validator()
        .sign(&Request::post(url, body))
        .expect("sign")
        .as_str()
        .to_owned()
}

#[test]
fn an_internal_url_behind_a_proxy_is_named_with_the_url_verified() {
    let sig = twilio_signs("https://example.com/sms", FORM);
    for url in [
        "http://10.0.0.5:8080/sms",
        "http://127.0.0.1:5601/sms",
        "http://app:8000/sms",
        "https://[::1]:8443/sms",
        "https://webhooks.internal/sms",
    ] {
        let explanation = validator().explain(&Request::post(url, FORM).signature(&sig));
        assert_eq!(explanation.verdict.err(), Some(Error::SignatureMismatch));
        assert_eq!(explanation.diagnosis, None, "nothing was matched: {url}");
        let internal = explanation.internal_url.expect(url);
        assert_eq!(internal.url(), url.as_bytes());
        let report = explanation.to_string();
        assert!(
            report.contains("the URL verified looks internal")
                && report.contains("Twilio signs the public URL configured in the console")
                && report.contains(&format!("url verified: {url}\n"))
                && report.contains("configure the base URL")
                && report.contains("X-Forwarded-Proto"),
            "{report}"
        );
        assert!(!report.contains("no common mistake"), "{report}");
    }
}

#[test]
fn a_public_url_that_matches_nothing_keeps_the_token_advice() {
    let sig = twilio_signs("https://example.com/sms", FORM);
    let explanation = Validator::new(Secret::new(b"another account's token"))
        .explain(&Request::post("https://example.com/sms", FORM).signature(&sig));
    assert_eq!(explanation.internal_url, None);
    let report = explanation.to_string();
    assert!(
        report.contains("no common mistake explains it") && report.contains("Auth Token"),
        "{report}"
    );
}

#[test]
fn an_internal_url_that_a_correction_explains_gets_that_diagnosis_instead() {
    // Twilio really requested the app's port over http, and the app passed https: a tested correction
    // wins over the heuristic.
    let sig = twilio_signs("http://10.0.0.5:8080/sms", FORM);
    let explanation =
        validator().explain(&Request::post("https://10.0.0.5:8080/sms", FORM).signature(&sig));
    assert_eq!(
        explanation.diagnosis.map(|d| d.mistake),
        Some(Mistake::SchemeSwapped)
    );
    assert_eq!(explanation.internal_url, None);
}

fn json_url(base: &str, json: &str) -> String {
    let separator = if base.contains('?') { '&' } else { '?' };
    format!(
        "{base}{separator}bodySHA256={}",
        BodyHash::of(json.as_bytes())
    )
}

#[test]
fn a_json_webhook_whose_url_lost_its_body_hash_gets_one_cause() {
    let json =
        r#"{"type":"com.twilio.messaging.inbound-message.received","data":{"body":"hi&bye"}}"#;
    for base in [
        "https://example.com/events",
        "https://example.com/events?tenant=7",
    ] {
        let sig = twilio_signs(&json_url(base, json), json);
        let explanation = validator().explain(&Request::post(base, json).signature(&sig));
        assert_eq!(explanation.verdict.err(), Some(Error::SignatureMismatch));
        assert_eq!(
            explanation.diagnosis.map(|d| d.mistake),
            Some(Mistake::BodyHashDropped),
            "{explanation}"
        );
        let report = explanation.to_string();
        assert_eq!(report.matches("likely cause").count(), 1, "{report}");
        assert!(!report.contains("no common mistake"), "{report}");
        assert!(report.contains("lost its bodySHA256"), "{report}");
        assert!(report.contains("query string included"), "{report}");
    }
}

#[test]
fn a_json_body_that_is_not_even_a_valid_form_is_named_too() {
    // As a form, `%C3(` decodes to a byte that is not UTF-8: verify refuses the body as malformed, and
    // explain still finds that the URL lost its bodySHA256.
    let json = r#"[{"data":{"body":"caf%C3(","n":1}}]"#;
    let sig = twilio_signs(&json_url("https://example.com/stream", json), json);
    let explanation =
        validator().explain(&Request::post("https://example.com/stream", json).signature(&sig));
    assert_eq!(explanation.verdict.err(), Some(Error::MalformedBody));
    assert_eq!(
        explanation.diagnosis.map(|d| d.mistake),
        Some(Mistake::BodyHashDropped)
    );
}

#[test]
fn a_forged_json_body_without_its_hash_is_not_explained() {
    let json = r#"{"a":1}"#;
    let sig = reference::mac(false, b"someone else", b"https://example.com/events");
    let explanation =
        validator().explain(&Request::post("https://example.com/events", json).signature(&sig));
    assert_eq!(explanation.diagnosis, None);
    assert!(explanation.to_string().contains("no common mistake"));
}

#[test]
fn max_params_counts_non_empty_segments_only() {
    let count = |body: &str| Request::post("https://h/p", body).max_params();
    assert_eq!(count(""), 0);
    assert_eq!(count("&"), 0);
    assert_eq!(count("&&&"), 0);
    assert_eq!(count("a"), 1);
    assert_eq!(count("="), 1);
    assert_eq!(count("a=1&b=2"), 2);
    assert_eq!(count("&a=1&&b=2&"), 2);
    assert_eq!(count("a&&&&&&&&&&b"), 2);
    assert_eq!(
        Request::with_params("https://h/p", &[("a", ""), ("a", "")]).max_params(),
        2
    );
    // The count is exact: a scratch of max_params spans holds every parameter, one fewer does not.
    let validator = validator();
    for body in ["a=1&b=2", "&x&&y=&=z&", "p=1&&&&q=2&&&&r=3"] {
        let request = Request::post("https://h/p", body);
        let n = request.max_params();
        let mut scratch = vec![Span::EMPTY; n];
        let sig = validator
            .sign_with_scratch(&request, &mut scratch)
            .expect("fits exactly");
        assert!(validator
            .verify_with_scratch(&request.signature(sig.as_bytes()), &mut scratch)
            .is_ok());
        assert_eq!(
            validator.sign_with_scratch(&request, &mut scratch[..n - 1]),
            Err(Error::TooManyParams),
            "{body}"
        );
    }
}

#[test]
fn max_params_agrees_with_a_naive_count_on_every_short_body() {
    // Every body of up to 10 bytes over {&, =, a} (the word-at-a-time count's boundaries included),
    // and pseudo-random longer ones.
    let naive = |body: &[u8]| body.split(|&b| b == b'&').filter(|s| !s.is_empty()).count();
    let alphabet = [b'&', b'=', b'a'];
    for len in 0..=10u32 {
        for mut code in 0..3usize.pow(len) {
            let body: Vec<u8> = (0..len)
                .map(|_| {
                    let b = alphabet[code % 3];
                    code /= 3;
                    b
                })
                .collect();
            assert_eq!(
                Request::post(b"u".as_slice(), body.as_slice()).max_params(),
                naive(&body),
                "{:?}",
                String::from_utf8_lossy(&body)
            );
        }
    }
    let mut state = 0x2545_f491_4f6c_dd1d_u64;
    for _ in 0..2000 {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let len = (state % 300) as usize;
        let body: Vec<u8> = (0..len)
            .map(|i| match (state >> (i % 60)) & 3 {
                0 | 1 => b'&',
                2 => 0xa6, // `&` with the high bit set: not an ampersand
                _ => b'x',
            })
            .collect();
        assert_eq!(
            Request::post(b"u".as_slice(), body.as_slice()).max_params(),
            naive(&body)
        );
    }
}

#[test]
fn a_body_of_ampersands_needs_no_scratch() {
    // 64 MiB of `&`: the bindings size their heap scratch with max_params (32 bytes a span), so the old
    // count (one per `&`) asked for 2 GiB here.
    let body = vec![b'&'; 64 << 20];
    let request = Request::post(b"https://h/p".as_slice(), body.as_slice());
    assert_eq!(request.max_params(), 0);
    let sig = twilio_signs("https://h/p", "");
    assert!(validator()
        .verify_with_scratch(&request.signature(&sig), &mut [])
        .is_ok());
    // And the core's own stack path takes the small buffer.
    assert!(validator().verify(&request.signature(&sig)).is_ok());
    let mixed: Vec<u8> = (0..DEFAULT_MAX_PARAMS * 4)
        .flat_map(|i| if i % 4 == 0 { *b"a=1&" } else { *b"&&&&" })
        .collect();
    assert_eq!(
        Request::post(b"https://h/p".as_slice(), mixed.as_slice()).max_params(),
        DEFAULT_MAX_PARAMS
    );
}

/// SECURITY.md, "Re-splitting": Twilio's signed string has no separators between names and values, so a
/// genuine request's bytes can be re-split into other parameters under the same signature. Every
/// implementation of the algorithm accepts it (bindings-python/tests/test_explain_proxy.py shows
/// twilio-python does); the replay key is the same, so a stored replay key catches it.
#[test]
fn a_captured_request_re_split_verifies_under_the_same_signature() {
    let url = "https://example.com/sms";
    // The attacker texts the number from their own phone with a crafted body...
    let genuine =
        "AccountSid=AC123&Body=hiFrom%2B15550001111FromA&From=%2B15559998888&To=%2B15005550006";
    let sig = twilio_signs(url, genuine);
    let first = validator()
        .verify(&Request::post(url, genuine).signature(&sig))
        .expect("genuine");
    // ...captures the signed request, and replays it re-split: From is now a number they do not own.
    let re_split =
        "AccountSid=AC123&Body=hi&From=%2B15550001111&FromA=From%2B15559998888&To=%2B15005550006";
    let replayed = validator()
        .verify(&Request::post(url, re_split).signature(&sig))
        .expect("the re-split request verifies too");
    let params = |body: &str| {
        reference::params_string(&reference::decode_form(body.as_bytes()).expect("a form"))
    };
    assert_eq!(params(genuine), params(re_split), "the same signed string");
    assert_ne!(genuine, re_split);
    assert_eq!(
        first.replay_key(),
        replayed.replay_key(),
        "a different request with the same replay key"
    );
}

/// The report for `url` (with `body`) carrying the signature Twilio made over `signed_url`.
fn explain_signed_for(signed_url: &str, url: &str, body: &str) -> twilio_signature::Explanation {
    let sig = twilio_signs(signed_url, body);
    validator().explain(&Request::post(url, body).signature(&sig))
}

/// The mistake explain names for `url` (with `body`) signed over `signed_url`, if any.
fn mistake_named(signed_url: &str, url: &str, body: &str) -> Option<Mistake> {
    explain_signed_for(signed_url, url, body)
        .diagnosis
        .map(|d| d.mistake)
}

/// The diagnosis names `mistake`, and the report says `cause` and shows both URLs.
fn assert_named_with_urls(
    explanation: &twilio_signature::Explanation,
    mistake: Mistake,
    cause: &str,
    verified: &str,
    signed: &str,
) {
    assert_eq!(explanation.verdict.err(), Some(Error::SignatureMismatch));
    assert_eq!(explanation.diagnosis.map(|d| d.mistake), Some(mistake));
    let urls = explanation.correction.expect("both URLs");
    assert_eq!(urls.verified.as_bytes(), verified.as_bytes());
    assert_eq!(urls.signed.as_bytes(), signed.as_bytes());
    let report = explanation.to_string();
    assert!(
        report.contains(&format!("likely cause: {cause}.\n"))
            && report.contains(&format!(
                "\nurl verified: {verified}\nurl signed: {signed}\nfix: "
            )),
        "{report}"
    );
    assert_eq!(report.matches("likely cause").count(), 1, "{report}");
    assert_eq!(explanation.internal_url, None);
}

#[test]
fn a_handshake_verified_as_the_https_request_is_named() {
    // Twilio signs a Media Streams / ConversationRelay handshake (a GET, no body) over its wss:// URL.
    for (signed, verified, mistake, cause) in [
        (
            "wss://example.com/media?CallSid=CA1",
            "https://example.com/media?CallSid=CA1",
            Mistake::HttpsInsteadOfWss,
            "verified as https:// but Twilio signed the wss:// handshake",
        ),
        (
            "ws://example.com/media",
            "http://example.com/media",
            Mistake::HttpInsteadOfWs,
            "verified as http:// but Twilio signed the ws:// handshake",
        ),
        // The toggled port is shown as signed.
        (
            "wss://example.com:443/media",
            "HTTPS://example.com/media",
            Mistake::HttpsInsteadOfWss,
            "verified as https:// but Twilio signed the wss:// handshake",
        ),
        // The reverse: a plain request verified as a handshake.
        (
            "https://example.com/voice",
            "wss://example.com/voice",
            Mistake::WssInsteadOfHttps,
            "verified as wss:// but signed over the https:// URL: signed as a plain request, not as Twilio signs a handshake",
        ),
        (
            "http://example.com/voice",
            "ws://example.com/voice",
            Mistake::WsInsteadOfHttp,
            "verified as ws:// but signed over the http:// URL: signed as a plain request, not as Twilio signs a handshake",
        ),
        // Behind a TLS-terminating proxy the handshake was seen as ws://.
        (
            "wss://example.com/media",
            "ws://example.com/media",
            Mistake::WebSocketSchemeSwapped,
            "Twilio signed the handshake with the other scheme (ws vs wss)",
        ),
    ] {
        let explanation = explain_signed_for(signed, verified, "");
        assert_named_with_urls(&explanation, mistake, cause, verified, signed);
        assert!(explanation.to_string().contains("fix: verify")
            || explanation.to_string().contains("fix: build the handshake's URL"));
    }
}

#[test]
fn a_request_with_a_body_is_not_taken_for_a_handshake() {
    // A handshake has no body: a form signed over a wss:// URL is not a mistake explain names (and
    // costs no try).
    let explanation =
        explain_signed_for("wss://example.com/media", "https://example.com/media", FORM);
    assert_eq!(explanation.diagnosis, None);
    assert_eq!(explanation.correction, None);
    assert!(explanation.to_string().contains("no common mistake"));
}

#[test]
fn a_route_pasted_into_the_base_url_is_named() {
    for (verified, signed) in [
        // base_url "https://hooks.example.com/twilio/sms" + route "/twilio/sms"
        (
            "https://hooks.example.com/twilio/sms/twilio/sms",
            "https://hooks.example.com/twilio/sms",
        ),
        // base_url "https://hooks.example.com/api/twilio" + route "/twilio/sms?x=1"
        (
            "https://hooks.example.com/api/twilio/twilio/sms?x=1",
            "https://hooks.example.com/api/twilio/sms?x=1",
        ),
    ] {
        let explanation = explain_signed_for(signed, verified, FORM);
        assert_named_with_urls(
            &explanation,
            Mistake::DoubledPath,
            "the URL verified repeats part of its path: Twilio signed it without the repeat",
            verified,
            signed,
        );
        assert!(explanation
            .to_string()
            .contains("fix: give the base URL as the public origin"));
    }
    // Also for a GET.
    assert_eq!(
        mistake_named(
            "https://h.example/voice",
            "https://h.example/voice/voice",
            ""
        ),
        Some(Mistake::DoubledPath)
    );
}

#[test]
fn a_port_the_app_did_not_see_is_named_with_the_port() {
    for port in twilio_signature::DROPPED_PORTS {
        let signed = format!("https://example.com:{port}/sms");
        for verified in ["https://example.com/sms", "https://example.com:443/sms"] {
            let explanation = explain_signed_for(&signed, verified, FORM);
            assert_named_with_urls(
                &explanation,
                Mistake::DroppedPort,
                "Twilio signed the URL with a port that the URL verified does not have",
                verified,
                &signed,
            );
        }
    }
    // A WebSocket handshake too, over its wss:// URL.
    assert_eq!(
        mistake_named(
            "wss://example.com:8443/media",
            "wss://example.com/media",
            ""
        ),
        Some(Mistake::DroppedPort)
    );
    // A port outside the short list cannot be guessed: the public URL keeps the token advice.
    let explanation = explain_signed_for(
        "https://example.com:9443/sms",
        "https://example.com/sms",
        FORM,
    );
    assert_eq!(explanation.diagnosis, None);
    assert!(explanation.to_string().contains("no common mistake"));
    // A URL with a port of its own is not given another one.
    assert_eq!(
        mistake_named(
            "https://example.com:8443/sms",
            "https://example.com:9000/sms",
            FORM
        ),
        None
    );
}
