#![doc = include_str!("../README.md")]
#![no_std]
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod canonical;
mod error;
mod explain;
mod form;
mod mac;
mod scan;
mod scratch;
mod secret;
mod settings;
mod signature;
mod url;
mod validator;
mod verdict;

/// A deterministic stream of pseudo-random numbers for the unit tests' generated inputs: each call
/// steps a 64-bit LCG from `seed` and returns its top bits.
#[cfg(test)]
fn test_rng(mut seed: u64) -> impl FnMut() -> usize {
    move || {
        seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
        (seed >> 33) as usize
    }
}

pub use canonical::{BodyHash, Payload, Request};
pub use error::Error;
pub use explain::{
    Diagnosis, Explanation, InternalUrl, Mistake, ShownUrl, UrlCorrection, DROPPED_PORTS,
    MAX_EXPLAIN_URL_LEN,
};
pub use form::Span;
pub use mac::{hmac, macs_equal, Algorithm};
pub use scratch::{with_scratch, Overflow, DEFAULT_MAX_PARAMS};
pub use secret::{KeyIdTooLong, Secret, MAX_KEY_ID_LEN};
pub use settings::SignatureSettings;
pub use signature::Signature;
pub use url::{body_sha256_param, Candidate};
pub use validator::{explain, sign, verify, verify_with_scratch, Validator};
pub use verdict::Verified;
