//! Secrets, the validator, and the verdict: request in → candidates × params → MAC → constant-time match.

use core::fmt;

use hmac::Hmac;
use sha2::{Digest, Sha256};
use subtle::Choice;

use crate::canonical::{Request, Signed};
use crate::explain::{explain_with_keys, Explanation};
use crate::form::Span;
use crate::mac::{keyed_sha256, Algorithm, MacState, Sha1Key, Tag};
use crate::scan::{blanks, is_blank};
use crate::settings::SignatureSettings;
use crate::signature::{ReceivedSignature, Signature};
use crate::url::{Candidate, Candidates, UrlPieces};
use crate::Error;

/// The most form parameters [`Validator::verify`] accepts: its stack scratch buffer holds 64 (2 KiB),
/// and for a form with more, this many (16 KiB). Real Twilio webhooks have well under 100; pass a
/// larger buffer to [`Validator::verify_with_scratch`] to accept more.
pub const DEFAULT_MAX_PARAMS: usize = 512;

/// The longest key id a [`Secret`] can carry.
pub const MAX_KEY_ID_LEN: usize = 64;

/// A key id longer than [`MAX_KEY_ID_LEN`] bytes was given.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KeyIdTooLong;

impl fmt::Display for KeyIdTooLong {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "a key id is at most {MAX_KEY_ID_LEN} bytes")
    }
}

impl core::error::Error for KeyIdTooLong {}

/// A secret (Auth Token or SharedKey secret), pre-keyed for both algorithms, with an optional key id.
///
/// The raw secret is not kept: only HMAC's keyed states. `Debug` shows the key id, never the secret.
///
/// A secret that is empty or only whitespace (`\t \n \v \f \r` and space) matches nothing (see
/// [`Secret::is_usable`]): an unset `TWILIO_AUTH_TOKEN` read as `""` or `"\n"` must not accept
/// requests that anyone can sign with that key. Bindings refuse such a secret up front; the core fails closed if one gets through.
#[derive(Clone)]
pub struct Secret {
    key_id: [u8; MAX_KEY_ID_LEN],
    key_id_len: Option<u8>,
    /// Whether the secret is usable, kept as a `Choice`: it is derived from the secret's bytes, so the
    /// verify path folds it into the constant-time verdict instead of branching on it.
    usable: Choice,
    sha1: Sha1Key,
    sha256: Hmac<Sha256>,
}

impl Secret {
    /// A secret without a key id: tried for every request (an Auth Token).
    pub fn new(secret: &[u8]) -> Self {
        Self {
            key_id: [0; MAX_KEY_ID_LEN],
            key_id_len: None,
            usable: usable_in_constant_time(secret),
            sha1: Sha1Key::new(secret),
            sha256: keyed_sha256(secret),
        }
    }

    /// A secret with a key id (a SharedKey): when a request's settings header names a key, only secrets
    /// with that id (or with none) are tried.
    pub fn with_key_id(key_id: &[u8], secret: &[u8]) -> Result<Self, KeyIdTooLong> {
        let mut this = Self::new(secret);
        this.key_id
            .get_mut(..key_id.len())
            .ok_or(KeyIdTooLong)?
            .copy_from_slice(key_id);
        this.key_id_len = Some(key_id.len() as u8);
        Ok(this)
    }

    /// Whether `secret` can be a secret at all: it holds a byte other than whitespace, which here is
    /// space, `\t`, `\n`, `\v` (0x0B), `\f` (0x0C) and `\r` (C's `isspace`; Rust's
    /// `is_ascii_whitespace` leaves out `\v`).
    ///
    /// This is the one rule every binding applies when a validator is built (and the reason a
    /// [`Secret`] made from such bytes matches nothing): an empty or whitespace-only token is always a
    /// configuration mistake (an unset variable, a file holding only a newline), and anyone could sign
    /// with it.
    ///
    /// ```
    /// use twilio_signature::Secret;
    /// assert!(Secret::is_usable(b"12345"));
    /// assert!(!Secret::is_usable(b""));
    /// assert!(!Secret::is_usable(b" \n\t"));
    /// assert!(!Secret::is_usable(b" \x0b\x0c\r "));
    /// ```
    pub const fn is_usable(secret: &[u8]) -> bool {
        let mut at = 0;
        while at < secret.len() {
            if !is_blank(secret[at]) {
                return true;
            }
            at += 1;
        }
        false
    }

    /// The key id, if any.
    pub fn key_id(&self) -> Option<&[u8]> {
        self.key_id_len.map(|len| &self.key_id[..usize::from(len)])
    }

    fn mac(&self, algorithm: Algorithm) -> MacState {
        match algorithm {
            Algorithm::HmacSha1 => MacState::Sha1(self.sha1.start()),
            Algorithm::HmacSha256 => MacState::Sha256(self.sha256.clone()),
        }
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let key_id = self
            .key_id()
            .map(|id| core::str::from_utf8(id).unwrap_or("<non-UTF-8>"));
        f.debug_struct("Secret")
            .field("key_id", &key_id)
            .field("secret", &"<redacted>")
            .finish()
    }
}

/// A secret as the engine uses it: pre-keyed, or raw for one-shot calls (keyed only for the algorithm
/// the request names).
#[derive(Clone, Copy)]
pub(crate) enum Key<'a> {
    Prepared(&'a Secret),
    Raw(&'a [u8]),
}

impl<'a> Key<'a> {
    pub(crate) fn mac(self, algorithm: Algorithm) -> MacState {
        match self {
            Self::Prepared(secret) => secret.mac(algorithm),
            Self::Raw(secret) => MacState::new(algorithm, secret),
        }
    }

    fn key_id(self) -> Option<&'a [u8]> {
        match self {
            Self::Prepared(secret) => secret.key_id(),
            Self::Raw(_) => None,
        }
    }

    /// Whether the secret is usable (see [`Secret::is_usable`]), without a branch on its bytes.
    pub(crate) fn usable(self) -> Choice {
        match self {
            Self::Prepared(secret) => secret.usable,
            Self::Raw(secret) => usable_in_constant_time(secret),
        }
    }

    /// For signing and diagnosis, which may branch on it (verify folds [`Key::usable`] into its verdict).
    pub(crate) fn is_empty(self) -> bool {
        !bool::from(self.usable())
    }

    /// Whether a request naming `wanted` (or no key) may be checked with this key: key ids are public.
    fn named(self, wanted: Option<&[u8]>) -> bool {
        match (wanted, self.key_id()) {
            (Some(wanted), Some(id)) => wanted == id,
            _ => true,
        }
    }

    /// Whether this key may sign, or be tried by a diagnosis, for a request naming `wanted` (or no key).
    /// Empty secrets never are.
    pub(crate) fn eligible(self, wanted: Option<&[u8]>) -> bool {
        !self.is_empty() && self.named(wanted)
    }
}

/// [`Secret::is_usable`] with the secret's bytes flowing only into arithmetic: no branch, no early
/// exit, so a constant-time check (tests/ct) sees no secret-dependent control flow.
fn usable_in_constant_time(secret: &[u8]) -> Choice {
    // Sixteen bytes at a time; the last chunk padded with spaces (blank, so they change nothing).
    let mut nonblank = 0u32;
    let (chunks, rest) = secret.as_chunks::<16>();
    for chunk in chunks {
        nonblank |= u32::from(!blanks(chunk));
    }
    if !rest.is_empty() {
        // Only the secret's length (public) decides this branch.
        let mut last = [b' '; 16];
        last[..rest.len()].copy_from_slice(rest);
        nonblank |= u32::from(!blanks(&last));
    }
    // 1 when any bit is set, by arithmetic.
    Choice::from(((nonblank | nonblank.wrapping_neg()) >> 31) as u8)
}

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
fn verify_with_keys<'k>(
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

fn sign_with_key(
    key: Key<'_>,
    request: &Request<'_>,
    scratch: &mut [Span],
) -> Result<Signature, Error> {
    let settings = SignatureSettings::parse(request.settings)?;
    if !key.eligible(settings.key_id) {
        return Err(Error::NoEligibleSecret);
    }
    let signed = Signed::new(request, scratch)?;
    if !signed.body_hash_matches() {
        return Err(Error::BodyHashMismatch);
    }
    let mut mac = key.mac(settings.algorithm);
    signed.feed(&UrlPieces::whole(request.url), &mut |bytes| {
        mac.update(bytes);
    })?;
    Ok(Signature::encode(&mac.finalize()))
}

/// Verifies a request against one raw secret, keying HMAC only for the algorithm the request names.
///
/// For many requests with the same secret, a [`Validator`] is faster: it keys HMAC once.
///
/// ```
/// use twilio_signature::{verify, Request};
/// let url = "https://mycompany.com/myapp.php?foo=1&bar=2";
/// let body = "CallSid=CA1234567890ABCDE&Caller=%2B14158675309&Digits=1234&From=%2B14158675309&To=%2B18005551212";
/// let request = Request::post(url, body).signature("RSOYDt4T1cUTdK1PDd93/VVr8B8=");
/// assert!(verify(b"12345", &request).is_ok());
/// ```
pub fn verify(secret: &[u8], request: &Request<'_>) -> Result<Verified, Error> {
    with_stack_scratch(request, |scratch| {
        verify_with_scratch(secret, request, scratch)
    })
}

/// [`verify`] with the parameters sorted in `scratch` (see [`Validator::verify_with_scratch`]).
pub fn verify_with_scratch(
    secret: &[u8],
    request: &Request<'_>,
    scratch: &mut [Span],
) -> Result<Verified, Error> {
    verify_with_keys(core::iter::once(Key::Raw(secret)), request, scratch)
}

/// Computes the signature Twilio would send for `request` (its own signature is ignored; its settings
/// header chooses the algorithm). A URL with `bodySHA256` must match the body.
///
/// ```
/// use twilio_signature::{sign, Request};
/// let request = Request::post("https://example.com/sms", b"Body=Hi&From=%2B15551234567");
/// let signature = sign(b"auth token", &request).unwrap();
/// assert_eq!(signature.as_str().len(), 28);
/// ```
pub fn sign(secret: &[u8], request: &Request<'_>) -> Result<Signature, Error> {
    with_stack_scratch(request, |scratch| {
        sign_with_key(Key::Raw(secret), request, scratch)
    })
}

/// [`Validator::explain`] for one raw secret.
pub fn explain(secret: &[u8], request: &Request<'_>) -> Explanation {
    with_stack_scratch(request, |scratch| {
        let verdict = verify_with_keys(core::iter::once(Key::Raw(secret)), request, scratch);
        explain_with_keys(
            &core::iter::once(Key::Raw(secret)),
            request,
            verdict,
            scratch,
        )
    })
}

/// The stack buffer tried first: enough for any real webhook, and cheap to zero (2 KiB).
const SMALL_SCRATCH: usize = 64;

/// What the `*_with_scratch` calls return, asked whether the scratch buffer ran out of room
/// ([`Error::TooManyParams`]): then a larger buffer may succeed. Callers that keep a small buffer on the
/// stack try it first and size a larger one (with [`Request::max_params`]) only when this says so.
///
/// ```
/// use twilio_signature::{Overflow, Request, Secret, Span, Validator};
/// let validator = Validator::new(Secret::new(b"12345"));
/// let request = Request::post("https://example.com/sms", "a=1&b=2&c=3")
///     .signature("RSOYDt4T1cUTdK1PDd93/VVr8B8=");
/// assert!(validator.verify_with_scratch(&request, &mut [Span::EMPTY; 2]).overflowed());
/// assert!(!validator.verify_with_scratch(&request, &mut [Span::EMPTY; 3]).overflowed());
/// ```
pub trait Overflow {
    /// True when the scratch buffer was too small for the form's parameters.
    fn overflowed(&self) -> bool;
}

impl<T> Overflow for Result<T, Error> {
    /// True for [`Error::TooManyParams`].
    fn overflowed(&self) -> bool {
        matches!(self, Err(Error::TooManyParams))
    }
}

impl Overflow for Explanation {
    /// True when the verdict is [`Error::TooManyParams`].
    fn overflowed(&self) -> bool {
        self.verdict.overflowed()
    }
}

/// Runs `f` with a zeroed stack scratch buffer of [`SMALL_SCRATCH`] spans (none for a request without
/// parameters), and only if the form has more parameters than that, again with [`DEFAULT_MAX_PARAMS`].
/// Trying the small buffer first costs a form with more parameters one aborted indexing pass of 64, and
/// spares every other request a count of its parameters up front.
fn with_stack_scratch<R: Overflow>(
    request: &Request<'_>,
    mut f: impl FnMut(&mut [Span]) -> R,
) -> R {
    if request.has_no_params() {
        // A GET (or an empty form): nothing to sort, and 2 KiB not to zero.
        return f(&mut []);
    }
    let small = f(&mut [Span::EMPTY; SMALL_SCRATCH]);
    if !small.overflowed() {
        return small;
    }
    with_large_stack_scratch(f)
}

/// The second try of [`with_stack_scratch`], in its own frame: 16 KiB of stack that the usual request
/// does not reserve (nor probe) on every call.
#[cold]
#[inline(never)]
fn with_large_stack_scratch<R>(mut f: impl FnMut(&mut [Span]) -> R) -> R {
    f(&mut [Span::EMPTY; DEFAULT_MAX_PARAMS])
}

/// Verifies webhook requests against one or more pre-keyed secrets.
///
/// Several secrets serve key rotation (primary and secondary Auth Token), several subaccounts, or
/// SharedKeys with ids. The validator is generic over where its secrets live, `S`: anything that is
/// `AsRef<[Secret]>`. [`Validator::new`] holds one secret inline (`[Secret; 1]`, the default);
/// [`Validator::with_secrets`] takes a borrowed slice or array (`&[Secret]`), an array by value, a
/// `Vec<Secret>` or an `Arc<[Secret]>`. Owned storage makes a `'static + Send + Sync` validator that
/// can be built from runtime configuration and shared in an `Arc` (web app state, a tower layer). The
/// storage is only read: verifying, signing and explaining never allocate whatever `S` is.
///
/// ```
/// use twilio_signature::{Request, Secret, Validator};
/// let validator = Validator::new(Secret::new(b"12345"));
/// let request = Request::get("https://mycompany.com/myapp.php?foo=1&bar=2")
///     .signature("RSOYDt4T1cUTdK1PDd93/VVr8B8=");
/// // A GET covers the URL alone, so this POST signature does not match it.
/// assert!(validator.verify(&request).is_err());
/// ```
#[derive(Clone)]
pub struct Validator<S = [Secret; 1]> {
    secrets: S,
}

impl<S: AsRef<[Secret]>> fmt::Debug for Validator<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Validator")
            .field("secrets", &self.secrets())
            .finish()
    }
}

impl Validator {
    /// A validator for one secret.
    pub fn new(secret: Secret) -> Self {
        Self { secrets: [secret] }
    }
}

impl<S: AsRef<[Secret]>> Validator<S> {
    /// A validator for several secrets, tried in order. [`Verified::secret_index`] says which matched.
    ///
    /// Borrowed (`&secrets`) or owned: a validator that owns its secrets is `'static` and can be
    /// shared across threads.
    ///
    /// ```
    /// # extern crate alloc;
    /// use alloc::{sync::Arc, vec::Vec};
    /// use twilio_signature::{Secret, Validator};
    /// // Read from configuration at start-up: primary and secondary Auth Token during rotation.
    /// let tokens = ["primary token", "secondary token"];
    /// let secrets: Vec<Secret> = tokens.iter().map(|t| Secret::new(t.as_bytes())).collect();
    /// let shared = Arc::new(Validator::with_secrets(secrets));
    /// fn app_state<T: Send + Sync + 'static>(_: T) {}
    /// app_state(shared);
    /// ```
    pub fn with_secrets(secrets: S) -> Self {
        Self { secrets }
    }

    /// The secrets, in the order they are tried.
    pub fn secrets(&self) -> &[Secret] {
        self.secrets.as_ref()
    }

    /// Whether any secret can match: false when there is none, or when every one is empty or only
    /// whitespace (see [`Secret::is_usable`]). Such a validator refuses every request;
    /// web helpers check this to answer 500 for the misconfiguration instead of 403 for each request.
    ///
    /// ```
    /// use twilio_signature::{Secret, Validator};
    /// assert!(Validator::new(Secret::new(b"12345")).has_usable_secret());
    /// assert!(!Validator::with_secrets([Secret::new(b""), Secret::new(b" \n")]).has_usable_secret());
    /// assert!(!Validator::with_secrets(&[][..]).has_usable_secret());
    /// ```
    pub fn has_usable_secret(&self) -> bool {
        self.secrets()
            .iter()
            .any(|secret| bool::from(secret.usable))
    }

    fn keys(&self) -> impl Iterator<Item = Key<'_>> + Clone {
        self.secrets().iter().map(Key::Prepared)
    }

    /// Verifies a request, with room for [`DEFAULT_MAX_PARAMS`] form parameters on the stack.
    pub fn verify(&self, request: &Request<'_>) -> Result<Verified, Error> {
        with_stack_scratch(request, |scratch| {
            self.verify_with_scratch(request, scratch)
        })
    }

    /// Verifies a request, sorting parameters in `scratch`: a form with more distinct-or-not parameters
    /// than `scratch.len()` is refused with [`Error::TooManyParams`].
    pub fn verify_with_scratch(
        &self,
        request: &Request<'_>,
        scratch: &mut [Span],
    ) -> Result<Verified, Error> {
        verify_with_keys(self.keys(), request, scratch)
    }

    /// Verifies `request` and, if it fails, tries what users usually get wrong (see [`Mistake`]).
    /// Diagnostic only: the verdict is exactly [`Validator::verify`]'s.
    ///
    /// [`Mistake`]: crate::Mistake
    pub fn explain(&self, request: &Request<'_>) -> Explanation {
        with_stack_scratch(request, |scratch| {
            self.explain_with_scratch(request, scratch)
        })
    }

    /// [`Validator::explain`] with the parameters sorted in `scratch` (see
    /// [`Validator::verify_with_scratch`]).
    pub fn explain_with_scratch(&self, request: &Request<'_>, scratch: &mut [Span]) -> Explanation {
        let verdict = self.verify_with_scratch(request, scratch);
        explain_with_keys(&self.keys(), request, verdict, scratch)
    }

    /// Signs `request` with the first secret its settings header allows (see [`sign`]).
    pub fn sign(&self, request: &Request<'_>) -> Result<Signature, Error> {
        with_stack_scratch(request, |scratch| self.sign_with_scratch(request, scratch))
    }

    /// [`Validator::sign`] with the parameters sorted in `scratch`.
    pub fn sign_with_scratch(
        &self,
        request: &Request<'_>,
        scratch: &mut [Span],
    ) -> Result<Signature, Error> {
        let settings = SignatureSettings::parse(request.settings)?;
        let key = self
            .keys()
            .find(|key| key.eligible(settings.key_id))
            .ok_or(Error::NoEligibleSecret)?;
        sign_with_key(key, request, scratch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usability_in_constant_time_is_is_usable() {
        // Every byte at every place of a blank secret of each length and each blank, across the
        // sixteen-byte chunks and the padded last one.
        for len in 0..40 {
            for place in 0..len.max(1) {
                for byte in 0..=255u8 {
                    for blank in *b" \t\n\x0b\x0c\r" {
                        let mut secret = [blank; 40];
                        if len > 0 {
                            secret[place] = byte;
                        }
                        let secret = &secret[..len];
                        assert_eq!(
                            bool::from(usable_in_constant_time(secret)),
                            Secret::is_usable(secret),
                            "{secret:?}"
                        );
                    }
                }
            }
        }
    }
}
