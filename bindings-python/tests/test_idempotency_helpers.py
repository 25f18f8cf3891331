"""Twilio retries answered once through the package's own web helpers and their ``idempotency=``
option: ``@validate_twilio_request(idempotency=...)`` (Flask, Django), Django's middleware with
``TWILIO_IDEMPOTENCY``, and ``TwilioSignature(idempotency=...)`` with its route class (FastAPI).

- Redis: separate app processes (Flask under Werkzeug, FastAPI under uvicorn, Django under wsgiref)
  share a real redis-server that the suite starts: a retry sent to another instance, of another
  framework, gets the first response byte for byte.
- Memory: each helper in one process over a ``MemoryStore``.

The apps are tests/idempotency_helper_apps.py; each test uses fresh idempotency tokens.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import idempotency_helper_apps
import pytest
from idempotency_support import (
    AUTH_TOKEN,
    WAIT,
    Counter,
    RedisServer,
    free_port,
    new_token,
    post,
    redis_client,
)

APPS = Path(__file__).with_name("idempotency_helper_apps.py")


class Instance:
    """One app process; its log (stderr) goes to a file."""

    def __init__(self, framework: str, args: list[str], log: Path) -> None:
        self.framework = framework
        self.port = free_port()
        self.log_path = log
        self.log = log.open("w")
        self.process = subprocess.Popen(
            [sys.executable, str(APPS), framework, str(self.port), *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.log,
            cwd=APPS.parent,
            # Django's app configures its own settings (conftest.py names the suite's module).
            env={k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"},
        )
        assert self.process.stdout is not None
        line = self.process.stdout.readline().strip()
        assert line == b"ready", f"{framework} did not start: {log.read_text()}"

    def log_text(self) -> str:
        return self.log_path.read_text()

    def stop(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.close()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.log.close()


@dataclass
class Fleet:
    """Instances sharing one store; ``prefix`` is put before each route (Django's middleware: /mw)."""

    name: str
    instances: list[Instance]
    counter: Counter
    prefix: str = ""
    redis: RedisServer | None = None
    refusing: list[Instance] = field(default_factory=list)

    def port(self, index: int) -> int:
        return self.instances[index % len(self.instances)].port

    def post(self, index: int, route: str, token: str | None, **kwargs: Any) -> Any:
        return post(self.port(index), self.prefix + route, token, **kwargs)

    def keys(self) -> list[bytes]:
        assert self.redis is not None
        return list(redis_client(self.redis.port).keys("tws-test:*"))


def _start(framework: str, kind: str, counts: Path, log: Path, *extra: str) -> Instance:
    return Instance(framework, [kind, str(counts), *extra], log)


@pytest.fixture(scope="module")
def redis_fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    tmp = tmp_path_factory.mktemp("helpers-redis")
    server = RedisServer()
    server.start()
    counts = tmp / "runs.txt"
    port = str(server.port)
    started: list[Instance] = []
    try:
        for framework in ("flask", "fastapi", "django"):
            started.append(_start(framework, "redis", counts, tmp / f"{framework}.log", port, "process"))
        for framework in ("flask", "fastapi"):
            log = tmp / f"{framework}-refuse.log"
            started.append(_start(framework, "redis", counts, log, port, "refuse"))
        yield Fleet("redis", started[:3], Counter(counts), redis=server, refusing=started[3:])
    finally:
        for instance in started:
            instance.stop()
        server.close()


MEMORY_APPS = ["flask", "fastapi", "django", "django-middleware"]


@pytest.fixture(scope="module")
def memory_apps(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Fleet]]:
    """Each helper in its own process over a MemoryStore, started on first use."""
    tmp = tmp_path_factory.mktemp("helpers-memory")
    fleets: dict[str, Fleet] = {}

    class Lazy(dict[str, Fleet]):
        def __missing__(self, name: str) -> Fleet:
            framework = name.split("-")[0]
            counts = tmp / f"{name}-runs.txt"
            instance = _start(framework, "memory", counts, tmp / f"{name}.log")
            prefix = "/mw" if name == "django-middleware" else ""
            fleets[name] = self[name] = Fleet(name, [instance], Counter(counts), prefix=prefix)
            return fleets[name]

    try:
        yield Lazy()
    finally:
        for found in fleets.values():
            found.instances[0].stop()


@pytest.fixture(params=["redis", *(f"memory-{name}" for name in MEMORY_APPS)])
def fleet(request: pytest.FixtureRequest) -> Fleet:
    """Every scenario runs over the Redis fleet (three frameworks, three processes) and over the
    MemoryStore of each helper in its own process."""
    name = str(request.param)
    if name == "redis":
        found: Any = request.getfixturevalue("redis_fleet")
    else:
        found = request.getfixturevalue("memory_apps")[name.removeprefix("memory-")]
    assert isinstance(found, Fleet)
    return found


def _runs(fleet: Fleet, token: str) -> int:
    return fleet.counter.runs(token)


def test_a_retry_gets_the_first_response_byte_identical_and_the_handler_runs_once(fleet: Fleet) -> None:
    # On the Redis fleet: first delivery on one framework, its retries on the two others.
    for first_index in range(len(fleet.instances)):
        token = new_token()
        first = fleet.post(first_index, "/voice", token)
        assert first.status == 200 and not first.replayed, first
        assert first.body.startswith(b'<?xml version="1.0" encoding="UTF-8"?><Response><Say>voice ')
        for offset in (1, 2):
            retry = fleet.post(first_index + offset, "/voice", token)
            assert retry.status == 200 and retry.replayed, (fleet.name, first_index, offset, retry)
            assert retry.body == first.body  # byte-identical TwiML
            assert retry.headers["content-type"] == first.headers["content-type"]
        assert _runs(fleet, token) == 1


def test_six_concurrent_deliveries_of_one_retry_run_the_handler_once(fleet: Fleet) -> None:
    # The handler takes 0.4 s, well inside the 2 s wait: every delivery gets the one response.
    token = new_token()
    with ThreadPoolExecutor(6) as pool:
        replies = list(pool.map(lambda i: fleet.post(i, "/voice?sleep=0.4", token), range(6)))
    assert [r.status for r in replies] == [200] * 6, replies
    assert len({r.body for r in replies}) == 1
    assert sum(not r.replayed for r in replies) == 1
    assert _runs(fleet, token) == 1


def test_identical_content_with_a_new_token_runs_again(fleet: Fleet) -> None:
    one, two = new_token(), new_token()
    first = fleet.post(0, "/voice", one)
    second = fleet.post(1, "/voice", two)
    assert first.status == second.status == 200 and not second.replayed
    assert first.body != second.body
    assert _runs(fleet, one) == _runs(fleet, two) == 1


def test_without_a_token_every_request_runs(fleet: Fleet) -> None:
    first, second = fleet.post(0, "/voice", None), fleet.post(1, "/voice", None)
    assert first.status == second.status == 200 and not second.replayed
    assert first.body != second.body


def test_a_forged_request_is_refused_and_stores_nothing(fleet: Fleet) -> None:
    before = fleet.keys() if fleet.redis is not None else None
    token = new_token()
    for index in range(len(fleet.instances)):
        assert fleet.post(index, "/voice", token, forge=True).status == 403
    assert _runs(fleet, token) == 0
    if fleet.redis is not None:
        assert fleet.keys() == before
    # The genuine delivery with that token is then a first delivery, not a replay.
    genuine = fleet.post(0, "/voice", token)
    assert genuine.status == 200 and not genuine.replayed and _runs(fleet, token) == 1


@pytest.mark.parametrize("route", ["/raise", "/error500"])
def test_a_failed_handler_stores_nothing_and_the_retry_runs_it_again(fleet: Fleet, route: str) -> None:
    token = new_token()
    for index in range(2):
        reply = fleet.post(index, route, token)
        assert reply.status == 500 and not reply.replayed
    assert _runs(fleet, token) == 2


def test_every_stored_key_has_a_ttl_and_nothing_secret(redis_fleet: Fleet) -> None:
    for index in range(len(redis_fleet.instances)):
        assert redis_fleet.post(index, "/voice", new_token()).status == 200
    assert redis_fleet.redis is not None
    client = redis_client(redis_fleet.redis.port)
    keys = redis_fleet.keys()
    assert len(keys) >= 3
    for key in keys:
        assert 0 < client.pttl(key) <= 24 * 3600 * 1000, key
        assert AUTH_TOKEN.encode() not in key + (client.get(key) or b"")


def test_redis_stopped_processes_by_default_refuses_with_the_option_and_recovers(
    redis_fleet: Fleet,
) -> None:
    assert redis_fleet.redis is not None
    redis_fleet.redis.stop()
    try:
        for instance in redis_fleet.instances:
            token = new_token()
            reply = post(instance.port, "/voice", token)
            assert reply.status == 200 and _runs(redis_fleet, token) == 1, (instance.framework, reply)
            log = instance.log_text()
            assert "ERROR twilio_signature.idempotency twilio webhook retry store failed (claim)" in log
            assert "processed unguarded" in log
        for instance in redis_fleet.refusing:
            token = new_token()
            reply = post(instance.port, "/voice", token)
            assert reply.status == 503 and not reply.replayed, (instance.framework, reply)
            assert _runs(redis_fleet, token) == 0
    finally:
        redis_fleet.redis.start()
    # Redis is back (empty: no persistence): every instance stores and replays again.
    for instance in redis_fleet.instances + redis_fleet.refusing:
        token = new_token()
        first = post(instance.port, "/voice", token)
        retry = redis_fleet.post(0 if instance.framework != "flask" else 1, "/voice", token)
        assert first.status == 200 and not first.replayed, (instance.framework, first)
        assert retry.replayed and retry.body == first.body, (instance.framework, retry)
        assert _runs(redis_fleet, token) == 1


def test_fastapi_a_route_without_the_route_class_fails_loudly(memory_apps: dict[str, Fleet]) -> None:
    memory_app = memory_apps["fastapi"]
    token = new_token()
    for _ in range(2):
        assert memory_app.post(0, "/misused", token).status == 500
    assert _runs(memory_app, token) == 0
    assert "TwilioSignature(idempotency=...) answers retries only on routes built by its route class" in (
        memory_app.instances[0].log_text()
    )
    # A route of the router that does not depend on the helper is left alone (no signature needed).
    reply = post_unsigned(memory_app.port(0), "/unguarded")
    assert reply == (200, b'{"ok":"no signature needed"}')


def post_unsigned(port: int, target: str) -> tuple[int, bytes]:
    import http.client

    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.request("POST", target, body=b"", headers={"Content-Length": "0"})
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def test_the_same_token_on_another_signed_url_is_another_delivery(fleet: Fleet) -> None:
    # The key is the digest of the verified request's replay key and the token, not the token alone.
    token = new_token()
    first = fleet.post(0, "/voice", token)
    other = fleet.post(1, "/voice?sleep=0", token)
    assert first.status == other.status == 200 and not other.replayed and first.body != other.body
    assert _runs(fleet, token) == 2
    assert fleet.post(1, "/voice", token).body == first.body


def test_a_retry_while_the_first_run_is_going_waits_then_gets_409(redis_fleet: Fleet) -> None:
    # Flask runs the first delivery for 3.5 s; the retry on FastAPI waits WAIT (2 s), then gets 409;
    # once the first run has finished, a retry on Django gets its response.
    token = new_token()
    with ThreadPoolExecutor(1) as pool:
        first = pool.submit(redis_fleet.post, 0, "/voice?sleep=3.5", token)
        deadline = time.monotonic() + 10
        while _runs(redis_fleet, token) == 0 and time.monotonic() < deadline:
            time.sleep(0.01)
        started = time.monotonic()
        busy = redis_fleet.post(1, "/voice?sleep=3.5", token)
        waited = time.monotonic() - started
        assert busy.status == 409 and not busy.replayed, busy
        # At least WAIT; the upper margin leaves room for a loaded machine (2 cores shared by
        # parallel builds once took 4.5 s here). The 409 itself shows it did not wait for the run.
        assert WAIT - 0.1 <= waited < WAIT + 3.0
        done = first.result(timeout=20)
    assert done.status == 200
    late = redis_fleet.post(2, "/voice?sleep=3.5", token)
    assert late.status == 200 and late.replayed and late.body == done.body
    assert _runs(redis_fleet, token) == 1


@pytest.mark.parametrize("store", ["memory", "redis"])
def test_fastapi_form_parameters_under_the_route_class(store: str, request: pytest.FixtureRequest) -> None:
    # (fixtures looked up by name: the memory case must not need Redis)
    found: Any = request.getfixturevalue("memory_apps")["fastapi"] if store == "memory" else None
    fleet: Fleet = found or request.getfixturevalue("redis_fleet")
    index = 0 if store == "memory" else 1  # the FastAPI instance
    token = new_token()
    first = fleet.post(index, "/form", token)
    retry = fleet.post(index, "/form", token)
    assert first.status == 200 and first.body.startswith(b"<Response><Say>1 "), first
    assert retry.replayed and retry.body == first.body
    assert _runs(fleet, token) == 1


def test_a_wrong_idempotency_value_is_refused_when_the_helper_is_built() -> None:
    from django.test import override_settings
    from twilio_signature import django as django_helpers
    from twilio_signature import flask as flask_helpers
    from twilio_signature.fastapi import TwilioSignature
    from twilio_signature.idempotency import MemoryStore

    for wrong in ("redis://localhost:6379", MemoryStore, 42):
        with pytest.raises(TypeError, match="idempotency= takes an idempotency store"):
            flask_helpers.validate_twilio_request(idempotency=wrong)  # type: ignore[call-overload]
        with pytest.raises(TypeError, match="idempotency= takes an idempotency store"):
            django_helpers.validate_twilio_request(idempotency=wrong)  # type: ignore[call-overload]
        with pytest.raises(TypeError, match="idempotency= takes an idempotency store"):
            TwilioSignature(idempotency=wrong)  # type: ignore[arg-type]
    with override_settings(TWILIO_IDEMPOTENCY=42), pytest.raises(TypeError, match="TWILIO_IDEMPOTENCY"):
        django_helpers.TwilioSignatureMiddleware(lambda request: None)  # type: ignore[arg-type,return-value]
    # A dotted path is imported; one naming a store object is accepted.
    with override_settings(TWILIO_IDEMPOTENCY="idempotency_helper_apps.PROBE_STORE"):
        middleware = django_helpers.TwilioSignatureMiddleware(lambda request: None)  # type: ignore[arg-type,return-value]
    assert middleware.retries is not None and middleware.retries.store is idempotency_helper_apps.PROBE_STORE


@pytest.mark.parametrize("name", ["django", "django-middleware"])
def test_django_a_template_response_is_rendered_stored_and_replayed(
    name: str, memory_apps: dict[str, Fleet]
) -> None:
    fleet = memory_apps[name]
    token = new_token()
    first = fleet.post(0, "/template", token)
    retry = fleet.post(0, "/template", token)
    assert first.status == 200 and first.body.startswith(b"<Response><Say>template "), first
    assert retry.replayed and retry.body == first.body
    assert retry.headers["content-type"] == first.headers["content-type"] == "text/xml"
    assert _runs(fleet, token) == 1
