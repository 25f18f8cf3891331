"""Twilio retries answered once: the first delivery runs the handler, its retries get its response.

Twilio retries a webhook when the connection fails or times out, and sends the same
``I-Twilio-Idempotency-Token`` header on every retry of one delivery. :class:`Idempotency` runs a
verified request's handler once per delivery and answers every retry of it with the response the
first run gave, byte for byte (a voice retry gets its TwiML, not an empty 200)::

    from twilio_signature.idempotency import Idempotency, MemoryStore, RedisStore

    idempotency = Idempotency(MemoryStore())               # one process
    idempotency = Idempotency(RedisStore(redis.Redis()))   # several instances share Redis

    result = idempotency.run(verified.replay_key, request.headers.get(TOKEN_HEADER), view, capture)
    if isinstance(result, StoredResponse):   # a retry (or 409 / 503): send result as it is
        ...

The web helpers call it for you (``idempotency=`` option). The rules:

- The delivery key is a SHA-256 digest of the verified request's replay key and its idempotency token:
  retries share both, and a new delivery with identical content (a caller pressing 1 twice at the same
  ``<Gather>``) has a new token, so it runs again. Only verified requests reach the store; one without
  the token header is passed through unguarded (and counted in a debug log).
- The first delivery claims the key with a lease (a crashed process's claim expires), runs the handler
  and stores its response: status, end-to-end headers (a 302's ``Location``, each ``Set-Cookie``,
  ``Content-Type``...; not hop-by-hop ones, ``Date`` or ``Content-Length``) and body up to
  ``max_body`` bytes (default 64 KiB), with the store's TTL (default 24 h). A larger or streamed
  body is not stored (logged); the claim is released so a retry runs the handler again.
- A retry while the first run is still going waits up to ``wait`` seconds for its response, then is
  answered 409. A handler that raises or answers 5xx stores nothing, so Twilio's retry runs it again.
- When the store fails (Redis down, or a :class:`MemoryStore` full of deliveries still in flight) the
  request is processed anyway and an error logged: a duplicate is better than a lost webhook.
  ``on_store_error="refuse"`` answers 503 instead; Twilio retries only a failed connection, once by
  default (the ``#rc``/``#rp`` URL fragment overrides change it), so that 503 may be a lost webhook.
- A claim is released when the handler raises, when its response cannot be stored (``complete``
  fails), and when an async request is cancelled after claiming: never left busy until its lease ends.
- Nothing secret is stored: keys are digests, values are the responses your handler sent to Twilio, and
  every entry has a TTL.

This is **retry handling, not replay protection**: the token header is not signed, so anyone holding a
captured request can send it again with a new token and it will run again. Refuse replays by storing
``Verified.replay_key`` for a few minutes if you need that.
"""

from __future__ import annotations

import asyncio
import enum
import hashlib
import logging
import struct
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, TypeVar, runtime_checkable

__all__ = [
    "DEFAULT_LEASE",
    "DEFAULT_MAX_BODY",
    "DEFAULT_TTL",
    "DEFAULT_WAIT",
    "REPLAYED_HEADER",
    "TOKEN_HEADER",
    "Claim",
    "Idempotency",
    "IdempotencyStore",
    "MemoryStore",
    "RedisStore",
    "ScriptingClient",
    "StoreError",
    "StoredResponse",
    "delivery_key",
]

TOKEN_HEADER = "I-Twilio-Idempotency-Token"
"""The header Twilio sends on every request, the same on each retry of one delivery."""
REPLAYED_HEADER = "Idempotent-Replayed"
"""Set to ``true`` on a stored response sent again (as Stripe does), for the logs of whoever reads it."""

DEFAULT_TTL = 24 * 3600.0
"""Seconds a stored response is kept (Twilio's retries come within minutes; Stripe keeps 24 h)."""
DEFAULT_LEASE = 60.0
"""Seconds a claim holds before it expires: longer than any handler Twilio would wait for (15 s)."""
DEFAULT_WAIT = 5.0
"""Seconds a retry waits for the first run's response before it is answered 409."""
DEFAULT_MAX_BODY = 64 * 1024
"""Largest response body stored, in bytes; a larger one is sent but not stored."""

_KEY_DOMAIN = b"twilio-signature/idempotency/v1\x00"
_logger = logging.getLogger("twilio_signature.idempotency")

R = TypeVar("R")


def delivery_key(replay_key: bytes, token: str | bytes) -> str:
    """The store key of one delivery: hex SHA-256 over a domain tag, the replay key and the token.

    The replay key has a fixed length (32 bytes), so the concatenation is unambiguous. The same
    digest is computed by the Go package, so Python and Go instances can share one Redis.
    """
    if len(replay_key) != 32:
        raise ValueError("replay_key must be the 32 bytes of Verified.replay_key")
    token_bytes = token.encode("utf-8", "surrogateescape") if isinstance(token, str) else token
    return hashlib.sha256(_KEY_DOMAIN + replay_key + token_bytes).hexdigest()


HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
    }
)
"""Headers of one connection, never stored (with any header the response's Connection names)."""
_NOT_STORED = HOP_BY_HOP | {"date", "content-length", REPLAYED_HEADER.lower()}
_V2 = b"\xff\x02"
_U16 = 0xFFFF

HeaderLine = tuple[str, str]


def _text(value: str | bytes) -> str:
    return value.decode("latin-1") if isinstance(value, bytes) else value


@dataclass(frozen=True)
class StoredResponse:
    """A response to send as it is: a stored one replayed, or the 409/503 the driver answers itself.

    ``content_type`` is ``None`` when the handler sent none; ``headers`` holds the other end-to-end
    header lines to replay (``location``, each ``set-cookie``...), names lower-cased, values as sent,
    sorted by name (the values of one name in the order sent): :meth:`of` builds it from a
    response's headers. ``replayed`` is ``False`` for the driver's own 409 and 503: only a stored
    response sent again gets ``Idempotent-Replayed: true``.
    """

    status: int
    content_type: str | None
    body: bytes
    replayed: bool = field(default=True, compare=False)
    headers: tuple[HeaderLine, ...] = ()

    @classmethod
    def of(
        cls, status: int, headers: Iterable[tuple[str | bytes, str | bytes]], body: bytes
    ) -> StoredResponse:
        """A handler's response as stored: every end-to-end header line, except hop-by-hop ones
        (and those its ``Connection`` header names), ``Date``, ``Content-Length`` and
        ``Idempotent-Replayed``. Names are lower-cased; ``str`` values must be latin-1 (as WSGI's)."""
        lines = [(_text(name).lower(), _text(value)) for name, value in headers]
        dropped = set(_NOT_STORED)
        for name, value in lines:
            if name == "connection":
                dropped.update(token.strip(" \t").lower() for token in value.split(","))
        kept = sorted(((n, v) for n, v in lines if n not in dropped), key=lambda line: line[0].encode())
        content_type = next((v for n, v in kept if n == "content-type"), None)
        if content_type is not None:
            kept.remove(("content-type", content_type))  # the first one; any other stays a line
        return cls(status, content_type, body, headers=tuple(kept))

    def lines(self) -> list[HeaderLine]:
        """Every stored header line, Content-Type included, in the stored order (by name)."""
        lines = list(self.headers)
        if self.content_type is not None:
            lines.append(("content-type", self.content_type))
        return sorted(lines, key=lambda line: line[0].encode())  # stable: one name keeps its order

    def encode(self) -> bytes:
        """The stored form, layout v2 (shared with the Go package; tests/vectors/idempotency.json):
        ``0xFF 0x02``, status and line count as big-endian 16-bit numbers, per line the name's length,
        the name (ASCII, lower-case), the value's length and the value (latin-1), then the body.
        ``ValueError`` for what the layout cannot hold."""
        if not 100 <= self.status <= 999:
            raise ValueError(f"status {self.status} is outside 100..999")
        lines = self.lines()
        if len(lines) > _U16:
            raise ValueError("too many header lines to store")
        parts = [_V2, struct.pack(">HH", self.status, len(lines))]
        for name, value in lines:
            name_bytes, value_bytes = name.lower().encode("ascii"), value.encode("latin-1")
            if len(name_bytes) > _U16 or len(value_bytes) > _U16:
                raise ValueError("a header line is too long to store")
            parts += [struct.pack(">H", len(name_bytes)), name_bytes]
            parts += [struct.pack(">H", len(value_bytes)), value_bytes]
        parts.append(self.body)
        return b"".join(parts)

    @classmethod
    def decode(cls, data: bytes) -> StoredResponse:
        """The inverse of :meth:`encode`; layout v1 (status, content-type length, content type, body:
        what earlier versions wrote) is read too. ``ValueError`` for anything else: empty,
        truncated, an unknown version, a status outside 100..999, a line running past the end."""
        if data[:1] != b"\xff":
            return cls._decode_v1(data)
        if len(data) < 6:
            raise ValueError("stored response is truncated")
        if data[:2] != _V2:
            raise ValueError(f"stored response has an unknown layout version {data[1]}")
        status, count = struct.unpack(">HH", data[2:6])
        if not 100 <= status <= 999:
            raise ValueError("stored response is malformed: status outside 100..999")
        at = 6
        lines: list[HeaderLine] = []
        for _ in range(count):
            fields = []
            for _part in ("name", "value"):
                if at + 2 > len(data):
                    raise ValueError("stored response is malformed: a header line runs past the end")
                (length,) = struct.unpack(">H", data[at : at + 2])
                if at + 2 + length > len(data):
                    raise ValueError("stored response is malformed: a header line runs past the end")
                fields.append(data[at + 2 : at + 2 + length].decode("latin-1"))
                at += 2 + length
            lines.append((fields[0], fields[1]))
        return cls.of(status, lines, data[at:])

    @classmethod
    def _decode_v1(cls, data: bytes) -> StoredResponse:
        if len(data) < 4:
            raise ValueError("stored response is truncated")
        status, length = struct.unpack(">HH", data[:4])
        if len(data) < 4 + length or not 100 <= status <= 999:
            raise ValueError("stored response is malformed")
        content_type = data[4 : 4 + length].decode("latin-1") or None
        return cls(status, content_type, data[4 + length :])


class Claim(enum.Enum):
    """What :meth:`IdempotencyStore.claim` found when it did not return a stored response."""

    OURS = "ours"
    """The key was free: the caller holds it now and must complete or release it."""
    BUSY = "busy"
    """Another run holds the key and has not stored a response yet."""


class StoreError(Exception):
    """The store could not be reached or answered nonsense (the cause is chained)."""


@runtime_checkable
class IdempotencyStore(Protocol):
    """Where deliveries are claimed and their responses kept; implement it for another backend.

    Keys are the hex digests of :func:`delivery_key` (the store adds its own prefix). ``owner`` is a
    random token naming one claim, so that a run whose lease expired cannot overwrite or delete the
    claim of the run that took over. Every entry must expire: a claim after ``lease`` seconds, a
    stored response after the store's TTL. Raise :class:`StoreError` (or anything) when the backend
    fails; the driver logs it and applies ``on_store_error``.
    """

    def claim(self, key: str, owner: str, lease: float) -> StoredResponse | Claim:
        """Atomically: if ``key`` is free, hold it for ``owner`` for ``lease`` seconds and return
        ``Claim.OURS``; if ``owner`` already holds it (a client retrying a claim whose reply was
        lost), return ``Claim.OURS`` too; if a response is stored, return it; otherwise return
        ``Claim.BUSY``."""
        ...

    def complete(self, key: str, owner: str, response: StoredResponse) -> bool:
        """Store ``response`` under ``key`` with the TTL if ``owner`` still holds it; ``False`` if not."""
        ...

    def release(self, key: str, owner: str) -> bool:
        """Free ``key`` if ``owner`` still holds it; ``False`` if not."""
        ...


class MemoryStore:
    """An in-process store: the default for one process (one worker). Thread-safe.

    Memory is bounded: at most ``max_entries`` keys; when full, expired entries go first, then the
    oldest stored responses. A claim whose lease has not expired (a delivery still running) is never
    evicted: when only those are left, :meth:`claim` raises :class:`StoreError` ("memory store full")
    and the driver's ``on_store_error`` policy applies, as for a Redis that is down. Several
    processes (gunicorn workers, several hosts) each have their own: use :class:`RedisStore` for
    them.
    """

    non_blocking = True
    """Its calls never wait on I/O: the async driver calls it directly instead of in a thread."""

    def __init__(self, *, ttl: float = DEFAULT_TTL, max_entries: int = 10_000) -> None:
        if ttl <= 0 or max_entries <= 0:
            raise ValueError("ttl and max_entries must be positive")
        self.ttl = ttl
        self.max_entries = max_entries
        # key -> (expires at (monotonic), owner for a claim or None, response for a completed entry)
        self._entries: OrderedDict[str, tuple[float, str | None, StoredResponse | None]] = OrderedDict()
        self._lock = threading.Lock()
        self._swept = -1.0e9

    def __len__(self) -> int:
        with self._lock:
            self._expire(time.monotonic())
            return len(self._entries)

    def ttl_of(self, key: str) -> float | None:
        """Seconds until ``key`` expires, or ``None`` when it is absent (for tests and debugging)."""
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return None
            return max(0.0, entry[0] - time.monotonic())

    def claim(self, key: str, owner: str, lease: float) -> StoredResponse | Claim:
        now = time.monotonic()
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None and entry[0] > now:
                return entry[2] if entry[2] is not None else Claim.BUSY
            self._entries.pop(key, None)
            self._make_room(now)
            self._entries[key] = (now + lease, owner, None)
            return Claim.OURS

    def complete(self, key: str, owner: str, response: StoredResponse) -> bool:
        now = time.monotonic()
        with self._lock:
            if not self._held_by(key, owner, now):
                return False
            # Re-inserted at the end: eviction goes by age of the last write.
            del self._entries[key]
            self._entries[key] = (now + self.ttl, None, response)
            return True

    def release(self, key: str, owner: str) -> bool:
        with self._lock:
            if not self._held_by(key, owner, time.monotonic()):
                return False
            del self._entries[key]
            return True

    def _held_by(self, key: str, owner: str, now: float) -> bool:
        entry = self._entries.get(key)
        return entry is not None and entry[0] > now and entry[1] == owner

    def _expire(self, now: float) -> None:
        for key in [k for k, (expires, _, _) in self._entries.items() if expires <= now]:
            del self._entries[key]

    def _make_room(self, now: float) -> None:
        if len(self._entries) < self.max_entries:
            return
        # A full sweep is O(entries): at most once a second, so a store kept full by traffic pays it
        # rarely; between sweeps the oldest entry goes.
        if now - self._swept >= 1.0:
            self._swept = now
            self._expire(now)
        while len(self._entries) >= self.max_entries:
            # The oldest entry that is not a live claim: evicting a delivery still running would let
            # its retry run the handler again beside it.
            victim = next(
                (key for key, (expires, _, response) in self._entries.items()
                 if response is not None or expires <= now),
                None,
            )  # fmt: skip
            if victim is None:
                raise StoreError(f"memory store full: {len(self._entries)} deliveries in flight")
            del self._entries[victim]


# One round trip each, atomic on the server. A claim value is b"P" + owner, a stored response b"D" +
# StoredResponse.encode(): the same layout as the Go store, so both can share a Redis.
# A claim that finds its own owner is ours (1): the client re-sent a claim that had already succeeded
# (redis-py retries a command whose reply timed out), and must not wait for itself.
_CLAIM = """
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return false end
local found = redis.call('GET', KEYS[1])
if found == ARGV[1] then return 1 end
return found
"""
_COMPLETE = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
return 1
"""
_RELEASE = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[1])
return 1
"""


class ScriptingClient(Protocol):
    """What :class:`RedisStore` needs of a client: ``redis.Redis`` (or ``RedisCluster``) has it."""

    def register_script(self, script: str) -> Any: ...


class RedisStore:
    """A store in Redis, shared by every instance of an app (``pip install twilio-signature[redis]``).

    ``client`` is a ``redis.Redis`` (it must not decode responses). A claim is ``SET NX PX`` (inside
    a small Lua script that also returns what is there when the key is taken); completing and
    releasing check the claim's owner in the same script, so a run whose lease expired cannot touch
    the run that took over. Every key has a TTL (``PX``): the lease for a claim, ``ttl`` seconds for
    a stored response. Keys are ``prefix`` + a hex digest; nothing secret is stored. The layout and
    default prefix are the Go ``redisstore`` module's, so Python and Go instances can share one Redis.

    Give the client short timeouts that fit the driver's ``wait`` (default 5 s) and no long retry
    backoff: ``redis.Redis(..., socket_timeout=1, socket_connect_timeout=1, retry=Retry(NoBackoff(),
    1))``. While Redis is down every webhook waits for them before it is processed unguarded (or
    refused, with ``on_store_error="refuse"``). A retried claim that had in fact succeeded finds its
    own owner, which counts as ours: the delivery runs once and is not answered 409.
    """

    def __init__(
        self,
        client: ScriptingClient,
        *,
        ttl: float = DEFAULT_TTL,
        prefix: str = "twilio-signature:idempotency:",
    ) -> None:
        if ttl <= 0:
            raise ValueError("ttl must be positive")
        self.client = client
        self.ttl = ttl
        self.prefix = prefix
        self._claim = client.register_script(_CLAIM)
        self._complete = client.register_script(_COMPLETE)
        self._release = client.register_script(_RELEASE)

    def claim(self, key: str, owner: str, lease: float) -> StoredResponse | Claim:
        found = self._call(self._claim, key, b"P" + owner.encode(), _ms(lease))
        if found is None or found == 1:
            return Claim.OURS
        if not isinstance(found, bytes):
            raise StoreError("the Redis client decodes responses: use decode_responses=False")
        if found.startswith(b"D"):
            try:
                return StoredResponse.decode(found[1:])
            except ValueError as error:
                raise StoreError(f"{error} under {self.prefix}{key}") from None
        return Claim.BUSY

    def complete(self, key: str, owner: str, response: StoredResponse) -> bool:
        value = b"D" + response.encode()
        return bool(self._call(self._complete, key, b"P" + owner.encode(), value, _ms(self.ttl)))

    def release(self, key: str, owner: str) -> bool:
        return bool(self._call(self._release, key, b"P" + owner.encode()))

    def _call(self, script: Any, key: str, *args: bytes | int) -> Any:
        import redis as redis_module  # the optional dependency, only once a RedisStore exists

        try:
            return script(keys=[self.prefix + key], args=list(args))
        except redis_module.RedisError as error:
            raise StoreError(f"Redis: {type(error).__name__}: {error}") from error


def _ms(seconds: float) -> int:
    return max(1, int(seconds * 1000))


_IN_PROGRESS = StoredResponse(
    409, "text/plain; charset=utf-8", b"this delivery is still being handled; retry later\n", replayed=False
)
_UNAVAILABLE = StoredResponse(
    503, "text/plain; charset=utf-8", b"retry store unavailable; retry later\n", replayed=False
)


@dataclass
class _Ticket:
    """The outcome of :meth:`Idempotency._begin`: run the handler (``key`` set when we hold a claim,
    ``None`` when unguarded), or send ``answer``."""

    key: str | None = None
    owner: str = ""
    answer: StoredResponse | None = None


class Idempotency:
    """Runs a verified request's handler once per Twilio delivery (see the module docs).

    :param store: where claims and responses live; default a new :class:`MemoryStore`.
    :param wait: seconds a retry waits for a run in progress before it is answered 409.
    :param lease: seconds a claim holds; a crashed run's claim expires after it.
    :param max_body: largest body stored, in bytes; larger responses are sent but not stored.
    :param on_store_error: ``"process"`` (default: run the handler unguarded and log an error) or
        ``"refuse"`` (answer 503). Twilio retries only a failed connection, once by default (the
        ``#rc``/``#rp`` URL fragment overrides change it): a 503 may be a lost webhook.
    :param poll: seconds between looks at the store while waiting.
    """

    def __init__(
        self,
        store: IdempotencyStore | None = None,
        *,
        wait: float = DEFAULT_WAIT,
        lease: float = DEFAULT_LEASE,
        max_body: int = DEFAULT_MAX_BODY,
        on_store_error: Literal["process", "refuse"] = "process",
        poll: float = 0.05,
    ) -> None:
        if on_store_error not in ("process", "refuse"):
            raise ValueError('on_store_error must be "process" or "refuse"')
        if wait < 0 or lease <= 0 or max_body < 0 or poll <= 0:
            raise ValueError("wait, max_body must be >= 0 and lease, poll > 0")
        self.store: IdempotencyStore = store if store is not None else MemoryStore()
        self.wait = wait
        self.lease = lease
        self.max_body = max_body
        self.on_store_error = on_store_error
        self.poll = poll
        self.unguarded = 0
        """Requests passed through because they carried no idempotency token."""
        self._count_lock = threading.Lock()

    @classmethod
    def of(cls, value: Idempotency | IdempotencyStore) -> Idempotency:
        """``value`` itself if it is a driver, else a driver with default options over the store
        (what the web helpers' ``idempotency=`` option accepts); ``TypeError`` for anything else, so
        a mistake shows when the helper is built rather than at the first webhook."""
        if isinstance(value, Idempotency):
            return value
        if isinstance(value, type) or not isinstance(value, IdempotencyStore):
            raise TypeError(
                "idempotency= takes an idempotency store (MemoryStore, RedisStore, or an object with "
                f"claim, complete and release) or an Idempotency; got {type(value).__name__}"
            )
        return cls(value)

    def run(
        self,
        replay_key: bytes,
        token: str | None,
        handler: Callable[[], R],
        capture: Callable[[R], StoredResponse | None],
    ) -> R | StoredResponse:
        """Answer one verified request: the handler's result on a first delivery, or a
        :class:`StoredResponse` to send as it is (a retry's stored response, 409, or 503).

        ``replay_key`` is ``Verified.replay_key``, ``token`` the ``I-Twilio-Idempotency-Token``
        header (``None`` when absent). ``capture`` reads the status, headers and body of the
        handler's response (``None`` when it cannot, e.g. a streamed body: then nothing is stored).
        Blocks up to ``wait`` seconds while another run of the same delivery is in progress.
        """
        ticket = self._begin_sync(replay_key, token)
        if ticket.answer is not None:
            return ticket.answer
        if ticket.key is None:
            return handler()
        try:
            result = handler()
            captured = capture(result)
        except BaseException:
            self._guarded(lambda: self.store.release(ticket.key or "", ticket.owner), "release")
            raise
        self._finish(ticket, captured, lambda call, what: self._guarded(call, what))
        return result

    async def run_async(
        self,
        replay_key: bytes,
        token: str | None,
        handler: Callable[[], Awaitable[R]],
        capture: Callable[[R], StoredResponse | None],
    ) -> R | StoredResponse:
        """:meth:`run` for asyncio (FastAPI, Starlette): store calls run in a worker thread (unless
        the store is a :class:`MemoryStore`) and waiting sleeps without blocking the event loop."""
        ticket = await self._begin_async(replay_key, token)
        if ticket.answer is not None:
            return ticket.answer
        if ticket.key is None:
            return await handler()
        try:
            result = await handler()
            captured = capture(result)
        except BaseException:
            await self._guarded_async(lambda: self.store.release(ticket.key or "", ticket.owner), "release")
            raise
        calls: list[tuple[Callable[[], object], str]] = []
        self._finish(ticket, captured, lambda call, what: calls.append((call, what)))
        for call, what in calls:
            await self._guarded_async(call, what)
        return result

    # The steps, shared by run and run_async. Store calls go through `guarded`, which returns
    # (ok, value): ok is False when the store failed (already logged).

    def _start(self, replay_key: bytes, token: str | None) -> tuple[_Ticket | None, str]:
        if not token:
            with self._count_lock:
                self.unguarded += 1
                count = self.unguarded
            _logger.debug(
                "twilio webhook without %s: handled without retry protection (%d so far)",
                TOKEN_HEADER,
                count,
            )
            return _Ticket(), ""
        return None, delivery_key(replay_key, token)

    def _on_store_failure(self) -> _Ticket:
        return _Ticket(answer=_UNAVAILABLE) if self.on_store_error == "refuse" else _Ticket()

    def _begin_sync(self, replay_key: bytes, token: str | None) -> _Ticket:
        ticket, key = self._start(replay_key, token)
        if ticket is not None:
            return ticket
        owner = uuid.uuid4().hex
        deadline = time.monotonic() + self.wait
        while True:
            ok, found = self._guarded(lambda: self.store.claim(key, owner, self.lease), "claim")
            ticket = self._decide(key, owner, ok, found, deadline)
            if ticket is not None:
                return ticket
            time.sleep(self.poll)

    async def _begin_async(self, replay_key: bytes, token: str | None) -> _Ticket:
        ticket, key = self._start(replay_key, token)
        if ticket is not None:
            return ticket
        owner = uuid.uuid4().hex
        deadline = time.monotonic() + self.wait
        while True:
            attempt = asyncio.ensure_future(
                self._guarded_async(lambda: self.store.claim(key, owner, self.lease), "claim")
            )
            try:
                ok, found = await asyncio.shield(attempt)
            except asyncio.CancelledError:
                # The request was cancelled while the claim ran in its thread, which may still take
                # the key: wait for it and free what it took, then let the cancellation go on.
                ok, found = await attempt
                if ok and (found is Claim.OURS):
                    await self._guarded_async(lambda: self.store.release(key, owner), "release")
                raise
            ticket = self._decide(key, owner, ok, found, deadline)
            if ticket is not None:
                return ticket
            await asyncio.sleep(self.poll)

    def _decide(self, key: str, owner: str, ok: bool, found: object, deadline: float) -> _Ticket | None:
        """What a claim attempt means: a ticket, or ``None`` to look again after ``poll``."""
        if not ok:
            return self._on_store_failure()
        if found is Claim.OURS:
            return _Ticket(key=key, owner=owner)
        if isinstance(found, StoredResponse):
            _logger.info("twilio webhook retry answered with the stored response; key=%s", key)
            return _Ticket(answer=found)
        if time.monotonic() >= deadline:
            _logger.warning(
                "twilio webhook retry refused: 409 the first delivery is still being handled; key=%s",
                key,
            )
            return _Ticket(answer=_IN_PROGRESS)
        return None

    def _finish(
        self,
        ticket: _Ticket,
        response: StoredResponse | None,
        call: Callable[[Callable[[], object], str], object],
    ) -> None:
        """Store the handler's response, or release the claim when it must not be stored."""
        key, owner = ticket.key or "", ticket.owner
        if response is None:
            _logger.warning(
                "twilio webhook response not stored (streamed or unreadable body); "
                "a retry runs the handler again; key=%s",
                key,
            )
        elif response.status >= 500:
            pass  # a failure: Twilio's retry must run the handler again
        elif len(response.body) > self.max_body:
            _logger.warning(
                "twilio webhook response not stored: body of %d bytes is over max_body=%d; "
                "a retry runs the handler again; key=%s",
                len(response.body),
                self.max_body,
                key,
            )
        else:
            call(lambda: self._complete(key, owner, response), "complete")
            return
        call(lambda: self.store.release(key, owner), "release")

    def _complete(self, key: str, owner: str, response: StoredResponse) -> None:
        try:
            stored = self.store.complete(key, owner, response)
        except BaseException:
            # Not stored: free the claim now, so a retry runs the handler instead of waiting out the
            # lease and getting 409. (The caller logs the store error.)
            self._guarded(lambda: self.store.release(key, owner), "release")
            raise
        if not stored:
            _logger.warning(
                "twilio webhook response not stored: the claim expired (handler slower than "
                "lease=%ss) and another run took it; key=%s",
                self.lease,
                key,
            )

    def _guarded(self, call: Callable[[], object], what: str) -> tuple[bool, object]:
        try:
            return True, call()
        except Exception as error:  # any backend failure: a duplicate beats a lost webhook
            self._log_store_error(error, what)
            return False, None

    async def _guarded_async(self, call: Callable[[], object], what: str) -> tuple[bool, object]:
        if getattr(self.store, "non_blocking", False):
            return self._guarded(call, what)
        return await asyncio.to_thread(self._guarded, call, what)

    def _log_store_error(self, error: Exception, what: str) -> None:
        action = "answered 503" if self.on_store_error == "refuse" else "processed unguarded"
        if what != "claim":
            action = "the handler's response was sent but not stored"
        _logger.error(
            "twilio webhook retry store failed (%s): %s: %s; %s",
            what,
            type(error).__name__,
            error,
            action,
        )
