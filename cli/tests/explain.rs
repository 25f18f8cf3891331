//! `explain` names the cause of each common mistake, and the fix.

// Helpers outside `#[test]` functions unwrap too: a test that cannot read its inputs should fail loudly.
#![allow(clippy::unwrap_used)]

mod common;

use common::{path_str, temp_file, twsig, Run, Token};
use twilio_signature::{sign, BodyHash, Request};

const TOKEN: &str = "explain-test-token";
const PUBLIC: &str = "https://example.com/sms";
const FORM: &[u8] = b"Body=Hello&From=%2B15551234567&MessageSid=SM123&To=%2B15005550006";

/// The signature Twilio sends for `url` + `body` with `settings`.
fn twilio_signs(url: &str, body: &[u8], settings: Option<&str>) -> String {
    let request = Request::post(url, body).settings(settings.map(str::as_bytes));
    sign(TOKEN.as_bytes(), &request)
        .unwrap()
        .as_str()
        .to_owned()
}

fn explain(url: &str, signature: &str, body_args: &[&str], stdin: &[u8], token: &str) -> Run {
    let args = [
        &["explain", "--url", url, "--signature", signature][..],
        body_args,
    ]
    .concat();
    twsig(&args, Token::Env(token), stdin)
}

fn assert_explains(run: &Run, cause: &str, fix: &str) {
    assert_eq!(run.code, 1, "{}{}", run.stdout, run.stderr);
    assert!(run.stdout.starts_with("invalid: "), "{}", run.stdout);
    assert!(
        run.stdout.contains(cause),
        "want {cause:?} in:\n{}",
        run.stdout
    );
    assert!(run.stdout.contains(fix), "want {fix:?} in:\n{}", run.stdout);
}

#[test]
fn http_vs_https_behind_a_proxy() {
    let signature = twilio_signs(PUBLIC, FORM, None);
    let run = explain("http://example.com/sms", &signature, &[], FORM, TOKEN);
    assert_explains(
        &run,
        "other scheme (http vs https)",
        "fix: build the URL from the public scheme",
    );
}

#[test]
fn http_and_the_app_port_behind_a_proxy() {
    let signature = twilio_signs(PUBLIC, FORM, None);
    let run = explain("http://example.com:5000/sms", &signature, &[], FORM, TOKEN);
    assert_explains(&run, "other scheme (http vs https)", "X-Forwarded-Proto");
    assert!(run.stdout.contains("port toggled"), "{}", run.stdout);
}

#[test]
fn a_port_alone_is_accepted_and_reported() {
    let signature = twilio_signs(PUBLIC, FORM, None);
    let run = explain("https://example.com:8443/sms", &signature, &[], FORM, TOKEN);
    assert_eq!(run.code, 0, "{}", run.stdout);
    assert!(
        run.stdout
            .contains("valid: HMAC_SHA1 signature by secret #0 over the URL with its port toggled"),
        "{}",
        run.stdout
    );
}

#[test]
fn trailing_slash() {
    let signature = twilio_signs(PUBLIC, FORM, None);
    let run = explain("https://example.com/sms/", &signature, &[], FORM, TOKEN);
    assert_explains(&run, "different trailing slash", "slash included or not");
}

#[test]
fn extra_query_string() {
    let signature = twilio_signs(PUBLIC, FORM, None);
    let run = explain(
        "https://example.com/sms?source=app",
        &signature,
        &[],
        FORM,
        TOKEN,
    );
    assert_explains(
        &run,
        "without the query string",
        "do not append a query string",
    );
}

#[test]
fn json_webhook_whose_url_lost_its_body_sha256() {
    let json = br#"{"type":"com.twilio.messaging.inbound-message.received"}"#;
    let signed_url = format!("{PUBLIC}?bodySHA256={}", BodyHash::of(json));
    let signature = twilio_signs(&signed_url, json, None);
    let file = temp_file(json);
    let run = explain(
        PUBLIC,
        &signature,
        &["--json-file", path_str(&file)],
        b"",
        TOKEN,
    );
    assert_explains(
        &run,
        "lost its bodySHA256",
        "query string included, and the raw body",
    );
    // One report, one cause.
    assert_eq!(
        run.stdout.matches("likely cause").count(),
        1,
        "{}",
        run.stdout
    );
    assert!(!run.stdout.contains("no common mistake"), "{}", run.stdout);
}

#[test]
fn json_body_given_as_a_form_without_its_query() {
    // The raw body and the URL with its query dropped, the body passed as a form (stdin).
    let json = br#"{"type":"com.twilio.messaging.inbound-message.received","data":{"body":"a&b"}}"#;
    let signed_url = format!("{PUBLIC}?bodySHA256={}", BodyHash::of(json));
    let signature = twilio_signs(&signed_url, json, None);
    let run = explain(PUBLIC, &signature, &[], json, TOKEN);
    assert_explains(&run, "this is a JSON webhook", "query string included");
    assert_eq!(
        run.stdout.matches("likely cause").count(),
        1,
        "{}",
        run.stdout
    );
}

#[test]
fn an_app_behind_a_proxy_verifying_its_internal_url() {
    let signature = twilio_signs(PUBLIC, FORM, None);
    for internal in ["http://10.0.0.5:8080/sms", "http://127.0.0.1:5601/sms"] {
        let run = explain(internal, &signature, &[], FORM, TOKEN);
        assert_explains(
            &run,
            "likely cause: the URL verified looks internal",
            "fix: verify the public URL: configure the base URL",
        );
        assert!(
            run.stdout
                .contains("Twilio signs the public URL configured in the console")
                && run.stdout.contains(&format!("url verified: {internal}\n")),
            "{}",
            run.stdout
        );
        assert!(!run.stdout.contains("no common mistake"), "{}", run.stdout);
        // The token is the last resort, after the fix.
        let fix = run.stdout.find("fix:").unwrap();
        assert!(
            run.stdout.find("Auth Token").unwrap() > fix,
            "{}",
            run.stdout
        );
    }
}

#[test]
fn json_body_re_serialised() {
    let json = br#"{"a": 1, "b": [true]}"#;
    let signed_url = format!("{PUBLIC}?bodySHA256={}", BodyHash::of(json));
    let signature = twilio_signs(&signed_url, json, None);
    let file = temp_file(br#"{"a":1,"b":[true]}"#);
    let run = explain(
        &signed_url,
        &signature,
        &["--json-file", path_str(&file)],
        b"",
        TOKEN,
    );
    assert_explains(
        &run,
        "body does not match its bodySHA256",
        "raw request body bytes",
    );
}

#[test]
fn signature_over_the_url_alone_checked_with_a_form_body() {
    let signature = twilio_signs(PUBLIC, b"", None);
    let run = explain(PUBLIC, &signature, &[], FORM, TOKEN);
    assert_explains(&run, "covers the URL alone", "fix:");
}

#[test]
fn hmac_sha256_without_the_settings_header() {
    let settings = "key=KS0123,algorithm=HMAC_SHA256";
    let signature = twilio_signs(PUBLIC, FORM, Some(settings));
    assert_eq!(signature.len(), 44);
    let run = explain(PUBLIC, &signature, &[], FORM, TOKEN);
    assert_explains(
        &run,
        "X-Twilio-Webhooks-Signature-Settings header was not passed",
        "pass the X-Twilio-Webhooks-Signature-Settings header exactly as received",
    );
    // With the header it is valid.
    let run = explain(
        PUBLIC,
        &signature,
        &["--signature-settings", settings],
        FORM,
        TOKEN,
    );
    assert_eq!(run.code, 0, "{}", run.stdout);
    assert!(run.stdout.contains("valid: HMAC_SHA256"), "{}", run.stdout);
}

#[test]
fn wrong_token() {
    let signature = twilio_signs(PUBLIC, FORM, None);
    let run = explain(PUBLIC, &signature, &[], FORM, "another-accounts-token");
    assert_explains(&run, "no common mistake explains it", "Auth Token");
    assert!(!run.stdout.contains("another-accounts-token"));
}

/// `twsig sign --get --url url`: the signature of a handshake (a GET, no body), from the last line.
fn sign_get(url: &str) -> Run {
    twsig(&["sign", "--get", "--url", url], Token::Env(TOKEN), b"")
}

#[test]
fn sign_verify_and_explain_take_wss_urls() {
    let run = sign_get("wss://example.com/media?x=1");
    assert_eq!(run.code, 0, "{}", run.stderr);
    let signature = run.last_line().to_owned();
    assert_eq!(
        signature,
        twilio_signs("wss://example.com/media?x=1", b"", None)
    );
    // verify: as given, and with the :443 the port toggle adds to wss.
    let run = twsig(
        &[
            "verify",
            "--get",
            "--url",
            "wss://example.com:443/media?x=1",
            "--signature",
            &signature,
        ],
        Token::Env(TOKEN),
        b"",
    );
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    assert!(
        run.stdout.contains("over the URL with its port toggled"),
        "{}",
        run.stdout
    );
}

#[test]
fn a_handshake_verified_as_https_names_the_wss_url() {
    for (signed, verified, cause, fix) in [
        (
            "wss://example.com/media",
            "https://example.com/media",
            "likely cause: verified as https:// but Twilio signed the wss:// handshake.\n\
             url verified: https://example.com/media\n\
             url signed: wss://example.com/media\n",
            "fix: verify a WebSocket handshake (a GET with Upgrade: websocket) over its wss:// URL",
        ),
        // The reverse: a request Twilio signed over https://, verified as a handshake.
        (
            "https://example.com/voice",
            "wss://example.com/voice",
            "verified as wss:// but signed over the https:// URL",
            "url signed: https://example.com/voice\n",
        ),
        // ws:// for a handshake Twilio signed as wss:// (the app behind a proxy saw http).
        (
            "wss://example.com/media",
            "ws://example.com/media",
            "other scheme (ws vs wss)",
            "trust your proxy's X-Forwarded-Proto",
        ),
    ] {
        let signature = sign_get(signed).last_line().to_owned();
        let run = explain(verified, &signature, &["--get"], b"", TOKEN);
        assert_explains(&run, cause, fix);
    }
}

#[test]
fn a_route_pasted_into_the_base_url() {
    let signature = twilio_signs("https://hooks.example.com/twilio/sms", FORM, None);
    let run = explain(
        "https://hooks.example.com/twilio/sms/twilio/sms",
        &signature,
        &[],
        FORM,
        TOKEN,
    );
    assert_explains(
        &run,
        "likely cause: the URL verified repeats part of its path: Twilio signed it without the repeat.\n\
         url verified: https://hooks.example.com/twilio/sms/twilio/sms\n\
         url signed: https://hooks.example.com/twilio/sms\n",
        "fix: give the base URL as the public origin",
    );
    assert!(!run.stdout.contains("no common mistake"), "{}", run.stdout);
}

#[test]
fn a_port_the_app_does_not_see() {
    let signature = twilio_signs("https://example.com:8443/sms", FORM, None);
    let run = explain(PUBLIC, &signature, &[], FORM, TOKEN);
    assert_explains(
        &run,
        "likely cause: Twilio signed the URL with a port that the URL verified does not have.\n\
         url verified: https://example.com/sms\n\
         url signed: https://example.com:8443/sms\n",
        "fix: verify the URL with the port Twilio requested",
    );
    // A port outside the short list is not guessed.
    let signature = twilio_signs("https://example.com:9443/sms", FORM, None);
    let run = explain(PUBLIC, &signature, &[], FORM, TOKEN);
    assert_explains(&run, "no common mistake explains it", "Auth Token");
}
