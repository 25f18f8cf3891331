"""Issue 11: the web helpers under hostile traffic, through real servers on loopback.

Flask and Django are served by Werkzeug's server (which de-chunks bodies and sets
``wsgi.input_terminated``), Django also by wsgiref (which does not), FastAPI by uvicorn. Big and
chunked bodies are sent over raw sockets, so the client controls every byte and header.
"""

# No `from __future__ import annotations`: FastAPI reads the route annotations at runtime.

import hashlib
import json
import logging
import socket
import subprocess
import sys
import threading
import time
import tracemalloc
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any
from wsgiref.simple_server import make_server as wsgiref_server

import flask
import pytest
import test_apps
import uvicorn
from django.conf import settings as django_settings
from django.core.handlers.wsgi import WSGIHandler
from fastapi import Body, Depends, FastAPI, Form, Request
from test_apps import SMS, QuietHandler, free_port
from twilio.request_validator import RequestValidator as Official
from twilio_signature import Verified
from twilio_signature.fastapi import TwilioBodyLimit, TwilioSignature
from twilio_signature.flask import validate_twilio_request
from werkzeug.serving import make_server as werkzeug_server

MIB = 1 << 20
FLASK_APP = flask.Flask("hostile")
TOKEN = {
    "flask": "flask-token",
    "django": "django-token",
    "fastapi": "fastapi-token",
    "fastapi_mw": "fastapi-token",
}


# -- the apps ------------------------------------------------------------------------------------------


def flask_app(app: flask.Flask | None = None) -> flask.Flask:
    """test_apps' Flask app, plus a route whose token comes from the config or environment."""
    app = test_apps.flask_app(app)

    @app.post("/envtoken")
    @validate_twilio_request(token=None)
    def envtoken() -> str:
        return "ok"

    return app


def fastapi_app(with_limit_middleware: bool) -> FastAPI:
    app = FastAPI()
    if with_limit_middleware:
        app.add_middleware(TwilioBodyLimit, paths=["/form"])
    plain = TwilioSignature(token="fastapi-token")
    behind_proxy = TwilioSignature(token="fastapi-token", trusted_proxies=["127.0.0.0/8", "::1/128"])
    from_env = TwilioSignature()

    @app.post("/sms")
    async def sms(verified: Annotated[Verified, Depends(plain)]) -> dict[str, Any]:
        return {"ok": verified.algorithm}

    @app.post("/form")
    async def form(
        From: Annotated[str, Form()],
        Body: Annotated[str, Form()],
        verified: Annotated[Verified, Depends(plain)],
    ) -> dict[str, Any]:
        return {"ok": verified.algorithm, "from": From, "body": Body}

    @app.post("/request")
    async def read_request(request: Request, verified: Annotated[Verified, Depends(plain)]) -> dict[str, Any]:
        form = await request.form()
        return {"ok": verified.algorithm, "from": form.get("From"), "raw": len(await request.body())}

    @app.post("/json")
    async def json_route(
        event: Annotated[dict[str, Any], Body()], verified: Annotated[Verified, Depends(plain)]
    ) -> dict[str, Any]:
        return {"ok": verified.algorithm, "event": event}

    @app.post("/proxied")
    async def proxied(verified: Annotated[Verified, Depends(behind_proxy)]) -> dict[str, Any]:
        return {"ok": verified.algorithm}

    @app.post("/envtoken")
    async def envtoken(verified: Annotated[Verified, Depends(from_env)]) -> dict[str, Any]:
        return {"ok": verified.algorithm}

    return app


# -- the servers ---------------------------------------------------------------------------------------


def _serve_wsgi(server: Any) -> Iterator[int]:
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield int(server.server_port)
    server.shutdown()


def _serve_asgi(app: Any, root_path: str = "") -> Iterator[int]:
    port = free_port()
    # log_config=None: uvicorn's records propagate to the root logger, where caplog sees them.
    server = uvicorn.Server(
        uvicorn.Config(
            app, host="127.0.0.1", port=port, log_config=None, log_level="error", root_path=root_path
        )
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.02)
    yield port
    server.should_exit = True
    thread.join(timeout=10)


@pytest.fixture(scope="module")
def servers() -> Iterator[dict[str, int]]:
    """Every server of the module, by name: their ports."""
    gens = {
        "flask": _serve_wsgi(werkzeug_server("127.0.0.1", 0, flask_app(FLASK_APP), threaded=True)),
        "django": _serve_wsgi(werkzeug_server("127.0.0.1", 0, WSGIHandler(), threaded=True)),
        "django_wsgiref": _serve_wsgi(
            wsgiref_server("127.0.0.1", 0, WSGIHandler(), handler_class=QuietHandler)
        ),
        "fastapi": _serve_asgi(fastapi_app(with_limit_middleware=False)),
        "fastapi_mw": _serve_asgi(fastapi_app(with_limit_middleware=True)),
    }
    ports = {name: next(gen) for name, gen in gens.items()}
    yield ports
    for gen in gens.values():
        next(gen, None)


FRAMEWORKS = ["flask", "django", "fastapi"]


# -- a raw HTTP client -------------------------------------------------------------------------------


def _head(path: str, headers: dict[str, str] | list[tuple[str, str]], host: str | None) -> bytes:
    lines = [f"POST {path} HTTP/1.1"]
    if host is not None:
        lines.append(f"Host: {host}")
    items = headers.items() if isinstance(headers, dict) else headers
    lines += [f"{name}: {value}" for name, value in items]
    lines.append("Connection: close")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def _status(response: bytes) -> int:
    assert response.startswith(b"HTTP/1."), response[:200]
    return int(response.split(b" ", 2)[1])


def raw_post(
    port: int,
    path: str,
    body: bytes,
    headers: dict[str, str] | list[tuple[str, str]],
    host: str | None = "__default__",
) -> tuple[int, bytes]:
    """POST ``body`` with exactly these headers (plus Content-Length and Host unless given)."""
    items = list(headers.items()) if isinstance(headers, dict) else list(headers)
    if not any(name.lower() == "content-length" for name, _ in items):
        items.append(("Content-Length", str(len(body))))
    host = f"127.0.0.1:{port}" if host == "__default__" else host
    with socket.create_connection(("127.0.0.1", port), timeout=20) as sock:
        sock.sendall(_head(path, items, host) + body)
        response = _read_all(sock)
    return _status(response), response


def _read_all(sock: socket.socket) -> bytes:
    chunks = []
    try:
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    except (ConnectionResetError, TimeoutError):
        pass
    return b"".join(chunks)


def stream_post(
    port: int, path: str, headers: dict[str, str], total: int, chunked: bool
) -> tuple[int, int, int]:
    """Sends up to ``total`` body bytes (chunked, or as a declared Content-Length) until the server
    answers: (status, body bytes sent before the answer, peak Python memory of the process during the
    request)."""
    items = dict(headers)
    if chunked:
        items["Transfer-Encoding"] = "chunked"
    else:
        items["Content-Length"] = str(total)
    piece = b"A=" + b"b" * (64 * 1024 - 2)
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        sent = 0
        with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
            sock.sendall(_head(path, items, f"127.0.0.1:{port}"))
            sock.setblocking(False)
            answered = False
            while sent < total and not answered:
                data = (f"{len(piece):x}\r\n".encode() + piece + b"\r\n") if chunked else piece
                view = memoryview(data)
                while view and not answered:
                    try:
                        view = view[sock.send(view) :]
                    except BlockingIOError:
                        time.sleep(0.001)
                    except (BrokenPipeError, ConnectionResetError):
                        answered = True
                    answered = answered or _readable(sock)
                sent += len(piece)
            sock.setblocking(True)
            sock.settimeout(30)
            if chunked and not answered:
                try:
                    sock.sendall(b"0\r\n\r\n")
                except (BrokenPipeError, ConnectionResetError):
                    pass
            response = _read_all(sock)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return _status(response), sent, peak


def _readable(sock: socket.socket) -> bool:
    try:
        return bool(sock.recv(1, socket.MSG_PEEK))
    except BlockingIOError:
        return False
    except (ConnectionResetError, OSError):
        return True


def signed(token: str, url: str, params: dict[str, str] = SMS) -> dict[str, str]:
    return {
        "X-Twilio-Signature": Official(token).compute_signature(url, params),
        "Content-Type": "application/x-www-form-urlencoded",
    }


def form_body(params: dict[str, str] = SMS) -> bytes:
    from urllib.parse import urlencode

    return urlencode(params).encode()


# -- 1. FastAPI Form() ---------------------------------------------------------------------------------


@pytest.mark.parametrize("route", ["/form", "/request"])
def test_fastapi_form_fields_and_request_reads_beside_the_dependency(
    servers: dict[str, int], route: str
) -> None:
    for name in ("fastapi", "fastapi_mw"):
        port = servers[name]
        url = f"http://127.0.0.1:{port}{route}"
        status, response = raw_post(port, route, form_body(), signed("fastapi-token", url))
        assert status == 200, response
        assert json.loads(response.split(b"\r\n\r\n", 1)[1])["from"] == SMS["From"]
        tampered = form_body({**SMS, "Body": "Send money"})
        assert raw_post(port, route, tampered, signed("fastapi-token", url))[0] == 403
        assert (
            raw_post(port, route, form_body(), {"Content-Type": "application/x-www-form-urlencoded"})[0]
            == 400
        )


def test_fastapi_json_body_route_still_checks_the_raw_body(servers: dict[str, int]) -> None:
    port = servers["fastapi"]
    body = json.dumps({"event": "status", "text": "ü"}).encode()
    path = f"/json?bodySHA256={hashlib.sha256(body).hexdigest()}"
    headers = {
        "X-Twilio-Signature": Official("fastapi-token").compute_signature(
            f"http://127.0.0.1:{port}{path}", {}
        ),
        "Content-Type": "application/json",
    }
    status, response = raw_post(port, path, body, headers)
    assert status == 200, response
    assert raw_post(port, path, body.replace(b"status", b"statux"), headers)[0] == 403


# -- 2. bounded bodies ---------------------------------------------------------------------------------


def _server_for(framework: str) -> str:
    return framework


@pytest.mark.parametrize("framework", ["fastapi", "fastapi_mw"])
@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_fastapi_big_body_is_413_and_memory_does_not_grow_with_it(
    servers: dict[str, int], framework: str, chunked: bool
) -> None:
    """uvicorn runs in this process: tracemalloc sees every byte it buffers."""
    port = servers[framework]
    route = "/form" if framework == "fastapi_mw" else "/sms"
    headers = signed(TOKEN[framework], f"http://127.0.0.1:{port}{route}")
    # 2 MiB: just past the limit; 64 MiB: an attacker's body. Either way at most ~1 MiB is read.
    for total in (2 * MIB, 64 * MIB):
        status, sent, peak = stream_post(port, route, headers, total, chunked)
        assert status == 413, (total, status)
        assert peak < 4 * MIB, f"peak Python memory {peak / MIB:.1f} MiB for a {total // MIB} MiB body"
        if total == 64 * MIB:
            assert sent < 32 * MIB, "the server waited for the whole body"


def _children(pid: int) -> list[int]:
    text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    return [int(child) for child in text.split()]


def _high_water_mark(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM")


@pytest.fixture(scope="module")
def gunicorn_servers() -> Iterator[dict[str, tuple[int, int]]]:
    """gunicorn (one sync worker each) serving the Flask and Django apps: {name: (port, worker pid)}."""
    tests = Path(__file__).resolve().parent
    processes = {}
    found: dict[str, tuple[int, int]] = {}
    try:
        for name in ("flask", "django"):
            port = free_port()
            processes[name] = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "gunicorn",
                    "--chdir",
                    str(tests),
                    "-w",
                    "1",
                    "-b",
                    f"127.0.0.1:{port}",
                    "--log-level",
                    "warning",
                    f"wsgi_apps:{name}_application",
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            deadline = time.monotonic() + 30
            while True:
                assert processes[name].poll() is None, "gunicorn exited"
                assert time.monotonic() < deadline, "gunicorn did not start"
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=1).close()
                    workers = _children(processes[name].pid)
                    if workers:
                        found[name] = (port, workers[0])
                        break
                except OSError:
                    pass
                time.sleep(0.1)
        yield found
    finally:
        for process in processes.values():
            process.terminate()
            process.wait(timeout=10)


@pytest.mark.parametrize("framework", ["flask", "django"])
@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_wsgi_big_body_is_413_and_worker_memory_does_not_grow_with_it(
    gunicorn_servers: dict[str, tuple[int, int]], framework: str, chunked: bool
) -> None:
    """gunicorn de-chunks and sets wsgi.input_terminated; its worker's peak RSS is measured."""
    port, worker = gunicorn_servers[framework]
    url = f"http://127.0.0.1:{port}/sms"
    assert raw_post(port, "/sms", form_body(), signed(TOKEN[framework], url))[0] == 200  # warm
    headers = signed(TOKEN[framework], url)
    for total in (2 * MIB, 64 * MIB):
        before = _high_water_mark(worker)
        status, sent, _ = stream_post(port, "/sms", headers, total, chunked)
        growth = _high_water_mark(worker) - before
        assert status == 413, (total, status)
        assert growth < 4 * MIB, f"worker peak RSS grew {growth / MIB:.1f} MiB for a {total // MIB} MiB body"
        if total == 64 * MIB:
            assert sent < 32 * MIB, "the server waited for the whole body"


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_unsigned_big_body_is_refused_400_before_reading(
    servers: dict[str, int], gunicorn_servers: dict[str, tuple[int, int]], framework: str
) -> None:
    port = servers[framework] if framework == "fastapi" else gunicorn_servers[framework][0]
    status, sent, _ = stream_post(
        port, "/sms", {"Content-Type": "application/x-www-form-urlencoded"}, 64 * MIB, False
    )
    assert status == 400
    assert sent < 32 * MIB  # answered long before the body could have been read


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_fastapi_form_route_behind_the_middleware_refuses_unsigned_bodies_unread(
    servers: dict[str, int], chunked: bool
) -> None:
    """FastAPI reads a Form() route's body before any dependency: TwilioBodyLimit(paths=...) answers
    400 first, and the in-process server's memory shows the body was not buffered."""
    port = servers["fastapi_mw"]
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    status, sent, peak = stream_post(port, "/form", headers, 64 * MIB, chunked)
    assert status == 400
    assert sent < 32 * MIB and peak < 4 * MIB


def test_django_on_a_server_that_cannot_dechunk_answers_411_without_reading(servers: dict[str, int]) -> None:
    port = servers["django_wsgiref"]
    headers = signed("django-token", f"http://127.0.0.1:{port}/sms")
    status, sent, peak = stream_post(port, "/sms", headers, 64 * MIB, True)
    assert status == 411
    assert peak < 4 * MIB and sent < 32 * MIB


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_body_at_the_limit_is_read_and_one_byte_more_is_413(
    framework: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The limit is exact: through each framework's own test client with a 1000-byte limit."""
    limit = 1000
    params = {"Body": "x" * (limit - len("Body="))}
    assert len(form_body(params)) == limit
    over = {"Body": "x" * (limit + 1 - len("Body="))}
    if framework == "flask":
        app = flask.Flask("limit")

        @app.post("/hook")
        @validate_twilio_request(token="t", max_body_bytes=limit)
        def hook() -> str:
            return "ok"

        client = app.test_client()
        for p, expected in ((params, 200), (over, 413)):
            h = signed("t", "http://localhost/hook", p)
            assert client.post("/hook", data=form_body(p), headers=h).status_code == expected
    elif framework == "django":
        from django.test import Client

        monkeypatch.setattr(django_settings, "TWILIO_MAX_BODY_BYTES", limit, raising=False)
        client = Client()
        for p, expected in ((params, 200), (over, 413)):
            h = signed("django-token", "http://testserver/mw/sms", p)
            response = client.post(
                "/mw/sms", data=form_body(p), content_type=h.pop("Content-Type"), headers=h
            )
            assert response.status_code == expected
    else:
        from starlette.testclient import TestClient

        app = FastAPI()
        guard = TwilioSignature(token="t", max_body_bytes=limit)

        @app.post("/hook")
        async def hook(verified: Annotated[Verified, Depends(guard)]) -> str:
            return "ok"

        with TestClient(app) as client:
            for p, expected in ((params, 200), (over, 413)):
                h = signed("t", "http://testserver/hook", p)
                assert client.post("/hook", content=form_body(p), headers=h).status_code == expected


# -- 3. Host tricks ------------------------------------------------------------------------------------


@pytest.mark.parametrize("framework", FRAMEWORKS)
@pytest.mark.parametrize("suffix", ["/voice", "?x", "#x", "@evil.com", "\\x", " x", "\tx", "\x01"])
def test_host_that_could_move_the_url_is_refused_400(
    servers: dict[str, int], framework: str, suffix: str
) -> None:
    port = servers[framework]
    host = f"127.0.0.1:{port}{suffix}"
    # Signed for the URL the trick would build: http://127.0.0.1:PORT/voice/sms and friends.
    headers = signed(TOKEN[framework], f"http://{host}/sms")
    status, _ = raw_post(port, "/sms", form_body(), headers, host=host)
    assert status == 400


@pytest.mark.parametrize("framework", [*FRAMEWORKS, "django_wsgiref", "fastapi_mw"])
def test_more_than_one_host_is_refused_400(
    servers: dict[str, int], framework: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A second Host line (RFC 9112 section 3.2: a 400 for every server). The form is validly signed for
    the first Host; WSGI servers join both lines with a comma, the ASGI helpers join uvicorn's list the
    same way, and the helper refuses the comma, as it does one Host line holding a comma: the app could
    read either host. The log line shows the helper refused it (Django's own DisallowedHost is a 400
    too, without it)."""
    port = servers[framework]
    host = f"127.0.0.1:{port}"
    headers = list(signed(TOKEN[framework.removesuffix("_wsgiref")], f"http://{host}/sms").items())
    assert raw_post(port, "/sms", form_body(), headers, host=host)[0] == 200, "one Host"
    second = [*headers, ("Host", "evil.example")]
    with caplog.at_level(logging.WARNING, logger="twilio_signature"):
        status, response = raw_post(port, "/sms", form_body(), second, host=host)
        assert status == 400, "a second Host line"
        assert raw_post(port, "/sms", form_body(), headers, host=f"{host},evil.example")[0] == 400
    lines = [r.getMessage() for r in caplog.records if r.name.startswith("twilio_signature.")]
    refused = f"twilio webhook refused: 400 the Host header '{host},evil.example' is more than one host"
    if framework.startswith("fastapi"):
        # uvicorn's h11 refuses a second Host line before the app runs (the ASGI join is tested below).
        assert response.endswith(b"Invalid HTTP request received.")
        assert [line.split("; url=")[0] for line in lines] == [refused]
    else:
        assert [line.split("; url=")[0] for line in lines] == [refused] * 2


def test_an_asgi_scope_with_two_host_headers_is_refused_400(caplog: pytest.LogCaptureFixture) -> None:
    """Servers that pass repeated Host lines on to the app (an ASGI scope's headers are a list): the
    FastAPI helper joins them with a comma and refuses them, the app never runs."""
    from starlette.testclient import TestClient

    with TestClient(fastapi_app(with_limit_middleware=False), base_url="http://hooks.example") as client:
        headers = signed(TOKEN["fastapi"], "http://hooks.example/sms")
        assert client.post("/sms", content=form_body(), headers=headers).status_code == 200
        two = [*headers.items(), ("Host", "hooks.example"), ("Host", "evil.example")]
        with caplog.at_level(logging.WARNING, logger="twilio_signature"):
            assert client.post("/sms", content=form_body(), headers=two).status_code == 400
    lines = [r.getMessage() for r in caplog.records if r.name == "twilio_signature.fastapi"]
    assert [line.split("; url=")[0] for line in lines] == [
        "twilio webhook refused: 400 the Host header 'hooks.example,evil.example' is more than one host"
    ]


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_forwarded_host_that_could_move_the_url_is_refused_400(
    servers: dict[str, int], framework: str
) -> None:
    port = servers[framework]
    headers = {
        **signed(TOKEN[framework], "https://public.example.com/voice/proxied"),
        "X-Forwarded-Proto": "https",
        "X-Forwarded-Host": "public.example.com/voice",
    }
    assert raw_post(port, "/proxied", form_body(), headers)[0] == 400


def test_werkzeug_is_at_least_the_stated_minimum() -> None:
    """pyproject states the minimum Werkzeug (Werkzeug 3.0.x passed a Host with "/" through), and the
    suite runs on the version mk/python.mk pins, which must satisfy it."""
    from importlib.metadata import version
    from pathlib import Path

    import tomllib

    root = Path(__file__).resolve().parents[1]
    pyproject = tomllib.loads((root / "pyproject.toml").read_text())
    flask_extra = pyproject["project"]["optional-dependencies"]["flask"]
    minimum = next(req.split(">=")[1] for req in flask_extra if req.lower().startswith("werkzeug>="))
    pinned = next(
        word.split("==")[1]
        for word in (root.parent / "mk" / "python.mk").read_text().split()
        if word.lower().startswith("werkzeug==")
    )
    assert version("werkzeug") == pinned

    def key(v: str) -> tuple[int, ...]:
        return tuple(int(part) for part in v.split("."))

    assert key(pinned) >= key(minimum) >= (3, 1)


# -- 4. proxies ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_the_last_forwarded_value_is_believed_from_a_cidr_trusted_proxy(
    servers: dict[str, int], framework: str
) -> None:
    port = servers[framework]
    token = TOKEN[framework]
    url = "https://public.example.com/proxied"
    # Two header lines (the client's forged one first, the proxy's last) and a comma list.
    for forwarded in (
        [("X-Forwarded-Host", "evil.example.com"), ("X-Forwarded-Host", "public.example.com")],
        [("X-Forwarded-Host", "evil.example.com, public.example.com")],
    ):
        items = [*signed(token, url).items(), ("X-Forwarded-Proto", "http, https"), *forwarded]
        status, response = raw_post(port, "/proxied", form_body(), items)
        assert status == 200, response
        evil = [
            *signed(token, "https://evil.example.com/proxied").items(),
            ("X-Forwarded-Proto", "https"),
            *forwarded,
        ]
        assert raw_post(port, "/proxied", form_body(), evil)[0] == 403


def test_trusted_proxies_are_networks_ipv4_and_ipv6() -> None:
    from twilio_signature._web import Guard

    def believed(networks: list[str], remote: str) -> bool:
        guard = Guard("flask", trusted_proxies=networks)
        url = guard.public_url(
            scheme="http",
            host="internal:8000",
            target="/sms",
            prefix="",
            remote_addr=remote,
            header=lambda name: {
                "X-Forwarded-Proto": ["https"],
                "X-Forwarded-Host": ["public.example.com"],
                "X-Twilio-Signature": ["x"],
            }.get(name, []),
        )
        return url == "https://public.example.com/sms"

    assert believed(["127.0.0.0/8"], "127.0.0.1") and believed(["127.0.0.0/8"], "127.255.0.9")
    assert believed(["10.0.0.0/8"], "10.1.2.3") and not believed(["10.0.0.0/8"], "11.0.0.1")
    assert believed(["10.0.0.2"], "10.0.0.2") and not believed(["10.0.0.2"], "10.0.0.3")
    assert believed(["::1/128"], "::1") and believed(["fd00::/8"], "fd12::1")
    assert not believed(["fd00::/8"], "fe80::1") and not believed(["::1"], "127.0.0.1")
    assert believed(["127.0.0.1"], "::ffff:127.0.0.1")  # an IPv4 client on a dual-stack socket
    assert not believed(["127.0.0.0/8"], "unix:/tmp/sock") and not believed([], "127.0.0.1")
    with pytest.raises(ValueError):
        Guard("flask", trusted_proxies=["10.0.0.0/33"])
    with pytest.raises(ValueError):
        Guard("flask", trusted_proxies=["proxy.internal"])


def test_ipv6_proxy_through_a_real_server() -> None:
    try:
        server = werkzeug_server("::1", 0, flask_app(), threaded=True)
    except OSError:
        pytest.skip("no IPv6 loopback here")
    gen = _serve_wsgi(server)
    port = next(gen)
    try:
        with socket.create_connection(("::1", port), timeout=10) as sock:
            headers = {
                **signed("flask-token", "https://public.example.com/proxied"),
                "X-Forwarded-Proto": "https",
                "X-Forwarded-Host": "public.example.com",
                "Content-Length": str(len(form_body())),
            }
            sock.sendall(_head("/proxied", headers, f"[::1]:{port}") + form_body())
            assert _status(_read_all(sock)) == 200
    finally:
        next(gen, None)


def test_base_url_with_a_route_in_it_warns_once(caplog: pytest.LogCaptureFixture) -> None:
    app = flask.Flask("route_in_base")

    @app.post("/sms")
    @validate_twilio_request(token="t", base_url="https://example.com/sms")
    def sms() -> str:
        return "ok"

    client = app.test_client()
    with caplog.at_level(logging.WARNING, logger="twilio_signature.flask"):
        for _ in range(3):
            client.post("/sms", data=SMS, headers={"X-Twilio-Signature": "x" * 28})
    route_warnings = [r for r in caplog.records if "Give base_url as the public origin" in r.getMessage()]
    assert len(route_warnings) == 1
    assert (
        route_warnings[0]
        .getMessage()
        .startswith(
            'base_url "https://example.com/sms" ends with "/sms", which the request path "/sms" starts '
            'with: the URL verified is "https://example.com/sms/sms".'
        )
    )


# -- 5. secrets ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("secret", [" ", "\n", " \t\r\n", b"  "])
def test_whitespace_secret_is_refused_when_built(secret: str | bytes) -> None:
    from twilio_signature import RequestValidator, Validator

    with pytest.raises(ValueError, match="whitespace"):
        Validator(secret)
    with pytest.raises(ValueError, match="whitespace"):
        Validator(["good", secret])
    with pytest.raises(ValueError, match="whitespace"):
        Validator({"KS1": secret})
    if isinstance(secret, str):
        with pytest.raises(ValueError):
            RequestValidator(secret)


def _carries(error: BaseException | None, secret: str) -> bool:
    seen = 0
    while error is not None and seen < 10:
        if any(secret in repr(arg) or "\\udcff" in repr(arg) for arg in error.args):
            return True
        if secret in str(error) or secret in repr(error) or getattr(error, "object", None) is not None:
            return True
        if error.__cause__ is not None and _carries(error.__cause__, secret):
            return True
        error = error.__context__
        seen += 1
    return False


def test_non_encodable_secret_error_carries_it_nowhere() -> None:
    from twilio_signature import RequestValidator, Validator

    secret = "S3CRET\udcff"
    for build in (Validator, RequestValidator, lambda s: Validator([s]), lambda s: Validator({"KS1": s})):
        try:
            build(secret)
        except ValueError as error:
            assert error.__cause__ is None and error.__context__ is None
            assert not _carries(error, "S3CRET")
        else:
            pytest.fail("a non-encodable secret was accepted")


@pytest.mark.parametrize("framework", FRAMEWORKS)
@pytest.mark.parametrize("secret", [" \n", "S3CRET\udcff"], ids=["whitespace", "non-encodable"])
def test_helpers_answer_500_missing_token_for_an_unusable_token(
    servers: dict[str, int],
    framework: str,
    secret: str,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    port = servers[framework]
    monkeypatch.setenv("TWILIO_AUTH_TOKEN", secret)
    route = "/envtoken"
    if framework == "django":
        monkeypatch.setattr(django_settings, "TWILIO_AUTH_TOKEN", secret)
        route = "/sms"
    if framework == "flask":
        monkeypatch.delitem(FLASK_APP.config, "TWILIO_AUTH_TOKEN")
    # uvicorn's own dictConfig (another module's server) may stop its records from propagating.
    uvicorn_logger = logging.getLogger("uvicorn.error")
    uvicorn_logger.addHandler(caplog.handler)
    try:
        with caplog.at_level(logging.INFO):
            status, response = raw_post(port, route, form_body(), signed("anything", "http://x/"))
    finally:
        uvicorn_logger.removeHandler(caplog.handler)
    assert status == 500
    assert b"S3CRET" not in response
    text = "\n".join(
        record.getMessage() + (str(record.exc_info[1]) if record.exc_info else "")
        for record in caplog.records
    )
    assert "TWILIO_AUTH_TOKEN is not usable" in text
    refused = [r.getMessage() for r in caplog.records if r.name == f"twilio_signature.{framework}"]
    assert len(refused) == 1 and refused[0].startswith("twilio webhook refused: 500 TWILIO_AUTH_TOKEN")
    assert f"; url=http://127.0.0.1:{port}{route};" in refused[0]
    # The header check still comes first: an unsigned request is a 400, whatever the token.
    assert raw_post(port, route, form_body(), {"Content-Type": "application/x-www-form-urlencoded"})[0] == 400
    assert "S3CRET" not in text
    missing = [
        r for r in caplog.records if r.exc_info and type(r.exc_info[1]).__name__ == "MissingTokenError"
    ]
    assert missing, "the 500 is not a MissingTokenError"
    assert all(not _carries(r.exc_info[1], "S3CRET") for r in missing if r.exc_info)


# -- logging -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_each_refusal_is_one_warning_line_with_the_diagnosis(
    servers: dict[str, int], framework: str, caplog: pytest.LogCaptureFixture
) -> None:
    from twilio_signature import Validator

    port = servers[framework]
    token = TOKEN[framework]
    url = f"http://127.0.0.1:{port}/sms"
    # Signed for https: the diagnosis names the scheme.
    headers = signed(token, "https" + url[4:])
    with caplog.at_level(logging.WARNING, logger=f"twilio_signature.{framework}"):
        assert raw_post(port, "/sms", form_body(), headers)[0] == 403
    lines = [r for r in caplog.records if r.name == f"twilio_signature.{framework}"]
    assert len(lines) == 1 and lines[0].levelno == logging.WARNING
    message = lines[0].getMessage()
    assert message.startswith("twilio webhook refused: 403 the signature does not match the request; url=")
    assert f"url={url};" in message and "\n" not in message
    assert "scheme" in message and "fix:" in message
    expected = Validator(token).sign(url, form_body())
    assert token not in message and expected not in message


def test_refusal_logging_can_be_silenced() -> None:
    app = flask.Flask("quiet")

    @app.post("/sms")
    @validate_twilio_request(token="t")
    def sms() -> str:
        return "ok"

    logger = logging.getLogger("twilio_signature.flask")
    records: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = records.append  # type: ignore[method-assign]
    logger.addHandler(handler)
    try:
        app.test_client().post("/sms", data=SMS)
        assert len(records) == 1
        logger.setLevel(logging.ERROR)  # as the README says
        app.test_client().post("/sms", data=SMS)
        assert len(records) == 1
    finally:
        logger.setLevel(logging.NOTSET)
        logger.removeHandler(handler)


# -- review fixes: configuration, lengths, forwarded scheme, log escaping -----------------------------


@pytest.mark.parametrize("value", [None, [], (), "/twilio/", b"/twilio/", [b"/twilio/"], 42], ids=repr)
def test_django_middleware_refuses_webhook_paths_that_guard_nothing(value: object) -> None:
    """Missing, empty, a bare string (once iterated per character) or non-strings: the middleware
    is not built, with an error naming the setting, rather than letting every request through."""
    from django.core.exceptions import ImproperlyConfigured
    from django.test import override_settings
    from twilio_signature.django import TwilioSignatureMiddleware

    with override_settings():
        if value is None:
            del django_settings.TWILIO_WEBHOOK_PATHS
        else:
            django_settings.TWILIO_WEBHOOK_PATHS = value
        with pytest.raises(ImproperlyConfigured, match="TWILIO_WEBHOOK_PATHS") as error:
            TwilioSignatureMiddleware(lambda request: None)  # type: ignore[arg-type,return-value]
        with pytest.raises(ImproperlyConfigured):
            WSGIHandler()  # Django builds its middleware chain here: the server never starts
    if value is None or value in ([], ()):
        assert "would verify no request" in str(error.value)
    with override_settings(TWILIO_WEBHOOK_PATHS=("/twilio/", "/mw/")):
        assert TwilioSignatureMiddleware(lambda request: None).paths == ("/twilio/", "/mw/")  # type: ignore[arg-type,return-value]


def test_django_middleware_guards_an_app_mounted_under_a_script_name() -> None:
    """TWILIO_WEBHOOK_PATHS = ["/mw/"] is relative to the mount point: with the app at /app, the
    request /app/mw/sms (request.path) is under it (request.path_info /mw/sms). Unguarded, the view
    would answer Django's CSRF 403 to both requests below."""
    from werkzeug.exceptions import NotFound
    from werkzeug.middleware.dispatcher import DispatcherMiddleware

    mounted = DispatcherMiddleware(NotFound(), {"/app": WSGIHandler()})
    gen = _serve_wsgi(werkzeug_server("127.0.0.1", 0, mounted, threaded=True))
    port = next(gen)
    try:
        unsigned = {"Content-Type": "application/x-www-form-urlencoded"}
        status, response = raw_post(port, "/app/mw/sms", form_body(), unsigned)
        assert status == 400 and b"X-Twilio-Signature header is missing" in response, response
        url = f"http://127.0.0.1:{port}/app/mw/sms"
        status, response = raw_post(port, "/app/mw/sms", form_body(), signed("django-token", url))
        assert status == 200 and b"ok HMAC_SHA1" in response, response
        # Signed without the mount prefix: not the URL Twilio called.
        wrong = signed("django-token", f"http://127.0.0.1:{port}/mw/sms")
        assert raw_post(port, "/app/mw/sms", form_body(), wrong)[0] == 403
    finally:
        next(gen, None)


def test_declared_length_with_more_digits_than_any_size() -> None:
    from twilio_signature._web import Guard, Refusal

    guard = Guard("flask", max_body_bytes=1000)
    assert guard.check_declared_length("0" * 5000 + "3", "u") == 3
    assert guard.check_declared_length("0" * 5000, "u") == 0
    assert guard.check_declared_length("1000", "u") == 1000
    for too_big in ("1001", "9" * 19, "1" + "0" * 19, "9" * 5000, "0" * 5000 + "9" * 20):
        with pytest.raises(Refusal) as refusal:
            guard.check_declared_length(too_big, "u")
        assert refusal.value.status == 413
    for malformed in ("-1", "1e3", " 3", "٣"):
        with pytest.raises(Refusal) as refusal:
            guard.check_declared_length(malformed, "u")
        assert refusal.value.status == 400


@pytest.mark.parametrize("server", ["flask", "django", "django_wsgiref", "fastapi", "fastapi_mw"])
def test_content_length_of_thousands_of_digits_is_never_a_500(servers: dict[str, int], server: str) -> None:
    """int() of more than 4300 digits raises ValueError: 5000 nines are 413, and 5000 zeros before
    the real length are that length (the signed request is accepted). uvicorn's h11 refuses both
    with its own 400 before the app runs; the TwilioBodyLimit check itself is called directly."""
    port = servers[server]
    route = "/form" if server == "fastapi_mw" else "/sms"
    token = TOKEN.get(server, "django-token")
    headers = signed(token, f"http://127.0.0.1:{port}{route}")
    body = form_body()
    huge = raw_post(port, route, body, {**headers, "Content-Length": "9" * 5000})[0]
    padded = raw_post(port, route, body, {**headers, "Content-Length": "0" * 5000 + str(len(body))})[0]
    if server.startswith("fastapi"):
        assert (huge, padded) == (400, 400)
    else:
        assert (huge, padded) == (413, 200)


def test_body_limit_middleware_answers_413_to_a_length_of_thousands_of_digits() -> None:
    import asyncio

    async def app(scope: Any, receive: Any, send: Any) -> None:
        raise AssertionError("the app ran")

    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    for length, expected in (("9" * 5000, 413), ("1" + "0" * 19, 413), ("x", 400)):
        sent.clear()
        scope = {
            "type": "http",
            "method": "POST",
            "path": "/form",
            "raw_path": b"/form",
            "query_string": b"",
            "headers": [(b"x-twilio-signature", b"x"), (b"content-length", length.encode())],
        }
        asyncio.run(TwilioBodyLimit(app)(scope, receive, send))
        assert sent[0]["status"] == expected, length


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_forwarded_proto_other_than_http_or_https_is_refused_400(
    servers: dict[str, int], framework: str, caplog: pytest.LogCaptureFixture
) -> None:
    """As the tower layer: a believed X-Forwarded-Proto is http or https in any ASCII case, kept as
    sent in the URL; anything else (which would be pasted into the URL) is a logged 400."""
    port = servers[framework]
    token = TOKEN[framework]
    for proto in ("javascript", "https:", "ftp", "https\xa0", "http s"):
        url = f"{proto}://127.0.0.1:{port}/proxied"
        headers = {**signed(token, url), "X-Forwarded-Proto": proto}
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger=f"twilio_signature.{framework}"):
            status, response = raw_post(port, "/proxied", form_body(), headers)
        assert status == 400, (proto, response)
        assert b"the X-Forwarded-Proto header is not http or https" in response
        lines = [r.getMessage() for r in caplog.records if r.name == f"twilio_signature.{framework}"]
        assert len(lines) == 1
        assert lines[0].startswith("twilio webhook refused: 400 the X-Forwarded-Proto header is not http")
    for proto in ("https", "HTTPS", "Http"):
        headers = {**signed(token, f"{proto}://127.0.0.1:{port}/proxied"), "X-Forwarded-Proto": proto}
        assert raw_post(port, "/proxied", form_body(), headers)[0] == 200, proto
    # From an untrusted peer the header is ignored, whatever it holds.
    headers = {**signed(token, f"http://127.0.0.1:{port}/sms"), "X-Forwarded-Proto": "javascript"}
    assert raw_post(port, "/sms", form_body(), headers)[0] == 200


def test_printable_escapes_c0_c1_controls_and_unicode_line_separators() -> None:
    from twilio_signature._web import printable

    assert printable("https://h/sms?a=b ü €") == "https://h/sms?a=b ü €"
    assert printable("a\nb\x00\x1f\x7f") == "a\\x0ab\\x00\\x1f\\x7f"
    assert printable("a\x80\x85\x9b\x9f\xa0b") == "a\\x80\\x85\\x9b\\x9f\xa0b"
    assert printable("a\u2028b\u2029c") == "a\\u2028b\\u2029c"
    for c in map(chr, range(0x110000)):
        if c != "\\":
            assert len(("x" + printable(c) + "x").splitlines()) == 1, hex(ord(c))


@pytest.mark.parametrize("framework", ["flask", "django"])
def test_refusal_log_line_escapes_c1_bytes_of_the_url(
    servers: dict[str, int], framework: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Werkzeug decodes the request target as latin-1: the bytes 0x9b (CSI) and e2 80 a8 (U+2028 in
    UTF-8) reach the URL as C1 characters. (NEL, 0x85, is whitespace to Werkzeug, gunicorn and h11,
    which refuse such a request line before any app runs.)"""
    port = servers[framework]
    target = b"/sms?x=\x9b[2J\xe2\x80\xa8y".decode("latin-1")
    with caplog.at_level(logging.WARNING, logger=f"twilio_signature.{framework}"):
        status, _ = raw_post(port, target, form_body(), {"Content-Type": "application/x-www-form-urlencoded"})
    assert status == 400
    lines = [r.getMessage() for r in caplog.records if r.name == f"twilio_signature.{framework}"]
    assert len(lines) == 1
    # (Werkzeug hands the target over UTF-8-encoded and read as latin-1: 0x9b arrives as "\xc2\x9b".)
    assert f"url=http://127.0.0.1:{port}/sms?x=" in lines[0] and "\\x9b[2J" in lines[0]
    assert "\\x80" in lines[0]
    assert not any("\x80" <= c <= "\x9f" for c in lines[0]) and len(lines[0].splitlines()) == 1


@pytest.mark.parametrize(
    ("paths", "error"),
    [
        ("/form", TypeError),
        (b"/form", TypeError),
        ([b"/form"], TypeError),
        (42, TypeError),
        ([], ValueError),
        ((), ValueError),
    ],
    ids=repr,
)
def test_body_limit_middleware_refuses_paths_that_guard_nothing(paths: Any, error: type[Exception]) -> None:
    """A bare string (once iterated per character), non-strings or an empty list: the middleware is
    not built, and neither is the app's middleware stack, rather than guarding nothing."""
    with pytest.raises(error, match="paths") as raised:
        TwilioBodyLimit(FastAPI(), paths=paths)
    if isinstance(paths, str):
        assert "not a str: write paths=['/form']" in str(raised.value)
    if error is ValueError:
        assert "no unsigned request would be refused" in str(raised.value)
    app = FastAPI()
    app.add_middleware(TwilioBodyLimit, paths=paths)
    with pytest.raises(error):
        app.build_middleware_stack()  # what Starlette does on the first call (lifespan or request)
    assert TwilioBodyLimit(FastAPI(), paths=("/form", "/sms")).paths == ("/form", "/sms")
    assert TwilioBodyLimit(FastAPI()).paths == ()  # no paths: only signed requests are bounded


@pytest.mark.parametrize("mount", ["starlette-mount", "uvicorn-root-path"])
def test_body_limit_middleware_guards_an_app_mounted_under_a_prefix(mount: str) -> None:
    """paths=["/form"] is relative to the mount point: under Starlette's Mount("/app") and uvicorn
    --root-path /app alike, scope["path"] is /app/form (root_path /app). Unguarded, the unsigned
    body would be read by FastAPI whole before the dependency's 400."""
    from starlette.applications import Starlette
    from starlette.routing import Mount

    inner = fastapi_app(with_limit_middleware=True)
    if mount == "starlette-mount":
        app: Any = Starlette(routes=[Mount("/app", app=inner)])
        target = "/app/form"
    else:
        app, target = inner, "/form"  # uvicorn prepends the root path to the path itself
    gen = _serve_asgi(app, root_path="/app" if mount == "uvicorn-root-path" else "")
    port = next(gen)
    try:
        unsigned = {"Content-Type": "application/x-www-form-urlencoded"}
        for chunked in (False, True):
            status, sent, peak = stream_post(port, target, unsigned, 64 * MIB, chunked)
            assert status == 400, chunked
            assert sent < 32 * MIB and peak < 4 * MIB, (chunked, sent, peak)
        status, response = raw_post(port, target, form_body(), unsigned)
        assert status == 400 and b"X-Twilio-Signature header is missing" in response, response
        url = f"http://127.0.0.1:{port}/app/form"
        status, response = raw_post(port, target, form_body(), signed("fastapi-token", url))
        assert status == 200 and b'"ok":"HMAC_SHA1"' in response, response
        # A signed body over the limit is still 413 before it is read.
        big = {**signed("fastapi-token", url), "Content-Length": str(2 * MIB)}
        assert raw_post(port, target, b"", big)[0] == 413
    finally:
        next(gen, None)
