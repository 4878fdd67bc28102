"""RedisTokenStore specifics: key layout, clock skew, bad data, outages, passwords."""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import subprocess
import sys
import textwrap
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from tests.harness.redis_server import RedisServer
from zoom_s2s import _clock
from zoom_s2s.errors import ConfigurationError, StoreError, StoreUnavailableError, UsageError
from zoom_s2s.models import AccessToken
from zoom_s2s.stores import FailureRecord, LockLease, RedisTokenStore
from zoom_s2s.stores.redis import store as redis_module
from zoom_s2s.testing.contract import make_token

redis = pytest.importorskip("redis.asyncio")

KEY = "f00d"
PASSWORD = "s3cret-Pa55"
LOGGER = "zoom_s2s.stores.redis"
REPO = Path(__file__).resolve().parents[2]
_now = time.time  # the real clock, kept before any monkeypatching


@pytest_asyncio.fixture
async def raw(redis_url: str) -> AsyncIterator[Any]:
    """A plain client to look at what the store wrote."""
    client = redis.Redis.from_url(redis_url)
    yield client
    await client.aclose()


@pytest_asyncio.fixture
async def store(redis_url: str) -> AsyncIterator[RedisTokenStore]:
    store = RedisTokenStore.from_url(redis_url)
    yield store
    await store.aclose()


@pytest.fixture
def own_server() -> Iterator[RedisServer]:
    """A private server this test may stop and start, with an ACL user ``alice``."""
    acl = ["--user", "alice", "on", f">{PASSWORD}", "~*", "&*", "+@all"]
    with RedisServer(args=acl) as server:
        yield server


def alice_url(server: RedisServer, password: str = PASSWORD) -> str:
    return f"redis://alice:{password}@127.0.0.1:{server.port}/0"


async def lease_for(store: RedisTokenStore, key: str = KEY, ttl: float = 30) -> LockLease:
    lease = (await store.acquire_lock(key, ttl=ttl)).lease
    assert lease is not None
    return lease


async def _pttl_calls(url: str) -> int:
    client = redis.Redis.from_url(url)
    try:
        stats = await client.info("commandstats")
    finally:
        await client.aclose()
    return int(stats.get("cmdstat_pttl", {}).get("calls", 0))


async def until_asleep(url: str, before: int) -> None:
    """Return once a waiter has subscribed and looked at the lock (its PTTL reached the
    server): from then on it sleeps on its subscription. A fixed sleep is not enough on a
    loaded machine."""
    deadline = time.monotonic() + 10
    while await _pttl_calls(url) <= before:
        assert time.monotonic() < deadline, "the waiter never looked at the lock"
        await asyncio.sleep(0.01)
    await asyncio.sleep(0.05)  # the reply is on its way; the waiter reads it even after a stop


async def put(store: RedisTokenStore, token: AccessToken, key: str = KEY) -> LockLease:
    """Write ``token`` under a fresh lease, then release the lock."""
    lease = await lease_for(store, key)
    assert await store.write(lease, token)
    assert await store.release_lock(lease)
    return lease


# -- layout ----------------------------------------------------------------------


@pytest.mark.redis
async def test_keys_share_the_hash_tag_and_never_hold_the_token(
    store: RedisTokenStore, raw: Any
) -> None:
    token = make_token()
    lease = await lease_for(store, ttl=10)
    assert await store.write(lease, token)
    waiter = asyncio.create_task(store.wait_for_change(KEY, timeout=5))
    deadline = time.monotonic() + 10
    while not (channels := [c.decode() for c in await raw.pubsub_channels()]):
        assert time.monotonic() < deadline, "the waiter never subscribed"
        await asyncio.sleep(0.01)
    keys = sorted(k.decode() for k in await raw.keys("*"))
    assert keys == [f"zoom_s2s:{{{KEY}}}:{part}" for part in ("fence", "gen", "lock", "token")]
    assert channels == [f"zoom_s2s:{{{KEY}}}:changed"]
    assert not any(token.access_token in name for name in keys + channels)
    await store.release_lock(lease)
    await waiter


@pytest.mark.redis
async def test_token_hash_holds_fingerprint_generation_and_record_with_ttl(
    store: RedisTokenStore, raw: Any
) -> None:
    token = make_token(lifetime=600)
    await raw.set(f"zoom_s2s:{{{KEY}}}:gen", 2)
    lease = await put(store, token)
    assert lease.generation == 3
    assert await raw.get(f"zoom_s2s:{{{KEY}}}:fence") == b"3"
    fields = await raw.hgetall(f"zoom_s2s:{{{KEY}}}:token")
    assert fields[b"fp"].decode() == token.fingerprint
    assert fields[b"gen"] == b"3"
    assert token.access_token.encode() in fields[b"data"]
    ttl_ms = await raw.pttl(f"zoom_s2s:{{{KEY}}}:token")
    assert 595_000 < ttl_ms <= 600_000


@pytest.mark.redis
async def test_expired_token_is_not_stored(store: RedisTokenStore, raw: Any) -> None:
    lease = await lease_for(store)
    assert await store.write(lease, make_token(lifetime=-1)) is True
    assert await raw.exists(f"zoom_s2s:{{{KEY}}}:token") == 0


@pytest.mark.redis
async def test_reader_trusts_the_key_ttl_over_the_writers_clock(
    store: RedisTokenStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    skew = 300.0  # the writer's clock runs five minutes fast
    token = AccessToken(access_token="skewed", expires_ts=_now() + skew + 3600,
                        issued_ts=_now() + skew)
    lease = await lease_for(store)
    monkeypatch.setattr(_clock, "wall", lambda: _now() + skew)
    await store.write(lease, token)
    monkeypatch.undo()
    got = (await store.read(KEY)).token
    assert got is not None
    assert abs(got.expires_ts - (_now() + 3600)) < 2
    assert abs(got.lifetime - token.lifetime) < 0.01


@pytest.mark.redis
async def test_lock_generation_survives_a_lost_counter(store: RedisTokenStore, raw: Any) -> None:
    await raw.set(f"zoom_s2s:{{{KEY}}}:gen", 40)
    assert (await put(store, make_token())).generation == 41
    await raw.delete(f"zoom_s2s:{{{KEY}}}:gen")  # e.g. evicted
    assert (await lease_for(store)).generation == 42


@pytest.mark.redis
async def test_lock_value_names_owner_and_generation(store: RedisTokenStore, raw: Any) -> None:
    lease = await lease_for(store)
    value = await raw.get(f"zoom_s2s:{{{KEY}}}:lock")
    assert value == f"{lease.owner}:{lease.generation}".encode()
    assert 29_000 < await raw.pttl(f"zoom_s2s:{{{KEY}}}:lock") <= 30_000
    assert (await store.acquire_lock(KEY, ttl=30)).lease is None  # another owner: taken


# -- bad data --------------------------------------------------------------------


@pytest.mark.redis
async def test_corrupt_record_is_a_miss_with_warning(
    store: RedisTokenStore, raw: Any, caplog: pytest.LogCaptureFixture
) -> None:
    await raw.hset(f"zoom_s2s:{{{KEY}}}:token", mapping={"fp": "x", "gen": 1, "data": "{oops"})
    await raw.pexpire(f"zoom_s2s:{{{KEY}}}:token", 60_000)
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        assert (await store.read(KEY)).token is None
    assert "corrupt" in caplog.text
    token = make_token()
    await put(store, token)
    got = (await store.read(KEY)).token
    assert got is not None
    assert got.fingerprint == token.fingerprint


@pytest.mark.redis
async def test_key_of_the_wrong_type_is_a_miss_and_is_replaced(
    store: RedisTokenStore, raw: Any, caplog: pytest.LogCaptureFixture
) -> None:
    await raw.set(f"zoom_s2s:{{{KEY}}}:token", "left over by something else")
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        assert (await store.read(KEY)).token is None
        assert await store.delete(KEY, fingerprint="x") is False
    assert "not a token record" in caplog.text
    await put(store, make_token())
    assert (await store.read(KEY)).token is not None


@pytest.mark.redis
async def test_redis_errors_become_store_errors(store: RedisTokenStore, raw: Any) -> None:
    await raw.set(f"zoom_s2s:{{{KEY}}}:gen", "not a number")
    with pytest.raises(StoreError, match="taking the lock") as info:
        await store.acquire_lock(KEY, ttl=10)
    assert isinstance(info.value.__cause__, redis.ResponseError)
    assert not isinstance(info.value, StoreUnavailableError)
    assert info.value.store == store.name
    assert "+evalsha" in str(info.value)  # the ACL hint


# -- outages ---------------------------------------------------------------------


@pytest.mark.redis
async def test_outage_raises_store_unavailable_quickly_and_recovers(
    own_server: RedisServer,
) -> None:
    store = RedisTokenStore.from_url(alice_url(own_server))
    try:
        lease = await lease_for(store)
        before = await _pttl_calls(alice_url(own_server))
        waiter = asyncio.create_task(store.wait_for_change(KEY, timeout=60))
        await until_asleep(alice_url(own_server), before)
        own_server.stop()
        await asyncio.wait_for(waiter, 15)  # woken by the broken subscription, not the timeout
        attempts = {
            "read": lambda: store.read(KEY),
            "write": lambda: store.write(lease, make_token()),
            "write_failure": lambda: store.write_failure(
                lease, FailureRecord(1, 5.0, "TokenEndpointError", "down"), keep_for=10
            ),
            "delete": lambda: store.delete(KEY, fingerprint="x"),
            "lock": lambda: store.acquire_lock(KEY, ttl=1),
            "release": lambda: store.release_lock(lease),
            "wait": lambda: store.wait_for_change(KEY, timeout=1),
        }
        for name, attempt in attempts.items():
            with pytest.raises(StoreUnavailableError) as info:
                await asyncio.wait_for(attempt(), 15)
            message = str(info.value)
            assert store.name in message, name
            assert PASSWORD not in message, name
            assert info.value.store == store.name
            assert isinstance(info.value.__cause__, redis.ConnectionError), name
        own_server.start()
        token = make_token()
        await put(store, token)
        got = (await store.read(KEY)).token
        assert got is not None
        assert got.fingerprint == token.fingerprint
        lease = (await store.acquire_lock(KEY, ttl=30)).lease
        assert lease is not None
        waiter = asyncio.create_task(store.wait_for_change(KEY, timeout=20))
        await asyncio.sleep(0.3)
        assert not waiter.done()
        await store.release_lock(lease)
        await asyncio.wait_for(waiter, 5)
    finally:
        await store.aclose()


# -- passwords, URLs, lifecycle --------------------------------------------------


@pytest.mark.redis
async def test_password_is_never_shown(own_server: RedisServer) -> None:
    store = RedisTokenStore.from_url(alice_url(own_server))
    try:
        assert PASSWORD not in store.name
        assert PASSWORD not in repr(store)
        assert store.name == f"redis://alice:***@127.0.0.1:{own_server.port}/0"
        await put(store, make_token())  # the password works
    finally:
        await store.aclose()
    wrong = RedisTokenStore.from_url(alice_url(own_server, password="Wr0ng-pa55word"))
    try:
        with pytest.raises(StoreUnavailableError, match="credentials") as info:
            await wrong.read(KEY)
        assert "Wr0ng-pa55word" not in str(info.value)
    finally:
        await wrong.aclose()


def test_invalid_url_error_hides_the_password() -> None:
    with pytest.raises(ConfigurationError) as info:
        RedisTokenStore.from_url(f"redis://alice:{PASSWORD}@localhost:no-port/0")
    assert PASSWORD not in str(info.value)
    assert "alice:***@" in str(info.value)


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("redis://u:p%40ss@h:1/2", "redis://u:***@h:1/2"),
        ("redis://:pw@h", "redis://:***@h"),
        ("unix:///run/r.sock?db=1&password=pw", "unix:///run/r.sock?db=1&password=***"),
        ("rediss://h:6380/0", "rediss://h:6380/0"),
    ],
)
def test_redact_url(url: str, shown: str) -> None:
    assert redis_module.redact_url(url) == shown


@pytest.mark.redis
async def test_callers_client_stays_open(own_server: RedisServer) -> None:
    client = redis.Redis.from_url(alice_url(own_server))
    store = RedisTokenStore(client)
    assert store.name == own_server.url
    assert PASSWORD not in repr(store)
    await put(store, make_token())
    await store.aclose()
    assert await client.ping()
    with pytest.raises(UsageError, match="closed"):
        await store.read(KEY)
    await client.aclose()


def test_braces_in_prefix_or_key_are_rejected() -> None:
    client = redis.Redis()
    with pytest.raises(ConfigurationError):
        RedisTokenStore(client, prefix="a{b}")
    store = RedisTokenStore(client)
    with pytest.raises(ConfigurationError):
        store._keys("a}b")


def test_zoom_s2s_imports_without_redis_and_says_what_to_install() -> None:
    script = textwrap.dedent(
        """
        import sys
        sys.modules["redis"] = None  # make "import redis" fail as if not installed
        import zoom_s2s
        from zoom_s2s import RedisTokenStore, store_from_url
        from zoom_s2s.errors import ConfigurationError
        for attempt in (lambda: RedisTokenStore.from_url("redis://localhost"),
                        lambda: RedisTokenStore(object()),
                        lambda: store_from_url("redis://localhost")):
            try:
                attempt()
            except ConfigurationError as exc:
                print(exc)
        """
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=60
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 3
    assert all("install zoom-s2s[redis]" in line for line in lines)


@pytest.mark.redis
async def test_user_without_channel_rights_still_locks_and_wakes_by_polling() -> None:
    bob = ["--user", "bob", "on", f">{PASSWORD}", "~*", "resetchannels", "+@all"]
    with RedisServer(args=bob) as server:
        url = f"redis://bob:{PASSWORD}@127.0.0.1:{server.port}/0"
        holder, waiter_store = RedisTokenStore.from_url(url), RedisTokenStore.from_url(url)
        try:
            lease = await lease_for(holder)
            assert await holder.write(lease, make_token())  # PUBLISH refused: fine
            loop = asyncio.get_running_loop()
            waiter = asyncio.create_task(waiter_store.wait_for_change(KEY, timeout=20))
            await asyncio.sleep(0.5)
            assert not waiter.done(), "a refused SUBSCRIBE must not turn into a busy loop"
            released_at = loop.time()
            assert await holder.release_lock(lease) is True
            await asyncio.wait_for(waiter, 10)
            assert loop.time() - released_at < 5
        finally:
            await holder.aclose()
            await waiter_store.aclose()


@pytest.mark.redis
async def test_a_long_wait_stays_subscribed_and_silent(
    redis_url: str, raw: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """Waits longer than the client's socket_timeout (redis-py 5 dropped the subscription).

    CI runs this file on redis-py 5 too: there, a blocking read of the
    subscription hit socket_timeout, logged a WARNING and woke every waiter.
    """
    holder = RedisTokenStore.from_url(redis_url)
    waiting = RedisTokenStore.from_url(redis_url, socket_timeout=1)  # 5 s by default
    channel = f"zoom_s2s:{{{KEY}}}:changed"
    try:
        lease = await lease_for(holder)
        with caplog.at_level(logging.DEBUG, logger="zoom_s2s"):
            waiter = asyncio.create_task(waiting.wait_for_change(KEY, timeout=30))
            await asyncio.sleep(3.5)  # three socket timeouts without a message
            assert not waiter.done(), "the waiter was woken without a change"
            assert await raw.pubsub_numsub(channel) == [(channel.encode(), 1)]
            assert await holder.release_lock(lease)
            await asyncio.wait_for(waiter, 5)
            lease = await lease_for(holder)  # and the subscription still serves the next wait
            waiter = asyncio.create_task(waiting.wait_for_change(KEY, timeout=30))
            await asyncio.sleep(1.5)
            assert not waiter.done()
            assert await holder.release_lock(lease)
            await asyncio.wait_for(waiter, 5)
        assert await raw.pubsub_numsub(channel) == [(channel.encode(), 1)]
        assert not [r for r in caplog.records if r.levelno >= logging.WARNING], caplog.text
    finally:
        await holder.aclose()
        await waiting.aclose()


def _abandon_a_store() -> None:
    RedisTokenStore.from_url("redis://127.0.0.1:1/0")  # never connects, never closed
    gc.collect()


def test_unclosed_store_that_owns_its_client_warns() -> None:
    with pytest.warns(ResourceWarning, match="aclose"):
        _abandon_a_store()
