//! The verdict: the engine that tries every eligible key on every URL candidate ([`verify_with_keys`]),
//! the first (key, candidate) whose MAC over the signed string matches the received signature in
//! constant time ([`find_match`]), and what a match hands back ([`Verified`]). [`crate::validator`]'s
//! verify and [`explain`](mod@crate::explain)'s diagnosis both come here.

use core::fmt;

use sha2::{Digest, Sha256};

use crate::canonical::{Request, Signed};
use crate::form::Span;
use crate::mac::{Algorithm, Tag};
use crate::secret::Key;
use crate::settings::SignatureSettings;
use crate::signature::ReceivedSignature;
use crate::url::{Candidate, Candidates, UrlPieces};
use crate::Error;

/// A successful verification: which secret and URL candidate matched, and a replay key.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Verified {
    /// Index of the matching secret in the validator (0 for one-shot calls).
    pub secret_index: usize,
    /// Which form of the URL was signed.
    pub candidate: Candidate,
    /// The algorithm of the signature.
    pub algorithm: Algorithm,
    mac: Tag,
}

impl Verified {
    /// 32 bytes that identify the signed string: store them (with an expiry) to refuse a replay.
    ///
    /// A SHA-256 over the algorithm and the MAC, which is itself the keyed digest of the matched
    /// canonical string: every request that signs the same string has the same key — a retry, a
    /// replay, the same parameters re-split (the string has no separators), and two legitimately
    /// identical requests (a caller pressing 1 twice at one `<Gather>`); requests whose signed strings
    /// differ have different keys. See SECURITY.md ("Replays and retries") before refusing repeats. The
    /// unsigned `I-Twilio-Idempotency-Token` header plays no part, since an attacker can set it.
    /// Computed when asked for, so callers who do not use it do not pay for it.
    pub fn replay_key(&self) -> [u8; 32] {
        // Domain, algorithm and MAC fit in one SHA-256 block (at most 13 + 1 + 32 bytes + padding).
        let mut hash = Sha256::new();
        hash.update(b"tws-replay/1\0");
        hash.update([self.algorithm as u8]);
        hash.update(self.mac.as_bytes());
        hash.finalize().into()
    }
}

impl fmt::Debug for Verified {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Verified")
            .field("secret_index", &self.secret_index)
            .field("candidate", &self.candidate)
            .field("algorithm", &self.algorithm)
            .finish_non_exhaustive()
    }
}

/// The engine: tries every eligible key on every URL candidate, stopping at the first match.
pub(crate) fn verify_with_keys<'k>(
    keys: impl Iterator<Item = Key<'k>>,
    request: &Request<'_>,
    scratch: &mut [Span],
) -> Result<Verified, Error> {
    let settings = SignatureSettings::parse(request.settings)?;
    let received = ReceivedSignature::parse(request.signature, settings.algorithm)?;
    let signed = Signed::new(request, scratch)?;
    let keys = keys
        .enumerate()
        .filter(|(_, key)| key.named(settings.key_id));
    let mut verified = Verified {
        secret_index: 0,
        candidate: Candidate::AsGiven,
        algorithm: settings.algorithm,
        mac: Tag::EMPTY,
    };
    (verified.secret_index, verified.candidate) = find_match(
        keys,
        settings.algorithm,
        &received,
        &signed,
        request.url,
        &mut verified.mac,
    )?;
    if !signed.body_hash_matches() {
        return Err(Error::BodyHashMismatch);
    }
    Ok(verified)
}

/// The first (key, URL candidate) whose MAC over the canonical string equals the received signature,
/// its MAC written to `tag`: `Err(SignatureMismatch)` when there is none, `Err(MalformedBody)` when the
/// form turns out not to decode to UTF-8 (whatever the MAC; see [`Signed::feed`]). On an error `tag`
/// holds whatever MAC was computed last: callers drop it.
pub(crate) fn find_match<'k>(
    keys: impl Iterator<Item = (usize, Key<'k>)>,
    algorithm: Algorithm,
    received: &ReceivedSignature,
    signed: &Signed<'_>,
    url: &[u8],
    tag: &mut Tag,
) -> Result<(usize, Candidate), Error> {
    // Nearly every request matches the URL as given, so the other candidates are only worked out
    // once that has failed.
    let mut candidates = None;
    let mut fed = false;
    for (secret_index, key) in keys {
        // An unusable (blank) secret is tried like any other and can never match: its usability is
        // part of the constant-time verdict, not a branch before it.
        let usable = key.usable();
        let mut matches = |url: &UrlPieces<'_>| -> Result<bool, Error> {
            let mut mac = key.mac(algorithm);
            // A malformed form is refused on its first feed, before any verdict.
            signed.feed(url, &mut |bytes| mac.update(bytes))?;
            fed = true;
            // The MAC goes straight into the caller's `Verified` (returned by value through the
            // frames, it cost a GET about 5% in moves).
            *tag = mac.finalize();
            // The verdict, branched on below: the only branch on the compare's result.
            Ok(bool::from(received.ct_matches(tag) & usable))
        };
        if matches(&UrlPieces::whole(url))? {
            return Ok((secret_index, Candidate::AsGiven));
        }
        let others = candidates.get_or_insert_with(|| Candidates::new(url));
        for (candidate, url) in others.iter().skip(1) {
            if matches(&url)? {
                return Ok((secret_index, candidate));
            }
        }
    }
    if !fed {
        // No secret was tried: the form is still judged, as when there is one.
        signed.check()?;
    }
    Err(Error::SignatureMismatch)
}
