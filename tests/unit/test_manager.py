"""TokenManager's algorithm, against the fake Zoom on loopback and a MemoryTokenStore."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import aiohttp
import pytest

from zoom_s2s import AccessToken, Credentials, MemoryTokenStore, TokenEvent, TokenManager
from zoom_s2s.errors import (
    ConfigurationError,
    InvalidCredentialsError,
    LockTimeoutError,
    TokenEndpointError,
)
from zoom_s2s.events import EventKind
from zoom_s2s.stores.base import StoreState
from zoom_s2s.testing import FakeClock, FakeZoom, Fault

from ..support import FAST_RETRY, instant_retries, sleep_into_refresh_window


def make_manager(zoom: FakeZoom, **kwargs: object) -> TokenManager:
    kwargs.setdefault("retry", FAST_RETRY)
    return TokenManager(zoom.credentials, token_url=zoom.token_url, **kwargs)  # type: ignore[arg-type]


async def test_500_concurrent_callers_on_a_cold_store_cause_one_token_request(
    fake_zoom: FakeZoom,
) -> None:
    fake_zoom.latency = 0.05
    async with make_manager(fake_zoom, store=MemoryTokenStore()) as tokens:
        results = await asyncio.gather(*(tokens.get_token() for _ in range(500)))
    assert fake_zoom.token_requests == 1
    assert {t.access_token for t in results} == {fake_zoom.issued_tokens[0]}


async def test_a_fresh_token_is_served_from_memory_without_io(fake_zoom: FakeZoom) -> None:
    async with make_manager(fake_zoom) as tokens:
        first = await tokens.get_token()
        # The hot path never yields: the coroutine finishes on its first step.
        coro = tokens.get_token()
        with pytest.raises(StopIteration) as done:
            coro.send(None)
        assert done.value.value is first
    assert fake_zoom.token_requests == 1


async def test_in_the_refresh_window_callers_get_the_current_token_while_one_refresh_runs(
    fake_zoom: FakeZoom, fake_clock: FakeClock
) -> None:
    # expires_in=3: refresh window = last 1.5 s, refresh moment in [exp-1.5, exp-0.75],
    # callers must wait only in the last 0.3 s.
    fake_zoom.expires_in = 3
    async with make_manager(fake_zoom) as tokens:
        old = await tokens.get_token()
        await sleep_into_refresh_window(fake_clock, old)
        fake_zoom.latency = 0.3  # keep the background refresh in flight
        during = [await tokens.get_token() for _ in range(200)]
        assert all(t is old for t in during)
        assert tokens.stats().background_refreshes == 1
        await fake_clock.sleep(0.5)
        new = await tokens.get_token()
    assert new.access_token != old.access_token
    assert fake_zoom.token_requests == 2


async def test_cancelling_waiting_callers_does_not_cancel_the_shared_fetch(
    fake_zoom: FakeZoom, fake_clock: FakeClock
) -> None:
    fake_zoom.latency = 0.3
    async with make_manager(fake_zoom) as tokens:
        callers = [asyncio.create_task(tokens.get_token()) for _ in range(10)]
        await fake_clock.sleep(0.05)
        callers[0].cancel()  # the caller that started the fetch
        callers[5].cancel()
        results = await asyncio.gather(*callers, return_exceptions=True)
        assert isinstance(results[0], asyncio.CancelledError)
        assert isinstance(results[5], asyncio.CancelledError)
        survivors = [r for i, r in enumerate(results) if i not in (0, 5)]
        assert all(isinstance(r, AccessToken) for r in survivors)
        assert len({r.access_token for r in survivors}) == 1  # type: ignore[union-attr]
    assert fake_zoom.token_requests == 1


async def test_when_every_caller_is_cancelled_the_fetch_still_lands(
    fake_zoom: FakeZoom, fake_clock: FakeClock
) -> None:
    fake_zoom.latency = 0.2
    async with make_manager(fake_zoom) as tokens:
        callers = [asyncio.create_task(tokens.get_token()) for _ in range(3)]
        await fake_clock.sleep(0.05)
        for caller in callers:
            caller.cancel()
        await asyncio.gather(*callers, return_exceptions=True)
        await fake_clock.sleep(0.3)
        token = await tokens.get_token()
    assert token.access_token == fake_zoom.issued_tokens[0]
    assert fake_zoom.token_requests == 1


async def test_invalidate_refetches_once_for_many_callers(fake_zoom: FakeZoom) -> None:
    async with make_manager(fake_zoom) as tokens:
        bad = await tokens.get_token()
        fake_zoom.revoke_all()

        async def on_401() -> AccessToken:
            await tokens.invalidate(bad)
            return await tokens.get_token()

        results = await asyncio.gather(*(on_401() for _ in range(50)))
    assert fake_zoom.token_requests == 2
    assert {t.access_token for t in results} == {fake_zoom.issued_tokens[1]}


async def test_invalidate_is_compare_and_delete(fake_zoom: FakeZoom) -> None:
    store = MemoryTokenStore()
    async with make_manager(fake_zoom, store=store) as tokens:
        old = await tokens.get_token()
        assert await tokens.invalidate(old) is True
        new = await tokens.get_token()
        # A late 401 for the old token must not remove the new one.
        assert await tokens.invalidate(old) is False
        assert (await store.read(tokens.store_key)).token == new
        assert await tokens.get_token() is new
    assert fake_zoom.token_requests == 2


async def test_an_invalidated_token_is_not_adopted_back_from_the_store(fake_zoom: FakeZoom) -> None:
    store = MemoryTokenStore()
    async with make_manager(fake_zoom, store=store) as tokens:
        bad = await tokens.get_token()
        await tokens.invalidate(bad)
        # Another process (a stale one) writes the bad token back.
        stale = (await store.acquire_lock(tokens.store_key, ttl=5)).lease
        assert stale is not None
        assert await store.write(stale, bad)
        await store.release_lock(stale)
        fresh = await tokens.get_token()
    assert fresh.access_token != bad.access_token
    assert fake_zoom.token_requests == 2


async def test_managers_sharing_a_store_fetch_once(fake_zoom: FakeZoom) -> None:
    store = MemoryTokenStore()
    async with make_manager(fake_zoom, store=store) as one, make_manager(
        fake_zoom, store=store
    ) as two:
        a, b = await asyncio.gather(one.get_token(), two.get_token())
        assert a.access_token == b.access_token
        assert one.stats().fetches + two.stats().fetches == 1
        assert one.stats().adoptions + two.stats().adoptions >= 1
    assert fake_zoom.token_requests == 1


async def test_a_waiter_is_woken_when_the_lock_holder_writes(
    fake_zoom: FakeZoom, fake_clock: FakeClock
) -> None:
    store = MemoryTokenStore()
    async with make_manager(fake_zoom, store=store) as tokens:
        key = tokens.store_key
        lease = (await store.acquire_lock(key, ttl=30)).lease
        assert lease is not None
        waiter = asyncio.create_task(tokens.get_token())
        await fake_clock.sleep(0.1)
        assert not waiter.done()
        now = fake_clock.wall()
        elsewhere = AccessToken("from-another-process", now + 3600, now)
        await store.write(lease, elsewhere)
        await store.release_lock(lease)
        got = await asyncio.wait_for(waiter, 2)
    assert got == elsewhere
    assert fake_zoom.token_requests == 0


class HandingOverStore(MemoryTokenStore):
    """A store whose wake-up carries the state the holder wrote (as PostgreSQL's
    sealed NOTIFY does); counts reads."""

    def __init__(self) -> None:
        super().__init__()
        self.reads = 0

    async def read(self, key: str) -> StoreState:
        self.reads += 1
        return await super().read(key)

    async def wait_for_change(self, key: str, *, timeout: float) -> StoreState | None:
        await super().wait_for_change(key, timeout=timeout)
        return await super().read(key)  # not counted: it came with the wake-up


async def test_a_waiter_adopts_the_state_its_wake_up_carried_without_reading(
    fake_zoom: FakeZoom, fake_clock: FakeClock
) -> None:
    store = HandingOverStore()
    async with make_manager(fake_zoom, store=store) as tokens:
        key = tokens.store_key
        lease = (await store.acquire_lock(key, ttl=30)).lease
        assert lease is not None
        waiter = asyncio.create_task(tokens.get_token())
        await fake_clock.sleep(0.1)
        assert not waiter.done()
        reads = store.reads
        now = fake_clock.wall()
        elsewhere = AccessToken("handed-over", now + 3600, now)
        await store.write(lease, elsewhere, release=True)
        got = await asyncio.wait_for(waiter, 2)
    assert got == elsewhere
    assert store.reads == reads  # the loop did not read again after the wake-up
    assert fake_zoom.token_requests == 0


async def test_a_lapsed_lock_is_taken_over(fake_zoom: FakeZoom, fake_clock: FakeClock) -> None:
    store = MemoryTokenStore()
    async with make_manager(fake_zoom, store=store) as tokens:
        assert (await store.acquire_lock(tokens.store_key, ttl=0.3)).lease is not None  # holder "dies"
        started = fake_clock.monotonic()
        await tokens.get_token()
        assert fake_clock.monotonic() - started >= 0.25
    assert fake_zoom.token_requests == 1


async def test_a_stuck_lock_holder_gives_a_lock_timeout(
    fake_zoom: FakeZoom, fake_clock: FakeClock
) -> None:
    store = MemoryTokenStore()
    async with make_manager(fake_zoom, store=store, wait_timeout=0.3) as tokens:
        assert (await store.acquire_lock(tokens.store_key, ttl=60)).lease is not None
        with pytest.raises(LockTimeoutError, match="wait_timeout"):
            await tokens.get_token()
    assert fake_zoom.token_requests == 0


async def test_bad_credentials_fail_every_waiter_with_one_request(fake_zoom: FakeZoom) -> None:
    wrong = Credentials(fake_zoom.credentials.account_id, "fake-client-id", "wrong-secret")
    async with TokenManager(wrong, token_url=fake_zoom.token_url, retry=FAST_RETRY) as tokens:
        results = await asyncio.gather(
            *(tokens.get_token() for _ in range(20)), return_exceptions=True
        )
        assert all(isinstance(r, InvalidCredentialsError) for r in results)
        # Remembered for a back-off: callers learn at once, Zoom is not asked again.
        with pytest.raises(InvalidCredentialsError, match="remembered"):
            await tokens.get_token()
    assert fake_zoom.token_requests == 1


async def test_a_failing_background_refresh_keeps_serving_the_valid_token(
    fake_zoom: FakeZoom, fake_clock: FakeClock
) -> None:
    fake_zoom.expires_in = 3
    async with make_manager(fake_zoom) as tokens:
        old = await tokens.get_token()
        await sleep_into_refresh_window(fake_clock, old)
        fake_zoom.fail_next(100, fault=Fault(status=500))
        with instant_retries():
            assert await tokens.get_token() is old  # starts the refresh
            await fake_clock.sleep(0.2)  # FAST_RETRY gives up after 4 attempts
        for _ in range(50):
            assert await tokens.get_token() is old
        stats = tokens.stats()
    assert stats.failures == 1
    assert stats.background_refreshes == 1  # backing off: no new refresh per call
    assert fake_zoom.token_requests == 1 + FAST_RETRY.attempts


async def test_short_lifetimes_do_not_cause_a_refresh_loop(
    fake_zoom: FakeZoom, fake_clock: FakeClock
) -> None:
    fake_zoom.expires_in = 1
    async with make_manager(fake_zoom) as tokens:
        deadline = fake_clock.monotonic() + 2.5
        while fake_clock.monotonic() < deadline:
            token = await tokens.get_token()
            assert token.remaining(fake_clock.wall()) > 0
            await fake_clock.sleep(0.001)
    # About one fetch per 0.5-0.75 s of lifetime used, never one per call.
    assert 3 <= fake_zoom.token_requests <= 7


async def test_events_reach_hooks_and_a_failing_hook_is_contained(fake_zoom: FakeZoom) -> None:
    seen: list[TokenEvent] = []

    def broken(_event: TokenEvent) -> None:
        raise RuntimeError("hook bug")

    async with make_manager(fake_zoom, hooks=[broken, seen.append]) as tokens:
        token = await tokens.get_token()
        await tokens.invalidate(token)
    kinds = [e.kind for e in seen]
    assert kinds == [EventKind.FETCHED, EventKind.WAITED, EventKind.INVALIDATED]
    assert all(e.token_fingerprint == token.fingerprint for e in seen)
    assert seen[0].duration is not None


async def test_a_closed_manager_refuses_work_and_closes_its_own_session(
    fake_zoom: FakeZoom,
) -> None:
    tokens = make_manager(fake_zoom)
    await tokens.get_token()
    session = tokens._session.get()  # the one it made for the fetch
    assert not session.closed
    await tokens.aclose()
    assert session.closed
    with pytest.raises(RuntimeError, match="closed"):
        await tokens.get_token()
    await tokens.aclose()  # idempotent


async def test_an_injected_session_and_store_are_left_open(fake_zoom: FakeZoom) -> None:
    store = MemoryTokenStore()
    async with aiohttp.ClientSession() as session:
        async with make_manager(fake_zoom, session=session, store=store) as tokens:
            token = await tokens.get_token()
        assert not session.closed
        assert (await store.read(tokens.store_key)).token == token


async def test_transient_failures_reach_waiting_callers_as_token_endpoint_errors(
    fake_zoom: FakeZoom,
) -> None:
    fake_zoom.fail_next(10, fault=Fault(status=503))
    async with make_manager(fake_zoom) as tokens:
        with pytest.raises(TokenEndpointError, match="HTTP 503"):
            await tokens.get_token()


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"lock_ttl": 5, "request_timeout": 10}, "must exceed request_timeout"),
        ({"refresh_margin": -1}, "refresh_margin must be a non-negative number"),
        ({"lock_ttl": 0}, "lock_ttl must be positive"),
        ({"request_timeout": 0}, "request_timeout must be positive"),
    ],
)
def test_inconsistent_timings_are_configuration_errors(
    kwargs: dict[str, float], match: str
) -> None:
    with pytest.raises(ConfigurationError, match=match):
        TokenManager(Credentials("a", "c", "s"), **kwargs)  # type: ignore[arg-type]


def test_credentials_must_be_credentials() -> None:
    bad: Callable[..., object] = TokenManager
    with pytest.raises(ConfigurationError, match=r"Credentials\.from_env"):
        bad({"account_id": "a"})


def test_store_key_is_a_fingerprint_not_the_secret() -> None:
    creds = Credentials("acct", "client", "top-secret-value")
    tokens = TokenManager(creds)
    assert "top-secret-value" not in tokens.store_key
    assert "top-secret-value" not in repr(tokens)
    other = TokenManager(creds, token_url="https://zoomgov.com/oauth/token")
    assert other.store_key != tokens.store_key  # ZoomGov tokens never mix with zoom.us ones


async def test_a_failure_is_remembered_in_the_store_for_the_whole_fleet(
    fake_zoom: FakeZoom, fake_clock: FakeClock
) -> None:
    store = MemoryTokenStore()
    fake_zoom.fail_next(100, fault=Fault(status=503))
    async with make_manager(fake_zoom, store=store) as one, make_manager(
        fake_zoom, store=store
    ) as two:
        with pytest.raises(TokenEndpointError, match="HTTP 503"):
            await one.get_token()
        asked = fake_zoom.token_requests
        assert asked == FAST_RETRY.attempts
        # The other "process" learns from the store and does not ask Zoom.
        with pytest.raises(TokenEndpointError, match="the fleet waits"):
            await two.get_token()
        assert fake_zoom.token_requests == asked
        failure = (await store.read(one.store_key)).failure
        assert failure is not None
        assert failure.failures == 1
        # Once the back-off (under 1 s after one failure) ends, a fetch succeeds and
        # clears the record.
        fake_zoom.clear_faults()
        await fake_clock.sleep(1.05)
        token = await two.get_token()
        assert (await store.read(one.store_key)).failure is None
    assert token.access_token == fake_zoom.issued_tokens[0]


async def test_remembered_bad_credentials_stay_invalid_credentials_across_the_fleet(
    fake_zoom: FakeZoom,
) -> None:
    store = MemoryTokenStore()
    wrong = Credentials(fake_zoom.credentials.account_id, "fake-client-id", "wrong-secret")
    async with TokenManager(
        wrong, store=store, token_url=fake_zoom.token_url, retry=FAST_RETRY
    ) as one, TokenManager(
        wrong, store=store, token_url=fake_zoom.token_url, retry=FAST_RETRY
    ) as two:
        with pytest.raises(InvalidCredentialsError):
            await one.get_token()
        with pytest.raises(InvalidCredentialsError, match="the fleet waits"):
            await two.get_token()
    assert fake_zoom.token_requests == 1


def test_token_url_defaults_to_zoom_or_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    creds = Credentials("a", "c", "s")
    monkeypatch.delenv("ZOOM_TOKEN_URL", raising=False)
    assert TokenManager(creds).token_url == "https://zoom.us/oauth/token"
    monkeypatch.setenv("ZOOM_TOKEN_URL", "https://zoomgov.com/oauth/token")
    assert TokenManager(creds).token_url == "https://zoomgov.com/oauth/token"
    assert TokenManager(creds, token_url="http://127.0.0.1:1/t").token_url.endswith("/t")
    monkeypatch.setenv("ZOOM_TOKEN_URL", "not a url")
    with pytest.raises(ConfigurationError, match="token_url"):
        TokenManager(creds)


async def test_stats_tell_when_a_call_was_last_answered_from_memory(
    fake_zoom: FakeZoom, fake_clock: FakeClock
) -> None:
    async with make_manager(fake_zoom) as tokens:
        await tokens.get_token()  # the fetch: not answered from memory
        assert tokens.stats().last_used is None
        await tokens.get_token()
        assert tokens.stats().last_used == fake_clock.monotonic()
        fake_clock.advance(7.5)
        stats = tokens.stats()
        assert stats.last_used is not None
        assert fake_clock.monotonic() - stats.last_used == 7.5  # idle that long
        assert tokens.peek_token() is not None  # the blocking faces' path tells it too
        assert tokens.stats().last_used == fake_clock.monotonic()
        assert fake_zoom.token_requests == 1
