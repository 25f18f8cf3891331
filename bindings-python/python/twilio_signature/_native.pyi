"""Type stubs for the native module (the pyo3 layer over the Rust core)."""

from collections.abc import Iterable, Mapping, Sequence
from typing import Final, final

__all__ = [
    "DEFAULT_MAX_PARAMS",
    "BodyHashMismatchError",
    "BodyRequiredError",
    "BodyTooLargeError",
    "MalformedBodyError",
    "MalformedRequestError",
    "MalformedSettingsError",
    "MalformedSignatureError",
    "MissingSignatureError",
    "NoEligibleSecretError",
    "SignatureError",
    "SignatureMismatchError",
    "TooManyParamsError",
    "UnsupportedAlgorithmError",
    "Validator",
    "Verified",
    "body_sha256",
]

DEFAULT_MAX_PARAMS: Final[int]

class SignatureError(ValueError): ...
class MalformedRequestError(SignatureError): ...
class SignatureMismatchError(SignatureError): ...
class BodyHashMismatchError(SignatureMismatchError): ...
class MissingSignatureError(MalformedRequestError): ...
class MalformedSignatureError(MalformedRequestError): ...
class MalformedSettingsError(MalformedRequestError): ...
class UnsupportedAlgorithmError(MalformedRequestError): ...
class MalformedBodyError(MalformedRequestError): ...
class BodyTooLargeError(MalformedRequestError): ...
class TooManyParamsError(MalformedRequestError): ...
class BodyRequiredError(MalformedRequestError): ...
class NoEligibleSecretError(MalformedRequestError): ...

@final
class Verified:
    """A verified request: which secret and which form of the URL matched, and a replay key."""

    @property
    def secret_index(self) -> int: ...
    @property
    def key_id(self) -> str | None: ...
    @property
    def candidate(self) -> str:
        """ "as_given", "port_toggled", "without_userinfo" or "without_userinfo_port_toggled"."""
    @property
    def algorithm(self) -> str:
        """ "HMAC_SHA1" or "HMAC_SHA256"."""
    @property
    def replay_key(self) -> bytes:
        """32 bytes identifying this signed request: store them with an expiry to refuse replays."""

@final
class Validator:
    """Verifies Twilio webhook requests against one or more secrets. Immutable and thread-safe.

    ``secrets`` is one Auth Token (``str`` or ``bytes``), a list of them (tried in order: key
    rotation, several subaccounts), or ``{key_id: secret}`` for SharedKeys. A secret that is empty
    or made only of space, ``\\t``, ``\\n``, ``\\v``, ``\\f`` and ``\\r`` (the core's rule, the same in
    every face), or a ``str`` that cannot be encoded as UTF-8, is a ``ValueError`` that never carries
    the secret. Its ``repr`` shows the number of secrets and the key ids, never a secret.
    ``max_params`` bounds the form parameters of one request (``TooManyParamsError`` past it; an
    iterable of pairs is read no further than that).
    """

    def __new__(
        cls,
        secrets: str | bytes | Sequence[str | bytes] | Mapping[str, str | bytes],
        *,
        max_params: int = 10_000,
    ) -> Validator: ...
    @property
    def max_params(self) -> int: ...
    @property
    def key_ids(self) -> list[str | None]: ...
    def verify(
        self,
        url: str | bytes,
        body: str | bytes,
        signature: str | bytes | None,
        signature_settings: str | bytes | None = None,
    ) -> Verified:
        """Verify a request from its raw body; raise a ``SignatureError`` subclass if it fails."""
    def is_valid(
        self,
        url: str | bytes,
        body: str | bytes,
        signature: str | bytes | None,
        signature_settings: str | bytes | None = None,
    ) -> bool:
        """``verify`` as a bool (``TypeError`` for arguments of the wrong type is still raised)."""
    def verify_params(
        self,
        url: str | bytes,
        params: Iterable[tuple[str, str]] | dict[str, str],
        signature: str | bytes | None,
        signature_settings: str | bytes | None = None,
    ) -> Verified:
        """Verify a request whose form parameters a framework already parsed: (name, value) pairs, or a
        plain dict."""
    def is_valid_params(
        self,
        url: str | bytes,
        params: Iterable[tuple[str, str]] | dict[str, str],
        signature: str | bytes | None,
        signature_settings: str | bytes | None = None,
    ) -> bool:
        """``verify_params`` as a bool (``TypeError`` for arguments of the wrong type is still raised;
        a URL with ``bodySHA256`` cannot be verified from params: False)."""
    def sign(
        self,
        url: str | bytes,
        body: str | bytes,
        signature_settings: str | bytes | None = None,
    ) -> str:
        """The X-Twilio-Signature Twilio would send for this URL and raw body."""
    def sign_params(
        self,
        url: str | bytes,
        params: Iterable[tuple[str, str]] | dict[str, str],
        signature_settings: str | bytes | None = None,
    ) -> str:
        """The X-Twilio-Signature for this URL and parsed form parameters (pairs, or a plain dict)."""
    def explain(
        self,
        url: str | bytes,
        body: str | bytes,
        signature: str | bytes | None,
        signature_settings: str | bytes | None = None,
    ) -> str:
        """A readable report: valid, or why not and which common mistake would have matched."""

def body_sha256(body: str | bytes) -> str:
    """The lower-case hex SHA-256 of a body, as Twilio puts it in ``bodySHA256``."""
