"""The async driver where FastAPI users will meet it: a FastAPI app served by uvicorn on loopback whose
route class verifies the request and runs the endpoint through ``Idempotency.run_async`` (the shape the
``TwilioSignature(idempotency=...)`` wiring takes), over the MemoryStore and over a real Redis."""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections.abc import Callable, Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import uvicorn
from fastapi import FastAPI, HTTPException, Request, Response
from fastapi.routing import APIRoute
from idempotency_support import (
    AUTH_TOKEN,
    BASE_URL,
    RedisServer,
    free_port,
    new_token,
    post,
    redis_client,
    wait_for_port,
)
from twilio_signature import SignatureError, Validator
from twilio_signature.idempotency import (
    REPLAYED_HEADER,
    TOKEN_HEADER,
    Idempotency,
    IdempotencyStore,
    MemoryStore,
    RedisStore,
    StoredResponse,
)


def capture(response: Response) -> StoredResponse | None:
    """A Starlette response as stored; a streamed one (no ``body``) cannot be."""
    body = getattr(response, "body", None)
    if not isinstance(body, bytes):
        return None
    return StoredResponse(response.status_code, response.headers.get("content-type"), body)


def send(stored: StoredResponse) -> Response:
    response = Response(stored.body, status_code=stored.status, media_type=stored.content_type)
    response.headers[REPLAYED_HEADER] = "true"
    return response


def idempotent_route(idempotency: Idempotency) -> type[APIRoute]:
    validator = Validator(AUTH_TOKEN)

    class IdempotentRoute(APIRoute):
        def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
            endpoint = super().get_route_handler()

            async def route(request: Request) -> Response:
                query = request.url.query
                url = BASE_URL + request.url.path + (f"?{query}" if query else "")
                try:
                    verified = validator.verify(
                        url, await request.body(), request.headers.get("X-Twilio-Signature")
                    )
                except SignatureError:
                    raise HTTPException(403, "forged") from None
                result = await idempotency.run_async(
                    verified.replay_key, request.headers.get(TOKEN_HEADER), lambda: endpoint(request), capture
                )
                return send(result) if isinstance(result, StoredResponse) else result

            return route

    return IdempotentRoute


class AsgiApp:
    def __init__(self, store: IdempotencyStore) -> None:
        self.store = store
        self.runs: dict[str, int] = {}
        app = FastAPI()
        app.router.route_class = idempotent_route(Idempotency(store, wait=3))

        @app.post("/voice")
        async def voice(request: Request) -> Response:
            token = request.headers.get(TOKEN_HEADER, "-")
            self.runs[token] = self.runs.get(token, 0) + 1
            await asyncio.sleep(float(request.query_params.get("sleep", "0")))
            twiml = f"<Response><Say>run {uuid.uuid4().hex}</Say></Response>"
            return Response(twiml, media_type="text/xml")

        @app.post("/raise")
        async def fail() -> Response:
            self.runs["raise"] = self.runs.get("raise", 0) + 1
            raise RuntimeError("handler failed")

        self.port = free_port()
        self.server = uvicorn.Server(
            uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="critical")
        )
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        wait_for_port(self.port)

    def close(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


@pytest.fixture(params=["memory", "redis"], scope="module")
def asgi(request: pytest.FixtureRequest) -> Iterator[AsgiApp]:
    server: RedisServer | None = None
    if request.param == "memory":
        store: IdempotencyStore = MemoryStore()
    else:
        server = RedisServer()
        server.start()
        store = RedisStore(redis_client(server.port), prefix="asgi:")
    app = AsgiApp(store)
    try:
        yield app
    finally:
        app.close()
        if server is not None:
            server.close()


def test_fastapi_first_delivery_runs_and_its_retry_gets_the_same_bytes(asgi: AsgiApp) -> None:
    token = new_token()
    first = post(asgi.port, "/voice", token)
    retry = post(asgi.port, "/voice", token)
    assert first.status == retry.status == 200 and not first.replayed and retry.replayed
    assert retry.body == first.body and retry.headers["content-type"].startswith("text/xml")
    assert asgi.runs[token] == 1


def test_fastapi_six_concurrent_deliveries_run_once_on_one_event_loop(asgi: AsgiApp) -> None:
    token = new_token()
    started = time.monotonic()
    with ThreadPoolExecutor(6) as pool:
        replies = list(pool.map(lambda _: post(asgi.port, "/voice?sleep=0.5", token), range(6)))
    assert [r.status for r in replies] == [200] * 6 and len({r.body for r in replies}) == 1
    assert asgi.runs[token] == 1
    # Waiting deliveries did not block the loop: all were answered soon after the one run ended.
    assert time.monotonic() - started < 3.0


def test_fastapi_a_raising_endpoint_stores_nothing_and_a_forged_request_is_refused(asgi: AsgiApp) -> None:
    token = new_token()
    before = asgi.runs.get("raise", 0)
    assert post(asgi.port, "/raise", token).status == 500
    assert post(asgi.port, "/raise", token).status == 500
    assert asgi.runs["raise"] == before + 2
    forged_token = new_token()
    assert post(asgi.port, "/voice", forged_token, forge=True).status == 403
    assert forged_token not in asgi.runs
