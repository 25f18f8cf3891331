"""FastAPI / Starlette: a dependency that refuses webhooks Twilio did not sign.

::

    from typing import Annotated
    from fastapi import Depends, FastAPI, Form
    from twilio_signature import Verified
    from twilio_signature.fastapi import TwilioSignature

    app = FastAPI()
    twilio = TwilioSignature()                      # or TwilioSignature(base_url=..., trusted_proxies=[...])

    @app.post("/sms")
    async def sms(verified: Annotated[Verified, Depends(twilio)]): ...

    @app.post("/voice")                             # Form() fields work beside it
    async def voice(From: Annotated[str, Form()], verified: Annotated[Verified, Depends(twilio)]): ...

Plain Starlette: ``await twilio(request)`` inside the endpoint. The token is the ``token`` argument or
the environment variable ``TWILIO_AUTH_TOKEN``.

The raw body is verified (form and JSON ``bodySHA256`` webhooks) and kept on the request, so
``await request.body()`` and ``await request.form()`` still work in the handler. When FastAPI has
already parsed the form for ``Form()`` parameters (it does so before any dependency runs), the parsed
pairs are verified instead: the signature covers the decoded parameters.

Refusals are ``HTTPException``: 400 without ``X-Twilio-Signature`` (the body unread) or with a bad
``Host``, 413 for a body over ``max_body_bytes`` (default 1 MiB), 403 for a bad signature; no usable
token raises :class:`~twilio_signature.MissingTokenError` (500). A route with ``Form()`` or body
parameters has its body read by FastAPI *before* the dependency runs, so to bound the memory of those
reads add :class:`TwilioBodyLimit` as middleware too, with ``paths=[...]`` so that unsigned requests are
refused before their body is read.
"""

# No `from __future__ import annotations`: FastAPI reads the annotations of `__call__` at runtime.
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from typing import Any

from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException
from starlette.requests import Request

from twilio_signature._compat import SIGNATURE_HEADER, SIGNATURE_SETTINGS_HEADER
from twilio_signature._native import Verified
from twilio_signature._web import DEFAULT_MAX_BODY_BYTES, Guard, Refusal

__all__ = ["TwilioBodyLimit", "TwilioSignature"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


def _raw_target(request: Request) -> str:
    raw_path = request.scope.get("raw_path")
    path = raw_path.decode("latin-1") if raw_path else request.url.path
    query = request.scope.get("query_string", b"").decode("latin-1")
    return f"{path}?{query}" if query else path


class _FormAlreadyParsed(Exception):
    pass


async def _read_body(guard: Guard, request: Request, url: str) -> bytes:
    """At most ``max_body_bytes + 1`` bytes of the body, kept on the request for the handler."""
    guard.check_declared_length(request.headers.get("content-length"), url)
    chunks = []
    size = 0
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size > guard.max_body_bytes:
                raise guard.too_large(url)
            chunks.append(chunk)
    except RuntimeError:  # "Stream consumed": FastAPI parsed the form for Form() parameters
        raise _FormAlreadyParsed from None
    body = b"".join(chunks)
    # Starlette's own cache of the body: request.body(), .json() and .form() read it from here.
    request._body = body
    return body


class TwilioSignature:
    """A FastAPI dependency (or Starlette helper) returning the :class:`~twilio_signature.Verified`.

    Options as the Flask and Django helpers: ``token``, ``base_url``, ``trusted_proxies`` (networks,
    ``"10.0.0.0/8"``), ``trust_proxy`` and ``max_body_bytes`` (default 1 MiB).
    """

    def __init__(
        self,
        *,
        token: str | None = None,
        base_url: str | None = None,
        trusted_proxies: Iterable[str] | None = None,
        trust_proxy: bool = False,
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    ) -> None:
        self.guard = Guard(
            "fastapi",
            token=token,
            base_url=base_url,
            trusted_proxies=trusted_proxies,
            trust_proxy=trust_proxy,
            max_body_bytes=max_body_bytes,
        )

    async def __call__(self, request: Request) -> Verified:
        guard = self.guard
        client = request.client
        hosts = request.headers.getlist("host")
        try:
            url = guard.public_url(
                scheme=request.url.scheme,
                # Several Host lines are refused too (joined with a space, which no host has).
                host=", ".join(hosts) if hosts else request.url.netloc,
                target=_raw_target(request),
                prefix=request.scope.get("root_path", ""),
                remote_addr=client.host if client else None,
                header=request.headers.getlist,
            )
            validator = guard.validator(None, url)
            signature = request.headers.get(SIGNATURE_HEADER)
            settings = request.headers.get(SIGNATURE_SETTINGS_HEADER)
            try:
                body = await _read_body(guard, request, url)
            except _FormAlreadyParsed:
                form = await request.form()  # Starlette's cached parse
                pairs = [(name, value) for name, value in form.multi_items() if isinstance(value, str)]
                if any(isinstance(value, UploadFile) for _, value in form.multi_items()):
                    raise guard.refuse(
                        403, "a file upload is not a Twilio webhook", url, "Twilio posts url-encoded forms"
                    ) from None
                return guard.verify_params(validator, url, pairs, signature, settings)
            return guard.verify(validator, url, body, signature, settings)
        except Refusal as refusal:
            raise HTTPException(status_code=refusal.status, detail=refusal.reason) from None


class TwilioBodyLimit:
    """ASGI middleware bounding webhook bodies before FastAPI parses them for ``Form()`` or body
    parameters: a declared ``Content-Length`` over ``max_body_bytes`` gets 413 unread, and a streamed
    body is cut off with 413 once it passes the limit.

    It acts on requests carrying ``X-Twilio-Signature`` and, when ``paths`` (path prefixes) is given,
    on every request under them, where a request *without* the header gets 400 before its body is
    read (FastAPI would otherwise read the whole body before the dependency could refuse it)::

        app.add_middleware(TwilioBodyLimit, paths=["/twilio/"], max_body_bytes=1 << 20)
    """

    def __init__(
        self,
        app: ASGIApp,
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
        paths: Iterable[str] | None = None,
    ) -> None:
        self.app = app
        self.guard = Guard("fastapi", max_body_bytes=max_body_bytes)
        self.paths = tuple(paths or ())

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {name.lower(): value for name, value in scope.get("headers", ())}
        signed = b"x-twilio-signature" in headers
        guarded = bool(self.paths) and str(scope.get("path", "")).startswith(self.paths)
        if not signed and not guarded:
            await self.app(scope, receive, send)
            return
        url = _raw_target(Request(scope))
        try:
            if not signed:
                raise self.guard.missing_signature(url)
            self.guard.check_declared_length(headers.get(b"content-length", b"").decode("latin-1"), url)
        except Refusal as refusal:
            await _plain(send, refusal.status, refusal.reason)
            return
        limit = self.guard.max_body_bytes
        size = 0

        async def bounded() -> Message:
            nonlocal size
            message = await receive()
            if message["type"] == "http.request":
                size += len(message.get("body", b""))
                if size > limit:
                    # FastAPI re-raises an HTTPException from body parsing; its handler answers 413.
                    refusal = self.guard.too_large(url)
                    raise HTTPException(status_code=refusal.status, detail=refusal.reason)
            return message

        await self.app(scope, bounded, send)


async def _plain(send: Send, status: int, text: str) -> None:
    body = text.encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"text/plain; charset=utf-8"),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
