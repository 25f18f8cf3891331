"""Django: a view decorator and a middleware that refuse webhooks Twilio did not sign.

Decorator (the view is also marked ``csrf_exempt``: Twilio cannot send a CSRF token, and the signature
check is what protects the view)::

    from twilio_signature.django import validate_twilio_request

    @validate_twilio_request                      # or @validate_twilio_request(base_url=...)
    def sms(request): ...

Middleware, guarding the views that URL patterns under the prefixes of ``TWILIO_WEBHOOK_PATHS`` lead
to, however a request reaches them (list it *before* ``django.middleware.csrf.CsrfViewMiddleware``;
verified requests skip the CSRF check)::

    MIDDLEWARE = ["twilio_signature.django.TwilioSignatureMiddleware", ...]
    TWILIO_WEBHOOK_PATHS = ["/twilio/"]   # required; as urls.py writes the routes (see the class)
    TWILIO_BASE_URL = None            # optional, e.g. "https://example.com"
    TWILIO_TRUSTED_PROXIES = []       # optional, networks ("10.0.0.0/8") whose X-Forwarded-* are believed
    TWILIO_MAX_BODY_BYTES = 1048576   # optional, larger bodies get 413
    TWILIO_IDEMPOTENCY = None         # optional: Twilio's retries answered once (below)

The token is ``settings.TWILIO_AUTH_TOKEN`` or the environment variable of that name; none (or only
whitespace) raises :class:`~twilio_signature.MissingTokenError` (500). Without ``X-Twilio-Signature``
the answer is 400 (the body unread), with a malformed ``Host`` 400, with a body over the limit 413
(Content-Length, or chunked on servers that de-chunk and set ``wsgi.input_terminated``, such as
gunicorn; Django's runserver does not, so a chunked body there gets 411), with a bad signature 403; on
success ``request.twilio_verified`` holds the :class:`~twilio_signature.Verified` result. Each
refusal is one WARNING line on the logger ``twilio_signature.django``. Django's own
``SECURE_PROXY_SSL_HEADER`` and ``USE_X_FORWARDED_HOST`` already shape ``request.scheme`` and
``get_host()``, which these helpers start from.

Django Channels: :class:`TwilioSignatureWebSocketMiddleware` verifies the WebSocket handshakes of
Media Streams and ConversationRelay (over the ``wss://`` URL) before the consumer runs.

Retries (see :mod:`twilio_signature.idempotency`): ``@validate_twilio_request(idempotency=store)``, or
for the middleware the setting ``TWILIO_IDEMPOTENCY``: a store (``MemoryStore()`` for one process,
``RedisStore(redis.Redis(...))`` for several), an ``Idempotency(store, ...)`` driver, or the dotted
path of one (``"myproject.twilio.retries"``), imported when the middleware is built. The first
delivery runs the view and its response (status, headers with each cookie, body) is stored; a
retry with the same ``I-Twilio-Idempotency-Token`` gets it with ``Idempotent-Replayed: true`` and
the view does not run.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Awaitable, Callable, Iterable
from io import BytesIO
from typing import Any, TypeVar, cast, overload

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.core.handlers.wsgi import LimitedStream, WSGIRequest
from django.http import HttpRequest, HttpResponse
from django.utils.encoding import escape_uri_path
from django.utils.module_loading import import_string
from django.views.decorators.csrf import csrf_exempt

from twilio_signature._compat import SIGNATURE_HEADER, SIGNATURE_SETTINGS_HEADER
from twilio_signature._native import Verified
from twilio_signature._web import (
    DEFAULT_MAX_BODY_BYTES,
    TOKEN_SETTING,
    Guard,
    Refusal,
    bad_host,
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

__all__ = ["TwilioSignatureMiddleware", "TwilioSignatureWebSocketMiddleware", "validate_twilio_request"]

F = TypeVar("F", bound=Callable[..., Any])
_PATHS_SETTING = "TWILIO_WEBHOOK_PATHS"


def _raw_target(request: HttpRequest) -> str:
    raw = request.META.get("RAW_URI") or request.META.get("REQUEST_URI")
    if raw:
        return str(raw)
    query = request.META.get("QUERY_STRING", "")
    path = escape_uri_path(request.path)
    return f"{path}?{query}" if query else path


def _header(request: HttpRequest) -> Callable[[str], list[str]]:
    def lines(name: str) -> list[str]:
        value = request.headers.get(name)
        return [] if value is None else [value]

    return lines


def _read_body(guard: Guard, request: HttpRequest, url: str) -> bytes:
    meta = request.META
    length = guard.check_declared_length(meta.get("CONTENT_LENGTH"), url)
    if length is not None:
        if meta["CONTENT_LENGTH"] != str(length) and not hasattr(request, "_body"):
            # Leading zeros: Django's int() of thousands of digits raises (a 500), and WSGIRequest
            # sized its stream 0 for them. Hand it the length as the number it is.
            meta["CONTENT_LENGTH"] = str(length)
            if isinstance(request, WSGIRequest):
                request._stream = LimitedStream(meta["wsgi.input"], length)
        return bytes(request.body)  # Django reads exactly the declared length, already checked
    if "chunked" not in meta.get("HTTP_TRANSFER_ENCODING", "").lower():
        return bytes(request.body)  # no body
    if not meta.get("wsgi.input_terminated"):
        # Django reads bodies by Content-Length only, so it would see this one as empty.
        raise guard.refuse(
            411,
            "a chunked body on a server that does not de-chunk it (wsgi.input_terminated)",
            url,
            "Twilio sends Content-Length; serve the app with a server that de-chunks (gunicorn, Werkzeug)",
        )
    body = guard.read_limited(meta["wsgi.input"].read, url)
    # Hand Django the de-chunked body (it never reads one without Content-Length itself).
    request._body = body
    request._stream = BytesIO(body)
    return body


def check(guard: Guard, request: HttpRequest) -> HttpResponse | None:
    """Verifies ``request``: None when Twilio signed it (``request.twilio_verified`` is then set),
    else the 400/403/411/413 response to send. :class:`MissingTokenError` without a usable token."""
    raw_host = request.META.get("HTTP_HOST")
    try:
        url = guard.public_url(
            scheme=request.scheme or "http",
            # A malformed Host is refused by us (with a log line) before Django's get_host sees it.
            host=raw_host if raw_host is not None and bad_host(raw_host) else request.get_host(),
            target=_raw_target(request),
            prefix=request.META.get("SCRIPT_NAME", ""),
            remote_addr=request.META.get("REMOTE_ADDR"),
            header=_header(request),
        )
        validator = guard.validator(getattr(settings, TOKEN_SETTING, None), url)
        body = _read_body(guard, request, url)
        content_type = request.META.get("CONTENT_TYPE")
        # Django parses request.POST by this type: a multipart body would give the view fields that
        # the signature (over the decoded form) never covered.
        guard.check_content_type(url, len(body), [content_type] if content_type else [])
        verified = guard.verify(
            validator,
            url,
            body,
            request.headers.get(SIGNATURE_HEADER),
            request.headers.get(SIGNATURE_SETTINGS_HEADER),
        )
    except Refusal as refusal:
        return HttpResponse(refusal.reason, status=refusal.status, content_type="text/plain")
    request.twilio_verified = verified
    return None


def _capture(response: HttpResponse) -> StoredResponse | None:
    """The view's response as stored; a streamed or file response cannot be."""
    if getattr(response, "streaming", False):
        return None
    render = getattr(response, "render", None)
    if render is not None and not getattr(response, "is_rendered", True):
        render()  # a TemplateResponse from a decorated view: Django would render it next anyway
    # Django keeps cookies apart from the headers and writes each as a Set-Cookie line (as its
    # WSGIHandler does).
    cookies = [("Set-Cookie", morsel.output(header="").strip()) for morsel in response.cookies.values()]
    return StoredResponse.of(response.status_code, [*response.items(), *cookies], bytes(response.content))


def _replay(stored: StoredResponse) -> HttpResponse:
    response = HttpResponse(stored.body, status=stored.status, content_type=stored.content_type)
    if stored.content_type is None:
        del response["Content-Type"]
    for name, value in stored.headers:
        if name == "set-cookie":
            response.cookies.load(value)  # one Set-Cookie line each, as stored
        elif name in response:
            # Django's headers hold one value per name: join a repeated one (a list header).
            response[name] = f"{response[name]}, {value}"
        else:
            response[name] = value
    if stored.replayed:
        response[REPLAYED_HEADER] = "true"
    return response


def _run_once(
    retries: Idempotency | None, request: HttpRequest, handler: Callable[[], HttpResponse]
) -> HttpResponse:
    """``handler()`` for a verified request, once per Twilio delivery when ``retries`` is set."""
    if retries is None:
        return handler()
    verified = request.twilio_verified
    result = retries.run(verified.replay_key, request.headers.get(TOKEN_HEADER), handler, _capture)
    return _replay(result) if isinstance(result, StoredResponse) else result


def _webhook_paths(value: object) -> tuple[str, ...]:
    """``TWILIO_WEBHOOK_PATHS`` as a tuple of prefixes; :class:`ImproperlyConfigured` when it would
    guard nothing (missing, empty) or not what was meant (a bare string, non-string entries)."""
    example = f'{_PATHS_SETTING} = ["/twilio/"]'
    if isinstance(value, str):
        raise ImproperlyConfigured(
            f"settings.{_PATHS_SETTING} is a string ({value!r}), not a list of path prefixes: "
            f"write {_PATHS_SETTING} = [{value!r}]"
        )
    try:
        paths: tuple[object, ...] = tuple(cast(Iterable[object], value)) if value is not None else ()
    except TypeError:
        raise ImproperlyConfigured(
            f"settings.{_PATHS_SETTING} must be a list of path prefixes, such as {example}"
        ) from None
    if not paths:
        raise ImproperlyConfigured(
            f"settings.{_PATHS_SETTING} is {'not set' if value is None else 'empty'}: "
            "TwilioSignatureMiddleware would verify no request. List the path prefixes of the "
            f"webhooks (relative to the app's mount point), such as {example}"
        )
    prefixes = tuple(path for path in paths if isinstance(path, str))
    if len(prefixes) != len(paths):
        raise ImproperlyConfigured(
            f"settings.{_PATHS_SETTING} must hold path prefixes as strings, such as {example}"
        )
    return prefixes


def _retries_setting() -> Idempotency | None:
    value = getattr(settings, "TWILIO_IDEMPOTENCY", None)
    if value is None:
        return None
    if isinstance(value, str):
        value = import_string(value)
    try:
        return Idempotency.of(value)
    except TypeError as error:
        raise TypeError(f"settings.TWILIO_IDEMPOTENCY: {error}") from None


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
        "django",
        token=token,
        base_url=base_url,
        trusted_proxies=trusted_proxies,
        trust_proxy=trust_proxy,
        max_body_bytes=max_body_bytes,
    )

    def decorate(view: F) -> F:
        @functools.wraps(view)
        def guarded(request: HttpRequest, *args: Any, **kwargs: Any) -> Any:
            refused = check(guard, request)
            if refused is not None:
                return refused
            # Verified (request.twilio_verified is set): the one place the view is called.
            return _run_once(retries, request, lambda: view(request, *args, **kwargs))

        return cast(F, csrf_exempt(guarded))

    return decorate(view) if view is not None else decorate


class TwilioSignatureMiddleware:
    """Verifies every request to a view that ``settings.TWILIO_WEBHOOK_PATHS`` names.

    The setting lists path prefixes as the URLconf writes them (``["/twilio/"]``), relative to the
    app's mount point (``SCRIPT_NAME``) and without the language prefix of ``i18n_patterns``. The
    middleware guards *views*, in ``process_view`` once Django has resolved the request: a view is
    guarded when a URL pattern under one of the prefixes leads to it, and it is then verified however
    the request reaches it (``/fr/twilio/sms`` under ``i18n_patterns``, a second pattern, a doubled
    slash, any method). A request whose path is under a prefix is verified too, whatever view it
    resolves to. A setting that is missing, empty, a bare string or holds anything but strings raises
    :class:`~django.core.exceptions.ImproperlyConfigured` when the middleware is built, rather than
    guarding nothing (or one-character prefixes).
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response
        self.paths = _webhook_paths(getattr(settings, _PATHS_SETTING, None))
        self._prefixes = tuple(_normalized(path) for path in self.paths)
        self.guard = Guard(
            "django",
            base_url=getattr(settings, "TWILIO_BASE_URL", None),
            trusted_proxies=getattr(settings, "TWILIO_TRUSTED_PROXIES", None),
            trust_proxy=getattr(settings, "TWILIO_TRUST_PROXY", False),
            max_body_bytes=getattr(settings, "TWILIO_MAX_BODY_BYTES", DEFAULT_MAX_BODY_BYTES),
        )
        self.retries = _retries_setting()
        self._views: dict[object, frozenset[object]] = {}
        self._lock = threading.Lock()

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_view(
        self,
        request: HttpRequest,
        view_func: Callable[..., HttpResponse],
        view_args: tuple[Any, ...],
        view_kwargs: dict[str, Any],
    ) -> HttpResponse | None:
        if not self._guards(request, view_func):
            return None
        refused = check(self.guard, request)
        if refused is not None:
            return refused
        # Verified (request.twilio_verified is set). Twilio cannot send a CSRF token; the signature
        # is this request's protection (CsrfViewMiddleware, listed after us, reads this flag).
        request._dont_enforce_csrf_checks = True
        if self.retries is None:
            return None  # Django calls the view, as for any request
        # Retries answered once: the view runs here, inside the claim (so a view exception reaches
        # Django's handler as a 500 rather than other middlewares' process_exception), in the
        # ATOMIC_REQUESTS transaction Django itself would have wrapped it in.
        view = _atomic(view_func)
        return _run_once(self.retries, request, lambda: view(request, *view_args, **view_kwargs))

    def _guards(self, request: HttpRequest, view_func: Callable[..., HttpResponse]) -> bool:
        if _normalized(request.path_info).startswith(self._prefixes):
            return True
        return view_func in self._guarded_views(getattr(request, "urlconf", None))

    def _guarded_views(self, urlconf: object) -> frozenset[object]:
        """The views some pattern under a prefix leads to, in the request's URLconf: found once per
        resolver (Django builds a new one when ROOT_URLCONF changes) by walking its patterns."""
        from django.urls import get_resolver

        resolver = get_resolver(cast(Any, urlconf))
        found = self._views.get(resolver)
        if found is not None:
            return found
        views = frozenset(
            callback
            for route, callback in _routes(resolver.url_patterns, "")
            if _normalized(route).startswith(self._prefixes)
        )
        with self._lock:
            return self._views.setdefault(resolver, views)


def _atomic(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """``view`` in a transaction per database with ``ATOMIC_REQUESTS`` (unless the view is marked
    ``non_atomic_requests`` for it), as Django's handler wraps the views it calls."""
    from django.db import connections, transaction

    skipped: set[str] = getattr(view, "_non_atomic_requests", set())
    for alias, database in connections.settings.items():
        if database.get("ATOMIC_REQUESTS") and alias not in skipped:
            view = transaction.atomic(using=alias)(view)
    return view


def _normalized(path: str) -> str:
    """A path for prefix matching: one leading slash, doubled slashes collapsed."""
    joined = "/".join(segment for segment in path.split("/") if segment)
    return f"/{joined}/" if joined and path.endswith("/") else f"/{joined}"


def _routes(patterns: Iterable[Any], prefix: str) -> Iterable[tuple[str, object]]:
    """(route, view) for every URL pattern under ``patterns``, routes as written in the URLconf:
    ``path()`` routes as they are, ``re_path()`` regexes without anchors and optional slashes, the
    language prefix of ``i18n_patterns`` left out (the view is the same in every language)."""
    from django.urls.resolvers import LocalePrefixPattern, RegexPattern, URLResolver

    for entry in patterns:
        pattern = entry.pattern
        if isinstance(pattern, LocalePrefixPattern):
            part = ""
        elif isinstance(pattern, RegexPattern):
            part = str(pattern).lstrip("^").removesuffix("$").replace("/?", "/").replace("\\/", "/")
        else:
            part = str(pattern)
        if isinstance(entry, URLResolver):
            yield from _routes(entry.url_patterns, prefix + "/" + part)
        else:
            yield prefix + "/" + part, entry.callback


Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]


class TwilioSignatureWebSocketMiddleware:
    """ASGI middleware for Django Channels: verifies the WebSocket handshakes of Twilio Media Streams
    and ConversationRelay before the consumer sees them (rule R5)::

        application = ProtocolTypeRouter({
            "http": django_asgi_app,
            "websocket": TwilioSignatureWebSocketMiddleware(URLRouter([path("media", Media.as_asgi())])),
        })

    Every ``websocket`` scope it wraps is verified against the ``wss://`` URL (``ws://`` when the
    public scheme is http), with no body; other scopes pass through untouched. The options default to
    the settings the HTTP middleware reads (``TWILIO_AUTH_TOKEN``, ``TWILIO_BASE_URL``,
    ``TWILIO_TRUSTED_PROXIES``, ``TWILIO_TRUST_PROXY``). A verified handshake reaches the consumer
    with ``scope["twilio_verified"]`` set; a refused one is answered with an HTTP 400/403 (through the
    ASGI denial-response extension, which uvicorn and daphne's peers have; otherwise a close before
    accept, which the server answers 403), logged on ``twilio_signature.django`` like every refusal:
    the consumer never runs and the client never gets a 101.
    """

    def __init__(
        self,
        inner: Callable[[Scope, Receive, Send], Awaitable[None]],
        *,
        token: str | None = None,
        base_url: str | None = None,
        trusted_proxies: Iterable[str] | None = None,
        trust_proxy: bool | None = None,
    ) -> None:
        self.inner = inner
        if base_url is None:
            base_url = getattr(settings, "TWILIO_BASE_URL", None)
        if trusted_proxies is None:
            trusted_proxies = getattr(settings, "TWILIO_TRUSTED_PROXIES", None)
        if trust_proxy is None:
            trust_proxy = bool(getattr(settings, "TWILIO_TRUST_PROXY", False))
        self.guard = Guard(
            "django", token=token, base_url=base_url, trusted_proxies=trusted_proxies, trust_proxy=trust_proxy
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "websocket":
            await self.inner(scope, receive, send)
            return
        try:
            verified = self._verify(scope)
        except Refusal as refusal:
            await _deny(scope, receive, send, refusal)
            return
        await self.inner({**scope, "twilio_verified": verified}, receive, send)

    def _verify(self, scope: Scope) -> Verified:
        headers: list[tuple[bytes, bytes]] = list(scope.get("headers", ()))

        def header(name: str) -> list[str]:
            wanted = name.lower().encode("latin-1")
            return [value.decode("latin-1") for key, value in headers if key.lower() == wanted]

        raw_path = scope.get("raw_path") or str(scope.get("path", "")).encode("utf-8")
        query = bytes(scope.get("query_string", b""))
        target = bytes(raw_path).decode("latin-1") + (f"?{query.decode('latin-1')}" if query else "")
        server = scope.get("server")
        client = scope.get("client")
        hosts = header("Host")
        url = self.guard.public_url(
            scheme=websocket_scheme_as_http(str(scope.get("scheme", "ws"))),
            # Several Host lines are joined with a comma, as WSGI servers do, and refused.
            host=",".join(hosts) if hosts else (f"{server[0]}:{server[1]}" if server else ""),
            target=target,
            prefix=str(scope.get("root_path", "")),
            remote_addr=str(client[0]) if client else None,
            header=header,
            peer_rewritten=lambda: uvicorn_peer_note(
                str(client[0]) if client else None, header("X-Forwarded-For")
            ),
            websocket=True,
        )
        validator = self.guard.validator(getattr(settings, TOKEN_SETTING, None), url)
        settings_header = header("X-Twilio-Webhooks-Signature-Settings")
        signature = header(SIGNATURE_HEADER)
        return self.guard.verify(
            validator,
            url,
            b"",
            signature[0] if signature else None,
            settings_header[0] if settings_header else None,
        )


async def _deny(scope: Scope, receive: Receive, send: Send, refusal: Refusal) -> None:
    """Answers a refused handshake without accepting it: an HTTP response when the server offers
    the denial-response extension, else a close before accept (the server's 403)."""
    message = await receive()  # websocket.connect: the handshake the server holds for us
    if message.get("type") != "websocket.connect":
        return
    if "websocket.http.response" in scope.get("extensions", {}):
        body = refusal.reason.encode()
        await send(
            {
                "type": "websocket.http.response.start",
                "status": refusal.status,
                "headers": [
                    (b"content-type", b"text/plain; charset=utf-8"),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await send({"type": "websocket.http.response.body", "body": body})
    else:
        await send({"type": "websocket.close", "code": 1008})
