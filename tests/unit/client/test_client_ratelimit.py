"""ZoomClient(rate_limits=...) and the middleware against the fake's real rate limits
(FakeRateLimits), in one process: pacing, 429s shared through the store, daily limits in
both of Zoom's forms, the headers on answers and errors, learning and overrides."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
import pytest_asyncio

from zoom_s2s import MemoryTokenStore, RateLimits, TokenManager, ZoomClient
from zoom_s2s.aiohttp import ZoomAuthMiddleware
from zoom_s2s.errors import DailyLimitExceededError, RateLimitedError
from zoom_s2s.testing import FakeClock, FakeRateLimits, FakeZoom, Fault

from ...support import FAST_RETRY


def on_clock(clock: FakeClock, *args: Any, **kwargs: Any) -> FakeRateLimits:
    """Zoom's rate limits, counted in the test's virtual time."""
    return FakeRateLimits(*args, clock=clock.monotonic, wall=clock.wall, **kwargs)


@pytest_asyncio.fixture
async def limited(fake_clock: FakeClock) -> AsyncIterator[FakeZoom]:
    layer = on_clock(fake_clock, {"Light": 10, "Medium": 5})
    async with FakeZoom(rate_limits=layer, clock=fake_clock.wall) as zoom:
        yield zoom


def manager(zoom: FakeZoom, store: MemoryTokenStore | None = None) -> TokenManager:
    return TokenManager(
        zoom.credentials, token_url=zoom.token_url, retry=FAST_RETRY,
        store=store or MemoryTokenStore(),
    )


async def test_without_configuration_a_burst_is_paced_from_zooms_answers(
    fake_clock: FakeClock,
) -> None:
    """100 concurrent calls, no rate_limits=, a fake allowing 20 Light/s: slower, not failed."""
    layer = on_clock(fake_clock, {"Light": 20})
    async with FakeZoom(rate_limits=layer, clock=fake_clock.wall) as fake, manager(
        fake
    ) as tokens, ZoomClient(tokens, fake.api_base_url, rate_limit_retries=0) as zoom:
        start = fake_clock.monotonic()
        results = await asyncio.gather(*(zoom.get_user() for _ in range(100)),
                                       return_exceptions=True)
        elapsed = fake_clock.monotonic() - start
        assert zoom.rate_limiter is not None
        assert zoom.rate_limiter.stats()["learned_rates"] == {"light": pytest.approx(19.0)}
    assert [r for r in results if isinstance(r, Exception)] == []
    assert layer.refused == {}
    assert elapsed >= 3.5  # 80 requests beyond the fake's first second, at 19/s


async def test_with_rate_limits_the_plan_paces_from_the_first_request(limited: FakeZoom) -> None:
    layer = limited.rate_limits
    assert isinstance(layer, FakeRateLimits)
    async with manager(limited) as tokens, ZoomClient(
        tokens, limited.api_base_url, rate_limits=RateLimits(light=10, headroom=0.1)
    ) as zoom:
        await asyncio.gather(*(zoom.get_user() for _ in range(15)))
        assert zoom.rate_limiter is not None
        assert zoom.rate_limiter.permits == 15
        info = zoom.last_rate_limit
    assert layer.refused == {}
    assert info is not None
    assert info.category == "light"
    assert info.limit == 10


async def test_two_clients_on_one_store_share_the_budget(limited: FakeZoom) -> None:
    store = MemoryTokenStore()
    limits = RateLimits(light=10, headroom=0.1)
    async with manager(limited, store) as one, manager(limited, store) as two, ZoomClient(
        one, limited.api_base_url, rate_limits=limits
    ) as a, ZoomClient(two, limited.api_base_url, rate_limits=limits) as b:
        await asyncio.gather(*(c.get_user() for c in (a, b) * 8))
    assert isinstance(limited.rate_limits, FakeRateLimits)
    assert limited.rate_limits.refused == {}


@pytest.mark.parametrize("form", ["header", "message"])
async def test_a_daily_429_stops_the_fleet_at_once_in_both_forms(form: str) -> None:
    layer = FakeRateLimits({"Light": 1000}, {"Light": 3}, daily_form=form)  # type: ignore[arg-type]
    store = MemoryTokenStore()
    async with FakeZoom(rate_limits=layer) as fake, manager(fake, store) as one, manager(
        fake, store
    ) as two, ZoomClient(one, fake.api_base_url, rate_limits=RateLimits(light=100)) as a, \
            ZoomClient(two, fake.api_base_url, rate_limits=RateLimits(light=100)) as b:
        for _ in range(3):
            await a.get_user()
        with pytest.raises(DailyLimitExceededError) as first:
            await a.get_user()
        # The header form says "Daily-limit, 0 remaining" on the last success: the fleet
        # stops before any 429. The message form shows it only with the one 429.
        assert first.value.sent is (form == "message")
        for client in (a, b, a, b):
            with pytest.raises(DailyLimitExceededError) as held:
                await client.get_user()
            assert not held.value.sent
            assert held.value.retry_at is not None
        assert first.value.rate_limit is not None
        assert first.value.rate_limit.category == "light"
    assert layer.refused == ({"daily": 1} if form == "message" else {})
    assert layer.passed[(fake.credentials.account_id, "Light")] == 3


async def test_header_less_daily_429_is_not_retried_even_without_pacing() -> None:
    layer = FakeRateLimits({"Light": 1000}, {"Light": 1}, daily_form="message")
    async with FakeZoom(rate_limits=layer) as fake, manager(fake) as tokens, ZoomClient(
        tokens, fake.api_base_url
    ) as zoom:
        await zoom.get_user()
        with pytest.raises(DailyLimitExceededError) as info:
            await zoom.get_user()
    assert layer.refused == {"daily": 1}  # raised at once: not taken for a per-second limit
    assert info.value.retry_at is not None
    assert info.value.retry_at.hour == 0


async def test_a_per_user_daily_limit_blocks_that_user_and_endpoint_only() -> None:
    route = "GET /v2/users/{user_id}/meetings"
    layer = FakeRateLimits({"Light": 1000, "Medium": 1000}, per_user_daily={route: 1})
    async with FakeZoom(rate_limits=layer) as fake, manager(fake) as tokens, ZoomClient(
        tokens, fake.api_base_url, rate_limits=RateLimits(light=100, medium=100)
    ) as zoom:
        fake.add_user({"id": "other", "email": "o@example.com"})
        await zoom.request("GET", "/users/me/meetings")
        for _ in range(2):
            with pytest.raises(DailyLimitExceededError):
                await zoom.request("GET", "/users/me/meetings")
        await zoom.request("GET", "/users/other/meetings")
        await zoom.get_user()
    assert layer.refused == {"user-daily": 1}


async def test_a_qps_429_pauses_the_category_and_the_retry_waits_for_it(
    fake_clock: FakeClock,
) -> None:
    layer = on_clock(fake_clock, {"Light": 1000})
    async with FakeZoom(rate_limits=layer) as fake, manager(fake) as tokens, ZoomClient(
        tokens, fake.api_base_url, rate_limits=RateLimits(light=100), max_rate_limit_wait=0.01
    ) as zoom:
        layer.throttle("Light", 0.5)
        start = fake_clock.monotonic()
        await zoom.get_user()  # a 429, then the retry waits out the fleet-wide pause
        assert fake_clock.monotonic() - start >= 0.45
    assert layer.refused == {"throttled": 1}


async def test_rate_category_overrides_the_table_and_teaches_nothing(
    limited: FakeZoom, fake_clock: FakeClock
) -> None:
    async with manager(limited) as tokens, ZoomClient(
        tokens, limited.api_base_url, rate_limits=RateLimits(light=50, medium=50, heavy=2)
    ) as zoom:
        limiter = zoom.rate_limiter
        assert limiter is not None
        assert limiter.category("GET", "/users/abc1/meetings") == "medium"  # the table
        await zoom.request("GET", "/users/me", rate_category="Heavy")
        start = fake_clock.monotonic()
        await zoom.request("GET", "/users/me", rate_category="Heavy")
        assert fake_clock.monotonic() - start >= 0.4  # paced as Heavy, 2/s
        # An overridden request teaches nothing: the caller chose its category.
        assert limiter.category("GET", "/users/me") == "light"


async def test_max_wait_raises_without_calling_zoom(limited: FakeZoom) -> None:
    async with manager(limited) as tokens, ZoomClient(
        tokens, limited.api_base_url, rate_limits=RateLimits(light=1, max_wait=0.1)
    ) as zoom:
        await zoom.get_user()
        before = limited.api_requests
        with pytest.raises(RateLimitedError) as info:
            await zoom.get_user()
        assert not info.value.sent
        assert limited.api_requests == before


async def test_the_middleware_paces_and_stops_at_a_daily_limit(fake_clock: FakeClock) -> None:
    layer = on_clock(fake_clock, {"Light": 10}, {"Light": 12})
    async with FakeZoom(rate_limits=layer) as fake, manager(fake) as tokens:
        auth = ZoomAuthMiddleware(
            tokens, api_url=fake.api_base_url, rate_limits=RateLimits(light=10, headroom=0.1)
        )
        statuses = []
        async with aiohttp.ClientSession(middlewares=(auth,)) as session:

            async def call() -> None:
                async with session.get(f"{fake.api_base_url}/users/me") as response:
                    statuses.append(response.status)

            await asyncio.gather(*(call() for _ in range(12)))
            for _ in range(2):
                with contextlib.suppress(DailyLimitExceededError):
                    await call()  # the first may still reach Zoom (and get its 429)
            with pytest.raises(DailyLimitExceededError):
                await call()
    assert statuses.count(200) == 12
    assert statuses.count(429) <= 1
    assert layer.refused.get("qps", 0) == 0


async def test_httpx_auth_paces_and_stops_at_a_daily_limit(fake_clock: FakeClock) -> None:
    """``zoom_s2s.httpx.ZoomAuth(rate_limits=...)`` on ``httpx.AsyncClient``: the same
    limiter as the middleware's; a request held back raises from the client's call."""
    httpx = pytest.importorskip("httpx")
    from zoom_s2s.httpx import ZoomAuth

    layer = on_clock(fake_clock, {"Light": 10}, {"Light": 12})
    async with FakeZoom(rate_limits=layer) as fake, manager(fake) as tokens:
        auth = ZoomAuth(
            tokens, api_url=fake.api_base_url, rate_limits=RateLimits(light=10, headroom=0.1)
        )
        assert auth.rate_limiter is not None
        statuses = []
        async with httpx.AsyncClient(auth=auth) as http:

            async def call() -> None:
                statuses.append((await http.get(f"{fake.api_base_url}/users/me")).status_code)

            await asyncio.gather(*(call() for _ in range(12)))
            for _ in range(2):
                with contextlib.suppress(DailyLimitExceededError):
                    await call()  # the first may still reach Zoom (and get its 429)
            with pytest.raises(DailyLimitExceededError):
                await call()
        assert auth.rate_limiter.permits >= 12
    assert statuses.count(200) == 12
    assert statuses.count(429) <= 1
    assert layer.refused.get("qps", 0) == 0


# -- the quota ledger against the fake's scopes -----------------------------------------


def _fast(**options: Any) -> FakeRateLimits:
    return FakeRateLimits({"Light": 10_000, "Medium": 10_000, "Heavy": 10_000}, **options)


async def test_a_daily_429_on_creating_users_leaves_reading_users_working() -> None:
    layer = _fast(caps={"user_create": 2})
    async with FakeZoom(rate_limits=layer) as fake, manager(fake) as tokens, ZoomClient(
        tokens, fake.api_base_url
    ) as zoom:
        for n in range(2):
            await zoom.request("POST", "/users", json={"action": "create",
                                                       "user_info": {"email": f"n{n}@x.io"}})
        with pytest.raises(DailyLimitExceededError) as first:
            await zoom.request("POST", "/users", json={"user_info": {"email": "n3@x.io"}})
        assert first.value.sent
        with pytest.raises(DailyLimitExceededError) as held:
            await zoom.request("POST", "/users", json={"user_info": {"email": "n4@x.io"}})
        assert not held.value.sent
        assert (await zoom.get_user(fake.me_id)).id == fake.me_id
        await zoom.request("GET", "/users")
    assert layer.refused == {"cap": 1}


async def test_a_hosts_cap_holds_that_hosts_meetings_and_webinars_and_no_other_hosts() -> None:
    layer = _fast(caps={"meeting_webinar_write": 3})
    store = MemoryTokenStore()
    async with FakeZoom(rate_limits=layer) as fake, manager(fake, store) as one, manager(
        fake, store
    ) as two, ZoomClient(one, fake.api_base_url) as a, ZoomClient(two, fake.api_base_url) as b:
        fake.add_user({"id": "host2", "email": "h2@example.com"})
        meeting = await a.request("POST", f"/users/{fake.me_id}/meetings", json={})
        webinar = await a.request("POST", f"/users/{fake.me_id}/webinars", json={})
        await a.request("PATCH", f"/meetings/{meeting['id']}", json={})
        with pytest.raises(DailyLimitExceededError) as first:
            await a.request("PATCH", f"/meetings/{meeting['id']}", json={})
        assert first.value.sent  # Zoom's count (3) is below the ledger's (100): Zoom says so
        # Every other create or update of that host is held, in the other client too.
        for client, method, path in [
            (b, "PATCH", f"/webinars/{webinar['id']}"),
            (b, "POST", f"/users/{fake.me_id}/meetings"),
            (b, "POST", "/users/me/webinars"),
            (a, "PATCH", f"/meetings/{meeting['id']}"),
        ]:
            with pytest.raises(DailyLimitExceededError) as held:
                await client.request(method, path, json={})
            assert not held.value.sent, (method, path)
        # Another host's go on, and the first host's meetings can still be read.
        created = await b.request("POST", "/users/host2/meetings", json={})
        await b.request("PATCH", f"/meetings/{created['id']}", json={})
        await b.request("GET", f"/meetings/{meeting['id']}")
    assert layer.refused == {"cap": 1}


async def test_an_update_of_a_meeting_another_process_created_learns_its_host_once() -> None:
    layer = _fast()
    store = MemoryTokenStore()
    async with FakeZoom(rate_limits=layer) as fake, manager(fake, store) as one, manager(
        fake, store
    ) as two, ZoomClient(one, fake.api_base_url) as a, ZoomClient(two, fake.api_base_url) as b:
        meeting = await a.request("POST", f"/users/{fake.me_id}/meetings", json={})
        for _ in range(3):
            await b.request("PATCH", f"/meetings/{meeting['id']}", json={})
        assert b.rate_limiter is not None
        assert b.rate_limiter.stats()["remaining"]
    assert fake.stats.by_route()["GET /v2/meetings/{meeting_id}"] == {"200": 1}
    # Counted against the host: 1 create + 3 updates of the 100 a day.
    assert min(b.rate_limiter.remaining.values()) == 96


async def test_the_ledger_refuses_before_zoom_does() -> None:
    layer = _fast()
    async with FakeZoom(rate_limits=layer) as fake, manager(fake) as tokens, ZoomClient(
        tokens, fake.api_base_url
    ) as zoom:
        for _ in range(100):
            await zoom.request("POST", "/groups", json={"name": "g"})
        with pytest.raises(DailyLimitExceededError) as held:
            await zoom.request("POST", "/groups", json={"name": "g"})
    assert not held.value.sent
    assert held.value.retry_at is not None
    assert held.value.retry_at.hour == 0
    assert layer.refused == {}
    assert layer.passed[(fake.credentials.account_id, "Light")] == 100


async def test_a_concurrency_429_retries_that_request_and_pauses_no_one() -> None:
    busy = Fault(
        status=429, headers={"Retry-After": "30", "X-RateLimit-Category": "Light"},
        body={"code": 429, "message": "Too many concurrent requests. Try again later."},
    )
    async with FakeZoom() as fake, manager(fake) as tokens, ZoomClient(
        tokens, fake.api_base_url, max_rate_limit_wait=0.05
    ) as zoom:
        fake.fail_next(1, route="api", fault=busy)
        loop = asyncio.get_running_loop()
        start = loop.time()
        await zoom.get_user(fake.me_id)  # a 429, then its retry
        await zoom.get_user()  # another request of the same category: not paused for 30 s
        assert loop.time() - start < 2
    assert fake.api_requests == 3  # the 429, its retry, the other request
