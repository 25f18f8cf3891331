//! `twilio_signature._native`: the pyo3 layer over the core. Everything a Python user touches is
//! re-exported (and documented) by the pure-Python package `twilio_signature`.
//!
//! This layer only converts: Python objects in (`str` or `bytes`), the core's verdict out, and the
//! core's [`Error`] mapped to a Python exception class in exactly one place ([`to_py_err`]).

use pyo3::create_exception;
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList, PyString, PyTuple};
use twilio_signature::{Candidate, Error, Overflow, Request, Secret, Span, Verified};

create_exception!(
    twilio_signature,
    SignatureError,
    PyValueError,
    "A webhook request failed verification. Subclasses say why; every one is also a ValueError."
);
create_exception!(
    twilio_signature,
    MalformedRequestError,
    SignatureError,
    "The request (or the call) is not something a correct signature could ever cover."
);
create_exception!(
    twilio_signature,
    SignatureMismatchError,
    SignatureError,
    "The request is well formed but was not signed by any of the validator's secrets."
);
create_exception!(
    twilio_signature,
    BodyHashMismatchError,
    SignatureMismatchError,
    "The URL's bodySHA256 is not the SHA-256 of the body: the body was altered."
);
create_exception!(
    twilio_signature,
    MissingSignatureError,
    MalformedRequestError,
    "The X-Twilio-Signature header is absent."
);
create_exception!(
    twilio_signature,
    MalformedSignatureError,
    MalformedRequestError,
    "The signature is not 28 (HMAC-SHA1) or 44 (HMAC-SHA256) characters of canonical base64."
);
create_exception!(
    twilio_signature,
    MalformedSettingsError,
    MalformedRequestError,
    "The X-Twilio-Webhooks-Signature-Settings header is not a list of name=value pairs."
);
create_exception!(
    twilio_signature,
    UnsupportedAlgorithmError,
    MalformedRequestError,
    "The settings header names an algorithm other than HMAC_SHA1 and HMAC_SHA256."
);
create_exception!(
    twilio_signature,
    MalformedBodyError,
    MalformedRequestError,
    "A form body whose decoded names or values are not UTF-8."
);
create_exception!(
    twilio_signature,
    BodyTooLargeError,
    MalformedRequestError,
    "The body is larger than the core can index (2 GiB)."
);
create_exception!(
    twilio_signature,
    TooManyParamsError,
    MalformedRequestError,
    "The form has more parameters than the validator's max_params."
);
create_exception!(
    twilio_signature,
    BodyRequiredError,
    MalformedRequestError,
    "The URL carries bodySHA256 but parsed params were given instead of the raw body."
);
create_exception!(
    twilio_signature,
    NoEligibleSecretError,
    MalformedRequestError,
    "Signing: no secret has the key id that the settings header names."
);

/// The one mapping from the core's error to a Python exception.
fn to_py_err(error: Error) -> PyErr {
    let message = error.message();
    match error {
        Error::MissingSignature => MissingSignatureError::new_err(message),
        Error::MalformedSignature => MalformedSignatureError::new_err(message),
        Error::MalformedSettings => MalformedSettingsError::new_err(message),
        Error::UnsupportedAlgorithm => UnsupportedAlgorithmError::new_err(message),
        Error::MalformedBody => MalformedBodyError::new_err(message),
        Error::BodyTooLarge => BodyTooLargeError::new_err(message),
        Error::TooManyParams => TooManyParamsError::new_err(message),
        Error::BodyRequired => BodyRequiredError::new_err(message),
        Error::NoEligibleSecret => NoEligibleSecretError::new_err(message),
        Error::SignatureMismatch => SignatureMismatchError::new_err(message),
        Error::BodyHashMismatch => BodyHashMismatchError::new_err(message),
        // The core's enum is non-exhaustive: a new variant still lands in the right group.
        _ if error.is_mismatch() => SignatureMismatchError::new_err(message),
        _ => MalformedRequestError::new_err(message),
    }
}

/// Bodies at least this long are verified with the GIL released: below it, releasing costs more than
/// the HMAC it would let run in parallel.
const DETACH_THRESHOLD: usize = 16 * 1024;

/// `str` (UTF-8) or `bytes`, borrowed from the Python object; anything else is a `TypeError`.
fn text_or_bytes<'a>(value: &'a Bound<'_, PyAny>, what: &str) -> PyResult<&'a [u8]> {
    if let Ok(bytes) = value.cast::<PyBytes>() {
        return Ok(bytes.as_bytes());
    }
    if let Ok(text) = value.cast::<PyString>() {
        return Ok(text.to_str()?.as_bytes());
    }
    Err(PyTypeError::new_err(format!(
        "{what} must be str or bytes, not {}",
        type_name(value)
    )))
}

fn optional_text_or_bytes<'a>(
    value: Option<&'a Bound<'_, PyAny>>,
    what: &str,
) -> PyResult<Option<&'a [u8]>> {
    value.map(|value| text_or_bytes(value, what)).transpose()
}

/// A request with a raw body, and that body, from the arguments of `verify`, `is_valid` and `explain`.
fn body_request<'a>(
    url: &'a Bound<'_, PyAny>,
    body: &'a Bound<'_, PyAny>,
    signature: Option<&'a Bound<'_, PyAny>>,
    settings: Option<&'a Bound<'_, PyAny>>,
) -> PyResult<(Request<'a>, &'a [u8])> {
    let body = text_or_bytes(body, "body")?;
    let request = Request::post(text_or_bytes(url, "url")?, body)
        .settings(optional_text_or_bytes(settings, "signature_settings")?);
    let request = match optional_text_or_bytes(signature, "signature")? {
        Some(signature) => request.signature(signature),
        None => request,
    };
    Ok((request, body))
}

fn type_name(value: &Bound<'_, PyAny>) -> String {
    value
        .get_type()
        .name()
        .map_or_else(|_| "an unknown type".to_owned(), |name| name.to_string())
}

/// Room reserved up front for pairs from an iterable: its `__len__` is only a hint (an object may
/// claim 2**62 items), so it never sizes more than this; the vector grows with the items that arrive.
const PAIRS_HINT_CAP: usize = 1024;

/// `[(name, value), ...]` (or a plain `dict`) of `str`: the pre-split form parameters a framework hands
/// over. More than `limit` pairs is [`Error::TooManyParams`], found while iterating (an endless
/// iterable is refused, not drained). The strings are kept as Python objects; [`borrow_pairs`] lends
/// their UTF-8 without copying it.
fn param_pairs<'py>(
    params: &Bound<'py, PyAny>,
    limit: usize,
) -> PyResult<Vec<(Bound<'py, PyString>, Bound<'py, PyString>)>> {
    if params.is_instance_of::<PyString>() || params.is_instance_of::<PyBytes>() {
        return Err(PyTypeError::new_err(
            "params must be a sequence of (name, value) pairs of str; pass a raw body to verify() instead",
        ));
    }
    let str_pair = |name: Bound<'py, PyAny>, value: Bound<'py, PyAny>| match (
        name.cast_into::<PyString>(),
        value.cast_into::<PyString>(),
    ) {
        (Ok(name), Ok(value)) => Ok((name, value)),
        _ => Err(PyTypeError::new_err("param names and values must be str")),
    };
    // A plain dict (exactly: a MultiDict is a dict subclass with lists inside) is read in place, with
    // no tuple per item.
    if let Ok(dict) = params.cast_exact::<PyDict>() {
        if dict.len() > limit {
            return Err(to_py_err(Error::TooManyParams));
        }
        let mut pairs = Vec::with_capacity(dict.len());
        for (name, value) in dict.iter() {
            pairs.push(str_pair(name, value)?);
        }
        return Ok(pairs);
    }
    // A lying `__len__` raises (negative, or past isize) or is merely wrong; either way it is a hint.
    let hint = params.len().unwrap_or(0);
    let mut pairs = Vec::with_capacity(hint.min(limit).min(PAIRS_HINT_CAP));
    for item in params.try_iter()? {
        let item = item?;
        if pairs.len() == limit {
            return Err(to_py_err(Error::TooManyParams));
        }
        let pair = item.cast::<PyTuple>().ok().filter(|t| t.len() == 2);
        let Some(pair) = pair else {
            return Err(PyTypeError::new_err(format!(
                "params must hold (name, value) tuples, not {}",
                type_name(&item)
            )));
        };
        pairs.push(str_pair(pair.get_item(0)?, pair.get_item(1)?)?);
    }
    Ok(pairs)
}

/// The UTF-8 of each pair (cached inside the `str` objects, which outlive the borrow).
fn borrow_pairs<'a>(
    pairs: &'a [(Bound<'_, PyString>, Bound<'_, PyString>)],
) -> PyResult<Vec<(&'a str, &'a str)>> {
    let mut borrowed = Vec::with_capacity(pairs.len());
    for (name, value) in pairs {
        borrowed.push((name.to_str()?, value.to_str()?));
    }
    Ok(borrowed)
}

fn candidate_name(candidate: Candidate) -> &'static str {
    match candidate {
        Candidate::AsGiven => "as_given",
        Candidate::PortToggled => "port_toggled",
        Candidate::WithoutUserinfo => "without_userinfo",
        Candidate::WithoutUserinfoPortToggled => "without_userinfo_port_toggled",
    }
}

/// A verified request: which secret and which form of the URL matched, and a replay key.
#[pyclass(frozen, module = "twilio_signature._native", name = "Verified")]
struct PyVerified {
    /// Index of the matching secret, in the order given to the validator.
    #[pyo3(get)]
    secret_index: usize,
    /// The key id of the matching secret (for `{key_id: secret}` validators), else None.
    #[pyo3(get)]
    key_id: Option<String>,
    /// "as_given", "port_toggled", "without_userinfo" or "without_userinfo_port_toggled".
    #[pyo3(get)]
    candidate: &'static str,
    /// "HMAC_SHA1" or "HMAC_SHA256".
    #[pyo3(get)]
    algorithm: &'static str,
    replay: [u8; 32],
}

#[pymethods]
impl PyVerified {
    /// 32 bytes identifying this signed request: store them with an expiry to refuse a replay.
    #[getter]
    fn replay_key<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        PyBytes::new(py, &self.replay)
    }

    /// Python values, as a dataclass would show them: `key_id='KS1'` or `key_id=None`.
    fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
        let key_id = match &self.key_id {
            Some(id) => PyString::new(py, id).repr()?.to_str()?.to_owned(),
            None => "None".to_owned(),
        };
        Ok(format!(
            "Verified(secret_index={}, key_id={key_id}, candidate='{}', algorithm='{}')",
            self.secret_index, self.candidate, self.algorithm
        ))
    }
}

/// Verifies Twilio webhook requests against one or more secrets. Immutable and thread-safe.
#[pyclass(frozen, module = "twilio_signature._native", name = "Validator")]
struct PyValidator {
    secrets: Box<[Secret]>,
    key_ids: Box<[Option<String>]>,
    max_params: usize,
}

/// The bytes of one secret. A `str` that is not valid UTF-8 (a lone surrogate, as `os.environ` yields
/// for undecodable bytes) is refused with a fresh `ValueError`: the `UnicodeEncodeError` it replaces
/// would carry the whole secret in its `object` attribute, so it is dropped, not chained.
fn secret_bytes<'a>(value: &'a Bound<'_, PyAny>) -> PyResult<&'a [u8]> {
    if let Ok(text) = value.cast::<PyString>() {
        return text.to_str().map(str::as_bytes).map_err(|_| {
            PyValueError::new_err("a secret must be encodable as UTF-8 (it has a lone surrogate)")
        });
    }
    text_or_bytes(value, "a secret")
}

fn secret_from(value: &Bound<'_, PyAny>, key_id: Option<&str>) -> PyResult<Secret> {
    let secret = secret_bytes(value)?;
    // The core's one rule (space, \t, \n, \v, \f and \r are blank): Python has no second one.
    if !Secret::is_usable(secret) {
        return Err(PyValueError::new_err(
            "a secret must not be empty or only whitespace (is TWILIO_AUTH_TOKEN set?)",
        ));
    }
    match key_id {
        None => Ok(Secret::new(secret)),
        Some(id) => Secret::with_key_id(id.as_bytes(), secret)
            .map_err(|e| PyValueError::new_err(e.to_string())),
    }
}

impl PyValidator {
    fn core(&self) -> twilio_signature::Validator<&[Secret]> {
        twilio_signature::Validator::with_secrets(&self.secrets)
    }

    fn verified(&self, verified: Verified) -> PyVerified {
        PyVerified {
            secret_index: verified.secret_index,
            key_id: self.key_ids.get(verified.secret_index).cloned().flatten(),
            candidate: candidate_name(verified.candidate),
            algorithm: verified.algorithm.name(),
            replay: verified.replay_key(),
        }
    }

    /// Runs the core on a raw body, with the GIL released for large bodies, and a scratch buffer
    /// no larger than the body can need (and never larger than `max_params`).
    fn verify_body(
        &self,
        py: Python<'_>,
        request: &Request<'_>,
        body: &[u8],
    ) -> Result<Verified, Error> {
        let go = || {
            self.with_scratch(request, |scratch| {
                self.core().verify_with_scratch(request, scratch)
            })
        };
        if body.len() >= DETACH_THRESHOLD {
            py.detach(go)
        } else {
            go()
        }
    }

    /// The core's verdict on a request whose form a framework already parsed (`verify_params`,
    /// `is_valid_params`); arguments of the wrong type are the outer `Err`.
    fn verify_pairs(
        &self,
        url: &Bound<'_, PyAny>,
        params: &Bound<'_, PyAny>,
        signature: Option<&Bound<'_, PyAny>>,
        signature_settings: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Result<Verified, Error>> {
        let url = text_or_bytes(url, "url")?;
        let owned = param_pairs(params, self.max_params)?;
        let pairs = borrow_pairs(&owned)?;
        let request = Request {
            url,
            payload: twilio_signature::Payload::Params(&pairs),
            signature: optional_text_or_bytes(signature, "signature")?,
            settings: optional_text_or_bytes(signature_settings, "signature_settings")?,
        };
        Ok(self.with_scratch(&request, |scratch| {
            self.core().verify_with_scratch(&request, scratch)
        }))
    }

    /// Runs `f` with a scratch buffer for at most `max_params` parameters, sized by the core's rule
    /// (`twilio_signature::with_scratch`: none for a GET, the stack up to 512, then a heap buffer sized
    /// to the form and capped at `max_params`, so a body of `&`s cannot make it allocate).
    fn with_scratch<R: Overflow>(
        &self,
        request: &Request<'_>,
        f: impl FnMut(&mut [Span]) -> R,
    ) -> R {
        // The core's one sizing rule; this face supplies only the heap.
        twilio_signature::with_scratch(self.max_params, request, f, |len, f| {
            f(&mut vec![Span::EMPTY; len])
        })
    }
}

#[pymethods]
impl PyValidator {
    #[new]
    #[pyo3(signature = (secrets, *, max_params = 10_000))]
    fn new(secrets: &Bound<'_, PyAny>, max_params: usize) -> PyResult<Self> {
        if max_params == 0 {
            return Err(PyValueError::new_err("max_params must be at least 1"));
        }
        let mut keys = Vec::new();
        let mut ids = Vec::new();
        if secrets.is_instance_of::<PyString>() || secrets.is_instance_of::<PyBytes>() {
            keys.push(secret_from(secrets, None)?);
            ids.push(None);
        } else if let Ok(dict) = secrets.cast::<PyDict>() {
            for (id, secret) in dict.iter() {
                let Ok(id) = id.cast::<PyString>() else {
                    return Err(PyTypeError::new_err(format!(
                        "key ids must be str, not {}",
                        type_name(&id)
                    )));
                };
                let id = id.to_str()?;
                keys.push(secret_from(&secret, Some(id))?);
                ids.push(Some(id.to_owned()));
            }
        } else if secrets.is_instance_of::<PyList>() || secrets.is_instance_of::<PyTuple>() {
            for secret in secrets.try_iter()? {
                keys.push(secret_from(&secret?, None)?);
                ids.push(None);
            }
        } else {
            return Err(PyTypeError::new_err(format!(
                "secrets must be a str or bytes secret, a list of them, or a dict {{key_id: secret}}, not {}",
                type_name(secrets)
            )));
        }
        if keys.is_empty() {
            return Err(PyValueError::new_err("at least one secret is required"));
        }
        Ok(Self {
            secrets: keys.into_boxed_slice(),
            key_ids: ids.into_boxed_slice(),
            max_params,
        })
    }

    /// The largest number of form parameters a request may have.
    #[getter]
    fn max_params(&self) -> usize {
        self.max_params
    }

    /// The key ids, one per secret (None for secrets without one). Never the secrets.
    #[getter]
    fn key_ids(&self) -> Vec<Option<String>> {
        self.key_ids.to_vec()
    }

    #[pyo3(signature = (url, body, signature, signature_settings = None))]
    fn verify(
        &self,
        py: Python<'_>,
        url: &Bound<'_, PyAny>,
        body: &Bound<'_, PyAny>,
        signature: Option<&Bound<'_, PyAny>>,
        signature_settings: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<PyVerified> {
        let (request, body) = body_request(url, body, signature, signature_settings)?;
        self.verify_body(py, &request, body)
            .map(|v| self.verified(v))
            .map_err(to_py_err)
    }

    #[pyo3(signature = (url, body, signature, signature_settings = None))]
    fn is_valid(
        &self,
        py: Python<'_>,
        url: &Bound<'_, PyAny>,
        body: &Bound<'_, PyAny>,
        signature: Option<&Bound<'_, PyAny>>,
        signature_settings: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<bool> {
        let (request, body) = body_request(url, body, signature, signature_settings)?;
        Ok(self.verify_body(py, &request, body).is_ok())
    }

    #[pyo3(signature = (url, params, signature, signature_settings = None))]
    fn verify_params(
        &self,
        url: &Bound<'_, PyAny>,
        params: &Bound<'_, PyAny>,
        signature: Option<&Bound<'_, PyAny>>,
        signature_settings: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<PyVerified> {
        self.verify_pairs(url, params, signature, signature_settings)?
            .map(|v| self.verified(v))
            .map_err(to_py_err)
    }

    /// `verify_params` as a bool, without building the `Verified` object (the drop-in
    /// `RequestValidator.validate` uses it).
    #[pyo3(signature = (url, params, signature, signature_settings = None))]
    fn is_valid_params(
        &self,
        url: &Bound<'_, PyAny>,
        params: &Bound<'_, PyAny>,
        signature: Option<&Bound<'_, PyAny>>,
        signature_settings: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<bool> {
        Ok(self
            .verify_pairs(url, params, signature, signature_settings)?
            .is_ok())
    }

    #[pyo3(signature = (url, body, signature_settings = None))]
    fn sign(
        &self,
        url: &Bound<'_, PyAny>,
        body: &Bound<'_, PyAny>,
        signature_settings: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<String> {
        let url = text_or_bytes(url, "url")?;
        let body = text_or_bytes(body, "body")?;
        let request = Request::post(url, body).settings(optional_text_or_bytes(
            signature_settings,
            "signature_settings",
        )?);
        self.with_scratch(&request, |scratch| {
            self.core().sign_with_scratch(&request, scratch)
        })
        .map(|s| s.as_str().to_owned())
        .map_err(to_py_err)
    }

    #[pyo3(signature = (url, params, signature_settings = None))]
    fn sign_params(
        &self,
        url: &Bound<'_, PyAny>,
        params: &Bound<'_, PyAny>,
        signature_settings: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<String> {
        let url = text_or_bytes(url, "url")?;
        let owned = param_pairs(params, self.max_params)?;
        let pairs = borrow_pairs(&owned)?;
        let request = Request::with_params(url, &pairs).settings(optional_text_or_bytes(
            signature_settings,
            "signature_settings",
        )?);
        self.with_scratch(&request, |scratch| {
            self.core().sign_with_scratch(&request, scratch)
        })
        .map(|s| s.as_str().to_owned())
        .map_err(to_py_err)
    }

    #[pyo3(signature = (url, body, signature, signature_settings = None))]
    fn explain(
        &self,
        py: Python<'_>,
        url: &Bound<'_, PyAny>,
        body: &Bound<'_, PyAny>,
        signature: Option<&Bound<'_, PyAny>>,
        signature_settings: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<String> {
        let (request, body) = body_request(url, body, signature, signature_settings)?;
        let go = || {
            self.with_scratch(&request, |scratch| {
                self.core().explain_with_scratch(&request, scratch)
            })
            .to_string()
        };
        Ok(if body.len() >= DETACH_THRESHOLD {
            py.detach(go)
        } else {
            go()
        })
    }

    /// Python values (`key_ids=['KS1']`, `key_ids=[None]`), never a secret.
    fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
        let key_ids = PyList::new(py, self.key_ids.iter())?.repr()?;
        Ok(format!(
            "Validator(secrets={}, key_ids={}, max_params={})",
            self.secrets.len(),
            key_ids.to_str()?,
            self.max_params
        ))
    }
}

/// The lower-case hex SHA-256 of a body, as Twilio puts it in `bodySHA256`.
#[pyfunction]
fn body_sha256(body: &Bound<'_, PyAny>) -> PyResult<String> {
    let body = text_or_bytes(body, "body")?;
    Ok(twilio_signature::BodyHash::of(body).as_str().to_owned())
}

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add_class::<PyValidator>()?;
    m.add_class::<PyVerified>()?;
    m.add_function(wrap_pyfunction!(body_sha256, m)?)?;
    m.add("SignatureError", py.get_type::<SignatureError>())?;
    m.add(
        "MalformedRequestError",
        py.get_type::<MalformedRequestError>(),
    )?;
    m.add(
        "SignatureMismatchError",
        py.get_type::<SignatureMismatchError>(),
    )?;
    m.add(
        "BodyHashMismatchError",
        py.get_type::<BodyHashMismatchError>(),
    )?;
    m.add(
        "MissingSignatureError",
        py.get_type::<MissingSignatureError>(),
    )?;
    m.add(
        "MalformedSignatureError",
        py.get_type::<MalformedSignatureError>(),
    )?;
    m.add(
        "MalformedSettingsError",
        py.get_type::<MalformedSettingsError>(),
    )?;
    m.add(
        "UnsupportedAlgorithmError",
        py.get_type::<UnsupportedAlgorithmError>(),
    )?;
    m.add("MalformedBodyError", py.get_type::<MalformedBodyError>())?;
    m.add("BodyTooLargeError", py.get_type::<BodyTooLargeError>())?;
    m.add("TooManyParamsError", py.get_type::<TooManyParamsError>())?;
    m.add("BodyRequiredError", py.get_type::<BodyRequiredError>())?;
    m.add(
        "NoEligibleSecretError",
        py.get_type::<NoEligibleSecretError>(),
    )?;
    m.add("DEFAULT_MAX_PARAMS", 10_000)?;
    Ok(())
}
