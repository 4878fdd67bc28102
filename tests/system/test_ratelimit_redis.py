"""The Redis rate budget on a real redis-server and a real 3-master Cluster: the
RateBudgetContract (two clients = two processes), Redis's clock, hostile state, the ACL,
and a Redis outage degrading to per-process pacing."""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
import pytest_asyncio

from tests.harness.redis_cluster import RedisClusterServer
from tests.harness.redis_server import RedisServer
from zoom_s2s import RedisTokenStore
from zoom_s2s.errors import RateLimitedError, StoreError
from zoom_s2s.ratelimit import RateLimiter, RateLimits
from zoom_s2s.stores import RateBudget, TokenStore, rate_budget_of
from zoom_s2s.stores.redis import RATE_COMMANDS, acl_rules
from zoom_s2s.testing.budget_contract import RateBudgetContract, daily

pytestmark = pytest.mark.redis


def _scope() -> str:
    return "rate-" + secrets.token_hex(6)


@pytest_asyncio.fixture
async def pair(redis_url: str) -> AsyncIterator[tuple[RedisTokenStore, RedisTokenStore]]:
    a, b = RedisTokenStore.from_url(redis_url), RedisTokenStore.from_url(redis_url)
    yield a, b
    await a.aclose()
    await b.aclose()


class TestRedisBudget(RateBudgetContract):
    @pytest.fixture(autouse=True)
    def _url(self, redis_url: str) -> None:
        self.url = redis_url

    async def make_store(self) -> TokenStore:
        return RedisTokenStore.from_url(self.url)

    async def make_peer(self, store: TokenStore) -> TokenStore:
        return RedisTokenStore.from_url(self.url)

    async def make_broken_store(self) -> TokenStore:
        return RedisTokenStore.from_url(
            "redis://127.0.0.1:1/0", socket_timeout=0.5, socket_connect_timeout=0.5
        )


async def test_one_permit_is_one_script_call(
    pair: tuple[RedisTokenStore, RedisTokenStore], redis_url: str
) -> None:
    import redis.asyncio as redis_asyncio

    store = pair[0]
    await store.rate_budget.acquire_permit("rate-x.light", interval=0.01, burst=1, max_wait=1)  # loaded
    raw: Any = redis_asyncio.Redis.from_url(redis_url)
    try:
        before = await raw.info("commandstats")
        for _ in range(10):
            await store.rate_budget.acquire_permit("rate-x.light", interval=0.001, burst=1, max_wait=1)
        after = await raw.info("commandstats")
    finally:
        await raw.aclose()

    def calls(stats: dict[str, Any], name: str) -> int:
        return int(stats.get(f"cmdstat_{name}", {}).get("calls", 0))

    assert calls(after, "evalsha") - calls(before, "evalsha") == 10
    assert calls(after, "time") - calls(before, "time") == 10  # Redis's clock, in the script


@pytest.mark.parametrize(
    "plant",
    [
        ("set", "garbage"),  # a string where a hash belongs
        ("hset", {"tat": "1e30", "until": "0", "daily": "0", "shift": "0"}),
        ("hset", {"tat": "0", "until": "1e30", "daily": "1", "shift": "0"}),
        ("hset", {"tat": "nan", "until": "inf", "daily": "1", "shift": "-5"}),
    ],
    ids=["wrong-type", "tat-far-ahead", "pause-far-ahead", "nan-inf"],
)
async def test_hostile_state_is_ignored(
    pair: tuple[RedisTokenStore, RedisTokenStore], plant: tuple[str, Any]
) -> None:
    store = pair[0]
    client: Any = store._client
    key = "zoom_s2s:{rate-x}:rate:light"
    command, value = plant
    if command == "set":
        await client.set(key, value)
    else:
        await client.hset(key, mapping=value)
    permit = await store.rate_budget.acquire_permit("rate-x.light", interval=1, burst=1, max_wait=0)
    assert permit.granted
    assert permit.wait == 0
    pause = await store.rate_budget.paused("rate-x.light")
    assert not pause.daily
    assert pause.left == 0
    await store.rate_budget.pause("rate-x.light", 1)  # and a pause overwrites it
    assert (await store.rate_budget.paused("rate-x.light")).left > 0


async def test_state_expires_when_it_no_longer_matters(
    pair: tuple[RedisTokenStore, RedisTokenStore],
) -> None:
    store = pair[0]
    client: Any = store._client
    await store.rate_budget.acquire_permit("rate-x.light", interval=0.5, burst=1, max_wait=1)
    assert 0 < await client.pttl("zoom_s2s:{rate-x}:rate:light") <= 2_000
    wall = time.time()
    await store.rate_budget.pause("rate-x.heavy", 3600, daily=True)
    kept = daily(3600, wall) * 1000  # never past the next midnight (and a minute)
    assert kept - 10_000 < await client.pttl("zoom_s2s:{rate-x}:rate:heavy") <= kept + 2_000


async def test_redis_down_degrades_to_per_process_pacing_with_a_warning(
    redis_server: RedisServer, redis_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    store = RedisTokenStore.from_url(redis_url, socket_timeout=1, socket_connect_timeout=1)
    limiter = RateLimiter(RateLimits(light=10, headroom=0), store, scope=_scope())
    try:
        await limiter.acquire(limiter.ticket("GET", "/users/me", "light"))
        assert limiter.shared
        redis_server.stop()
        with caplog.at_level(logging.WARNING, "zoom_s2s.ratelimit"):
            start = time.monotonic()
            for _ in range(3):
                await limiter.acquire(limiter.ticket("GET", "/users/me", "light"))
            took = time.monotonic() - start
        assert limiter.permits == 4  # never "no requests"
        assert not limiter.shared
        # Still paced, by this process: three slots 0.1 s apart span at least 0.2 s (a
        # loaded machine only makes it longer; a slot may go a millisecond early).
        assert took >= 0.198
        assert "pacing this process on its own" in caplog.text
    finally:
        redis_server.start()
        await store.aclose()


async def test_the_acl_rules_allow_the_rate_limit_scripts(redis_url: str) -> None:
    assert "+time" in acl_rules()
    assert RATE_COMMANDS == ("TIME", "HGETALL", "HDEL")
    assert "+hgetall" in acl_rules()


async def test_a_user_without_time_gets_a_store_error_and_the_limiter_goes_on(
    redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    import redis.asyncio as redis_asyncio

    admin: Any = redis_asyncio.Redis.from_url(redis_server.url)
    user = "rl" + secrets.token_hex(4)
    rules = acl_rules().replace(" +time", "")
    await admin.execute_command("ACL", "SETUSER", user, "on", ">pw-rl-1234",
                                "resetkeys", "resetchannels", "-@all", *rules.split())
    store = RedisTokenStore.from_url(f"redis://{user}:pw-rl-1234@127.0.0.1:{redis_server.port}/0")
    try:
        with pytest.raises(StoreError):
            await store.rate_budget.acquire_permit("rate-x.light", interval=1, burst=1, max_wait=1)
        limiter = RateLimiter(RateLimits(light=10), store, scope=_scope())
        with caplog.at_level(logging.WARNING, "zoom_s2s.ratelimit"):
            await limiter.acquire(limiter.ticket("GET", "/users/me", "light"))
        assert "pacing this process on its own" in caplog.text
        assert "pw-rl-1234" not in caplog.text
    finally:
        await store.aclose()
        await admin.execute_command("ACL", "DELUSER", user)
        await admin.aclose()


async def test_max_wait_refusal_reserves_nothing_for_the_fleet(
    pair: tuple[RedisTokenStore, RedisTokenStore],
) -> None:
    scope = _scope()
    one = RateLimiter(RateLimits(heavy=2, headroom=0, max_wait=0.1), pair[0], scope=scope)
    two = RateLimiter(RateLimits(heavy=2, headroom=0, max_wait=1), pair[1], scope=scope)
    await one.acquire(one.ticket("GET", "/report/daily", "heavy"))
    with pytest.raises(RateLimitedError):
        await one.acquire(one.ticket("GET", "/report/daily", "heavy"))
    waited = await two.acquire(two.ticket("GET", "/report/daily", "heavy"))
    assert 0.4 <= waited < 0.7  # the slot one refused is still the next one


# -- Redis Cluster ------------------------------------------------------------------


@pytest.fixture(scope="module")
def cluster() -> Iterator[RedisClusterServer]:
    with RedisClusterServer(masters=3) as servers:
        yield servers


async def _cluster_store(url: str, prefix: str) -> RedisTokenStore:
    from redis.asyncio.cluster import RedisCluster

    client = RedisCluster.from_url(url)
    await client.initialize()
    return RedisTokenStore(client, prefix=prefix, owns_client=True)


class TestClusterBudget(RateBudgetContract):
    """Two "processes" entering the cluster through different nodes; the accounts
    (scopes) of the checks take turns on the three masters."""

    @pytest_asyncio.fixture(autouse=True)
    async def _cluster(self, cluster: RedisClusterServer) -> AsyncIterator[None]:
        from redis.asyncio.cluster import RedisCluster

        self.urls = cluster.urls
        self.prefix = "t" + secrets.token_hex(4)
        self.raw: Any = RedisCluster.from_url(cluster.url, decode_responses=True)
        await self.raw.initialize()
        self.masters = sorted(node.name for node in self.raw.get_primaries())
        self.turn = 0
        yield
        await self.raw.aclose()

    async def make_store(self) -> TokenStore:
        return await _cluster_store(self.urls[0], self.prefix)

    async def make_peer(self, store: TokenStore) -> TokenStore:
        return await _cluster_store(self.urls[1], self.prefix)

    def new_scope(self) -> str:
        master = self.masters[self.turn % len(self.masters)]
        self.turn += 1
        while True:
            scope = _scope()
            node = self.raw.get_node_from_key(f"{self.prefix}:{{{scope}}}:rate:light")
            if node.name == master:
                return scope


    async def test_an_accounts_buckets_share_one_cluster_slot(
        self, budgets: tuple[RateBudget, RateBudget]
    ) -> None:
        budget = budgets[0]
        homes = {self.masters[i]: self.new_scope() for i in range(len(self.masters))}
        for scope in homes.values():
            await budget.acquire_permit(f"{scope}.light", interval=1, burst=1, max_wait=1)
            await budget.pause(f"{scope}.uabc", 60, daily=True)  # and the scope's notices
            await budget.pause(f"{scope}.heavy", 1)
            await budget.count(f"{scope}.user_create", limit=5)
            assert set(await budget.notices(scope)) == {"uabc", "heavy"}
        for master, scope in homes.items():
            for primary in self.raw.get_primaries():
                keys = await self.raw.keys(f"{self.prefix}:{{{scope}}}:*", target_nodes=primary)
                assert bool(keys) == (primary.name == master)


# -- clocks -------------------------------------------------------------------------

_HEAVY_DAILY = (
    "You have exceeded the daily rate limit (30000) of Heavy API requests for this account. "
    "You may resume these requests at GMT 00:00:00."
)


async def fast_host_clock_holds_to_the_stores_midnight(
    store: TokenStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A host whose clock reads a minute past the next 00:00 UTC (2 minutes fast at 23:59)
    sees a daily 429 in both of Zoom's forms: the block ends at the store's midnight (this
    machine's real clock), not a day later."""
    import datetime as dt
    import math
    import time

    from zoom_s2s import _clock
    from zoom_s2s.errors import DailyLimitExceededError

    real = time.time
    midnight = (math.floor(real() / 86_400) + 1) * 86_400
    skew = midnight - real() + 60
    monkeypatch.setattr(_clock, "wall", lambda: real() + skew)
    iso = dt.datetime.fromtimestamp(midnight, tz=dt.timezone.utc).isoformat()
    for headers, message in (
        ({"X-RateLimit-Category": "Heavy"}, _HEAVY_DAILY),
        ({"X-RateLimit-Category": "Heavy", "X-RateLimit-Type": "Daily-limit",
          "Retry-After": iso}, None),
    ):
        scope = _scope()
        one = RateLimiter(None, store, scope=scope)
        ticket = one.ticket("GET", "/report/daily")
        await one.observe(ticket, status=429, headers=headers, message=message)
        budget = rate_budget_of(store)
        assert budget is not None
        left = (await budget.paused(f"{scope}.heavy")).left
        assert midnight - real() - 1 <= left <= midnight - real() + 1, (left, headers)
        # The processes that learn the block (this one, and a later one) hold it as long.
        for limiter in (one, RateLimiter(None, store, scope=scope)):
            with pytest.raises(DailyLimitExceededError) as info:
                await limiter.acquire(limiter.ticket("GET", "/metrics/meetings"))
            assert info.value.retry_at is not None
            assert abs(info.value.retry_at.timestamp() - skew - midnight) < 2


async def test_a_fast_host_clock_cannot_stretch_a_daily_block_past_redis_midnight(
    redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = RedisTokenStore.from_url(redis_url)
    try:
        await fast_host_clock_holds_to_the_stores_midnight(store, monkeypatch)
    finally:
        await store.aclose()
