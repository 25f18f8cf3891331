//! The `X-Twilio-Webhooks-Signature-Settings` header: `key=<sharedKeyId>,algorithm=HMAC_SHA256`.

use crate::mac::Algorithm;
use crate::Error;

/// What the settings header says: which algorithm, and optionally which key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SignatureSettings<'a> {
    /// The algorithm; HMAC-SHA1 when the header does not name one.
    pub algorithm: Algorithm,
    /// The SharedKey id from `key=`, if any.
    pub key_id: Option<&'a [u8]>,
}

impl<'a> SignatureSettings<'a> {
    /// No header: HMAC-SHA1 with any of the validator's secrets.
    pub const DEFAULT: Self = Self {
        algorithm: Algorithm::HmacSha1,
        key_id: None,
    };

    /// Parses the header value. `None` (header absent) and an empty value mean HMAC-SHA1.
    ///
    /// Items are separated by commas and may carry spaces or tabs around them; names are compared
    /// case-insensitively and unknown names are ignored, so a future `version=2` does not break anyone.
    /// Fails closed: an item without `=`, an empty or repeated `algorithm`/`key`, or non-ASCII text is
    /// [`Error::MalformedSettings`]; an algorithm other than HMAC-SHA1/HMAC-SHA256 is
    /// [`Error::UnsupportedAlgorithm`].
    ///
    /// ```
    /// use twilio_signature::{Algorithm, SignatureSettings};
    /// let s = SignatureSettings::parse(Some(b"key=wk_01,algorithm=hmac_sha256")).unwrap();
    /// assert_eq!(s.algorithm, Algorithm::HmacSha256);
    /// assert_eq!(s.key_id, Some(&b"wk_01"[..]));
    /// ```
    pub fn parse(header: Option<&'a [u8]>) -> Result<Self, Error> {
        let Some(header) = header else {
            return Ok(Self::DEFAULT);
        };
        if !header
            .iter()
            .all(|&b| b == b'\t' || (b' '..=b'~').contains(&b))
        {
            return Err(Error::MalformedSettings);
        }
        let mut algorithm: Option<&[u8]> = None;
        let mut key_id: Option<&[u8]> = None;
        for item in header.split(|&b| b == b',') {
            let item = item.trim_ascii();
            if item.is_empty() {
                continue;
            }
            let eq = item
                .iter()
                .position(|&b| b == b'=')
                .ok_or(Error::MalformedSettings)?;
            let (name, value) = (item[..eq].trim_ascii(), item[eq + 1..].trim_ascii());
            let slot = if name.eq_ignore_ascii_case(b"algorithm") {
                &mut algorithm
            } else if name.eq_ignore_ascii_case(b"key") {
                &mut key_id
            } else {
                continue;
            };
            if value.is_empty() || slot.is_some() {
                return Err(Error::MalformedSettings);
            }
            *slot = Some(value);
        }
        let algorithm = match algorithm {
            None => Algorithm::HmacSha1,
            Some(name) => Algorithm::from_name(name).ok_or(Error::UnsupportedAlgorithm)?,
        };
        Ok(Self { algorithm, key_id })
    }
}
