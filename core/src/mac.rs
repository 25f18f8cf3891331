//! HMAC over either algorithm, keyed without a fallible constructor, and the constant-time tag compare.

use hmac::digest::{Digest, KeyInit};
use hmac::{Hmac, Mac};
use sha1::block_api::compress as sha1_compress;
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

/// HMAC-SHA1 keyed with `secret`: SHA-1's state after the key's inner and after its outer pad block
/// (RFC 2104), so a MAC costs the message's blocks and two more.
///
/// Written over the `sha1` crate's compression function rather than through the `hmac` crate: for a
/// webhook, the generic wrappers (cloning a keyed state, buffering, padding, the second hash's own
/// buffer) cost more than the two compressions a MAC adds to the message's (122 ns against 41.5 ns for
/// 20 bytes, `bench/analysis.md`). The unit tests hold it to the `hmac` crate.
#[derive(Clone)]
pub(crate) struct Sha1Key {
    inner: [u32; 5],
    outer: [u32; 5],
}

/// SHA-1's initial state (FIPS 180-4 §5.3.1).
const SHA1_INITIAL: [u32; 5] = [
    0x6745_2301,
    0xEFCD_AB89,
    0x98BA_DCFE,
    0x1032_5476,
    0xC3D2_E1F0,
];

impl Sha1Key {
    pub(crate) fn new(secret: &[u8]) -> Self {
        let key = block_key::<Sha1>(secret);
        let after = |pad: u8| {
            let mut state = SHA1_INITIAL;
            sha1_compress(&mut state, &[key.map(|byte| byte ^ pad)]);
            state
        };
        Self {
            inner: after(0x36),
            outer: after(0x5c),
        }
    }

    /// A MAC of nothing yet.
    pub(crate) fn start(&self) -> Sha1Mac {
        Sha1Mac {
            state: self.inner,
            outer: self.outer,
            partial: [0; BLOCK],
            filled: 0,
            len: 0,
        }
    }
}

/// An HMAC-SHA1 in progress: whole blocks are compressed straight from the bytes given; only a
/// block's worth is held between updates.
#[derive(Clone)]
pub(crate) struct Sha1Mac {
    state: [u32; 5],
    outer: [u32; 5],
    /// The message's bytes after its last whole block: `partial[..filled]`.
    partial: [u8; BLOCK],
    filled: usize,
    /// Message bytes so far.
    len: u64,
}

impl Sha1Mac {
    pub(crate) fn update(&mut self, mut bytes: &[u8]) {
        self.len += bytes.len() as u64;
        if self.filled > 0 {
            let take = (BLOCK - self.filled).min(bytes.len());
            self.partial[self.filled..self.filled + take].copy_from_slice(&bytes[..take]);
            self.filled += take;
            bytes = &bytes[take..];
            if self.filled < BLOCK {
                return;
            }
            sha1_compress(&mut self.state, core::slice::from_ref(&self.partial));
            self.filled = 0;
        }
        let (blocks, rest) = bytes.as_chunks::<BLOCK>();
        sha1_compress(&mut self.state, blocks);
        self.partial[..rest.len()].copy_from_slice(rest);
        self.filled = rest.len();
    }

    pub(crate) fn finalize(&self) -> [u8; 20] {
        // The inner hash: the message after the inner pad block, then SHA-1's padding (a one bit,
        // zeros, the length in bits of all that was hashed, big-endian, at the end of a block).
        let mut state = self.state;
        let mut block = self.partial;
        block[self.filled] = 0x80;
        block[self.filled + 1..].fill(0);
        if self.filled >= BLOCK - 8 {
            sha1_compress(&mut state, core::slice::from_ref(&block));
            block = [0; BLOCK];
        }
        let bits = (BLOCK as u64 + self.len) * 8;
        block[BLOCK - 8..].copy_from_slice(&bits.to_be_bytes());
        sha1_compress(&mut state, core::slice::from_ref(&block));
        // The outer hash: the inner hash after the outer pad block, in one padded block.
        let mut outer_block = [0; BLOCK];
        outer_block[..20].copy_from_slice(&words_be(&state));
        outer_block[20] = 0x80;
        outer_block[BLOCK - 8..].copy_from_slice(&((BLOCK as u64 + 20) * 8).to_be_bytes());
        let mut outer = self.outer;
        sha1_compress(&mut outer, core::slice::from_ref(&outer_block));
        words_be(&outer)
    }
}

/// A SHA-1 state as its digest: five big-endian words.
fn words_be(state: &[u32; 5]) -> [u8; 20] {
    let mut out = [0; 20];
    for (bytes, word) in out.chunks_exact_mut(4).zip(state) {
        bytes.copy_from_slice(&word.to_be_bytes());
    }
    out
}

/// HMAC-SHA256 keyed with `secret`.
pub(crate) fn keyed_sha256(secret: &[u8]) -> Hmac<Sha256> {
    Hmac::new(&block_key::<Sha256>(secret).into())
}

/// A keyed HMAC in progress.
#[derive(Clone)]
pub(crate) enum MacState {
    Sha1(Sha1Mac),
    Sha256(Hmac<Sha256>),
}

impl MacState {
    pub(crate) fn new(algorithm: Algorithm, secret: &[u8]) -> Self {
        match algorithm {
            Algorithm::HmacSha1 => Self::Sha1(Sha1Key::new(secret).start()),
            Algorithm::HmacSha256 => Self::Sha256(keyed_sha256(secret)),
        }
    }

    pub(crate) fn update(&mut self, bytes: &[u8]) {
        match self {
            Self::Sha1(mac) => mac.update(bytes),
            Self::Sha256(mac) => mac.update(bytes),
        }
    }

    /// The MAC. By reference: a state passed by value was copied into the call (a 150-byte `memcpy`
    /// per verify).
    pub(crate) fn finalize(&self) -> Tag {
        let mut tag = Tag::EMPTY;
        match self {
            Self::Sha1(mac) => tag.set(&mac.finalize()),
            Self::Sha256(mac) => tag.set(&mac.clone().finalize().into_bytes()),
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
    pub(crate) const EMPTY: Self = Self {
        bytes: [0; 32],
        len: 0,
    };

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
    fn hmac_sha1_over_the_compression_function_is_the_hmac_crate_s() {
        let mut next = crate::test_rng(31u64);
        let bytes: [u8; 400] = core::array::from_fn(|i| (i * 7 + i / 13) as u8);
        for round in 0..20_000 {
            // Keys of every length up to two blocks (longer than one block is hashed first) and
            // messages fed in random pieces, whose lengths put the padding everywhere in a block.
            let key = &bytes[..next() % 131];
            let len = if round % 4 == 0 {
                next() % 400
            } else {
                next() % 140
            };
            let message = &bytes[400 - len..];
            let mut ours = Sha1Key::new(key).start();
            let mut theirs = <Hmac<Sha1> as KeyInit>::new_from_slice(key).unwrap();
            let mut rest = message;
            while !rest.is_empty() {
                let (piece, after) = rest.split_at(next() % (rest.len() + 1));
                ours.update(piece);
                theirs.update(piece);
                rest = after;
            }
            assert_eq!(
                ours.finalize()[..],
                theirs.finalize().into_bytes()[..],
                "key {} bytes, message {len} bytes",
                key.len()
            );
        }
    }

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
