//! Secrets as the verifier holds them: a [`Secret`] pre-keyed for both algorithms (with an optional key
//! id), or a raw one for one-shot calls, both seen by the engine as a [`Key`]; and the rule that a
//! blank secret matches nothing, judged without a branch on its bytes. [`crate::verdict`] and
//! [`explain`](mod@crate::explain) take keys from here.

use core::fmt;

use hmac::Hmac;
use sha2::Sha256;
use subtle::Choice;

use crate::mac::{keyed_sha256, Algorithm, MacState, Sha1Key};
use crate::scan::{blanks, is_blank};

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
    pub(crate) usable: Choice,
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
    pub(crate) fn named(self, wanted: Option<&[u8]>) -> bool {
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
