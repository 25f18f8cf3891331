//! Hostile input: huge forms, huge bodies, invalid UTF-8, NUL bytes, garbage headers. Each gets a clear error
//! (or the right verdict), never a panic, and stays fast: a bound of seconds where a quadratic algorithm
//! would take minutes.

mod common;

use std::time::{Duration, Instant};

use common::reference;
use twilio_signature::{verify, Error, Request, Secret, Span, Validator};

/// Generous: catches super-linear behaviour, not noise. Only checked in optimised builds.
fn assert_quick(started: Instant, what: &str) {
    let took = started.elapsed();
    println!("{what}: {took:?}");
    if !cfg!(debug_assertions) {
        assert!(took < Duration::from_secs(5), "{what} took {took:?}");
    }
}

#[test]
fn a_hundred_thousand_params() {
    let body: String = (0..100_000)
        .map(|i| format!("Param{}={}", i % 1000, i))
        .collect::<Vec<_>>()
        .join("&");
    let url = "https://example.com/sms";
    let strings = reference::signed_strings(url.as_bytes(), body.as_bytes())
        .expect("well formed")
        .0;
    let signature = reference::mac(false, b"k", &strings[0]);
    let request = Request::post(url, &body).signature(&signature);
    let validator = Validator::new(Secret::new(b"k"));

    let started = Instant::now();
    assert_eq!(validator.verify(&request).err(), Some(Error::TooManyParams));
    assert_quick(started, "100k params, default buffer");

    let mut scratch = vec![Span::EMPTY; 100_000];
    let started = Instant::now();
    assert!(validator
        .verify_with_scratch(&request, &mut scratch)
        .is_ok());
    assert_quick(started, "100k params, verified");
}

#[test]
fn identical_long_names_do_not_make_sorting_quadratic() {
    // Every comparison walks a 1000-byte name: n log n comparisons, not n².
    let name = "%41".repeat(1000);
    let body: String = (0..5_000)
        .map(|i| format!("{name}={}", i % 3))
        .collect::<Vec<_>>()
        .join("&");
    let mut scratch = vec![Span::EMPTY; 5_000];
    let validator = Validator::new(Secret::new(b"k"));
    let started = Instant::now();
    let result = validator.verify_with_scratch(
        &Request::post("https://h/", &body).signature("RSOYDt4T1cUTdK1PDd93/VVr8B8="),
        &mut scratch,
    );
    assert_eq!(result.err(), Some(Error::SignatureMismatch));
    assert_quick(started, "5k params with 3 KB escaped names");
}

#[test]
fn a_one_mebibyte_body_form_and_json() {
    let value = "x%20".repeat(256 * 1024);
    let form = format!("Body={value}");
    let url = "https://example.com/sms";
    let signature = reference::mac(
        false,
        b"k",
        &reference::signed_strings(url.as_bytes(), form.as_bytes())
            .expect("ok")
            .0[0],
    );
    let started = Instant::now();
    assert!(verify(b"k", &Request::post(url, &form).signature(&signature)).is_ok());
    assert_quick(started, "1 MiB form");

    let json = format!("{{\"a\":\"{}\"}}", "y".repeat(1 << 20));
    let json_url = format!(
        "https://example.com/hook?bodySHA256={}",
        reference::sha256_hex(json.as_bytes())
    );
    let signature = reference::mac(false, b"k", json_url.as_bytes());
    let started = Instant::now();
    assert!(verify(b"k", &Request::post(&json_url, &json).signature(&signature)).is_ok());
    assert_eq!(
        verify(
            b"k",
            &Request::post(&json_url, &json[1..]).signature(&signature)
        )
        .err(),
        Some(Error::BodyHashMismatch)
    );
    assert_quick(started, "1 MiB JSON");
}

#[test]
fn invalid_utf8_and_nul_bytes() {
    let sig = "RSOYDt4T1cUTdK1PDd93/VVr8B8=";
    for body in [
        &b"a=\xff"[..],
        b"\xc3=1",
        b"a=%ff",
        b"a=%C3%28",
        b"a=%ED%A0%80",
    ] {
        assert_eq!(
            verify(b"k", &Request::post("https://h/", body).signature(sig)).err(),
            Some(Error::MalformedBody),
            "{body:?}"
        );
    }
    // NUL is valid UTF-8: it is data, signed like any byte.
    let body = b"a=%00&b=\0";
    let url = b"https://h/\0path";
    let strings = reference::signed_strings(url, body).expect("well formed").0;
    let signature = reference::mac(false, b"k\0k", &strings[0]);
    assert!(verify(b"k\0k", &Request::post(url, body).signature(&signature)).is_ok());
    // A non-UTF-8 URL is opaque bytes too.
    let url = b"https://h/\xff";
    let signature = reference::mac(false, b"k", url);
    assert!(verify(b"k", &Request::get(url).signature(&signature)).is_ok());
}

#[test]
fn garbage_headers_are_malformed_not_mismatched() {
    let garbage: [&[u8]; 9] = [
        b"",
        b" ",
        b"\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0",
        b"RSOYDt4T1cUTdK1PDd93/VVr8B8",
        b"RSOYDt4T1cUTdK1PDd93/VVr8B8==",
        b"RSOYDt4T1cUTdK1PDd93_VVr8B8=",
        b" RSOYDt4T1cUTdK1PDd93/VVr8B8=",
        b"RSOYDt4T1cUTdK1PDd93/VVr8B9=",
        &[0xff; 28],
    ];
    for sig in garbage {
        assert_eq!(
            verify(b"k", &Request::get("https://h/").signature(sig)).err(),
            Some(Error::MalformedSignature),
            "{sig:?}"
        );
    }
    assert_eq!(
        verify(b"k", &Request::get("https://h/")).err(),
        Some(Error::MissingSignature)
    );
    for settings in [
        &b"algorithm"[..],
        b"algorithm=",
        b"\xff",
        b"algorithm=HMAC_SHA1,algorithm=HMAC_SHA1",
        b"key=\n",
    ] {
        let request = Request::get("https://h/")
            .signature("RSOYDt4T1cUTdK1PDd93/VVr8B8=")
            .settings(Some(settings));
        assert_eq!(
            verify(b"k", &request).err(),
            Some(Error::MalformedSettings),
            "{settings:?}"
        );
    }
    let request = Request::get("https://h/")
        .signature("RSOYDt4T1cUTdK1PDd93/VVr8B8=")
        .settings(Some(b"algorithm=HMAC_MD5"));
    assert_eq!(
        verify(b"k", &request).err(),
        Some(Error::UnsupportedAlgorithm)
    );
    let huge = vec![b'a'; 1 << 20];
    assert_eq!(
        verify(b"k", &Request::get("https://h/").signature(&huge)).err(),
        Some(Error::MalformedSignature)
    );
    let unknown = [&b"x="[..], &huge].concat();
    let request = Request::get("https://h/")
        .signature("RSOYDt4T1cUTdK1PDd93/VVr8B8=")
        .settings(Some(&unknown));
    assert_eq!(
        verify(b"k", &request).err(),
        Some(Error::SignatureMismatch),
        "unknown names are ignored"
    );
    let request = Request::get("https://h/")
        .signature("RSOYDt4T1cUTdK1PDd93/VVr8B8=")
        .settings(Some(&huge));
    assert_eq!(
        verify(b"k", &request).err(),
        Some(Error::MalformedSettings),
        "an item without '='"
    );
}
