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
        // base64ct decodes in constant time and rejects non-canonical padding and trailing bits.
        let decoded = Base64::decode(header, &mut bytes).map_err(|_| Error::MalformedSignature)?;
        let len = decoded.len();
        if len != algorithm.mac_len() {
            return Err(Error::MalformedSignature);
        }
        Ok(Self { bytes, len })
    }

    pub(crate) fn as_bytes(&self) -> &[u8] {
        &self.bytes[..self.len]
    }
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
