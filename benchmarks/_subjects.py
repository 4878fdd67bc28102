"""The ways of getting a token that the stampede benchmarks race against each other.

Each subject is a factory: given a picklable :class:`Spec`, it returns an async
context manager yielding a :class:`Subject`, built inside a worker process.
``get_token()`` returns an id of the token got, and ``fetched`` maps the ids of
tokens this process fetched to when it fetched them (for the hand-off times).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from typing import Any, Protocol

import aiohttp
import attrs

from zoom_s2s import (
    Credentials,
    FileTokenStore,
    MemoryTokenStore,
    RedisTokenStore,
    TokenEvent,
    TokenManager,
    TokenStore,
)
from zoom_s2s.events import EventKind

from ._common import raw_fetch

__all__ = [
    "Spec",
    "Subject",
    "SubjectFactory",
    "listen_floor",
    "per_process_memory",
    "pubsub_floor",
    "redis_py_lock",
    "zoom_s2s_file",
    "zoom_s2s_postgres",
    "zoom_s2s_redis",
]


@attrs.frozen
class Spec:
    """What a worker needs to build its subject (picklable)."""

    token_url: str
    credentials: Credentials
    coroutines: int
    store_dir: str | None = None
    redis_url: str | None = None
    postgres_url: str | None = None
    postgres_schema: str | None = None


class Subject(Protocol):
    """A way of getting a token: ``get_token()`` returns an id of the token got."""

    fetched: dict[str, float]  # token id -> time.time() when this process fetched it

    async def get_token(self) -> str: ...


SubjectFactory = Callable[[Spec], contextlib.AbstractAsyncContextManager[Subject]]


class _ManagerSubject:
    def __init__(self) -> None:
        self.fetched: dict[str, float] = {}
        self.manager: TokenManager | None = None

    def hook(self, event: TokenEvent) -> None:
        if event.kind is EventKind.FETCHED and event.token_fingerprint is not None:
            self.fetched[event.token_fingerprint] = time.time()

    async def get_token(self) -> str:
        assert self.manager is not None
        return (await self.manager.get_token()).fingerprint


@contextlib.asynccontextmanager
async def _zoom_s2s(spec: Spec, store: TokenStore) -> AsyncIterator[Subject]:
    subject = _ManagerSubject()
    try:
        await store.read("warm-up")  # open the connection / directory before the start
        async with TokenManager(
            spec.credentials, store=store, token_url=spec.token_url, hooks=[subject.hook]
        ) as manager:
            subject.manager = manager
            yield subject
    finally:
        await store.aclose()


def zoom_s2s_redis(spec: Spec) -> contextlib.AbstractAsyncContextManager[Subject]:
    """zoom-s2s on Redis."""
    assert spec.redis_url is not None
    return _zoom_s2s(spec, RedisTokenStore.from_url(spec.redis_url))


def zoom_s2s_postgres(spec: Spec) -> contextlib.AbstractAsyncContextManager[Subject]:
    """zoom-s2s on PostgreSQL (a lease row, LISTEN/NOTIFY)."""
    from zoom_s2s.stores import PostgresTokenStore

    assert spec.postgres_url is not None
    assert spec.postgres_schema is not None
    return _zoom_s2s(
        spec, PostgresTokenStore.from_url(spec.postgres_url, schema=spec.postgres_schema)
    )


def zoom_s2s_file(spec: Spec) -> contextlib.AbstractAsyncContextManager[Subject]:
    """zoom-s2s on a file store."""
    assert spec.store_dir is not None
    return _zoom_s2s(spec, FileTokenStore(spec.store_dir))


def per_process_memory(spec: Spec) -> contextlib.AbstractAsyncContextManager[Subject]:
    """Baseline (a): each process its own TokenManager on a MemoryTokenStore."""
    return _zoom_s2s(spec, MemoryTokenStore())


class _RedisLockSubject:
    def __init__(self, spec: Spec, client: Any, session: aiohttp.ClientSession) -> None:
        self.fetched: dict[str, float] = {}
        self._spec = spec
        self._client = client
        self._session = session

    async def get_token(self) -> str:
        key = "bench:redis-py-lock:token"
        cached = await self._client.get(key)
        if cached is not None:
            return str(cached.decode())
        # redis-py's own lock, default polling (sleep=0.1); bounded by blocking_timeout.
        async with self._client.lock("bench:redis-py-lock:lock", timeout=30, blocking_timeout=80):
            cached = await self._client.get(key)
            if cached is not None:
                return str(cached.decode())
            token, expires_in = await raw_fetch(
                self._session, self._spec.token_url, self._spec.credentials
            )
            self.fetched[token] = time.time()
            await self._client.set(key, token, ex=max(1, int(expires_in)))
            return token


@contextlib.asynccontextmanager
async def redis_py_lock(spec: Spec) -> AsyncIterator[Subject]:
    """Baseline (b): redis-py's Lock guarding a fetch + SET, every caller polling."""
    import redis.asyncio

    assert spec.redis_url is not None
    client = redis.asyncio.Redis.from_url(spec.redis_url)
    try:
        await client.ping()
        async with aiohttp.ClientSession() as session:
            yield _RedisLockSubject(spec, client, session)
    finally:
        await client.aclose()


class _PubSubFloor:
    """The least a Redis hand-off can cost: SET NX, fetch, SET, PUBLISH; waiters GET."""

    def __init__(self, spec: Spec, client: Any, pubsub: Any, session: aiohttp.ClientSession):
        self.fetched: dict[str, float] = {}
        self._spec = spec
        self._client = client
        self._pubsub = pubsub
        self._session = session
        self._inflight: asyncio.Future[str] | None = None

    async def get_token(self) -> str:
        if self._inflight is None:  # single-flight per process, like the manager
            self._inflight = asyncio.ensure_future(self._refresh())
        return await asyncio.shield(self._inflight)

    async def _refresh(self) -> str:
        key = "bench:floor:token"
        cached = await self._client.get(key)
        if cached is not None:
            return str(cached.decode())
        if await self._client.set("bench:floor:lock", "1", nx=True, px=30_000):
            token, expires_in = await raw_fetch(
                self._session, self._spec.token_url, self._spec.credentials
            )
            self.fetched[token] = time.time()
            await self._client.set(key, token, ex=max(1, int(expires_in)))
            await self._client.publish("bench:floor:changed", "written")
            return token
        while True:  # subscribed before the start: the message cannot be missed
            message = await self._pubsub.get_message(timeout=20)
            if message is None:
                raise TimeoutError("no token was published within 20 s")
            if message["type"] == "message":
                cached = await self._client.get(key)
                if cached is not None:
                    return str(cached.decode())


@contextlib.asynccontextmanager
async def pubsub_floor(spec: Spec) -> AsyncIterator[Subject]:
    """Reference: a minimal hand-made Redis hand-off (no fencing, no TTL takeover)."""
    import redis.asyncio

    assert spec.redis_url is not None
    client = redis.asyncio.Redis.from_url(spec.redis_url)
    pubsub = client.pubsub()
    try:
        await pubsub.subscribe("bench:floor:changed")
        while (await pubsub.get_message(timeout=5)) is None:
            pass  # the subscription's confirmation
        async with aiohttp.ClientSession() as session:
            yield _PubSubFloor(spec, client, pubsub, session)
    finally:
        await pubsub.aclose()  # type: ignore[no-untyped-call]
        await client.aclose()


class _ListenFloor:
    """The least a PostgreSQL hand-off can cost: a lock row, fetch, an UPDATE whose
    NOTIFY carries the token in plain text; waiters take it from the notification."""

    def __init__(
        self, spec: Spec, command: Any, notified: asyncio.Queue[str], session: aiohttp.ClientSession
    ):
        self.fetched: dict[str, float] = {}
        self._spec = spec
        self._command = command
        self._notified = notified
        self._session = session
        self._inflight: asyncio.Future[str] | None = None
        self._table = f'"{spec.postgres_schema}".entries'

    async def get_token(self) -> str:
        if self._inflight is None:  # single-flight per process, like the manager
            self._inflight = asyncio.ensure_future(self._refresh())
        return await asyncio.shield(self._inflight)

    async def _refresh(self) -> str:
        key = "bench:listen-floor"
        cached = await self._command.fetchval(
            f"SELECT token_fp FROM {self._table} WHERE key = $1", key  # noqa: S608
        )
        if cached is not None:
            return str(cached)
        taken = await self._command.fetchval(
            f"INSERT INTO {self._table} (key, lock_owner) VALUES ($1, 'x') "  # noqa: S608
            "ON CONFLICT (key) DO NOTHING RETURNING key",
            key,
        )
        if taken is not None:
            token, _ = await raw_fetch(self._session, self._spec.token_url, self._spec.credentials)
            self.fetched[token] = time.time()
            await self._command.fetchval(
                f"UPDATE {self._table} SET token_fp = $2 WHERE key = $1 "  # noqa: S608
                f"RETURNING pg_notify('{self._spec.postgres_schema}_floor', $2)",
                key,
                token,
            )
            return token
        # Listening before the start: the notification cannot be missed.
        return await asyncio.wait_for(self._notified.get(), 20)


@contextlib.asynccontextmanager
async def listen_floor(spec: Spec) -> AsyncIterator[Subject]:
    """Reference: a minimal hand-made PostgreSQL hand-off (no fencing, no TTL, no seal)."""
    import asyncpg

    assert spec.postgres_url is not None
    assert spec.postgres_schema is not None
    command = await asyncpg.connect(spec.postgres_url)
    listening = await asyncpg.connect(spec.postgres_url)
    notified: asyncio.Queue[str] = asyncio.Queue()
    try:
        await listening.add_listener(
            f"{spec.postgres_schema}_floor",
            lambda _c, _p, _ch, payload: notified.put_nowait(payload),
        )
        async with aiohttp.ClientSession() as session:
            yield _ListenFloor(spec, command, notified, session)
    finally:
        await listening.close()
        await command.close()
