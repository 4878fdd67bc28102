"""accounts: one process holding many Zoom accounts in a TokenManagerPool on Redis.

A FakeZoom in a child process serves N apps, each on its own account (quick
1,000; full 10,000), so its bookkeeping stays out of this process's RSS. One
``TokenManagerPool`` on the run's ``redis-server`` (memory store without
Redis) then:

* fetches every account's token cold, at most ``CONCURRENCY`` at once
  (seconds for all of them, and accounts per second);
* memory per account with its token fetched: RSS growth (psutil, else
  ``/proc``) over the accounts after a warm-up of 200, divided by their
  number. Target: under 4 KiB;
* connections to Redis, from ``CLIENT LIST`` (the pool names its connections):
  after a tenth of the accounts and after all of them. Target: no more than
  the pool's bound (16), whatever the number;
* a warm ``get_token()`` of one account with N in the pool against a
  single-account ``TokenManager`` in the same loop, interleaved rounds:
  the pooled manager's own ``get_token()`` (target within 1.2x), and the
  lookup path ``pool.manager(credentials).get_token()`` against the single
  manager called the same way, from an ``async def`` (context: the pool's
  lookup is the difference).

The fake checks that every account got exactly one token.
"""

from __future__ import annotations

import asyncio
import gc
import time
from typing import Any

from tests.harness.fleet import Fleet, WorkerContext
from zoom_s2s import Credentials, MemoryTokenStore, TokenManager, TokenManagerPool
from zoom_s2s.stores.url import SHARED_MAX_CONNECTIONS

from ._common import Figure, RunContext, compare_async, figure, rss_bytes

NAME = "accounts"
TITLE = "many accounts in one process: memory, Redis connections, hot path, cold fetch"
TARGET_KIB = 4.0
TARGET_RATIO = 1.2
CONCURRENCY = 100
WARM_UP = 200
CLIENT_NAME = "zoom-s2s-bench-accounts"


def app_credentials(index: int) -> Credentials:
    """The credentials of the fake's app number ``index`` (both sides compute them)."""
    return Credentials(f"acct-{index:06d}", f"client-{index:06d}", f"secret-{index:06d}-bench")


async def serve_accounts(worker: WorkerContext) -> dict[str, int]:
    """A fleet workload: a FakeZoom with ``count`` apps, until the parent opens the gate."""
    from zoom_s2s.testing import FakeZoom

    count = int(worker.options["count"])
    async with FakeZoom() as fake:
        apps = []
        for index in range(count + 1):  # the last one is the single-account manager's
            creds = app_credentials(index)
            account = fake.add_account(creds.account_id)
            apps.append(
                fake.add_app(account, client_id=creds.client_id, client_secret=creds.client_secret)
            )
        await worker.gate(url=fake.url)
        return {
            "token_requests": fake.token_requests,
            "tokens_issued": fake.tokens_issued,
            "apps_with_one_token": sum(1 for app in apps[:count] if app.tokens_issued == 1),
        }


def _rss_kib() -> float:
    gc.collect()
    return rss_bytes() / 1024


async def _fetch_all(pool: TokenManagerPool, accounts: list[Credentials]) -> float:
    """Every account's token, at most CONCURRENCY at once; seconds taken."""
    limit = asyncio.Semaphore(CONCURRENCY)

    async def one(creds: Credentials) -> None:
        async with limit:
            await pool.manager(creds).get_token()

    started = time.perf_counter()
    await asyncio.gather(*(one(creds) for creds in accounts))
    return time.perf_counter() - started


def _connections(redis_url: str | None) -> int | None:
    if redis_url is None:
        return None
    import redis

    with redis.Redis.from_url(redis_url) as client:
        return sum(1 for c in client.client_list() if c.get("name") == CLIENT_NAME)


async def _measure(ctx: RunContext, url: str, count: int) -> dict[str, Any]:
    redis_url = ctx.redis_url() if ctx.has_redis() else None
    accounts = [app_credentials(index) for index in range(count)]
    token_url = f"{url}/oauth/token"
    result: dict[str, Any] = {"accounts": count, "store": "redis" if redis_url else "memory"}
    async with TokenManagerPool(
        store=redis_url or MemoryTokenStore(),
        store_options={"client_name": CLIENT_NAME},
        token_url=token_url,
        base_url=f"{url}/v2",
        hooks=(),
    ) as pool:
        await _fetch_all(pool, accounts[:WARM_UP])  # sessions, connections, allocator arenas
        before = _rss_kib()
        tenth = max(WARM_UP, count // 10)
        seconds = await _fetch_all(pool, accounts[WARM_UP:tenth])
        result["connections_tenth"] = _connections(redis_url)
        seconds += await _fetch_all(pool, accounts[tenth:])
        result["connections_all"] = _connections(redis_url)
        after = _rss_kib()
        fetched = count - WARM_UP
        result["cold_seconds"] = seconds
        result["cold_accounts"] = fetched
        result["kib_per_account"] = (after - before) / max(fetched, 1)
        result["pool_size"] = len(pool)

        one = accounts[count // 2]
        held = pool.manager(one)
        async with TokenManager(
            app_credentials(count), store=MemoryTokenStore(), token_url=token_url, hooks=()
        ) as single:
            await single.get_token()

            async def single_wrapped() -> object:
                return await single.get_token()

            async def through_pool() -> object:
                return await pool.manager(one).get_token()

            rounds = await compare_async(
                {
                    "single-account manager": single.get_token,
                    "pooled manager": held.get_token,
                    "single, wrapped": single_wrapped,
                    "pool.manager(creds).get_token()": through_pool,
                },
                calls=ctx.size(100_000, 300_000),
                rounds=ctx.size(7, 15),
                budget_s=ctx.size(0.05, 0.1),
            )
        result["hot_path"] = rounds.summary()
        result["ratio_manager"] = rounds.ratio("pooled manager", "single-account manager")
        result["ratio_lookup"] = rounds.ratio("pool.manager(creds).get_token()", "single, wrapped")
        result["ns_single"] = rounds.median("single-account manager")
        result["ns_manager"] = rounds.median("pooled manager")
        result["ns_lookup"] = rounds.median("pool.manager(creds).get_token()")
        result["ns_wrapped"] = rounds.median("single, wrapped")
    return result


def run(ctx: RunContext) -> list[Figure]:
    count = ctx.size(1_000, 10_000)
    with Fleet(timeout=600.0) as fleet:
        worker = fleet.spawn(serve_accounts, {"count": count}, name="bench-fake-accounts")
        ready = worker.expect("gate", 120)
        result = asyncio.run(asyncio.wait_for(_measure(ctx, ready["url"], count), 900))
        fleet.go([worker], delay=0)
        result["fake"] = fake = worker.result(60)
    ctx.data[NAME] = {
        key: (value.__dict__ if hasattr(value, "__dict__") else value)
        for key, value in result.items()
        if not key.startswith("ratio_")
    }
    n = f"{count:,} accounts"
    store = result["store"]
    figures = [
        figure(
            NAME,
            f"memory per account with its token ({n}, {store} store)",
            result["kib_per_account"],
            "KiB/account",
            below=TARGET_KIB,
            note=f"RSS growth over {result['cold_accounts']:,} accounts after a warm-up",
        ),
        figure(
            NAME,
            f"cold fetch of {result['cold_accounts']:,} accounts, {CONCURRENCY} at once",
            result["cold_seconds"],
            "s",
            note=f"{result['cold_accounts'] / result['cold_seconds']:,.0f} accounts/s; fake: "
            f"{fake['apps_with_one_token']:,} of {count:,} apps got exactly one token",
        ),
    ]
    if result["connections_all"] is not None:
        figures.append(
            figure(
                NAME,
                f"connections to Redis with {count:,} accounts (CLIENT LIST)",
                result["connections_all"],
                at_most=SHARED_MAX_CONNECTIONS,
                note=f"{result['connections_tenth']} with {max(WARM_UP, count // 10):,} accounts",
            )
        )
    figures += [
        figure(
            NAME,
            f"warm get_token(), one account of {count:,} vs a single-account manager",
            result["ratio_manager"],
            "x",
            at_most=TARGET_RATIO,
            note=f"{result['ns_manager']:.0f} ns vs {result['ns_single']:.0f} ns per call",
        ),
        figure(
            NAME,
            f"pool.manager(creds).get_token() with {count:,} accounts vs single",
            result["ratio_lookup"],
            "x",
            note=f"{result['ns_lookup']:.0f} ns vs {result['ns_wrapped']:.0f} ns, both in an "
            "async def: the pool's lookup is the difference",
        ),
    ]
    return figures
