"""Flask: ``@validate_twilio_request`` guards a view with the webhook signature check.

::

    from twilio_signature.flask import validate_twilio_request

    @app.post("/sms")
    @validate_twilio_request                       # or @validate_twilio_request(base_url=...)
    def sms():
        ...

The token comes from ``app.config["TWILIO_AUTH_TOKEN"]`` or the environment variable of that name;
none (or one that is only whitespace) raises :class:`~twilio_signature.MissingTokenError` (500).
The checks, in order: no ``X-Twilio-Signature`` -> 400 before the body is read; a ``Host`` holding a
comma (several Host lines, which Werkzeug joins with one), or a ``Host`` (or believed
``X-Forwarded-Host``) with ``/ ? # @ \\``, whitespace or control characters -> 400; a body over
``max_body_bytes`` (default 1 MiB; Content-Length or chunked) -> 413, reading at most one byte past
the limit; a non-empty form body whose ``Content-Type`` is not ``application/x-www-form-urlencoded``
-> 415 (``request.form`` would parse a multipart body the signature did not cover); a bad signature
-> 403. The raw body is verified, so form and JSON (``bodySHA256``) webhooks
both work and ``request.form`` stays usable in the view. On success ``flask.g.twilio_verified`` holds
the :class:`~twilio_signature.Verified` result. Each refusal is one WARNING line on the logger
``twilio_signature.flask``.

``idempotency=`` answers Twilio's retries once (see :mod:`twilio_signature.idempotency`): a store
(``MemoryStore()`` for one process, ``RedisStore(redis.Redis(...))`` for several) or an
``Idempotency(store, ...)`` driver. The first delivery runs the view and its response (status,
end-to-end headers such as Content-Type, Location and each Set-Cookie, body) is stored; a retry with
the same ``I-Twilio-Idempotency-Token`` gets that response with ``Idempotent-Replayed: true`` and the
view does not run. ``after_request`` functions still run on
every response, replayed or not; what is stored is the view's own response.

WebSocket routes (flask-sock): put the decorator under ``@sock.route("/media")``. A handshake (a GET
with ``Upgrade: websocket``) is verified over the ``wss://`` (``ws://``) URL Twilio signs, with no
body, when Flask starts the request: before flask-sock's view wrapper answers 101, so a refused
handshake gets its 400/403 and is never upgraded.

The URL is the one the server saw, built from the raw request target, unless ``base_url`` is given or
the request comes from a trusted proxy (``trusted_proxies=["10.0.0.0/8"]`` or ``trust_proxy=True``),
whose last ``X-Forwarded-Proto`` and ``X-Forwarded-Host`` values then replace the scheme and host.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable
from typing import Any, TypeVar, overload
from urllib.parse import quote

from flask import Flask, Response, abort, current_app, g, make_response, request, request_started
from werkzeug.exceptions import RequestEntityTooLarge

from twilio_signature._compat import SIGNATURE_HEADER, SIGNATURE_SETTINGS_HEADER
from twilio_signature._native import Verified
from twilio_signature._web import (
    DEFAULT_MAX_BODY_BYTES,
    TOKEN_SETTING,
    Guard,
    Refusal,
    is_websocket_upgrade,
)
from twilio_signature.idempotency import (
    REPLAYED_HEADER,
    TOKEN_HEADER,
    Idempotency,
    IdempotencyStore,
    StoredResponse,
)

__all__ = ["validate_twilio_request"]

F = TypeVar("F", bound=Callable[..., Any])


def _raw_target() -> str:
    environ = request.environ
    raw = environ.get("RAW_URI") or environ.get("REQUEST_URI")
    if raw:
        return str(raw)
    target = quote(environ.get("SCRIPT_NAME", "") + environ.get("PATH_INFO", ""), safe="/%;=:@!$&'()*+,~")
    query = environ.get("QUERY_STRING", "")
    return f"{target}?{query}" if query else target


def _proxy_fix_note() -> str | None:
    """What Werkzeug's ``ProxyFix`` did to the peer address, which it records in the environ."""
    original = request.environ.get("werkzeug.proxy_fix.orig")
    before = original.get("REMOTE_ADDR") if isinstance(original, dict) else None
    after = request.remote_addr
    if not before or before == after:
        return None
    return (
        f"(the peer address {after} came from X-Forwarded-For: Werkzeug's ProxyFix rewrote it "
        f"(the connection came from {before}); trust that proxy in trusted_proxies, or give ProxyFix "
        "x_for=0)"
    )


def _check(guard: Guard) -> Verified:
    """The checks of ``_web`` in order; a refusal aborts with its status."""
    environ = request.environ
    raw_host = environ.get("HTTP_HOST")
    handshake = is_websocket_upgrade(request.method, request.headers.getlist)
    try:
        url = guard.public_url(
            scheme=request.scheme,
            # The raw header: Werkzeug answers "" for a host it finds invalid, and we refuse it.
            host=str(raw_host) if raw_host is not None else request.host,
            target=_raw_target(),
            prefix=request.script_root,
            remote_addr=request.remote_addr,
            header=request.headers.getlist,
            peer_rewritten=_proxy_fix_note,
            websocket=handshake,
        )
        validator = guard.validator(current_app.config.get(TOKEN_SETTING), url)
        if handshake:  # no body: verified over the wss:// (ws://) URL alone
            settings = request.headers.get(SIGNATURE_SETTINGS_HEADER)
            return guard.verify(validator, url, b"", request.headers.get(SIGNATURE_HEADER), settings)
        length = guard.check_declared_length(environ.get("CONTENT_LENGTH"), url)
        if length is not None and environ["CONTENT_LENGTH"] != str(length):
            # Leading zeros: Werkzeug reads a length it cannot int() (over 4300 digits) as 0.
            environ["CONTENT_LENGTH"] = str(length)
        # Werkzeug bounds the read: a Content-Length body is read to its declared length, a chunked
        # one (servers that set wsgi.input_terminated) to at most max_content_length, where it stops
        # without an error; so the limit given is ours + 1, and a body that long is too large.
        app_limit = request.max_content_length
        if app_limit is None or app_limit > guard.max_body_bytes:
            request.max_content_length = guard.max_body_bytes + 1
        try:
            body = request.get_data(cache=True)
        except RequestEntityTooLarge:
            raise guard.too_large(url) from None
        if len(body) > guard.max_body_bytes:
            raise guard.too_large(url)
        guard.check_content_type(url, len(body), request.headers.getlist("Content-Type"))
        return guard.verify(
            validator,
            url,
            body,
            request.headers.get(SIGNATURE_HEADER),
            request.headers.get(SIGNATURE_SETTINGS_HEADER),
        )
    except Refusal as refusal:
        abort(refusal.status, description=refusal.reason)


_GUARD_ATTRIBUTE = "twilio_signature_guard"
"""Set on a decorated view: flask-sock's route wrapper copies it (functools.wraps), which is how the
handshake check below finds the guard of a WebSocket route."""


def _verify_websocket_handshake(app: Flask, **_: Any) -> None:
    """flask-sock answers the handshake (101) inside its own view wrapper, before the decorated
    function runs: a WebSocket upgrade to a view decorated with ``@validate_twilio_request`` is
    verified here, when Flask starts the request (the ``request_started`` signal, inside Flask's
    error handling: a refusal is the usual 400/403), so a refused handshake never gets a 101."""
    if request.endpoint is None or not is_websocket_upgrade(request.method, request.headers.getlist):
        return
    guard = getattr(app.view_functions.get(request.endpoint), _GUARD_ATTRIBUTE, None)
    if isinstance(guard, Guard):
        g.twilio_verified = _check(guard)
        g.twilio_handshake_guard = guard


request_started.connect(_verify_websocket_handshake)


def _capture(response: Response) -> StoredResponse | None:
    """The view's response as stored; a streamed or pass-through (file) body cannot be."""
    if response.is_streamed or response.direct_passthrough:
        return None
    return StoredResponse.of(response.status_code, response.headers.items(), response.get_data())


def _replay(stored: StoredResponse) -> Response:
    response = Response(stored.body, status=stored.status)
    if stored.content_type is None:
        del response.headers["Content-Type"]
    else:
        response.headers["Content-Type"] = stored.content_type
    for name, value in stored.headers:  # Location, each Set-Cookie, ...
        response.headers.add(name, value)
    if stored.replayed:
        response.headers[REPLAYED_HEADER] = "true"
    return response


@overload
def validate_twilio_request(view: F, /) -> F: ...
@overload
def validate_twilio_request(
    *,
    token: str | None = None,
    base_url: str | None = None,
    trusted_proxies: Iterable[str] | None = None,
    trust_proxy: bool = False,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    idempotency: Idempotency | IdempotencyStore | None = None,
) -> Callable[[F], F]: ...
def validate_twilio_request(
    view: F | None = None,
    /,
    *,
    token: str | None = None,
    base_url: str | None = None,
    trusted_proxies: Iterable[str] | None = None,
    trust_proxy: bool = False,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    idempotency: Idempotency | IdempotencyStore | None = None,
) -> F | Callable[[F], F]:
    """Refuse requests to the view that Twilio did not sign (400 unsigned or a bad Host, 403 badly
    signed, 413 a body over ``max_body_bytes``, 500 without a usable token); with ``idempotency``
    (a store or an :class:`~twilio_signature.idempotency.Idempotency`), run the view once per Twilio
    delivery and answer its retries with the stored response."""
    retries = None if idempotency is None else Idempotency.of(idempotency)
    guard = Guard(
        "flask",
        token=token,
        base_url=base_url,
        trusted_proxies=trusted_proxies,
        trust_proxy=trust_proxy,
        max_body_bytes=max_body_bytes,
    )

    def decorate(view: F) -> F:
        @functools.wraps(view)
        def guarded(*args: Any, **kwargs: Any) -> Any:
            if g.get("twilio_handshake_guard") is guard:
                verified = g.twilio_verified  # a WebSocket handshake, verified before its 101
            else:
                verified = g.twilio_verified = _check(guard)
            # Verified: the one place the view is called.
            if retries is None:
                return current_app.ensure_sync(view)(*args, **kwargs)
            result = retries.run(
                verified.replay_key,
                request.headers.get(TOKEN_HEADER),
                lambda: make_response(current_app.ensure_sync(view)(*args, **kwargs)),
                _capture,
            )
            return _replay(result) if isinstance(result, StoredResponse) else result

        setattr(guarded, _GUARD_ATTRIBUTE, guard)
        return guarded  # type: ignore[return-value]

    return decorate(view) if view is not None else decorate
