"""The TokenStore contract as a pytest test class any store can run against itself.

Subclass :class:`StoreContract` in a test module (its name must start with
``Test`` so pytest collects it) and say how to make your store::

    import pytest
    from zoom_s2s.testing.contract import StoreContract

    class TestMyStore(StoreContract):
        @pytest.fixture(autouse=True)
        def _backend(self, tmp_path):          # fixtures the store needs: keep them on self
            self.path = tmp_path

        async def make_store(self):
            return MyStore(self.path)

        async def make_peer(self, store):      # optional: a second client of the same backend,
            return MyStore(self.path)          # standing in for another process or host

        async def make_broken_store(self):     # optional: a store whose backend fails,
            return MyStore("/nonexistent/dir")  # to check errors become StoreError

        async def plant_failure(self, store, key, raw, *, keep_for):  # optional: store
            ...                                 # raw bytes where a FailureRecord.to_json goes

        store_secrets = ("hunter2",)            # optional: never in name, repr or errors

Every test then runs against your store (needs ``pytest-asyncio``, in strict
or auto mode). Stores are closed after each test, so ``aclose()`` must be
idempotent. Without ``make_peer`` the cross-client tests use one store twice;
without ``make_broken_store`` or ``plant_failure`` the tests that need them
are skipped. Timing tests use short TTLs (0.3 s to 2 s) and only assert that
waits end well before their timeouts, so they hold on slow CI machines too.

What the contract pins down, beyond "it stores tokens":

* One read is the whole state: :meth:`~zoom_s2s.stores.TokenStore.read`
  returns the token and the failure record together, and
  :meth:`~zoom_s2s.stores.TokenStore.acquire_lock` returns them too, read with
  the lock taken (or seen taken by another owner).
* The lease is the proof: :meth:`~zoom_s2s.stores.TokenStore.acquire_lock`
  hands out a generation that strictly increases across acquisitions (also
  between clients), and ``acquired_at`` is a monotonic moment taken during
  the call. A write is fenced by its lease: a holder whose lock lapsed cannot
  overwrite its successor's token, and the same lease may write again.
* A write forgets the failure record and wakes waiters, and may release its
  lease's lock in the same step (``release=True``); a refused write changes
  nothing.
* Times never grow: a read never returns an ``expires_at`` later than the one
  written, and a failure record read back says at most the ``retry_in`` that
  was written, less the time since (measured by the store's own clock).
* Bad data is a miss, backend failures are :class:`~zoom_s2s.errors.StoreError`,
  and the store's name hides its secrets.
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, ClassVar

import attrs
import pytest
import pytest_asyncio

from .. import _clock
from ..errors import StoreError
from ..models import AccessToken
from ..stores.base import FailureRecord, LockLease, StoreState, TokenStore, new_owner

__all__ = [
    "HOSTILE_FAILURE_RECORDS",
    "StoreContract",
    "make_failure",
    "make_token",
    "stored_failure",
    "stored_token",
]

KEY = "contract-key"
OTHER_KEY = "contract-other"
WAIT = 5.0  # seconds a waiter may sleep in the tests; waking must come well before
SKEW = 2.0  # seconds a store may shorten expires_at (e.g. by its TTL's rounding)
AGING_SLACK = 0.25  # seconds a failure record's aging may lag the real time elapsed


def make_token(
    lifetime: float = 3600.0, *, scopes: tuple[str, ...] = ("user:read:admin",)
) -> AccessToken:
    """A fresh token with a random secret, issued now and valid for ``lifetime`` seconds."""
    now = _clock.wall()
    return AccessToken(
        access_token=secrets.token_urlsafe(32),
        expires_ts=now + lifetime,
        issued_ts=now,
        scopes=scopes,
        api_url="https://api.zoom.us",
    )


def make_failure(retry_in: float = 30.0, *, failures: int = 3) -> FailureRecord:
    """A failure record as the manager writes it after ``failures`` failed fetches."""
    return FailureRecord(
        failures=failures,
        retry_in=retry_in,
        error_type="TokenEndpointError",
        message="token endpoint answered 503",
    )


def _hostile(**changes: Any) -> str:
    record: dict[str, Any] = json.loads(make_failure(30.0).to_json(keep_for=60.0))
    for name, value in changes.items():
        if value is _DROP:
            del record[name]
        else:
            record[name] = value
    return json.dumps(record)


_DROP = object()

#: Raw failure records a broken or hostile neighbour might leave in a store,
#: each of which must read as "no record" (``None``), never as an exception.
HOSTILE_FAILURE_RECORDS: dict[str, str] = {
    "not-json": "\x00\xff garbage",
    "empty": "",
    "json-list": "[1, 2, 3]",
    "json-null": "null",
    "deeply-nested": "[" * 100_000 + "]" * 100_000,
    "wrong-version": _hostile(v=1),
    "version-as-text": _hostile(v="2"),
    "no-version": _hostile(v=_DROP),
    "negative-retry": _hostile(retry_in=-5),
    "nan-retry": _hostile(retry_in=float("nan")),
    "infinite-retry": _hostile(retry_in=float("inf")),
    "huge-retry": _hostile(retry_in=12345.5).replace("12345.5", "1e400"),  # overflows
    "retry-as-text": _hostile(retry_in="30"),
    "retry-as-bool": _hostile(retry_in=True),
    "no-retry": _hostile(retry_in=_DROP),
    "negative-keep-for": _hostile(keep_for=-1),
    "zero-failures": _hostile(failures=0),
    "negative-failures": _hostile(failures=-3),
    "huge-failures": _hostile(failures=10**18),
    "fractional-failures": _hostile(failures=1.5),
    "failures-as-bool": _hostile(failures=True),
    "failures-as-text": _hostile(failures="3"),
    "error-type-not-a-name": _hostile(error_type="rm -rf /; echo"),
    "error-type-as-number": _hostile(error_type=5),
    "message-as-list": _hostile(message=["x"]),
}


async def stored_token(store: TokenStore, key: str = KEY) -> AccessToken | None:
    """The token ``store`` holds for ``key`` (one :meth:`~zoom_s2s.stores.TokenStore.read`)."""
    return (await store.read(key)).token


async def stored_failure(store: TokenStore, key: str = KEY) -> FailureRecord | None:
    """The failure record ``store`` holds for ``key`` (one ``read``)."""
    return (await store.read(key)).failure


def _fingerprint(token: AccessToken | None) -> str | None:
    return None if token is None else token.fingerprint


class StoreContract:
    """What every :class:`~zoom_s2s.stores.TokenStore` must do; subclass to run it."""

    pytestmark = [pytest.mark.asyncio]  # also runs under pytest-asyncio's strict mode

    #: Strings (a password in the store's URL, ...) that must never appear in the
    #: store's name, its repr or the messages of its errors.
    store_secrets: ClassVar[tuple[str, ...]] = ()

    async def make_store(self) -> TokenStore:
        """Return a new, empty store. Subclasses must override this."""
        raise NotImplementedError("subclasses of StoreContract implement make_store()")

    async def make_peer(self, store: TokenStore) -> TokenStore | None:
        """Return another client of ``store``'s backend, or ``None`` if it has none."""
        return None

    async def make_broken_store(self) -> TokenStore | None:
        """Return a store whose backend fails (unreachable, ...); ``None`` skips those tests."""
        return None

    async def plant_failure(
        self, store: TokenStore, key: str, raw: str, *, keep_for: float
    ) -> None:
        """Put ``raw`` where ``store`` keeps the failure record for ``key``, as the store would.

        Override to let the contract check that hostile records read as ``None``;
        the default skips those tests.
        """
        pytest.skip("the test class does not implement plant_failure()")

    @pytest_asyncio.fixture
    async def store(self) -> AsyncIterator[TokenStore]:
        store = await self.make_store()
        try:
            yield store
        finally:
            await store.aclose()

    @pytest_asyncio.fixture
    async def peer(self, store: TokenStore) -> AsyncIterator[TokenStore]:
        peer = await self.make_peer(store)
        if peer is None:
            yield store
            return
        try:
            yield peer
        finally:
            await peer.aclose()

    @pytest_asyncio.fixture
    async def broken(self) -> AsyncIterator[TokenStore]:
        broken = await self.make_broken_store()
        if broken is None:
            pytest.skip("the test class does not implement make_broken_store()")
        try:
            yield broken
        finally:
            await broken.aclose()

    @staticmethod
    async def take_lock(store: TokenStore, key: str = KEY, *, ttl: float = 10.0) -> LockLease:
        """Take the lock on ``key`` or fail the test."""
        lease = (await store.acquire_lock(key, ttl=ttl)).lease
        assert lease is not None, f"the lock on {key!r} is not free"
        return lease

    async def write_token(self, store: TokenStore, token: AccessToken, key: str = KEY) -> bool:
        """Write ``token`` the way the manager does: under a fresh lease, released after."""
        lease = await self.take_lock(store, key)
        try:
            return await store.write(lease, token)
        finally:
            await store.release_lock(lease)

    # -- tokens ---------------------------------------------------------------

    async def test_written_token_reads_back(self, store: TokenStore, peer: TokenStore) -> None:
        token = make_token()
        assert await self.write_token(store, token) is True
        for reader in (store, peer):
            got = await stored_token(reader, KEY)
            assert got is not None
            assert got.access_token == token.access_token
            assert got.fingerprint == token.fingerprint
            assert (got.scopes, got.api_url, got.token_type) == (
                token.scopes, token.api_url, token.token_type,
            )
            assert abs(got.issued_ts - token.issued_ts) < SKEW
            assert token.expires_ts - SKEW < got.expires_ts <= token.expires_ts

    async def test_read_never_extends_the_expiry(self, store: TokenStore, peer: TokenStore) -> None:
        for lifetime in (0.9, 59.25, 3599.0, 43_200.0):
            token = make_token(lifetime)
            assert await self.write_token(store, token) is True
            for reader in (store, peer):
                got = await stored_token(reader, KEY)
                assert got is not None
                assert got.expires_ts <= token.expires_ts, "the store extended the token's life"

    async def test_missing_key_reads_none(self, store: TokenStore) -> None:
        assert await stored_token(store, KEY) is None

    async def test_token_is_gone_after_its_expiry(
        self, store: TokenStore, peer: TokenStore
    ) -> None:
        assert await self.write_token(store, make_token(lifetime=0.6))
        assert await stored_token(store, KEY) is not None
        await asyncio.sleep(0.8)
        assert await stored_token(store, KEY) is None
        assert await stored_token(peer, KEY) is None

    async def test_expired_token_is_never_returned(self, store: TokenStore) -> None:
        now = time.time()
        expired = attrs.evolve(make_token(), issued_ts=now - 3605, expires_ts=now - 5)
        await self.write_token(store, expired)  # stored or refused: never read
        assert await stored_token(store, KEY) is None

    async def test_delete_needs_the_matching_fingerprint(self, store: TokenStore) -> None:
        token = make_token()
        await self.write_token(store, token)
        assert await store.delete(KEY, fingerprint=make_token().fingerprint) is False
        assert _fingerprint(await stored_token(store, KEY)) == token.fingerprint
        assert await store.delete(KEY, fingerprint=token.fingerprint) is True
        assert await stored_token(store, KEY) is None
        assert await store.delete(KEY, fingerprint=token.fingerprint) is False

    async def test_peer_sees_writes_and_deletes(self, store: TokenStore, peer: TokenStore) -> None:
        token = make_token()
        await self.write_token(peer, token)
        assert _fingerprint(await stored_token(store, KEY)) == token.fingerprint
        assert await store.delete(KEY, fingerprint=token.fingerprint)
        assert await stored_token(peer, KEY) is None

    async def test_read_returns_the_token_and_the_failure_together(
        self, store: TokenStore, peer: TokenStore
    ) -> None:
        assert await store.read(KEY) == StoreState()
        token = make_token()
        lease = await self.take_lock(store)
        assert await store.write(lease, token)
        await store.write_failure(lease, make_failure(30.0), keep_for=60.0)
        await store.release_lock(lease)
        for reader in (store, peer):
            state = await reader.read(KEY)
            assert _fingerprint(state.token) == token.fingerprint
            assert state.failure is not None
            assert state.failure.failures == 3

    # -- the lease: lock, generation, fencing ---------------------------------

    async def test_taking_the_lock_reads_the_state(
        self, store: TokenStore, peer: TokenStore
    ) -> None:
        lease, state = await store.acquire_lock(KEY, ttl=10)
        assert lease is not None
        assert state == StoreState()
        token = make_token()
        assert await store.write(lease, token)
        await store.write_failure(lease, make_failure(30.0), keep_for=60.0)
        await store.release_lock(lease)
        lease, state = await peer.acquire_lock(KEY, ttl=10)
        assert lease is not None
        assert _fingerprint(state.token) == token.fingerprint
        assert state.failure is not None
        assert 0 < state.failure.retry_in <= 30.0
        await peer.release_lock(lease)

    async def test_a_taken_lock_still_reports_the_state(
        self, store: TokenStore, peer: TokenStore
    ) -> None:
        lease = await self.take_lock(store)
        token = make_token()
        assert await store.write(lease, token)
        refused, state = await peer.acquire_lock(KEY, ttl=10)
        assert refused is None
        assert _fingerprint(state.token) == token.fingerprint
        assert state.failure is None
        await store.release_lock(lease)


    async def test_lease_describes_the_acquisition(self, store: TokenStore) -> None:
        before = time.monotonic()
        lease = (await store.acquire_lock(KEY, ttl=10)).lease
        after = time.monotonic()
        assert lease is not None
        assert lease.key == KEY
        assert isinstance(lease.owner, str)
        assert lease.owner
        assert isinstance(lease.generation, int)
        assert lease.generation > 0
        # A monotonic moment taken during the call (before the request went out),
        # so that lease.remaining() errs early, never late.
        assert before <= lease.acquired_at <= after
        assert 0 < lease.remaining() <= 10
        assert lease.held()
        await store.release_lock(lease)

    async def test_generation_strictly_increases_across_acquisitions(
        self, store: TokenStore, peer: TokenStore
    ) -> None:
        generations = []
        for client in (store, peer, store, store, peer, peer, store):
            lease = await self.take_lock(client)
            generations.append(lease.generation)
            if len(generations) % 2:
                assert await client.write(lease, make_token())
            assert await client.release_lock(lease)
        assert generations == sorted(set(generations)), generations

    async def test_generation_increases_across_keys_independently(self, store: TokenStore) -> None:
        first = await self.take_lock(store, KEY)
        other = await self.take_lock(store, OTHER_KEY)
        await store.release_lock(first)
        await store.release_lock(other)
        second = await self.take_lock(store, KEY)
        assert second.generation > first.generation
        await store.release_lock(second)

    async def test_lock_is_exclusive(self, store: TokenStore, peer: TokenStore) -> None:
        lease = await self.take_lock(store)
        assert (await store.acquire_lock(KEY, ttl=10)).lease is None
        assert (await peer.acquire_lock(KEY, ttl=10)).lease is None
        assert await store.release_lock(lease) is True
        again = await self.take_lock(peer)
        assert again.owner != lease.owner
        assert again.generation > lease.generation
        assert await peer.release_lock(again) is True

    async def test_one_of_many_concurrent_acquirers_wins(
        self, store: TokenStore, peer: TokenStore
    ) -> None:
        clients = [store, peer] * 5
        attempts = await asyncio.gather(*(c.acquire_lock(KEY, ttl=10) for c in clients))
        leases = [attempt.lease for attempt in attempts]
        won = [
            (client, lease) for client, lease in zip(clients, leases, strict=True) if lease
        ]
        assert len(won) == 1
        client, lease = won[0]
        assert await client.release_lock(lease) is True

    async def test_only_the_owner_releases(self, store: TokenStore, peer: TokenStore) -> None:
        lease = await self.take_lock(store)
        impostor = LockLease(  # another process's idea of the lease: same key, its own owner
            key=KEY,
            owner=new_owner(),
            generation=lease.generation,
            ttl=10.0,
            acquired_at=time.monotonic(),
        )
        assert await peer.release_lock(impostor) is False
        assert (await peer.acquire_lock(KEY, ttl=10)).lease is None
        assert await store.release_lock(lease) is True
        assert await store.release_lock(lease) is False

    async def test_lock_can_be_taken_over_after_its_ttl(
        self, store: TokenStore, peer: TokenStore
    ) -> None:
        stale = await self.take_lock(store, ttl=0.3)
        await asyncio.sleep(0.5)
        assert not stale.held()
        successor = await self.take_lock(peer)
        assert successor.generation > stale.generation
        assert await store.release_lock(stale) is False
        # The stale release freed nothing.
        assert (await store.acquire_lock(KEY, ttl=10)).lease is None
        assert await peer.release_lock(successor) is True

    async def test_a_lapsed_lease_cannot_overwrite_its_successor(
        self, store: TokenStore, peer: TokenStore
    ) -> None:
        stale = await self.take_lock(store, ttl=0.3)
        await asyncio.sleep(0.5)
        successor = await self.take_lock(peer)
        newer = make_token()
        assert await peer.write(successor, newer) is True
        assert await store.write(stale, make_token()) is False
        assert _fingerprint(await stored_token(store, KEY)) == newer.fingerprint
        assert _fingerprint(await stored_token(peer, KEY)) == newer.fingerprint
        await peer.release_lock(successor)
        assert await store.write(stale, make_token()) is False  # not after the release either

    async def test_a_refused_write_changes_nothing(
        self, store: TokenStore, peer: TokenStore
    ) -> None:
        stale = await self.take_lock(store, ttl=0.3)
        await asyncio.sleep(0.5)
        successor = await self.take_lock(peer)
        newer = make_token()
        assert await peer.write(successor, newer) is True
        await peer.write_failure(successor, make_failure(30.0), keep_for=60.0)
        assert await store.write(stale, make_token()) is False
        assert _fingerprint(await stored_token(peer, KEY)) == newer.fingerprint
        assert await stored_failure(peer, KEY) is not None, "a refused write forgot the failure"
        await peer.release_lock(successor)

    async def test_the_same_lease_may_write_again(self, store: TokenStore) -> None:
        lease = await self.take_lock(store)
        first, second = make_token(), make_token()
        assert await store.write(lease, first) is True
        assert await store.write(lease, second) is True
        assert _fingerprint(await stored_token(store, KEY)) == second.fingerprint
        await store.release_lock(lease)

    async def test_a_write_may_release_the_lock_in_the_same_step(
        self, store: TokenStore, peer: TokenStore
    ) -> None:
        lease = await self.take_lock(store)
        token = make_token()
        assert await store.write(lease, token, release=True) is True
        successor, state = await peer.acquire_lock(KEY, ttl=10)
        assert successor is not None, "the write did not release the lock"
        assert successor.generation > lease.generation
        assert _fingerprint(state.token) == token.fingerprint
        assert await store.release_lock(lease) is False  # released already
        assert await peer.release_lock(successor) is True

    async def test_a_lapsed_lease_never_releases_its_successors_lock(
        self, store: TokenStore, peer: TokenStore
    ) -> None:
        stale = await self.take_lock(store, ttl=0.3)
        await asyncio.sleep(0.5)
        successor = await self.take_lock(peer)
        await store.write(stale, make_token(), release=True)  # accepted: nothing newer written
        assert (await store.acquire_lock(KEY, ttl=10)).lease is None
        assert await peer.write(successor, make_token())
        assert await store.write(stale, make_token(), release=True) is False
        assert (await store.acquire_lock(KEY, ttl=10)).lease is None
        assert await peer.release_lock(successor) is True

    async def test_deleted_token_still_fences(self, store: TokenStore, peer: TokenStore) -> None:
        older = await self.take_lock(store)
        await store.release_lock(older)
        newer = await self.take_lock(peer)
        token = make_token()
        assert await peer.write(newer, token)
        await peer.release_lock(newer)
        assert await store.delete(KEY, fingerprint=token.fingerprint) is True
        assert await store.write(older, make_token()) is False
        assert await stored_token(store, KEY) is None
        latest = make_token()
        assert await self.write_token(store, latest) is True
        assert _fingerprint(await stored_token(peer, KEY)) == latest.fingerprint

    # -- waiting --------------------------------------------------------------

    async def test_waiter_wakes_when_the_lock_is_released(
        self, store: TokenStore, peer: TokenStore
    ) -> None:
        lease = await self.take_lock(store, ttl=30)
        loop = asyncio.get_running_loop()
        waiters = [asyncio.create_task(s.wait_for_change(KEY, timeout=WAIT)) for s in (store, peer)]
        await asyncio.sleep(0.3)
        assert not any(waiter.done() for waiter in waiters), "waited without a change"
        released_at = loop.time()
        assert await store.release_lock(lease)
        await asyncio.wait_for(asyncio.gather(*waiters), WAIT + 1)
        assert loop.time() - released_at < WAIT / 2, "woke by timeout, not by the release"

    async def test_waiter_wakes_when_a_token_is_written(
        self, store: TokenStore, peer: TokenStore
    ) -> None:
        lease = await self.take_lock(store, ttl=30)
        loop = asyncio.get_running_loop()
        waiter = asyncio.create_task(peer.wait_for_change(KEY, timeout=WAIT))
        await asyncio.sleep(0.3)
        assert not waiter.done()
        written_at = loop.time()
        token = make_token()
        assert await store.write(lease, token)
        handed = await asyncio.wait_for(waiter, WAIT + 1)
        assert loop.time() - written_at < WAIT / 2, "woke by timeout, not by the write"
        if handed is not None:  # a state handed over with the wake-up is what a read returns
            assert isinstance(handed, StoreState)
            assert _fingerprint(handed.token) == token.fingerprint
            assert _fingerprint(handed.token) == _fingerprint(await stored_token(peer, KEY))
        await store.release_lock(lease)

    async def test_wait_returns_at_once_when_unlocked(self, store: TokenStore) -> None:
        loop = asyncio.get_running_loop()
        started = loop.time()
        await store.wait_for_change(KEY, timeout=WAIT)
        assert loop.time() - started < WAIT / 2

    async def test_wait_ends_when_the_lock_ttl_lapses(self, store: TokenStore) -> None:
        await self.take_lock(store, ttl=0.3)
        loop = asyncio.get_running_loop()
        started = loop.time()
        await store.wait_for_change(KEY, timeout=WAIT)
        assert loop.time() - started < WAIT / 2, "slept past the lock's TTL"

    async def test_wait_sleeps_while_locked_and_unchanged(self, store: TokenStore) -> None:
        lease = await self.take_lock(store, ttl=30)
        loop = asyncio.get_running_loop()
        started = loop.time()
        await asyncio.wait_for(store.wait_for_change(KEY, timeout=0.3), WAIT)
        assert loop.time() - started >= 0.25
        await store.release_lock(lease)

    # -- failure records ------------------------------------------------------

    async def test_failure_record_round_trips_and_is_shared(
        self, store: TokenStore, peer: TokenStore
    ) -> None:
        assert await stored_failure(store, KEY) is None
        failure = make_failure(30.0)
        lease = await self.take_lock(store)
        await store.write_failure(lease, failure, keep_for=60.0)
        await store.release_lock(lease)
        for reader in (store, peer):
            got = await stored_failure(reader, KEY)
            assert got is not None
            assert (got.failures, got.error_type, got.message) == (
                failure.failures, failure.error_type, failure.message,
            )
            assert failure.retry_in - SKEW < got.retry_in <= failure.retry_in
        assert await stored_failure(store, OTHER_KEY) is None

    async def test_failure_record_ages_by_the_stores_clock(self, store: TokenStore) -> None:
        lease = await self.take_lock(store)
        await store.write_failure(lease, make_failure(2.0), keep_for=10.0)
        await store.release_lock(lease)
        fresh = await stored_failure(store, KEY)
        assert fresh is not None
        assert fresh.retry_in <= 2.0, "a record never says more than was written"
        await asyncio.sleep(1.0)
        aged = await stored_failure(store, KEY)
        assert aged is not None
        assert 0 <= aged.retry_in <= 1.0 + AGING_SLACK, f"not aged: {aged.retry_in}"

    async def test_failure_record_outlives_its_retry_moment(self, store: TokenStore) -> None:
        # The count must survive retry_in so the next failure backs off further.
        lease = await self.take_lock(store)
        await store.write_failure(lease, make_failure(0.2, failures=2), keep_for=30.0)
        await store.release_lock(lease)
        await asyncio.sleep(0.4)
        got = await stored_failure(store, KEY)
        assert got is not None
        assert got.failures == 2
        assert got.retry_in == 0

    async def test_failure_record_is_forgotten_after_keep_for(self, store: TokenStore) -> None:
        lease = await self.take_lock(store)
        await store.write_failure(lease, make_failure(0.0), keep_for=0.5)
        await store.release_lock(lease)
        await asyncio.sleep(0.9)
        assert await stored_failure(store, KEY) is None

    async def test_a_write_forgets_the_failure_record(
        self, store: TokenStore, peer: TokenStore
    ) -> None:
        lease = await self.take_lock(store)
        await store.write_failure(lease, make_failure(30.0), keep_for=60.0)
        assert await stored_failure(peer, KEY) is not None
        assert await store.write(lease, make_token()) is True
        await store.release_lock(lease)
        assert await stored_failure(store, KEY) is None
        assert await stored_failure(peer, KEY) is None

    @pytest.mark.parametrize("shape", sorted(HOSTILE_FAILURE_RECORDS))
    async def test_hostile_failure_record_reads_as_none(
        self, store: TokenStore, shape: str, caplog: pytest.LogCaptureFixture
    ) -> None:
        await self.plant_failure(store, KEY, HOSTILE_FAILURE_RECORDS[shape], keep_for=60.0)
        with caplog.at_level(logging.WARNING):
            assert await stored_failure(store, KEY) is None
        assert any(r.levelno >= logging.WARNING for r in caplog.records), "no warning logged"

    async def test_planted_valid_failure_record_reads_back(self, store: TokenStore) -> None:
        # Checks plant_failure itself, so that the hostile cases above prove something.
        raw = make_failure(30.0).to_json(keep_for=60.0)
        await self.plant_failure(store, KEY, raw, keep_for=60.0)
        got = await stored_failure(store, KEY)
        assert got is not None
        assert got.failures == 3
        assert 0 < got.retry_in <= 30.0

    # -- errors and names -----------------------------------------------------

    async def test_backend_failures_are_store_errors(self, broken: TokenStore) -> None:
        operations: list[Callable[[], Awaitable[object]]] = [
            lambda: broken.read(KEY),
            lambda: broken.acquire_lock(KEY, ttl=10),
            lambda: broken.delete(KEY, fingerprint=make_token().fingerprint),
        ]
        for operation in operations:
            with pytest.raises(StoreError) as info:
                await asyncio.wait_for(operation(), WAIT * 2)
            self._assert_hides_secrets(broken, str(info.value), info.value.store)

    async def test_backend_failures_under_a_lease_are_store_errors(
        self, broken: TokenStore
    ) -> None:
        lease = LockLease(
            key=KEY, owner=new_owner(), generation=1, ttl=10.0, acquired_at=time.monotonic()
        )
        operations: list[Callable[[], Awaitable[object]]] = [
            lambda: broken.write(lease, make_token()),
            lambda: broken.write_failure(lease, make_failure(), keep_for=60.0),
        ]
        for operation in operations:
            with pytest.raises(StoreError) as info:
                await asyncio.wait_for(operation(), WAIT * 2)
            self._assert_hides_secrets(broken, str(info.value), info.value.store)

    async def test_waiting_on_a_broken_store_ends_quietly_or_as_store_error(
        self, broken: TokenStore
    ) -> None:
        try:
            await asyncio.wait_for(broken.wait_for_change(KEY, timeout=0.5), WAIT * 2)
        except StoreError as exc:
            self._assert_hides_secrets(broken, str(exc), exc.store)

    def _assert_hides_secrets(self, store: TokenStore, *texts: str) -> None:
        for secret in self.store_secrets:
            for text in (store.name, repr(store), *texts):
                assert secret not in text, f"a secret shows in {text!r}"

    async def test_name_is_a_nonempty_string_without_secrets(self, store: TokenStore) -> None:
        assert isinstance(store.name, str)
        assert store.name
        self._assert_hides_secrets(store)

    async def test_is_a_token_store(self, store: TokenStore) -> None:
        assert isinstance(store, TokenStore)

    # -- keys and lifecycle ---------------------------------------------------

    async def test_keys_are_isolated(self, store: TokenStore) -> None:
        token = make_token()
        await self.write_token(store, token)
        assert await stored_token(store, OTHER_KEY) is None
        assert await store.delete(OTHER_KEY, fingerprint=token.fingerprint) is False
        assert await self.write_token(store, make_token(), OTHER_KEY) is True
        lease = await self.take_lock(store, KEY)
        other = await self.take_lock(store, OTHER_KEY)
        await store.write_failure(other, make_failure(), keep_for=60.0)
        assert await stored_failure(store, KEY) is None
        assert await store.release_lock(other) is True
        assert await store.release_lock(lease) is True
        assert _fingerprint(await stored_token(store, KEY)) == token.fingerprint

    async def test_aclose_is_idempotent(self) -> None:
        store = await self.make_store()
        await store.aclose()
        await store.aclose()
