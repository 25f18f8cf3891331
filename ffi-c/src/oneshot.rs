//! One-shot calls with a single secret: `tws_verify`, `tws_sign`, `tws_explain`.
//!
//! Each keys HMAC for the call (verify only for the algorithm the request names); a service verifying
//! many requests with the same secret saves the keying by keeping a `tws_validator`. Nothing is
//! allocated unless a form has more than the core's stack buffer holds.

use core::ffi::c_int;

use crate::boundary::{guard, input, write_text};
use crate::request::RawRequest;
use crate::validator::{with_scratch, TWS_DEFAULT_MAX_PARAMS};
use tws_core::{Secret, Validator};

/// Verifies one webhook request against one secret (the Auth Token, or the SharedKey secret when the
/// settings header names HMAC_SHA256). Returns `TWS_OK` (0) when Twilio signed it, otherwise the
/// reason. A secret that is empty or only whitespace (`\t \n \v \f \r`, space) matches nothing
/// (`TWS_SIGNATURE_MISMATCH` even for a request signed with it); check configuration up front with a
/// `tws_validator`, whose `tws_validator_add_secret` refuses it with `TWS_UNUSABLE_SECRET`.
///
/// `url` is the full public URL Twilio requested; `body` the raw request body (a form, or JSON when the
/// URL carries `bodySHA256`; NULL with length 0 for a GET); `signature` the `X-Twilio-Signature` header
/// (NULL with length 0 when absent: `TWS_MISSING_SIGNATURE`); `signature_settings` the
/// `X-Twilio-Webhooks-Signature-Settings` header (NULL with length 0 when absent). Forms may have up to
/// `TWS_DEFAULT_MAX_PARAMS` parameters.
///
/// # Safety
/// Every non-NULL pointer must point to its length in readable bytes.
#[no_mangle]
pub unsafe extern "C" fn tws_verify(
    secret: *const u8,
    secret_len: usize,
    url: *const u8,
    url_len: usize,
    body: *const u8,
    body_len: usize,
    signature: *const u8,
    signature_len: usize,
    signature_settings: *const u8,
    signature_settings_len: usize,
) -> c_int {
    let raw = RawRequest {
        url: (url, url_len),
        body: (body, body_len),
        signature: (signature, signature_len),
        settings: (signature_settings, signature_settings_len),
    };
    guard(|| {
        // SAFETY: per the contract.
        let (secret, request) = unsafe { (input(secret, secret_len)?, raw.borrow()?) };
        with_scratch(TWS_DEFAULT_MAX_PARAMS, &request, |scratch| {
            tws_core::verify_with_scratch(secret, &request, scratch)
        })?;
        Ok(())
    })
}

/// Computes the signature Twilio would send for a request with this secret (the settings header, if
/// any, chooses the algorithm) and writes it NUL-terminated into `out`, its length (28 or 44) into
/// `*written_out`. A buffer of `TWS_MAX_SIGNATURE_LEN + 1` bytes is always enough; a smaller one that
/// does not fit gets `TWS_BUFFER_TOO_SMALL`, nothing in `out`, and the length in `*written_out`.
/// A URL with `bodySHA256` must match the body (`TWS_BODY_HASH_MISMATCH`). Forms: at most
/// `TWS_DEFAULT_MAX_PARAMS` parameters. An empty or whitespace-only secret signs nothing (`TWS_NO_ELIGIBLE_SECRET`).
///
/// # Safety
/// Every non-NULL input pointer must point to its length in readable bytes; `out` must be NULL or hold
/// `out_capacity` writable bytes; `written_out` must be NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn tws_sign(
    secret: *const u8,
    secret_len: usize,
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
        let (secret, request) = unsafe { (input(secret, secret_len)?, raw.borrow()?) };
        let validator = Validator::new(Secret::new(secret));
        let signature = with_scratch(TWS_DEFAULT_MAX_PARAMS, &request, |scratch| {
            validator.sign_with_scratch(&request, scratch)
        })?;
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

/// Writes a readable report on one request into `out` (NUL-terminated; length without the NUL in
/// `*written_out`): the verdict and, when it failed, which common mistake (http vs https, a port, a
/// trailing slash, an extra query, a JSON body verified as a form, a missing settings header, a
/// WebSocket handshake verified as https:// instead of wss://, a doubled path, a port the app does not
/// see…) would have made it match, and how to fix it. Returns `TWS_OK` whatever the verdict. Buffer too small:
/// `TWS_BUFFER_TOO_SMALL`, nothing in `out`, the needed length (without the NUL) in `*written_out`; so
/// `out` NULL with `out_capacity` 0 asks the size.
///
/// # Safety
/// As `tws_verify`; `out` must be NULL or hold `out_capacity` writable bytes; `written_out` must be NULL
/// or writable.
#[no_mangle]
pub unsafe extern "C" fn tws_explain(
    secret: *const u8,
    secret_len: usize,
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
        let (secret, request) = unsafe { (input(secret, secret_len)?, raw.borrow()?) };
        let validator = Validator::new(Secret::new(secret));
        let text = with_scratch(TWS_DEFAULT_MAX_PARAMS, &request, |scratch| {
            validator.explain_with_scratch(&request, scratch)
        })
        .to_string();
        // SAFETY: per the contract.
        unsafe { write_text(text.as_bytes(), out, out_capacity, written_out) }
    })
}
