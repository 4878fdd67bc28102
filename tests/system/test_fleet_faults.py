"""Faults in a fleet: a lock holder killed or frozen mid-fetch, Redis going away.

The fleet tests run real processes (``python -m tests.system.fleet_worker``) against
the FakeZoom this test process serves from a thread; counts are taken at the
fake, and every child is killed when the test ends. Sized for 2 cores.
"""

from __future__ import annotations

import asyncio
import signal
import time
from typing import Any

import pytest

from tests.harness.redis_server import RedisServer
from zoom_s2s import TokenManager, ZoomS2SError
from zoom_s2s.errors import StoreUnavailableError
from zoom_s2s.models import fingerprint
from zoom_s2s.stores import RedisTokenStore
from zoom_s2s.testing import FakeZoom, Fault

from ..support import FAST_RETRY
from .fleet_worker import Child, base_config, fleet, read_store

pytestmark = pytest.mark.slow

LOCK_TTL = 3.0
REQUEST_TIMEOUT = 2.5  # < LOCK_TTL, as the manager requires
HANG_GUARD = 20.0  # seconds; only a hang takes this long


def _wait_for_requests(zoom: FakeZoom, count: int) -> None:
    deadline = time.monotonic() + HANG_GUARD
    while zoom.token_requests < count:
        assert time.monotonic() < deadline, f"no token request #{count} at the fake"
        time.sleep(0.005)


def _ready(*children: Child) -> None:
    for child in children:
        child.expect("ready")
        child.expect("gate")


def test_lock_holder_killed_mid_fetch_is_taken_over_with_one_more_fetch(
    zoom: FakeZoom, store_spec: dict[str, Any]
) -> None:
    if store_spec["kind"] == "file":
        # The file store sees the dead holder through its OS lock and takes over at
        # once: with a 60 s lease and a 10 s wait_timeout, waiting out the lease
        # would end in LockTimeoutError.
        manager = {"lock_ttl": 60.0, "request_timeout": REQUEST_TIMEOUT, "wait_timeout": 10.0}
    else:
        # Redis cannot tell a dead holder from a slow one: the lock must lapse
        # (3 s); a 10 s wait_timeout leaves no room for waiting much longer.
        manager = {"lock_ttl": LOCK_TTL, "request_timeout": REQUEST_TIMEOUT, "wait_timeout": 10.0}
    # The holder's request hangs at the fake (and is then dropped unanswered, so
    # the fake never issues a token for it); the fault applies to the first
    # request only. It must outlast the moment the holder is killed.
    zoom.fail_next(1, "token", Fault(delay=2.2, reset=True))
    config = base_config(zoom, store_spec, coroutines=10, steps=["gate", "get"], manager=manager)
    with fleet(config) as processes:
        holder = processes.spawn("holder")
        others = [processes.spawn(f"p{i}") for i in range(3)]
        _ready(holder, *others)
        processes.go([holder], delay=0)
        _wait_for_requests(zoom, 1)  # the holder has the lock and is fetching
        processes.go(others, delay=0)
        time.sleep(0.4)  # let them find the lock taken (either way, they must cope)
        holder.signal(signal.SIGKILL)
        got = [set(child.expect("got")["fingerprints"]) for child in others]
        done = [child.finish() for child in others]
        key = others[0].seen[0]["store_key"]

    assert zoom.token_requests == 2  # the dead holder's, then exactly one more
    assert zoom.tokens_issued == 1
    new = fingerprint(zoom.issued_tokens[0])
    assert got == [{new}] * 3
    assert sorted(d["stats"]["fetches"] for d in done) == [0, 0, 1]
    assert asyncio.run(read_store(store_spec, key)) == new


def test_holder_frozen_after_its_fetch_past_its_lock_ttl_cannot_clobber_its_successor(
    zoom: FakeZoom, store_spec: dict[str, Any]
) -> None:
    """The holder fetches, then freezes (SIGSTOP) before its fenced write.

    It stays frozen past its lock's TTL; another process takes the lock over,
    fetches and stores a newer token. On SIGCONT the old holder writes with its
    older generation: the store refuses, and it adopts the successor's token.
    """
    manager = {"lock_ttl": LOCK_TTL, "request_timeout": REQUEST_TIMEOUT}
    config = base_config(zoom, store_spec, coroutines=5, steps=["gate", "get"], manager=manager)
    with fleet(config) as processes:
        holder = processes.spawn("holder", stop_after_fetch=True)
        others = [processes.spawn(f"p{i}") for i in range(2)]
        _ready(holder, *others)
        processes.go([holder], delay=0)
        frozen_with = holder.expect("stopping")["fingerprint"]
        holder.wait_stopped()
        time.sleep(LOCK_TTL + 0.2)  # the holder's lock lapses while it is "fetching"
        processes.go(others, delay=0)
        got = [set(child.expect("got")["fingerprints"]) for child in others]
        done = [child.finish() for child in others]
        key = others[0].seen[0]["store_key"]
        # The successor's token is stored before the old holder wakes up.
        assert asyncio.run(read_store(store_spec, key)) == fingerprint(zoom.issued_tokens[1])
        holder.signal(signal.SIGCONT)
        holder.expect("continued")
        holder_got = set(holder.expect("got")["fingerprints"])
        holder_done = holder.finish()

    old, new = (fingerprint(token) for token in zoom.issued_tokens)
    assert frozen_with == old
    assert zoom.tokens_issued == 2
    assert got == [{new}] * 2
    assert sorted(d["stats"]["fetches"] for d in done) == [0, 1]
    # The point of this test: the holder did try to write, and the store refused it
    # (older generation). Its token never reached the store or any process.
    assert holder_done["events"].get("stale_write") == 1
    assert holder_got == {new}
    assert asyncio.run(read_store(store_spec, key)) == new


def test_holder_frozen_while_waiting_for_zoom_past_its_lock_ttl(
    zoom: FakeZoom, store_spec: dict[str, Any]
) -> None:
    """SIGSTOP while the holder's token request is in flight, SIGCONT after a takeover.

    Zoom answers (after 1 s) while the holder is frozen. When it resumes, its
    request's deadline has passed on the monotonic clock, so it usually sees a
    timeout rather than the answer waiting in its socket. It must not retry
    (its lock lapsed; a successor holds it and has stored a newer token) but
    read the store; if it does get its answer, its write is fenced off. Either
    way: no fetch beyond the successor's, and everyone ends with that token.
    """
    manager = {"lock_ttl": LOCK_TTL, "request_timeout": REQUEST_TIMEOUT}
    config = base_config(zoom, store_spec, coroutines=5, steps=["gate", "get"], manager=manager)
    zoom.latency = 1.0
    with fleet(config) as processes:
        holder = processes.spawn("holder")
        others = [processes.spawn(f"p{i}") for i in range(2)]
        _ready(holder, *others)
        processes.go([holder], delay=0)
        _wait_for_requests(zoom, 1)
        holder.signal(signal.SIGSTOP)  # Zoom's answer is at least 1 s away
        holder.wait_stopped()
        zoom.latency = 0.0  # only the holder's request was slow
        time.sleep(LOCK_TTL + 0.2)
        processes.go(others, delay=0)
        got = [set(child.expect("got")["fingerprints"]) for child in others]
        for child in others:
            child.finish()
        key = others[0].seen[0]["store_key"]
        successor = fingerprint(zoom.issued_tokens[1])
        assert asyncio.run(read_store(store_spec, key)) == successor
        holder.signal(signal.SIGCONT)
        holder_got = set(holder.expect("got")["fingerprints"])
        holder.finish()

    assert got == [{successor}] * 2
    assert holder_got == {successor}
    assert asyncio.run(read_store(store_spec, key)) == successor
    # The holder's request (answered while it was frozen) and the successor's; no retry.
    assert zoom.token_requests == 2
    assert zoom.tokens_issued == 2


@pytest.mark.redis
async def test_redis_outage_raises_store_unavailable_and_the_same_manager_recovers() -> None:
    with RedisServer() as server:  # our own: this test stops it
        store = RedisTokenStore.from_url(server.url)
        try:
            async with FakeZoom() as zoom, TokenManager(
                zoom.credentials, store=store, token_url=zoom.token_url, retry=FAST_RETRY
            ) as manager:
                server.stop()  # before the manager ever had a token
                with pytest.raises(StoreUnavailableError) as raised:
                    await asyncio.wait_for(manager.get_token(), HANG_GUARD)  # a hang guard
                assert isinstance(raised.value, ZoomS2SError)
                assert raised.value.store == store.name
                assert store.name in str(raised.value)
                assert f"127.0.0.1:{server.port}" in str(raised.value)
                assert zoom.token_requests == 0  # no fetch without the store's lock

                server.start()  # same port, empty data set
                await asyncio.sleep(1.05)  # store errors back off: at most 1 s after one
                token = await asyncio.wait_for(manager.get_token(), HANG_GUARD)
                assert token.access_token == zoom.issued_tokens[-1]
                assert zoom.token_requests == 1
                stored = (await store.read(manager.store_key)).token
                assert stored is not None
                assert stored.fingerprint == token.fingerprint
        finally:
            await store.aclose()


@pytest.mark.redis
async def test_redis_outage_after_invalidate_raises_and_the_same_manager_recovers() -> None:
    with RedisServer() as server:
        store = RedisTokenStore.from_url(server.url)
        try:
            async with FakeZoom() as zoom, TokenManager(
                zoom.credentials, store=store, token_url=zoom.token_url, retry=FAST_RETRY
            ) as manager:
                first = await manager.get_token()
                assert await manager.invalidate(first) is True  # as after a 401
                server.stop()
                with pytest.raises(StoreUnavailableError) as raised:
                    await asyncio.wait_for(manager.get_token(), HANG_GUARD)
                assert store.name in str(raised.value)

                server.start()
                await asyncio.sleep(1.05)  # store errors back off: at most 1 s after one
                second = await asyncio.wait_for(manager.get_token(), HANG_GUARD)
                assert second.fingerprint != first.fingerprint
                assert second.access_token == zoom.issued_tokens[-1]
                assert zoom.token_requests == 2
        finally:
            await store.aclose()
