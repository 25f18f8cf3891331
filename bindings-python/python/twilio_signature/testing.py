"""Sign requests for your own tests: post a webhook as Twilio would, through a framework test client.

One call posts a signed form (or JSON) webhook through Flask's ``app.test_client()``, Django's
``django.test.Client`` or Starlette's / FastAPI's ``TestClient``::

    from twilio_signature.testing import post_signed

    response = post_signed(client, "/sms", {"From": "+14155550100", "Body": "hi"}, token="test-token")
    assert response.status_code == 200

    # A JSON webhook: the URL gets ?bodySHA256=<hash of the body>, as Twilio sends it.
    response = post_signed(client, "/events", json={"event": "x"}, token="test-token")

The signature covers the URL the test client's server side will see: ``http://localhost`` for Flask,
``http://testserver`` for Django and Starlette (pass ``base_url=`` when your app verifies another
origin, such as the ``base_url`` it was configured with). The form is sent url-encoded, as Twilio
sends it (Django's client would otherwise send multipart).

:func:`signed_request` gives the pieces (URL, body, headers) for any other client, and
:func:`handshake_headers` the headers of a signed WebSocket handshake (Media Streams,
ConversationRelay), which Twilio signs over the ``wss://`` (``ws://``) URL::

    with client.websocket_connect("/media", headers=handshake_headers("ws://testserver/media")) as ws:
        ...
"""

from __future__ import annotations

import json as json_module
import os
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode, urlsplit

from twilio_signature._compat import HMAC_SHA1, SIGNATURE_HEADER, SIGNATURE_SETTINGS_HEADER
from twilio_signature._native import Validator, body_sha256
from twilio_signature._web import TOKEN_SETTING

__all__ = ["SignedRequest", "handshake_headers", "post_signed", "signed_request"]

FORM = "application/x-www-form-urlencoded"
JSON = "application/json"


@dataclass(frozen=True)
class SignedRequest:
    """A webhook as Twilio would send it: post ``body`` to ``url`` with ``headers``."""

    url: str
    body: bytes
    content_type: str
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def path(self) -> str:
        """The request target (path and query) to give a test client."""
        parts = urlsplit(self.url)
        return f"{parts.path or '/'}?{parts.query}" if parts.query else parts.path or "/"


def signed_request(
    url: str,
    params: dict[str, str] | list[tuple[str, str]] | None = None,
    *,
    json: Any = None,
    token: str | None = None,
    algorithm: str = HMAC_SHA1,
) -> SignedRequest:
    """Sign a POST of ``params`` (a url-encoded form) or ``json`` to the full public ``url``.

    :param token: the Auth Token (default: the ``TWILIO_AUTH_TOKEN`` environment variable).
    :param algorithm: ``HMAC_SHA1`` (Auth Token, the default) or ``HMAC_SHA256`` (a SharedKey; the
        request then carries ``X-Twilio-Webhooks-Signature-Settings``).
    """
    token = token or os.environ.get(TOKEN_SETTING)
    if not token:
        raise ValueError(f"pass token= or set {TOKEN_SETTING}")
    if params is not None and json is not None:
        raise ValueError("pass params (a form) or json, not both")
    if json is not None:
        body = json_module.dumps(json).encode()
        url = f"{url}{'&' if '?' in url else '?'}bodySHA256={body_sha256(body)}"
        content_type = JSON
    else:
        body = urlencode(params or {}, doseq=False).encode()
        content_type = FORM
    settings = None if algorithm == HMAC_SHA1 else f"algorithm={algorithm}"
    headers = {SIGNATURE_HEADER: Validator(token).sign(url, body, settings)}
    if settings is not None:
        headers[SIGNATURE_SETTINGS_HEADER] = settings
    return SignedRequest(url=url, body=body, content_type=content_type, headers=headers)


def handshake_headers(url: str, *, token: str | None = None, algorithm: str = HMAC_SHA1) -> dict[str, str]:
    """The headers Twilio sends on a WebSocket handshake to ``url``, which must be the ``wss://`` (or
    ``ws://``) URL: the handshake has no body and is signed over that URL (an ``https://`` URL is
    refused here, as the helpers would refuse its signature)."""
    if not url.lower().startswith(("ws://", "wss://")):
        raise ValueError("a WebSocket handshake is signed over its wss:// (or ws://) URL")
    return dict(signed_request(url, None, token=token, algorithm=algorithm).headers)


def _default_origin(client: Any) -> str:
    module = type(client).__module__
    if module.startswith(("flask", "werkzeug")):
        return "http://localhost"
    base = getattr(client, "base_url", None)  # Starlette's TestClient (an httpx.Client)
    if base is not None and not module.startswith("django"):
        return str(base).rstrip("/")
    return "http://testserver"  # Django's Client


def post_signed(
    client: Any,
    path: str,
    params: dict[str, str] | list[tuple[str, str]] | None = None,
    *,
    json: Any = None,
    token: str | None = None,
    algorithm: str = HMAC_SHA1,
    base_url: str | None = None,
    headers: dict[str, str] | None = None,
) -> Any:
    """POST a signed webhook to ``path`` through ``client`` and return the client's response.

    ``client`` is a Flask ``app.test_client()``, a ``django.test.Client`` or a Starlette/FastAPI
    ``TestClient``. ``base_url`` is the origin the signature covers (default: the client's own).
    """
    origin = (base_url or _default_origin(client)).rstrip("/")
    signed = signed_request(origin + path, params, json=json, token=token, algorithm=algorithm)
    all_headers = {**signed.headers, **(headers or {})}
    module = type(client).__module__
    if module.startswith(("django", "flask", "werkzeug")):
        return client.post(
            signed.path, data=signed.body, content_type=signed.content_type, headers=all_headers
        )
    return client.post(
        signed.path, content=signed.body, headers={"Content-Type": signed.content_type, **all_headers}
    )
