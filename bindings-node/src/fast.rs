//! The hot calls (`verify`, `check`, `checkPairs`) as raw Node-API callbacks, registered on the module's
//! exports in [`init`]. napi-rs wraps every function it exports in bookkeeping (a borrow scope, typed
//! argument conversion) that perf measured at about a tenth of a verify of an SMS webhook; here each
//! call reads its arguments with a handful of Node-API calls and copies strings once into a per-thread
//! arena. A panic never crosses into C: it is caught and thrown as a JS error.

use std::cell::RefCell;
use std::ffi::{c_char, CStr};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::ptr;

use napi::bindgen_prelude::{Env, Object};
use napi::{sys, JsValue};
use napi_derive::napi;
use twilio_signature::{Error, Payload, Request, Verified};

use crate::{error_code, registered, request, verified_code};

thread_local! {
    /// Where the hot calls copy their string arguments as UTF-8: one V8 write per string into memory
    /// kept from call to call, where napi-rs's `String` measures the string, allocates and writes it.
    static ARENA: RefCell<Vec<u8>> = RefCell::new(Vec::with_capacity(1 << 16));
}

/// Room asked of the arena before writing a string whose length is not known yet.
const MIN_SPARE: usize = 4096;

/// Why a hot call was refused: thrown as a JS TypeError (static text, never request data).
type Refused = &'static CStr;

/// One argument: absent (null or undefined), a range of the arena, or the bytes of a Buffer /
/// Uint8Array, which stay valid for the call (the JS value is on the caller's stack and no JS runs
/// until the call returns).
enum Arg {
    Absent,
    Arena(usize, usize),
    Raw(*const u8, usize),
}

fn ok(status: sys::napi_status) -> bool {
    status == sys::Status::napi_ok
}

/// A typed array's element type, length and data.
fn typed_array(env: sys::napi_env, value: sys::napi_value) -> Option<(i32, usize, *mut u8)> {
    let (mut kind, mut length, mut data) = (0, 0, ptr::null_mut());
    let (mut buffer, mut offset) = (ptr::null_mut(), 0);
    // SAFETY: live handles of this call; locals as out-pointers. Not ok for anything but a typed array.
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
    ok(status).then_some((kind, length, data.cast::<u8>()))
}

/// Reads one argument (see [`Arg`]): a string, a Buffer / Uint8Array, null or undefined.
fn read_arg(
    env: sys::napi_env,
    value: sys::napi_value,
    arena: &mut Vec<u8>,
    what: Refused,
    likely_string: bool,
) -> Result<Arg, Refused> {
    // A URL or a signature is a string: reading it straight away saves asking for its type first
    // (V8 checks it anyway, and answers "string expected" for anything else).
    if likely_string {
        if let Some(arg) = write_string(env, value, arena)? {
            return Ok(arg);
        }
    }
    let mut kind = 0;
    // SAFETY: env and value are the live handles of this call.
    if !ok(unsafe { sys::napi_typeof(env, value, &raw mut kind) }) {
        return Err(what);
    }
    match kind {
        sys::ValueType::napi_undefined | sys::ValueType::napi_null => Ok(Arg::Absent),
        sys::ValueType::napi_string => write_string(env, value, arena)?.ok_or(what),
        sys::ValueType::napi_object => match typed_array(env, value) {
            Some((sys::TypedarrayType::uint8_array, length, data)) => {
                Ok(Arg::Raw(data.cast_const(), length))
            }
            _ => Err(what),
        },
        _ => Err(what),
    }
}

/// Appends a JS string's UTF-8 to the arena: one write into the spare room when it fits (V8 never
/// leaves more than 3 bytes and the NUL unused when it runs out of room mid-string, so a write that
/// stops 5 or more bytes short of the room is complete), else measured and written again.
/// `None` when the value is not a string.
fn write_string(
    env: sys::napi_env,
    value: sys::napi_value,
    arena: &mut Vec<u8>,
) -> Result<Option<Arg>, Refused> {
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
    if status == sys::Status::napi_string_expected {
        return Ok(None);
    }
    if ok(status) && written + 5 >= room {
        let mut length = 0;
        // SAFETY: a NULL buffer asks for the length only.
        status = unsafe {
            sys::napi_get_value_string_utf8(env, value, ptr::null_mut(), 0, &raw mut length)
        };
        if ok(status) {
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
    if !ok(status) {
        return Err(c"cannot read a string argument");
    }
    // SAFETY: V8 initialised `written` bytes from `start`.
    unsafe { arena.set_len(start + written) };
    Ok(Some(Arg::Arena(start, written)))
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

/// Runs `f` on the bytes of four arguments (url, body, signature, settings; `None` is absent).
fn with_args<R>(
    env: sys::napi_env,
    args: [Option<sys::napi_value>; 4],
    f: impl FnOnce(&[u8], &[u8], Option<&[u8]>, Option<&[u8]>) -> R,
) -> Result<R, Refused> {
    ARENA.with(|cell| {
        // No JS runs inside, so no call re-enters; a fresh arena all the same if one did.
        let mut fresh = Vec::new();
        let mut guard = cell.try_borrow_mut();
        let arena = match guard.as_mut() {
            Ok(arena) => &mut **arena,
            Err(_) => &mut fresh,
        };
        arena.clear();
        let whats = [
            c"url must be a string, a Buffer or a Uint8Array",
            c"body must be a string, a Buffer or a Uint8Array",
            c"signature must be a string, a Buffer or a Uint8Array",
            c"settings must be a string, a Buffer or a Uint8Array",
        ];
        // The URL and the signature are usually strings; the body a Buffer, the settings null.
        let likely_string = [true, false, true, false];
        let mut read = [Arg::Absent, Arg::Absent, Arg::Absent, Arg::Absent];
        for (((slot, arg), what), string) in read.iter_mut().zip(args).zip(whats).zip(likely_string)
        {
            if let Some(value) = arg {
                *slot = read_arg(env, value, arena, what, string)?;
            }
        }
        let result = f(
            resolve(&read[0], arena).unwrap_or_default(),
            resolve(&read[1], arena).unwrap_or_default(),
            resolve(&read[2], arena),
            resolve(&read[3], arena),
        );
        // A large webhook's copy is not kept for the life of the thread.
        if arena.capacity() > 1 << 20 {
            *arena = Vec::with_capacity(1 << 16);
        }
        Ok(result)
    })
}

/// Copies `bytes` to `out` at `offset`, a Uint8Array long enough (the JS side passes a slot of a pool it
/// keeps for this); anything else is left alone.
fn write_out(env: sys::napi_env, out: sys::napi_value, offset: usize, bytes: &[u8]) {
    if let Some((sys::TypedarrayType::uint8_array, length, data)) = typed_array(env, out) {
        if offset
            .checked_add(bytes.len())
            .is_some_and(|end| end <= length)
        {
            // SAFETY: `data + offset` points at bytes.len() bytes inside the array's `length`, which
            // no JS touches during this call.
            unsafe { ptr::copy_nonoverlapping(bytes.as_ptr(), data.add(offset), bytes.len()) };
        }
    }
}

/// The result of a verify: the verified code (the replay key written to `out`) or the error code.
pub(crate) fn outcome(
    result: Result<Verified, Error>,
    env: sys::napi_env,
    out: sys::napi_value,
    offset: usize,
) -> u32 {
    match result {
        Ok(verified) => {
            write_out(env, out, offset, &verified.replay_key());
            verified_code(&verified)
        }
        Err(error) => error_code(error),
    }
}

/// Reused buffers of `checkPairs`: the joined string's UTF-16 units, its UTF-8, and each piece's end.
#[derive(Default)]
struct PairsScratch {
    units: Vec<u16>,
    text: Vec<u8>,
    ends: Vec<usize>,
}

thread_local! {
    static PAIRS: RefCell<PairsScratch> = RefCell::new(PairsScratch::default());
}

/// Reads a JS string's UTF-16 code units into `units` (at most `length` of them: the JS side's count).
/// V8 copies them from the flattened string (widening a one-byte string), with no transcoding.
fn read_utf16(
    env: sys::napi_env,
    value: sys::napi_value,
    length: usize,
    units: &mut Vec<u16>,
) -> Result<(), Refused> {
    let mut actual = 0;
    // SAFETY: a NULL buffer asks for the length in UTF-16 units only (no copy).
    let status = unsafe {
        sys::napi_get_value_string_utf16(env, value, ptr::null_mut(), 0, &raw mut actual)
    };
    if !ok(status) {
        return Err(c"joined must be a string");
    }
    if actual != length {
        return Err(c"the lengths do not add up to the joined string's length");
    }
    units.clear();
    units.reserve(length + 1);
    let mut written = 0;
    // SAFETY: live handles of this call; V8 writes at most `length + 1` units (the NUL included) into
    // the spare capacity and reports the units before the NUL, all initialised.
    let status = unsafe {
        sys::napi_get_value_string_utf16(
            env,
            value,
            units.as_mut_ptr(),
            length + 1,
            &raw mut written,
        )
    };
    if !ok(status) {
        return Err(c"joined must be a string");
    }
    // SAFETY: `written` units were initialised by V8.
    unsafe { units.set_len(written) };
    Ok(())
}

/// Whether every unit is ASCII (an OR over the slice, which the compiler vectorises).
fn ascii16(units: &[u16]) -> bool {
    units.iter().fold(0, |all, &u| all | u) < 0x80
}

/// Appends the UTF-8 of one piece's UTF-16 units; a lone surrogate (also half of a pair split between
/// two pieces) becomes U+FFFD, as `Buffer.from(piece)` makes it.
fn push_utf16(out: &mut Vec<u8>, units: &[u16]) {
    if ascii16(units) {
        let start = out.len();
        out.resize(start + units.len(), 0);
        for (byte, &unit) in out[start..].iter_mut().zip(units) {
            *byte = unit as u8;
        }
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

/// The UTF-8 of the pieces of `units` cut at the UTF-16 `lengths` (each converted on its own) into
/// `text`, and each piece's end in `ends`; false when the lengths run past the units.
fn split_pieces(units: &[u16], lengths: &[u32], text: &mut Vec<u8>, ends: &mut Vec<usize>) -> bool {
    text.clear();
    ends.clear();
    let mut at = 0;
    for &length in lengths {
        let Some(piece) = units.get(at..at + length as usize) else {
            return false;
        };
        push_utf16(text, piece);
        ends.push(text.len());
        at += length as usize;
    }
    true
}

fn get_u32(env: sys::napi_env, value: sys::napi_value) -> Result<u32, Refused> {
    let mut out = 0;
    // SAFETY: live handles; a local out-pointer. Not ok for a non-number.
    if ok(unsafe { sys::napi_get_value_uint32(env, value, &raw mut out) }) {
        Ok(out)
    } else {
        Err(c"expected a number")
    }
}

/// The arguments of a raw call (missing ones are `undefined`, as Node-API fills them).
fn arguments<const N: usize>(
    env: sys::napi_env,
    info: sys::napi_callback_info,
) -> Result<[sys::napi_value; N], Refused> {
    let mut values = [ptr::null_mut(); N];
    let mut count = N;
    // SAFETY: `values` has room for `count` values; this and data are not asked for.
    let status = unsafe {
        sys::napi_get_cb_info(
            env,
            info,
            &raw mut count,
            values.as_mut_ptr(),
            ptr::null_mut(),
            ptr::null_mut(),
        )
    };
    if ok(status) {
        Ok(values)
    } else {
        Err(c"cannot read the arguments")
    }
}

/// Runs a raw call's body: its number back to JS, or a TypeError thrown (a panic too, as an Error).
fn respond(env: sys::napi_env, body: impl FnOnce() -> Result<u32, Refused>) -> sys::napi_value {
    let thrown = match catch_unwind(AssertUnwindSafe(body)) {
        Ok(Ok(code)) => {
            let mut value = ptr::null_mut();
            // SAFETY: a live env and a local out-pointer.
            if ok(unsafe { sys::napi_create_uint32(env, code, &raw mut value) }) {
                return value;
            }
            c"cannot return the result"
        }
        Ok(Err(refused)) => refused,
        Err(_) => {
            // SAFETY: a live env; static NUL-terminated text.
            unsafe {
                sys::napi_throw_error(
                    env,
                    ptr::null(),
                    c"twilio-signature: internal error".as_ptr(),
                )
            };
            return ptr::null_mut();
        }
    };
    // SAFETY: as above.
    unsafe { sys::napi_throw_type_error(env, ptr::null(), thrown.as_ptr()) };
    ptr::null_mut()
}

fn validator(
    env: sys::napi_env,
    id: sys::napi_value,
) -> Result<std::rc::Rc<crate::Shared>, Refused> {
    registered(get_u32(env, id)?).ok_or(c"no such validator")
}

/// `verify(id, url, body, signature, settings, out, offset)`: the verified code (the replay key written
/// to the Uint8Array `out` at `offset`) or the error code.
unsafe extern "C" fn verify(env: sys::napi_env, info: sys::napi_callback_info) -> sys::napi_value {
    respond(env, || {
        let [id, url, body, signature, settings, out, offset] = arguments::<7>(env, info)?;
        let shared = validator(env, id)?;
        let offset = get_u32(env, offset)? as usize;
        with_args(
            env,
            [Some(url), Some(body), Some(signature), Some(settings)],
            |u, b, s, t| outcome(shared.run(&request(u, b, s, t)), env, out, offset),
        )
    })
}

/// `check(id, url, body, signature, settings)`: 0 when valid, else the error code.
unsafe extern "C" fn check(env: sys::napi_env, info: sys::napi_callback_info) -> sys::napi_value {
    respond(env, || {
        let [id, url, body, signature, settings] = arguments::<5>(env, info)?;
        let shared = validator(env, id)?;
        with_args(
            env,
            [Some(url), Some(body), Some(signature), Some(settings)],
            |u, b, s, t| {
                shared
                    .run(&request(u, b, s, t))
                    .map_or_else(error_code, |_| 0)
            },
        )
    })
}

/// `checkPairs(id, url, joined, lengths, count, signature, settings)`: `check` for pairs a framework
/// parsed, given as one string `joined` (name0 value0 name1 value1 ... concatenated) and each piece's
/// UTF-16 length in the Uint32Array `lengths` (`count` pieces): one string crosses into the addon
/// instead of one per name and value. Lone surrogates become U+FFFD, as `Buffer.from(text)` makes them.
unsafe extern "C" fn check_pairs(
    env: sys::napi_env,
    info: sys::napi_callback_info,
) -> sys::napi_value {
    respond(env, || {
        let [id, url, joined, lengths, count, signature, settings] = arguments::<7>(env, info)?;
        let shared = validator(env, id)?;
        let count = get_u32(env, count)? as usize;
        let lengths = match typed_array(env, lengths) {
            // No pieces: nothing to read (a detached or empty array may hand back a null pointer).
            Some((sys::TypedarrayType::uint32_array, _, _)) if count == 0 => &[][..],
            Some((sys::TypedarrayType::uint32_array, length, data))
                if count <= length && (data as usize).is_multiple_of(align_of::<u32>()) =>
            {
                // SAFETY: a Uint32Array of `length` >= count elements, aligned (checked: typed
                // arrays always are), untouched by JS during this call.
                #[allow(clippy::cast_ptr_alignment)]
                let data = data.cast::<u32>().cast_const();
                unsafe { std::slice::from_raw_parts(data, count) }
            }
            _ => return Err(c"lengths must be a Uint32Array holding count lengths"),
        };
        if count / 2 > shared.max_params {
            return Ok(error_code(Error::TooManyParams));
        }
        PAIRS.with(|cell| {
            let mut fresh = PairsScratch::default();
            let mut guard = cell.try_borrow_mut();
            let scratch = match guard.as_mut() {
                Ok(scratch) => &mut **scratch,
                Err(_) => &mut fresh,
            };
            let total = lengths.iter().map(|&n| n as usize).sum();
            read_utf16(env, joined, total, &mut scratch.units)?;
            if !split_pieces(
                &scratch.units,
                lengths,
                &mut scratch.text,
                &mut scratch.ends,
            ) {
                return Err(c"the lengths run past the joined string");
            }
            // Only whole UTF-8 sequences were pushed: this never fails.
            let text = std::str::from_utf8(&scratch.text).map_err(|_| c"params are not text")?;
            let ends = &scratch.ends;
            let verdict = with_args(
                env,
                [Some(url), None, Some(signature), Some(settings)],
                |url, _, signature, settings| {
                    run_pairs(&shared, text, ends, url, signature, settings)
                },
            );
            // A large form's buffers are not kept for the life of the thread.
            if scratch.units.capacity() > 1 << 20 {
                *scratch = PairsScratch::default();
            }
            verdict
        })
    })
}

/// The core's verdict on the pairs of `text` cut at `ends` (name end, value end, ...).
fn run_pairs(
    shared: &crate::Shared,
    text: &str,
    ends: &[usize],
    url: &[u8],
    signature: Option<&[u8]>,
    settings: Option<&[u8]>,
) -> u32 {
    let mut pairs = Vec::with_capacity(ends.len().div_ceil(2));
    let mut start = 0;
    for pair in ends.chunks(2) {
        let value_end = pair.get(1).copied().unwrap_or(pair[0]);
        pairs.push((&text[start..pair[0]], &text[pair[0]..value_end]));
        start = value_end;
    }
    let request = Request {
        url,
        payload: Payload::Params(&pairs),
        signature,
        settings,
    };
    shared.run(&request).map_or_else(error_code, |_| 0)
}

type Callback = unsafe extern "C" fn(sys::napi_env, sys::napi_callback_info) -> sys::napi_value;

/// Puts the raw callbacks on the module's exports (`verify`, `check`, `checkPairs`).
#[napi(module_exports)]
pub fn init(exports: Object<'_>, env: Env) -> napi::Result<()> {
    let exports = exports.value().value;
    let functions: [(&CStr, Callback); 3] = [
        (c"verify", verify),
        (c"check", check),
        (c"checkPairs", check_pairs),
    ];
    for (name, callback) in functions {
        let mut function = ptr::null_mut();
        // SAFETY: a live env during module init; a static NUL-terminated name; no data pointer.
        let created = unsafe {
            sys::napi_create_function(
                env.raw(),
                name.as_ptr(),
                name.to_bytes().len().cast_signed(),
                Some(callback),
                ptr::null_mut(),
                &raw mut function,
            )
        };
        // SAFETY: as above; `function` was just created.
        if !ok(created)
            || !ok(unsafe {
                sys::napi_set_named_property(env.raw(), exports, name.as_ptr(), function)
            })
        {
            return Err(napi::Error::from_reason("cannot export the hot functions"));
        }
    }
    Ok(())
}
