#![doc = include_str!("../README.md")]
// The exported names are C's (`tws_status`, `TWS_OK`), not Rust's.
#![allow(non_camel_case_types)]

/// A `&'static CStr` built at compile time from a `&'static str` constant expression (which must not
/// contain a NUL): the verifier's messages become C strings without a copy at run time.
macro_rules! c_str {
    ($text:expr) => {{
        const TEXT: &str = $text;
        const BYTES: [u8; TEXT.len() + 1] = $crate::nul_terminated(TEXT);
        const C: &::core::ffi::CStr = match ::core::ffi::CStr::from_bytes_with_nul(&BYTES) {
            Ok(c) => c,
            Err(_) => c"(message contains a NUL byte)",
        };
        C
    }};
}

mod boundary;
mod oneshot;
mod request;
mod status;
mod validator;
mod verified;

pub use oneshot::{tws_explain, tws_sign, tws_verify};
pub use status::{tws_status, tws_status_is_mismatch, tws_status_message};
pub use validator::{
    tws_validator, tws_validator_add_secret, tws_validator_explain, tws_validator_free,
    tws_validator_new, tws_validator_set_max_params, tws_validator_sign, tws_validator_verify,
    TWS_DEFAULT_MAX_PARAMS,
};
pub use verified::{tws_algorithm, tws_candidate, tws_verified};

/// The longest key id `tws_validator_add_secret` accepts, in bytes.
// A literal, so that cbindgen can write it into the header; the assertion keeps it the core's.
pub const TWS_MAX_KEY_ID_LEN: usize = 64;
const _: () = assert!(TWS_MAX_KEY_ID_LEN == tws_core::MAX_KEY_ID_LEN);

/// The longest signature `tws_sign` writes (HMAC-SHA256: 44 base64 characters), without the NUL.
pub const TWS_MAX_SIGNATURE_LEN: usize = 44;

/// `text` followed by a NUL, in an array of exactly `N = text.len() + 1` bytes.
const fn nul_terminated<const N: usize>(text: &str) -> [u8; N] {
    let bytes = text.as_bytes();
    let mut out = [0u8; N];
    let mut i = 0;
    while i < bytes.len() {
        out[i] = bytes[i];
        i += 1;
    }
    out
}

/// The library's version (`"0.1.0"`), a static NUL-terminated string. Never NULL; do not free it.
#[no_mangle]
pub extern "C" fn tws_version() -> *const core::ffi::c_char {
    c_str!(env!("CARGO_PKG_VERSION")).as_ptr()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_version_is_the_crate_version() {
        // SAFETY: tws_version returns a static NUL-terminated string.
        let version = unsafe { core::ffi::CStr::from_ptr(tws_version()) };
        assert_eq!(version.to_str().unwrap(), env!("CARGO_PKG_VERSION"));
    }

    #[test]
    fn the_longest_signature_is_the_sha256_one() {
        assert_eq!(
            TWS_MAX_SIGNATURE_LEN,
            tws_core::Algorithm::HmacSha256.signature_len()
        );
    }
}
