"""Real Flask, Django and FastAPI apps on 127.0.0.1, served by real servers, hit over HTTP with
requests signed by the official twilio-python SDK."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, make_server

import flask
import pytest
import requests
import uvicorn
from django.core.handlers.wsgi import WSGIHandler
from fastapi import Depends, FastAPI
from twilio.request_validator import RequestValidator as Official
from twilio_signature import Verified
from twilio_signature.fastapi import TwilioSignature
from twilio_signature.flask import validate_twilio_request
from werkzeug.serving import make_server as werkzeug_server

SMS = {
    "AccountSid": "AC" + "0" * 32,
    "Body": "Hello + world % 100 ü 😀",
    "From": "+14155550100",
    "To": "+14155550199",
    "NumMedia": "0",
    "Blank": "",
}
PUBLIC = "https://public.example.com"


def flask_app(app: flask.Flask | None = None) -> flask.Flask:
    app = app or flask.Flask("twilio_test")
    app.config["TWILIO_AUTH_TOKEN"] = "flask-token"

    @app.post("/sms")
    @validate_twilio_request
    def sms() -> str:
        return "ok " + flask.request.form.get("From", "")

    @app.post("/proxied")
    @validate_twilio_request(trusted_proxies=["127.0.0.0/8", "::1/128"])
    def proxied() -> str:
        return "ok " + flask.g.twilio_verified.candidate

    return app


def fastapi_app() -> FastAPI:
    app = FastAPI()
    plain = TwilioSignature(token="fastapi-token")
    behind_proxy = TwilioSignature(token="fastapi-token", trusted_proxies=["127.0.0.1"])

    @app.post("/sms")
    async def sms(verified: Verified = Depends(plain)) -> dict[str, Any]:  # noqa: B008
        return {"ok": verified.algorithm}

    @app.post("/proxied")
    async def proxied(verified: Verified = Depends(behind_proxy)) -> dict[str, Any]:  # noqa: B008
        return {"ok": verified.algorithm}

    return app


class QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def serve_wsgi(server: Any, token: str) -> Iterator[tuple[str, str]]:
    """Serves until the module's tests are done: (base URL, token)."""
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}", token
    server.shutdown()


@pytest.fixture(scope="module")
def flask_server() -> Iterator[tuple[str, str]]:
    yield from serve_wsgi(werkzeug_server("127.0.0.1", 0, flask_app(), threaded=True), "flask-token")


@pytest.fixture(scope="module")
def django_server() -> Iterator[tuple[str, str]]:
    yield from serve_wsgi(
        make_server("127.0.0.1", 0, WSGIHandler(), handler_class=QuietHandler), "django-token"
    )


@pytest.fixture(scope="module")
def fastapi_server() -> Iterator[tuple[str, str]]:
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(fastapi_app(), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.02)
    yield f"http://127.0.0.1:{port}", "fastapi-token"
    server.should_exit = True
    thread.join(timeout=10)


@pytest.fixture(params=["flask", "django", "fastapi"])
def app(request: pytest.FixtureRequest) -> tuple[str, str]:
    server: tuple[str, str] = request.getfixturevalue(f"{request.param}_server")
    return server


def post_form(url: str, signature: str | None, params: dict[str, str], **headers: str) -> requests.Response:
    if signature is not None:
        headers["X-Twilio-Signature"] = signature
    return requests.post(url, data=params, headers=headers, timeout=10)


def test_valid_form_webhook_is_accepted(app: tuple[str, str]) -> None:
    base, token = app
    url = base + "/sms"
    response = post_form(url, Official(token).compute_signature(url, SMS), SMS)
    assert response.status_code == 200, response.text


def test_valid_sha256_form_webhook_is_accepted(app: tuple[str, str]) -> None:
    base, token = app
    url = base + "/sms?x=1&y=%2B"
    signature = Official(token).compute_signature(url, SMS, "HMAC_SHA256")
    settings = "key=webhooks_sharedkey_01,algorithm=HMAC_SHA256"
    response = post_form(url, signature, SMS, **{"X-Twilio-Webhooks-Signature-Settings": settings})
    assert response.status_code == 200, response.text


def test_valid_json_webhook_is_accepted_and_altered_json_refused(app: tuple[str, str]) -> None:
    base, token = app
    body = json.dumps({"event": "status", "text": "ü 😀"}).encode()
    url = f"{base}/sms?bodySHA256={hashlib.sha256(body).hexdigest()}"
    signature = Official(token).compute_signature(url, {})
    headers = {"X-Twilio-Signature": signature, "Content-Type": "application/json"}
    assert requests.post(url, data=body, headers=headers, timeout=10).status_code == 200
    altered = body.replace(b"status", b"statux")
    assert requests.post(url, data=altered, headers=headers, timeout=10).status_code == 403


def test_tampered_webhook_is_refused_with_403(app: tuple[str, str]) -> None:
    base, token = app
    url = base + "/sms"
    signature = Official(token).compute_signature(url, SMS)
    assert post_form(url, signature, {**SMS, "Body": "Send money"}).status_code == 403
    assert post_form(url, signature[::-1], SMS).status_code == 403
    assert post_form(url, Official("wrong").compute_signature(url, SMS), SMS).status_code == 403
    assert post_form(url, "garbage", SMS).status_code == 403


def test_missing_signature_is_refused_with_400(app: tuple[str, str]) -> None:
    base, _ = app
    assert post_form(base + "/sms", None, SMS).status_code == 400


def test_tls_proxy_is_believed_only_when_trusted(app: tuple[str, str]) -> None:
    base, token = app
    signature = Official(token).compute_signature(PUBLIC + "/proxied", SMS)
    forwarded = {"X-Forwarded-Proto": "https", "X-Forwarded-Host": "public.example.com"}
    assert post_form(base + "/proxied", signature, SMS, **forwarded).status_code == 200
    # The same request to a route that trusts no proxy: the forwarded headers are ignored.
    signature = Official(token).compute_signature(PUBLIC + "/sms", SMS)
    assert post_form(base + "/sms", signature, SMS, **forwarded).status_code == 403


def test_django_middleware_verifies_and_exempts_from_csrf(django_server: tuple[str, str]) -> None:
    base, token = django_server
    url = base + "/mw/sms"
    assert post_form(url, Official(token).compute_signature(url, SMS), SMS).text == "ok HMAC_SHA1"
    assert post_form(url, Official("other").compute_signature(url, SMS), SMS).status_code == 403
    assert post_form(url, None, SMS).status_code == 400


def test_flask_base_url_option() -> None:
    app = flask.Flask("base_url")

    @app.post("/hook")
    @validate_twilio_request(token="t0ken", base_url="https://example.org/app/")
    def hook() -> str:
        return "ok"

    client = app.test_client()
    signature = Official("t0ken").compute_signature("https://example.org/app/hook?a=1", SMS)
    headers = {"X-Twilio-Signature": signature}
    assert client.post("/hook?a=1", data=SMS, headers=headers).status_code == 200
    assert client.post("/hook?a=2", data=SMS, headers=headers).status_code == 403


def test_missing_token_is_a_server_error_not_a_pass(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TWILIO_AUTH_TOKEN", raising=False)
    app = flask.Flask("no_token")

    @app.post("/hook")
    @validate_twilio_request
    def hook() -> str:
        return "ok"

    response = app.test_client().post("/hook", data=SMS, headers={"X-Twilio-Signature": "x" * 28})
    assert response.status_code == 500


@contextlib.contextmanager
def run_example(example: str, tmp_path: Path) -> Iterator[int]:
    """``python examples/<example> --port N`` with ``TWILIO_AUTH_TOKEN=demo-token``, as the demo runs
    it, until the block ends: the port, once it accepts connections."""
    port = free_port()
    script = Path(__file__).resolve().parents[1] / "examples" / example
    env = {**os.environ, "TWILIO_AUTH_TOKEN": "demo-token"}
    env.pop("DJANGO_SETTINGS_MODULE", None)
    log = tmp_path / "server.log"
    with log.open("wb") as output:
        process = subprocess.Popen(
            [sys.executable, str(script), "--port", str(port)], env=env, stdout=output, stderr=output
        )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                alive = process.poll() is None and time.monotonic() < deadline
                assert alive, "the example did not start: " + log.read_text(errors="replace")[-2000:]
                time.sleep(0.1)
        yield port
    finally:
        process.terminate()
        process.wait(timeout=10)


@pytest.mark.parametrize("example", ["flask_app.py", "django_app.py", "fastapi_app.py"])
def test_example_app_runs_as_the_demo_runs_it(example: str, tmp_path: Path) -> None:
    """``python examples/<framework>_app.py --port N``: signed 200 with TwiML, unsigned 400, forged 403."""
    with run_example(example, tmp_path) as port:
        url = f"http://127.0.0.1:{port}/sms"
        assert post_form(url, None, SMS).status_code == 400
        signed = post_form(url, Official("demo-token").compute_signature(url, SMS), SMS)
        assert signed.status_code == 200 and "<Message>Hello +14155550100" in signed.text
        assert post_form(url, Official("forger").compute_signature(url, SMS), SMS).status_code == 403
