"""One app instance built with the package's web helpers and their ``idempotency=`` option, for
tests/test_idempotency_helpers.py. Run as a program::

    python idempotency_helper_apps.py FRAMEWORK PORT STORE COUNTS_FILE [REDIS_PORT] [process|refuse]

FRAMEWORK is ``flask`` (Werkzeug's threaded server), ``fastapi`` (uvicorn) or ``django`` (the
decorator on /voice, /raise, /error500 and the middleware, configured by ``TWILIO_IDEMPOTENCY`` as a
dotted path, on /mw/...; served by a threaded wsgiref server). STORE is ``memory`` or ``redis``. It
prints ``ready`` once it listens and stops when its stdin closes. Every handler run is appended to
COUNTS_FILE (shared by the instances of a test), and its TwiML carries a fresh nonce, so a second run
could not give the same bytes.
"""

# No `from __future__ import annotations`: FastAPI reads the endpoints' annotations at runtime.
import asyncio
import logging
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Annotated, Any, Literal

from idempotency_support import AUTH_TOKEN, BASE_URL, WAIT, Counter, build_store, serve, wait_for_port
from twilio_signature.idempotency import TOKEN_HEADER, Idempotency, MemoryStore

RETRIES: Idempotency | None = None
"""The driver of this instance; Django's ``TWILIO_IDEMPOTENCY`` names it by its dotted path."""
COUNTER: Counter | None = None
PROBE_STORE = MemoryStore()
"""A store for the test of Django's dotted-path setting (read in the test process)."""

urlpatterns: list[Any] = []
"""Django's URLconf (this module), filled in by ``django_app``."""


def _twiml(route: str) -> str:
    return f'<?xml version="1.0" encoding="UTF-8"?><Response><Say>{route} {uuid.uuid4().hex}</Say></Response>'


def _count(route: str, token: str | None) -> None:
    assert COUNTER is not None
    COUNTER.add(route, token or "-")


def flask_app(retries: Idempotency) -> Any:
    from flask import Flask, Response, request
    from twilio_signature.flask import validate_twilio_request

    app = Flask(__name__)
    guard = validate_twilio_request(token=AUTH_TOKEN, base_url=BASE_URL, idempotency=retries)

    @app.post("/voice")
    @guard
    def voice() -> Response:
        _count("/voice", request.headers.get(TOKEN_HEADER))
        time.sleep(float(request.args.get("sleep", "0")))
        return Response(_twiml("voice"), content_type="text/xml")

    @app.post("/raise")
    @guard
    def fail() -> Response:
        _count("/raise", request.headers.get(TOKEN_HEADER))
        raise RuntimeError("handler failed")

    @app.post("/error500")
    @guard
    def error500() -> tuple[str, int]:
        _count("/error500", request.headers.get(TOKEN_HEADER))
        return "database down", 500

    return app


def fastapi_app(retries: Idempotency) -> Any:
    from fastapi import APIRouter, Depends, FastAPI, Form, Request, Response
    from twilio_signature import Verified
    from twilio_signature.fastapi import TwilioSignature

    twilio = TwilioSignature(token=AUTH_TOKEN, base_url=BASE_URL, idempotency=retries)
    app = FastAPI()
    router = APIRouter(route_class=twilio.route_class)
    Twilio = Annotated[Verified, Depends(twilio)]

    @router.post("/voice")
    async def voice(request: Request, verified: Twilio) -> Response:
        _count("/voice", request.headers.get(TOKEN_HEADER))
        await asyncio.sleep(float(request.query_params.get("sleep", "0")))
        return Response(_twiml("voice"), media_type="text/xml")

    @router.post("/raise")
    async def fail(request: Request, verified: Twilio) -> Response:
        _count("/raise", request.headers.get(TOKEN_HEADER))
        raise RuntimeError("handler failed")

    @router.post("/error500")
    async def error500(request: Request, verified: Twilio) -> Response:
        _count("/error500", request.headers.get(TOKEN_HEADER))
        return Response("database down", status_code=500, media_type="text/plain")

    @router.post("/form")
    async def form(request: Request, Digits: Annotated[str, Form()], verified: Twilio) -> Response:
        # FastAPI parses the form after the route class has read (and verified) the raw body.
        _count("/form", request.headers.get(TOKEN_HEADER))
        return Response(f"<Response><Say>{Digits} {uuid.uuid4().hex}</Say></Response>", media_type="text/xml")

    @router.post("/unguarded")
    async def unguarded() -> dict[str, str]:
        # On the router but without Depends(twilio): the route class leaves it alone.
        return {"ok": "no signature needed"}

    @app.post("/misused")
    async def misused(request: Request, verified: Twilio) -> Response:
        # Depends on the idempotent helper without its route class: every request must fail.
        _count("/misused", request.headers.get(TOKEN_HEADER))
        return Response("ran without retry handling")

    app.include_router(router)
    return app


def django_app(retries: Idempotency) -> Any:
    import django
    from django.conf import settings

    settings.configure(
        SECRET_KEY="tests-only",
        DEBUG=False,
        ALLOWED_HOSTS=["*"],
        ROOT_URLCONF=__name__,
        USE_TZ=True,
        MIDDLEWARE=[
            "twilio_signature.django.TwilioSignatureMiddleware",
            "django.middleware.csrf.CsrfViewMiddleware",
        ],
        TWILIO_AUTH_TOKEN=AUTH_TOKEN,
        TWILIO_WEBHOOK_PATHS=["/mw/"],
        TWILIO_BASE_URL=BASE_URL,
        TWILIO_IDEMPOTENCY=f"{__name__}.RETRIES",
        TEMPLATES=[{"BACKEND": "django.template.backends.django.DjangoTemplates"}],
    )
    django.setup()
    from django.core.handlers.wsgi import WSGIHandler
    from django.http import HttpRequest, HttpResponse
    from django.template import engines
    from django.template.response import TemplateResponse
    from django.urls import path
    from twilio_signature.django import validate_twilio_request

    def voice(request: HttpRequest) -> HttpResponse:
        _count(request.path, request.headers.get(TOKEN_HEADER))
        time.sleep(float(request.GET.get("sleep", "0")))
        return HttpResponse(_twiml("voice"), content_type="text/xml")

    def fail(request: HttpRequest) -> HttpResponse:
        _count(request.path, request.headers.get(TOKEN_HEADER))
        raise RuntimeError("handler failed")

    def error500(request: HttpRequest) -> HttpResponse:
        _count(request.path, request.headers.get(TOKEN_HEADER))
        return HttpResponse("database down", status=500, content_type="text/plain")

    def template(request: HttpRequest) -> HttpResponse:
        # Returned unrendered: the decorator renders it to store it, as Django would next.
        _count(request.path, request.headers.get(TOKEN_HEADER))
        twiml = engines["django"].from_string("<Response><Say>template {{ nonce }}</Say></Response>")
        return TemplateResponse(request, twiml, {"nonce": uuid.uuid4().hex}, content_type="text/xml")

    guard = validate_twilio_request(base_url=BASE_URL, idempotency=retries)
    views = {"voice": voice, "raise": fail, "error500": error500, "template": template}
    for name, view in views.items():
        urlpatterns.append(path(name, guard(view)))  # the decorator
        urlpatterns.append(path(f"mw/{name}", view))  # the middleware (TWILIO_IDEMPOTENCY)
    logging.getLogger("django.request").setLevel(logging.CRITICAL)  # the /raise tracebacks
    return WSGIHandler()


def main(argv: list[str]) -> None:
    global COUNTER, RETRIES
    framework, port, kind, counts = argv[1], int(argv[2]), argv[3], Path(argv[4])
    redis_port = int(argv[5]) if len(argv) > 5 else None
    mode: Literal["process", "refuse"] = "refuse" if argv[6:] == ["refuse"] else "process"
    logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="%(levelname)s %(name)s %(message)s")
    COUNTER = Counter(counts)
    RETRIES = Idempotency(build_store(kind, redis_port), wait=WAIT, on_store_error=mode)
    if framework == "fastapi":
        import uvicorn

        server = uvicorn.Server(
            uvicorn.Config(fastapi_app(RETRIES), host="127.0.0.1", port=port, log_level="error")
        )
        threading.Thread(target=server.run, daemon=True).start()
        stop: Any = lambda: setattr(server, "should_exit", True)  # noqa: E731
    elif framework == "flask":
        from werkzeug.serving import make_server

        logging.getLogger("werkzeug").setLevel(logging.WARNING)
        wsgi = make_server("127.0.0.1", port, flask_app(RETRIES), threaded=True)
        threading.Thread(target=wsgi.serve_forever, daemon=True).start()
        stop = wsgi.shutdown
    else:
        django_server = serve(django_app(RETRIES), port)
        threading.Thread(target=django_server.serve_forever, daemon=True).start()
        stop = django_server.shutdown
    wait_for_port(port)
    print("ready", flush=True)
    sys.stdin.read()  # until the test closes our stdin
    stop()


if __name__ == "__main__":
    # Run through the module's own name, so Django's dotted path finds this instance's RETRIES.
    import idempotency_helper_apps

    idempotency_helper_apps.main(sys.argv)
