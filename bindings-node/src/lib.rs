//! The Node-API layer (napi-rs) of the npm package `twilio-signature`: a thin layer over the core.
//!
//! It only converts: JS strings or Buffers in, the core's verdict out. Errors of verification are
//! returned as small numbers (see [`error_code`]) and turned into `SignatureError` subclasses by the JS
//! side (`lib/errors.js`), in one place: building a JS error here for every refused webhook would cost
//! more than the check. Nothing returned or thrown ever carries a secret.

// #[napi] functions take their arguments by value: napi-rs converts each JS value into an owned one.
#![allow(clippy::needless_pass_by_value)]
// In `cargo test` builds napi-rs registers nothing (its module constructor is cfg(not(test))), so the
// hot path that only `fast::init` reaches looks unused there.
#![cfg_attr(test, allow(dead_code))]

mod fast;

use std::cell::RefCell;
use std::fmt;
use std::rc::Rc;

use napi::bindgen_prelude::{Buffer, Either, Unknown};
use napi::{Error as NapiError, JsValue, Status};
use napi_derive::napi;
use twilio_signature::{Candidate, Error, Overflow, Payload, Request, Secret, Span, Verified};

/// A URL, body, signature or settings value (`Either<String, Buffer>` for the calls that are not hot).
type Bytes = Either<String, Buffer>;

fn bytes(value: &Bytes) -> &[u8] {
    match value {
        Either::A(text) => text.as_bytes(),
        Either::B(buffer) => buffer,
    }
}

fn optional(value: Option<&Bytes>) -> Option<&[u8]> {
    value.map(bytes)
}

/// The one mapping from the core's error to the number the JS side turns into an error class
/// (`lib/errors.js` keeps the same table). 0 is success.
fn error_code(error: Error) -> u32 {
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
        // The core's enum is non-exhaustive: a new variant still lands in the right group.
        _ if error.is_mismatch() => 10,
        _ => 12,
    }
}

/// A verified request as one number: bit 7 set (error codes stay below it), the candidate in bits 4-5
/// (`as_given`, `port_toggled`, `without_userinfo`, `without_userinfo_port_toggled`), the algorithm in
/// bit 0 (HMAC-SHA1 0, HMAC-SHA256 1) and the secret's index from bit 8. The JS side decodes it
/// (`lib/validator.js`): one number crosses back instead of an object built property by property.
fn verified_code(verified: &Verified) -> u32 {
    let candidate = match verified.candidate {
        Candidate::AsGiven => 0,
        Candidate::PortToggled => 1,
        Candidate::WithoutUserinfo => 2,
        Candidate::WithoutUserinfoPortToggled => 3,
    };
    let algorithm = u32::from(verified.algorithm == twilio_signature::Algorithm::HmacSha256);
    0x80 | (candidate << 4) | algorithm | ((verified.secret_index as u32) << 8)
}

/// The core's validator over one or more secrets, each with an optional key id. The JS `Validator`
/// wraps it; it never hands the secrets back (its Debug names only how many there are).
#[napi]
#[derive(Debug)]
pub struct NativeValidator {
    shared: Rc<Shared>,
    id: u32,
}

/// What a validator holds, shared between its JS object and the registry the hot functions look it up
/// in ([`verify`], [`check`], [`check_pairs`]): a plain function call skips the borrow bookkeeping
/// napi-rs does for every method call on a class (6% of a verify, measured with perf).
struct Shared {
    secrets: Box<[Secret]>,
    key_ids: Box<[Option<String>]>,
    max_params: usize,
}

thread_local! {
    /// Validators by id: each JS thread (main or worker) has its own. A slot is freed when the JS
    /// object is collected (`Drop for NativeValidator`).
    static REGISTRY: RefCell<Vec<Option<Rc<Shared>>>> = const { RefCell::new(Vec::new()) };
}

fn registered(id: u32) -> Option<Rc<Shared>> {
    REGISTRY.with(|registry| registry.borrow().get(id as usize).cloned().flatten())
}

impl Drop for NativeValidator {
    fn drop(&mut self) {
        // At thread exit the registry may already be gone: nothing left to free then.
        let _ = REGISTRY.try_with(|registry| {
            if let Ok(mut registry) = registry.try_borrow_mut() {
                if let Some(slot) = registry.get_mut(self.id as usize) {
                    *slot = None;
                }
            }
        });
    }
}

impl fmt::Debug for Shared {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NativeValidator")
            .field("secrets", &self.secrets.len())
            .field("key_ids", &self.key_ids)
            .field("max_params", &self.max_params)
            .finish()
    }
}

fn invalid(message: &str) -> NapiError {
    NapiError::new(Status::InvalidArg, message.to_owned())
}

#[napi]
impl NativeValidator {
    /// `secrets[i]` has the key id `key_ids[i]` (or none). Every secret must be usable: not empty
    /// after trimming ASCII whitespace. Errors never carry a secret.
    #[napi(constructor)]
    pub fn new(
        secrets: Vec<Buffer>,
        key_ids: Vec<Option<String>>,
        max_params: u32,
    ) -> napi::Result<Self> {
        if secrets.is_empty() {
            return Err(invalid("at least one secret is required"));
        }
        if secrets.len() != key_ids.len() {
            return Err(invalid("one key id (or null) per secret"));
        }
        if max_params == 0 {
            return Err(invalid("maxParams must be at least 1"));
        }
        let mut keys = Vec::with_capacity(secrets.len());
        for (secret, id) in secrets.iter().zip(&key_ids) {
            let secret: &[u8] = secret;
            if !Secret::is_usable(secret) {
                return Err(invalid(
                    "a secret must not be empty or only whitespace (is TWILIO_AUTH_TOKEN set?)",
                ));
            }
            keys.push(match id {
                None => Secret::new(secret),
                Some(id) => Secret::with_key_id(id.as_bytes(), secret)
                    .map_err(|e| invalid(&e.to_string()))?,
            });
        }
        let shared = Rc::new(Shared {
            secrets: keys.into_boxed_slice(),
            key_ids: key_ids.into_boxed_slice(),
            max_params: max_params as usize,
        });
        let id = REGISTRY.with(|registry| {
            let mut registry = registry.borrow_mut();
            let free = registry.iter().position(Option::is_none);
            let id = free.unwrap_or(registry.len());
            if free.is_none() {
                registry.push(None);
            }
            registry[id] = Some(Rc::clone(&shared));
            id
        });
        Ok(Self {
            shared,
            id: u32::try_from(id).map_err(|_| invalid("too many validators"))?,
        })
    }

    /// `check` for pairs a framework already parsed: `pairs` is `[name0, value0, name1, value1, ...]`.
    #[napi]
    pub fn check_params(
        &self,
        url: Bytes,
        pairs: Vec<String>,
        signature: Option<Bytes>,
        settings: Option<Bytes>,
    ) -> u32 {
        self.shared
            .verify_pairs(&url, &pairs, signature.as_ref(), settings.as_ref())
            .map_or_else(error_code, |_| 0)
    }

    /// `verify` for parsed pairs (flattened as in `check_params`).
    #[napi]
    pub fn verify_params(
        &self,
        url: Bytes,
        pairs: Vec<String>,
        signature: Option<Bytes>,
        settings: Option<Bytes>,
        out: Unknown<'_>,
        offset: u32,
    ) -> u32 {
        let raw = out.value();
        fast::outcome(
            self.shared
                .verify_pairs(&url, &pairs, signature.as_ref(), settings.as_ref()),
            raw.env,
            raw.value,
            offset as usize,
        )
    }

    /// The signature of a request (raw body), or the error code (the JS side throws from it).
    #[napi]
    pub fn sign(&self, url: Bytes, body: Bytes, settings: Option<Bytes>) -> Either<u32, String> {
        let request =
            Request::post(bytes(&url), bytes(&body)).settings(optional(settings.as_ref()));
        match self.shared.with_scratch(&request, |scratch| {
            self.shared.core().sign_with_scratch(&request, scratch)
        }) {
            Ok(signature) => Either::B(signature.as_str().to_owned()),
            Err(error) => Either::A(error_code(error)),
        }
    }

    /// `sign` for parsed pairs (flattened as in `check_params`).
    #[napi]
    pub fn sign_params(
        &self,
        url: Bytes,
        pairs: Vec<String>,
        settings: Option<Bytes>,
    ) -> Either<u32, String> {
        if pairs.len() / 2 > self.shared.max_params {
            return Either::A(error_code(Error::TooManyParams));
        }
        let borrowed = borrow_pairs(&pairs);
        let request =
            Request::with_params(bytes(&url), &borrowed).settings(optional(settings.as_ref()));
        match self.shared.with_scratch(&request, |scratch| {
            self.shared.core().sign_with_scratch(&request, scratch)
        }) {
            Ok(signature) => Either::B(signature.as_str().to_owned()),
            Err(error) => Either::A(error_code(error)),
        }
    }

    /// The core's explanation as text: the verdict line, then (when known) the likely cause and fix.
    #[napi]
    pub fn explain(
        &self,
        url: Bytes,
        body: Bytes,
        signature: Option<Bytes>,
        settings: Option<Bytes>,
    ) -> String {
        let request = Request {
            url: bytes(&url),
            payload: Payload::Body(bytes(&body)),
            signature: optional(signature.as_ref()),
            settings: optional(settings.as_ref()),
        };
        self.shared
            .with_scratch(&request, |scratch| {
                self.shared.core().explain_with_scratch(&request, scratch)
            })
            .to_string()
    }

    /// The id the hot functions ([`verify`], [`check`], [`check_pairs`]) take.
    #[napi(getter)]
    pub fn id(&self) -> u32 {
        self.id
    }

    /// The largest number of form parameters a request may have.
    #[napi(getter)]
    pub fn max_params(&self) -> u32 {
        self.shared.max_params as u32
    }

    /// The key ids, one per secret (null for secrets without one). Never the secrets.
    #[napi(getter)]
    pub fn key_ids(&self) -> Vec<Option<String>> {
        self.shared.key_ids.to_vec()
    }
}

impl Shared {
    fn core(&self) -> twilio_signature::Validator<&[Secret]> {
        twilio_signature::Validator::with_secrets(&self.secrets)
    }

    fn run(&self, request: &Request<'_>) -> Result<Verified, Error> {
        self.with_scratch(request, |scratch| {
            self.core().verify_with_scratch(request, scratch)
        })
    }

    fn verify_pairs(
        &self,
        url: &Bytes,
        pairs: &[String],
        signature: Option<&Bytes>,
        settings: Option<&Bytes>,
    ) -> Result<Verified, Error> {
        if pairs.len() / 2 > self.max_params {
            return Err(Error::TooManyParams);
        }
        let borrowed = borrow_pairs(pairs);
        let request = Request {
            url: bytes(url),
            payload: Payload::Params(&borrowed),
            signature: optional(signature),
            settings: optional(settings),
        };
        self.run(&request)
    }

    /// Runs `f` with a scratch buffer for at most `max_params` parameters, sized by the core's rule
    /// (`twilio_signature::with_scratch`: none for a GET, the stack up to 512, then a heap buffer sized
    /// to the form and capped at `max_params`, so a body of `&`s cannot make it allocate).
    fn with_scratch<R: Overflow>(
        &self,
        request: &Request<'_>,
        f: impl FnMut(&mut [Span]) -> R,
    ) -> R {
        // The core's one sizing rule; this face supplies only the heap.
        twilio_signature::with_scratch(self.max_params, request, f, |len, f| {
            f(&mut vec![Span::EMPTY; len])
        })
    }
}

fn request<'a>(
    url: &'a [u8],
    body: &'a [u8],
    signature: Option<&'a [u8]>,
    settings: Option<&'a [u8]>,
) -> Request<'a> {
    Request {
        url,
        payload: Payload::Body(body),
        signature,
        settings,
    }
}

/// `[name0, value0, name1, value1, ...]` as pairs (an odd last name gets an empty value).
fn borrow_pairs(flat: &[String]) -> Vec<(&str, &str)> {
    flat.chunks(2)
        .map(|pair| (pair[0].as_str(), pair.get(1).map_or("", String::as_str)))
        .collect()
}

/// The lower-case hex SHA-256 of a body, as Twilio puts it in `bodySHA256`.
#[napi]
pub fn body_sha256(body: Bytes) -> String {
    twilio_signature::BodyHash::of(bytes(&body))
        .as_str()
        .to_owned()
}

/// The core's message for an error code (for the JS error classes): static text, never request data.
#[napi]
pub fn error_message(code: u32) -> String {
    let error = match code {
        1 => Error::MissingSignature,
        2 => Error::MalformedSignature,
        3 => Error::MalformedSettings,
        4 => Error::UnsupportedAlgorithm,
        5 => Error::MalformedBody,
        6 => Error::BodyTooLarge,
        7 => Error::TooManyParams,
        8 => Error::BodyRequired,
        9 => Error::NoEligibleSecret,
        10 => Error::SignatureMismatch,
        11 => Error::BodyHashMismatch,
        _ => return "the request failed verification".to_owned(),
    };
    error.message().to_owned()
}
