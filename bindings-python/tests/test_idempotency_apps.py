"""Twilio retries answered once, through real servers: two app processes sharing a real redis-server,
and one in-process server over the MemoryStore (its threads play both instances).

Each test uses fresh idempotency tokens, so tests share the servers without seeing each other's keys.
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from idempotency_support import (
    AUTH_TOKEN,
    BIG_BODY,
    WAIT,
    Counter,
    RedisServer,
    free_port,
    make_app,
    new_token,
    post,
    redis_client,
    serve,
    wait_for_port,
)
from twilio_signature.idempotency import Idempotency, MemoryStore

SUPPORT = Path(__file__).with_name("idempotency_support.py")


@dataclass
class Fleet:
    """The instances a test talks to: ``ports[0]`` and ``ports[1]`` share one store."""

    kind: str
    ports: list[int]
    counter: Counter
    redis: RedisServer | None = None
    refuse_port: int | None = None
    logs: list[Path] = field(default_factory=list)
    memory: MemoryStore | None = None

    def keys(self) -> int:
        if self.memory is not None:
            return len(self.memory)
        assert self.redis is not None
        return len(redis_client(self.redis.port).keys("tws-test:*"))

    def log_text(self) -> str:
        return "".join(path.read_text() for path in self.logs)


class _Instance:
    def __init__(self, args: list[str], log: Path) -> None:
        self.log = log.open("w")
        self.process = subprocess.Popen(
            [sys.executable, str(SUPPORT), *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.log,
        )
        assert self.process.stdout is not None
        assert self.process.stdout.readline().strip() == b"ready"

    def stop(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.close()
        self.process.wait(timeout=10)
        self.log.close()


@pytest.fixture(scope="module")
def redis_fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    tmp = tmp_path_factory.mktemp("redis-fleet")
    server = RedisServer()
    server.start()
    counts = tmp / "runs.txt"
    ports = [free_port(), free_port(), free_port()]
    instances: list[_Instance] = []
    try:
        for index, port in enumerate(ports):
            mode = "refuse" if index == 2 else "process"
            args = [str(port), "redis", str(counts), str(server.port), mode]
            instances.append(_Instance(args, tmp / f"instance{index}.log"))
            wait_for_port(port)
        yield Fleet(
            "redis",
            ports[:2],
            Counter(counts),
            redis=server,
            refuse_port=ports[2],
            logs=[tmp / f"instance{i}.log" for i in range(3)],
        )
    finally:
        for instance in instances:
            instance.stop()
        server.close()


@pytest.fixture(scope="module")
def memory_fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    counts = tmp_path_factory.mktemp("memory-fleet") / "runs.txt"
    store = MemoryStore()
    counter = Counter(counts)
    server = serve(make_app(Idempotency(store, wait=WAIT), counter), free_port())
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    port = server.server_address[1]
    assert isinstance(port, int)
    try:
        yield Fleet("memory", [port, port], counter, memory=store)
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(params=["memory", "redis"])
def fleet(request: pytest.FixtureRequest) -> Fleet:
    fixture: Any = request.getfixturevalue(f"{request.param}_fleet")
    assert isinstance(fixture, Fleet)
    return fixture


def test_first_delivery_runs_and_a_retry_on_the_other_instance_gets_its_response(fleet: Fleet) -> None:
    token = new_token()
    first = post(fleet.ports[0], "/voice", token)
    assert first.status == 200 and b"<Say>run " in first.body and not first.replayed
    retry = post(fleet.ports[1], "/voice", token)
    assert retry.status == 200 and retry.replayed
    assert retry.body == first.body  # byte-identical TwiML
    assert retry.headers["content-type"] == "text/xml"
    assert fleet.counter.runs(token) == 1


def test_six_concurrent_deliveries_of_one_retry_run_the_handler_once(fleet: Fleet) -> None:
    # The handler takes 0.4 s, well inside the 2 s wait: every delivery gets the one response.
    token = new_token()
    with ThreadPoolExecutor(6) as pool:
        replies = list(pool.map(lambda i: post(fleet.ports[i % 2], "/voice?sleep=0.4", token), range(6)))
    assert [r.status for r in replies] == [200] * 6
    assert len({r.body for r in replies}) == 1
    assert sum(not r.replayed for r in replies) == 1
    assert fleet.counter.runs(token) == 1


def test_a_retry_waits_then_gets_409_while_the_first_run_is_still_going(fleet: Fleet, tmp_path: Path) -> None:
    token = new_token()
    gate = tmp_path / "gate"
    target = f"/block?gate={gate}"
    with ThreadPoolExecutor(1) as pool:
        first = pool.submit(post, fleet.ports[0], target, token)
        deadline = time.monotonic() + 10
        while fleet.counter.runs(token) == 0 and time.monotonic() < deadline:
            time.sleep(0.01)
        started = time.monotonic()
        retry = post(fleet.ports[1], target, token)
        waited = time.monotonic() - started
        assert retry.status == 409
        assert WAIT - 0.1 <= waited < WAIT + 3
        gate.touch()
        assert first.result(timeout=20).status == 200
    late = post(fleet.ports[1], target, token)
    assert late.status == 200 and late.replayed and late.body == first.result().body
    assert fleet.counter.runs(token) == 1


def test_identical_content_with_a_new_token_runs_again(fleet: Fleet) -> None:
    first, second = new_token(), new_token()
    one = post(fleet.ports[0], "/voice", first)
    two = post(fleet.ports[1], "/voice", second)
    assert one.status == two.status == 200 and not two.replayed and one.body != two.body
    assert fleet.counter.runs(first) == fleet.counter.runs(second) == 1


def test_without_a_token_the_request_is_processed_unguarded(fleet: Fleet) -> None:
    before = fleet.keys()
    one = post(fleet.ports[0], "/voice", None)
    two = post(fleet.ports[1], "/voice", None)
    assert one.status == two.status == 200 and one.body != two.body
    assert fleet.keys() == before


def test_a_forged_request_stores_nothing(fleet: Fleet) -> None:
    before = fleet.keys()
    token = new_token()
    assert post(fleet.ports[0], "/voice", token, forge=True).status == 403
    assert fleet.keys() == before and fleet.counter.runs(token) == 0


@pytest.mark.parametrize("route", ["/raise", "/error500"])
def test_a_failed_handler_stores_nothing_and_its_retry_runs_again(fleet: Fleet, route: str) -> None:
    token = new_token()
    assert post(fleet.ports[0], route, token).status == 500
    assert post(fleet.ports[1], route, token).status == 500
    assert fleet.counter.runs(token) == 2


def test_a_retry_after_a_failure_runs_and_then_its_success_is_replayed(fleet: Fleet) -> None:
    token = new_token()
    assert post(fleet.ports[0], "/flaky", token).status == 503
    ok = post(fleet.ports[1], "/flaky", token)
    assert ok.status == 200 and not ok.replayed
    again = post(fleet.ports[0], "/flaky", token)
    assert again.replayed and again.body == ok.body
    assert fleet.counter.runs(token) == 2


def test_a_body_over_max_body_is_sent_but_not_stored(fleet: Fleet) -> None:
    token = new_token()
    one = post(fleet.ports[0], "/big", token)
    assert one.status == 200 and len(one.body) > BIG_BODY
    two = post(fleet.ports[1], "/big", token)
    assert two.status == 200 and not two.replayed
    assert fleet.counter.runs(token) == 2


def test_every_stored_key_has_a_ttl(fleet: Fleet) -> None:
    token = new_token()
    assert post(fleet.ports[0], "/voice", token).status == 200
    if fleet.memory is not None:
        ttls = [fleet.memory.ttl_of(key) for key in list(fleet.memory._entries)]
        assert ttls and all(t is not None and 0 < t <= 24 * 3600 for t in ttls)
        return
    assert fleet.redis is not None
    client = redis_client(fleet.redis.port)
    keys = client.keys("tws-test:*")
    assert keys
    for key in keys:
        assert 0 < client.pttl(key) <= 24 * 3600 * 1000, key
    # Nothing secret: the keys are digests, the values the responses sent.
    assert all(AUTH_TOKEN.encode() not in key + (client.get(key) or b"") for key in keys)


def test_redis_stopped_processes_by_default_refuses_with_the_option_and_recovers(
    redis_fleet: Fleet,
) -> None:
    assert redis_fleet.redis is not None and redis_fleet.refuse_port is not None
    redis_fleet.redis.stop()
    try:
        token = new_token()
        processed = post(redis_fleet.ports[0], "/voice", token)
        assert processed.status == 200 and redis_fleet.counter.runs(token) == 1
        assert "twilio webhook retry store failed (claim)" in redis_fleet.log_text()
        refused_token = new_token()
        refused = post(redis_fleet.refuse_port, "/voice", refused_token)
        assert refused.status == 503 and redis_fleet.counter.runs(refused_token) == 0
    finally:
        redis_fleet.redis.start()
    # Redis is back (empty: no persistence): both instances store and replay again.
    for port in (redis_fleet.ports[0], redis_fleet.refuse_port):
        token = new_token()
        first = post(port, "/voice", token)
        retry = post(redis_fleet.ports[1], "/voice", token)
        assert first.status == 200 and retry.replayed and retry.body == first.body
        assert redis_fleet.counter.runs(token) == 1
