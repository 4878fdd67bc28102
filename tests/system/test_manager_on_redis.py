"""TokenManager on a real redis-server that stalls, and neighbours that misbehave.

Redis frozen (SIGSTOP) while a fetch is in flight; a failure record from a
host with a fast clock (or a tampered one), and its deletion; a process with
a wrong secret sharing the fleet's Redis. Each manager has its own Redis
client, as separate processes would.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio

from tests.harness.redis_server import RedisServer
from zoom_s2s import Credentials, TokenEvent, TokenManager
from zoom_s2s.errors import InvalidCredentialsError, TokenEndpointError
from zoom_s2s.events import EventKind
from zoom_s2s.stores import FailureRecord, RedisTokenStore
from zoom_s2s.testing import FakeZoom

from ..support import FAST_RETRY

redis = pytest.importorskip("redis.asyncio")
pytestmark = pytest.mark.redis


@pytest_asyncio.fixture
async def raw(redis_url: str) -> AsyncIterator[Any]:
    client = redis.Redis.from_url(redis_url)
    yield client
    await client.aclose()


def quick_store(url: str) -> RedisTokenStore:
    """A store that gives up on a frozen server within about a second."""
    return RedisTokenStore.from_url(url, socket_timeout=0.5, socket_connect_timeout=0.5)


async def test_a_token_fetched_while_redis_froze_is_kept_and_stored_when_redis_is_back(
    fake_zoom: FakeZoom, redis_server: RedisServer, redis_url: str, raw: Any
) -> None:
    fake_zoom.latency = 1.0
    events: list[TokenEvent] = []
    store = quick_store(redis_url)
    async with TokenManager(
        fake_zoom.credentials,
        store=store,
        token_url=fake_zoom.token_url,
        retry=FAST_RETRY,
        hooks=[events.append],
        close_store=True,
    ) as tokens:
        fetching = asyncio.create_task(tokens.get_token())
        for _ in range(200):  # until the lock is taken and the request is in flight
            if fake_zoom.token_requests:
                break
            await asyncio.sleep(0.01)
        redis_server.pause()
        try:
            token = await asyncio.wait_for(fetching, 15)
        finally:
            redis_server.resume()
        # The token was served although the store could not take it ...
        assert token.access_token == fake_zoom.issued_tokens[0]
        store_errors = [e.error or "" for e in events if e.kind is EventKind.STORE_ERROR]
        # ... and the first error reported is the write's, not the release's.
        assert store_errors
        assert "writing the token" in store_errors[0]
        # Once Redis is back, the kept token is written and the lock released.
        for _ in range(100):  # written first, then released
            if (await store.read(tokens.store_key)).token == token and not await raw.keys("*:lock"):
                break
            await asyncio.sleep(0.1)
        assert (await store.read(tokens.store_key)).token == token
        assert await raw.keys("*:lock") == []
        # The same process recognises its state: a refetch never waits on its own lock.
        await tokens.invalidate(token)
        fresh = await tokens.get_token()
        assert fresh.access_token == fake_zoom.issued_tokens[1]
        assert tokens.stats().lock_waits == 0
        # Written with the fetch, or (a loaded machine outlasting socket_timeout) by the
        # write-later task: either way it reaches the store while this manager lives.
        for _ in range(100):
            stored = (await store.read(tokens.store_key)).token
            if stored is not None and stored.fingerprint == fresh.fingerprint:
                break
            await asyncio.sleep(0.1)
        assert stored is not None
        assert stored.fingerprint == fresh.fingerprint
    # Another process adopts what was stored: no fetch of its own.
    async with TokenManager(
        fake_zoom.credentials, store=redis_url, token_url=fake_zoom.token_url, retry=FAST_RETRY
    ) as other:
        assert (await other.get_token()).access_token == fresh.access_token
    assert fake_zoom.token_requests == 2


async def _plant_failure(store: RedisTokenStore, key: str, record: FailureRecord) -> None:
    lease = (await store.acquire_lock(key, ttl=5)).lease
    assert lease is not None
    await store.write_failure(lease, record, keep_for=record.retry_in + 300)
    await store.release_lock(lease)


async def test_a_failure_record_from_a_fast_clock_host_makes_no_one_wait_an_hour(
    fake_zoom: FakeZoom, redis_url: str
) -> None:
    async with TokenManager(
        fake_zoom.credentials, store=redis_url, token_url=fake_zoom.token_url, retry=FAST_RETRY
    ) as tokens:
        assert isinstance(tokens.store, RedisTokenStore)
        # A record claiming "retry in 3600 s" after one failure, as a host an hour fast could write.
        record = FailureRecord(
            failures=1, retry_in=3600, error_type="TokenEndpointError", message="Zoom 503"
        )
        await _plant_failure(tokens.store, tokens.store_key, record)
        with pytest.raises(TokenEndpointError, match="Zoom 503"):
            await tokens.get_token()
        await asyncio.sleep(1.1)  # one failure: the schedule allows at most 1 s
        token = await tokens.get_token()
    assert token.access_token == fake_zoom.issued_tokens[0]


async def test_deleting_the_failure_record_ends_the_fleets_wait(
    fake_zoom: FakeZoom, redis_url: str, raw: Any
) -> None:
    async with TokenManager(
        fake_zoom.credentials, store=redis_url, token_url=fake_zoom.token_url, retry=FAST_RETRY
    ) as tokens:
        assert isinstance(tokens.store, RedisTokenStore)
        record = FailureRecord(
            failures=10, retry_in=60, error_type="TokenEndpointError", message="Zoom 503"
        )
        await _plant_failure(tokens.store, tokens.store_key, record)
        with pytest.raises(TokenEndpointError):
            await tokens.get_token()
        assert await raw.delete(*await raw.keys("*:failure")) == 1
        await asyncio.sleep(0.6)  # the next look at the store
        token = await tokens.get_token()
    assert token.access_token == fake_zoom.issued_tokens[0]


async def test_a_process_with_a_wrong_secret_affects_only_itself(
    fake_zoom: FakeZoom, redis_url: str
) -> None:
    good = fake_zoom.credentials
    wrong = Credentials(good.account_id, good.client_id, "the-secret-before-rotation")
    async with TokenManager(
        wrong, store=redis_url, token_url=fake_zoom.token_url, retry=FAST_RETRY
    ) as misconfigured, TokenManager(
        good, store=redis_url, token_url=fake_zoom.token_url, retry=FAST_RETRY
    ) as right:
        with pytest.raises(InvalidCredentialsError):
            await misconfigured.get_token()
        token = await right.get_token()  # not "check ZOOM_CLIENT_SECRET" for 60 s
        with pytest.raises(InvalidCredentialsError):
            await misconfigured.get_token()  # and never quietly served the fleet's token
    assert token.access_token == fake_zoom.issued_tokens[0]
    assert fake_zoom.tokens_issued == 1


# -- round trips: what one cold fetch costs on Redis ----------------------------------------


class CommandLog:
    """The commands clients send redis-server, as ``MONITOR`` reports them, between marks.

    Commands a script runs are left out: they cost no round trip.
    """

    def __init__(self, redis_url: str) -> None:
        self._client = redis.Redis.from_url(redis_url)
        self._monitor: Any = None
        self._reader: asyncio.Task[None] | None = None
        self._seen: list[list[str]] = []
        self._marks: dict[str, asyncio.Event] = {}

    async def __aenter__(self) -> CommandLog:
        await self._client.ping()  # the marks' connection, opened before MONITOR starts
        self._monitor = self._client.monitor()
        await self._monitor.__aenter__()  # MONITOR is on once this returns
        self._reader = asyncio.create_task(self._read())
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._reader is not None
        self._reader.cancel()
        await asyncio.gather(self._reader, return_exceptions=True)
        await self._monitor.__aexit__(None, None, None)
        await self._client.aclose()

    async def _read(self) -> None:
        async for info in self._monitor.listen():
            if info.get("client_type") == "lua":
                continue  # run inside a script: no round trip of its own
            words = info["command"].split()
            self._seen.append(words)
            if words[:1] == ["ECHO"] and words[1] in self._marks:
                self._marks[words[1]].set()

    async def mark(self, name: str) -> None:
        """Send ``ECHO name`` and wait until MONITOR showed it."""
        self._marks[name] = asyncio.Event()
        await self._client.echo(name)
        await asyncio.wait_for(self._marks[name].wait(), 5)

    def between(self, start: str, end: str) -> list[list[str]]:
        """The commands executed after mark ``start`` and before mark ``end``."""
        names = [words[1] if words[:1] == ["ECHO"] else None for words in self._seen]
        first, last = names.index(start), names.index(end)
        return self._seen[first + 1 : last]


async def test_a_cold_fetch_takes_three_commands_and_the_warm_path_none(
    fake_zoom: FakeZoom, redis_url: str, raw: Any
) -> None:
    store = RedisTokenStore.from_url(redis_url)
    try:
        async with CommandLog(redis_url) as log:
            await log.mark("first-start")
            async with TokenManager(
                fake_zoom.credentials, store=store, token_url=fake_zoom.token_url
            ) as first:
                await first.get_token()  # loads the scripts (SCRIPT LOAD once each)
            await log.mark("first-end")
            await raw.delete(f"zoom_s2s:{{{first.store_key}}}:token")

            await log.mark("cold-start")
            async with TokenManager(
                fake_zoom.credentials, store=store, token_url=fake_zoom.token_url
            ) as cold:
                token = await cold.get_token()
                await log.mark("cold-end")
                for _ in range(100):
                    assert await cold.get_token() == token
                await log.mark("warm-end")
    finally:
        await store.aclose()
    assert fake_zoom.token_requests == 2
    loading = log.between("first-start", "first-end")
    assert not [words for words in loading if words[0] == "EVAL"], "a script was sent whole"
    cold_fetch = log.between("cold-start", "cold-end")
    # Read (token and failure record), lock (with the state), write (and release).
    assert [words[0] for words in cold_fetch] == ["EVALSHA"] * 3, cold_fetch
    assert log.between("cold-end", "warm-end") == []
