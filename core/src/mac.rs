//! HMAC over either algorithm, keyed without a fallible constructor, and the constant-time tag compare.

use hmac::digest::{Digest, KeyInit};
use hmac::{Hmac, Mac};
use sha1::Sha1;
use sha2::Sha256;
use subtle::ConstantTimeEq;

/// The HMAC a signature is computed with.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Algorithm {
    /// HMAC-SHA1 keyed with the Auth Token: the default, and what a request without
    /// `X-Twilio-Webhooks-Signature-Settings` uses.
    HmacSha1,
    /// HMAC-SHA256 keyed with a SharedKey secret, named by the settings header.
    HmacSha256,
}

impl Algorithm {
    /// Twilio's name for it, as it appears in the settings header.
    pub const fn name(self) -> &'static str {
        match self {
            Self::HmacSha1 => "HMAC_SHA1",
            Self::HmacSha256 => "HMAC_SHA256",
        }
    }

    /// Length of the MAC in bytes.
    pub const fn mac_len(self) -> usize {
        match self {
            Self::HmacSha1 => 20,
            Self::HmacSha256 => 32,
        }
    }

    /// Length of the base64 signature header in characters.
    pub const fn signature_len(self) -> usize {
        match self {
            Self::HmacSha1 => 28,
            Self::HmacSha256 => 44,
        }
    }

    /// Parses a Twilio algorithm name, case-insensitively.
    pub fn from_name(name: &[u8]) -> Option<Self> {
        [Self::HmacSha1, Self::HmacSha256]
            .into_iter()
            .find(|alg| alg.name().as_bytes().eq_ignore_ascii_case(name))
    }
}

impl core::fmt::Display for Algorithm {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.name())
    }
}

/// Both algorithms have 64-byte blocks.
const BLOCK: usize = 64;

/// HMAC's key rule (RFC 2104 §2): a key longer than a block is hashed first, then zero-padded to a block.
/// Doing it here lets us use the infallible `KeyInit::new`.
fn block_key<D: Digest>(secret: &[u8]) -> [u8; BLOCK] {
    let mut block = [0u8; BLOCK];
    if secret.len() > BLOCK {
        let digest = D::digest(secret);
        block[..digest.len()].copy_from_slice(&digest);
    } else {
        block[..secret.len()].copy_from_slice(secret);
    }
    block
}

/// HMAC-SHA1 keyed with `secret`.
pub(crate) fn keyed_sha1(secret: &[u8]) -> Hmac<Sha1> {
    Hmac::new(&block_key::<Sha1>(secret).into())
}

/// HMAC-SHA256 keyed with `secret`.
pub(crate) fn keyed_sha256(secret: &[u8]) -> Hmac<Sha256> {
    Hmac::new(&block_key::<Sha256>(secret).into())
}

/// A keyed HMAC in progress.
#[derive(Clone)]
pub(crate) enum MacState {
    Sha1(Hmac<Sha1>),
    Sha256(Hmac<Sha256>),
}

impl MacState {
    pub(crate) fn new(algorithm: Algorithm, secret: &[u8]) -> Self {
        match algorithm {
            Algorithm::HmacSha1 => Self::Sha1(keyed_sha1(secret)),
            Algorithm::HmacSha256 => Self::Sha256(keyed_sha256(secret)),
        }
    }

    pub(crate) fn update(&mut self, bytes: &[u8]) {
        match self {
            Self::Sha1(mac) => mac.update(bytes),
            Self::Sha256(mac) => mac.update(bytes),
        }
    }

    pub(crate) fn finalize(self) -> Tag {
        let mut tag = Tag {
            bytes: [0; 32],
            len: 0,
        };
        match self {
            Self::Sha1(mac) => tag.set(&mac.finalize().into_bytes()),
            Self::Sha256(mac) => tag.set(&mac.finalize().into_bytes()),
        }
        tag
    }
}

/// A finished MAC: 20 or 32 bytes.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct Tag {
    bytes: [u8; 32],
    len: usize,
}

impl Tag {
    fn set(&mut self, mac: &[u8]) {
        self.bytes[..mac.len()].copy_from_slice(mac);
        self.len = mac.len();
    }

    pub(crate) fn as_bytes(&self) -> &[u8] {
        &self.bytes[..self.len]
    }

    /// The MAC followed by zeros, to 32 bytes.
    pub(crate) fn padded(&self) -> &[u8; 32] {
        &self.bytes
    }
}

/// Compares a computed MAC with a received one in time independent of their contents.
/// Lengths are public (they follow from the algorithm); a length difference is simply unequal.
pub fn macs_equal(computed: &[u8], received: &[u8]) -> bool {
    bool::from(computed.ct_eq(received))
}

/// Computes `HMAC(secret, message)` in full with the crate's own keying, for known-answer tests and for
/// callers who need the raw MAC. Returns the number of bytes written to `out` (20 or 32).
pub fn hmac(algorithm: Algorithm, secret: &[u8], message: &[u8], out: &mut [u8; 32]) -> usize {
    let mut mac = MacState::new(algorithm, secret);
    mac.update(message);
    let tag = mac.finalize();
    out[..tag.len].copy_from_slice(tag.as_bytes());
    tag.len
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::signature::{ReceivedSignature, Signature};

    #[test]
    fn a_tag_matches_its_own_signature_and_nothing_a_bit_or_a_length_away() {
        for algorithm in [Algorithm::HmacSha1, Algorithm::HmacSha256] {
            let mut mac = MacState::new(algorithm, b"12345");
            mac.update(b"https://example.com/sms");
            let tag = mac.finalize();
            let text = Signature::encode(&tag);
            let received = ReceivedSignature::parse(Some(text.as_bytes()), algorithm).unwrap();
            assert!(bool::from(received.ct_matches(&tag)));
            for bit in 0..8 * tag.len {
                let mut other = tag;
                other.bytes[bit / 8] ^= 1 << (bit % 8);
                assert!(
                    !bool::from(received.ct_matches(&other)),
                    "{algorithm} bit {bit}"
                );
            }
            // The same bytes followed by zeros, but a different length, are not the MAC.
            let mut longer = tag;
            longer.len = if tag.len == 20 { 32 } else { 20 };
            assert!(!bool::from(received.ct_matches(&longer)), "{algorithm}");
        }
    }
}
