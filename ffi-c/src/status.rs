//! Status codes: every function returns one, and `tws_status_message` turns any into text.
//!
//! The core's [`Error`] becomes a code in exactly one place, `From<Error> for tws_status`.

use core::ffi::{c_char, c_int, CStr};

use tws_core::Error;

/// What a `tws_` function returns (as an `int`). `TWS_OK` is 0; codes 1–99 mirror the verifier's
/// errors, codes from 100 are about the call itself. The numbers are stable: new codes get new numbers.
///
/// Verification refused the request for any code other than `TWS_OK`. Of those, only
/// `TWS_SIGNATURE_MISMATCH` and `TWS_BODY_HASH_MISMATCH` mean "well formed, but not signed by your
/// secret" (see `tws_status_is_mismatch`); the others mean malformed input or a wrong call.
#[allow(non_camel_case_types)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(C)]
pub enum tws_status {
    /// Success.
    TWS_OK = 0,
    /// The `X-Twilio-Signature` header is absent (signature NULL with length 0).
    TWS_MISSING_SIGNATURE = 1,
    /// The signature is not 28 (HMAC-SHA1) or 44 (HMAC-SHA256) characters of canonical base64.
    TWS_MALFORMED_SIGNATURE = 2,
    /// The `X-Twilio-Webhooks-Signature-Settings` header is not a list of `name=value` pairs.
    TWS_MALFORMED_SETTINGS = 3,
    /// The settings header names an algorithm other than HMAC_SHA1 / HMAC_SHA256.
    TWS_UNSUPPORTED_ALGORITHM = 4,
    /// A form body whose decoded names or values are not UTF-8.
    TWS_MALFORMED_BODY = 5,
    /// The body is larger than 2 GiB.
    TWS_BODY_TOO_LARGE = 6,
    /// The form has more parameters than the maximum (`tws_validator_set_max_params`).
    TWS_TOO_MANY_PARAMS = 7,
    /// The URL carries `bodySHA256` but no raw body was given (not produced by this API, which always
    /// takes the raw body; kept so the numbering mirrors the verifier's errors).
    TWS_BODY_REQUIRED = 8,
    /// Signing: no secret has the key id the settings header names.
    TWS_NO_ELIGIBLE_SECRET = 9,
    /// No secret and URL candidate produce this signature.
    TWS_SIGNATURE_MISMATCH = 10,
    /// The URL's `bodySHA256` is not the SHA-256 of the body.
    TWS_BODY_HASH_MISMATCH = 11,
    /// A required pointer is NULL (or NULL with a non-zero length).
    TWS_NULL_PARAMETER = 100,
    /// The library panicked (a bug): the call had no effect.
    TWS_PANIC = 101,
    /// The output buffer is too small; the needed length was reported.
    TWS_BUFFER_TOO_SMALL = 102,
    /// A key id is longer than `TWS_MAX_KEY_ID_LEN` bytes.
    TWS_INVALID_KEY_ID = 103,
    /// An argument is out of range: a length above `PTRDIFF_MAX`, or a maximum of 0 parameters.
    TWS_INVALID_PARAMETER = 104,
    /// The verifier reported an error this version of the C ABI does not know.
    TWS_UNKNOWN_ERROR = 105,
    /// `tws_validator_add_secret`: the secret is empty or only whitespace (`\t \n \v \f \r`,
    /// space; an unset environment variable read as `""` or `"\n"`), so it would match nothing and
    /// was not added.
    TWS_UNUSABLE_SECRET = 106,
}

impl tws_status {
    /// Every status, for lookups by number.
    pub(crate) const ALL: [Self; 19] = [
        Self::TWS_OK,
        Self::TWS_MISSING_SIGNATURE,
        Self::TWS_MALFORMED_SIGNATURE,
        Self::TWS_MALFORMED_SETTINGS,
        Self::TWS_UNSUPPORTED_ALGORITHM,
        Self::TWS_MALFORMED_BODY,
        Self::TWS_BODY_TOO_LARGE,
        Self::TWS_TOO_MANY_PARAMS,
        Self::TWS_BODY_REQUIRED,
        Self::TWS_NO_ELIGIBLE_SECRET,
        Self::TWS_SIGNATURE_MISMATCH,
        Self::TWS_BODY_HASH_MISMATCH,
        Self::TWS_NULL_PARAMETER,
        Self::TWS_PANIC,
        Self::TWS_BUFFER_TOO_SMALL,
        Self::TWS_INVALID_KEY_ID,
        Self::TWS_INVALID_PARAMETER,
        Self::TWS_UNKNOWN_ERROR,
        Self::TWS_UNUSABLE_SECRET,
    ];

    pub(crate) fn from_code(code: c_int) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|status| *status as c_int == code)
    }

    /// A static, NUL-terminated description; the verifier's own message for its errors.
    pub(crate) const fn message(self) -> &'static CStr {
        match self {
            Self::TWS_OK => c"ok",
            Self::TWS_MISSING_SIGNATURE => c_str!(Error::MissingSignature.message()),
            Self::TWS_MALFORMED_SIGNATURE => c_str!(Error::MalformedSignature.message()),
            Self::TWS_MALFORMED_SETTINGS => c_str!(Error::MalformedSettings.message()),
            Self::TWS_UNSUPPORTED_ALGORITHM => c_str!(Error::UnsupportedAlgorithm.message()),
            Self::TWS_MALFORMED_BODY => c_str!(Error::MalformedBody.message()),
            Self::TWS_BODY_TOO_LARGE => c_str!(Error::BodyTooLarge.message()),
            Self::TWS_TOO_MANY_PARAMS => c_str!(Error::TooManyParams.message()),
            Self::TWS_BODY_REQUIRED => c_str!(Error::BodyRequired.message()),
            Self::TWS_NO_ELIGIBLE_SECRET => c_str!(Error::NoEligibleSecret.message()),
            Self::TWS_SIGNATURE_MISMATCH => c_str!(Error::SignatureMismatch.message()),
            Self::TWS_BODY_HASH_MISMATCH => c_str!(Error::BodyHashMismatch.message()),
            Self::TWS_NULL_PARAMETER => c"a required pointer argument is NULL",
            Self::TWS_PANIC => c"internal error: the library panicked (please report it)",
            Self::TWS_BUFFER_TOO_SMALL => c"the output buffer is too small",
            Self::TWS_INVALID_KEY_ID => c"a key id is at most TWS_MAX_KEY_ID_LEN bytes",
            Self::TWS_INVALID_PARAMETER => {
                c"an argument is out of range (a length above PTRDIFF_MAX, or a maximum of 0)"
            }
            Self::TWS_UNKNOWN_ERROR => c"the verifier refused the request for an unknown reason",
            Self::TWS_UNUSABLE_SECRET => {
                c"the secret is empty or only whitespace (is the Auth Token variable set?)"
            }
        }
    }
}

/// The one mapping from the verifier's errors to C status codes.
impl From<Error> for tws_status {
    fn from(error: Error) -> Self {
        match error {
            Error::MissingSignature => Self::TWS_MISSING_SIGNATURE,
            Error::MalformedSignature => Self::TWS_MALFORMED_SIGNATURE,
            Error::MalformedSettings => Self::TWS_MALFORMED_SETTINGS,
            Error::UnsupportedAlgorithm => Self::TWS_UNSUPPORTED_ALGORITHM,
            Error::MalformedBody => Self::TWS_MALFORMED_BODY,
            Error::BodyTooLarge => Self::TWS_BODY_TOO_LARGE,
            Error::TooManyParams => Self::TWS_TOO_MANY_PARAMS,
            Error::BodyRequired => Self::TWS_BODY_REQUIRED,
            Error::NoEligibleSecret => Self::TWS_NO_ELIGIBLE_SECRET,
            Error::SignatureMismatch => Self::TWS_SIGNATURE_MISMATCH,
            Error::BodyHashMismatch => Self::TWS_BODY_HASH_MISMATCH,
            // `Error` is non-exhaustive: a newer core may refuse for a reason this ABI has no number for.
            _ => Self::TWS_UNKNOWN_ERROR,
        }
    }
}

/// A static, NUL-terminated description of a status code (any `int`: an unknown code gets a message
/// saying so). Never NULL; the string must not be freed.
#[no_mangle]
pub extern "C" fn tws_status_message(code: c_int) -> *const c_char {
    tws_status::from_code(code)
        .map_or(c"unknown status code", tws_status::message)
        .as_ptr()
}

/// True for the two codes that mean "well formed, but not signed with any of the secrets"
/// (`TWS_SIGNATURE_MISMATCH`, `TWS_BODY_HASH_MISMATCH`); false for every other code.
#[no_mangle]
pub extern "C" fn tws_status_is_mismatch(code: c_int) -> bool {
    matches!(
        tws_status::from_code(code),
        Some(tws_status::TWS_SIGNATURE_MISMATCH | tws_status::TWS_BODY_HASH_MISMATCH)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const CORE_ERRORS: [Error; 11] = [
        Error::MissingSignature,
        Error::MalformedSignature,
        Error::MalformedSettings,
        Error::UnsupportedAlgorithm,
        Error::MalformedBody,
        Error::BodyTooLarge,
        Error::TooManyParams,
        Error::BodyRequired,
        Error::NoEligibleSecret,
        Error::SignatureMismatch,
        Error::BodyHashMismatch,
    ];

    #[test]
    fn every_core_error_has_its_own_code_and_the_core_message() {
        for error in CORE_ERRORS {
            let status = tws_status::from(error);
            assert!((1..100).contains(&(status as c_int)), "{error:?}");
            assert_eq!(status.message().to_str().unwrap(), error.message());
            assert_eq!(tws_status_is_mismatch(status as c_int), error.is_mismatch());
        }
        let mut codes: Vec<c_int> = CORE_ERRORS
            .iter()
            .map(|e| tws_status::from(*e) as c_int)
            .collect();
        codes.dedup();
        assert_eq!(codes.len(), CORE_ERRORS.len());
    }

    #[test]
    fn every_code_round_trips_and_has_a_distinct_message() {
        let mut messages = Vec::new();
        for status in tws_status::ALL {
            assert_eq!(tws_status::from_code(status as c_int), Some(status));
            let message = status.message().to_str().unwrap();
            assert!(!message.is_empty());
            assert!(!messages.contains(&message), "{message}");
            messages.push(message);
        }
        assert_eq!(tws_status::from_code(-1), None);
        assert_eq!(tws_status::from_code(99), None);
    }
}
