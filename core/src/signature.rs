//! The `X-Twilio-Signature` header: strict parsing before any HMAC, and encoding for signing.

use base64ct::{Base64, Encoding};
use subtle::{Choice, ConstantTimeEq};

use crate::mac::{Algorithm, Tag};
use crate::Error;

/// A received signature, decoded. Only canonical base64 of exactly the algorithm's MAC length parses,
/// so each MAC has exactly one accepted header value.
pub(crate) struct ReceivedSignature {
    bytes: [u8; 32],
    len: usize,
}

impl ReceivedSignature {
    pub(crate) fn parse(header: Option<&[u8]>, algorithm: Algorithm) -> Result<Self, Error> {
        let header = header.ok_or(Error::MissingSignature)?;
        if header.len() != algorithm.signature_len() {
            return Err(Error::MalformedSignature);
        }
        let mut bytes = [0u8; 32];
        let len = decode_canonical(header, &mut bytes).ok_or(Error::MalformedSignature)?;
        if len != algorithm.mac_len() {
            return Err(Error::MalformedSignature);
        }
        Ok(Self { bytes, len })
    }

    /// Whether `tag` is this signature's MAC, in time independent of either's bytes: both are held
    /// zero-padded in 32 bytes, compared as four words (lengths follow from the algorithm: public).
    pub(crate) fn ct_matches(&self, tag: &Tag) -> Choice {
        let words = |bytes: &[u8; 32]| {
            [0, 8, 16, 24]
                .map(|at| u64::from_le_bytes(bytes[at..at + 8].try_into().unwrap_or_default()))
        };
        words(&self.bytes).ct_eq(&words(tag.padded()))
            & Choice::from(u8::from(self.len == tag.as_bytes().len()))
    }
}

/// The value of each standard base64 digit (`A–Z a–z 0–9 + /`); 0xFF for any other byte.
const DIGIT_VALUES: [u8; 256] = {
    let mut table = [0xFF; 256];
    let digits = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut i = 0;
    while i < digits.len() {
        table[digits[i] as usize] = i as u8;
        i += 1;
    }
    table
};

fn digit_value(c: u8) -> Option<u8> {
    let value = DIGIT_VALUES[usize::from(c)];
    (value != 0xFF).then_some(value)
}

/// Decodes padded standard base64 into `out`, accepting only the canonical text of the result: `=`
/// only as the last one or two characters of the last quad, and the unused bits before it zero.
/// Returns the number of bytes written.
///
/// The header is public input (it travels in the request), so plain branching code is fine here; the
/// secret-dependent comparison is `macs_equal`.
fn decode_canonical(text: &[u8], out: &mut [u8; 32]) -> Option<usize> {
    if text.is_empty() || !text.len().is_multiple_of(4) || text.len() / 4 * 3 > out.len() + 2 {
        return None;
    }
    let padding = text
        .iter()
        .rev()
        .take(2)
        .take_while(|&&c| c == b'=')
        .count();
    let digits = &text[..text.len() - padding];
    // Whole quads: each digit looked up, the invalid ones (0xFF) noted in `invalid`, no branch per
    // digit.
    let mut quads = digits.chunks_exact(4);
    let mut invalid = 0u8;
    let mut len = 0;
    for (quad, three) in (&mut quads).zip(out.chunks_exact_mut(3)) {
        let values = [0, 1, 2, 3].map(|i| DIGIT_VALUES[usize::from(quad[i])]);
        invalid |= values[0] | values[1] | values[2] | values[3];
        let bits = values
            .iter()
            .fold(0u32, |bits, &value| bits << 6 | u32::from(value & 0x3F));
        three.copy_from_slice(&bits.to_be_bytes()[1..]);
        len += 3;
    }
    if invalid & 0xC0 != 0 || len != (digits.len() - quads.remainder().len()) / 4 * 3 {
        return None;
    }
    // A short last quad (2 or 3 digits) carries 1 or 2 bytes; its leftover low bits must be zero.
    let rest = quads.remainder();
    let (bytes, spare) = match rest.len() {
        0 => return Some(len),
        3 => (2, 2),
        2 => (1, 4),
        _ => return None,
    };
    let mut bits = 0u32;
    for &c in rest {
        bits = bits << 6 | u32::from(digit_value(c)?);
    }
    if bits & ((1 << spare) - 1) != 0 {
        return None;
    }
    let bits = bits >> spare;
    for i in (0..bytes).rev() {
        *out.get_mut(len)? = (bits >> (8 * i)) as u8;
        len += 1;
    }
    Some(len)
}

/// A signature as Twilio sends it in `X-Twilio-Signature`: base64 text, 28 or 44 characters.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Signature {
    text: [u8; 44],
    len: usize,
}

impl Signature {
    pub(crate) fn encode(tag: &Tag) -> Self {
        let mut text = [0u8; 44];
        let len = Base64::encode(tag.as_bytes(), &mut text).map_or(0, str::len);
        Self { text, len }
    }

    /// The header value.
    pub fn as_str(&self) -> &str {
        // Base64 output is ASCII, so this never fails; an empty string is the impossible fallback.
        core::str::from_utf8(&self.text[..self.len]).unwrap_or_default()
    }

    /// The header value as bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.text[..self.len]
    }
}

impl core::fmt::Display for Signature {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl core::fmt::Debug for Signature {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        // A signature is public (it travels in a header), so it is shown.
        f.debug_tuple("Signature").field(&self.as_str()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decoding_agrees_with_base64ct_on_canonical_text_and_refuses_the_rest() {
        let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=-_ \xff";
        let mut next = crate::test_rng(23u64);
        let mut accepted = 0;
        for round in 0..200_000 {
            let len = [28, 44, 4, 8, 12][round % 5];
            let mut text = [0u8; 44];
            for c in &mut text[..len] {
                // Mostly digits, so that many texts are valid.
                *c = alphabet[next()
                    % if next().is_multiple_of(50) {
                        alphabet.len()
                    } else {
                        64
                    }];
            }
            // Valid padding half the time.
            if round % 2 == 0 {
                text[len - 1] = b'=';
            }
            let text = &text[..len];
            let mut ours = [0u8; 32];
            let mut theirs = [0u8; 32];
            let expected = Base64::decode(text, &mut theirs).ok().map(<[u8]>::len);
            let got = decode_canonical(text, &mut ours);
            assert_eq!(got, expected, "{:?}", core::str::from_utf8(text));
            if let Some(n) = got {
                assert_eq!(ours[..n], theirs[..n]);
                accepted += 1;
            }
        }
        assert!(accepted > 10_000, "{accepted}");
    }
}
