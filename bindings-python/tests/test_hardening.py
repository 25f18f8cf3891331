"""Issues 24 and 25 through real servers on loopback (Werkzeug for Flask and Django, uvicorn for
FastAPI): rule R1 (a form body must be sent as a form: 415), the Django middleware guarding views
rather than path prefixes, rule R3 (refusal lines name ignored forwarding headers and what rewrote
the peer address) and rule R4 (a base_url that repeats the route warns once)."""

# No `from __future__ import annotations`: FastAPI reads the route annotations at runtime.

import hashlib
import json
import logging
from collections import Counter
from collections.abc import Iterator
from typing import Annotated, Any
from urllib.parse import quote

import django_app
import flask
import pytest
from django.core.handlers.wsgi import WSGIHandler
from fastapi import Depends, FastAPI, Form
from test_hostile import _head, _read_all, _serve_asgi, _serve_wsgi, _status, raw_post
from twilio.request_validator import RequestValidator as Official
from twilio_signature import Verified
from twilio_signature.fastapi import TwilioSignature
from twilio_signature.flask import validate_twilio_request
from werkzeug.middleware.proxy_fix import ProxyFix
from werkzeug.serving import make_server as werkzeug_server

FLASK_RUNS: Counter[str] = Counter()
FASTAPI_RUNS: Counter[str] = Counter()
TOKENS = {"flask": "flask-token", "django": "django-token", "fastapi": "fastapi-token"}
FORM = "application/x-www-form-urlencoded"


def flask_app() -> flask.Flask:
    app = flask.Flask("hardening")
    app.config["TWILIO_AUTH_TOKEN"] = "flask-token"

    @app.route("/sms", methods=["GET", "POST"])
    @validate_twilio_request
    def sms() -> str:
        FLASK_RUNS["sms"] += 1
        return f"ok From={flask.request.form.get('From', '')}"

    @app.post("/distrustful")
    @validate_twilio_request(trusted_proxies=["10.0.0.0/8"])
    def distrustful() -> str:
        return "ok"

    @app.post("/twilio/sms")
    @validate_twilio_request(base_url="https://hooks.example.com/twilio/sms")
    def doubled() -> str:
        return "ok"

    return app


def fastapi_app() -> FastAPI:
    app = FastAPI()
    plain = TwilioSignature(token="fastapi-token")
    behind_proxy = TwilioSignature(token="fastapi-token", trusted_proxies=["127.0.0.1"])
    doubled = TwilioSignature(token="fastapi-token", base_url="https://hooks.example.com/twilio/sms")

    @app.api_route("/sms", methods=["GET", "POST"])
    async def sms(verified: Annotated[Verified, Depends(plain)]) -> dict[str, Any]:
        FASTAPI_RUNS["sms"] += 1
        return {"ok": verified.algorithm}

    @app.post("/form")
    async def form(
        From: Annotated[str, Form()], verified: Annotated[Verified, Depends(plain)]
    ) -> dict[str, Any]:
        FASTAPI_RUNS["form"] += 1
        return {"ok": verified.algorithm, "From": From}

    @app.post("/proxied")
    async def proxied(verified: Annotated[Verified, Depends(behind_proxy)]) -> dict[str, Any]:
        return {"ok": verified.algorithm}

    @app.post("/twilio/sms")
    async def twilio_sms(verified: Annotated[Verified, Depends(doubled)]) -> dict[str, Any]:
        return {"ok": verified.algorithm}

    return app


@pytest.fixture(scope="module")
def servers() -> Iterator[dict[str, int]]:
    gens = {
        "flask": _serve_wsgi(werkzeug_server("127.0.0.1", 0, flask_app(), threaded=True)),
        # ProxyFix(x_for=1) in front: the peer address the app sees is the X-Forwarded-For client.
        "flask_proxyfix": _serve_wsgi(
            werkzeug_server("127.0.0.1", 0, ProxyFix(flask_app(), x_for=1, x_proto=0), threaded=True)
        ),
        "django": _serve_wsgi(werkzeug_server("127.0.0.1", 0, WSGIHandler(), threaded=True)),
        # uvicorn's defaults: proxy_headers on, forwarded_allow_ips 127.0.0.1.
        "fastapi": _serve_asgi(fastapi_app()),
    }
    ports = {name: next(gen) for name, gen in gens.items()}
    yield ports
    for gen in gens.values():
        next(gen, None)


def refusals(caplog: pytest.LogCaptureFixture, framework: str) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == f"twilio_signature.{framework}"]


# -- R1: the multipart re-encoding attack ----------------------------------------------------------

BOUNDARY = "B0undary"
FORGED_FROM = "19995550123"
# The SMS the attacker sent to the app's number: Twilio signs the webhook with this Body (no '&',
# '%' or '+', so written raw in a form body it decodes to itself) and the attacker's real From.
ATTACK_SMS_BODY = (
    f'\r\n--{BOUNDARY}\r\nContent-Disposition: form-data; name="From"\r\n\r\n{FORGED_FROM}\r\n'
    f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="Body"\r\n\r\nhello\r\n--{BOUNDARY}--\r\n'
)
CAPTURED = {
    "AccountSid": "AC" + "0" * 32,
    "From": "+14155550100",
    "To": "+14155550199",
    "NumMedia": "0",
    "Body": ATTACK_SMS_BODY,
}


def reencoded_body() -> bytes:
    """The captured fields with Body written raw and last: as a form it decodes to exactly the
    signed fields; as multipart (the text before the first boundary is a preamble parsers skip) it
    is From=19995550123, Body=hello."""
    head = "&".join(f"{name}={quote(value, safe='')}" for name, value in CAPTURED.items() if name != "Body")
    return f"{head}&Body={ATTACK_SMS_BODY}".encode()


ROUTES = {
    "flask": ("flask", "/sms"),
    "django": ("django", "/sms"),
    "django_mw": ("django", "/mw/sms"),
    "fastapi": ("fastapi", "/sms"),
    "fastapi_form": ("fastapi", "/form"),
}


def _runs(case: str) -> int:
    return {
        "flask": FLASK_RUNS["sms"],
        "django": django_app.RUNS["sms"],
        "django_mw": django_app.RUNS["mw/sms"],
        "fastapi": FASTAPI_RUNS["sms"],
        "fastapi_form": FASTAPI_RUNS["form"],
    }[case]


def _signed(framework: str, url: str, params: dict[str, str], content_type: str | None) -> dict[str, str]:
    headers = {"X-Twilio-Signature": Official(TOKENS[framework]).compute_signature(url, params)}
    if content_type is not None:
        headers["Content-Type"] = content_type
    return headers


@pytest.mark.parametrize("case", list(ROUTES))
def test_a_signed_form_resent_as_multipart_is_415_and_the_view_never_runs(
    servers: dict[str, int], case: str, caplog: pytest.LogCaptureFixture
) -> None:
    framework, route = ROUTES[case]
    port = servers[framework]
    url = f"http://127.0.0.1:{port}{route}"
    body = reencoded_body()
    # The signature holds for these bytes read as a form: sent as one, the view runs with the
    # signed From.
    before = _runs(case)
    form_type = "application/x-www-form-urlencoded"
    status, response = raw_post(port, route, body, _signed(framework, url, CAPTURED, form_type))
    assert status == 200, response
    if case in ("flask", "django", "fastapi_form"):  # the views that answer with From
        assert b"+14155550100" in response, response
    assert _runs(case) == before + 1
    # The attack: the same bytes as multipart, where the framework would read From=19995550123.
    multipart = f"multipart/form-data; boundary={BOUNDARY}"
    if case == "fastapi_form":
        # FastAPI parses a Form() route's body before any dependency, and python-multipart refuses
        # a preamble: its own 400. A multipart body without one reaches the dependency: 415.
        status, response = raw_post(port, route, body, _signed(framework, url, CAPTURED, multipart))
        assert status == 400 and b"error parsing the body" in response, response
        body = ATTACK_SMS_BODY.lstrip().encode()
    with caplog.at_level(logging.WARNING, logger=f"twilio_signature.{framework}"):
        status, response = raw_post(port, route, body, _signed(framework, url, CAPTURED, multipart))
    assert status == 415, response
    assert FORGED_FROM.encode() not in response
    assert _runs(case) == before + 1, "the view ran"
    lines = refusals(caplog, framework)
    assert lines == [
        'twilio webhook refused: 415 unsupported content type "multipart/form-data" for a form body; '
        f"url={url}; Twilio sends form webhooks as application/x-www-form-urlencoded; a body "
        "verified as a form must carry that type"
    ]


@pytest.mark.parametrize("case", ["flask", "django", "django_mw", "fastapi"])
def test_the_form_type_with_parameters_in_any_case_is_accepted_and_others_refused(
    servers: dict[str, int], case: str
) -> None:
    framework, route = ROUTES[case]
    port = servers[framework]
    url = f"http://127.0.0.1:{port}{route}"
    params = {"From": "+14155550100", "Body": "hi"}
    body = b"From=%2B14155550100&Body=hi"
    for content_type in (
        "application/x-www-form-urlencoded; charset=utf-8",
        "Application/X-WWW-Form-URLEncoded",
        " application/x-www-form-urlencoded ;charset=UTF-8",
    ):
        status, response = raw_post(port, route, body, _signed(framework, url, params, content_type))
        assert status == 200, (content_type, response)
    for content_type in ("text/plain", "application/json", "application/x-www-form-urlencoded-x", None):
        status, response = raw_post(port, route, body, _signed(framework, url, params, content_type))
        # (Werkzeug hands a missing type over as "": no content type.)
        expected = b"no content type" if content_type is None else b"unsupported content type"
        assert status == 415 and expected in response, (content_type, response)


@pytest.mark.parametrize("case", ["flask", "django", "fastapi"])
def test_a_body_sha256_body_may_carry_any_type_and_an_empty_body_none(
    servers: dict[str, int], case: str
) -> None:
    framework, route = ROUTES[case]
    port = servers[framework]
    body = json.dumps({"event": "status"}).encode()
    target = f"{route}?bodySHA256={hashlib.sha256(body).hexdigest()}"
    url = f"http://127.0.0.1:{port}{target}"
    for content_type in ("application/json", "text/plain", None):
        status, response = raw_post(port, target, body, _signed(framework, url, {}, content_type))
        assert status == 200, (content_type, response)
    # An empty POST without a type, and a GET.
    url = f"http://127.0.0.1:{port}{route}"
    status, response = raw_post(port, route, b"", _signed(framework, url, {}, None))
    assert status == 200, response


# -- the Django middleware guards views --------------------------------------------------------------


def _get(port: int, target: str, headers: dict[str, str]) -> tuple[int, bytes]:
    import socket

    with socket.create_connection(("127.0.0.1", port), timeout=20) as sock:
        head = _head(target, headers, f"127.0.0.1:{port}").replace(b"POST ", b"GET ", 1)
        sock.sendall(head)
        response = _read_all(sock)
    return _status(response), response


@pytest.mark.parametrize(
    "target",
    [
        "/twilio/sms",  # the pattern under TWILIO_WEBHOOK_PATHS
        "/fr/twilio/sms",  # i18n_patterns(prefix_default_language=False): another language
        "/hooks/status",  # another pattern leading to the same view
        "/hooks//status",
        "//twilio/sms",  # a doubled slash
        "/twilio%2Fsms",  # the server decodes %2F into the path Django resolves
    ],
)
def test_django_middleware_guards_the_view_however_the_request_reaches_it(
    servers: dict[str, int], target: str
) -> None:
    port = servers["django"]
    before = django_app.RUNS["webhook_view"]
    for method in ("GET", "POST"):
        form = {"Content-Type": "application/x-www-form-urlencoded"}
        status, response = (
            _get(port, target, {}) if method == "GET" else raw_post(port, target, b"From=x", form)
        )
        assert status == 400, (method, response)
        assert b"X-Twilio-Signature header is missing" in response
    assert django_app.RUNS["webhook_view"] == before, "the guarded view ran unverified"
    if target.startswith("//"):
        return  # Werkzeug rewrites a target starting with "//" (its REQUEST_URI is not the one sent)
    # Signed for the URL as sent: verified, and the view runs.
    url = f"http://127.0.0.1:{port}{target}"
    params = {"From": "+14155550100"}
    status, response = raw_post(port, target, b"From=%2B14155550100", _signed("django", url, params, FORM))
    assert status == 200 and b"ran verified +14155550100" in response, response
    assert django_app.RUNS["webhook_view"] == before + 1


def test_django_middleware_with_retries_runs_the_view_once_in_its_transaction() -> None:
    """TWILIO_IDEMPOTENCY: the middleware runs a guarded view inside the retry claim, from
    process_view, in the ATOMIC_REQUESTS transaction Django would have opened."""
    from django.test import override_settings
    from twilio_signature.idempotency import Idempotency, MemoryStore

    with override_settings(TWILIO_IDEMPOTENCY=Idempotency(MemoryStore())):
        handler = WSGIHandler()  # the middleware reads the setting when it is built
    gen = _serve_wsgi(werkzeug_server("127.0.0.1", 0, handler, threaded=True))
    port = next(gen)
    try:
        url = f"http://127.0.0.1:{port}/twilio/sms"
        headers = {
            **_signed("django", url, {"From": "+1"}, FORM),
            "I-Twilio-Idempotency-Token": "RC-retry-test",
        }
        before = django_app.RUNS["webhook_view"]
        status, first = raw_post(port, "/twilio/sms", b"From=%2B1", headers)
        assert status == 200 and b"ran verified +1 atomic=True" in first, first
        status, retry = raw_post(port, "/twilio/sms", b"From=%2B1", headers)
        assert status == 200 and b"Idempotent-Replayed: true" in retry, retry
        assert first.split(b"\r\n\r\n", 1)[1] == retry.split(b"\r\n\r\n", 1)[1]
        assert django_app.RUNS["webhook_view"] == before + 1
    finally:
        next(gen, None)


def test_django_middleware_leaves_other_views_alone(servers: dict[str, int]) -> None:
    """/sms is decorated (it guards itself) and not under a prefix: no second check; a path that
    resolves to nothing is Django's 404."""
    port = servers["django"]
    url = f"http://127.0.0.1:{port}/sms"
    headers = _signed("django", url, {"From": "+1"}, "application/x-www-form-urlencoded")
    assert raw_post(port, "/sms", b"From=%2B1", headers)[0] == 200
    assert _get(port, "/elsewhere", {})[0] == 404


# -- R3: ignored forwarding headers are named ----------------------------------------------------------


FORWARDED = {"X-Forwarded-Proto": "https", "X-Forwarded-Host": "public.example.com"}


def test_flask_names_forwarding_headers_no_proxy_is_trusted_for(
    servers: dict[str, int], caplog: pytest.LogCaptureFixture
) -> None:
    port = servers["flask"]
    params = {"From": "+1"}
    for route, note in (
        ("/sms", "X-Forwarded-Proto, X-Forwarded-Host ignored: no trusted_proxies configured"),
        (
            "/distrustful",
            "X-Forwarded-Proto, X-Forwarded-Host ignored: from 127.0.0.1, not in trusted_proxies",
        ),
    ):
        headers = {
            **_signed("flask", f"https://public.example.com{route}", params, FORM),
            **FORWARDED,
            "Forwarded": "proto=https",
        }
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="twilio_signature.flask"):
            assert raw_post(port, route, b"From=%2B1", headers)[0] == 403
        (line,) = refusals(caplog, "flask")
        assert line.startswith("twilio webhook refused: 403 ")
        assert line.endswith("; " + note.replace(" ignored", ", Forwarded ignored")), line
    # No forwarding header: no note.
    headers = _signed("flask", "https://other/sms", params, "application/x-www-form-urlencoded")
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="twilio_signature.flask"):
        assert raw_post(port, "/sms", b"From=%2B1", headers)[0] == 403
    assert "ignored" not in refusals(caplog, "flask")[0]


REWRITTEN = {
    # (server, framework, route): what the line says rewrote the peer address
    ("flask_proxyfix", "flask", "/distrustful"): "Werkzeug's ProxyFix rewrote it (the connection came "
    "from 127.0.0.1); trust that proxy in trusted_proxies, or give ProxyFix x_for=0)",
    # The trial: trusted_proxies=["127.0.0.1"], a proxy on 127.0.0.1 sending X-Forwarded-For;
    # uvicorn (proxy_headers on by default) makes the peer 203.0.113.7.
    ("fastapi", "fastapi", "/proxied"): "uvicorn's proxy_headers rewrote it; trust the original proxy "
    "with forwarded_allow_ips, or turn proxy_headers off)",
}


@pytest.mark.parametrize(("server", "framework", "route"), list(REWRITTEN))
def test_a_peer_rewritten_from_x_forwarded_for_is_named(
    servers: dict[str, int], server: str, framework: str, route: str, caplog: pytest.LogCaptureFixture
) -> None:
    port = servers[server]
    headers = {
        **_signed(framework, f"https://public.example.com{route}", {}, None),
        **FORWARDED,
        "X-Forwarded-For": "203.0.113.7",
    }
    with caplog.at_level(logging.WARNING, logger=f"twilio_signature.{framework}"):
        assert raw_post(port, route, b"", headers)[0] == 403
    (line,) = refusals(caplog, framework)
    assert line.endswith(
        "; X-Forwarded-Proto, X-Forwarded-Host ignored: from 203.0.113.7, not in trusted_proxies "
        "(the peer address 203.0.113.7 came from X-Forwarded-For: " + REWRITTEN[server, framework, route]
    ), line
    if framework == "fastapi":
        # Without X-Forwarded-For the peer is the proxy itself, which is trusted: 200.
        headers.pop("X-Forwarded-For")
        assert raw_post(port, route, b"", headers)[0] == 200


def test_django_names_ignored_forwarding_headers(
    servers: dict[str, int], caplog: pytest.LogCaptureFixture
) -> None:
    port = servers["django"]
    headers = {**_signed("django", "https://public.example.com/sms", {}, None), "X-Forwarded-Port": "443"}
    with caplog.at_level(logging.WARNING, logger="twilio_signature.django"):
        assert raw_post(port, "/sms", b"", headers)[0] == 403
    (line,) = refusals(caplog, "django")
    assert line.endswith("; X-Forwarded-Port ignored: no trusted_proxies configured"), line


# -- R4: a base_url that repeats the route ------------------------------------------------------------


@pytest.mark.parametrize("framework", ["flask", "fastapi"])
def test_a_base_url_repeating_the_route_warns_once(
    servers: dict[str, int], framework: str, caplog: pytest.LogCaptureFixture
) -> None:
    port = servers[framework]
    headers = {"X-Twilio-Signature": "x" * 28}
    with caplog.at_level(logging.WARNING, logger=f"twilio_signature.{framework}"):
        for _ in range(3):
            assert raw_post(port, "/twilio/sms", b"", headers)[0] == 403
    warnings = [line for line in refusals(caplog, framework) if line.startswith("base_url")]
    assert warnings == [
        'base_url "https://hooks.example.com/twilio/sms" ends with "/twilio/sms", which the request '
        'path "/twilio/sms" starts with: the URL verified is '
        '"https://hooks.example.com/twilio/sms/twilio/sms". Give base_url as the public origin plus '
        "only the mount prefix the app does not see (usually just the origin)."
    ]


@pytest.mark.parametrize(
    ("base", "path", "overlap"),
    [
        ("https://h/twilio/sms", "/twilio/sms", "/twilio/sms"),
        ("https://h/app/twilio", "/twilio/sms", "/twilio"),
        ("https://h/sms", "/sms?x=1", "/sms"),
        ("https://h/app", "/twilio/sms", None),
        ("https://h/twilio/sms", "/sms", "/sms"),
        ("https://h/twilio/sms", "/twilio/voice", None),  # no k segments line up
        ("https://h", "/sms", None),
    ],
)
def test_route_overlap_is_any_k_segments(
    base: str, path: str, overlap: str | None, caplog: pytest.LogCaptureFixture
) -> None:
    from twilio_signature._web import Guard

    guard = Guard("flask", base_url=base)
    with caplog.at_level(logging.WARNING, logger="twilio_signature.flask"):
        guard.public_url(
            scheme="http", host="h", target=path, prefix="", remote_addr=None, header=lambda name: ["x"]
        )
    lines = refusals(caplog, "flask")
    if overlap is None:
        assert lines == []
    else:
        assert len(lines) == 1 and f'ends with "{overlap}"' in lines[0]
