"""rate_budget: P processes x C coroutines against the fake's per-account rate limit.

A FakeZoom served from a thread enforces Zoom's per-account limit of 20 Light
requests per second (:class:`zoom_s2s.testing.FakeRateLimits`, a token
bucket holding one second's worth). The workers of a
:class:`tests.harness.fleet.Fleet` call ``get_user`` in a loop from C coroutines
each (the fleet tests' workload, ``tests/system/ratelimit_worker.py``, so the
benchmark measures what the tests check), a 429 counted, not retried:

* ``fleet``: ``ZoomClient(rate_limits=RateLimits(light=20))`` on a Redis store,
  one budget for the whole fleet (target: under 1 % 429s, at least 90 % of the limit);
* ``process``: the same limiter on a per-process store (every process paces
  itself politely at the account's rate);
* ``none``: no pacing.

The subjects run in interleaved rounds. Measured per subject: the share of
requests Zoom answered with 429, the achieved rate as a fraction of the limit,
and the p99 wait for a permit. Then the cost of one permit on Redis (one
script, one round trip) against one warm ``get_token()`` and one store read.
With PostgreSQL installed, fleet pacing runs through it too (one UPSERT per
permit on the database's clock), with the cost of one permit there.
"""

from __future__ import annotations

import contextlib
from typing import Any

from tests.harness.fleet import Fleet
from tests.system.ratelimit_worker import budget_run
from zoom_s2s import MemoryTokenStore, RedisTokenStore, TokenManager
from zoom_s2s.testing import FakeRateLimits, FakeZoom

from ._common import (
    BenchmarkSkipped,
    Figure,
    Rounds,
    RunContext,
    Spread,
    compare_async,
    figure,
    rotations,
    run_async,
)

NAME = "rate_budget"
TITLE = "one rate budget: fleet pacing vs per-process pacing vs none, 429s and achieved rate"

LIMIT = 20  # Light requests per second the fake allows the account
SUBJECTS = ("fleet", "process", "none")
POSTGRES = "fleet on PostgreSQL"


def _one_run(
    fleet: Fleet, layer: FakeRateLimits, processes: int, seconds: float, pacing: str
) -> dict[str, float]:
    run = budget_run(
        fleet, layer, processes=processes, seconds=seconds, pacing=pacing, limit=LIMIT
    )
    return {
        "requests": run["fake_requests"],
        "refused": run["fake_429"],
        "share_429": 100.0 * run["fake_429"] / max(1, run["fake_requests"]),
        "rate": run["rate"],
        "wait_p99_ms": 1000 * run["wait_p99"],
    }


async def _permit_cost(redis_url: str, fake: FakeZoom, rounds: int) -> dict[str, Any]:
    import redis.asyncio as redis_asyncio

    store = RedisTokenStore.from_url(redis_url)
    raw: Any = redis_asyncio.Redis.from_url(redis_url)
    try:
        async with TokenManager(
            fake.credentials, token_url=fake.token_url, store=MemoryTokenStore()
        ) as tokens:
            await tokens.get_token()

            async def permit() -> object:
                return await store.rate_budget.acquire_permit(
                    "rate-bench.light", interval=1e-6, burst=1, max_wait=60
                )

            async def read() -> object:
                return await store.read("bench")

            before = await raw.info("commandstats")
            for _ in range(100):
                await permit()
            after = await raw.info("commandstats")
            calls = sum(
                int(after.get(k, {}).get("calls", 0)) - int(before.get(k, {}).get("calls", 0))
                for k in after
                if k in ("cmdstat_evalsha", "cmdstat_eval", "cmdstat_script|load")
            )
            timed = await compare_async(
                {"permit": permit, "read": read, "get_token": tokens.get_token},
                calls=2_000,
                rounds=rounds,
            )
    finally:
        await store.aclose()
        await raw.aclose()
    return {"round_trips": calls / 100, "timed": timed}


async def _postgres_permit_cost(url: str, schema: str, rounds: int) -> Rounds:
    from zoom_s2s.stores import PostgresTokenStore

    store = PostgresTokenStore.from_url(url, schema=schema)
    try:
        await store.read("warm-up")  # the pool and the schema check, before timing

        async def permit() -> object:
            return await store.rate_budget.acquire_permit(
                "rate-bench.light", interval=1e-6, burst=1, max_wait=60
            )

        async def read() -> object:
            return await store.read("bench")

        timed: Rounds = await compare_async(
            {"permit": permit, "read": read}, calls=2_000, rounds=rounds
        )
    finally:
        await store.aclose()
    return timed


def run(ctx: RunContext) -> list[Figure]:
    if not ctx.has_redis():
        raise BenchmarkSkipped("needs redis-server and the redis package")
    processes, coroutines = ctx.size((3, 10), (4, 25))
    seconds = ctx.size(2.0, 10.0)
    rounds = ctx.size(1, 3)
    redis_url = ctx.redis_url()
    layer = FakeRateLimits({"Light": LIMIT})
    with contextlib.ExitStack() as stack:
        fake = stack.enter_context(FakeZoom(rate_limits=layer).running_in_thread())

        def fleet(store: str, options: dict[str, Any] | None = None) -> Fleet:
            return stack.enter_context(Fleet(
                token_url=fake.token_url,
                credentials=fake.credentials,
                store=store,
                store_options=options,
                api_base_url=fake.api_base_url,
                coroutines=coroutines,
                timeout=120.0,
            ))

        # subject -> (fleet, pacing). The PostgreSQL runs are a subject of their own in the
        # rotation: reservations a run's callers leave behind (slots booked by callers
        # still queued when it ends) lapse during the other subjects' runs, as on Redis.
        on_redis = fleet(redis_url)
        subjects = {name: (on_redis, name) for name in SUBJECTS}
        if ctx.has_postgres():
            options = {"schema": ctx.postgres_schema()}
            subjects[POSTGRES] = (fleet(ctx.postgres_url(), options), "fleet")
        outcomes: dict[str, list[dict[str, float]]] = {name: [] for name in subjects}
        for _, subject in rotations(list(subjects), rounds):
            on, pacing = subjects[subject]
            outcomes[subject].append(_one_run(on, layer, processes, seconds, pacing))
        cost = run_async(_permit_cost(redis_url, fake, ctx.size(3, 7)), 120)
        pg_cost = (
            run_async(
                _postgres_permit_cost(ctx.postgres_url(), ctx.postgres_schema(),
                                      ctx.size(3, 7)), 120,
            )
            if POSTGRES in subjects else None
        )
    shape = f"{processes}x{coroutines}, {seconds:g} s, limit {LIMIT}/s"
    figures: list[Figure] = []
    for subject in SUBJECTS:
        runs = outcomes[subject]
        share = Spread.of([r["share_429"] for r in runs])
        rate = Spread.of([r["rate"] for r in runs])
        requests = sum(r["requests"] for r in runs) / len(runs)
        figures.append(figure(
            NAME, f"429s, {subject} pacing ({shape})", share, "%",
            below=1.0 if subject == "fleet" else None,
            note=f"{requests:.0f} requests a run",
        ))
        figures.append(figure(
            NAME, f"achieved rate, {subject} pacing", rate, "x limit",
            at_least=0.9 if subject == "fleet" else None,
            note="passed requests / (limit x seconds)",
        ))
        if subject != "none":
            figures.append(figure(
                NAME, f"p99 wait for a permit, {subject} pacing",
                Spread.of([r["wait_p99_ms"] for r in runs]), "ms",
                note=f"{processes * coroutines} callers share {LIMIT}/s: queueing, not overhead",
            ))
    if pg_cost is None:
        figures.append(figure(NAME, "skipped postgres: no PostgreSQL server or asyncpg", None))
    else:
        runs = outcomes[POSTGRES]
        figures.append(figure(
            NAME, f"429s, fleet pacing on PostgreSQL ({shape})",
            Spread.of([r["share_429"] for r in runs]), "%", below=1.0,
            note=f"{sum(r['requests'] for r in runs) / len(runs):.0f} requests a run",
        ))
        figures.append(figure(
            NAME, "achieved rate, fleet pacing on PostgreSQL",
            Spread.of([r["rate"] for r in runs]), "x limit", at_least=0.9,
            note="passed requests / (limit x seconds)",
        ))
        figures.append(figure(
            NAME, "one permit on PostgreSQL",
            Spread.of([ns / 1000 for ns in pg_cost.wall["permit"]]), "us",
            note="one INSERT ... ON CONFLICT DO UPDATE ... RETURNING (a round trip)",
        ))
        figures.append(figure(
            NAME, "one store read on PostgreSQL (a round trip)",
            Spread.of([ns / 1000 for ns in pg_cost.wall["read"]]), "us",
        ))
    timed = cost["timed"]
    figures.append(figure(
        NAME, "one permit on Redis", Spread.of([ns / 1000 for ns in timed.wall["permit"]]),
        "us", note=f"{cost['round_trips']:g} round trip(s) (EVALSHA) per permit",
    ))
    figures.append(figure(
        NAME, "one store read on Redis (a round trip)",
        Spread.of([ns / 1000 for ns in timed.wall["read"]]), "us",
    ))
    figures.append(figure(
        NAME, "one warm get_token()", Spread.of([ns / 1000 for ns in timed.wall["get_token"]]),
        "us",
    ))
    ctx.data[NAME] = {"runs": outcomes, "permit_cost": timed.summary(),
                      "round_trips_per_permit": cost["round_trips"],
                      "postgres_permit_cost": None if pg_cost is None else pg_cost.summary()}
    return figures


