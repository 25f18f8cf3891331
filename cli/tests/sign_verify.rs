//! `sign` and `verify` against the shared vectors, and the exit codes of `verify`.

// Helpers outside `#[test]` functions unwrap too: a test that cannot read its inputs should fail loudly.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::{BTreeMap, BTreeSet};

use common::{path_str, temp_file, twsig, Token};
use serde_json::Value;
use twilio_signature::{sign, Request};

fn vectors() -> Vec<Value> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../tests/vectors/twilio-signatures.json"
    );
    let file: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    file["vectors"].as_array().unwrap().clone()
}

fn text(v: &Value, field: &str) -> Option<String> {
    v[field].as_str().map(str::to_owned)
}

/// The params part of the signed string, built independently of the core from the decoded params:
/// names in byte order, each name's distinct values in byte order.
fn canonical_params(v: &Value) -> String {
    let mut by_name: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for pair in v["params"].as_array().into_iter().flatten() {
        let name = pair[0].as_str().unwrap().to_owned();
        by_name
            .entry(name)
            .or_default()
            .insert(pair[1].as_str().unwrap().to_owned());
    }
    by_name
        .iter()
        .flat_map(|(name, values)| values.iter().map(move |value| format!("{name}{value}")))
        .collect()
}

/// The body arguments for a vector, varying how the body is passed (file or stdin) by `i`.
fn body_args(v: &Value, i: usize) -> (Vec<String>, Vec<u8>) {
    if let Some(json) = text(v, "body") {
        let file = temp_file(json.as_bytes());
        return (
            vec!["--json-file".into(), path_str(&file).into()],
            Vec::new(),
        );
    }
    let form = text(v, "form_body").unwrap_or_default();
    if form.is_empty() {
        (vec!["--get".into()], Vec::new())
    } else if i.is_multiple_of(2) {
        (Vec::new(), form.into_bytes())
    } else {
        let file = temp_file(form.as_bytes());
        (
            vec!["--form-file".into(), path_str(&file).into()],
            Vec::new(),
        )
    }
}

#[test]
fn sign_matches_the_vectors_signatures_for_the_url_as_given() {
    let mut checked = 0;
    let (mut json, mut sha256) = (0, 0);
    for (i, v) in vectors().iter().enumerate() {
        let (Some(signed), Some(signature), Some(secret)) = (
            text(v, "signed_string"),
            text(v, "signature"),
            text(v, "secret"),
        ) else {
            continue;
        };
        let url = text(v, "url").unwrap();
        let expected_signed = if v["body"].is_string() {
            url.clone()
        } else {
            format!("{url}{}", canonical_params(v))
        };
        // Only vectors whose signature covers this URL as given (not a port-toggled or credential-free
        // form of it), and a well-formed one of the right algorithm.
        if !v["expect"].as_bool().unwrap() || signed != expected_signed {
            continue;
        }
        let (mut args, stdin) = body_args(v, i);
        args.extend(["--url".into(), url]);
        if let Some(settings) = text(v, "signature_settings") {
            args.extend(["--signature-settings".into(), settings]);
            sha256 += 1;
        }
        json += usize::from(v["body"].is_string());
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let token = if i % 3 == 0 {
            Token::File(&secret)
        } else {
            Token::Env(&secret)
        };
        let run = twsig(&["sign"], token, &[]);
        assert_eq!(run.code, 2, "sign without --url is bad usage");
        let run = twsig(&[&["sign"], &args[..]].concat(), token, &stdin);
        assert_eq!(run.code, 0, "{}: {}", v["id"], run.stderr);
        assert_eq!(run.last_line(), signature, "{}", v["id"]);
        checked += 1;
    }
    assert!(checked >= 60, "only {checked} vectors checked");
    assert!(json >= 5 && sha256 >= 5, "json {json}, sha256 {sha256}");
    eprintln!("sign: {checked} vectors ({json} JSON, {sha256} HMAC-SHA256) reproduced");
}

#[test]
fn sign_prints_the_body_sha256_url_for_json() {
    let body = br#"{"event":"delivered"}"#;
    let file = temp_file(body);
    let run = twsig(
        &[
            "sign",
            "--url",
            "https://example.com/events?x=1",
            "--json-file",
            path_str(&file),
        ],
        Token::Env("tok"),
        &[],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    let hashed = format!(
        "https://example.com/events?x=1&bodySHA256={}",
        twilio_signature::BodyHash::of(body)
    );
    assert_eq!(run.stdout.lines().next(), Some(&*format!("URL: {hashed}")));
    let expected = sign(b"tok", &Request::post(&hashed, body)).unwrap();
    assert_eq!(run.last_line(), expected.as_str());
}

#[test]
fn sign_with_key_id_prints_the_settings_header_and_an_hmac_sha256_signature() {
    let body = b"Body=Hi&From=%2B15551234567";
    let run = twsig(
        &[
            "sign",
            "--url",
            "https://example.com/sms",
            "--key-id",
            "KS1",
        ],
        Token::Env("shared-secret"),
        body,
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    let header = "key=KS1,algorithm=HMAC_SHA256";
    assert!(run
        .stdout
        .contains(&format!("X-Twilio-Webhooks-Signature-Settings: {header}")));
    let expected = sign(
        b"shared-secret",
        &Request::post("https://example.com/sms", body).settings(Some(header.as_bytes())),
    )
    .unwrap();
    assert_eq!(expected.as_str().len(), 44);
    assert_eq!(run.last_line(), expected.as_str());
}

#[test]
fn verify_agrees_with_every_vector_verdict() {
    let (mut accepted, mut refused) = (0, 0);
    for v in vectors() {
        let (Some(signature), Some(secret)) = (text(&v, "signature"), text(&v, "secret")) else {
            continue; // no header: verify requires --signature
        };
        let body = text(&v, "body")
            .or_else(|| text(&v, "form_body"))
            .unwrap_or_default();
        let file = temp_file(body.as_bytes());
        let mut args = vec![
            "verify".to_owned(),
            "--url".into(),
            text(&v, "url").unwrap(),
            "--signature".into(),
            signature,
            "--body-file".into(),
            path_str(&file).into(),
        ];
        if let Some(settings) = text(&v, "signature_settings") {
            args.extend(["--signature-settings".into(), settings]);
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let run = twsig(&args, Token::Env(&secret), &[]);
        let expect = v["expect"].as_bool().unwrap();
        assert_eq!(
            run.code,
            i32::from(!expect),
            "{}: {}{}",
            v["id"],
            run.stdout,
            run.stderr
        );
        if expect {
            assert!(run.stdout.starts_with("valid: "), "{}", run.stdout);
            accepted += 1;
        } else {
            assert!(run.stdout.starts_with("invalid: "), "{}", run.stdout);
            refused += 1;
        }
    }
    assert!(
        accepted >= 100 && refused >= 70,
        "{accepted} accepted, {refused} refused"
    );
    eprintln!("verify: {accepted} accepted and {refused} refused as the vectors expect");
}

const URL: &str = "https://mycompany.com/myapp.php?foo=1&bar=2";
const BODY: &str = "Digits=1234&CallSid=CA1234567890ABCDE&To=%2B18005551212&Caller=%2B14158675309&From=%2B14158675309";
const SIGNATURE: &str = "RSOYDt4T1cUTdK1PDd93/VVr8B8=";

fn verify(url: &str, signature: &str, token: Token<'_>, extra: &[&str]) -> common::Run {
    let args = [&["verify", "--url", url, "--signature", signature], extra].concat();
    twsig(&args, token, BODY.as_bytes())
}

#[test]
fn verify_exit_0_names_the_secret_and_the_url_candidate() {
    let run = verify(URL, SIGNATURE, Token::Env("12345"), &[]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(
        run.stdout.trim(),
        "valid: HMAC_SHA1 signature by secret #0 over the URL as given"
    );

    let run = verify(
        "https://mycompany.com:443/myapp.php?foo=1&bar=2",
        SIGNATURE,
        Token::File("12345"),
        &[],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        run.stdout.contains("over the URL with its port toggled"),
        "{}",
        run.stdout
    );
}

#[test]
fn verify_with_several_token_files_reports_which_matched() {
    let old = temp_file(b"not-the-token\n");
    let new = temp_file(b"12345\r\n");
    let run = verify(
        URL,
        SIGNATURE,
        Token::None,
        &[
            "--token-file",
            path_str(&old),
            "--token-file",
            path_str(&new),
        ],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        run.stdout
            .contains(&format!("by secret #1 (--token-file {})", path_str(&new))),
        "{}",
        run.stdout
    );
}

#[test]
fn verify_exit_1_for_invalid_signatures() {
    let mut flipped = SIGNATURE.to_owned();
    flipped.replace_range(0..1, "S");
    for (signature, why) in [
        (&*flipped, "the signature does not match the request"),
        ("RSOYDt4T1cUTdK1PDd93/VVr8B8", "not a base64 HMAC-SHA1"),
        ("", "not a base64 HMAC-SHA1"),
        ("-RSOYDt4T1cUTdK1PDd93/VVr8B", "not a base64 HMAC-SHA1"),
    ] {
        let run = verify(URL, signature, Token::Env("12345"), &[]);
        assert_eq!(run.code, 1, "{signature:?}: {}", run.stderr);
        assert!(run.stdout.contains(why), "{signature:?}: {}", run.stdout);
    }
    let run = verify(URL, SIGNATURE, Token::Env("54321"), &[]);
    assert_eq!(run.code, 1);
    let run = verify(
        URL,
        SIGNATURE,
        Token::Env("12345"),
        &["--signature-settings", "algorithm=HMAC_MD5"],
    );
    assert_eq!(run.code, 1);
    assert!(
        run.stdout.contains("unsupported algorithm"),
        "{}",
        run.stdout
    );
}

#[test]
fn verify_exit_2_for_bad_usage_without_echoing_secrets() {
    let cases: [(&[&str], Token<'_>, &str); 7] = [
        (
            &["verify", "--url", URL, "--signature", SIGNATURE],
            Token::None,
            "TWILIO_AUTH_TOKEN",
        ),
        (
            &[
                "verify",
                "--url",
                URL,
                "--signature",
                SIGNATURE,
                "--token",
                "hunter2-secret",
            ],
            Token::None,
            "--token is refused",
        ),
        (
            &[
                "verify",
                "--url",
                URL,
                "--signature",
                SIGNATURE,
                "--auth-token=hunter2-secret",
            ],
            Token::Env("12345"),
            "--token is refused",
        ),
        (
            &[
                "verify",
                "--url",
                URL,
                "--signature",
                SIGNATURE,
                "hunter2-secret",
            ],
            Token::Env("12345"),
            "not shown",
        ),
        (
            &["verify", "--url", URL],
            Token::Env("12345"),
            "--signature",
        ),
        (
            &[
                "verify",
                "--url",
                URL,
                "--signature",
                SIGNATURE,
                "--form-file",
                "/nonexistent/x",
            ],
            Token::Env("12345"),
            "cannot read /nonexistent/x",
        ),
        (
            &["sign", "--url", URL, "--algorithm", "md5"],
            Token::Env("12345"),
            "unknown algorithm",
        ),
    ];
    for (args, token, message) in cases {
        let run = twsig(args, token, BODY.as_bytes());
        assert_eq!(run.code, 2, "{args:?}: {}", run.stdout);
        assert!(run.stderr.contains(message), "{args:?}: {}", run.stderr);
        assert_eq!(run.stderr.lines().count(), 1, "one line: {}", run.stderr);
        assert!(!run.stderr.contains("hunter2"), "{args:?}: {}", run.stderr);
        assert!(!run.stdout.contains("hunter2"));
    }
    let run = twsig(
        &[
            "verify",
            "--token-file",
            "/nonexistent/t",
            "--url",
            URL,
            "--signature",
            SIGNATURE,
        ],
        Token::None,
        b"",
    );
    assert_eq!(run.code, 2);
    assert!(
        run.stderr.contains("cannot read token file"),
        "{}",
        run.stderr
    );
}

#[test]
fn help_has_examples_everywhere() {
    for command in [
        &["--help"][..],
        &["sign", "--help"],
        &["verify", "--help"],
        &["explain", "--help"],
        &["send", "--help"],
    ] {
        let run = twsig(command, Token::None, b"");
        assert_eq!(run.code, 0, "{command:?}");
        assert!(
            run.stdout.contains("Examples:"),
            "{command:?}: {}",
            run.stdout
        );
        assert!(run.stdout.contains("twsig "), "{command:?}");
    }
}

#[test]
fn no_subcommand_is_bad_usage_with_the_help() {
    let run = twsig(&[], Token::None, b"");
    assert_eq!(run.code, 2);
    assert!(
        run.stderr.contains("Usage: twsig <COMMAND>"),
        "{}",
        run.stderr
    );
    let run = twsig(&["frob"], Token::None, b"");
    assert_eq!(run.code, 2);
    assert_eq!(
        run.stderr.trim(),
        "twsig: unrecognized subcommand 'frob' (see --help)"
    );
}
