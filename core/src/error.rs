//! The one error type of the core. Bindings map it once, at their boundary.

use core::fmt;

/// Why a request was not accepted.
///
/// The variants fall into two groups, told apart by [`Error::is_mismatch`]:
/// *malformed input* (the request, or the caller's use of the API, is not something a correct signature
/// could ever cover) and *mismatch* (well-formed, but not signed by any of the validator's secrets).
/// Messages never contain a secret, a MAC or any part of the request.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Error {
    /// The `X-Twilio-Signature` header is absent.
    MissingSignature,
    /// The signature is not 28 (HMAC-SHA1) or 44 (HMAC-SHA256) characters of canonical base64.
    MalformedSignature,
    /// The `X-Twilio-Webhooks-Signature-Settings` header is not a list of `name=value` pairs.
    MalformedSettings,
    /// The settings header names an algorithm this library does not implement.
    UnsupportedAlgorithm,
    /// A form body whose decoded names or values are not UTF-8.
    MalformedBody,
    /// The body is larger than the core can index (2 GiB).
    BodyTooLarge,
    /// The form has more parameters than the scratch buffer holds.
    TooManyParams,
    /// The URL carries `bodySHA256`, but the caller passed pre-split params instead of the raw body.
    BodyRequired,
    /// Signing: no secret may sign this request (the secret is empty or whitespace, or none has the key id the settings
    /// header names).
    NoEligibleSecret,
    /// No secret and URL candidate produce this signature.
    SignatureMismatch,
    /// The URL's `bodySHA256` is not the SHA-256 of the body.
    BodyHashMismatch,
}

impl Error {
    /// True when the request was well formed but not signed with any of the validator's secrets
    /// (or its body was altered). False for malformed input.
    pub const fn is_mismatch(self) -> bool {
        matches!(self, Self::SignatureMismatch | Self::BodyHashMismatch)
    }

    /// A short, static description: no secret, MAC or request data is ever part of it.
    pub const fn message(self) -> &'static str {
        match self {
            Self::MissingSignature => "the X-Twilio-Signature header is missing",
            Self::MalformedSignature => {
                "the X-Twilio-Signature header is not a base64 HMAC-SHA1 (28 characters) or HMAC-SHA256 (44 characters) signature matching the algorithm"
            }
            Self::MalformedSettings => {
                "the X-Twilio-Webhooks-Signature-Settings header is not a comma-separated list of name=value pairs"
            }
            Self::UnsupportedAlgorithm => {
                "the X-Twilio-Webhooks-Signature-Settings header names an unsupported algorithm (supported: HMAC_SHA1, HMAC_SHA256)"
            }
            Self::MalformedBody => "the form body does not decode to UTF-8 names and values",
            Self::BodyTooLarge => "the body is larger than 2 GiB",
            Self::TooManyParams => "the form body has more parameters than the configured maximum",
            Self::BodyRequired => {
                "the URL carries bodySHA256: verify it with the raw request body, not with parsed params"
            }
            Self::NoEligibleSecret => {
                "no secret may sign this request: the secret is empty or whitespace, or none has the key id named by the signature settings"
            }
            Self::SignatureMismatch => "the signature does not match the request",
            Self::BodyHashMismatch => "the body does not match the bodySHA256 in the URL",
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.message())
    }
}

impl core::error::Error for Error {}
