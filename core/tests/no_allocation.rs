//! verify, sign and explain allocate nothing: a counting global allocator watches this thread while they run.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use twilio_signature::{explain, sign, verify, BodyHash, Request, Secret, Validator};

struct Counting;

thread_local! {
    static WATCHING: Cell<bool> = const { Cell::new(false) };
    // Per thread: tests run in parallel, and one that allocates on purpose must not count in another.
    static ALLOCATIONS: Cell<usize> = const { Cell::new(0) };
}

// SAFETY: forwards every call to the system allocator unchanged; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if WATCHING.with(Cell::get) {
            ALLOCATIONS.with(|n| n.set(n.get() + 1));
        }
        // SAFETY: same contract as ours.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as ours.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if WATCHING.with(Cell::get) {
            ALLOCATIONS.with(|n| n.set(n.get() + 1));
        }
        // SAFETY: same contract as ours.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Runs `f` and returns how many allocations this thread made meanwhile.
fn allocations_during(f: impl FnOnce()) -> usize {
    let before = ALLOCATIONS.with(Cell::get);
    WATCHING.with(|w| w.set(true));
    f();
    WATCHING.with(|w| w.set(false));
    ALLOCATIONS.with(Cell::get) - before
}

#[test]
fn the_counter_sees_an_allocation() {
    let n = allocations_during(|| drop(std::hint::black_box(vec![1u8; 16])));
    assert_eq!(n, 1);
}

#[test]
fn verify_sign_and_explain_allocate_nothing() {
    let form_url = "https://mycompany.com/myapp.php?foo=1&bar=2";
    let form = "Digits=1234&CallSid=CA1234567890ABCDE&To=%2B18005551212&Caller=%2B14158675309&From=%2B14158675309&Body=caf%C3%A9+%F0%9F%98%80";
    let json = r#"{"property": "value", "boolField": true}"#;
    let json_url = format!(
        "https://example.com/hook?bodySHA256={}",
        BodyHash::of(json.as_bytes())
    );
    let json_url = json_url.as_str();
    let pairs = [
        ("To", "+18005551212"),
        ("Digits", "1234"),
        ("To", "+18005551212"),
    ];
    let secrets = [
        Secret::new(b"old"),
        Secret::with_key_id(b"k2", b"12345").expect("short id"),
    ];
    let validator = Validator::with_secrets(&secrets);
    let sha256 = Some(&b"key=k2,algorithm=HMAC_SHA256"[..]);
    // Signed before counting: a handshake over its wss:// URL, a doubled path's URL, a dropped port.
    let handshake = sign(b"old", &Request::get("wss://h.example/media")).expect("sign");
    let undoubled =
        sign(b"old", &Request::post("https://h.example/twilio/sms", form)).expect("sign");
    let with_port = sign(b"old", &Request::post("https://h.example:8443/sms", form)).expect("sign");

    let n = allocations_during(|| {
        let signed = validator
            .sign(&Request::post(form_url, form))
            .expect("sign");
        assert!(verify(
            b"old",
            &Request::post(form_url, form).signature(signed.as_bytes())
        )
        .is_ok());
        let json_sig =
            sign(b"12345", &Request::post(json_url, json).settings(sha256)).expect("sign json");
        assert!(validator
            .verify(
                &Request::post(json_url, json)
                    .signature(json_sig.as_bytes())
                    .settings(sha256)
            )
            .is_ok());
        let pair_sig = sign(b"12345", &Request::with_params(form_url, &pairs)).expect("sign pairs");
        assert!(validator
            .verify(&Request::with_params(form_url, &pairs).signature(pair_sig.as_bytes()))
            .is_ok());
        // Failures and every diagnostic path.
        let http = "http://mycompany.com/myapp.php?foo=1&bar=2";
        let report = validator.explain(&Request::post(http, form).signature(signed.as_bytes()));
        assert!(report.diagnosis.is_some());
        let report = explain(
            b"wrong",
            &Request::post(form_url, form).signature(signed.as_bytes()),
        );
        assert!(report.diagnosis.is_none());
        // The WebSocket, doubled-path and port diagnoses, and their reports' URLs.
        for (url, body, signature) in [
            ("https://h.example/media", "", &handshake),
            ("https://h.example/twilio/sms/twilio/sms", form, &undoubled),
            ("https://h.example/sms", form, &with_port),
        ] {
            let report =
                validator.explain(&Request::post(url, body).signature(signature.as_bytes()));
            assert!(report.diagnosis.is_some() && report.correction.is_some());
        }
        assert!(verify(
            b"12345",
            &Request::post(json_url, "{}")
                .signature(json_sig.as_bytes())
                .settings(sha256)
        )
        .is_err());
        assert!(verify(
            b"12345",
            &Request::post(form_url, "a=%FF").signature(signed.as_bytes())
        )
        .is_err());
    });
    assert_eq!(n, 0, "allocations during verify/sign/explain");
}

#[test]
fn a_validator_that_owns_its_secrets_allocates_nothing_either() {
    let url = "https://mycompany.com/myapp.php?foo=1&bar=2";
    let body = "Digits=1234&CallSid=CA1234567890ABCDE&To=%2B18005551212";
    let secrets: Vec<Secret> = ["old", "12345"]
        .iter()
        .map(|t| Secret::new(t.as_bytes()))
        .collect();
    let validator = std::sync::Arc::new(Validator::with_secrets(secrets));
    let signature = sign(b"12345", &Request::post(url, body)).expect("sign");

    let n = allocations_during(|| {
        let request = Request::post(url, body).signature(signature.as_bytes());
        assert_eq!(validator.verify(&request).map(|v| v.secret_index), Ok(1));
        assert!(validator.sign(&Request::post(url, body)).is_ok());
        let http = "http://mycompany.com/myapp.php?foo=1&bar=2";
        let report = validator.explain(&Request::post(http, body).signature(signature.as_bytes()));
        assert!(report.diagnosis.is_some());
    });
    assert_eq!(
        n, 0,
        "allocations during verify/sign/explain with owned secrets"
    );
}

#[test]
fn the_new_diagnoses_allocate_nothing() {
    let form = "Body=Hello&From=%2B15551234567";
    let validator = Validator::new(Secret::new(b"12345"));
    let proxied = validator
        .sign(&Request::post("https://example.com/sms", form))
        .expect("sign");
    let json = r#"{"a":1}"#;
    let json_url = format!(
        "https://example.com/events?bodySHA256={}",
        BodyHash::of(json.as_bytes())
    );
    let json_sig = validator
        .sign(&Request::post(json_url.as_str(), json))
        .expect("sign json");
    let ampersands = vec![b'&'; 1 << 20];
    let n = allocations_during(|| {
        // The proxy case: an internal URL that nothing matches.
        let report = validator.explain(
            &Request::post("http://10.0.0.5:8080/sms", form).signature(proxied.as_bytes()),
        );
        assert!(report.internal_url.is_some());
        // A JSON webhook whose URL lost its bodySHA256.
        let report = validator.explain(
            &Request::post("https://example.com/events", json).signature(json_sig.as_bytes()),
        );
        assert!(report.diagnosis.is_some());
        // A body of `&`s: no parameters, the small stack scratch.
        let request = Request::post(b"https://example.com/sms".as_slice(), ampersands.as_slice());
        assert_eq!(request.max_params(), 0);
        assert!(validator
            .explain(&request.signature(proxied.as_bytes()))
            .verdict
            .is_err());
    });
    assert_eq!(n, 0, "allocations during explain");
}
