"""TokenManager against broken neighbours and broken clocks.

Each test breaks the manager the way a hostile or broken environment would:
the wall clock stepping, a neighbour's failure record claiming an hour, a
store that cannot write, a process with the wrong secret, a second event loop.
"""

from __future__ import annotations

import asyncio

import pytest

from zoom_s2s import AccessToken, MemoryTokenStore, TokenEvent, TokenManager
from zoom_s2s.errors import (
    InvalidCredentialsError,
    StoreUnavailableError,
    TokenEndpointError,
    TokenError,
    UsageError,
)
from zoom_s2s.events import EventKind
from zoom_s2s.models import Credentials
from zoom_s2s.stores import FailureRecord, LockAttempt, LockLease, StoreState
from zoom_s2s.testing import FakeClock, FakeZoom

from ..support import FAST_RETRY


def make_manager(zoom: FakeZoom, **kwargs: object) -> TokenManager:
    kwargs.setdefault("retry", FAST_RETRY)
    return TokenManager(zoom.credentials, token_url=zoom.token_url, **kwargs)  # type: ignore[arg-type]


# -- local deadlines are monotonic --------------------------------------------------------


async def test_a_wall_clock_step_back_does_not_keep_an_expired_token(
    fake_zoom: FakeZoom, fake_clock: FakeClock
) -> None:
    fake_zoom.expires_in = 2
    async with make_manager(fake_zoom) as tokens:
        first = await tokens.get_token()
        fake_clock.step_wall(-3600)  # the clock steps back an hour
        await fake_clock.sleep(2.1)  # ... and the token really expires
        second = await tokens.get_token()
    assert second.access_token != first.access_token
    assert fake_zoom.token_requests == 2


async def test_a_fetch_made_while_the_clock_was_fast_does_not_last_for_hours(
    fake_zoom: FakeZoom, fake_clock: FakeClock
) -> None:
    fake_zoom.expires_in = 2
    async with make_manager(fake_zoom) as tokens:
        fake_clock.step_wall(3600)  # fast by an hour during the fetch
        first = await tokens.get_token()
        fake_clock.step_wall(-3600)  # NTP corrects it
        await fake_clock.sleep(2.1)
        second = await tokens.get_token()
        assert tokens.stats().expires_in is not None
        assert tokens.stats().expires_in <= 2
    assert second.access_token != first.access_token
    assert fake_zoom.token_requests == 2


# -- min_ttl is enforced -------------------------------------------------------------------


async def test_min_ttl_is_enforced_even_when_it_exceeds_the_refresh_margin(
    fake_zoom: FakeZoom, fake_clock: FakeClock
) -> None:
    fake_zoom.expires_in = 2  # min_ttl is capped at a tenth: 0.2 s
    async with make_manager(fake_zoom, refresh_margin=0, min_ttl=30) as tokens:
        first = await tokens.get_token()
        await fake_clock.sleep(1.9)  # 0.1 s left: less than min_ttl
        second = await tokens.get_token()
        left = second.expires_ts - fake_clock.wall()
    assert second.access_token != first.access_token
    assert left > 1.5


async def test_a_token_that_arrives_expired_is_never_handed_out(
    fake_zoom: FakeZoom, fake_clock: FakeClock
) -> None:
    fake_zoom.expires_in = 1
    fake_zoom.latency = 1.2  # the reply arrives after the token's lifetime
    async with make_manager(fake_zoom, request_timeout=5) as tokens:
        with pytest.raises(TokenError):
            await tokens.get_token()
        assert tokens.stats().token_fingerprint is None


# -- a neighbour's failure record is bounded by the schedule -----------------------------


async def _plant_failure(
    store: MemoryTokenStore, key: str, *, failures: int, retry_in: float
) -> LockLease:
    lease = (await store.acquire_lock(key, ttl=5)).lease
    assert lease is not None
    record = FailureRecord(
        failures=failures, retry_in=retry_in, error_type="TokenEndpointError", message="boom"
    )
    await store.write_failure(lease, record, keep_for=retry_in + 300)
    await store.release_lock(lease)
    return lease


async def test_a_failure_record_claiming_an_hour_is_bounded_by_the_back_off_schedule(
    fake_zoom: FakeZoom, fake_clock: FakeClock
) -> None:
    store = MemoryTokenStore()
    async with make_manager(fake_zoom, store=store) as tokens:
        # A neighbour whose clock is an hour fast (or a tampered record) says "wait 3600 s".
        await _plant_failure(store, tokens.store_key, failures=1, retry_in=3600)
        with pytest.raises(TokenEndpointError) as caught:
            await tokens.get_token()
        assert "waits 1.0 s more" in str(caught.value) or "waits 0." in str(caught.value)
        await fake_clock.sleep(1.1)  # the schedule allows at most 1 s after one failure
        token = await tokens.get_token()
    assert token.access_token == fake_zoom.issued_tokens[0]


async def test_deleting_the_fleet_record_ends_the_wait(
    fake_zoom: FakeZoom, fake_clock: FakeClock
) -> None:
    store = MemoryTokenStore()
    async with make_manager(fake_zoom, store=store) as tokens:
        await _plant_failure(store, tokens.store_key, failures=10, retry_in=60)
        with pytest.raises(TokenEndpointError):
            await tokens.get_token()
        # An operator (or a recovered neighbour) removes the record.
        store._slots[tokens.store_key].failure = None
        await fake_clock.sleep(0.6)  # one store peek interval
        token = await tokens.get_token()
    assert token.access_token == fake_zoom.issued_tokens[0]


# -- a store that cannot write does not make every call fetch -------------------------------


class _WriteFails(MemoryTokenStore):
    """Reads and locks work; every write fails as a dead backend would."""

    backend_errors = (OSError,)
    writes = 0

    async def write(self, lease: LockLease, token: AccessToken, *, release: bool = False) -> bool:
        self.writes += 1
        raise OSError("connection reset by peer")


async def test_a_failing_store_write_keeps_the_fetched_token(fake_zoom: FakeZoom) -> None:
    store = _WriteFails()
    events: list[TokenEvent] = []
    async with make_manager(fake_zoom, store=store, hooks=[events.append]) as tokens:
        got = [await tokens.get_token() for _ in range(20)]
    assert fake_zoom.token_requests == 1
    assert {token.access_token for token in got} == {fake_zoom.issued_tokens[0]}
    assert store.writes == 1  # the 19 later callers were served, not sent to the store
    errors = [e.error for e in events if e.kind is EventKind.STORE_ERROR]
    assert errors
    assert all(e and e.startswith("StoreUnavailableError") for e in errors)


class _WritesFailAtFirst(MemoryTokenStore):
    """A store whose first ``failing`` writes fail, as one coming back after an outage."""

    backend_errors = (OSError,)

    def __init__(self, failing: int) -> None:
        super().__init__()
        self.failing = failing
        self.attempts = 0

    async def write(self, lease: LockLease, token: AccessToken, *, release: bool = False) -> bool:
        self.attempts += 1
        if self.attempts <= self.failing:
            raise OSError("connection reset by peer")
        return await super().write(lease, token, release=release)


async def test_a_token_the_store_could_not_take_is_written_once_it_is_back(
    fake_zoom: FakeZoom, fake_clock: FakeClock
) -> None:
    store = _WritesFailAtFirst(failing=2)
    async with make_manager(fake_zoom, store=store) as tokens:
        token = await tokens.get_token()
        assert (await store.read(tokens.store_key)).token is None  # the first write failed
        deadline = fake_clock.monotonic() + 10  # retries after ~0.5-1 s, then ~1-2 s
        while (stored := (await store.read(tokens.store_key)).token) is None:
            assert fake_clock.monotonic() < deadline, "the kept token never reached the store"
            await fake_clock.sleep(0.05)
        assert stored.access_token == token.access_token
        assert store.attempts == 3
        # Another process on this store now finds the token instead of fetching its own.
        async with make_manager(fake_zoom, store=store) as other:
            assert (await other.get_token()).access_token == token.access_token
    assert fake_zoom.token_requests == 1


class _HeldAtTheLock(_WritesFailAtFirst):
    """The first write fails; the second lock (the write-later task's) waits for ``go``."""

    def __init__(self) -> None:
        super().__init__(failing=1)
        self.locks = 0
        self.waiting = asyncio.Event()
        self.go = asyncio.Event()

    async def acquire_lock(self, key: str, *, ttl: float) -> LockAttempt:
        self.locks += 1
        if self.locks == 2:
            self.waiting.set()
            await self.go.wait()
        return await super().acquire_lock(key, ttl=ttl)


async def test_the_write_later_task_never_stores_a_token_invalidated_while_it_took_the_lock(
    fake_zoom: FakeZoom, fake_clock: FakeClock
) -> None:
    store = _HeldAtTheLock()
    async with make_manager(fake_zoom, store=store) as tokens:
        revoked = await tokens.get_token()
        await asyncio.wait_for(store.waiting.wait(), 5)  # the clock moves on its own
        await tokens.invalidate(revoked)  # Zoom answered 401 with it meanwhile
        store.go.set()
        for _ in range(50):  # the write-later task finishes
            await asyncio.sleep(0)
        assert (await store.read(tokens.store_key)).token is None, "the revoked token came back"
        fresh = await tokens.get_token()
        assert fresh.access_token == fake_zoom.issued_tokens[1]
        assert (await store.read(tokens.store_key)).token == fresh
        assert store.attempts == 2  # the fetch's failed write and the fresh token's
    # Another process on this store adopts the fresh token, never the revoked one.
    async with make_manager(fake_zoom, store=store) as other:
        assert (await other.get_token()).access_token == fresh.access_token
    assert fake_zoom.token_requests == 2


class _Down(MemoryTokenStore):
    backend_errors = (OSError,)
    reads = 0

    async def read(self, key: str) -> StoreState:
        self.reads += 1
        raise OSError("connection refused")


async def test_store_errors_are_backed_off_like_failed_fetches(fake_zoom: FakeZoom) -> None:
    store = _Down()
    async with make_manager(fake_zoom, store=store) as tokens:
        for _ in range(20):
            with pytest.raises(StoreUnavailableError):
                await tokens.get_token()
    assert store.reads == 1  # the other 19 callers got the remembered error at once
    assert fake_zoom.token_requests == 0


# -- one process with a wrong secret ---------------------------------------------------------


async def test_a_wrong_secret_neither_stops_the_fleet_nor_is_served_its_token(
    fake_zoom: FakeZoom,
) -> None:
    store = MemoryTokenStore()
    good = fake_zoom.credentials
    wrong = Credentials(good.account_id, good.client_id, "an-old-rotated-secret")
    async with make_manager(fake_zoom, store=store) as right, TokenManager(
        wrong, store=store, token_url=fake_zoom.token_url, retry=FAST_RETRY
    ) as misconfigured:
        # The misconfigured process fails first and records its failure...
        with pytest.raises(InvalidCredentialsError):
            await misconfigured.get_token()
        # ... which does not stop the correctly configured one,
        token = await right.get_token()
        # and the misconfigured one is not quietly served the fleet's token.
        with pytest.raises(InvalidCredentialsError):
            await misconfigured.get_token()
    assert token.access_token == fake_zoom.issued_tokens[0]
    assert right.store_key != misconfigured.store_key


# -- event loops and closing ------------------------------------------------------------------


def test_a_manager_used_from_a_second_asyncio_run_says_so(zoom: FakeZoom) -> None:
    tokens = TokenManager(zoom.credentials, token_url=zoom.token_url, retry=FAST_RETRY)

    async def fetch() -> AccessToken:
        tokens._token = None  # force a refresh on the second loop
        return await tokens.get_token()

    asyncio.run(fetch())
    with pytest.raises(UsageError, match="another event loop"):
        asyncio.run(fetch())
    asyncio.run(tokens.aclose())


async def test_closing_the_manager_gives_waiting_callers_a_clear_error(
    fake_zoom: FakeZoom, fake_clock: FakeClock
) -> None:
    fake_zoom.latency = 1.0
    tokens = make_manager(fake_zoom)
    waiter = asyncio.create_task(tokens.get_token())
    await fake_clock.sleep(0.2)
    await tokens.aclose()
    with pytest.raises(UsageError, match="closed"):
        await waiter
    with pytest.raises(UsageError, match="closed"):
        await tokens.get_token()
