"""Issue 26 (rule R5): the WebSocket handshakes of Media Streams, verified against the wss:// (ws://)
URL before any upgrade, with the real ``websockets`` client against real servers on loopback:
FastAPI under uvicorn, Flask + flask-sock under Werkzeug, Django Channels under uvicorn, and the
runnable example examples/voice_stream_app.py.

Each: a signed handshake gets 101 and Media Streams messages flow (``connected`` and ``start`` in, a
``mark`` out); a forged one 403 and an unsigned one 400, with no upgrade and the consumer never run;
a handshake signed for the http:// URL (the common mistake: Twilio signs ws:// / wss://) is refused.
"""

# No `from __future__ import annotations`: FastAPI reads the endpoints' annotations at runtime.

import asyncio
import json
import logging
import socket
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlencode

import flask
import pytest
import requests
from fastapi import Depends, FastAPI, WebSocket, WebSocketDisconnect
from flask_sock import Sock
from test_apps import run_example
from test_hostile import _serve_asgi, _serve_wsgi
from twilio_signature import Validator, Verified
from twilio_signature.fastapi import TwilioSignature
from twilio_signature.flask import validate_twilio_request
from twilio_signature.testing import handshake_headers
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus
from werkzeug.serving import make_server as werkzeug_server

TOKENS = {"fastapi": "fastapi-token", "flask": "flask-token", "channels": "django-token"}
OPENED: Counter[str] = Counter()
"""Stream handlers entered, by framework: a refused handshake must never get there."""
STREAM_SID = "MZ" + "0" * 32
CONNECTED = {"event": "connected", "protocol": "Call", "version": "1.0.0"}
START = {
    "event": "start",
    "sequenceNumber": "1",
    "streamSid": STREAM_SID,
    "start": {"streamSid": STREAM_SID, "callSid": "CA" + "0" * 32, "tracks": ["inbound"]},
}


def reply_to(message: dict[str, Any]) -> dict[str, Any] | None:
    """The stream apps' logic: answer the start event with a mark."""
    if message.get("event") == "start":
        return {"event": "mark", "streamSid": message["streamSid"], "mark": {"name": "ready"}}
    return None


# -- the apps -----------------------------------------------------------------------------------------


def fastapi_app() -> FastAPI:
    app = FastAPI()
    plain = TwilioSignature(token=TOKENS["fastapi"])
    behind_proxy = TwilioSignature(token=TOKENS["fastapi"], trusted_proxies=["127.0.0.1"])

    async def stream(websocket: WebSocket) -> None:
        OPENED["fastapi"] += 1
        await websocket.accept()
        try:
            while True:
                answer = reply_to(json.loads(await websocket.receive_text()))
                if answer is not None:
                    await websocket.send_text(json.dumps(answer))
        except WebSocketDisconnect:
            pass

    @app.websocket("/media")
    async def media(websocket: WebSocket, verified: Annotated[Verified, Depends(plain)]) -> None:
        await stream(websocket)

    @app.websocket("/proxied")
    async def proxied(websocket: WebSocket, verified: Annotated[Verified, Depends(behind_proxy)]) -> None:
        await stream(websocket)

    return app


def flask_app() -> flask.Flask:
    app = flask.Flask("streams")
    app.config["TWILIO_AUTH_TOKEN"] = TOKENS["flask"]
    sock = Sock(app)

    def stream(ws: Any) -> None:
        OPENED["flask"] += 1
        while True:
            text = ws.receive(timeout=10)
            if text is None:
                return
            answer = reply_to(json.loads(text))
            if answer is not None:
                ws.send(json.dumps(answer))

    @sock.route("/media")
    @validate_twilio_request
    def media(ws: Any) -> None:
        stream(ws)

    @sock.route("/proxied")
    @validate_twilio_request(trusted_proxies=["127.0.0.1"])
    def proxied(ws: Any) -> None:
        stream(ws)

    return app


def channels_app() -> Any:
    from channels.generic.websocket import AsyncWebsocketConsumer
    from channels.routing import ProtocolTypeRouter, URLRouter
    from django.urls import path
    from twilio_signature.django import TwilioSignatureWebSocketMiddleware

    class Media(AsyncWebsocketConsumer):  # type: ignore[misc]
        async def connect(self) -> None:
            OPENED["channels"] += 1
            assert self.scope["twilio_verified"].algorithm == "HMAC_SHA1"
            await self.accept()

        async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
            answer = reply_to(json.loads(text_data or "{}"))
            if answer is not None:
                await self.send(text_data=json.dumps(answer))

    return ProtocolTypeRouter(
        {
            "websocket": URLRouter(
                [
                    path("media", TwilioSignatureWebSocketMiddleware(Media.as_asgi())),
                    path(
                        "proxied",
                        TwilioSignatureWebSocketMiddleware(Media.as_asgi(), trusted_proxies=["127.0.0.1"]),
                    ),
                ]
            )
        }
    )


@pytest.fixture(scope="module")
def servers() -> Iterator[dict[str, int]]:
    gens = {
        "fastapi": _serve_asgi(fastapi_app()),
        "flask": _serve_wsgi(werkzeug_server("127.0.0.1", 0, flask_app(), threaded=True)),
        "channels": _serve_asgi(channels_app()),
    }
    ports = {name: next(gen) for name, gen in gens.items()}
    yield ports
    for gen in gens.values():
        next(gen, None)


FRAMEWORKS = ["fastapi", "flask", "channels"]
LOGGERS = {
    "fastapi": "twilio_signature.fastapi",
    "flask": "twilio_signature.flask",
    "channels": "twilio_signature.django",
}


# -- a Twilio-like client ------------------------------------------------------------------------------


async def _stream(url: str, headers: dict[str, str]) -> dict[str, Any]:
    """Opens the stream like Twilio (connected, start) and returns the app's first message."""
    async with connect(url, additional_headers=headers, open_timeout=10) as websocket:
        await websocket.send(json.dumps(CONNECTED))
        await websocket.send(json.dumps(START))
        answer: dict[str, Any] = json.loads(await asyncio.wait_for(websocket.recv(), 10))
        return answer


def stream(url: str, headers: dict[str, str]) -> dict[str, Any]:
    return asyncio.run(_stream(url, headers))


def refused_status(url: str, headers: dict[str, str]) -> int:
    """The HTTP status of a handshake that must not be upgraded (a 101 fails the test)."""
    try:
        asyncio.run(_stream(url, headers))
    except InvalidStatus as error:
        return int(error.response.status_code)
    raise AssertionError("the handshake was upgraded")


def signed(framework: str, url: str) -> dict[str, str]:
    if url.startswith("http"):  # the mistake the tests make on purpose
        return {"X-Twilio-Signature": Validator(TOKENS[framework]).sign(url, b"")}
    return handshake_headers(url, token=TOKENS[framework])


MARK = {"event": "mark", "streamSid": STREAM_SID, "mark": {"name": "ready"}}


# -- the tests -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_a_signed_handshake_is_upgraded_and_media_stream_messages_flow(
    servers: dict[str, int], framework: str
) -> None:
    url = f"ws://127.0.0.1:{servers[framework]}/media?CallSid=CA1"
    before = OPENED[framework]
    assert stream(url, signed(framework, url)) == MARK
    assert OPENED[framework] == before + 1


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_forged_and_unsigned_handshakes_get_403_and_400_without_upgrade(
    servers: dict[str, int], framework: str, caplog: pytest.LogCaptureFixture
) -> None:
    url = f"ws://127.0.0.1:{servers[framework]}/media"
    before = OPENED[framework]
    forged = {"X-Twilio-Signature": Validator("not-the-token").sign(url, b"")}
    with caplog.at_level(logging.WARNING, logger=LOGGERS[framework]):
        assert refused_status(url, forged) == 403
        assert refused_status(url, {}) == 400
        # Signed for another query: the query is part of the URL verified.
        assert refused_status(url + "?a=1", signed(framework, url + "?a=2")) == 403
    assert OPENED[framework] == before, "a stream handler ran for a refused handshake"
    lines = [r.getMessage() for r in caplog.records if r.name == LOGGERS[framework]]
    assert len(lines) == 3
    assert lines[0].startswith(
        f"twilio webhook refused: 403 the signature does not match the request; url={url};"
    )
    assert lines[1].startswith(
        f"twilio webhook refused: 400 the X-Twilio-Signature header is missing; url={url};"
    )


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_a_handshake_with_two_host_lines_is_refused_400_without_upgrade(
    servers: dict[str, int], framework: str
) -> None:
    """Signed for the first Host, with a second Host line: never upgraded (Werkzeug joins the lines with
    a comma, which the helper refuses; uvicorn's h11 refuses them itself)."""
    port = servers[framework]
    host = f"127.0.0.1:{port}"
    headers = signed(framework, f"ws://{host}/media")
    before = OPENED[framework]
    for hosts in ([host, "evil.example"], [f"{host},evil.example"]):
        lines = [
            "GET /media HTTP/1.1",
            *(f"Host: {h}" for h in hosts),
            "Upgrade: websocket",
            "Connection: Upgrade",
            "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
            "Sec-WebSocket-Version: 13",
            *(f"{name}: {value}" for name, value in headers.items()),
        ]
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
            reply = sock.recv(4096)
        assert reply.startswith(b"HTTP/1.1 400 "), (hosts, reply[:200])
    assert OPENED[framework] == before, "a stream handler ran for a refused handshake"


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_a_handshake_signed_for_the_http_url_is_refused(
    servers: dict[str, int], framework: str, caplog: pytest.LogCaptureFixture
) -> None:
    """The mistake twilio-aspnet makes, from the signing side: Twilio signs ws:// / wss://."""
    port = servers[framework]
    url = f"ws://127.0.0.1:{port}/media"
    with caplog.at_level(logging.WARNING, logger=LOGGERS[framework]):
        assert refused_status(url, signed(framework, f"http://127.0.0.1:{port}/media")) == 403
    (line,) = [r.getMessage() for r in caplog.records if r.name == LOGGERS[framework]]
    assert f"url=ws://127.0.0.1:{port}/media;" in line
    # The core's explain names the scheme mix-up (and the URL that would have matched).
    assert "verified as ws:// but signed over the http:// URL" in line, line
    assert f"url signed: http://127.0.0.1:{port}/media" in line


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_behind_a_trusted_tls_proxy_the_wss_url_is_verified(servers: dict[str, int], framework: str) -> None:
    port = servers[framework]
    forwarded = {"X-Forwarded-Proto": "https", "X-Forwarded-Host": "voice.example.com"}
    url = f"ws://127.0.0.1:{port}/proxied"
    headers = {**signed(framework, "wss://voice.example.com/proxied"), **forwarded}
    assert stream(url, headers) == MARK
    # The https:// URL the app would build without R5 is not what Twilio signed.
    headers = {**signed(framework, "https://voice.example.com/proxied"), **forwarded}
    assert refused_status(url, headers) == 403
    # Nor is wss:// believed from a peer no proxy option trusts (/media trusts none).
    headers = {**signed(framework, "wss://voice.example.com/media"), **forwarded}
    assert refused_status(f"ws://127.0.0.1:{port}/media", headers) == 403


def test_the_voice_stream_example_runs_as_its_docstring_says(tmp_path: Path) -> None:
    """``python examples/voice_stream_app.py --port N``: the signed TwiML webhook connects the call
    to the stream URL, whose signed handshake is upgraded; forged 403, unsigned 400."""
    with run_example("voice_stream_app.py", tmp_path) as port:
        voice = f"http://127.0.0.1:{port}/voice"
        body = {"CallSid": "CA" + "0" * 32, "From": "+14155550100"}
        signature = Validator("demo-token").sign(voice, urlencode(body))
        response = requests.post(voice, data=body, headers={"X-Twilio-Signature": signature}, timeout=10)
        assert response.status_code == 200, response.text
        media = f"ws://127.0.0.1:{port}/media"
        assert response.text == f'<Response><Connect><Stream url="{media}"/></Connect></Response>'
        assert stream(media, {"X-Twilio-Signature": Validator("demo-token").sign(media, b"")}) == MARK
        assert refused_status(media, {"X-Twilio-Signature": Validator("forger").sign(media, b"")}) == 403
        assert refused_status(media, {}) == 400
        assert requests.post(voice, data=body, timeout=10).status_code == 400


@pytest.mark.parametrize("framework", ["fastapi", "channels"])
def test_a_refused_handshake_names_forwarding_headers_uvicorn_made_untrusted(
    servers: dict[str, int], framework: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Rule R3 on a handshake: the proxy (127.0.0.1, trusted) adds X-Forwarded-For, uvicorn makes
    the peer 203.0.113.7, so the proxy's X-Forwarded-Proto and -Host are not believed."""
    port = servers[framework]
    headers = {
        **signed(framework, "wss://voice.example.com/proxied"),
        "X-Forwarded-Proto": "https",
        "X-Forwarded-Host": "voice.example.com",
        "X-Forwarded-For": "203.0.113.7",
    }
    with caplog.at_level(logging.WARNING, logger=LOGGERS[framework]):
        assert refused_status(f"ws://127.0.0.1:{port}/proxied", headers) == 403
    (line,) = [r.getMessage() for r in caplog.records if r.name == LOGGERS[framework]]
    assert line.endswith(
        "; X-Forwarded-Proto, X-Forwarded-Host ignored: from 203.0.113.7, not in trusted_proxies "
        "(the peer address 203.0.113.7 came from X-Forwarded-For: uvicorn's proxy_headers rewrote it; "
        "trust the original proxy with forwarded_allow_ips, or turn proxy_headers off)"
    ), line


def test_handshake_headers_sign_the_wss_url_and_refuse_an_https_one() -> None:
    from starlette.testclient import TestClient

    with TestClient(fastapi_app()) as client:
        headers = handshake_headers("ws://testserver/media", token=TOKENS["fastapi"])
        with client.websocket_connect("/media", headers=headers) as websocket:
            websocket.send_text(json.dumps(START))
            assert json.loads(websocket.receive_text()) == MARK
    sha256 = handshake_headers("wss://h/media", token="t", algorithm="HMAC_SHA256")
    assert sha256["X-Twilio-Webhooks-Signature-Settings"] == "algorithm=HMAC_SHA256"
    assert Validator("t").is_valid(
        "wss://h/media", b"", sha256["X-Twilio-Signature"], "algorithm=HMAC_SHA256"
    )
    with pytest.raises(ValueError, match="wss://"):
        handshake_headers("https://h/media", token="t")


@pytest.mark.parametrize(
    ("base_url", "forwarded_proto", "expected"),
    [
        (None, None, "ws://127.0.0.1:8000/media?x=1"),
        (None, "https", "wss://127.0.0.1:8000/media?x=1"),
        (None, "HTTPS", "wss://127.0.0.1:8000/media?x=1"),
        ("https://voice.example.com", None, "wss://voice.example.com/media?x=1"),
        ("http://voice.example.com/app", None, "ws://voice.example.com/app/media?x=1"),
    ],
)
def test_the_handshake_url_takes_the_websocket_scheme_of_the_public_scheme(
    base_url: str | None, forwarded_proto: str | None, expected: str
) -> None:
    from twilio_signature._web import Guard

    guard = Guard("fastapi", base_url=base_url, trust_proxy=True)
    lines = {"X-Twilio-Signature": ["x"], "X-Forwarded-Proto": [forwarded_proto] if forwarded_proto else []}
    url = guard.public_url(
        scheme="http",
        host="127.0.0.1:8000",
        target="/media?x=1",
        prefix="",
        remote_addr="127.0.0.1",
        header=lambda name: lines.get(name, []),
        websocket=True,
    )
    assert url == expected
