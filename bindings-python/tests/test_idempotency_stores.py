"""The retry machinery below the web servers: both stores against the store contract, the delivery key
and stored layout shared with Go, and the driver's edges (failing stores, expired leases, asyncio)."""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from conftest import VECTORS_DIR
from idempotency_support import RedisServer, redis_client
from twilio_signature.idempotency import (
    Claim,
    Idempotency,
    IdempotencyStore,
    MemoryStore,
    RedisStore,
    StoredResponse,
    StoreError,
    delivery_key,
)

REPLAY_KEY = bytes(range(32))
TWIML = StoredResponse(200, "text/xml", b'<?xml version="1.0"?><Response><Say>hi</Say></Response>')


@pytest.fixture(scope="module")
def redis_server() -> Iterator[RedisServer]:
    server = RedisServer()
    server.start()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture(params=["memory", "redis"])
def store(request: pytest.FixtureRequest) -> IdempotencyStore:
    if request.param == "memory":
        return MemoryStore(ttl=60)
    server: RedisServer = request.getfixturevalue("redis_server")
    return RedisStore(redis_client(server.port), ttl=60, prefix=f"unit-{uuid.uuid4().hex}:")


def fresh_key() -> str:
    return delivery_key(REPLAY_KEY, uuid.uuid4().hex)


# --- the key and the stored layout (the Go package has the same two vectors) ---


def test_delivery_key_is_the_tagged_sha256_shared_with_go() -> None:
    assert delivery_key(REPLAY_KEY, "RC-token-1") == (
        "50537f94494dc537e9a145433ee1b37c1985734938bccf1e934807eeff6c098f"
    )
    assert delivery_key(REPLAY_KEY, "RC-token-2") != delivery_key(REPLAY_KEY, "RC-token-1")
    assert delivery_key(bytes(32), "RC-token-1") != delivery_key(REPLAY_KEY, "RC-token-1")
    with pytest.raises(ValueError):
        delivery_key(b"short", "RC-token-1")


def _vectors(section: str) -> list[dict[str, Any]]:
    data = json.loads((VECTORS_DIR / "idempotency.json").read_text(encoding="utf-8"))
    cases: list[dict[str, Any]] = data[section]
    assert cases, section
    return cases


def test_delivery_keys_of_the_shared_vectors() -> None:
    for case in _vectors("delivery_key"):
        assert delivery_key(bytes.fromhex(case["replay_key_hex"]), case["token"]) == case["key"]


@pytest.mark.parametrize("case", _vectors("encode"), ids=lambda case: case["name"])
def test_stored_layout_v2_encodes_as_the_shared_vectors(case: dict[str, Any]) -> None:
    """Layout v2 (tests/vectors/idempotency.json, shared with Go): built from the headers as the
    handler sent them, it stores the vector's lines and bytes, and decodes back to them."""
    response = StoredResponse.of(case["status"], case["headers"], bytes.fromhex(case["body_hex"]))
    expected = [tuple(line) for line in case["stored_headers"]]
    assert response.lines() == expected
    assert response.encode().hex() == case["encoded_hex"]
    decoded = StoredResponse.decode(bytes.fromhex(case["encoded_hex"]))
    assert decoded == response and decoded.lines() == expected


@pytest.mark.parametrize("case", _vectors("decode_v1"), ids=lambda case: case["name"])
def test_stored_layout_v1_is_still_read(case: dict[str, Any]) -> None:
    decoded = StoredResponse.decode(bytes.fromhex(case["encoded_hex"]))
    assert decoded.status == case["status"]
    assert decoded.lines() == [tuple(line) for line in case["stored_headers"]]
    assert decoded.body == bytes.fromhex(case["body_hex"])
    assert decoded.encode()[:2] == b"\xff\x02"  # read, never written


@pytest.mark.parametrize("case", _vectors("malformed"), ids=lambda case: case["name"])
def test_malformed_stored_responses_are_refused(case: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="stored response"):
        StoredResponse.decode(bytes.fromhex(case["encoded_hex"]))


def test_malformed_stored_value_in_redis_is_a_store_error(redis_server: RedisServer) -> None:
    import redis

    store = RedisStore(redis_client(redis_server.port), prefix="malformed:")
    key = fresh_key()
    redis.Redis(port=redis_server.port).set("malformed:" + key, b"D\xff\x03\x00\xc8\x00\x00", px=60_000)
    with pytest.raises(StoreError, match="unknown layout version 3"):
        store.claim(key, "a", 30)


def test_hop_by_hop_and_per_connection_headers_are_not_stored() -> None:
    stored = StoredResponse.of(
        302,
        [
            ("Location", "/next"),
            ("Connection", "close, X-Hop"),
            ("X-Hop", "1"),
            ("Keep-Alive", "timeout=5"),
            ("Transfer-Encoding", "chunked"),
            ("Date", "Sun, 06 Dec 2026 10:00:00 GMT"),
            ("Content-Length", "0"),
            ("Idempotent-Replayed", "true"),
            ("Cache-Control", "no-store"),
            (b"Set-Cookie", b"a=1"),
        ],
        b"",
    )
    assert stored.lines() == [("cache-control", "no-store"), ("location", "/next"), ("set-cookie", "a=1")]


# --- the store contract, for both stores ---


def test_store_claim_is_exclusive_and_completes_for_its_owner_only(store: IdempotencyStore) -> None:
    assert isinstance(store, IdempotencyStore)
    key = fresh_key()
    assert store.claim(key, "owner-a", 30) is Claim.OURS
    assert store.claim(key, "owner-b", 30) is Claim.BUSY
    assert store.complete(key, "owner-b", TWIML) is False
    assert store.release(key, "owner-b") is False
    assert store.complete(key, "owner-a", TWIML) is True
    assert store.claim(key, "owner-c", 30) == TWIML
    assert store.release(key, "owner-a") is False  # a stored response is nobody's claim


def test_store_release_frees_the_key(store: IdempotencyStore) -> None:
    key = fresh_key()
    assert store.claim(key, "owner-a", 30) is Claim.OURS
    assert store.release(key, "owner-a") is True
    assert store.claim(key, "owner-b", 30) is Claim.OURS


def test_store_claim_of_a_crashed_run_expires_after_its_lease(store: IdempotencyStore) -> None:
    key = fresh_key()
    assert store.claim(key, "crashed", 0.5) is Claim.OURS
    assert store.claim(key, "retry", 30) is Claim.BUSY
    time.sleep(0.7)
    assert store.claim(key, "retry", 30) is Claim.OURS
    # The crashed run, if it comes back, cannot overwrite or free the claim that took over.
    assert store.complete(key, "crashed", TWIML) is False
    assert store.release(key, "crashed") is False
    assert store.claim(key, "third", 30) is Claim.BUSY


def test_store_response_expires_after_the_ttl() -> None:
    memory = MemoryStore(ttl=0.5)
    key = fresh_key()
    assert memory.claim(key, "a", 30) is Claim.OURS and memory.complete(key, "a", TWIML)
    assert memory.claim(key, "b", 30) == TWIML
    time.sleep(0.7)
    assert memory.claim(key, "b", 30) is Claim.OURS


def test_redis_store_keys_have_a_ttl_lease_then_ttl(redis_server: RedisServer) -> None:
    client = redis_client(redis_server.port)
    store = RedisStore(client, ttl=3600, prefix="pttl:")
    key = fresh_key()
    store.claim(key, "a", 30)
    assert 0 < client.pttl(f"pttl:{key}") <= 30_000
    store.complete(key, "a", TWIML)
    assert 30_000 < client.pttl(f"pttl:{key}") <= 3_600_000


def test_redis_store_refuses_a_decoding_client(redis_server: RedisServer) -> None:
    import redis

    decoding = redis.Redis(host="127.0.0.1", port=redis_server.port, decode_responses=True)
    store = RedisStore(decoding, prefix="decoding:")
    key = fresh_key()
    assert store.claim(key, "a", 30) is Claim.OURS
    with pytest.raises(StoreError, match="decode_responses=False"):
        store.claim(key, "b", 30)


def test_memory_store_is_bounded_evicting_the_oldest_response() -> None:
    memory = MemoryStore(max_entries=3)
    keys = [fresh_key() for _ in range(5)]
    for key in keys[:3]:
        assert memory.claim(key, "a", 30) is Claim.OURS
    assert memory.complete(keys[1], "a", TWIML) and memory.complete(keys[0], "a", TWIML)
    # Full: keys[2] is a live claim, keys[1] the oldest stored response, then keys[0].
    assert memory.claim(keys[3], "a", 30) is Claim.OURS
    assert memory.ttl_of(keys[1]) is None and memory.ttl_of(keys[2]) is not None
    assert memory.claim(keys[4], "a", 30) is Claim.OURS
    assert len(memory) == 3 and memory.ttl_of(keys[0]) is None
    assert all(memory.ttl_of(key) is not None for key in keys[2:])


def test_memory_store_never_evicts_a_live_claim() -> None:
    """Full of deliveries still running: the claim fails (the driver's store-failure policy then
    decides) instead of dropping one, whose retry would run the handler again beside it."""
    memory = MemoryStore(max_entries=2)
    first, second = fresh_key(), fresh_key()
    assert memory.claim(first, "a", 30) is Claim.OURS and memory.claim(second, "b", 30) is Claim.OURS
    with pytest.raises(StoreError, match="memory store full: 2 deliveries in flight"):
        memory.claim(fresh_key(), "c", 30)
    assert memory.claim(first, "x", 30) is Claim.BUSY and memory.claim(second, "x", 30) is Claim.BUSY
    assert memory.release(first, "a")
    assert memory.claim(fresh_key(), "c", 30) is Claim.OURS  # room again


def test_memory_store_evicts_expired_entries_before_live_ones() -> None:
    memory = MemoryStore(max_entries=2)
    old, short, new = fresh_key(), fresh_key(), fresh_key()
    memory.claim(old, "a", 30)
    memory.claim(short, "a", 0.05)
    time.sleep(0.1)
    memory.claim(new, "a", 30)
    assert memory.ttl_of(old) is not None and memory.ttl_of(short) is None


def test_redis_claim_that_finds_its_own_owner_is_ours(redis_server: RedisServer) -> None:
    """What redis-py's retry does after a claim whose reply was lost: the same claim again."""
    store = RedisStore(redis_client(redis_server.port), prefix=f"own-{uuid.uuid4().hex}:")
    key = fresh_key()
    assert store.claim(key, "owner-1", 30) is Claim.OURS
    assert store.claim(key, "owner-1", 30) is Claim.OURS
    assert store.claim(key, "owner-2", 30) is Claim.BUSY
    assert store.complete(key, "owner-1", TWIML)
    assert store.claim(key, "owner-1", 30) == TWIML  # a stored response is never re-claimed


def test_memory_store_claims_are_exclusive_across_threads() -> None:
    memory = MemoryStore()
    key = fresh_key()
    barrier = threading.Barrier(16)
    results: list[object] = []

    def claim(owner: str) -> None:
        barrier.wait()
        results.append(memory.claim(key, owner, 30))

    threads = [threading.Thread(target=claim, args=(f"o{i}",)) for i in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results.count(Claim.OURS) == 1 and results.count(Claim.BUSY) == 15


# --- the driver's edges ---


class BrokenStore:
    """A backend that is down."""

    def __init__(self) -> None:
        self.calls = 0

    def claim(self, key: str, owner: str, lease: float) -> StoredResponse | Claim:
        self.calls += 1
        raise ConnectionError("connection refused")

    def complete(self, key: str, owner: str, response: StoredResponse) -> bool:
        raise ConnectionError("connection refused")

    def release(self, key: str, owner: str) -> bool:
        raise ConnectionError("connection refused")


def _identity(response: StoredResponse) -> StoredResponse:
    return response


def test_driver_processes_when_the_store_fails_and_logs_an_error(
    caplog: pytest.LogCaptureFixture,
) -> None:
    runs: list[int] = []
    driver = Idempotency(BrokenStore())
    with caplog.at_level(logging.ERROR, logger="twilio_signature.idempotency"):
        result = driver.run(REPLAY_KEY, "tok", lambda: runs.append(1) or TWIML, _identity)
    assert result == TWIML and runs == [1]
    assert "store failed (claim): ConnectionError: connection refused; processed unguarded" in caplog.text


def test_driver_answers_503_when_the_store_fails_with_refuse() -> None:
    runs: list[int] = []
    driver = Idempotency(BrokenStore(), on_store_error="refuse")
    result = driver.run(REPLAY_KEY, "tok", lambda: runs.append(1) or TWIML, _identity)
    assert isinstance(result, StoredResponse) and result.status == 503 and runs == []


def test_driver_passes_a_request_without_a_token_through_and_counts_it(
    caplog: pytest.LogCaptureFixture,
) -> None:
    store = BrokenStore()
    driver = Idempotency(store)  # a store call would fail: none must happen
    with caplog.at_level(logging.DEBUG, logger="twilio_signature.idempotency"):
        for _ in range(2):
            assert driver.run(REPLAY_KEY, None, lambda: TWIML, _identity) == TWIML
        assert driver.run(REPLAY_KEY, "", lambda: TWIML, _identity) == TWIML
    assert store.calls == 0 and driver.unguarded == 3
    assert "without I-Twilio-Idempotency-Token: handled without retry protection (3 so far)" in caplog.text


def test_driver_releases_the_claim_when_the_handler_raises() -> None:
    memory = MemoryStore()
    driver = Idempotency(memory)

    def fail() -> StoredResponse:
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        driver.run(REPLAY_KEY, "tok", fail, _identity)
    assert len(memory) == 0
    assert driver.run(REPLAY_KEY, "tok", lambda: TWIML, _identity) == TWIML
    assert memory.claim(delivery_key(REPLAY_KEY, "tok"), "x", 30) == TWIML


def test_driver_stores_nothing_for_an_uncapturable_response(caplog: pytest.LogCaptureFixture) -> None:
    memory = MemoryStore()
    with caplog.at_level(logging.WARNING, logger="twilio_signature.idempotency"):
        result = Idempotency(memory).run(REPLAY_KEY, "tok", lambda: "streamed", lambda _: None)
    assert result == "streamed" and len(memory) == 0
    assert "not stored (streamed or unreadable body)" in caplog.text


def test_driver_keeps_the_response_when_its_lease_expired(caplog: pytest.LogCaptureFixture) -> None:
    memory = MemoryStore()
    driver = Idempotency(memory, lease=0.05)
    key = delivery_key(REPLAY_KEY, "tok")

    def slow() -> StoredResponse:
        time.sleep(0.1)
        assert memory.claim(key, "took-over", 30) is Claim.OURS
        return TWIML

    with caplog.at_level(logging.WARNING, logger="twilio_signature.idempotency"):
        assert driver.run(REPLAY_KEY, "tok", slow, _identity) == TWIML
    assert "the claim expired" in caplog.text
    assert memory.claim(key, "x", 30) is Claim.BUSY  # the run that took over still holds it


def test_driver_options_are_checked() -> None:
    with pytest.raises(ValueError):
        Idempotency(on_store_error="ignore")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        Idempotency(lease=0)
    with pytest.raises(ValueError):
        MemoryStore(max_entries=0)
    driver = Idempotency()
    assert Idempotency.of(driver) is driver and isinstance(Idempotency.of(MemoryStore()).store, MemoryStore)


@pytest.mark.parametrize("kind", ["memory", "redis"])
def test_async_driver_runs_six_concurrent_deliveries_once_without_blocking_the_loop(
    kind: str, request: pytest.FixtureRequest
) -> None:
    if kind == "memory":
        chosen: IdempotencyStore = MemoryStore()
    else:
        server: RedisServer = request.getfixturevalue("redis_server")
        chosen = RedisStore(redis_client(server.port), prefix=f"async-{uuid.uuid4().hex}:")
    driver = Idempotency(chosen, wait=5)
    runs: list[str] = []

    async def handler() -> StoredResponse:
        runs.append("run")
        await asyncio.sleep(0.3)
        return StoredResponse(200, "text/xml", f"<Response>{uuid.uuid4().hex}</Response>".encode())

    async def main() -> tuple[list[Any], int]:
        ticks = 0
        stop = asyncio.Event()

        async def ticker() -> None:
            nonlocal ticks
            while not stop.is_set():
                ticks += 1
                await asyncio.sleep(0.01)

        tick_task = asyncio.create_task(ticker())
        results = await asyncio.gather(
            *(driver.run_async(REPLAY_KEY, "tok", handler, _identity) for _ in range(6))
        )
        stop.set()
        await tick_task
        return list(results), ticks

    results, ticks = asyncio.run(main())
    assert runs == ["run"]
    assert len({r.body for r in results}) == 1 and all(r.status == 200 for r in results)
    assert ticks >= 10  # the loop kept running while six deliveries waited on the store


def test_async_driver_releases_on_exception_and_refuses_with_the_option() -> None:
    memory = MemoryStore()

    async def fail() -> StoredResponse:
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        asyncio.run(Idempotency(memory).run_async(REPLAY_KEY, "tok", fail, _identity))
    assert len(memory) == 0

    async def ok() -> StoredResponse:
        return TWIML

    refused = asyncio.run(
        Idempotency(BrokenStore(), on_store_error="refuse").run_async(REPLAY_KEY, "t", ok, _identity)
    )
    assert isinstance(refused, StoredResponse) and refused.status == 503
