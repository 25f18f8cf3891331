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

The same dependency guards a WebSocket route (Media Streams, ConversationRelay)::

    @app.websocket("/media")
    async def media(websocket: WebSocket, verified: Annotated[Verified, Depends(twilio)]):
        await websocket.accept()

The handshake is verified over the ``wss://`` (``ws://``) URL Twilio signs, before ``accept()``; a
refused one is answered 400/403 (or, on a server without the ASGI denial-response extension, closed
before accept: the server's 403), never upgraded.

Plain Starlette: ``await twilio(request)`` inside the endpoint. The token is the ``token`` argument or
the environment variable ``TWILIO_AUTH_TOKEN``.

The raw body is verified (form and JSON ``bodySHA256`` webhooks) and kept on the request, so
``await request.body()`` and ``await request.form()`` still work in the handler. When FastAPI has
already parsed the form for ``Form()`` parameters (it does so before any dependency runs), the parsed
pairs are verified instead: the signature covers the decoded parameters.

Refusals are ``HTTPException``: 400 without ``X-Twilio-Signature`` (the body unread) or with a bad
``Host``, 413 for a body over ``max_body_bytes`` (default 1 MiB), 415 for a non-empty form body whose
``Content-Type`` is not ``application/x-www-form-urlencoded`` (FastAPI would parse a multipart body
the signature did not cover), 403 for a bad signature; no usable
token raises :class:`~twilio_signature.MissingTokenError` (500). A route with ``Form()`` or body
parameters has its body read by FastAPI *before* the dependency runs, so to bound the memory of those
reads add :class:`TwilioBodyLimit` as middleware too, with ``paths=[...]`` so that unsigned requests are
refused before their body is read.

Retries (see :mod:`twilio_signature.idempotency`): a dependency runs before the endpoint but cannot
wrap it, so answering Twilio's retries once takes the helper's route class as well::

    twilio = TwilioSignature(idempotency=RedisStore(redis.Redis()))   # or MemoryStore() for one process
    router = APIRouter(route_class=twilio.route_class)

    @router.post("/voice")
    async def voice(verified: Annotated[Verified, Depends(twilio)]): ...

    app.include_router(router)

The route class verifies the request (once: the dependency then returns that result), runs the
endpoint once per delivery and answers a retry with the stored response and ``Idempotent-Replayed:
true``. It acts only on routes that depend on ``twilio``; other routes of the router are untouched.
A route that depends on a ``TwilioSignature(idempotency=...)`` but is not built by its route class
raises ``RuntimeError`` on every request (a 500) rather than silently running every retry. Plain
Starlette (no route classes): keep ``TwilioSignature()`` without ``idempotency`` and call
``Idempotency.run_async`` around your endpoint's work yourself.
"""

# No `from __future__ import annotations`: FastAPI reads the annotations of `__call__` at runtime.
from collections.abc import Awaitable, Callable, Coroutine, Iterable, MutableMapping
from typing import Any, cast

from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException, WebSocketException
from starlette.requests import HTTPConnection, Request
from starlette.responses import Response
from starlette.status import WS_1008_POLICY_VIOLATION

from twilio_signature._compat import SIGNATURE_HEADER, SIGNATURE_SETTINGS_HEADER
from twilio_signature._native import Verified
from twilio_signature._web import (
    DEFAULT_MAX_BODY_BYTES,
    Guard,
    Refusal,
    uvicorn_peer_note,
    websocket_scheme_as_http,
)
from twilio_signature.idempotency import (
    REPLAYED_HEADER,
    TOKEN_HEADER,
    Idempotency,
    IdempotencyStore,
    StoredResponse,
)

__all__ = ["TwilioBodyLimit", "TwilioSignature"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

_VERIFIED_KEY = "twilio_signature.verified"
"""The request scope's entry where the route class leaves (helper, Verified) for the dependency."""


def _raw_target(request: HTTPConnection) -> str:
    raw_path = request.scope.get("raw_path")
    path = raw_path.decode("latin-1") if raw_path else request.url.path
    query = request.scope.get("query_string", b"").decode("latin-1")
    return f"{path}?{query}" if query else path


def _proxy_headers_note(request: HTTPConnection) -> str | None:
    client = request.client
    return uvicorn_peer_note(client.host if client else None, request.headers.getlist("x-forwarded-for"))


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


def _capture(response: Response) -> StoredResponse | None:
    """The endpoint's response as stored; a streamed one (no ``body``) cannot be."""
    body = getattr(response, "body", None)
    if not isinstance(body, bytes):
        return None
    lines = [(name.decode("latin-1"), value.decode("latin-1")) for name, value in response.raw_headers]
    return StoredResponse.of(response.status_code, lines, body)


def _replay(stored: StoredResponse) -> Response:
    # The content type as a header, not media_type: Starlette would add a charset to text/*.
    headers = {REPLAYED_HEADER: "true"} if stored.replayed else {}
    if stored.content_type is not None:
        headers["content-type"] = stored.content_type
    response = Response(stored.body, status_code=stored.status, headers=headers)
    # Location, each Set-Cookie, ...: raw lines, as a dict of headers holds one value per name.
    response.raw_headers.extend(
        (name.encode("latin-1"), value.encode("latin-1")) for name, value in stored.headers
    )
    return response


class TwilioSignature:
    """A FastAPI dependency (or Starlette helper) returning the :class:`~twilio_signature.Verified`.

    Options as the Flask and Django helpers: ``token``, ``base_url``, ``trusted_proxies`` (networks,
    ``"10.0.0.0/8"``), ``trust_proxy`` and ``max_body_bytes`` (default 1 MiB); ``idempotency`` (a
    store or an :class:`~twilio_signature.idempotency.Idempotency`) answers Twilio's retries once on
    the routes built by :attr:`route_class`.
    """

    def __init__(
        self,
        *,
        token: str | None = None,
        base_url: str | None = None,
        trusted_proxies: Iterable[str] | None = None,
        trust_proxy: bool = False,
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
        idempotency: Idempotency | IdempotencyStore | None = None,
    ) -> None:
        self.retries = None if idempotency is None else Idempotency.of(idempotency)
        self._route_class: type[Any] | None = None
        self.guard = Guard(
            "fastapi",
            token=token,
            base_url=base_url,
            trusted_proxies=trusted_proxies,
            trust_proxy=trust_proxy,
            max_body_bytes=max_body_bytes,
        )

    async def __call__(self, request: HTTPConnection) -> Verified:
        # HTTPConnection: FastAPI passes the Request of an HTTP route and the WebSocket of an
        # @app.websocket route alike.
        if request.scope["type"] == "websocket":
            return self._verify_handshake(request)
        request = cast(Request, request)
        found = request.scope.get(_VERIFIED_KEY)
        if found is not None and found[0] is self:
            verified: Verified = found[1]  # verified by our route class
            return verified
        if self.retries is not None:
            raise RuntimeError(
                "TwilioSignature(idempotency=...) answers retries only on routes built by its route "
                "class: APIRouter(route_class=twilio.route_class) (or app.router.route_class = "
                "twilio.route_class before the routes are added); without it every retry would run again"
            )
        return await self._verify(request)

    @property
    def route_class(self) -> type[Any]:
        """A FastAPI ``APIRoute`` class: on each of its routes that depends on this helper, the
        request is verified before the endpoint's dependencies are solved and, with
        ``idempotency``, the endpoint runs once per Twilio delivery (retries get the stored
        response). Routes that do not depend on this helper are left as they are."""
        if self._route_class is None:
            self._route_class = _make_route_class(self)
        return self._route_class

    def _verify_handshake(self, websocket: HTTPConnection) -> Verified:
        """A WebSocket handshake (rule R5), before ``accept()``: verified against the ``wss://`` (or
        ``ws://``) URL, with no body. A refusal is an HTTP response to the handshake (400/403, sent
        through the ASGI denial-response extension, which uvicorn has), or without that extension
        a close before accept, which the server answers 403: never a 101."""
        guard = self.guard
        try:
            url = _public_url(guard, websocket, websocket=True)
            validator = guard.validator(None, url)
            return guard.verify(
                validator,
                url,
                b"",
                websocket.headers.get(SIGNATURE_HEADER),
                websocket.headers.get(SIGNATURE_SETTINGS_HEADER),
            )
        except Refusal as refusal:
            if "websocket.http.response" in websocket.scope.get("extensions", {}):
                raise HTTPException(status_code=refusal.status, detail=refusal.reason) from None
            raise WebSocketException(WS_1008_POLICY_VIOLATION, refusal.reason) from None

    async def _verify(self, request: Request) -> Verified:
        guard = self.guard
        try:
            url = _public_url(guard, request, websocket=False)
            validator = guard.validator(None, url)
            signature = request.headers.get(SIGNATURE_HEADER)
            settings = request.headers.get(SIGNATURE_SETTINGS_HEADER)
            content_types = request.headers.getlist("content-type")
            try:
                body = await _read_body(guard, request, url)
            except _FormAlreadyParsed:
                # FastAPI parsed the body by its Content-Type for Form() parameters: a multipart
                # body is refused here, before the endpoint sees its unsigned fields.
                declared = request.headers.get("content-length")
                guard.check_content_type(url, 0 if declared == "0" else 1, content_types)
                form = await request.form()  # Starlette's cached parse
                pairs = [(name, value) for name, value in form.multi_items() if isinstance(value, str)]
                if any(isinstance(value, UploadFile) for _, value in form.multi_items()):
                    raise guard.refuse(
                        403, "a file upload is not a Twilio webhook", url, "Twilio posts url-encoded forms"
                    ) from None
                return guard.verify_params(validator, url, pairs, signature, settings)
            guard.check_content_type(url, len(body), content_types)
            return guard.verify(validator, url, body, signature, settings)
        except Refusal as refusal:
            raise HTTPException(status_code=refusal.status, detail=refusal.reason) from None


def _public_url(guard: Guard, connection: HTTPConnection, *, websocket: bool) -> str:
    """:meth:`Guard.public_url` of a request or a WebSocket handshake (whose ``ws``/``wss`` scheme
    is given as ``http``/``https``: the guard puts the WebSocket scheme back)."""
    client = connection.client
    hosts = connection.headers.getlist("host")
    return guard.public_url(
        scheme=websocket_scheme_as_http(connection.url.scheme),
        # Several Host lines are joined with a comma, as WSGI servers do, and refused.
        host=",".join(hosts) if hosts else connection.url.netloc,
        target=_raw_target(connection),
        prefix=connection.scope.get("root_path", ""),
        remote_addr=client.host if client else None,
        header=connection.headers.getlist,
        peer_rewritten=lambda: _proxy_headers_note(connection),
        websocket=websocket,
    )


def _make_route_class(twilio: TwilioSignature) -> type[Any]:
    from fastapi.dependencies.models import Dependant
    from fastapi.routing import APIRoute  # FastAPI only: plain Starlette users never get here

    def depends_on_twilio(dependant: Dependant) -> bool:
        return any(dep.call is twilio or depends_on_twilio(dep) for dep in dependant.dependencies)

    class TwilioSignatureRoute(APIRoute):
        def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
            handler = super().get_route_handler()
            if not depends_on_twilio(self.dependant):
                return handler

            async def verified_route(request: Request) -> Response:
                verified = await twilio._verify(request)  # a refusal raises HTTPException
                request.scope[_VERIFIED_KEY] = (twilio, verified)
                retries = twilio.retries
                if retries is None:
                    return await handler(request)
                result = await retries.run_async(
                    verified.replay_key,
                    request.headers.get(TOKEN_HEADER),
                    lambda: handler(request),
                    _capture,
                )
                return _replay(result) if isinstance(result, StoredResponse) else result

            return verified_route

    return TwilioSignatureRoute


class TwilioBodyLimit:
    """ASGI middleware bounding webhook bodies before FastAPI parses them for ``Form()`` or body
    parameters: a declared ``Content-Length`` over ``max_body_bytes`` gets 413 unread, and a streamed
    body is cut off with 413 once it passes the limit.

    It acts on requests carrying ``X-Twilio-Signature`` and, when ``paths`` (path prefixes) is given,
    on every request under them, where a request *without* the header gets 400 before its body is
    read (FastAPI would otherwise read the whole body before the dependency could refuse it)::

        app.add_middleware(TwilioBodyLimit, paths=["/twilio/"], max_body_bytes=1 << 20)

    The prefixes are matched against the path relative to the app's mount point (``scope["path"]``
    without its ``root_path``, as Starlette routes it), so ``["/twilio/"]`` guards ``/app/twilio/sms``
    of an app mounted at ``/app`` (``Mount("/app", app=...)`` or ``uvicorn --root-path /app``).
    ``paths`` that is empty, a bare string or holds anything but strings raises
    :class:`TypeError` / :class:`ValueError` when the middleware is built, rather than guarding
    nothing (or one-character prefixes).
    """

    def __init__(
        self,
        app: ASGIApp,
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
        paths: Iterable[str] | None = None,
    ) -> None:
        self.app = app
        self.guard = Guard("fastapi", max_body_bytes=max_body_bytes)
        self.paths = () if paths is None else _path_prefixes(paths)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {name.lower(): value for name, value in scope.get("headers", ())}
        signed = b"x-twilio-signature" in headers
        guarded = bool(self.paths) and _mounted_path(scope).startswith(self.paths)
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


_PATHS_EXAMPLE = "paths=['/twilio/']"


def _path_prefixes(paths: object) -> tuple[str, ...]:
    """``paths`` as a tuple of prefixes; :class:`TypeError` / :class:`ValueError` when it would guard
    nothing (empty) or not what was meant (a bare string, non-string entries)."""
    if isinstance(paths, str):
        raise TypeError(
            f"TwilioBodyLimit paths must be a list of path prefixes such as {_PATHS_EXAMPLE}, "
            f"not a str: write paths=[{paths!r}]"
        )
    try:
        prefixes: tuple[object, ...] = tuple(cast(Iterable[object], paths))
    except TypeError:
        raise TypeError(
            f"TwilioBodyLimit paths must be a list of path prefixes such as {_PATHS_EXAMPLE}"
        ) from None
    if not prefixes:
        raise ValueError(
            "TwilioBodyLimit paths is empty: no unsigned request would be refused before its body is "
            "read. List the path prefixes of the webhooks (relative to the app's mount point), such "
            f"as {_PATHS_EXAMPLE}, or leave paths out to bound signed requests only"
        )
    if not all(isinstance(prefix, str) for prefix in prefixes):
        raise TypeError(f"TwilioBodyLimit paths must hold path prefixes as strings, such as {_PATHS_EXAMPLE}")
    return cast(tuple[str, ...], prefixes)


def _mounted_path(scope: Scope) -> str:
    """The request path relative to the app's mount point. Starlette's ``Mount`` and ``uvicorn
    --root-path`` both leave the full path in ``scope["path"]`` and the mount in ``root_path``;
    a server that strips it already (an older ASGI convention) leaves the path as it is."""
    path = str(scope.get("path", ""))
    root = str(scope.get("root_path", "")).rstrip("/")
    if root and path.startswith(root) and path[len(root) : len(root) + 1] in ("", "/"):
        return path[len(root) :] or "/"
    return path


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
