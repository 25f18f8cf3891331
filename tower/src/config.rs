//! What every request is checked with: the settings a layer holds and each of its services shares.
//!
//! The layer builds a [`Config`]; the service reads it. Both depend on this module, and it on neither.

use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use http::request::Parts;
use twilio_signature::{Secret, Validator};

use crate::idempotency::Idempotency;
use crate::proxy::{peer_addr_of, IpRange, PeerAddr, PeerLookup};
use crate::refusal::{OnReject, Printable};

/// The default body limit: 1 MiB. Twilio's webhooks are a few kilobytes.
pub const DEFAULT_BODY_LIMIT: usize = 1024 * 1024;

/// How many form parameters a request may have by default (the C, Python and Go bindings' default).
pub const DEFAULT_MAX_PARAMS: usize = 10_000;

/// What every request is checked with. Shared by the layer and each service it makes.
pub(crate) struct Config<S> {
    pub(crate) validator: Arc<Validator<S>>,
    /// The public origin and mount prefix, without a trailing slash.
    pub(crate) base_url: Option<Box<str>>,
    pub(crate) trusted_proxies: Box<[IpRange]>,
    pub(crate) peer_addr: PeerLookup,
    pub(crate) body_limit: usize,
    pub(crate) max_params: usize,
    /// The server terminates TLS itself: without base_url the scheme is https.
    pub(crate) tls: bool,
    pub(crate) on_reject: Option<OnReject>,
    /// Retries answered once, when set.
    pub(crate) idempotency: Option<Idempotency>,
    /// Whether the warning about a base_url that repeats the request path was given.
    warned_overlap: AtomicBool,
}

// Not derived: the validator sits behind an `Arc`, so neither needs `S: Clone`.
impl<S> Clone for Config<S> {
    fn clone(&self) -> Self {
        Self {
            validator: Arc::clone(&self.validator),
            base_url: self.base_url.clone(),
            trusted_proxies: self.trusted_proxies.clone(),
            peer_addr: self.peer_addr,
            body_limit: self.body_limit,
            max_params: self.max_params,
            tls: self.tls,
            on_reject: self.on_reject.clone(),
            idempotency: self.idempotency.clone(),
            warned_overlap: AtomicBool::new(self.warned_overlap.load(Ordering::Relaxed)),
        }
    }
}

impl<S> Config<S> {
    /// The defaults: no base URL, no trusted proxies, the peer address from [`PeerAddr`], the default
    /// limits, plain HTTP, refusals logged.
    pub(crate) fn new(validator: Arc<Validator<S>>) -> Self {
        Self {
            validator,
            base_url: None,
            trusted_proxies: Box::new([]),
            peer_addr: peer_addr_of::<PeerAddr>,
            body_limit: DEFAULT_BODY_LIMIT,
            max_params: DEFAULT_MAX_PARAMS,
            tls: false,
            on_reject: None,
            idempotency: None,
            warned_overlap: AtomicBool::new(false),
        }
    }

    /// Warns once (per layer) when the base URL's path ends with what the request path starts with:
    /// a route pasted into base_url, so that the URL verified repeats it.
    pub(crate) fn warn_if_base_url_repeats_the_path(&self, parts: &Parts, url: &[u8]) {
        let Some(base) = &self.base_url else {
            return;
        };
        if self.warned_overlap.load(Ordering::Relaxed) {
            return;
        }
        let path = parts.uri.path();
        let Some(repeated) = repeated_segments(base_path(base), path) else {
            return;
        };
        if self.warned_overlap.swap(true, Ordering::Relaxed) {
            return;
        }
        tracing::warn!(
            target: "twilio_signature_tower",
            "base_url \"{}\" ends with \"{}\", which the request path \"{}\" starts with: the URL \
             verified is \"{}\". Give base_url as the public origin plus only the mount prefix the app \
             does not see (usually just the origin).",
            Printable(base.as_bytes()),
            Printable(repeated.as_bytes()),
            Printable(path.as_bytes()),
            Printable(url),
        );
    }
}

/// The path of a base URL (`https://h/twilio` → `/twilio`), empty for an origin.
fn base_path(base: &str) -> &str {
    let rest = base.split_once("://").map_or(base, |(_, rest)| rest);
    rest.find('/').map_or("", |i| &rest[i..])
}

/// The longest run of whole segments that ends `base` and starts `path` (`/twilio/sms` and
/// `/twilio/sms/x` → `/twilio/sms`), if any.
fn repeated_segments(base: &str, path: &str) -> Option<String> {
    let base: Vec<&str> = base.split('/').filter(|s| !s.is_empty()).collect();
    let path: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let longest = (1..=base.len().min(path.len()))
        .rev()
        .find(|&k| base[base.len() - k..] == path[..k])?;
    Some(format!("/{}", base[base.len() - longest..].join("/")))
}

impl<S: AsRef<[Secret]>> fmt::Debug for Config<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TwilioSignatureLayer")
            .field("validator", &self.validator)
            .field("base_url", &self.base_url)
            .field("trusted_proxies", &self.trusted_proxies)
            .field("body_limit", &self.body_limit)
            .field("max_params", &self.max_params)
            .field("served_over_tls", &self.tls)
            .field("on_reject", &self.on_reject.as_ref().map(|_| "Fn"))
            .field("idempotency", &self.idempotency)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_base_path_overlaps_a_request_path_when_its_last_segments_start_it() {
        assert_eq!(base_path("https://h"), "");
        assert_eq!(base_path("https://h:8443/twilio/sms"), "/twilio/sms");
        let cases = [
            ("/twilio/sms", "/twilio/sms", Some("/twilio/sms")),
            ("/twilio/sms", "/sms", Some("/sms")),
            ("/twilio", "/twilio/sms", Some("/twilio")),
            ("/app/twilio", "/twilio/sms/x", Some("/twilio")),
            ("/a/b/c", "/b/c/d", Some("/b/c")),
            ("", "/sms", None),
            ("/twilio", "/sms", None),
            ("/twilio/sms", "/twilio", None),
            ("/twilio", "/", None),
            ("/sm", "/sms", None),
        ];
        for (base, path, expected) in cases {
            assert_eq!(
                repeated_segments(base, path).as_deref(),
                expected,
                "{base} {path}"
            );
        }
    }
}
