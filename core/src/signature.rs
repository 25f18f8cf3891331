//! The `X-Twilio-Signature` header: strict parsing before any HMAC, and encoding for signing.

use base64ct::{Base64, Encoding};

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

    pub(crate) fn as_bytes(&self) -> &[u8] {
        &self.bytes[..self.len]
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
    if text.is_empty() || text.len() % 4 != 0 || text.len() / 4 * 3 > out.len() + 2 {
        return None;
    }
    let padding = text
        .iter()
        .rev()
        .take(2)
        .take_while(|&&c| c == b'=')
        .count();
    let digits = &text[..text.len() - padding];
    let mut len = 0;
    for quad in digits.chunks(4) {
        let mut bits = 0u32;
        for &c in quad {
            bits = bits << 6 | u32::from(digit_value(c)?);
        }
        // A short last quad (2 or 3 digits) carries 1 or 2 bytes; its leftover low bits must be zero.
        let (bytes, spare) = match quad.len() {
            4 => (3, 0),
            3 => (2, 2),
            2 => (1, 4),
            _ => return None,
        };
        if bits & ((1 << spare) - 1) != 0 {
            return None;
        }
        let bits = bits >> spare;
        for i in (0..bytes).rev() {
            *out.get_mut(len)? = (bits >> (8 * i)) as u8;
            len += 1;
        }
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
