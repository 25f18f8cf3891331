//! Diagnostics for a request that failed: which common mistake, if corrected, would have made it match.
//!
//! For information only. Nothing here ever accepts a request: the verdict in an [`Explanation`] is the
//! one [`crate::Validator::verify`] gives.

use core::fmt;

use crate::canonical::{Payload, Request, Signed};
use crate::form::Span;
use crate::mac::Algorithm;
use crate::settings::SignatureSettings;
use crate::signature::ReceivedSignature;
use crate::url::Candidate;
use crate::validator::{find_match, Key, Verified};
use crate::Error;

/// URLs longer than this are not rewritten into diagnostic variants (the verdict is still given).
pub const MAX_EXPLAIN_URL_LEN: usize = 4096;

/// A mistake that explains a failed verification.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Mistake {
    /// Twilio signed `https://` but the app passed `http://` (or the reverse): usually a proxy or load
    /// balancer terminates TLS in front of the app.
    SchemeSwapped,
    /// Twilio's URL had a trailing slash where the app's has none, or the reverse.
    TrailingSlash,
    /// Twilio's URL had a different scheme *and* a different trailing slash.
    SchemeSwappedAndTrailingSlash,
    /// Twilio signed the URL without the query string the app passed.
    ExtraQuery,
    /// The signature covers the URL alone: a JSON webhook verified as a form (its URL lost its
    /// `bodySHA256`), or a GET verified with a body.
    ParamsNotSigned,
    /// The signature matches, but the body is not the one whose hash Twilio put in `bodySHA256`: the app
    /// passed re-serialised or re-decoded JSON instead of the raw bytes.
    BodyAltered,
    /// A 44-character (HMAC-SHA256) signature arrived without `X-Twilio-Webhooks-Signature-Settings`.
    SettingsHeaderMissing,
    /// A 28-character (HMAC-SHA1) signature arrived with a settings header naming HMAC-SHA256.
    SettingsHeaderUnexpected,
    /// A secret matched, but not one with the key id the settings header names.
    KeyIdMismatch,
}

impl Mistake {
    /// What went wrong, in a sentence.
    pub const fn describe(self) -> &'static str {
        match self {
            Self::SchemeSwapped => "Twilio signed the URL with the other scheme (http vs https)",
            Self::TrailingSlash => "Twilio signed the URL with a different trailing slash",
            Self::SchemeSwappedAndTrailingSlash => {
                "Twilio signed the URL with the other scheme (http vs https) and a different trailing slash"
            }
            Self::ExtraQuery => "Twilio signed the URL without the query string that was passed",
            Self::ParamsNotSigned => "the signature covers the URL alone, not the body's parameters",
            Self::BodyAltered => "the URL is signed, but the body does not match its bodySHA256",
            Self::SettingsHeaderMissing => {
                "this is an HMAC-SHA256 (SharedKey) signature, but the X-Twilio-Webhooks-Signature-Settings header was not passed"
            }
            Self::SettingsHeaderUnexpected => {
                "this is an HMAC-SHA1 signature, but a settings header naming HMAC-SHA256 was passed"
            }
            Self::KeyIdMismatch => "a secret with a different key id than the settings header names matched",
        }
    }

    /// What to change in the app.
    pub const fn fix(self) -> &'static str {
        match self {
            Self::SchemeSwapped | Self::SchemeSwappedAndTrailingSlash => {
                "build the URL from the public scheme: configure the base URL, or trust your proxy's X-Forwarded-Proto"
            }
            Self::TrailingSlash => "pass the URL exactly as configured in the Twilio console, slash included or not",
            Self::ExtraQuery => "pass the URL Twilio requested; do not append a query string",
            Self::ParamsNotSigned => {
                "for JSON webhooks pass the full URL including ?bodySHA256=..., and the raw body"
            }
            Self::BodyAltered => "pass the raw request body bytes, not parsed and re-serialised JSON",
            Self::SettingsHeaderMissing | Self::SettingsHeaderUnexpected => {
                "pass the X-Twilio-Webhooks-Signature-Settings header exactly as received"
            }
            Self::KeyIdMismatch => "give each SharedKey secret its own key id as shown in the Twilio console",
        }
    }
}

impl fmt::Display for Mistake {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.describe())
    }
}

/// A mistake that, corrected, makes the request match.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Diagnosis {
    /// What was wrong.
    pub mistake: Mistake,
    /// The secret that matched the corrected request.
    pub secret_index: usize,
    /// The candidate form of the corrected URL that matched.
    pub candidate: Candidate,
}

/// The verdict on a request, and a diagnosis when it failed and a common mistake explains why.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Explanation {
    /// Exactly what `verify` returns for this request.
    pub verdict: Result<Verified, Error>,
    /// Why it failed, when a known mistake explains it; `None` when it passed, or nothing did.
    pub diagnosis: Option<Diagnosis>,
}

impl fmt::Display for Explanation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.verdict, &self.diagnosis) {
            (Ok(v), _) => write!(
                f,
                "valid: {} signature by secret #{} over {}",
                v.algorithm,
                v.secret_index,
                v.candidate.describe()
            ),
            (Err(e), Some(d)) => {
                write!(f, "invalid: {e}.\nlikely cause: {}", d.mistake)?;
                if d.candidate != Candidate::AsGiven {
                    write!(f, " (matched {})", d.candidate.describe())?;
                }
                write!(f, ".\nfix: {}.", d.mistake.fix())
            }
            (Err(e), None) if e.is_mismatch() => write!(
                f,
                "invalid: {e}.\nno common mistake explains it: check that the secret is the Auth Token (or SharedKey \
                 secret) of the account that owns the number, and that the URL is exactly the one Twilio requested."
            ),
            (Err(e), None) => write!(f, "invalid: {e}."),
        }
    }
}

/// A URL rewritten into a stack buffer.
struct Rewritten {
    buf: [u8; MAX_EXPLAIN_URL_LEN + 1],
    len: usize,
}

impl Rewritten {
    fn from_pieces(pieces: &[&[u8]]) -> Option<Self> {
        let mut this = Self {
            buf: [0; MAX_EXPLAIN_URL_LEN + 1],
            len: 0,
        };
        for piece in pieces {
            this.buf
                .get_mut(this.len..this.len + piece.len())?
                .copy_from_slice(piece);
            this.len += piece.len();
        }
        Some(this)
    }

    fn as_bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}

fn swap_scheme(url: &[u8]) -> Option<Rewritten> {
    let (scheme, rest) = if url.len() >= 8 && url[..8].eq_ignore_ascii_case(b"https://") {
        (&b"http://"[..], &url[8..])
    } else if url.len() >= 7 && url[..7].eq_ignore_ascii_case(b"http://") {
        (&b"https://"[..], &url[7..])
    } else {
        return None;
    };
    Rewritten::from_pieces(&[scheme, rest])
}

fn toggle_trailing_slash(url: &[u8]) -> Option<Rewritten> {
    let path_end = url
        .iter()
        .position(|&b| b == b'?' || b == b'#')
        .unwrap_or(url.len());
    let (path, rest) = url.split_at(path_end);
    match path.strip_suffix(b"/") {
        Some(without) if !without.ends_with(b"/") && !without.ends_with(b":") => {
            Rewritten::from_pieces(&[without, rest])
        }
        Some(_) => None,
        None => Rewritten::from_pieces(&[path, b"/", rest]),
    }
}

fn drop_query(url: &[u8]) -> Option<Rewritten> {
    let start = url.iter().position(|&b| b == b'?')?;
    let end = url[start..]
        .iter()
        .position(|&b| b == b'#')
        .map_or(url.len(), |i| start + i);
    Rewritten::from_pieces(&[&url[..start], &url[end..]])
}

/// Runs the diagnosis for a request that `verify` refused with `error`.
pub(crate) fn explain_with_keys<'k>(
    keys: &(impl Iterator<Item = Key<'k>> + Clone),
    request: &Request<'_>,
    verdict: Result<Verified, Error>,
    scratch: &mut [Span],
) -> Explanation {
    let diagnosis = match verdict {
        Ok(_) => None,
        Err(error) => diagnose(keys, request, error, scratch),
    };
    Explanation { verdict, diagnosis }
}

/// Tries corrected versions of one request against a set of keys.
struct Attempt<'r, 'k, K> {
    keys: &'r K,
    request: &'r Request<'r>,
    key_id: Option<&'r [u8]>,
    scratch: &'r mut [Span],
    _keys: core::marker::PhantomData<Key<'k>>,
}

/// Which keys an attempt uses.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Keys {
    All,
    Eligible,
    Ineligible,
}

impl<'k, K: Iterator<Item = Key<'k>> + Clone> Attempt<'_, 'k, K> {
    /// Reports `mistake` if `request` (a corrected copy of the original) matches with `algorithm` and the
    /// chosen keys; `url_only` drops the body and params from the signed string.
    fn check(
        &mut self,
        request: &Request<'_>,
        algorithm: Algorithm,
        keys: Keys,
        url_only: bool,
        mistake: Mistake,
    ) -> Option<Diagnosis> {
        let received = ReceivedSignature::parse(request.signature, algorithm).ok()?;
        let signed = if url_only {
            Signed::new(&Request::get(request.url), self.scratch).ok()?
        } else {
            Signed::new(request, self.scratch).ok()?
        };
        let key_id = self.key_id;
        let keys = self.keys.clone().enumerate().filter(|(_, key)| {
            // Empty secrets match nothing, not even for a diagnosis.
            !key.is_empty()
                && match keys {
                    Keys::All => true,
                    Keys::Eligible => key.eligible(key_id),
                    Keys::Ineligible => !key.eligible(key_id),
                }
        });
        let (secret_index, candidate, _) =
            find_match(keys, algorithm, &received, &signed, request.url)?;
        Some(Diagnosis {
            mistake,
            secret_index,
            candidate,
        })
    }

    /// The original request with its URL rewritten by `mistake`'s correction.
    fn check_url(&mut self, mistake: Mistake, algorithm: Algorithm) -> Option<Diagnosis> {
        let url = self.request.url;
        let rewritten = match mistake {
            Mistake::SchemeSwapped => swap_scheme(url),
            Mistake::TrailingSlash => toggle_trailing_slash(url),
            Mistake::SchemeSwappedAndTrailingSlash => {
                swap_scheme(url).and_then(|u| toggle_trailing_slash(u.as_bytes()))
            }
            _ => drop_query(url),
        }?;
        let request = self.request.with_url(rewritten.as_bytes());
        self.check(&request, algorithm, Keys::Eligible, false, mistake)
    }
}

fn diagnose<'k>(
    keys: &(impl Iterator<Item = Key<'k>> + Clone),
    request: &Request<'_>,
    error: Error,
    scratch: &mut [Span],
) -> Option<Diagnosis> {
    let settings = SignatureSettings::parse(request.settings).ok()?;
    let mut attempt = Attempt {
        keys,
        request,
        key_id: settings.key_id,
        scratch,
        _keys: core::marker::PhantomData,
    };
    let alg = settings.algorithm;
    match error {
        Error::MalformedSignature => {
            let (other, mistake) = match alg {
                Algorithm::HmacSha1 => (Algorithm::HmacSha256, Mistake::SettingsHeaderMissing),
                Algorithm::HmacSha256 => (Algorithm::HmacSha1, Mistake::SettingsHeaderUnexpected),
            };
            attempt.check(request, other, Keys::All, false, mistake)
        }
        // The URL matched: only the body differs.
        Error::BodyHashMismatch => {
            attempt.check(request, alg, Keys::Eligible, true, Mistake::BodyAltered)
        }
        Error::SignatureMismatch => {
            let has_payload = match request.payload {
                Payload::Body(body) => !body.is_empty(),
                Payload::Params(pairs) => !pairs.is_empty(),
            };
            has_payload
                .then(|| {
                    attempt.check(request, alg, Keys::Eligible, true, Mistake::ParamsNotSigned)
                })
                .flatten()
                .or_else(|| {
                    attempt.check(
                        request,
                        alg,
                        Keys::Ineligible,
                        false,
                        Mistake::KeyIdMismatch,
                    )
                })
                .or_else(|| {
                    [
                        Mistake::SchemeSwapped,
                        Mistake::TrailingSlash,
                        Mistake::SchemeSwappedAndTrailingSlash,
                        Mistake::ExtraQuery,
                    ]
                    .into_iter()
                    .find_map(|mistake| attempt.check_url(mistake, alg))
                })
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(r: Option<Rewritten>) -> Option<&'static str> {
        r.map(|r| {
            &*std::string::String::from_utf8(r.as_bytes().to_vec())
                .unwrap()
                .leak()
        })
    }
    extern crate std;

    #[test]
    fn url_rewrites() {
        assert_eq!(text(swap_scheme(b"http://h/p")), Some("https://h/p"));
        assert_eq!(text(swap_scheme(b"HTTPS://h/p")), Some("http://h/p"));
        assert_eq!(text(swap_scheme(b"ftp://h/p")), None);
        assert_eq!(
            text(toggle_trailing_slash(b"https://h/p?x=1")),
            Some("https://h/p/?x=1")
        );
        assert_eq!(
            text(toggle_trailing_slash(b"https://h/p/#f")),
            Some("https://h/p#f")
        );
        assert_eq!(
            text(toggle_trailing_slash(b"https://h/")),
            Some("https://h")
        );
        assert_eq!(
            text(drop_query(b"https://h/p?x=1#f")),
            Some("https://h/p#f")
        );
        assert_eq!(text(drop_query(b"https://h/p")), None);
        assert!(Rewritten::from_pieces(&[&[b'a'; MAX_EXPLAIN_URL_LEN + 2]]).is_none());
    }
}
