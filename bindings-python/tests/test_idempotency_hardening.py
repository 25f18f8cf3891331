"""Issue 24 item 4 (rule R2) through real servers on loopback and a real redis-server:

- a claim that redis-py re-sends after its reply was lost (redis-server paused with SIGSTOP) finds its
  own owner and is ours: the handler runs once and the delivery is not answered 409;
- a MemoryStore full of deliveries still running evicts none of them (the store-failure policy decides
  for the new one), so a retry never runs the handler beside its first run;
- a replayed 302 keeps its Location and each Set-Cookie (Flask, Django, FastAPI; over Redis, so the
  stored layout v2 is written and read);
- a claim whose complete fails, or whose async request is cancelled after claiming, is released.
"""

# No `from __future__ import annotations`: FastAPI reads the endpoints' annotations at runtime.

import asyncio
import http.client
import logging
import os
import signal
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

import django_app
import flask
import pytest
from fastapi import APIRouter, Depends, FastAPI
from fastapi.responses import RedirectResponse
from idempotency_support import (
    AUTH_TOKEN,
    BASE_URL,
    BODY,
    WAIT,
    Counter,
    RedisServer,
    make_app,
    new_token,
    post,
    redis_client,
    serve,
)
from test_hostile import _serve_asgi, _serve_wsgi
from twilio_signature import Validator, Verified
from twilio_signature.fastapi import TwilioSignature
from twilio_signature.flask import validate_twilio_request
from twilio_signature.idempotency import (
    REPLAYED_HEADER,
    Claim,
    Idempotency,
    IdempotencyStore,
    MemoryStore,
    RedisStore,
    StoredResponse,
    StoreError,
    delivery_key,
)
from werkzeug.serving import make_server as werkzeug_server


@pytest.fixture(scope="module")
def redis_server() -> Iterator[RedisServer]:
    server = RedisServer()
    server.start()
    try:
        yield server
    finally:
        if server.process is not None:
            os.kill(server.process.pid, signal.SIGCONT)  # never leave it stopped
        server.close()


def _serve_in_thread(app: Any) -> Iterator[int]:
    server = serve(app, 0)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield int(server.server_port)
    server.shutdown()


# -- a retried claim finds its own owner ------------------------------------------------------------


def test_a_claim_redis_py_resends_after_a_lost_reply_is_ours(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    """redis-server is stopped while the claim is in flight: redis-py's read times out after 1 s and it
    sends the claim again on a new connection; at 1.5 s the server resumes and runs both. The second
    finds the first's value (this delivery's own owner): ours, so the handler runs now, once."""
    assert redis_server.process is not None
    counter = Counter(tmp_path / "runs.txt")
    retries = Idempotency(RedisStore(redis_client(redis_server.port), prefix="tws-test:"), wait=WAIT)
    gen = _serve_in_thread(make_app(retries, counter))
    port = next(gen)
    try:
        warm = new_token()  # loads the Lua scripts, so the paused claim is a plain EVALSHA
        assert post(port, "/voice", warm).status == 200
        token = new_token()
        replies: list[Any] = []
        thread = threading.Thread(target=lambda: replies.append(post(port, "/voice", token)))
        os.kill(redis_server.process.pid, signal.SIGSTOP)
        try:
            thread.start()
            time.sleep(1.5)
        finally:
            os.kill(redis_server.process.pid, signal.SIGCONT)
        thread.join(timeout=30)
        assert len(replies) == 1
        assert replies[0].status == 200, replies[0]
        assert counter.runs(token) == 1
        # Its response was stored under the claim: a retry gets it and runs nothing.
        retry = post(port, "/voice", token)
        assert retry.status == 200 and retry.replayed and retry.body == replies[0].body
        assert counter.runs(token) == 1
    finally:
        next(gen, None)


# -- MemoryStore: live claims are never evicted ---------------------------------------------------------


def _flask_slow_app(retries: Idempotency, runs: Counter) -> flask.Flask:
    app = flask.Flask("memory_full")

    @app.post("/voice")
    @validate_twilio_request(token=AUTH_TOKEN, base_url=BASE_URL, idempotency=retries)
    def voice() -> flask.Response:
        runs.add("/voice", flask.request.headers.get("I-Twilio-Idempotency-Token", "-"))
        time.sleep(float(flask.request.args.get("sleep", "0")))
        return flask.Response(f"<Response>{uuid.uuid4().hex}</Response>", content_type="text/xml")

    return app


@pytest.mark.parametrize("policy", ["process", "refuse"])
def test_a_full_memory_store_evicts_no_running_delivery(
    policy: Any, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    counter = Counter(tmp_path / "runs.txt")
    retries = Idempotency(MemoryStore(max_entries=2), wait=5, on_store_error=policy)
    gen = _serve_wsgi(werkzeug_server("127.0.0.1", 0, _flask_slow_app(retries, counter), threaded=True))
    port = next(gen)
    try:
        first, second, third = new_token(), new_token(), new_token()
        replies: dict[str, Any] = {}

        def deliver(name: str, token: str) -> None:
            replies[name] = post(port, "/voice?sleep=3", token)  # long enough on a loaded machine

        running = [threading.Thread(target=deliver, args=(n, t)) for n, t in (("a", first), ("b", second))]
        for thread in running:
            thread.start()
        deadline = time.monotonic() + 10
        while counter.runs(first) + counter.runs(second) < 2:
            assert time.monotonic() < deadline, "the first deliveries did not start"
            time.sleep(0.02)
        # The store holds two live claims: a third delivery cannot claim.
        with caplog.at_level(logging.ERROR, logger="twilio_signature.idempotency"):
            deliver("c", third)
        errors = [r.getMessage() for r in caplog.records if r.name == "twilio_signature.idempotency"]
        assert any("memory store full: 2 deliveries in flight" in line for line in errors), errors
        if policy == "process":
            assert replies["c"].status == 200 and counter.runs(third) == 1
        else:
            assert replies["c"].status == 503 and counter.runs(third) == 0
        # A retry of a delivery still running waits for it (the claim was not evicted) and gets its
        # response: the handler never runs twice.
        deliver("retry", first)
        for thread in running:
            thread.join(timeout=30)
        assert replies["retry"].status == 200 and replies["retry"].replayed
        assert replies["retry"].body == replies["a"].body
        assert counter.runs(first) == 1 and counter.runs(second) == 1
    finally:
        next(gen, None)


# -- replays keep the response's headers -----------------------------------------------------------------

REDIRECT = "/next?step=2"


def _post_lines(port: int, target: str, token: str) -> tuple[int, list[tuple[str, str]], bytes]:
    """POST a signed request; the status, every header line (each Set-Cookie apart) and the body."""
    signature = Validator(AUTH_TOKEN).sign(BASE_URL + target, BODY)
    headers = {
        "Content-Type": "application/x-www-form-urlencoded",
        "X-Twilio-Signature": signature,
        "I-Twilio-Idempotency-Token": token,
    }
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        connection.request("POST", target, body=BODY, headers=headers)
        response = connection.getresponse()
        return response.status, [(k.lower(), v) for k, v in response.getheaders()], response.read()
    finally:
        connection.close()


def _flask_redirect_app(retries: Idempotency) -> flask.Flask:
    app = flask.Flask("redirects")

    @app.post("/redirect")
    @validate_twilio_request(token=AUTH_TOKEN, base_url=BASE_URL, idempotency=retries)
    def redirect() -> flask.Response:
        django_app.RUNS["flask-redirect"] += 1
        response = flask.redirect(REDIRECT, code=302)
        response.set_cookie("a", "1")
        response.set_cookie("b", "2")
        response.headers["Cache-Control"] = "no-store"
        return response

    return app


def _fastapi_redirect_app(retries: Idempotency) -> FastAPI:
    twilio = TwilioSignature(token=AUTH_TOKEN, base_url=BASE_URL, idempotency=retries)
    router = APIRouter(route_class=twilio.route_class)

    @router.post("/redirect")
    async def redirect(verified: Annotated[Verified, Depends(twilio)]) -> RedirectResponse:
        django_app.RUNS["fastapi-redirect"] += 1
        response = RedirectResponse(REDIRECT, status_code=302, headers={"Cache-Control": "no-store"})
        response.set_cookie("a", "1")
        response.set_cookie("b", "2")
        return response

    app = FastAPI()
    app.include_router(router)
    return app


@pytest.mark.parametrize("framework", ["flask", "django", "fastapi"])
def test_a_replayed_302_keeps_location_and_each_set_cookie(redis_server: RedisServer, framework: str) -> None:
    store = RedisStore(redis_client(redis_server.port), prefix=f"redirect-{uuid.uuid4().hex}:")
    retries = Idempotency(store, wait=WAIT)
    if framework == "flask":
        gen = _serve_wsgi(werkzeug_server("127.0.0.1", 0, _flask_redirect_app(retries), threaded=True))
    elif framework == "fastapi":
        gen = _serve_asgi(_fastapi_redirect_app(retries))
    else:
        from django.core.handlers.wsgi import WSGIHandler

        django_app.REDIRECT_RETRIES.store = store  # the decorated view's driver, over this Redis
        gen = _serve_wsgi(werkzeug_server("127.0.0.1", 0, WSGIHandler(), threaded=True))
    port = next(gen)
    runs = f"{framework}-redirect"
    try:
        token = new_token()
        status, first, body = _post_lines(port, "/redirect", token)
        assert status == 302 and django_app.RUNS[runs] == 1
        status, replayed, replayed_body = _post_lines(port, "/redirect", token)
        assert status == 302 and replayed_body == body and django_app.RUNS[runs] == 1
        assert (REPLAYED_HEADER.lower(), "true") in replayed

        def kept(lines: list[tuple[str, str]]) -> list[tuple[str, str]]:
            # Stored by name; the lines of one name (each Set-Cookie) keep their order.
            lines = [(n, v) for n, v in lines if n in ("location", "set-cookie", "cache-control")]
            return sorted(lines, key=lambda line: line[0])

        assert kept(replayed) == kept(first)
        assert [v for n, v in replayed if n == "location"] == [REDIRECT]
        cookies = [v.split(";")[0] for n, v in replayed if n == "set-cookie"]
        assert cookies == ["a=1", "b=2"]
        # In Redis: layout v2 (0xFF 0x02 after the "D" of a stored response).
        (key,) = redis_client(redis_server.port).keys(store.prefix + "*")
        assert redis_client(redis_server.port).get(key)[:3] == b"D\xff\x02"
    finally:
        next(gen, None)


# -- released claims ---------------------------------------------------------------------------------------


class CompleteFails:
    """A MemoryStore whose complete fails (a store that went down after the claim)."""

    def __init__(self) -> None:
        self.memory = MemoryStore()
        self.releases = 0

    def claim(self, key: str, owner: str, lease: float) -> StoredResponse | Claim:
        return self.memory.claim(key, owner, lease)

    def complete(self, key: str, owner: str, response: StoredResponse) -> bool:
        raise StoreError("connection lost")

    def release(self, key: str, owner: str) -> bool:
        self.releases += 1
        return self.memory.release(key, owner)


def test_a_claim_whose_complete_fails_is_released(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    store = CompleteFails()
    counter = Counter(tmp_path / "runs.txt")
    retries = Idempotency(store, wait=5)
    gen = _serve_wsgi(werkzeug_server("127.0.0.1", 0, _flask_slow_app(retries, counter), threaded=True))
    port = next(gen)
    try:
        token = new_token()
        with caplog.at_level(logging.ERROR, logger="twilio_signature.idempotency"):
            assert post(port, "/voice", token).status == 200
        assert any("store failed (complete)" in r.getMessage() for r in caplog.records)
        assert store.releases == 1
        # The retry is not left waiting for a claim nobody will complete (5 s, then 409): it runs.
        started = time.monotonic()
        retry = post(port, "/voice", token)
        assert retry.status == 200 and not retry.replayed and counter.runs(token) == 2
        assert time.monotonic() - started < 2
    finally:
        next(gen, None)


def _free(store: IdempotencyStore, key: str) -> bool:
    """Whether ``key`` can be claimed now (and frees it again)."""
    if store.claim(key, "probe", 30) is not Claim.OURS:
        return False
    store.release(key, "probe")
    return True


@pytest.mark.parametrize("kind", ["memory", "redis"])
def test_an_async_request_cancelled_in_its_handler_releases_its_claim(
    kind: str, redis_server: RedisServer
) -> None:
    store: IdempotencyStore = (
        MemoryStore() if kind == "memory" else RedisStore(redis_client(redis_server.port), prefix="cancel:")
    )
    retries = Idempotency(store)
    replay_key, token = bytes(range(32)), new_token()
    started = asyncio.Event()

    async def handler() -> StoredResponse:
        started.set()
        await asyncio.sleep(30)
        return StoredResponse(200, "text/xml", b"<Response/>")

    async def scenario() -> None:
        task = asyncio.ensure_future(retries.run_async(replay_key, token, handler, lambda r: r))
        await asyncio.wait_for(started.wait(), 10)
        assert not _free(store, delivery_key(replay_key, token))  # claimed
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(scenario())
    assert _free(store, delivery_key(replay_key, token))


def test_an_async_request_cancelled_while_its_claim_is_in_flight_releases_it(
    redis_server: RedisServer,
) -> None:
    """Cancelled while the claim waits on a paused redis-server in its worker thread: the claim
    still lands when Redis resumes, and the driver frees it before the cancellation goes on."""
    assert redis_server.process is not None
    store = RedisStore(redis_client(redis_server.port), prefix="cancel-claim:")
    retries = Idempotency(store)
    replay_key, token = bytes(range(32)), new_token()
    assert _free(store, delivery_key(bytes(32), new_token()))  # scripts loaded

    async def handler() -> StoredResponse:
        raise AssertionError("the handler ran")

    async def scenario() -> None:
        task = asyncio.ensure_future(retries.run_async(replay_key, token, handler, lambda r: r))
        os.kill(redis_server.process.pid, signal.SIGSTOP)  # type: ignore[union-attr]
        try:
            await asyncio.sleep(0.3)  # the claim is sent and waits for its reply
            task.cancel()
            await asyncio.sleep(0.2)
        finally:
            os.kill(redis_server.process.pid, signal.SIGCONT)  # type: ignore[union-attr]
        with pytest.raises(asyncio.CancelledError):
            await asyncio.wait_for(task, 20)

    asyncio.run(scenario())
    assert _free(store, delivery_key(replay_key, token))
