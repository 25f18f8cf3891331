//! The Node-API layer (napi-rs) of the npm package `twilio-signature`: a thin layer over the core.
//!
//! It only converts: JS strings or Buffers in, the core's verdict out. Errors of verification are
//! returned as small numbers (see [`error_code`]) and turned into `SignatureError` subclasses by the JS
//! side (`lib/errors.js`), in one place: building a JS error here for every refused webhook would cost
//! more than the check. Nothing returned or thrown ever carries a secret.

// #[napi] functions take their arguments by value: napi-rs converts each JS value into an owned one.
#![allow(clippy::needless_pass_by_value)]

use std::cell::RefCell;
use std::ffi::c_char;
use std::fmt;
use std::ptr;
use std::rc::Rc;

use napi::bindgen_prelude::{Buffer, Either, Unknown};
use napi::{sys, Error as NapiError, JsValue, Status};
use napi_derive::napi;
use twilio_signature::{Candidate, Error, Overflow, Payload, Request, Secret, Span, Verified};

/// Parameters handled with a stack scratch buffer; more go to a heap buffer bounded by `max_params`.
const STACK_PARAMS: usize = 64;

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

thread_local! {
    /// Where the hot calls (`check`, `verify`) copy their string arguments as UTF-8: one V8 write per
    /// string into memory kept from call to call, where napi-rs's `String` measures the string, allocates,
    /// and writes it (a third of a verify's time on an SMS webhook, measured with perf).
    static ARENA: RefCell<Vec<u8>> = RefCell::new(Vec::with_capacity(1 << 16));
}

/// Room asked of the arena before writing a string whose length is not known yet.
const MIN_SPARE: usize = 4096;

/// One argument of a hot call: absent (null or undefined), a range of the arena, or the bytes of a
/// Buffer / Uint8Array, which stay valid for the call (the JS value is on the caller's stack and no JS
/// runs until the call returns).
enum Arg {
    Absent,
    Arena(usize, usize),
    Raw(*const u8, usize),
}

fn type_error(what: &str) -> NapiError {
    NapiError::new(
        Status::InvalidArg,
        format!("{what} must be a string, a Buffer or a Uint8Array"),
    )
}

/// Reads one argument of a hot call (see [`Arg`]).
fn read_arg(value: &Unknown<'_>, arena: &mut Vec<u8>, what: &str) -> napi::Result<Arg> {
    let raw = value.value();
    let (env, value) = (raw.env, raw.value);
    let mut kind = 0;
    // SAFETY: env and value are the live handles napi-rs gave this call.
    if unsafe { sys::napi_typeof(env, value, &raw mut kind) } != sys::Status::napi_ok {
        return Err(type_error(what));
    }
    match kind {
        sys::ValueType::napi_undefined | sys::ValueType::napi_null => Ok(Arg::Absent),
        sys::ValueType::napi_string => write_string(env, value, arena),
        sys::ValueType::napi_object => {
            let (mut kind, mut length, mut data) = (0, 0, ptr::null_mut());
            let (mut buffer, mut offset) = (ptr::null_mut(), 0);
            // SAFETY: as above; the out-pointers are locals. Fails (not ok) for non-typed-arrays.
            let status = unsafe {
                sys::napi_get_typedarray_info(
                    env,
                    value,
                    &raw mut kind,
                    &raw mut length,
                    &raw mut data,
                    &raw mut buffer,
                    &raw mut offset,
                )
            };
            if status != sys::Status::napi_ok || kind != sys::TypedarrayType::uint8_array {
                return Err(type_error(what));
            }
            Ok(Arg::Raw(data.cast_const().cast::<u8>(), length))
        }
        _ => Err(type_error(what)),
    }
}

/// Appends a JS string's UTF-8 to the arena: one write into the spare room when it fits (V8 never
/// leaves more than 3 bytes and the NUL unused when it runs out of room mid-string, so a write that
/// stops 5 or more bytes short of the room is complete), else measured and written again.
fn write_string(
    env: sys::napi_env,
    value: sys::napi_value,
    arena: &mut Vec<u8>,
) -> napi::Result<Arg> {
    let start = arena.len();
    arena.reserve(MIN_SPARE);
    let mut room = arena.capacity() - start;
    let mut written = 0;
    // SAFETY: the pointer is `room` bytes of the arena's spare capacity; V8 writes at most `room` bytes
    // (the NUL included) and `written` counts the bytes before the NUL, all initialised.
    let mut status = unsafe {
        sys::napi_get_value_string_utf8(
            env,
            value,
            arena.as_mut_ptr().add(start).cast::<c_char>(),
            room,
            &raw mut written,
        )
    };
    if status == sys::Status::napi_ok && written + 5 >= room {
        let mut length = 0;
        // SAFETY: a NULL buffer asks for the length only.
        status = unsafe {
            sys::napi_get_value_string_utf8(env, value, ptr::null_mut(), 0, &raw mut length)
        };
        if status == sys::Status::napi_ok {
            arena.reserve(length + 1);
            room = arena.capacity() - start;
            // SAFETY: as for the first write, with room for the whole string and its NUL.
            status = unsafe {
                sys::napi_get_value_string_utf8(
                    env,
                    value,
                    arena.as_mut_ptr().add(start).cast::<c_char>(),
                    room,
                    &raw mut written,
                )
            };
        }
    }
    if status != sys::Status::napi_ok {
        return Err(NapiError::new(
            Status::GenericFailure,
            "cannot read a string argument",
        ));
    }
    // SAFETY: V8 initialised `written` bytes from `start`.
    unsafe { arena.set_len(start + written) };
    Ok(Arg::Arena(start, written))
}

/// Copies `bytes` to the start of `out`, a Uint8Array at least that long (the JS side passes one it
/// keeps for this); anything else is left alone.
fn write_out(out: &Unknown<'_>, bytes: &[u8]) {
    let raw = out.value();
    let (mut kind, mut length, mut data) = (0, 0, ptr::null_mut());
    let (mut buffer, mut offset) = (ptr::null_mut(), 0);
    // SAFETY: live handles of this call; locals as out-pointers.
    let status = unsafe {
        sys::napi_get_typedarray_info(
            raw.env,
            raw.value,
            &raw mut kind,
            &raw mut length,
            &raw mut data,
            &raw mut buffer,
            &raw mut offset,
        )
    };
    if status == sys::Status::napi_ok
        && kind == sys::TypedarrayType::uint8_array
        && length >= bytes.len()
    {
        // SAFETY: `data` points at `length` >= bytes.len() bytes of the array, which no JS touches
        // during this call.
        unsafe { ptr::copy_nonoverlapping(bytes.as_ptr(), data.cast::<u8>(), bytes.len()) };
    }
}

/// A JS string's UTF-16 code units (`length` of them, the caller's count; a string of another length is
/// read up to `length`).
fn read_utf16(value: &Unknown<'_>, length: usize) -> napi::Result<Vec<u16>> {
    let raw = value.value();
    let mut units: Vec<u16> = Vec::with_capacity(length + 1);
    let mut written = 0;
    // SAFETY: live handles of this call; V8 writes at most `length + 1` units (the NUL included) into
    // the spare capacity and reports the units before the NUL, all initialised.
    let status = unsafe {
        sys::napi_get_value_string_utf16(
            raw.env,
            raw.value,
            units.as_mut_ptr(),
            length + 1,
            &raw mut written,
        )
    };
    if status != sys::Status::napi_ok {
        return Err(type_error("joined"));
    }
    // SAFETY: `written` units were initialised by V8.
    unsafe { units.set_len(written) };
    Ok(units)
}

/// UTF-16 to UTF-8, a lone surrogate as U+FFFD (what `Buffer.from(text)` does).
fn push_utf16(out: &mut Vec<u8>, units: &[u16]) {
    if units.iter().fold(0, |all, &u| all | u) < 0x80 {
        out.extend(units.iter().map(|&u| u as u8));
        return;
    }
    for c in char::decode_utf16(units.iter().copied()) {
        let c = c.unwrap_or(char::REPLACEMENT_CHARACTER);
        if c.is_ascii() {
            out.push(c as u8);
        } else {
            let mut buf = [0; 4];
            out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
        }
    }
}

/// The bytes of an argument read by [`read_arg`]; `None` when absent.
fn resolve<'a>(arg: &Arg, arena: &'a [u8]) -> Option<&'a [u8]> {
    match *arg {
        Arg::Absent => None,
        Arg::Arena(start, length) => Some(&arena[start..start + length]),
        // SAFETY: see `Arg::Raw`: the typed array's bytes outlive the call this borrow is used in.
        Arg::Raw(data, length) if length > 0 => {
            Some(unsafe { std::slice::from_raw_parts(data, length) })
        }
        Arg::Raw(..) => Some(&[]),
    }
}

/// Runs `f` on the bytes of a hot call's four arguments (url, body, signature, settings).
fn with_args<R>(
    args: [Option<&Unknown<'_>>; 4],
    f: impl FnOnce(&[u8], &[u8], Option<&[u8]>, Option<&[u8]>) -> R,
) -> napi::Result<R> {
    ARENA.with(|cell| {
        // A re-entrant call cannot happen (no JS runs inside), but fall back to a fresh arena if so.
        let mut fresh = Vec::new();
        let mut guard = cell.try_borrow_mut();
        let arena = match guard.as_mut() {
            Ok(arena) => &mut **arena,
            Err(_) => &mut fresh,
        };
        arena.clear();
        let mut read = |arg: Option<&Unknown<'_>>, what| match arg {
            Some(arg) => read_arg(arg, arena, what),
            None => Ok(Arg::Absent),
        };
        let url = read(args[0], "url")?;
        let body = read(args[1], "body")?;
        let signature = read(args[2], "signature")?;
        let settings = read(args[3], "settings")?;
        let result = f(
            resolve(&url, arena).unwrap_or_default(),
            resolve(&body, arena).unwrap_or_default(),
            resolve(&signature, arena),
            resolve(&settings, arena),
        );
        // A large webhook's copy is not kept for the life of the thread.
        if arena.capacity() > 1 << 20 {
            *arena = Vec::with_capacity(1 << 16);
        }
        Ok(result)
    })
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

/// The result of `verify`: the verified code (writing the replay key to `out`) or the error code.
fn outcome(result: Result<Verified, Error>, out: &Unknown<'_>) -> u32 {
    match result {
        Ok(verified) => {
            write_out(out, &verified.replay_key());
            verified_code(&verified)
        }
        Err(error) => error_code(error),
    }
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

fn registered(id: u32) -> napi::Result<Rc<Shared>> {
    REGISTRY
        .with(|registry| registry.borrow().get(id as usize).cloned().flatten())
        .ok_or_else(|| invalid("no such validator"))
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
    ) -> u32 {
        outcome(
            self.shared
                .verify_pairs(&url, &pairs, signature.as_ref(), settings.as_ref()),
            &out,
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

    /// Runs `f` with a scratch buffer for at most `max_params` parameters: a small one on the stack
    /// first, and only when the form overflows it, one on the heap sized to the form's parameters
    /// (`Request::max_params`) and capped at `max_params` (a body of `&`s cannot make it allocate).
    fn with_scratch<R: Overflow>(
        &self,
        request: &Request<'_>,
        mut f: impl FnMut(&mut [Span]) -> R,
    ) -> R {
        let small = f(&mut [Span::EMPTY; STACK_PARAMS][..self.max_params.min(STACK_PARAMS)]);
        if !small.overflowed() || self.max_params <= STACK_PARAMS {
            return small;
        }
        f(&mut vec![
            Span::EMPTY;
            request.max_params().min(self.max_params)
        ])
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

/// The verified code (see [`verified_code`]; the replay key written to `out`, 32 bytes) or the
/// error code (see [`error_code`]). `url`, `body`, `signature`, `settings`: strings, Buffers or
/// Uint8Arrays; `signature` and `settings` may be null.
/// `NativeValidator.verify` by the validator's id (see [`Shared`]).
#[napi]
pub fn verify(
    id: u32,
    url: Unknown<'_>,
    body: Unknown<'_>,
    signature: Unknown<'_>,
    settings: Unknown<'_>,
    out: Unknown<'_>,
) -> napi::Result<u32> {
    let shared = registered(id)?;
    with_args(
        [Some(&url), Some(&body), Some(&signature), Some(&settings)],
        |url, body, signature, settings| {
            outcome(shared.run(&request(url, body, signature, settings)), &out)
        },
    )
}

/// 0 when valid, else the error code: `verify` without the replay key.
#[napi]
pub fn check(
    id: u32,
    url: Unknown<'_>,
    body: Unknown<'_>,
    signature: Unknown<'_>,
    settings: Unknown<'_>,
) -> napi::Result<u32> {
    let shared = registered(id)?;
    with_args(
        [Some(&url), Some(&body), Some(&signature), Some(&settings)],
        |url, body, signature, settings| {
            shared
                .run(&request(url, body, signature, settings))
                .map_or_else(error_code, |_| 0)
        },
    )
}

/// `check` for pairs a framework already parsed, given as one string `joined` (name0 value0 name1
/// value1 ... concatenated) and the UTF-16 length of each piece in `lengths` (`count` pieces): one
/// string crosses into the addon instead of one per name and value. Lone surrogates become U+FFFD,
/// as `Buffer.from(text)` makes them.
#[napi]
pub fn check_pairs(
    id: u32,
    url: Unknown<'_>,
    joined: Unknown<'_>,
    lengths: &[u32],
    count: u32,
    signature: Unknown<'_>,
    settings: Unknown<'_>,
) -> napi::Result<u32> {
    let shared = registered(id)?;
    let count = count as usize;
    let Some(lengths) = lengths.get(..count) else {
        return Err(invalid("count is larger than lengths"));
    };
    if count / 2 > shared.max_params {
        return Ok(error_code(Error::TooManyParams));
    }
    let units = read_utf16(&joined, lengths.iter().map(|&n| n as usize).sum())?;
    let mut ends = Vec::with_capacity(count);
    // All ASCII (the usual webhook): one narrowing pass, and the pieces' ends are their UTF-16 ones.
    let bytes = if units.iter().fold(0, |all, &u| all | u) < 0x80 {
        let mut end = 0;
        for &length in lengths {
            end = (end + length as usize).min(units.len());
            ends.push(end);
        }
        units.iter().map(|&u| u as u8).collect()
    } else {
        // At most 3 bytes per unit (a surrogate pair's 4 bytes come from 2 units).
        let mut bytes = Vec::with_capacity(units.len() * 3);
        let mut at = 0;
        for &length in lengths {
            let end = (at + length as usize).min(units.len());
            push_utf16(&mut bytes, &units[at..end]);
            ends.push(bytes.len());
            at = end;
        }
        bytes
    };
    // Only whole UTF-8 sequences were pushed, so this never fails (and costs one fast scan).
    let text = String::from_utf8(bytes).map_err(|_| invalid("params are not text"))?;
    let mut pairs = Vec::with_capacity(count.div_ceil(2));
    let mut start = 0;
    for pair in ends.chunks(2) {
        let name = &text[start..pair[0]];
        let value = pair.get(1).map_or("", |&end| &text[pair[0]..end]);
        start = *pair.last().unwrap_or(&start);
        pairs.push((name, value));
    }
    with_args(
        [Some(&url), None, Some(&signature), Some(&settings)],
        |url, _, signature, settings| {
            let request = Request {
                url,
                payload: Payload::Params(&pairs),
                signature,
                settings,
            };
            shared.run(&request).map_or_else(error_code, |_| 0)
        },
    )
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
