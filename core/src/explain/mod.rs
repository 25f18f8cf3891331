//! Diagnostics for a request that failed: which common mistake, if corrected, would have made it match.
//!
//! For information only. Nothing here ever accepts a request: the verdict in an [`Explanation`] is the
//! one [`crate::Validator::verify`] gives.
//!
//! Bounded: a diagnosis sorts the parameters once more and tries each eligible secret on at most six
//! rewritten URLs with the full parameters, each with its URL candidates as `verify` does (five with a
//! body: the WebSocket rewrites are tried only on a request without one), on at most five URLs with a
//! port added (one HMAC each, [`DROPPED_PORTS`]), plus at most two signed strings made of a URL alone.
//! A flood of forged requests therefore costs the helpers that log diagnoses a bounded number of
//! verifies per request: measured before the WebSocket, doubled-path and port rewrites, 4 to 7 times a
//! verify's time (the most on small requests where fixed costs weigh); those add at most two rewritten
//! URLs and five single HMACs per secret.
//!
//! The diagnosis, one file per concern, each handing its result to the next:
//!
//! 1. [`mistake`]: what can be wrong ([`Mistake`], with its description and fix) and what a diagnosis
//!    records ([`Diagnosis`]).
//! 2. [`rewrite`]: each URL mistake undone on the URL verified, in a stack buffer
//!    ([`Rewritten`](rewrite::Rewritten)).
//! 3. [`diagnose`](mod@diagnose): the rewritten URLs, other signed strings and other keys tried against the
//!    signature, in a fixed order and a bounded number, giving the first [`Diagnosis`] that matches.
//! 4. [`shown`] and [`internal`]: what a report shows, the URL verified and the URL signed
//!    ([`UrlCorrection`]), or the signs that the URL verified is an app's own ([`InternalUrl`]).
//!
//! Here: [`explain_with_keys`], which runs them for a refused request, and the [`Explanation`] it
//! hands back, with the report its `Display` writes.

mod diagnose;
mod internal;
mod mistake;
mod rewrite;
mod shown;

use core::fmt;

use crate::canonical::Request;
use crate::form::Span;
use crate::secret::Key;
use crate::url::Candidate;
use crate::verdict::Verified;
use crate::Error;
use diagnose::diagnose;

pub use internal::InternalUrl;
pub use mistake::{Diagnosis, Mistake, DROPPED_PORTS};
pub use rewrite::MAX_EXPLAIN_URL_LEN;
pub use shown::{ShownUrl, UrlCorrection};

/// The verdict on a request, and a diagnosis when it failed and a common mistake explains why.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Explanation {
    /// Exactly what `verify` returns for this request.
    pub verdict: Result<Verified, Error>,
    /// Why it failed, when a known mistake explains it; `None` when it passed, or nothing did.
    pub diagnosis: Option<Diagnosis>,
    /// When the signature matched nothing and no correction explains it: the URL verified, if it looks
    /// like an internal address rather than the public URL Twilio signs (see [`InternalUrl`]).
    pub internal_url: Option<InternalUrl>,
    /// For a diagnosis whose URLs a report shows (a WebSocket handshake's scheme, a doubled path, a
    /// port the app did not see): the URL verified and the URL that matched.
    pub correction: Option<UrlCorrection>,
}

const CHECK_SECRET: &str =
    "check that the secret is the Auth Token (or SharedKey secret) of the account \
                            that owns the number";

impl fmt::Display for Explanation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.verdict, &self.diagnosis, &self.internal_url) {
            (Ok(v), _, _) => write!(
                f,
                "valid: {} signature by secret #{} over {}",
                v.algorithm,
                v.secret_index,
                v.candidate.describe()
            ),
            (Err(e), Some(d), _) => {
                write!(f, "invalid: {e}.\nlikely cause: {}", d.mistake)?;
                if let Some(urls) = &self.correction {
                    // The URLs on lines of their own, without a full stop that could be read as theirs.
                    f.write_str(".\nurl verified: ")?;
                    urls.verified.write(f)?;
                    f.write_str("\nurl signed: ")?;
                    urls.signed.write(f)?;
                    return write!(f, "\nfix: {}.", d.mistake.fix());
                }
                if d.candidate != Candidate::AsGiven {
                    write!(f, " (matched {})", d.candidate.describe())?;
                }
                write!(f, ".\nfix: {}.", d.mistake.fix())
            }
            (Err(e), None, Some(internal)) => {
                write!(f, "invalid: {e}.\nlikely cause: the URL verified looks internal (")?;
                internal.write_signs(f)?;
                f.write_str(
                    "); Twilio signs the public URL configured in the console, and an app behind a proxy \
                     or load balancer sees its own address instead. No variant of this URL matched.\n\
                     url verified: ",
                )?;
                internal.shown.write(f)?;
                write!(
                    f,
                    "\nfix: verify the public URL: configure the base URL (public scheme, host and port), or \
                     trust your proxy so that its X-Forwarded-Proto and X-Forwarded-Host are used.\n\
                     if the app really is reached at exactly this URL, {CHECK_SECRET}."
                )
            }
            (Err(e), None, None) if e.is_mismatch() => write!(
                f,
                "invalid: {e}.\nno common mistake explains it: {CHECK_SECRET}, and that the URL is exactly \
                 the one Twilio requested."
            ),
            (Err(e), None, None) => write!(f, "invalid: {e}."),
        }
    }
}

/// Runs the diagnosis for a request that `verify` refused with `error`.
pub(crate) fn explain_with_keys<'k>(
    keys: &(impl Iterator<Item = Key<'k>> + Clone),
    request: &Request<'_>,
    verdict: Result<Verified, Error>,
    scratch: &mut [Span],
) -> Explanation {
    let (diagnosis, correction) = match verdict {
        Ok(_) => None,
        Err(error) => diagnose(keys, request, error, scratch),
    }
    .map_or((None, None), |(diagnosis, correction)| {
        (Some(diagnosis), correction)
    });
    let internal_url = match (verdict, diagnosis) {
        (Err(Error::SignatureMismatch), None) => InternalUrl::detect(request.url),
        _ => None,
    };
    Explanation {
        verdict,
        diagnosis,
        internal_url,
        correction,
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use crate::secret::Secret;
    use crate::validator::{sign, Validator};
    use std::format;
    use std::string::ToString;

    #[test]
    fn the_proxy_case_names_the_internal_url_and_not_the_token_first() {
        let body = "Body=Hello&From=%2B15551234567";
        let secret = b"12345678901234567890123456789012";
        let sig = sign(secret, &Request::post("https://example.com/sms", body)).unwrap();
        let validator = Validator::new(Secret::new(secret));
        for url in ["http://10.0.0.5:8080/sms", "http://127.0.0.1:5601/sms"] {
            let explanation =
                validator.explain(&Request::post(url, body).signature(sig.as_bytes()));
            assert!(explanation.diagnosis.is_none());
            assert_eq!(
                explanation.internal_url.map(|i| i.url().to_vec()),
                Some(url.as_bytes().to_vec())
            );
            let report = explanation.to_string();
            assert!(
                report.contains("likely cause: the URL verified looks internal")
                    && report.contains(&format!("url verified: {url}\n"))
                    && report.contains("configure the base URL")
                    && !report.contains("no common mistake"),
                "{report}"
            );
            let token = report.find("Auth Token").unwrap();
            assert!(token > report.find("fix:").unwrap(), "{report}");
        }
        // A public URL keeps the token advice.
        let report = validator
            .explain(&Request::post("https://example.com/other", body).signature(sig.as_bytes()))
            .to_string();
        assert!(report.contains("no common mistake explains it"), "{report}");
        assert!(!report.contains("internal"), "{report}");
        // Control bytes in the URL do not break the report's lines.
        let explanation = validator
            .explain(&Request::post("http://10.0.0.5/a\nb\x1b", body).signature(sig.as_bytes()));
        assert!(explanation
            .to_string()
            .contains("url verified: http://10.0.0.5/a%0Ab%1B\n"));
    }
}
