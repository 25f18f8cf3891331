//! The validator handle: several secrets (with optional key ids) and a configurable parameter bound.
//!
//! Unlike the core's own calls, which stop at `DEFAULT_MAX_PARAMS` (512) spans on the stack, the handle
//! sorts a form with more parameters in a heap buffer sized to the body (the core's scratch rule with
//! this face's heap: [`with_scratch`]), bounded by `max_params` (default [`TWS_DEFAULT_MAX_PARAMS`]).

use core::ffi::c_int;

use tws_core::{
    Error, Explanation, Overflow, Request, Secret, Signature, Span, Validator, Verified,
};

use crate::boundary::{guard, input, optional_input, output, write, write_text};
use crate::request::RawRequest;
use crate::status::tws_status;
use crate::verified::tws_verified;

/// How many form parameters a request may have unless `tws_validator_set_max_params` says otherwise.
/// Twilio's webhooks have well under 100; the bound keeps a hostile body from costing more than
/// 32 bytes of scratch per parameter (320 KB at this default).
pub const TWS_DEFAULT_MAX_PARAMS: usize = 10_000;

/// A validator: one or more secrets, tried in the order they were added.
///
/// Create it with `tws_validator_new`, add secrets, then verify from any number of threads at once
/// (verification only reads it). Adding secrets or changing the maximum must not race with other calls
/// on the same handle. Free it with `tws_validator_free`.
pub struct tws_validator {
    secrets: Vec<Secret>,
    max_params: usize,
}

impl core::fmt::Debug for tws_validator {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        // `Secret`'s Debug redacts the secret and shows only the key id.
        f.debug_struct("tws_validator")
            .field("secrets", &self.secrets)
            .field("max_params", &self.max_params)
            .finish()
    }
}

impl tws_validator {
    fn new() -> Self {
        Self {
            secrets: Vec::new(),
            max_params: TWS_DEFAULT_MAX_PARAMS,
        }
    }

    fn core(&self) -> Validator<&[Secret]> {
        Validator::with_secrets(&self.secrets)
    }

    pub(crate) fn verify(&self, request: &Request<'_>) -> Result<Verified, Error> {
        with_scratch(self.max_params, request, |scratch| {
            self.core().verify_with_scratch(request, scratch)
        })
    }

    /// The core's explanation, sorting parameters in the same bounded scratch as [`Self::verify`].
    pub(crate) fn explain(&self, request: &Request<'_>) -> Explanation {
        with_scratch(self.max_params, request, |scratch| {
            self.core().explain_with_scratch(request, scratch)
        })
    }

    /// Signs with the first secret the settings header allows, in the same bounded scratch.
    pub(crate) fn sign(&self, request: &Request<'_>) -> Result<Signature, Error> {
        with_scratch(self.max_params, request, |scratch| {
            self.core().sign_with_scratch(request, scratch)
        })
    }
}

/// Runs `f` with a scratch buffer for at most `max_params` parameters, sized by the core's rule
/// ([`tws_core::with_scratch`]: none for a request without parameters, a small one on the stack first,
/// a larger one only when the form overflows it). This face supplies the heap buffer the core has no
/// heap for: a form with more parameters than `DEFAULT_MAX_PARAMS` is sorted in one sized to its
/// parameters (`Request::max_params`: its non-empty `&`-separated segments, so a body of `&`s needs
/// none) and capped at `max_params`, so a form with more still gets `TooManyParams`.
pub(crate) fn with_scratch<R: Overflow>(
    max_params: usize,
    request: &Request<'_>,
    f: impl FnMut(&mut [Span]) -> R,
) -> R {
    tws_core::with_scratch(max_params, request, f, |len, f| {
        f(&mut vec![Span::EMPTY; len])
    })
}

/// Writes a new, empty validator (no secrets; every verification fails until one is added) to
/// `*validator_out`. Free it with `tws_validator_free`.
///
/// # Safety
/// `validator_out` must be NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn tws_validator_new(validator_out: *mut *mut tws_validator) -> c_int {
    guard(|| {
        let out = output(validator_out)?;
        let validator = Box::into_raw(Box::new(tws_validator::new()));
        // SAFETY: `out` is non-NULL and writable per the contract.
        unsafe { write(out, validator) };
        Ok(())
    })
}

/// Adds a secret (Auth Token or SharedKey secret) to the validator. `key_id` (at most
/// `TWS_MAX_KEY_ID_LEN` bytes) is the SharedKey id, or NULL with length 0 for none: a request whose
/// settings header names a key is checked only against secrets with that id or without one.
/// A secret that is empty or only whitespace (`\t \n \v \f \r`, space) is refused with
/// `TWS_UNUSABLE_SECRET` (and not added): it would match nothing.
///
/// # Safety
/// `validator` must be NULL or a live handle not used by another thread during the call; non-NULL
/// buffers must hold their length in readable bytes.
#[no_mangle]
pub unsafe extern "C" fn tws_validator_add_secret(
    validator: *mut tws_validator,
    key_id: *const u8,
    key_id_len: usize,
    secret: *const u8,
    secret_len: usize,
) -> c_int {
    guard(|| {
        let validator = output(validator)?;
        // SAFETY: per the contract, each buffer is NULL or holds its length in bytes.
        let (key_id, secret) = unsafe {
            (
                optional_input(key_id, key_id_len)?,
                input(secret, secret_len)?,
            )
        };
        if !Secret::is_usable(secret) {
            return Err(tws_status::TWS_UNUSABLE_SECRET);
        }
        let secret = match key_id {
            Some(id) => {
                Secret::with_key_id(id, secret).map_err(|_| tws_status::TWS_INVALID_KEY_ID)?
            }
            None => Secret::new(secret),
        };
        // SAFETY: non-NULL, a live handle, and not shared during the call per the contract.
        unsafe { (*validator).secrets.push(secret) };
        Ok(())
    })
}

/// Sets the most form parameters a request may have (default `TWS_DEFAULT_MAX_PARAMS`); a form with
/// more is refused with `TWS_TOO_MANY_PARAMS`. Scratch memory is 32 bytes per parameter, allocated per
/// call for forms of more than 512 `&`-separated segments. 0 is `TWS_INVALID_PARAMETER`.
///
/// # Safety
/// `validator` must be NULL or a live handle not used by another thread during the call.
#[no_mangle]
pub unsafe extern "C" fn tws_validator_set_max_params(
    validator: *mut tws_validator,
    max_params: usize,
) -> c_int {
    guard(|| {
        let validator = output(validator)?;
        if max_params == 0 {
            return Err(tws_status::TWS_INVALID_PARAMETER);
        }
        // SAFETY: non-NULL, a live handle, and not shared during the call per the contract.
        unsafe { (*validator).max_params = max_params };
        Ok(())
    })
}

/// Borrows a live handle.
///
/// # Safety
/// `validator` must be NULL or a live handle.
unsafe fn borrow<'a>(validator: *const tws_validator) -> Result<&'a tws_validator, tws_status> {
    // SAFETY: NULL is refused; otherwise a live handle per the contract.
    unsafe { validator.as_ref() }.ok_or(tws_status::TWS_NULL_PARAMETER)
}

/// Verifies one webhook request against the validator's secrets.
///
/// `url` is the full public URL Twilio requested, `body` the raw request body (form or, when the URL
/// has `bodySHA256`, JSON; NULL with length 0 for none), `signature` the `X-Twilio-Signature` header and
/// `signature_settings` the `X-Twilio-Webhooks-Signature-Settings` header (each NULL with length 0 when
/// absent). Returns `TWS_OK` and, when `verified_out` is not NULL, writes which secret and URL form
/// matched and the replay key; on any other status `*verified_out` is untouched.
///
/// # Safety
/// `validator` must be NULL or a live handle; non-NULL buffers must hold their length in readable bytes;
/// `verified_out` must be NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn tws_validator_verify(
    validator: *const tws_validator,
    url: *const u8,
    url_len: usize,
    body: *const u8,
    body_len: usize,
    signature: *const u8,
    signature_len: usize,
    signature_settings: *const u8,
    signature_settings_len: usize,
    verified_out: *mut tws_verified,
) -> c_int {
    let raw = RawRequest {
        url: (url, url_len),
        body: (body, body_len),
        signature: (signature, signature_len),
        settings: (signature_settings, signature_settings_len),
    };
    guard(|| {
        // SAFETY: per the contract.
        let (validator, request) = unsafe { (borrow(validator)?, raw.borrow()?) };
        let verified = validator.verify(&request)?;
        if !verified_out.is_null() {
            // SAFETY: non-NULL and writable per the contract.
            unsafe { write(verified_out, tws_verified::from(verified)) };
        }
        Ok(())
    })
}

/// Writes a readable report on one request (the verdict and, when it failed, which common mistake
/// would have made it match) into `out`, NUL-terminated, and its length (without the NUL) into
/// `*written_out`. Returns `TWS_OK` whether or not the request verifies: the verdict is in the text.
/// When `out_capacity` is too small, returns `TWS_BUFFER_TOO_SMALL`, writes nothing to `out` and still
/// sets `*written_out` to the length, so a call with `out_capacity` 0 (and `out` NULL) asks the size.
///
/// # Safety
/// As `tws_validator_verify`; `out` must be NULL or hold `out_capacity` writable bytes; `written_out`
/// must be NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn tws_validator_explain(
    validator: *const tws_validator,
    url: *const u8,
    url_len: usize,
    body: *const u8,
    body_len: usize,
    signature: *const u8,
    signature_len: usize,
    signature_settings: *const u8,
    signature_settings_len: usize,
    out: *mut u8,
    out_capacity: usize,
    written_out: *mut usize,
) -> c_int {
    let raw = RawRequest {
        url: (url, url_len),
        body: (body, body_len),
        signature: (signature, signature_len),
        settings: (signature_settings, signature_settings_len),
    };
    guard(|| {
        // SAFETY: per the contract.
        let (validator, request) = unsafe { (borrow(validator)?, raw.borrow()?) };
        let text = validator.explain(&request).to_string();
        // SAFETY: per the contract.
        unsafe { write_text(text.as_bytes(), out, out_capacity, written_out) }
    })
}

/// Computes the signature Twilio would send for a request, with the first secret the settings header
/// allows (its algorithm too), and writes it NUL-terminated into `out` (at least
/// `TWS_MAX_SIGNATURE_LEN + 1` bytes is always enough), its length into `*written_out`. Too small a
/// buffer: as `tws_validator_explain`. Forms: at most the handle's maximum number of parameters.
///
/// # Safety
/// As `tws_validator_explain`.
#[no_mangle]
pub unsafe extern "C" fn tws_validator_sign(
    validator: *const tws_validator,
    url: *const u8,
    url_len: usize,
    body: *const u8,
    body_len: usize,
    signature_settings: *const u8,
    signature_settings_len: usize,
    out: *mut u8,
    out_capacity: usize,
    written_out: *mut usize,
) -> c_int {
    let raw = RawRequest {
        url: (url, url_len),
        body: (body, body_len),
        signature: (core::ptr::null(), 0),
        settings: (signature_settings, signature_settings_len),
    };
    guard(|| {
        // SAFETY: per the contract.
        let (validator, request) = unsafe { (borrow(validator)?, raw.borrow()?) };
        let signature = validator.sign(&request)?;
        // SAFETY: per the contract.
        unsafe {
            write_text(
                signature.as_str().as_bytes(),
                out,
                out_capacity,
                written_out,
            )
        }
    })
}

/// Frees a validator and its secrets. NULL is ignored. The handle must not be used afterwards.
///
/// # Safety
/// `validator` must be NULL or a handle from `tws_validator_new` not yet freed, unused by other threads.
#[no_mangle]
pub unsafe extern "C" fn tws_validator_free(validator: *mut tws_validator) {
    guard(|| {
        if !validator.is_null() {
            // SAFETY: a live handle made by `Box::into_raw` in `tws_validator_new`, freed once.
            drop(unsafe { Box::from_raw(validator) });
        }
        Ok(())
    });
}
