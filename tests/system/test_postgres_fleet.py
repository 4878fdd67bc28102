"""A fleet of real processes sharing one token through PostgreSQL, and PostgreSQL failing.

The children are ``tests.system.fleet_worker`` processes (as in test_fleet.py and
test_fleet_faults.py) on a :class:`~zoom_s2s.PostgresTokenStore` in a schema of
the test's own; counts are taken at the FakeZoom this process serves from a
thread. The outage tests stop, crash and restart a PostgreSQL server of their own.
"""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.harness.postgres_server import PostgresServer
from zoom_s2s import TokenManager, ZoomS2SError
from zoom_s2s.errors import StoreUnavailableError
from zoom_s2s.models import fingerprint
from zoom_s2s.stores import PostgresTokenStore
from zoom_s2s.testing import FakeZoom, Fault

from ..support import FAST_RETRY
from .conftest import require_asyncpg, require_postgres_server
from .fleet_worker import Child, base_config, fleet, read_store
from .test_postgres_store import QueryCounter

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

LOCK_TTL = 3.0
REQUEST_TIMEOUT = 2.5  # < LOCK_TTL, as the manager requires
HANG_GUARD = 20.0  # seconds; only a hang takes this long


@pytest.fixture
def postgres_spec(postgres_url: str, postgres_schema: str) -> dict[str, Any]:
    return {"kind": "postgres", "url": postgres_url, "schema": postgres_schema}


def _ready(*children: Child) -> None:
    for child in children:
        child.expect("ready")
        child.expect("gate")


def _wait_for_requests(zoom: FakeZoom, count: int) -> None:
    deadline = time.monotonic() + HANG_GUARD
    while zoom.token_requests < count:
        assert time.monotonic() < deadline, f"no token request #{count} at the fake"
        time.sleep(0.005)


def test_cold_start_of_6_processes_x_50_coroutines_fetches_once(
    zoom: FakeZoom, postgres_spec: dict[str, Any]
) -> None:
    zoom.latency = 0.2  # keep the one fetch in flight while the others pile up
    config = base_config(zoom, postgres_spec, coroutines=50, steps=["gate", "get"])
    with fleet(config) as processes:
        children = [processes.spawn(f"p{i}") for i in range(6)]
        _ready(*children)
        processes.go(children)  # all 300 callers start at one wall-clock instant
        got = [child.expect("got")["fingerprints"] for child in children]
        done = [child.finish() for child in children]
        key = children[0].seen[0]["store_key"]

    assert zoom.token_requests == 1
    assert [len(fingerprints) for fingerprints in got] == [50] * 6
    only = fingerprint(zoom.issued_tokens[0])
    assert {fp for fingerprints in got for fp in fingerprints} == {only}
    assert sorted(d["stats"]["fetches"] for d in done) == [0, 0, 0, 0, 0, 1]
    assert asyncio.run(read_store(postgres_spec, key)) == only


def test_lock_holder_killed_mid_fetch_is_taken_over_within_the_lock_ttl(
    zoom: FakeZoom, postgres_spec: dict[str, Any]
) -> None:
    """SIGKILL the holder while its request hangs: its lease row lapses by the database's
    clock, one waiter takes over and fetches once, the others adopt its token."""
    manager = {"lock_ttl": LOCK_TTL, "request_timeout": REQUEST_TIMEOUT, "wait_timeout": 10.0}
    zoom.fail_next(1, "token", Fault(delay=2.2, reset=True))  # the holder's request only
    config = base_config(zoom, postgres_spec, coroutines=10, steps=["gate", "get"],
                         manager=manager)
    with fleet(config) as processes:
        holder = processes.spawn("holder")
        others = [processes.spawn(f"p{i}") for i in range(3)]
        _ready(holder, *others)
        processes.go([holder], delay=0)
        _wait_for_requests(zoom, 1)  # the holder has the lock and is fetching
        processes.go(others, delay=0)
        time.sleep(0.4)  # they find the lock taken and LISTEN
        killed_at = time.monotonic()
        holder.signal(signal.SIGKILL)
        got = [set(child.expect("got")["fingerprints"]) for child in others]
        took = time.monotonic() - killed_at
        done = [child.finish() for child in others]
        key = others[0].seen[0]["store_key"]

    assert zoom.token_requests == 2  # the dead holder's, then exactly one more
    assert zoom.tokens_issued == 1
    new = fingerprint(zoom.issued_tokens[0])
    assert got == [{new}] * 3
    assert sorted(d["stats"]["fetches"] for d in done) == [0, 0, 1]
    assert took < 10.0, f"took {took:.1f} s: the waiters waited past the lock's TTL"
    assert asyncio.run(read_store(postgres_spec, key)) == new


# -- PostgreSQL going away ----------------------------------------------------------


@pytest.fixture
def own_server() -> Iterator[PostgresServer]:
    """A server of the test's own: the test stops it, or crashes it.

    Commits are synchronous here (the shared test server's are not, for speed): a
    committed token must survive a SIGKILL of the postmaster, as on a real server.
    ``fsync`` may stay off, since the operating system keeps what was written.
    """
    require_postgres_server()
    require_asyncpg()
    with PostgresServer(settings={"synchronous_commit": "on"}) as server:
        yield server


async def test_postgres_stopped_raises_store_unavailable_and_the_same_manager_recovers(
    own_server: PostgresServer,
) -> None:
    store = PostgresTokenStore.from_url(own_server.url, connect_timeout=2)
    try:
        async with FakeZoom() as zoom, TokenManager(
            zoom.credentials, store=store, token_url=zoom.token_url, retry=FAST_RETRY
        ) as manager:
            own_server.stop()  # before the manager ever had a token
            with pytest.raises(StoreUnavailableError) as raised:
                await asyncio.wait_for(manager.get_token(), HANG_GUARD)
            assert isinstance(raised.value, ZoomS2SError)
            assert raised.value.store == store.name
            assert f"127.0.0.1:{own_server.port}" in str(raised.value)
            assert "unreachable" in str(raised.value)
            assert own_server.password not in str(raised.value)
            assert zoom.token_requests == 0  # no fetch without the store's lock

            own_server.start()
            await asyncio.sleep(1.05)  # store errors back off: at most 1 s after one
            token = await asyncio.wait_for(manager.get_token(), HANG_GUARD)
            assert token.access_token == zoom.issued_tokens[-1]
            assert zoom.token_requests == 1
    finally:
        await store.aclose()


async def test_postgres_crash_mid_run_wakes_waiters_then_recovers_with_the_token_kept(
    own_server: PostgresServer,
) -> None:
    """A crash (SIGKILL of the postmaster) while a waiter LISTENs and a token is stored.

    The waiter is woken (its connection ended) rather than left asleep; the
    next calls raise StoreUnavailableError; after the restart the stored token
    and its fence are still there (PostgreSQL is durable), so a new process adopts
    it without a fetch, and the lock works again.
    """
    store = PostgresTokenStore.from_url(own_server.url, connect_timeout=2)
    peer = PostgresTokenStore.from_url(own_server.url, connect_timeout=2)
    try:
        async with FakeZoom() as zoom, TokenManager(
            zoom.credentials, store=store, token_url=zoom.token_url, retry=FAST_RETRY
        ) as manager:
            token = await manager.get_token()
            key = manager.store_key
            lease = (await store.acquire_lock("other", ttl=30)).lease
            assert lease is not None
            assert (await peer.read("other")).token is None  # the peer's pool
            counter = QueryCounter(peer)
            waiter = asyncio.create_task(peer.wait_for_change("other", timeout=25))
            await counter.reach(1)  # LISTENing, and it found the lock held: asleep
            counter.restore()
            assert not waiter.done()
            own_server.kill()
            await asyncio.wait_for(waiter, 5)  # woken by the lost connection
            with pytest.raises(StoreUnavailableError):
                await peer.read(key)

            own_server.start()
            stored = (await peer.read(key)).token  # the pool reconnects by itself
            assert stored is not None
            assert stored.fingerprint == token.fingerprint
            async with TokenManager(
                zoom.credentials, store=peer, token_url=zoom.token_url, retry=FAST_RETRY
            ) as other:
                assert (await other.get_token()).fingerprint == token.fingerprint
            assert zoom.token_requests == 1
            # The crash did not free the lock early, nor forget the generation.
            assert (await peer.acquire_lock("other", ttl=5)).lease is None
            assert await store.release_lock(lease)
            again = (await peer.acquire_lock("other", ttl=5)).lease
            assert again is not None
            assert again.generation > lease.generation
            assert await peer.release_lock(again)
    finally:
        await store.aclose()
        await peer.aclose()
