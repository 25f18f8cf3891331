"""A drop-in for twilio-python's ``twilio.request_validator`` (version 9.13.0), on the native core.

Same class, methods, arguments and answers as twilio-python for every ordinary URL (lower-case
``http``/``https`` scheme, no ``user:pass@``, a host name or IPv4 address, an optional valid port).
Where twilio-python is wrong, the project's contract deliberately differs:

* **credentials** — a URL with ``user:pass@`` is also tried without them (Twilio drops them before
  signing); twilio-python never does.
* **ports** — the port is toggled by editing the authority only, so ``user:pass@host:port`` and IPv6
  literals (``[::1]:8080``) work; twilio-python's ``netloc.split(":")`` mangles both.
* **the URL is opaque** — the scheme is not lower-cased, a bare ``?`` (or ``#``, or ``;``) is kept and
  so are CR, LF and tab characters:
  twilio-python re-serialises the URL through ``urlparse``, so it accepts signatures over a URL Twilio
  never requested (and rejects the one it did).
* **bodySHA256** — an empty ``bodySHA256=`` is checked like any other value (twilio-python ignores a
  blank value and then accepts an empty body with no hash check at all).
* **a str body without bodySHA256** — the body is unauthenticated, so ``validate`` returns False
  (twilio-python raises ``TypeError`` from inside ``compute_signature``).

One twilio-python behaviour is kept for compatibility although it is unsafe: ``validate`` with *parsed*
params (a dict, ``MultiDict`` or ``QueryDict``) and a URL carrying ``bodySHA256`` cannot check the body,
so it checks the signature over the URL and params only, as twilio-python does, and emits an
:class:`UncheckedBodyWarning`. Pass the raw body as a ``str`` (or use :class:`Validator`) instead.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import sys
import warnings
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import ParseResult, urlparse

from twilio_signature._native import (
    BodyRequiredError,
    Validator,
    body_sha256,
)

logger = logging.getLogger("twilio_signature")

SIGNATURE_HEADER = "X-Twilio-Signature"
SIGNATURE_SETTINGS_HEADER = "X-Twilio-Webhooks-Signature-Settings"
HMAC_SHA1 = "HMAC_SHA1"
HMAC_SHA256 = "HMAC_SHA256"
_ALGORITHMS = (HMAC_SHA1, HMAC_SHA256)
_HASHES = {HMAC_SHA1: hashlib.sha1, HMAC_SHA256: hashlib.sha256}


class UncheckedBodyWarning(UserWarning):
    """``RequestValidator.validate`` was given parsed params for a URL with ``bodySHA256``.

    The body cannot be checked against its hash, so (like twilio-python) only the signature over the
    URL is checked: anyone who saw one signed request can replay its URL with any body. Pass the raw
    body as a ``str``, or use :meth:`Validator.verify` with the raw ``bytes``.
    """


def get_signature_algorithm(signature_settings_header: str | None) -> str:
    """The algorithm named in ``X-Twilio-Webhooks-Signature-Settings`` (``HMAC_SHA1`` if none).

    Same as twilio-python's ``get_signature_algorithm``: a missing or empty header, or one without
    ``algorithm=``, means the Auth Token scheme, HMAC_SHA1.
    """
    for part in (signature_settings_header or "").split(","):
        name, separator, value = part.partition("=")
        if separator and name.strip() == "algorithm" and value.strip():
            return value.strip()
    return HMAC_SHA1


def _algorithm(algorithm: str | None) -> str | None:
    """The canonical algorithm name, or None when unsupported (twilio-python's ``.upper()`` rule)."""
    if algorithm is None:
        return HMAC_SHA1
    name = (algorithm or HMAC_SHA1).upper()
    return name if name in _ALGORITHMS else None


def _settings(algorithm: str) -> str | None:
    return None if algorithm == HMAC_SHA1 else "algorithm=" + algorithm


def _has_body_sha256(uri: str) -> bool:
    """Whether the core treats a body sent to ``uri`` as opaque: the same rule as the core's
    (a ``bodySHA256`` name in the raw query, before any ``#``), so the two never disagree."""
    if "bodySHA256" not in uri:
        return False
    query = uri.partition("#")[0]
    if "?" not in query:
        return False
    query = query.partition("?")[2]
    return any(segment == "bodySHA256" or segment.startswith("bodySHA256=") for segment in query.split("&"))


def _twilio_python_signature(token: bytes, uri: str, pairs: Iterable[tuple[str, str]], algorithm: str) -> str:
    """twilio-python's own computation, for the one case the core refuses by design: a URL with
    ``bodySHA256`` signed together with parsed params (see :class:`UncheckedBodyWarning`)."""
    grouped: dict[str, set[str]] = {}
    for name, value in pairs:
        grouped.setdefault(name, set()).add(value)
    signed = uri + "".join(name + value for name in sorted(grouped) for value in sorted(grouped[name]))
    mac = hmac.new(token, signed.encode("utf-8"), _HASHES[algorithm])
    return base64.b64encode(mac.digest()).decode("ascii")


def _remove_port(uri: ParseResult) -> str:
    # twilio-python's remove_port/add_port, used only on the UncheckedBodyWarning path.
    if not uri.port:
        return uri.geturl()
    return uri._replace(netloc=uri.netloc.split(":")[0]).geturl()


def _add_port(uri: ParseResult) -> str:
    if uri.port:
        return uri.geturl()
    port = 443 if uri.scheme == "https" else 80
    return uri._replace(netloc=f"{uri.netloc}:{port}").geturl()


class RequestValidator:
    """Drop-in replacement for ``twilio.request_validator.RequestValidator`` (twilio-python 9.13.0).

    :param token: the secret the webhook was signed with: the account Auth Token, or the SharedKey
        secret when the request carries ``X-Twilio-Webhooks-Signature-Settings``.

    Differences from twilio-python are all deliberate and listed in this module's docstring: URLs
    with credentials, IPv6 literals, an upper-case scheme, a bare ``?`` or an empty ``bodySHA256``.
    An empty token is refused with ``ValueError`` (twilio-python accepts it).
    """

    def __init__(self, token: str) -> None:
        if not isinstance(token, str):
            raise TypeError(f"token must be str, not {type(token).__name__}")
        try:
            encoded: bytes | None = token.encode("utf-8")
        except UnicodeEncodeError:  # its `object` is the whole token: dropped, not chained
            encoded = None
        if encoded is None:
            raise ValueError("the token must be encodable as UTF-8 (it has a lone surrogate)")
        self.token = encoded
        # No parameter limit (twilio-python has none): the scratch is sized from the distinct pairs
        # actually given, so the native path answers every size and no size picks another path.
        self._validator = Validator(self.token, max_params=sys.maxsize)

    def __repr__(self) -> str:
        return "RequestValidator(token=<redacted>)"

    def get_values(self, param_dict: Any, param_name: str) -> list[Any]:
        """All values of ``param_name``: ``getall`` (multidict), ``getlist`` (werkzeug ``MultiDict``,
        Django ``QueryDict``), else ``[param_dict[param_name]]``. Same as twilio-python."""
        try:
            return list(param_dict.getall(param_name))
        except AttributeError:
            try:
                return list(param_dict.getlist(param_name))
            except AttributeError:
                return [param_dict[param_name]]

    def _pairs(self, params: Any) -> list[tuple[str, str]]:
        if not params:
            return []
        if type(params) is dict:
            return list(params.items())
        if isinstance(params, (str, bytes)) or not isinstance(params, (Mapping, Iterable)):
            raise TypeError(
                "params must be a dict, MultiDict or QueryDict of form parameters "
                f"(or a str JSON body for a URL with bodySHA256), not {type(params).__name__}"
            )
        # Distinct pairs only: the signature covers each distinct (name, value) once (twilio-python
        # groups values in a set), so duplicates change nothing but the work.
        return list(
            dict.fromkeys((name, value) for name in set(params) for value in self.get_values(params, name))
        )

    def compute_signature(self, uri: str, params: Any, algorithm: str | None = None) -> str:
        """The signature of ``uri`` (exactly as given) with ``params``.

        :param algorithm: ``HMAC_SHA1`` (default) or ``HMAC_SHA256``.
        :raises ValueError: if the algorithm is not supported.
        """
        name = _algorithm(algorithm)
        if name is None:
            raise ValueError(f"Unsupported webhook signature algorithm: {algorithm}")
        if not isinstance(uri, str):
            raise TypeError(f"uri must be str, not {type(uri).__name__}")
        pairs = self._pairs(params)
        try:
            return self._validator.sign_params(uri, pairs, _settings(name))
        except BodyRequiredError:
            # A bodySHA256 URL with parsed params: the contract refuses to sign it, twilio-python does.
            return _twilio_python_signature(self.token, uri, pairs, name)

    def compute_hash(self, body: str) -> str:
        """The lower-case hex SHA-256 of ``body`` (as in ``bodySHA256``)."""
        return body_sha256(body)

    def validate(self, uri: str, params: Any, signature: str, algorithm: str | None = None) -> bool:
        """Validate a request from Twilio.

        :param uri: full URI that Twilio requested on your server
        :param params: the POST parameters (dict, ``MultiDict``, ``QueryDict``), or the raw body as a
            ``str`` for JSON requests (the URL then carries ``bodySHA256``)
        :param signature: the ``X-Twilio-Signature`` header
        :param algorithm: ``HMAC_SHA1`` (default) or ``HMAC_SHA256``, see
            :func:`get_signature_algorithm`. An unsupported algorithm fails validation and logs a
            warning.
        :returns: True if the request passes validation, False if not
        """
        name = _algorithm(algorithm)
        if name is None:
            logger.warning(
                "Unsupported webhook signature algorithm '%s'. Supported: %s, %s.",
                algorithm,
                HMAC_SHA1,
                HMAC_SHA256,
            )
            return False
        if not isinstance(uri, str):
            raise TypeError(f"uri must be str, not {type(uri).__name__}")
        settings = _settings(name)
        if params is None:
            params = {}
        if isinstance(params, str):
            if params and not _has_body_sha256(uri):
                # twilio-python raises TypeError here; an unauthenticated body is simply invalid.
                logger.warning("a str body was given for a URL without bodySHA256: invalid")
                return False
            return self._validator.is_valid(uri, params, signature, settings)
        if _has_body_sha256(uri):
            return self._validate_unchecked_body(uri, self._pairs(params), signature, name)
        # A plain dict goes to the extension as it is (read in place); anything else as pairs.
        native = params if type(params) is dict else self._pairs(params)
        return self._validator.is_valid_params(uri, native, signature, settings)

    def _validate_unchecked_body(
        self, uri: str, pairs: list[tuple[str, str]], signature: str, algorithm: str
    ) -> bool:
        if _has_body_sha256(uri):
            warnings.warn(
                "RequestValidator.validate() got parsed params for a URL with bodySHA256: the body "
                "is not checked. Pass the raw body as a str, or use Validator.verify().",
                UncheckedBodyWarning,
                stacklevel=3,
            )
        if not isinstance(signature, str):
            return False
        parsed = urlparse(uri)
        expected = signature.encode("utf-8")
        return any(
            hmac.compare_digest(
                _twilio_python_signature(self.token, candidate, pairs, algorithm).encode(),
                expected,
            )
            for candidate in (_remove_port(parsed), _add_port(parsed))
        )
