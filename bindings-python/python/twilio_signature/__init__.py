"""Verify Twilio webhook signatures (``X-Twilio-Signature``) with a native, constant-time core.

Two APIs:

* :class:`Validator` — the native API on the raw request body::

      from twilio_signature import Validator
      validator = Validator(auth_token)               # or [primary, secondary], or {key_id: secret}
      verified = validator.verify(url, body, request.headers.get("X-Twilio-Signature"),
                                  request.headers.get("X-Twilio-Webhooks-Signature-Settings"))

  ``verify`` raises a :class:`SignatureError` subclass (also a ``ValueError``) with a clear message;
  ``is_valid`` returns a bool; ``sign`` computes the signature Twilio would send; ``explain`` returns a
  readable report of what went wrong.

* :class:`RequestValidator` — a drop-in for ``twilio.request_validator.RequestValidator``
  (twilio-python 9.13.0): same methods, same arguments, same answers on ordinary URLs.

Framework helpers live in :mod:`twilio_signature.flask`, :mod:`twilio_signature.django` and
:mod:`twilio_signature.fastapi`; :mod:`twilio_signature.testing` signs requests for their test clients.
"""

from __future__ import annotations

from twilio_signature._compat import (
    HMAC_SHA1,
    HMAC_SHA256,
    SIGNATURE_HEADER,
    SIGNATURE_SETTINGS_HEADER,
    RequestValidator,
    UncheckedBodyWarning,
    get_signature_algorithm,
)
from twilio_signature._native import (
    DEFAULT_MAX_PARAMS,
    BodyHashMismatchError,
    BodyRequiredError,
    BodyTooLargeError,
    MalformedBodyError,
    MalformedRequestError,
    MalformedSettingsError,
    MalformedSignatureError,
    MissingSignatureError,
    NoEligibleSecretError,
    SignatureError,
    SignatureMismatchError,
    TooManyParamsError,
    UnsupportedAlgorithmError,
    Validator,
    Verified,
    body_sha256,
)
from twilio_signature._web import DEFAULT_MAX_BODY_BYTES, MissingTokenError

__all__ = [
    "DEFAULT_MAX_BODY_BYTES",
    "DEFAULT_MAX_PARAMS",
    "HMAC_SHA1",
    "HMAC_SHA256",
    "SIGNATURE_HEADER",
    "SIGNATURE_SETTINGS_HEADER",
    "BodyHashMismatchError",
    "BodyRequiredError",
    "BodyTooLargeError",
    "MalformedBodyError",
    "MalformedRequestError",
    "MalformedSettingsError",
    "MalformedSignatureError",
    "MissingSignatureError",
    "MissingTokenError",
    "NoEligibleSecretError",
    "RequestValidator",
    "SignatureError",
    "SignatureMismatchError",
    "TooManyParamsError",
    "UncheckedBodyWarning",
    "UnsupportedAlgorithmError",
    "Validator",
    "Verified",
    "body_sha256",
    "get_signature_algorithm",
]
