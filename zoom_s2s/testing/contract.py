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

Every test then runs against your store (needs ``pytest-asyncio``, in strict
or auto mode). Stores are closed after each test, so ``aclose()`` must be
idempotent. Without ``make_peer`` the cross-client tests use one store twice.
Timing tests use short TTLs (0.3 s to 1 s) and only assert that waits end
well before their timeouts, so they hold on slow CI machines too.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from ..models import AccessToken
from ..stores.base import FailureRecord, LockLease, TokenStore

__all__ = ["StoreContract", "make_token"]

KEY = "contract-key"
OTHER_KEY = "contract-other"
WAIT = 5.0  # seconds a waiter may sleep in the tests; waking must come well before
SKEW = 2.0  # seconds a store may move expires_at (e.g. correcting clock skew)


def make_token(
    lifetime: float = 3600.0, *, scopes: tuple[str, ...] = ("user:read:admin",)
) -> AccessToken:
    """A fresh token with a random secret, issued now and valid for ``lifetime`` seconds."""
    now = time.time()
    return AccessToken(
        access_token=secrets.token_urlsafe(32),
        expires_at=now + lifetime,
        issued_at=now,
        scopes=scopes,
        api_url="https://api.zoom.us",
    )


def _fingerprint(token: AccessToken | None) -> str | None:
    return None if token is None else token.fingerprint


class StoreContract:
    """What every :class:`~zoom_s2s.stores.TokenStore` must do; subclass to run it."""

    pytestmark = [pytest.mark.asyncio]  # also runs under pytest-asyncio's strict mode

    async def make_store(self) -> TokenStore:
        """Return a new, empty store. Subclasses must override this."""
        raise NotImplementedError("subclasses of StoreContract implement make_store()")

    async def make_peer(self, store: TokenStore) -> TokenStore | None:
        """Return another client of ``store``'s backend, or ``None`` if it has none."""
        return None

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

    # -- tokens ---------------------------------------------------------------

    async def test_written_token_reads_back(self, store: TokenStore, peer: TokenStore) -> None:
        token = make_token()
        assert await store.write(KEY, token, generation=1) is True
        for reader in (store, peer):
            got = await reader.read(KEY)
            assert got is not None
            assert got.access_token == token.access_token
            assert got.fingerprint == token.fingerprint
            assert (got.scopes, got.api_url, got.token_type) == (
                token.scopes, token.api_url, token.token_type,
            )
            assert abs(got.expires_at - token.expires_at) < SKEW
            assert abs(got.lifetime - token.lifetime) < SKEW

    async def test_missing_key_reads_none(self, store: TokenStore) -> None:
        assert await store.read(KEY) is None

    async def test_token_is_gone_after_its_expiry(self, store: TokenStore) -> None:
        assert await store.write(KEY, make_token(lifetime=1.0), generation=1)
        assert await store.read(KEY) is not None
        await asyncio.sleep(1.3)
        assert await store.read(KEY) is None

    async def test_expired_token_is_never_returned(self, store: TokenStore) -> None:
        await store.write(KEY, make_token(lifetime=-5.0), generation=1)
        assert await store.read(KEY) is None

    async def test_lower_generation_cannot_overwrite(self, store: TokenStore) -> None:
        newer, older = make_token(), make_token()
        assert await store.write(KEY, newer, generation=2) is True
        assert await store.write(KEY, older, generation=1) is False
        assert _fingerprint(await store.read(KEY)) == newer.fingerprint

    async def test_same_generation_may_write_again(self, store: TokenStore) -> None:
        first, second = make_token(), make_token()
        assert await store.write(KEY, first, generation=3) is True
        assert await store.write(KEY, second, generation=3) is True
        assert _fingerprint(await store.read(KEY)) == second.fingerprint

    async def test_deleted_token_still_fences(self, store: TokenStore) -> None:
        newer = make_token()
        assert await store.write(KEY, newer, generation=2)
        assert await store.delete(KEY, fingerprint=newer.fingerprint) is True
        assert await store.write(KEY, make_token(), generation=1) is False
        assert await store.read(KEY) is None
        assert await store.write(KEY, make_token(), generation=3) is True

    async def test_next_generation_strictly_increases(self, store: TokenStore) -> None:
        numbers = [await store.next_generation(KEY) for _ in range(5)]
        assert numbers == sorted(set(numbers))
        concurrent = await asyncio.gather(*(store.next_generation(KEY) for _ in range(20)))
        assert len(set(concurrent)) == 20
        assert min(concurrent) > max(numbers)

    async def test_next_generation_passes_the_highest_written(self, store: TokenStore) -> None:
        assert await store.write(KEY, make_token(), generation=100)
        generation = await store.next_generation(KEY)
        assert generation > 100
        assert await store.write(KEY, make_token(), generation=generation) is True

    async def test_delete_needs_the_matching_fingerprint(self, store: TokenStore) -> None:
        token = make_token()
        await store.write(KEY, token, generation=1)
        assert await store.delete(KEY, fingerprint=make_token().fingerprint) is False
        assert _fingerprint(await store.read(KEY)) == token.fingerprint
        assert await store.delete(KEY, fingerprint=token.fingerprint) is True
        assert await store.read(KEY) is None
        assert await store.delete(KEY, fingerprint=token.fingerprint) is False

    async def test_peer_sees_writes_and_deletes(self, store: TokenStore, peer: TokenStore) -> None:
        token = make_token()
        await peer.write(KEY, token, generation=1)
        assert _fingerprint(await store.read(KEY)) == token.fingerprint
        assert await store.delete(KEY, fingerprint=token.fingerprint)
        assert await peer.read(KEY) is None

    # -- the lock -------------------------------------------------------------

    async def test_lock_is_exclusive(self, store: TokenStore, peer: TokenStore) -> None:
        lease = await store.acquire_lock(KEY, ttl=10)
        assert lease is not None
        assert lease.key == KEY
        assert await store.acquire_lock(KEY, ttl=10) is None
        assert await peer.acquire_lock(KEY, ttl=10) is None
        assert await store.release_lock(lease) is True
        again = await peer.acquire_lock(KEY, ttl=10)
        assert again is not None
        assert again.owner != lease.owner
        assert await peer.release_lock(again) is True

    async def test_one_of_many_concurrent_acquirers_wins(self, store: TokenStore) -> None:
        leases = await asyncio.gather(*(store.acquire_lock(KEY, ttl=10) for _ in range(10)))
        won = [lease for lease in leases if lease is not None]
        assert len(won) == 1
        assert await store.release_lock(won[0]) is True

    async def test_only_the_owner_releases(self, store: TokenStore, peer: TokenStore) -> None:
        lease = await store.acquire_lock(KEY, ttl=10)
        assert lease is not None
        impostor = LockLease(key=KEY, owner="not-the-owner", ttl=10)
        assert await peer.release_lock(impostor) is False
        assert await peer.acquire_lock(KEY, ttl=10) is None
        assert await store.release_lock(lease) is True
        assert await store.release_lock(lease) is False

    async def test_lock_can_be_taken_over_after_its_ttl(
        self, store: TokenStore, peer: TokenStore
    ) -> None:
        stale = await store.acquire_lock(KEY, ttl=0.3)
        assert stale is not None
        await asyncio.sleep(0.5)
        successor = await peer.acquire_lock(KEY, ttl=10)
        assert successor is not None
        assert await store.release_lock(stale) is False
        assert await store.acquire_lock(KEY, ttl=10) is None  # the stale release freed nothing
        assert await peer.release_lock(successor) is True

    async def test_waiter_wakes_when_the_lock_is_released(
        self, store: TokenStore, peer: TokenStore
    ) -> None:
        lease = await store.acquire_lock(KEY, ttl=30)
        assert lease is not None
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
        lease = await store.acquire_lock(KEY, ttl=30)
        assert lease is not None
        loop = asyncio.get_running_loop()
        waiter = asyncio.create_task(peer.wait_for_change(KEY, timeout=WAIT))
        await asyncio.sleep(0.3)
        assert not waiter.done()
        written_at = loop.time()
        assert await store.write(KEY, make_token(), generation=await store.next_generation(KEY))
        await asyncio.wait_for(waiter, WAIT + 1)
        assert loop.time() - written_at < WAIT / 2, "woke by timeout, not by the write"
        await store.release_lock(lease)

    async def test_wait_returns_at_once_when_unlocked(self, store: TokenStore) -> None:
        loop = asyncio.get_running_loop()
        started = loop.time()
        await store.wait_for_change(KEY, timeout=WAIT)
        assert loop.time() - started < WAIT / 2

    async def test_wait_ends_when_the_lock_ttl_lapses(self, store: TokenStore) -> None:
        assert await store.acquire_lock(KEY, ttl=0.3) is not None
        loop = asyncio.get_running_loop()
        started = loop.time()
        await store.wait_for_change(KEY, timeout=WAIT)
        assert loop.time() - started < WAIT / 2, "slept past the lock's TTL"

    async def test_wait_sleeps_while_locked_and_unchanged(self, store: TokenStore) -> None:
        lease = await store.acquire_lock(KEY, ttl=30)
        assert lease is not None
        loop = asyncio.get_running_loop()
        started = loop.time()
        await asyncio.wait_for(store.wait_for_change(KEY, timeout=0.3), WAIT)
        assert loop.time() - started >= 0.25
        await store.release_lock(lease)

    # -- keys and lifecycle ---------------------------------------------------

    async def test_keys_are_isolated(self, store: TokenStore) -> None:
        token = make_token()
        await store.write(KEY, token, generation=5)
        assert await store.read(OTHER_KEY) is None
        assert await store.delete(OTHER_KEY, fingerprint=token.fingerprint) is False
        assert await store.write(OTHER_KEY, make_token(), generation=1) is True
        lease = await store.acquire_lock(KEY, ttl=10)
        other = await store.acquire_lock(OTHER_KEY, ttl=10)
        assert lease is not None
        assert other is not None
        assert await store.release_lock(other) is True
        assert await store.release_lock(lease) is True
        assert _fingerprint(await store.read(KEY)) == token.fingerprint

    async def test_failure_record_round_trips_and_is_shared(
        self, store: TokenStore, peer: TokenStore
    ) -> None:
        assert await store.read_failure(KEY) is None
        failure = FailureRecord(
            failures=3, retry_at=time.time() + 30, error_type="TokenEndpointError", message="5xx"
        )
        await store.write_failure(KEY, failure)
        assert await peer.read_failure(KEY) == failure
        assert await store.read_failure(OTHER_KEY) is None
        await peer.write_failure(KEY, None)
        assert await store.read_failure(KEY) is None

    async def test_failure_record_outlives_its_retry_moment(self, store: TokenStore) -> None:
        # The count must survive retry_at so the next failure backs off further.
        past = FailureRecord(
            failures=2, retry_at=time.time() - 1, error_type="TokenEndpointError", message="x"
        )
        await store.write_failure(KEY, past)
        assert await store.read_failure(KEY) == past

    async def test_name_is_a_nonempty_string(self, store: TokenStore) -> None:
        assert isinstance(store.name, str)
        assert store.name

    async def test_is_a_token_store(self, store: TokenStore) -> None:
        assert isinstance(store, TokenStore)

    async def test_aclose_is_idempotent(self) -> None:
        store = await self.make_store()
        await store.aclose()
        await store.aclose()
