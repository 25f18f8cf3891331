#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]
// The README is the crate docs: its example (and every doctest) must build without a warning.
#![doc(test(attr(deny(warnings))))]
#![warn(missing_docs)]

mod body;
mod config;
pub mod idempotency;
mod layer;
mod proxy;
mod refusal;
mod service;

pub use config::{DEFAULT_BODY_LIMIT, DEFAULT_MAX_PARAMS};
pub use layer::{ConfigError, TwilioSignatureLayer};
pub use proxy::PeerAddr;
pub use refusal::{Rejection, ResponseBody};
pub use service::{ResponseFuture, TwilioSignature};
pub use twilio_signature::{Secret, Validator, Verified};
