"""RedisTokenStore against a hostile or failing Redis.

Real redis-server throughout: tampered TTLs and records, a server frozen with
SIGSTOP, and ACL users holding exactly the commands the store says it needs.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
import pytest_asyncio

from tests.harness.redis_server import RedisServer
from zoom_s2s.errors import ConfigurationError, StoreError, StoreUnavailableError
from zoom_s2s.models import AccessToken
from zoom_s2s.stores import FailureRecord, LockLease, RedisTokenStore, store_from_url
from zoom_s2s.stores.base import encode_record
from zoom_s2s.stores.redis import REDIS_COMMANDS, acl_rules
from zoom_s2s.testing.contract import make_token

redis = pytest.importorskip("redis.asyncio")

pytestmark = pytest.mark.redis

KEY = "c0ffee"
TOKEN_KEY = f"zoom_s2s:{{{KEY}}}:token"
FAILURE_KEY = f"zoom_s2s:{{{KEY}}}:failure"
LOGGER = "zoom_s2s.stores.redis"
PASSWORD = "acl-Pa55-word"
DAY_MS = 86_400_000


@pytest_asyncio.fixture
async def raw(redis_url: str) -> AsyncIterator[Any]:
    client = redis.Redis.from_url(redis_url)
    yield client
    await client.aclose()


@pytest_asyncio.fixture
async def store(redis_url: str) -> AsyncIterator[RedisTokenStore]:
    store = RedisTokenStore.from_url(redis_url)
    yield store
    await store.aclose()


async def lease_for(store: RedisTokenStore, ttl: float = 30) -> LockLease:
    lease = (await store.acquire_lock(KEY, ttl=ttl)).lease
    assert lease is not None
    return lease


def failure(retry_in: float = 30.0) -> FailureRecord:
    return FailureRecord(
        failures=1, retry_in=retry_in, error_type="TokenEndpointError", message="Zoom said 503"
    )


# -- the key's TTL may shorten a token's life, never lengthen it ------------------------


async def test_a_longer_ttl_on_the_token_key_does_not_extend_the_token(
    store: RedisTokenStore, raw: Any
) -> None:
    token = make_token(lifetime=600)
    lease = await lease_for(store)
    assert await store.write(lease, token)
    assert await raw.pexpire(TOKEN_KEY, 10 * 3600 * 1000)  # someone stretches it to 10 h
    got = (await store.read(KEY)).token
    assert got is not None
    assert got.expires_ts == token.expires_ts  # what the fetcher recorded, not 10 h
    assert got.lifetime == token.lifetime


async def test_a_shorter_ttl_on_the_token_key_shortens_the_token(
    store: RedisTokenStore, raw: Any
) -> None:
    token = make_token(lifetime=600)
    lease = await lease_for(store)
    assert await store.write(lease, token)
    assert await raw.pexpire(TOKEN_KEY, 100_000)
    got = (await store.read(KEY)).token
    assert got is not None
    assert abs(got.expires_ts - (time.time() + 100)) < 2
    assert abs(got.lifetime - token.lifetime) < 0.01  # issued_at moves with it


# -- absurd lifetimes are refused before any write, and disbelieved on read --------------


@pytest.mark.parametrize("lifetime", [1e300, float("inf"), 2 * 86400.0])
async def test_a_token_claiming_to_live_too_long_is_refused_and_nothing_is_written(
    store: RedisTokenStore, raw: Any, lifetime: float
) -> None:
    now = time.time()
    token = AccessToken(access_token="forever", expires_ts=now + lifetime, issued_ts=now)
    lease = await lease_for(store)
    await raw.set(FAILURE_KEY, "kept", px=60_000)
    with pytest.raises(StoreError, match="at most 86400 s") as info:
        await store.write(lease, token)
    assert not isinstance(info.value, StoreUnavailableError)
    assert info.value.store == store.name
    assert "forever" not in str(info.value)
    assert await raw.exists(TOKEN_KEY, f"zoom_s2s:{{{KEY}}}:fence") == 0
    assert await raw.get(FAILURE_KEY) == b"kept"
    assert (await store.read(KEY)).token is None


@pytest.mark.parametrize("ttl_ms", ["1e300", "-5", "0.5", "not a number", str(DAY_MS + 1)])
async def test_the_write_script_checks_the_ttl_before_writing_anything(
    store: RedisTokenStore, raw: Any, ttl_ms: str
) -> None:
    """Called as a client that skips the Python checks: an error reply, no half-written key."""
    await raw.set(FAILURE_KEY, "kept", px=60_000)
    keys = store._keys(KEY)
    record = encode_record(make_token(), 1)
    with pytest.raises(redis.ResponseError, match="token TTL must be 0 to 86400000 ms"):
        await store._write_script(
            keys=[keys.token, keys.fence, keys.failure],
            args=[1, record, "fp", ttl_ms, keys.channel],
        )
    assert await raw.exists(TOKEN_KEY, keys.fence) == 0
    assert await raw.get(FAILURE_KEY) == b"kept"


async def test_a_token_key_without_ttl_is_a_miss_with_a_warning(
    store: RedisTokenStore, raw: Any, caplog: pytest.LogCaptureFixture
) -> None:
    lease = await lease_for(store)
    assert await store.write(lease, make_token())
    assert await raw.persist(TOKEN_KEY)
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        assert (await store.read(KEY)).token is None
    assert "no TTL" in caplog.text


async def test_a_record_claiming_to_live_more_than_a_day_is_a_miss_with_a_warning(
    store: RedisTokenStore, raw: Any, caplog: pytest.LogCaptureFixture
) -> None:
    now = time.time()
    planted = AccessToken(access_token="planted", expires_ts=now + 10 * 86400, issued_ts=now)
    await raw.hset(TOKEN_KEY, mapping={"fp": planted.fingerprint, "gen": 1,
                                       "data": encode_record(planted, 1)})
    await raw.pexpire(TOKEN_KEY, 3_600_000)
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        assert (await store.read(KEY)).token is None
    assert "treating as a miss" in caplog.text
    assert "planted" not in caplog.text


# -- the lease: one script, fenced, recognisable on a retry --------------------------------


async def test_a_fetch_costs_three_round_trips(store: RedisTokenStore) -> None:
    """Lock with generation, write, release: one command each (four before the lease)."""
    sent: list[object] = []
    client: Any = store._client
    original = client.execute_command

    async def counting(*args: Any, **options: Any) -> Any:
        sent.append(args[0])
        return await original(*args, **options)

    client.execute_command = counting
    try:
        for _ in range(2):  # the first round may also load the scripts
            sent.clear()
            lease = await lease_for(store)
            assert await store.write(lease, make_token())
            assert await store.release_lock(lease)
    finally:
        del client.execute_command
    assert sent == ["EVALSHA", "EVALSHA", "EVALSHA"]


async def test_a_retried_acquire_returns_the_generation_it_took(
    store: RedisTokenStore, raw: Any
) -> None:
    """A client retry of a lock request whose reply was lost gets the same lease back."""
    keys = store._keys(KEY)
    args = {
        "keys": [keys.lock, keys.gen, keys.fence, keys.token, keys.failure],
        "args": ["ab" * 16, 30_000],
    }
    first = (await store._acquire_script(**args))[0]
    assert first >= 1
    assert (await store._acquire_script(**args))[0] == first  # not "taken", no new generation
    assert await raw.get(keys.gen) == str(first).encode()
    other = {"keys": args["keys"], "args": ["cd" * 16, 30_000]}
    assert (await store._acquire_script(**other))[0] == 0


async def test_a_lapsed_lease_cannot_overwrite_its_successors_token(
    store: RedisTokenStore,
) -> None:
    old = await lease_for(store, ttl=0.2)
    await asyncio.sleep(0.3)
    new = await lease_for(store)
    assert new.generation > old.generation
    token = make_token()
    assert await store.write(new, token)
    assert await store.write(old, make_token()) is False
    await store.write_failure(old, failure(), keep_for=60)  # stale: ignored
    assert (await store.read(KEY)).failure is None
    got = (await store.read(KEY)).token
    assert got is not None
    assert got.fingerprint == token.fingerprint
    assert await store.release_lock(old) is False
    assert await store.release_lock(new) is True


@pytest.mark.parametrize("ttl", [0, -1, float("nan"), float("inf"), 86401])
async def test_absurd_lock_ttls_are_refused(store: RedisTokenStore, ttl: float) -> None:
    with pytest.raises(ConfigurationError, match="lock ttl"):
        await store.acquire_lock(KEY, ttl=ttl)


# -- failure records: aged by Redis's clock, cleared by a write -------------------------------


async def test_a_failure_record_is_aged_by_its_key_ttl(store: RedisTokenStore, raw: Any) -> None:
    lease = await lease_for(store)
    await store.write_failure(lease, failure(retry_in=30), keep_for=60)
    got = (await store.read(KEY)).failure
    assert got is not None
    assert 29 < got.retry_in <= 30
    await raw.pexpire(FAILURE_KEY, 40_000)  # as if 20 s had passed on Redis's clock
    got = (await store.read(KEY)).failure
    assert got is not None
    assert 9 < got.retry_in <= 10
    assert await store.write(lease, make_token())  # a good token forgets the failure
    assert await raw.exists(FAILURE_KEY) == 0
    assert (await store.read(KEY)).failure is None


async def test_a_failure_record_without_ttl_is_ignored_with_a_warning(
    store: RedisTokenStore, raw: Any, caplog: pytest.LogCaptureFixture
) -> None:
    lease = await lease_for(store)
    await store.write_failure(lease, failure(), keep_for=60)
    await raw.persist(FAILURE_KEY)
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        assert (await store.read(KEY)).failure is None
    assert "no TTL" in caplog.text


# -- a frozen Redis fails fast, and the lease is released once it is back ------------------


@pytest.fixture
def frozen_server() -> Iterator[RedisServer]:
    with RedisServer() as server:
        try:
            yield server
        finally:
            if server.running:
                server.resume()


async def test_a_paused_redis_fails_writes_fast_and_the_lease_releases_after_resume(
    frozen_server: RedisServer,
) -> None:
    store = RedisTokenStore.from_url(
        frozen_server.url, socket_timeout=1, socket_connect_timeout=1
    )
    loop = asyncio.get_running_loop()

    async def fails_fast(attempt: Any) -> None:
        started = loop.time()
        with pytest.raises(StoreUnavailableError, match="unreachable") as info:
            await asyncio.wait_for(attempt, 30)  # never a hang
        # Three tries of at most one socket timeout each, plus back-off: not 30 s.
        assert loop.time() - started < 10
        assert isinstance(info.value.__cause__, (redis.TimeoutError, redis.ConnectionError))
        assert info.value.store == store.name

    try:
        lease = await lease_for(store, ttl=120)
        frozen_server.pause()
        await fails_fast(store.write(lease, make_token()))
        frozen_server.resume()
        assert await store.release_lock(lease) is True  # the lease still owns the lock

        lease = await lease_for(store, ttl=120)
        frozen_server.pause()
        await fails_fast(store.release_lock(lease))
        frozen_server.resume()
        # Redis may still run the release it had buffered: either way, no error
        # and the lock is free, not held until its TTL.
        await store.release_lock(lease)
        assert (await store.acquire_lock(KEY, ttl=5)).lease is not None
    finally:
        await store.aclose()


# -- the ACL hint is exactly what the store needs -------------------------------------------


@pytest.fixture(scope="module")
def acl_server() -> Iterator[RedisServer]:
    with RedisServer() as server:
        yield server


@pytest_asyncio.fixture
async def admin(acl_server: RedisServer) -> AsyncIterator[Any]:
    client = redis.Redis.from_url(acl_server.url)
    await client.flushall()
    yield client
    await client.aclose()


async def _set_user(admin: Any, rules: str) -> None:
    await admin.execute_command("ACL", "DELUSER", "zoom")
    await admin.execute_command("ACL", "SETUSER", "zoom", "on", f">{PASSWORD}", *rules.split())
    await admin.script_flush()  # so that SCRIPT LOAD is needed again


async def _every_operation(store: RedisTokenStore, *, wait: float = 10) -> bool:
    """Run the store's whole operation set; return whether a waiter listened by pub/sub."""
    lease = (await store.acquire_lock(KEY, ttl=30)).lease
    assert lease is not None
    peer = RedisTokenStore(store._client)  # shares the client, has its own listener
    waiter = asyncio.create_task(peer.wait_for_change(KEY, timeout=wait))
    try:
        await asyncio.sleep(0.3)
        token = make_token()
        await store.write_failure(lease, failure(), keep_for=60)
        assert (await store.read(KEY)).failure is not None
        assert await store.write(lease, token)
        got = (await store.read(KEY)).token
        assert got is not None
        assert got.fingerprint == token.fingerprint
        assert await store.release_lock(lease)
        await asyncio.wait_for(asyncio.shield(waiter), wait + 5)
        listener = peer._listener
        woken_by_pubsub = listener is not None and bool(listener._subscribed)
        assert await store.delete(KEY, fingerprint=token.fingerprint)
        await store.wait_for_change(KEY, timeout=0.1)  # lock free: returns at once
        return woken_by_pubsub
    finally:
        waiter.cancel()
        with contextlib.suppress(BaseException):
            await waiter
        await peer.aclose()


def _url(server: RedisServer) -> str:
    return f"redis://zoom:{PASSWORD}@127.0.0.1:{server.port}/0"


async def test_a_user_with_exactly_the_listed_commands_can_do_everything(
    acl_server: RedisServer, admin: Any
) -> None:
    await _set_user(admin, f"resetkeys resetchannels -@all {acl_rules()}")
    store = RedisTokenStore.from_url(_url(acl_server))
    try:
        assert await _every_operation(store) is True
    finally:
        await store.aclose()


@pytest.mark.parametrize(
    "missing", [c for c in REDIS_COMMANDS if c not in ("PUBLISH", "SUBSCRIBE")]
)
async def test_without_any_one_required_command_the_error_names_the_acl_hint(
    acl_server: RedisServer, admin: Any, missing: str
) -> None:
    rules = " ".join(rule for rule in acl_rules().split() if rule != f"+{missing.lower()}")
    assert rules != acl_rules()
    await _set_user(admin, f"resetkeys resetchannels -@all {rules}")
    store = RedisTokenStore.from_url(_url(acl_server))
    try:
        with pytest.raises(StoreError) as info:
            await _every_operation(store)
    finally:
        await store.aclose()
    message = str(info.value)
    assert acl_rules() in message  # the full rule set to paste
    assert "can't run this command" in message or "no permissions" in message
    assert PASSWORD not in message
    assert not isinstance(info.value, StoreUnavailableError)


@pytest.mark.parametrize("missing", ["&zoom_s2s:*", "+subscribe"])
async def test_without_channel_rights_or_subscribe_everything_works_and_waiters_poll(
    acl_server: RedisServer, admin: Any, missing: str
) -> None:
    rules = acl_rules().replace(f" {missing}", "").replace(f"{missing} ", "")
    assert rules != acl_rules()
    await _set_user(admin, f"resetkeys resetchannels -@all {rules}")
    store = RedisTokenStore.from_url(_url(acl_server))
    try:
        assert await _every_operation(store) is False  # polled, and woke on the release
    finally:
        await store.aclose()


async def test_without_publish_everything_works_and_waiters_wake_by_their_timeout(
    acl_server: RedisServer, admin: Any
) -> None:
    await _set_user(admin, f"resetkeys resetchannels -@all {acl_rules().replace(' +publish', '')}")
    store = RedisTokenStore.from_url(_url(acl_server))
    try:
        await _every_operation(store, wait=1.0)
    finally:
        await store.aclose()


# -- a database path that is not a number ---------------------------------------------------


@pytest.mark.parametrize(
    "url", ["redis://localhost/abc", "redis://localhost:6379/1/2", "rediss://h/%31x"]
)
def test_a_database_path_that_is_not_a_number_is_refused(url: str) -> None:
    with pytest.raises(ConfigurationError, match="database number"):
        RedisTokenStore.from_url(url)
    with pytest.raises(ConfigurationError, match="database number"):
        store_from_url(url)


@pytest.mark.parametrize(
    ("url", "db"),
    [("redis://localhost", 0), ("redis://localhost/", 0), ("redis://localhost/3", 3),
     ("unix:///run/redis.sock?db=2", 2)],
)
async def test_database_numbers_are_accepted(url: str, db: int) -> None:
    store = RedisTokenStore.from_url(url)
    try:
        assert store._client.connection_pool.connection_kwargs.get("db", 0) == db
    finally:
        await store.aclose()
