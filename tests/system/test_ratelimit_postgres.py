"""The PostgreSQL rate budget on a real PostgreSQL server: the RateBudgetContract
(two stores = two processes), the database's clock, one statement per permit,
hostile rows, the grants, and a limiter on it."""

# The schema names in the SQL below are the fixture's own t_<hex>.
# ruff: noqa: S608

from __future__ import annotations

import asyncio
import itertools
import secrets
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio

from zoom_s2s import _clock
from zoom_s2s.ratelimit import RateLimiter, RateLimits
from zoom_s2s.stores import PostgresTokenStore, TokenStore, rate_budget_of
from zoom_s2s.stores.postgres import PostgresRateBudget, grants_sql, schema_sql
from zoom_s2s.testing.budget_contract import RateBudgetContract

from .test_postgres_store import sql
from .test_ratelimit_redis import fast_host_clock_holds_to_the_stores_midnight

pytestmark = pytest.mark.postgres


def _scope() -> str:
    return "rate-" + secrets.token_hex(6)


@pytest_asyncio.fixture
async def pair(
    postgres_url: str, postgres_schema: str
) -> AsyncIterator[tuple[PostgresTokenStore, PostgresTokenStore]]:
    a = PostgresTokenStore.from_url(postgres_url, schema=postgres_schema)
    b = PostgresTokenStore.from_url(postgres_url, schema=postgres_schema)
    yield a, b
    await a.aclose()
    await b.aclose()


class TestPostgresBudget(RateBudgetContract):
    @pytest.fixture(autouse=True)
    def _database(self, postgres_url: str, postgres_schema: str) -> None:
        self.url, self.schema = postgres_url, postgres_schema

    async def make_store(self) -> TokenStore:
        return PostgresTokenStore.from_url(self.url, schema=self.schema)

    async def make_peer(self, store: TokenStore) -> TokenStore:
        return PostgresTokenStore.from_url(self.url, schema=self.schema)

    async def make_broken_store(self) -> TokenStore:
        return PostgresTokenStore.from_url(
            "postgresql://nobody@127.0.0.1:1/none", connect_timeout=0.5
        )


async def test_the_store_offers_its_budget(
    pair: tuple[PostgresTokenStore, PostgresTokenStore],
) -> None:
    assert isinstance(rate_budget_of(pair[0]), PostgresRateBudget)


async def test_one_permit_is_one_statement_on_the_databases_clock(
    pair: tuple[PostgresTokenStore, PostgresTokenStore], monkeypatch: pytest.MonkeyPatch
) -> None:
    store = pair[0]
    await store.rate_budget.acquire_permit("rate-x.light", interval=1, burst=1, max_wait=5)
    run = store._run
    statements: list[str] = []

    async def counted(method: str, query: str, *args: Any, **kwargs: Any) -> Any:
        statements.append(query)  # every statement the store sends
        return await run(method, query, *args, **kwargs)

    store._run = counted  # type: ignore[method-assign]
    # A host whose clock is an hour ahead changes nothing: time is the database's.
    real_time, real_monotonic = time.time, time.monotonic
    monkeypatch.setattr(time, "time", lambda: real_time() + 3600)
    monkeypatch.setattr(time, "monotonic", lambda: real_monotonic() + 3600)
    monkeypatch.setattr(_clock, "wall", time.time)
    monkeypatch.setattr(_clock, "monotonic", time.monotonic)
    try:
        second = await store.rate_budget.acquire_permit(
            "rate-x.light", interval=1, burst=1, max_wait=5
        )
    finally:
        monkeypatch.undo()
        del store._run
    assert len(statements) == 1
    assert statements[0].lstrip().startswith("INSERT INTO")
    assert "ON CONFLICT (key) DO UPDATE" in statements[0]
    assert second.granted
    assert second.wait == pytest.approx(1.0, abs=0.3)


@pytest.mark.parametrize(
    "plant",
    [
        "tat = 'infinity', paused_until = '-infinity', daily = false, shift = 0",
        "tat = clock_timestamp() + interval '1000 days', paused_until = '-infinity'",
        "paused_until = clock_timestamp() + interval '1000 days', daily = true",
        "paused_until = 'infinity', daily = true, shift = 'NaN'",
        "shift = '-5', tat = '-infinity'",
        "shift = 'Infinity'",
    ],
    ids=["tat-infinity", "tat-far-ahead", "pause-far-ahead", "pause-infinity-nan",
         "shift-negative", "shift-infinity"],
)
async def test_hostile_state_is_ignored(
    pair: tuple[PostgresTokenStore, PostgresTokenStore], postgres_url: str, plant: str
) -> None:
    store = pair[0]
    await store.init_schema()
    await sql(postgres_url, f"INSERT INTO {store.schema}.rates (key) VALUES ('rate-x.light')")
    await sql(postgres_url, f"UPDATE {store.schema}.rates SET {plant} WHERE key = 'rate-x.light'")
    pause = await store.rate_budget.paused("rate-x.light")
    assert not pause.daily
    assert pause.left == 0
    assert pause.shift >= 0
    permit = await store.rate_budget.acquire_permit(
        "rate-x.light", interval=1, burst=1, max_wait=0
    )
    assert permit.granted
    assert permit.wait == 0
    assert 0 <= permit.shift < 1e9
    await store.rate_budget.pause("rate-x.light", 1)  # and a pause overwrites it
    assert 0 < (await store.rate_budget.paused("rate-x.light")).left <= 1
    # A planted counter or block is ignored as well.
    await sql(postgres_url, f"INSERT INTO {store.schema}.rates (key, tat, shift, paused_until,"
                            " daily) VALUES ('rate-x.uplanted', 'infinity', 'NaN', 'infinity',"
                            " true)")
    tally = await store.rate_budget.count("rate-x.uplanted", limit=5)
    assert tally.granted
    assert tally.remaining == 4
    assert "uplanted" not in await store.rate_budget.notices("rate-x")


async def test_a_pause_forgets_rows_idle_for_an_hour(
    pair: tuple[PostgresTokenStore, PostgresTokenStore], postgres_url: str
) -> None:
    store = pair[0]
    await store.rate_budget.pause("rate-x.uold", 60, daily=True)
    await store.rate_budget.acquire_permit("rate-x.light", interval=1, burst=1, max_wait=1)
    await sql(postgres_url, f"UPDATE {store.schema}.rates SET tat = tat - interval '2 hours', "
                            "paused_until = paused_until - interval '2 hours' "
                            "WHERE key = 'rate-x.uold'")
    await store.rate_budget.pause("rate-x.heavy", 1)
    rows = await sql(postgres_url, f"SELECT key FROM {store.schema}.rates ORDER BY key")
    assert [r["key"] for r in rows] == ["rate-x.heavy", "rate-x.light"]


async def test_the_documented_grants_cover_rate_limits(
    postgres_url: str, postgres_schema: str
) -> None:
    user = f"app_{secrets.token_hex(4)}"
    password = secrets.token_urlsafe(12)
    await sql(postgres_url, schema_sql(postgres_schema))
    await sql(postgres_url, f"CREATE ROLE {user} LOGIN PASSWORD '{password}'")
    for statement in grants_sql(user, postgres_schema).strip().splitlines():
        await sql(postgres_url, statement)
    app_url = postgres_url.replace(
        postgres_url.split("//", 1)[1].split("@", 1)[0], f"{user}:{password}"
    )
    store = PostgresTokenStore.from_url(app_url, schema=postgres_schema)
    try:
        assert (await store.rate_budget.acquire_permit(
            "rate-x.light", interval=1, burst=1, max_wait=1
        )).granted
        await store.rate_budget.pause("rate-x.uabc", 60, daily=True)  # the sweep deletes
        assert (await store.rate_budget.paused("rate-x.uabc")).daily
    finally:
        await store.aclose()


async def test_a_limiter_on_postgres_is_shared(
    pair: tuple[PostgresTokenStore, PostgresTokenStore],
) -> None:
    scope = _scope()
    one = RateLimiter(RateLimits(light=10, headroom=0), pair[0], scope=scope)
    two = RateLimiter(RateLimits(light=10, headroom=0), pair[1], scope=scope)
    started = time.monotonic()
    for limiter in (one, two, one, two):
        await limiter.acquire(limiter.ticket("GET", "/users/me", "light"))
    elapsed = time.monotonic() - started
    assert one.shared
    assert two.shared
    # Four permits of one 10/s budget span three intervals; two budgets of their own
    # would give each limiter its two slots in one interval. (Measured from the outside:
    # a loaded machine only makes it longer, where each wait, counted from its own
    # statement, shrinks by the time the previous statement took.)
    assert elapsed >= 0.3 - 0.02


async def test_concurrent_permits_get_distinct_slots(
    pair: tuple[PostgresTokenStore, PostgresTokenStore],
) -> None:
    """40 permits at once from two stores (pool connections racing on one row).

    Each wait is counted from its own statement's ``now()``, so consecutive waits
    differ by the interval less the time between the two statements; a long interval
    (nothing sleeps for it) keeps that margin far above a loaded machine's spread.
    """
    key = f"{_scope()}.light"
    interval = 5.0
    permits = await asyncio.gather(*(
        store.rate_budget.acquire_permit(key, interval=interval, burst=1, max_wait=400)
        for store in pair * 20
    ))
    assert all(p.granted for p in permits)
    waits = sorted(p.wait for p in permits)
    gaps = [later - earlier for earlier, later in itertools.pairwise(waits)]
    assert min(gaps) > interval / 2  # every slot its own: a shared one would show a 0 gap
    assert waits[-1] == pytest.approx(39 * interval, abs=interval / 2)


async def test_a_fast_host_clock_cannot_stretch_a_daily_block_past_the_databases_midnight(
    pair: tuple[PostgresTokenStore, PostgresTokenStore], monkeypatch: pytest.MonkeyPatch
) -> None:
    await fast_host_clock_holds_to_the_stores_midnight(pair[0], monkeypatch)
