"""Real parts for the retry tests: a redis-server on a free loopback port, and a small WSGI app that
verifies Twilio's signature and runs its handler through ``Idempotency``.

Run as a program it serves that app (one "instance" of a fleet)::

    python idempotency_support.py PORT STORE COUNTS_FILE [redis-port] [process|refuse]

and prints ``ready`` once it listens.
"""

from __future__ import annotations

import http.client
import importlib.util
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from socketserver import ThreadingMixIn
from typing import Any, Literal
from urllib.parse import parse_qs
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import pytest
from twilio_signature import SignatureError, Validator
from twilio_signature.idempotency import (
    REPLAYED_HEADER,
    Idempotency,
    IdempotencyStore,
    MemoryStore,
    RedisStore,
    StoredResponse,
)

AUTH_TOKEN = "12345678901234567890123456789012"
BASE_URL = "https://hooks.example.com"
"""Every instance sits behind this public URL, so a retry verifies the same on any of them."""
WAIT = 2.0
"""How long a retry waits for a run in progress in these apps (short, to test the 409)."""
BIG_BODY = 70 * 1024

Handled = tuple[int, str, bytes]


BODY = b"CallSid=CA0123456789abcdef0123456789abcdef&Digits=1&From=%2B15005550006"


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes

    @property
    def replayed(self) -> bool:
        return self.headers.get(REPLAYED_HEADER.lower()) == "true"


def post(port: int, target: str, token: str | None, *, body: bytes = BODY, forge: bool = False) -> Reply:
    signature = Validator(AUTH_TOKEN).sign(BASE_URL + target, body)
    if forge:
        signature = ("A" if signature[0] != "A" else "B") + signature[1:]
    headers = {"Content-Type": "application/x-www-form-urlencoded", "X-Twilio-Signature": signature}
    if token is not None:
        headers["I-Twilio-Idempotency-Token"] = token
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        connection.request("POST", target, body=body, headers=headers)
        response = connection.getresponse()
        return Reply(response.status, {k.lower(): v for k, v in response.getheaders()}, response.read())
    finally:
        connection.close()


def new_token() -> str:
    return f"AC{uuid.uuid4().hex}-{uuid.uuid4()}"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.02)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port}")


def require_redis() -> None:
    """Skip the calling test without redis-server or the ``redis`` package, unless
    ``TWILIOSIG_REQUIRE_REDIS=1`` (``make test-idempotency`` sets it): then fail."""
    missing = []
    if shutil.which("redis-server") is None:
        missing.append("redis-server (apt-get install redis-server)")
    if importlib.util.find_spec("redis") is None:
        missing.append("the redis package (pip install redis)")
    if not missing:
        return
    reason = f"Redis tests need {' and '.join(missing)}; `make test-idempotency` installs both"
    if os.environ.get("TWILIOSIG_REQUIRE_REDIS") == "1":
        pytest.fail(reason + " (TWILIOSIG_REQUIRE_REDIS=1)")
    pytest.skip(reason)


class RedisServer:
    """A redis-server of our own on a free loopback port: no persistence, stopped on ``stop()``."""

    def __init__(self) -> None:
        require_redis()
        self.binary = shutil.which("redis-server")
        self.port = free_port()
        self.dir = tempfile.mkdtemp(prefix="tws-redis-")
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        assert self.binary is not None
        self.process = subprocess.Popen(
            [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", self.dir, "--loglevel", "warning"],
            stdout=subprocess.DEVNULL,
        )  # fmt: skip
        wait_for_port(self.port)

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=10)
            self.process = None

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


def redis_client(port: int) -> Any:
    """A client that fails fast when Redis is down (no backoff, one retry on a fresh connection,
    one-second timeouts): a webhook must not wait out the client's default backoff."""
    import redis
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    return redis.Redis(
        host="127.0.0.1",
        port=port,
        socket_timeout=1.0,
        socket_connect_timeout=1.0,
        retry=Retry(NoBackoff(), 1),
    )


class Counter:
    """Counts handler runs per token in a file shared by every instance (one append per run)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def add(self, route: str, token: str) -> None:
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            os.write(fd, f"{route} {token}\n".encode())
        finally:
            os.close(fd)

    def runs(self, token: str) -> int:
        if not self.path.exists():
            return 0
        return sum(1 for line in self.path.read_text().splitlines() if line.split(" ")[1] == token)


def handle(route: str, query: dict[str, list[str]], token: str, counter: Counter) -> Handled:
    """The app's webhook handlers; every run is counted, and the TwiML carries a fresh nonce so a
    second run would not give the same bytes."""
    runs_before = counter.runs(token)
    counter.add(route, token)
    nonce = uuid.uuid4().hex
    if route == "/voice":
        time.sleep(float(query.get("sleep", ["0"])[0]))
        twiml = f'<?xml version="1.0" encoding="UTF-8"?><Response><Say>run {nonce}</Say></Response>'
        return 200, "text/xml", twiml.encode()
    if route == "/block":
        gate = Path(query["gate"][0])
        deadline = time.monotonic() + 15
        while not gate.exists() and time.monotonic() < deadline:
            time.sleep(0.02)
        return 200, "text/xml", f"<Response><Say>after gate {nonce}</Say></Response>".encode()
    if route == "/raise":
        raise RuntimeError("handler failed")
    if route == "/error500":
        return 500, "text/plain", b"database down"
    if route == "/flaky":
        if runs_before == 0:
            return 503, "text/plain", b"try again"
        return 200, "text/xml", f"<Response><Message>ok {nonce}</Message></Response>".encode()
    if route == "/big":
        return 200, "application/octet-stream", nonce.encode() * (BIG_BODY // 32 + 1)
    return 404, "text/plain", b"no such route"


def make_app(idempotency: Idempotency, counter: Counter) -> Callable[..., Iterable[bytes]]:
    validator = Validator(AUTH_TOKEN)

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length) if length else b""
        route = environ.get("PATH_INFO", "")
        query = environ.get("QUERY_STRING", "")
        url = BASE_URL + route + (f"?{query}" if query else "")
        try:
            verified = validator.verify(url, body, environ.get("HTTP_X_TWILIO_SIGNATURE"))
        except SignatureError:
            start_response("403 Forbidden", [("Content-Type", "text/plain")])
            return [b"forged\n"]
        token = environ.get("HTTP_I_TWILIO_IDEMPOTENCY_TOKEN")
        headers: list[tuple[str, str]] = []
        try:
            result = idempotency.run(
                verified.replay_key,
                token,
                lambda: handle(route, parse_qs(query), token or "-", counter),
                lambda r: StoredResponse(*r),
            )
        except RuntimeError:
            result = (500, "text/plain", b"internal error")
        if isinstance(result, StoredResponse):
            if result.replayed:  # not the driver's own 409 / 503
                headers.append((REPLAYED_HEADER, "true"))
            status, content_type, payload = result.status, result.content_type or "", result.body
        else:
            status, content_type, payload = result
        headers += [("Content-Type", content_type), ("Content-Length", str(len(payload)))]
        start_response(f"{status} X", headers)
        return [payload]

    return app


class _ThreadingServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


def serve(app: Callable[..., Iterable[bytes]], port: int) -> _ThreadingServer:
    server = make_server("127.0.0.1", port, app, server_class=_ThreadingServer, handler_class=_QuietHandler)
    assert isinstance(server, _ThreadingServer)
    return server


def build_store(kind: str, redis_port: int | None) -> IdempotencyStore:
    if kind == "memory":
        return MemoryStore()
    assert redis_port is not None
    return RedisStore(redis_client(redis_port), prefix="tws-test:")


def main(argv: list[str]) -> None:
    import logging

    port, kind, counts = int(argv[1]), argv[2], Path(argv[3])
    redis_port = int(argv[4]) if len(argv) > 4 else None
    mode: Literal["process", "refuse"] = "refuse" if argv[5:] == ["refuse"] else "process"
    logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="%(levelname)s %(message)s")
    idempotency = Idempotency(build_store(kind, redis_port), wait=WAIT, on_store_error=mode)
    server = serve(make_app(idempotency, Counter(counts)), port)
    print("ready", flush=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    sys.stdin.read()  # until the test closes our stdin
    server.shutdown()


if __name__ == "__main__":
    main(sys.argv)
