"""zoom_s2s.ratelimit: RateLimits, the category table, the headers, and the RateLimiter
on in-process stores (the fleet tests are in tests/system/test_ratelimit_*.py)."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from typing import Any, get_args

import pytest

from zoom_s2s import MemoryTokenStore
from zoom_s2s.errors import (
    ConfigurationError,
    DailyLimitExceededError,
    RateLimitedError,
    StoreUnavailableError,
)
from zoom_s2s.ratelimit import (
    CategoryTable,
    RateLimiter,
    RateLimits,
    category_name,
    path_shape,
    rate_limit_info,
    rate_scope,
)
from zoom_s2s.ratelimit.headers import is_daily_message, is_per_user_message
from zoom_s2s.ratelimit.limiter import _LEAD, LEASE_SECONDS
from zoom_s2s.stores import Pause, Permit, RateBudget
from zoom_s2s.stores.budget import Tally
from zoom_s2s.testing import FakeClock

PER_USER_DAILY = (
    "You have exceeded the daily rate limit (100) of Meeting Create/Update API requests "
    "permitted for this particular user. You may resume these requests at GMT 00:00:00."
)
CATEGORY_DAILY = (
    "You have exceeded the daily rate limit (30000) of Heavy API requests for this account. "
    "You may resume these requests at GMT 00:00:00."
)
QPS = "You have reached the maximum per-second rate limit for this API. Try again later."


# -- RateLimits ---------------------------------------------------------------------


def test_for_plan_is_zooms_published_table() -> None:
    pro = RateLimits.for_plan("pro")
    assert (pro.light, pro.medium, pro.heavy) == (30, 20, 10)
    assert pro.resource_intensive == pytest.approx(10 / 60)
    business = RateLimits.for_plan("Enterprise", max_wait=5)
    assert (business.light, business.medium, business.heavy) == (80, 60, 40)
    assert business.resource_intensive == pytest.approx(20 / 60)
    assert business.max_wait == 5
    free = RateLimits.for_plan("free")
    assert (free.light, free.medium, free.heavy) == (4, 2, 1)


@pytest.mark.parametrize(
    "kwargs",
    [{"light": 0}, {"light": -1}, {"light": float("inf")}, {"light": True}, {"burst": 0},
     {"headroom": 1}, {"max_wait": -1}, {"default_category": "fast"}],
)
def test_bad_rate_limits_are_configuration_errors(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ConfigurationError):
        RateLimits(**kwargs)


def test_unknown_plan_names_the_known_ones() -> None:
    with pytest.raises(ConfigurationError, match="free, pro or business"):
        RateLimits.for_plan("gold")


def test_interval_leaves_the_headroom_and_none_is_not_paced() -> None:
    limits = RateLimits(light=20, headroom=0.2)
    assert limits.interval("light") == pytest.approx(1 / 16)
    assert limits.interval("medium") is None


# -- categories ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path", "category"),
    [
        ("GET", "/users/me", "light"),
        ("GET", "/v2/users/abc", "light"),
        ("GET", "/users", "medium"),
        ("GET", "/users/summary", "medium"),  # a named segment, not /users/{userId}
        ("PUT", "/users/abc/status", "light"),
        ("POST", "/users/abc/webinars", "light"),
        ("POST", "/users/me/meetings", "medium"),
        ("GET", "/meetings/8123456789", "light"),
        ("GET", "/report/meetings/123/participants", "heavy"),
        ("GET", "/report/chat/sessions", "medium"),
        ("GET", "/metrics/meetings", "resource_intensive"),
        ("GET", "/metrics/chat", "resource_intensive"),
        ("GET", "/rooms/abc/no-such-endpoint", "heavy"),  # unknown: the default
    ],
)
def test_categories_are_zooms_own_labels(method: str, path: str, category: str) -> None:
    assert CategoryTable().category(method, path) == category


def test_answers_teach_unknown_paths_for_every_id_but_never_move_known_ones() -> None:
    table = CategoryTable(default="heavy")
    assert table.learn("GET", "/signage/abc123def/settings", "light")
    assert table.category("GET", "/signage/zzz999/settings") == "light"
    assert table.category("PATCH", "/signage/zzz999/settings") == "heavy"
    assert not table.learn("GET", "/users/me", "heavy")
    assert table.category("GET", "/users/me") == "light"


def test_path_shape_hides_ids() -> None:
    assert path_shape("/users/jchill@example.com/meetings") == "/users/*/meetings"
    assert path_shape("/meetings/81234567890?x=1") == "/meetings/*"


# -- headers ------------------------------------------------------------------------


def test_rate_limit_info_reads_and_bounds_zooms_headers() -> None:
    info = rate_limit_info({
        "X-RateLimit-Category": "Resource-intensive",
        "X-RateLimit-Type": "Daily-limit",
        "X-RateLimit-Limit": "30000",
        "X-RateLimit-Remaining": "0",
    })
    assert info is not None
    assert info.category == "resource_intensive"
    assert info.daily
    assert (info.limit, info.remaining) == (30000, 0)
    hostile = rate_limit_info({
        "X-RateLimit-Category": "Free", "X-RateLimit-Limit": "1e9",
        "X-RateLimit-Remaining": "-1", "X-RateLimit-Type": "x" * 100,
    })
    assert hostile is not None
    assert (hostile.category, hostile.limit, hostile.remaining, hostile.limit_type) == (
        None, None, None, None)
    assert rate_limit_info({}) is None
    assert category_name("Light") == "light"


def test_daily_messages_both_forms() -> None:
    assert is_daily_message(PER_USER_DAILY)
    assert is_per_user_message(PER_USER_DAILY)
    assert is_daily_message(CATEGORY_DAILY)
    assert not is_per_user_message(CATEGORY_DAILY)
    assert not is_daily_message(QPS)
    assert not is_daily_message(None)


# -- the limiter --------------------------------------------------------------------


def limiter(store: object | None = None, **kwargs: Any) -> RateLimiter:
    options: dict[str, Any] = {"light": 20, "medium": 10, "heavy": 5, "headroom": 0.0}
    options.update(kwargs)
    return RateLimiter(
        RateLimits(**options),
        MemoryTokenStore() if store is None else store,
        scope=rate_scope("https://zoom.us/oauth/token", "acct"),
    )


async def acquire(lim: RateLimiter, method: str, path: str, category: str | None = None) -> float:
    return await lim.acquire(lim.ticket(method, path, category))


async def observe(lim: RateLimiter, method: str, path: str, **answer: Any) -> Any:
    return await lim.observe(lim.ticket(method, path), **answer)


def test_scope_is_per_account_not_per_app() -> None:
    assert rate_scope("u", "a") == rate_scope("u", "a")
    assert rate_scope("u", "a") != rate_scope("u", "b")


async def test_two_limiters_on_one_store_share_the_budget(fake_clock: FakeClock) -> None:
    store = MemoryTokenStore()
    one, two = limiter(store, light=10), limiter(store, light=10)
    start = fake_clock.monotonic()
    await asyncio.gather(*(
        acquire(lim, "GET", "/users/me", "light") for lim in (one, two) * 3
    ))
    # 6 permits at 10/s: the last one 0.5 s after the first, whoever asked.
    assert fake_clock.monotonic() - start >= 0.45
    assert one.permits + two.permits == 6


async def test_unpaced_category_takes_no_permit() -> None:
    lim = limiter(light=None)
    assert await acquire(lim, "GET", "/users/me", "light") == 0
    assert lim.permits == 0


async def test_beyond_max_wait_raises_without_reserving() -> None:
    lim = limiter(heavy=1, max_wait=0.2)
    await acquire(lim, "GET", "/report/daily", "heavy")
    with pytest.raises(RateLimitedError) as info:
        await acquire(lim, "GET", "/report/daily", "heavy")
    assert not isinstance(info.value, DailyLimitExceededError)
    assert "not sent" in str(info.value)
    assert info.value.retry_after == pytest.approx(1.0, abs=0.1)
    assert info.value.rate_limit is not None
    assert info.value.rate_limit.category == "heavy"


async def test_qps_429_with_retry_after_pauses_the_category(fake_clock: FakeClock) -> None:
    store = MemoryTokenStore()
    one, two = limiter(store), limiter(store)
    await observe(one, "GET", "/users/me", status=429,
                      headers={"Retry-After": "0.3", "X-RateLimit-Type": "QPS"}, message=QPS)
    waited = await acquire(two, "GET", "/users/x", "light")
    assert waited >= 0.28
    assert await acquire(two, "GET", "/users", "medium") < 0.05


async def test_a_pause_set_elsewhere_holds_the_next_lease(fake_clock: FakeClock) -> None:
    store = MemoryTokenStore()
    one, two = limiter(store, light=5), limiter(store, light=5)
    await acquire(two, "GET", "/users/me")  # two's lease: one slot at 5/s
    await observe(one, "GET", "/users/me", status=429, headers={"Retry-After": "0.5"})
    assert await acquire(two, "GET", "/users/me") >= 0.45


@pytest.mark.parametrize(
    ("headers", "message"),
    [
        ({"X-RateLimit-Type": "Daily-limit", "X-RateLimit-Category": "Heavy",
          "Retry-After": "2099-01-01T00:00:00Z"}, None),
        ({"X-RateLimit-Category": "Heavy", "X-RateLimit-Limit": "30000"}, CATEGORY_DAILY),
    ],
    ids=["header", "message"],
)
async def test_daily_429_blocks_the_category_for_the_fleet_until_reset(
    headers: dict[str, str], message: str | None
) -> None:
    store = MemoryTokenStore()
    one, two = limiter(store), limiter(store)
    await observe(one, "GET", "/report/daily", status=429,
                      headers=headers, message=message)
    for lim in (one, two):
        with pytest.raises(DailyLimitExceededError) as info:
            await acquire(lim, "GET", "/report/users", "heavy")
        reset = info.value.retry_at
        assert reset is not None
        midnight = dt.datetime.now(dt.timezone.utc).replace(
            hour=0, minute=0, second=0, microsecond=0) + dt.timedelta(days=1)
        # Retry-After in 2099 is capped at the next reset: daily limits reset at 00:00 UTC.
        assert abs((reset - midnight).total_seconds()) < 120
    assert await acquire(two, "GET", "/users/me", "light") < 0.05


async def test_per_user_daily_429_blocks_only_that_user_and_endpoint() -> None:
    store = MemoryTokenStore()
    one, two = limiter(store), limiter(store)
    await observe(one, "POST", "/users/u1/meetings", status=429,
                      headers={"X-RateLimit-Category": "Light"}, message=PER_USER_DAILY)
    with pytest.raises(DailyLimitExceededError):
        await acquire(two, "POST", "/users/u1/meetings", "medium")
    await acquire(two, "POST", "/users/u2/meetings", "medium")
    await acquire(two, "GET", "/users/u1/meetings", "medium")


async def test_remaining_zero_on_a_daily_budget_blocks_before_any_429() -> None:
    store = MemoryTokenStore()
    one, two = limiter(store), limiter(store)
    info = await observe(one, "GET", "/report/daily", status=200,
        headers={"X-RateLimit-Type": "Daily-limit", "X-RateLimit-Limit": "1000",
                 "X-RateLimit-Remaining": "0", "X-RateLimit-Category": "Heavy"},
    )
    assert info is not None
    assert info.remaining == 0
    with pytest.raises(DailyLimitExceededError):
        await acquire(two, "GET", "/report/daily", "heavy")


async def test_remaining_zero_on_a_qps_budget_waits_one_interval(fake_clock: FakeClock) -> None:
    store = MemoryTokenStore()
    one, two = limiter(store, light=4), limiter(store, light=4)
    await observe(one, "GET", "/users/me", status=200,
                      headers={"X-RateLimit-Type": "QPS", "X-RateLimit-Remaining": "0"})
    assert await acquire(two, "GET", "/users/me", "light") >= 0.2


async def test_the_category_header_is_learned_for_unknown_paths() -> None:
    lim = limiter()
    assert lim.category("GET", "/signage/abc1/devices") == "heavy"
    await observe(lim, "GET", "/signage/abc1/devices", status=200,
                      headers={"X-RateLimit-Category": "Light"})
    assert lim.category("GET", "/signage/xyz9/devices") == "light"
    assert lim.category("GET", "/signage/xyz9/devices", "Medium") == "medium"
    with pytest.raises(ConfigurationError):
        lim.category("GET", "/users/me", "fast")


class _Down(RateBudget):
    """A budget whose backend refuses every connection."""

    async def _acquire(self, *args: Any) -> Permit:
        raise ConnectionRefusedError("connection refused")

    async def _pause(self, *args: Any) -> Pause:
        raise ConnectionRefusedError("connection refused")

    async def _paused(self, key: str) -> Pause:
        raise ConnectionRefusedError("connection refused")

    async def _count(self, *args: Any) -> Tally:
        raise ConnectionRefusedError("connection refused")

    async def _notices(self, scope: str) -> dict[str, Pause]:
        raise ConnectionRefusedError("connection refused")


class _Failing(MemoryTokenStore):
    """A store whose rate-limit backend is down."""

    backend_errors = (OSError,)

    def __init__(self) -> None:
        super().__init__()
        self.rate_budget = _Down(self)  # type: ignore[assignment]


async def test_a_budgets_backend_errors_are_its_stores_errors() -> None:
    with pytest.raises(StoreUnavailableError, match="memory:// failed while taking a rate-limit"):
        await _Failing().rate_budget.acquire_permit(
            "rate-x.light", interval=1, burst=1, max_wait=1
        )
    with pytest.raises(StoreUnavailableError, match="while pausing a rate-limit bucket"):
        await _Failing().rate_budget.pause("rate-x.light", 1)
    with pytest.raises(StoreUnavailableError, match="while reading a rate-limit pause"):
        await _Failing().rate_budget.paused("rate-x.light")


async def test_a_failing_store_degrades_to_per_process_pacing_with_a_warning(
    caplog: pytest.LogCaptureFixture, fake_clock: FakeClock
) -> None:
    lim = limiter(_Failing(), light=10)
    with caplog.at_level(logging.WARNING, "zoom_s2s.ratelimit"):
        waits = [await acquire(lim, "GET", "/users/me", "light") for _ in range(3)]
    assert lim.permits == 3  # requests still go: never "no requests"
    assert waits[2] >= 0.09  # and they are still paced, by this process
    assert not lim.shared
    assert "pacing this process on its own" in caplog.text
    assert caplog.text.count("pacing this process on its own") == 1


async def test_a_store_without_a_budget_paces_per_process_with_a_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    class Plain:
        name = "plain://"

    with caplog.at_level(logging.WARNING, "zoom_s2s.ratelimit"):
        lim = limiter(Plain())
    assert "has no rate budget to share" in caplog.text
    await acquire(lim, "GET", "/users/me", "light")
    assert not lim.shared


def test_rate_limit_info_names_the_same_categories_as_rate_limits() -> None:
    from typing import Literal, get_type_hints

    from zoom_s2s.ratelimit import Category, RateLimitInfo

    assert get_type_hints(RateLimitInfo)["category"] == Literal[get_args(Category)] | None


# -- the quota ledger: scopes ---------------------------------------------------------


def plain(store: object, limits: RateLimits | None = None) -> RateLimiter:
    return RateLimiter(limits, store, scope=rate_scope("https://zoom.us/oauth/token", "acct"))


async def test_a_heavy_daily_limit_also_holds_resource_intensive_on_paid_plans() -> None:
    store = MemoryTokenStore()
    one, two = plain(store), plain(store)
    await observe(one, "GET", "/report/daily", status=429,
                  headers={"X-RateLimit-Category": "Heavy"}, message=CATEGORY_DAILY)
    with pytest.raises(DailyLimitExceededError):
        await acquire(two, "GET", "/metrics/meetings")  # Resource-intensive: the same limit
    assert await acquire(two, "GET", "/users/me") == 0


async def test_on_the_free_plan_each_category_has_its_own_daily_limit() -> None:
    store = MemoryTokenStore()
    free = RateLimits(plan="free")
    one, two = plain(store, free), plain(store, free)
    await observe(one, "GET", "/report/daily", status=429,
                  headers={"X-RateLimit-Category": "Heavy"}, message=CATEGORY_DAILY)
    with pytest.raises(DailyLimitExceededError):
        await acquire(two, "GET", "/report/users")
    assert await acquire(two, "GET", "/metrics/meetings") == 0


async def test_an_unknown_daily_429_blocks_only_its_endpoint_shape() -> None:
    store = MemoryTokenStore()
    one, two = plain(store), plain(store)
    await observe(one, "PATCH", "/users/abc1", status=429,
                  headers={"X-RateLimit-Type": "Daily-limit", "X-RateLimit-Category": "Light"},
                  message="You have reached the daily limit for this API.")
    with pytest.raises(DailyLimitExceededError) as info:
        await acquire(two, "PATCH", "/users/xyz9")  # the same endpoint, another user
    assert "this endpoint" in str(info.value)
    assert await acquire(two, "GET", "/users/abc1") == 0
    assert await acquire(two, "PATCH", "/users/abc1/settings") == 0


async def test_blocks_are_honoured_without_rate_limits_by_a_process_started_later() -> None:
    store = MemoryTokenStore()
    await observe(plain(store), "POST", "/users", status=429,
                  headers={"X-RateLimit-Type": "Daily-limit", "X-RateLimit-Category": "Light"},
                  message="You have exceeded the daily rate limit (1500) of Create User API "
                  "requests permitted for this account.")
    later = plain(store)  # reads the scope's notices before its first request
    with pytest.raises(DailyLimitExceededError) as info:
        await acquire(later, "POST", "/users")
    assert not info.value.sent
    assert await acquire(later, "GET", "/users/abc1") == 0


async def test_a_concurrency_429_pauses_nothing() -> None:
    store = MemoryTokenStore()
    one, two = limiter(store), limiter(store)
    await observe(one, "PATCH", "/meetings/1", status=429, headers={"Retry-After": "5"},
                  message="Too many concurrent requests. Try again later.")
    assert await acquire(two, "PATCH", "/meetings/2") < 0.05


async def test_presence_status_goes_once_a_minute_per_user(fake_clock: FakeClock) -> None:
    lim = plain(MemoryTokenStore(), RateLimits(max_wait=0.5))
    await acquire(lim, "PUT", "/users/u1/presence_status")
    with pytest.raises(RateLimitedError) as info:
        await acquire(lim, "PUT", "/users/u1/presence_status")
    assert not info.value.sent
    assert info.value.retry_after == pytest.approx(60, abs=1)
    await acquire(lim, "PUT", "/users/u2/presence_status")
    assert lim.stats()["remaining"]


async def test_a_ticket_names_its_product_budget_and_cap() -> None:
    lim = plain(MemoryTokenStore(), RateLimits.for_plan("pro"))
    phone = lim.ticket("GET", "/phone/call_logs")  # Heavy in Zoom Phone's own budget
    assert phone.bucket == "phone-heavy"
    assert lim.ticket("GET", "/phone/users").bucket == "phone-light"  # Zoom's label
    assert lim._interval(phone) == pytest.approx(1 / (5 * 0.95))  # Phone Pro: 5 Heavy/s
    assert lim._interval(lim.ticket("GET", "/report/daily")) == pytest.approx(1 / (10 * 0.95))
    update = lim.ticket("PATCH", "/meetings/85746065")
    assert update.cap is not None
    assert update.cap.scope == "host"
    assert update.cap.kind == "meetings"
    assert lim.ticket("POST", "/users").cap.limit("pro") == 1500  # type: ignore[union-attr]


# -- leases ---------------------------------------------------------------------------


async def test_one_lease_serves_many_requests_with_one_store_call() -> None:
    lim = limiter(light=1000)
    await acquire(lim, "GET", "/users/me")
    calls = lim.store_calls
    for _ in range(50):
        await acquire(lim, "GET", "/users/me")
        await asyncio.sleep(0.002)  # a steady 500/s, half the rate
    assert lim.store_calls - calls <= 3  # leases sized from the rate this process used
    assert lim.permits == 51


async def test_a_burst_in_one_process_holds_another_back_one_lease_at_most(
    fake_clock: FakeClock,
) -> None:
    store = MemoryTokenStore()
    busy, quiet = limiter(store, light=100), limiter(store, light=100)
    burst = [asyncio.create_task(acquire(busy, "GET", "/users/me")) for _ in range(150)]
    await fake_clock.sleep(0.3)  # the busy process is leasing back to back
    waited = await acquire(quiet, "GET", "/users/me")
    # At most one lease of busy's (0.1 s of the rate), the part of the one before that
    # was left when busy asked for it (_LEAD), then quiet's own slot.
    assert waited <= LEASE_SECONDS + _LEAD + 0.02
    for task in burst:
        task.cancel()
    await asyncio.gather(*burst, return_exceptions=True)


async def test_an_idle_process_holds_nothing_after_its_lease_expires(
    fake_clock: FakeClock,
) -> None:
    store = MemoryTokenStore()
    one, two = limiter(store, light=50), limiter(store, light=50)
    for _ in range(20):
        await acquire(one, "GET", "/users/me")  # one's leases grow with its use
    await fake_clock.sleep(0.25)  # one goes quiet: what it leased expires
    started = fake_clock.monotonic()
    for _ in range(5):
        await acquire(two, "GET", "/users/me")
    assert fake_clock.monotonic() - started <= 5 / 50 + 0.05  # two has the whole rate
