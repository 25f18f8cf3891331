//! The C ABI with arbitrary pointer-and-length shapes: NULL with and without a length, a dangling
//! non-NULL pointer with length 0, a length shorter than the buffer, output buffers of any capacity
//! (NULL or not). Every call must return the status the core's verdict on the same bytes implies,
//! write outputs only on success (or the length on `TWS_BUFFER_TOO_SMALL`), and never panic
//! (`TWS_PANIC` fails this target too).
#![no_main]

use std::ptr::{self, NonNull};

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use twilio_signature::{Error, Request, Secret, Span, Validator};
use tws_ffi::{
    tws_explain, tws_sign, tws_validator, tws_validator_add_secret, tws_validator_explain,
    tws_validator_free, tws_validator_new, tws_validator_verify, tws_verified, tws_verify,
    TWS_DEFAULT_MAX_PARAMS,
};

const OK: i32 = 0;
const NULL_PARAMETER: i32 = 100;
const PANIC: i32 = 101;
const BUFFER_TOO_SMALL: i32 = 102;
const INVALID_KEY_ID: i32 = 103;
const UNUSABLE_SECRET: i32 = 106;

/// How a buffer is handed over.
#[derive(Debug, Arbitrary)]
enum Shape {
    Null { len: u8 },
    Dangling,
    Exact(Vec<u8>),
    Shorter { bytes: Vec<u8>, len: u8 },
}

/// A buffer as the C side passes it, and what the library should make of it.
struct Passed {
    ptr: *const u8,
    len: usize,
    /// `Err(())` when the pointer is NULL with a length (`TWS_NULL_PARAMETER`), `Ok(None)` for NULL
    /// with length 0 (absent or empty), `Ok(Some(bytes))` otherwise.
    seen: Result<Option<Vec<u8>>, ()>,
}

impl Shape {
    fn pass(&self) -> Passed {
        match self {
            Self::Null { len } => Passed {
                ptr: ptr::null(),
                len: usize::from(*len),
                seen: if *len == 0 { Ok(None) } else { Err(()) },
            },
            Self::Dangling => Passed {
                ptr: NonNull::<u8>::dangling().as_ptr(),
                len: 0,
                seen: Ok(Some(Vec::new())),
            },
            Self::Exact(bytes) => Passed {
                ptr: bytes.as_ptr(),
                len: bytes.len(),
                seen: Ok(Some(bytes.clone())),
            },
            Self::Shorter { bytes, len } => {
                let len = usize::from(*len).min(bytes.len());
                Passed {
                    ptr: bytes.as_ptr(),
                    len,
                    seen: Ok(Some(bytes[..len].to_vec())),
                }
            }
        }
    }
}

#[derive(Debug, Arbitrary)]
struct Out {
    null: bool,
    capacity: u8,
    null_written: bool,
}

#[derive(Debug, Arbitrary)]
struct Input {
    secret: Shape,
    url: Shape,
    body: Shape,
    signature: Shape,
    settings: Shape,
    out: Out,
    /// Key ids for a second and third secret in the handle (`None`: no key id).
    more_secrets: Vec<(Option<Shape>, Vec<u8>)>,
    /// Replace the signature with the right one (when every buffer is readable), so that the success
    /// paths are fuzzed too.
    right_signature: bool,
}

fn status(error: Error) -> i32 {
    match error {
        Error::MissingSignature => 1,
        Error::MalformedSignature => 2,
        Error::MalformedSettings => 3,
        Error::UnsupportedAlgorithm => 4,
        Error::MalformedBody => 5,
        Error::BodyTooLarge => 6,
        Error::TooManyParams => 7,
        Error::BodyRequired => 8,
        Error::NoEligibleSecret => 9,
        Error::SignatureMismatch => 10,
        Error::BodyHashMismatch => 11,
        _ => 105,
    }
}

/// The request as the core sees it, once every buffer is known to be readable.
struct Model {
    secret: Vec<u8>,
    url: Vec<u8>,
    body: Vec<u8>,
    signature: Option<Vec<u8>>,
    settings: Option<Vec<u8>>,
}

impl Model {
    fn request(&self) -> Request<'_> {
        let request = Request::post(&self.url, &self.body).settings(self.settings.as_deref());
        match &self.signature {
            Some(signature) => request.signature(signature),
            None => request,
        }
    }

    fn scratch(&self) -> Vec<Span> {
        scratch_for(&self.body)
    }

    fn validator(&self) -> Validator {
        Validator::new(Secret::new(&self.secret))
    }
}

/// The scratch the C ABI sorts in: one span per `&`-separated segment, at most the default maximum.
fn scratch_for(body: &[u8]) -> Vec<Span> {
    let segments = body.iter().filter(|&&b| b == b'&').count() + 1;
    vec![Span::EMPTY; segments.min(TWS_DEFAULT_MAX_PARAMS)]
}

/// Checks a text-writing call: `text` is what a successful call must write.
fn check_text(got: i32, text: Result<Vec<u8>, i32>, out: &Out, buf: &[u8], written: usize) {
    let untouched = buf.iter().all(|&b| b == 0xA5);
    let expected = match text {
        Err(code) => code,
        Ok(_) if out.null_written => NULL_PARAMETER,
        Ok(_) if out.null && out.capacity > 0 => NULL_PARAMETER,
        Ok(ref text) if usize::from(out.capacity) <= text.len() => BUFFER_TOO_SMALL,
        Ok(_) => OK,
    };
    assert_ne!(got, PANIC, "a panic crossed into the C ABI's guard");
    assert_eq!(got, expected, "status");
    match (got, text) {
        (OK, Ok(text)) => {
            assert_eq!(written, text.len());
            assert_eq!(&buf[..text.len()], &text[..]);
            assert_eq!(buf[text.len()], 0, "NUL-terminated");
        }
        (BUFFER_TOO_SMALL, Ok(text)) => {
            assert_eq!(written, text.len());
            assert!(untouched, "nothing written to a too-small buffer");
        }
        _ => assert!(untouched, "nothing written on failure"),
    }
}

fuzz_target!(|input: Input| {
    let mut input = input;
    if input.right_signature {
        if let Some(right) = right_signature(&input) {
            input.signature = Shape::Exact(right);
        }
    }
    let [secret, url, body, signature, settings] = [
        &input.secret,
        &input.url,
        &input.body,
        &input.signature,
        &input.settings,
    ]
    .map(Shape::pass);

    // What the core says about the same bytes, or `TWS_NULL_PARAMETER`.
    let required = |p: &Passed| p.seen.clone().map(Option::unwrap_or_default);
    let model_with = |secret: Result<Vec<u8>, ()>,
                      signature: Result<Option<Vec<u8>>, ()>|
     -> Result<Model, ()> {
        Ok(Model {
            secret: secret?,
            url: required(&url)?,
            body: required(&body)?,
            signature: signature?,
            settings: settings.seen.clone()?,
        })
    };
    let model = model_with(required(&secret), signature.seen.clone());

    // tws_verify
    let expected = match &model {
        Err(()) => NULL_PARAMETER,
        Ok(m) => {
            match twilio_signature::verify_with_scratch(&m.secret, &m.request(), &mut m.scratch()) {
                Ok(_) => OK,
                Err(e) => status(e),
            }
        }
    };
    // SAFETY: every non-NULL pointer points to at least its length in readable bytes.
    let got = unsafe {
        tws_verify(
            secret.ptr,
            secret.len,
            url.ptr,
            url.len,
            body.ptr,
            body.len,
            signature.ptr,
            signature.len,
            settings.ptr,
            settings.len,
        )
    };
    assert_eq!(got, expected, "tws_verify");

    // tws_sign and tws_explain into the shaped output buffer.
    let mut buf = vec![0xA5u8; usize::from(input.out.capacity)];
    let out_ptr = if input.out.null {
        ptr::null_mut()
    } else {
        buf.as_mut_ptr()
    };
    let mut written = 0usize;
    let written_ptr: *mut usize = if input.out.null_written {
        ptr::null_mut()
    } else {
        &mut written
    };
    // tws_sign takes no signature.
    let signed = match &model_with(required(&secret), Ok(None)) {
        Err(()) => Err(NULL_PARAMETER),
        Ok(m) => m
            .validator()
            .sign_with_scratch(&m.request(), &mut m.scratch())
            .map(|s| s.as_bytes().to_vec())
            .map_err(status),
    };
    // SAFETY: as above; `out_ptr` is NULL or holds `capacity` bytes; `written_ptr` NULL or writable.
    let got = unsafe {
        tws_sign(
            secret.ptr,
            secret.len,
            url.ptr,
            url.len,
            body.ptr,
            body.len,
            settings.ptr,
            settings.len,
            out_ptr,
            buf.len(),
            written_ptr,
        )
    };
    check_text(got, signed, &input.out, &buf, written);

    buf.fill(0xA5);
    written = 0;
    let explained = match &model {
        Err(()) => Err(NULL_PARAMETER),
        Ok(m) => Ok(m
            .validator()
            .explain_with_scratch(&m.request(), &mut m.scratch())
            .to_string()
            .into_bytes()),
    };
    let written_ptr: *mut usize = if input.out.null_written {
        ptr::null_mut()
    } else {
        &mut written
    };
    // SAFETY: as above.
    let got = unsafe {
        tws_explain(
            secret.ptr,
            secret.len,
            url.ptr,
            url.len,
            body.ptr,
            body.len,
            signature.ptr,
            signature.len,
            settings.ptr,
            settings.len,
            out_ptr,
            buf.len(),
            written_ptr,
        )
    };
    check_text(got, explained, &input.out, &buf, written);

    // A validator handle: the shaped secret (no key id), then up to two more with shaped key ids.
    let mut handle: *mut tws_validator = ptr::null_mut();
    // SAFETY: `handle` is writable.
    assert_eq!(unsafe { tws_validator_new(&mut handle) }, OK);
    let mut secrets = Vec::new();
    // SAFETY: `handle` is live; the secret's pointer holds its length.
    let added = unsafe { tws_validator_add_secret(handle, ptr::null(), 0, secret.ptr, secret.len) };
    match required(&secret) {
        Ok(bytes) if !Secret::is_usable(&bytes) => assert_eq!(added, UNUSABLE_SECRET),
        Ok(bytes) => {
            assert_eq!(added, OK);
            secrets.push(Secret::new(&bytes));
        }
        Err(()) => assert_eq!(added, NULL_PARAMETER),
    }
    for (key_id, value) in input.more_secrets.iter().take(2) {
        let id = key_id.as_ref().map(Shape::pass);
        let (id_ptr, id_len) = id.as_ref().map_or((ptr::null(), 0), |p| (p.ptr, p.len));
        // SAFETY: as above.
        let added = unsafe {
            tws_validator_add_secret(handle, id_ptr, id_len, value.as_ptr(), value.len())
        };
        match id.map_or(Ok(None), |p| p.seen) {
            Err(()) => assert_eq!(added, NULL_PARAMETER),
            Ok(_) if !Secret::is_usable(value) => assert_eq!(added, UNUSABLE_SECRET),
            Ok(None) => {
                assert_eq!(added, OK);
                secrets.push(Secret::new(value));
            }
            Ok(Some(id)) => match Secret::with_key_id(&id, value) {
                Ok(s) => {
                    assert_eq!(added, OK);
                    secrets.push(s);
                }
                Err(_) => assert_eq!(added, INVALID_KEY_ID),
            },
        }
    }
    let validator = Validator::with_secrets(&secrets);
    // The handle's calls take no secret.
    let model = model_with(Ok(Vec::new()), signature.seen.clone());
    let mut verified = tws_verified {
        secret_index: usize::MAX,
        ..blank_verified()
    };
    let expected = match &model {
        Err(()) => Err(NULL_PARAMETER),
        Ok(m) => validator
            .verify_with_scratch(&m.request(), &mut m.scratch())
            .map_err(status),
    };
    // SAFETY: `handle` is live; buffers as above; `verified` is writable.
    let got = unsafe {
        tws_validator_verify(
            handle,
            url.ptr,
            url.len,
            body.ptr,
            body.len,
            signature.ptr,
            signature.len,
            settings.ptr,
            settings.len,
            &mut verified,
        )
    };
    match expected {
        Ok(v) => {
            assert_eq!(got, OK, "tws_validator_verify");
            assert_eq!(verified.secret_index, v.secret_index);
            assert_eq!(verified.replay_key, v.replay_key());
        }
        Err(code) => {
            assert_eq!(got, code, "tws_validator_verify");
            assert_eq!(verified.secret_index, usize::MAX, "untouched on failure");
        }
    }
    buf.fill(0xA5);
    written = 0;
    let explained = match &model {
        Err(()) => Err(NULL_PARAMETER),
        Ok(m) => Ok(validator
            .explain_with_scratch(&m.request(), &mut m.scratch())
            .to_string()
            .into_bytes()),
    };
    let written_ptr: *mut usize = if input.out.null_written {
        ptr::null_mut()
    } else {
        &mut written
    };
    // SAFETY: as above.
    let got = unsafe {
        tws_validator_explain(
            handle,
            url.ptr,
            url.len,
            body.ptr,
            body.len,
            signature.ptr,
            signature.len,
            settings.ptr,
            settings.len,
            out_ptr,
            buf.len(),
            written_ptr,
        )
    };
    check_text(got, explained, &input.out, &buf, written);
    // SAFETY: a live handle, freed once.
    unsafe { tws_validator_free(handle) };
});

/// The signature the core computes for the input's bytes, if every buffer is readable and it signs.
fn right_signature(input: &Input) -> Option<Vec<u8>> {
    let bytes = |shape: &Shape| shape.pass().seen.ok().map(Option::unwrap_or_default);
    let model = Model {
        secret: bytes(&input.secret)?,
        url: bytes(&input.url)?,
        body: bytes(&input.body)?,
        signature: None,
        settings: input.settings.pass().seen.ok()?,
    };
    let signature = model
        .validator()
        .sign_with_scratch(&model.request(), &mut model.scratch());
    signature.ok().map(|s| s.as_bytes().to_vec())
}

/// A `tws_verified` for the call to overwrite.
fn blank_verified() -> tws_verified {
    tws_verified {
        secret_index: 0,
        candidate: tws_ffi::tws_candidate::TWS_CANDIDATE_AS_GIVEN,
        algorithm: tws_ffi::tws_algorithm::TWS_ALGORITHM_HMAC_SHA1,
        replay_key: [0; 32],
    }
}
