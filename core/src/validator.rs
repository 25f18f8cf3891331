//! The validator: request in → candidates × params → MAC → constant-time match, for one-shot calls and
//! for a [`Validator`] of pre-keyed secrets, with the stack scratch buffer the parameters are sorted in.
//! Secrets live in [`crate::secret`], the engine and the match in [`crate::verdict`].

use core::fmt;

use crate::canonical::{Request, Signed};
use crate::explain::{explain_with_keys, Explanation};
use crate::form::Span;
use crate::scratch::with_stack_scratch;
use crate::secret::{Key, Secret};
use crate::settings::SignatureSettings;
use crate::signature::Signature;
use crate::url::UrlPieces;
use crate::verdict::{verify_with_keys, Verified};
use crate::Error;

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
    ///
    /// [`DEFAULT_MAX_PARAMS`]: crate::DEFAULT_MAX_PARAMS
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
