"""MemoryTokenStore specifics: its URL, and deadlines on the monotonic clock.

The store contract (tests/system/test_store_contract.py) covers the protocol;
these tests cover what only the memory store promises: a wall clock that steps
neither revives an expired token nor stretches a failure record.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from zoom_s2s.errors import ConfigurationError
from zoom_s2s.stores import MemoryTokenStore, store_from_url
from zoom_s2s.testing import FakeClock
from zoom_s2s.testing.contract import make_failure, make_token

KEY = "k"


@pytest_asyncio.fixture
async def store() -> AsyncIterator[MemoryTokenStore]:
    store = MemoryTokenStore()
    yield store
    await store.aclose()


async def test_url_and_name() -> None:
    store = store_from_url("memory://")
    assert isinstance(store, MemoryTokenStore)
    assert store.name == "memory://"
    assert MemoryTokenStore.schemes == ("memory",)


@pytest.mark.parametrize("url", ["memory://host", "memory:///path", "memory://?x=1"])
def test_url_takes_nothing_more(url: str) -> None:
    with pytest.raises(ConfigurationError, match="memory:// takes no host"):
        MemoryTokenStore.from_url(url)


def test_url_takes_no_options() -> None:
    with pytest.raises(ConfigurationError, match="takes no options, got colour"):
        MemoryTokenStore.from_url("memory://", colour="blue")


async def test_repr_counts_keys_and_never_shows_tokens(store: MemoryTokenStore) -> None:
    token = make_token()
    lease = (await store.acquire_lock(KEY, ttl=10)).lease
    assert lease is not None
    await store.write(lease, token)
    assert repr(store) == "MemoryTokenStore(keys=1)"
    assert token.access_token not in repr(store)


async def test_a_wall_clock_stepped_back_does_not_revive_an_expired_token(
    store: MemoryTokenStore, fake_clock: FakeClock
) -> None:
    lease = (await store.acquire_lock(KEY, ttl=10)).lease
    assert lease is not None
    assert await store.write(lease, make_token(lifetime=0.3))
    fake_clock.step_wall(-3600)  # the wall clock steps back an hour
    await fake_clock.sleep(0.4)
    assert (await store.read(KEY)).token is None


async def test_a_stepped_wall_clock_never_lengthens_the_expiry(
    store: MemoryTokenStore, fake_clock: FakeClock
) -> None:
    token = make_token(lifetime=3600.0)
    lease = (await store.acquire_lock(KEY, ttl=10)).lease
    assert lease is not None
    assert await store.write(lease, token)
    fake_clock.step_wall(600)  # forward: the token is not given ten more minutes
    forward = (await store.read(KEY)).token
    assert forward is not None
    assert forward.expires_ts == token.expires_ts
    fake_clock.step_wall(-1200)  # back: the remaining lifetime is kept, not the wall-clock moment
    back = (await store.read(KEY)).token
    assert back is not None
    assert back.expires_ts <= token.expires_ts - 599
    assert 3590 < back.expires_ts - fake_clock.wall() <= 3600


async def test_failure_records_age_on_the_monotonic_clock(
    store: MemoryTokenStore, fake_clock: FakeClock
) -> None:
    lease = (await store.acquire_lock(KEY, ttl=10)).lease
    assert lease is not None
    await store.write_failure(lease, make_failure(30.0), keep_for=60.0)
    fake_clock.step_wall(7200)  # a wall-clock jump changes nothing
    got = (await store.read(KEY)).failure
    assert got is not None
    assert 29.0 < got.retry_in <= 30.0


async def test_the_lock_lapses_on_the_monotonic_clock(
    store: MemoryTokenStore, fake_clock: FakeClock
) -> None:
    lease = (await store.acquire_lock(KEY, ttl=30)).lease
    assert lease is not None
    fake_clock.step_wall(3600)
    assert (await store.acquire_lock(KEY, ttl=30)).lease is None


async def test_a_failure_record_lives_at_least_its_retry_in(
    store: MemoryTokenStore, fake_clock: FakeClock
) -> None:
    lease = (await store.acquire_lock(KEY, ttl=10)).lease
    assert lease is not None
    await store.write_failure(lease, make_failure(5.0), keep_for=0.1)
    await fake_clock.sleep(0.2)
    assert (await store.read(KEY)).failure is not None


async def test_aclose_forgets_everything(store: MemoryTokenStore) -> None:
    lease = (await store.acquire_lock(KEY, ttl=10)).lease
    assert lease is not None
    await store.write(lease, make_token())
    await store.aclose()
    assert (await store.read(KEY)).token is None
    assert repr(store) == "MemoryTokenStore(keys=0)"
