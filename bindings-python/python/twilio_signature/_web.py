"""What the Flask, Django and FastAPI helpers share: the token, the public URL, the HTTP status."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterable

from twilio_signature._native import MissingSignatureError, SignatureError, Validator

TOKEN_SETTING = "TWILIO_AUTH_TOKEN"


class MissingTokenError(RuntimeError):
    """No Auth Token is configured: the app would otherwise accept nothing (or everything)."""


class Guard:
    """The options of one decorator, middleware or dependency, and the validators it built.

    :param token: the Auth Token; by default the framework setting or environment variable
        ``TWILIO_AUTH_TOKEN``, read at request time.
    :param base_url: the public origin Twilio calls (``https://example.com``, or with a path prefix):
        replaces the scheme, host and mount point the server sees.
    :param trusted_proxies: addresses of reverse proxies whose ``X-Forwarded-Proto`` and
        ``X-Forwarded-Host`` headers are believed. Ignored for requests from any other address.
    :param trust_proxy: believe those headers from any address (the app is reachable only through
        the proxy).
    """

    def __init__(
        self,
        *,
        token: str | None = None,
        base_url: str | None = None,
        trusted_proxies: Iterable[str] | None = None,
        trust_proxy: bool = False,
    ) -> None:
        self.token = token
        self.base_url = base_url.rstrip("/") if base_url else None
        self.trusted_proxies = frozenset(trusted_proxies or ())
        self.trust_proxy = trust_proxy
        self._validators: dict[str, Validator] = {}
        self._lock = threading.Lock()

    def validator(self, configured: str | None) -> Validator:
        token = self.token or configured or os.environ.get(TOKEN_SETTING)
        if not token:
            raise MissingTokenError(
                f"set {TOKEN_SETTING} (app config or environment) to verify Twilio webhooks"
            )
        validator = self._validators.get(token)
        if validator is None:
            with self._lock:
                validator = self._validators.setdefault(token, Validator(token))
        return validator

    def public_url(
        self,
        *,
        scheme: str,
        host: str,
        target: str,
        prefix: str,
        remote_addr: str | None,
        header: Callable[[str], str | None],
    ) -> str:
        """The URL Twilio requested: ``target`` is the raw request target (path and query, as sent)
        and ``prefix`` the mount point it is relative to (stripped when ``base_url`` is set);
        ``header`` looks up a request header."""
        if self.base_url is not None:
            path = target[len(prefix) :] if prefix and target.startswith(prefix) else target
            return self.base_url + path
        if self.trust_proxy or (remote_addr is not None and remote_addr in self.trusted_proxies):
            scheme = _last(header("X-Forwarded-Proto")) or scheme
            host = _last(header("X-Forwarded-Host")) or host
        return f"{scheme}://{host}{target}"


def _last(value: str | None) -> str | None:
    """The entry the nearest proxy added to a comma-separated forwarding header."""
    if not value:
        return None
    return value.rsplit(",", 1)[-1].strip() or None


def status_for(error: SignatureError) -> int:
    """400 when the request carries no signature at all, 403 when it carries a bad one."""
    return 400 if isinstance(error, MissingSignatureError) else 403
