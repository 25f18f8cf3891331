//! The request as the verifier sees it, and the one place that turns it into the signed string
//! `candidate URL ++ name ++ value ++ …`, streamed into a sink (the HMAC, or a buffer for reports).

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::form::{self, Assembly, Params, Span};
use crate::url::{self, UrlPieces};
use crate::Error;

/// What follows the URL in a webhook request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Payload<'a> {
    /// The raw request body: `application/x-www-form-urlencoded`, or — when the URL carries
    /// `bodySHA256` — an opaque (JSON) body checked against that hash. An empty body is a GET.
    Body(&'a [u8]),
    /// Form parameters already split and decoded by a web framework, in any order, duplicates allowed.
    /// A URL with `bodySHA256` cannot be verified this way ([`Error::BodyRequired`]).
    Params(&'a [(&'a str, &'a str)]),
}

/// One webhook request: the public URL Twilio requested, what it sent, and its signature headers.
///
/// ```
/// use twilio_signature::Request;
/// let request = Request::post("https://example.com/sms", b"From=%2B15551234567&Body=Hi")
///     .signature("3Wk0D/4vCdYE/QJtOSVkGEzZ0gM=")
///     .settings(None);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Request<'a> {
    /// The full URL, exactly as Twilio requested it (scheme, host, port, path and query).
    pub url: &'a [u8],
    /// The body or the parsed parameters.
    pub payload: Payload<'a>,
    /// `X-Twilio-Signature`, or `None` when the header is absent.
    pub signature: Option<&'a [u8]>,
    /// `X-Twilio-Webhooks-Signature-Settings`, or `None` when the header is absent.
    pub settings: Option<&'a [u8]>,
}

impl<'a> Request<'a> {
    /// A POST with its raw body (form or JSON).
    pub fn post(
        url: &'a (impl AsRef<[u8]> + ?Sized),
        body: &'a (impl AsRef<[u8]> + ?Sized),
    ) -> Self {
        Self {
            url: url.as_ref(),
            payload: Payload::Body(body.as_ref()),
            signature: None,
            settings: None,
        }
    }

    /// A GET (or any request without a body): the signature covers the URL alone.
    pub fn get(url: &'a (impl AsRef<[u8]> + ?Sized)) -> Self {
        Self::post(url, b"")
    }

    /// A POST whose form parameters a framework has already parsed.
    pub fn with_params(
        url: &'a (impl AsRef<[u8]> + ?Sized),
        params: &'a [(&'a str, &'a str)],
    ) -> Self {
        Self {
            url: url.as_ref(),
            payload: Payload::Params(params),
            signature: None,
            settings: None,
        }
    }

    /// Sets the `X-Twilio-Signature` header value.
    #[must_use]
    pub fn signature(mut self, signature: &'a (impl AsRef<[u8]> + ?Sized)) -> Self {
        self.signature = Some(signature.as_ref());
        self
    }

    /// Sets (or clears) the `X-Twilio-Webhooks-Signature-Settings` header value.
    #[must_use]
    pub fn settings(mut self, settings: Option<&'a [u8]>) -> Self {
        self.settings = settings;
        self
    }

    /// Whether the request has no form parameters to index: an empty body (a GET) or no pairs. (An
    /// opaque body, whose URL has `bodySHA256`, is not told apart here: it is never indexed either.)
    pub(crate) fn has_no_params(&self) -> bool {
        match self.payload {
            Payload::Body(body) => body.is_empty(),
            Payload::Params(pairs) => pairs.is_empty(),
        }
    }

    /// The most form parameters this request can have: its body's non-empty `&`-separated segments
    /// (empty ones, as in `a=1&&b=2` or a body of `&`s, are skipped and need no room), or the number of
    /// pre-split pairs. Size a scratch buffer for [`Validator::verify_with_scratch`] with it when a
    /// small one overflowed (see [`Overflow`]): the C ABI, the Python binding and the tower layer do, so
    /// a body of `&`s cannot make them allocate, and a request that fits pays for no count.
    ///
    /// ```
    /// use twilio_signature::Request;
    /// assert_eq!(Request::post("https://h/p", "a=1&&b=2&").max_params(), 2);
    /// assert_eq!(Request::post("https://h/p", "&".repeat(1 << 20).as_str()).max_params(), 0);
    /// assert_eq!(Request::get("https://h/p").max_params(), 0);
    /// ```
    ///
    /// [`Validator::verify_with_scratch`]: crate::Validator::verify_with_scratch
    /// [`Overflow`]: crate::Overflow
    pub fn max_params(&self) -> usize {
        match self.payload {
            Payload::Body(body) => non_empty_segments(body),
            Payload::Params(pairs) => pairs.len(),
        }
    }
}

/// How many non-empty segments `body` has between `&`s: the bytes other than `&` that start the body or
/// follow an `&`. Eight bytes at a time: a real webhook's body costs tens of nanoseconds.
fn non_empty_segments(body: &[u8]) -> usize {
    const LOW7: u64 = 0x7f7f_7f7f_7f7f_7f7f;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    const AMPERSANDS: u64 = 0x2626_2626_2626_2626;
    // The high bit of each byte of `word` that is `&` (exact: no borrow crosses bytes).
    let ampersands = |word: u64| {
        let x = word ^ AMPERSANDS;
        !(((x & LOW7) + LOW7) | x | LOW7)
    };
    // The start of the body counts as following an `&`.
    let mut carry = 0x80;
    let mut count = 0;
    let mut add = |word: u64| {
        let amp = ampersands(word);
        let after_amp = (amp << 8) | carry;
        count += (!amp & HIGH & after_amp).count_ones() as usize;
        carry = amp >> 56;
    };
    let mut chunks = body.chunks_exact(8);
    for chunk in &mut chunks {
        add(u64::from_le_bytes(chunk.try_into().unwrap_or_default()));
    }
    // The tail, padded with `&`s (which start nothing).
    let mut tail = [b'&'; 8];
    tail[..chunks.remainder().len()].copy_from_slice(chunks.remainder());
    add(u64::from_le_bytes(tail));
    count
}

/// What a signature covers once the request's body has been indexed.
#[derive(Clone, Copy)]
pub(crate) struct Signed<'a> {
    pub(crate) params: Params<'a>,
    /// For opaque bodies: the `bodySHA256` from the URL and the body it must match.
    pub(crate) body_hash: Option<(&'a [u8], &'a [u8])>,
    /// Whether some fields' decoded bytes are only checked for UTF-8 as they are fed (see
    /// [`Signed::feed`]).
    unchecked: bool,
}

impl<'a> Signed<'a> {
    /// Decides form vs opaque body and indexes the parameters into `scratch`.
    pub(crate) fn new(request: &Request<'a>, scratch: &'a mut [Span]) -> Result<Self, Error> {
        let body_hash = url::body_sha256_param(request.url);
        match (request.payload, body_hash) {
            (Payload::Body(body), Some(hash)) => {
                if body.len() > form::MAX_BODY_LEN {
                    return Err(Error::BodyTooLarge);
                }
                Ok(Self {
                    params: Params::None,
                    body_hash: Some((hash, body)),
                    unchecked: false,
                })
            }
            (Payload::Body(body), None) => {
                let (spans, unchecked) = form::index_form(body, scratch)?;
                Ok(Self {
                    params: Params::Form { body, spans },
                    body_hash: None,
                    unchecked,
                })
            }
            (Payload::Params(_), Some(_)) => Err(Error::BodyRequired),
            (Payload::Params(pairs), None) => Ok(Self {
                params: Params::Pairs {
                    pairs,
                    spans: form::index_pairs(pairs, scratch)?,
                },
                body_hash: None,
                unchecked: false,
            }),
        }
    }

    /// Streams `url ++ params` into `sink`, gathered into a few large writes: a form is many short
    /// names, values and decoded runs, and each call into the HMAC has a fixed cost.
    ///
    /// Returns `Err(MalformedBody)` when a field that indexing left unchecked does not decode to UTF-8:
    /// its bytes are checked as they are decoded here, so a large escaped field is decoded once, not
    /// once to check it and again to sign it. The sink has then had the whole string all the same; a
    /// caller must not use what it made of it.
    pub(crate) fn feed(
        &self,
        url: &UrlPieces<'_>,
        sink: &mut impl FnMut(&[u8]),
    ) -> Result<(), Error> {
        if self.params.is_empty() {
            // The URL alone (a GET, a JSON body): its pieces go to the sink as they are.
            for piece in url.pieces() {
                sink(piece);
            }
            return Ok(());
        }
        let mut out = Assembly::new(sink);
        for piece in url.pieces() {
            out.write(piece);
        }
        self.params.feed(&mut out);
        if out.finish() {
            Ok(())
        } else {
            Err(Error::MalformedBody)
        }
    }

    /// Whether the form is well formed, for callers that feed nothing (no secret to try): the checks
    /// [`Signed::feed`] does, on their own.
    pub(crate) fn check(&self) -> Result<(), Error> {
        if self.unchecked {
            self.feed(&UrlPieces::whole(b""), &mut |_| {})
        } else {
            Ok(())
        }
    }

    /// True when there is no body hash to check, or it matches (compared in constant time).
    pub(crate) fn body_hash_matches(&self) -> bool {
        self.body_hash.is_none_or(|(expected, body)| {
            bool::from(BodyHash::of(body).as_bytes().ct_eq(expected))
        })
    }
}

/// The lower-case hex SHA-256 of a body, as Twilio puts it in `bodySHA256`.
///
/// ```
/// let hash = twilio_signature::BodyHash::of(b"{}");
/// assert_eq!(hash.as_str(), "44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a");
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct BodyHash([u8; 64]);

impl BodyHash {
    /// Hashes `body`.
    pub fn of(body: &[u8]) -> Self {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let digest = Sha256::digest(body);
        let mut hex = [0u8; 64];
        for (pair, byte) in hex.chunks_exact_mut(2).zip(digest.iter()) {
            pair[0] = HEX[usize::from(byte >> 4)];
            pair[1] = HEX[usize::from(byte & 0x0f)];
        }
        Self(hex)
    }

    /// The 64 hex characters.
    pub fn as_str(&self) -> &str {
        core::str::from_utf8(&self.0).unwrap_or_default()
    }

    /// The 64 hex characters as bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

impl core::fmt::Debug for BodyHash {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_tuple("BodyHash").field(&self.as_str()).finish()
    }
}

impl core::fmt::Display for BodyHash {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.as_str())
    }
}
