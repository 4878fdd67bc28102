"""rate_budget: leases of the fleet's rate budget, each target beside its baseline.

* **Pacing that need not wait** (``RateLimits(light=100000)``): ``ZoomClient.get_user``
  against a FakeZoom in a child process, paced through Redis and PostgreSQL, beside
  the same client unpaced (no limiter at all). The fake enforces the same 100,000/s,
  so its answers say budget is left, as Zoom's would for a request that need not
  wait (its default headers, Pro's 30/s, would report none left). Targets: requests per second
  >= 0.9x, client CPU per request <= 1.1x; store round trips per request (a lease
  serves many requests; never one per request).
* **Pacing delivers the limit**: 4 processes of a :class:`tests.harness.fleet.Fleet`,
  each with many coroutines taking slots from one limiter (no HTTP: the fake could
  not serve 10,000/s on 2 cores), at 20/s to 10,000/s on Redis and to 4,000/s on
  PostgreSQL. The granted instants of all processes (one clock, ``time.monotonic()``)
  are replayed against Zoom's per-second bucket (``FakeRateLimits``' token bucket,
  one second's worth): targets >= 0.9x of the limit delivered, 0 would-be 429s.
* **End to end at 20/s**: P processes x C coroutines against the fake's real limit,
  fleet pacing vs per-process pacing vs none (429 share, achieved rate).
* **The ledger's cost**: a capped request (a meeting update: one count in the
  store, then a leased slot) beside the old per-request permit and a raw round trip
  (redis-py ``PING``, asyncpg ``SELECT 1`` on a dedicated connection); a warm
  ``get_token()`` beside them.
"""

from __future__ import annotations

import asyncio
import contextlib
import statistics
import time
from collections.abc import Awaitable, Callable
from typing import Any

import attrs

from tests.harness.fleet import Fleet, WorkerContext
from tests.system.ratelimit_worker import budget_run
from zoom_s2s import RateLimits, TokenManager, ZoomClient, store_from_url
from zoom_s2s.ratelimit import RateLimiter, rate_scope
from zoom_s2s.testing import FakeRateLimits, FakeZoom

from ._common import (
    BenchmarkSkipped,
    Figure,
    RunContext,
    Spread,
    compare_async,
    figure,
    rotations,
    run_async,
)
from ._fake_process import fake_zoom_process

NAME = "rate_budget"
TITLE = "rate budget leases: paced vs unpaced, delivered rate, 429s, the ledger's cost"

LIMIT = 20  # Light requests per second the fake allows the account (end to end)
SUBJECTS = ("fleet", "process", "none")
PROCESSES = 4


# -- pacing delivers the limit (limiter only, 4 processes) ------------------------------


async def pace(worker: WorkerContext) -> dict[str, Any]:
    """Take slots of ``rate``/s from ``coroutines`` coroutines for ``seconds``; the instants."""
    options = worker.options
    store = worker.open_store()
    limiter = RateLimiter(
        RateLimits(light=float(options["rate"])), store, scope=options["scope"]
    )
    granted: list[float] = []
    try:
        ticket = limiter.ticket("GET", "/users/me")
        await limiter.acquire(ticket)  # the notices and the store's scripts, before timing
        await worker.gate()
        deadline = time.monotonic() + float(options["seconds"])

        async def loop(_index: int) -> None:
            while time.monotonic() < deadline:
                await limiter.acquire(limiter.ticket("GET", "/users/me"))
                granted.append(time.monotonic())

        task = asyncio.ensure_future(worker.gather(loop))
        await asyncio.wait({task}, timeout=float(options["seconds"]) + 0.5)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    finally:
        await store.aclose()
    return {"granted": granted, "leases": limiter.leases, "store_calls": limiter.store_calls}


def would_be_429s(instants: list[float], rate: float) -> int:
    """Requests Zoom's per-second bucket (``rate``/s, one second's worth) would refuse."""
    tokens, last, refused = rate, None, 0
    for at in sorted(instants):
        if last is not None:
            tokens = min(rate, tokens + (at - last) * rate)
        last = at
        if tokens < 1.0:
            refused += 1
        else:
            tokens -= 1.0
    return refused


def _delivery(ctx: RunContext, url: str, options: dict[str, Any] | None,
              rates: list[int]) -> dict[int, dict[str, float]]:
    seconds = ctx.size(2.0, 5.0)
    outcome: dict[int, dict[str, float]] = {}
    for rate in rates:
        coroutines = max(4, int(rate / PROCESSES * 0.3))
        with Fleet(store=url, store_options=options, coroutines=coroutines,
                   timeout=120.0) as fleet:
            scope = rate_scope("bench", f"delivery-{rate}-{time.monotonic_ns()}")
            results = fleet.run(pace, [{"rate": rate, "seconds": seconds, "scope": scope}]
                                * PROCESSES, timeout=seconds + 60)
        instants = sorted(at for r in results for at in r["granted"])
        start = instants[0] if instants else 0.0
        window = [at for at in instants if at < start + seconds - 0.2]
        granted = len(instants)
        outcome[rate] = {
            "delivered": len(window) / ((seconds - 0.2) * rate),
            "would_be_429": would_be_429s(instants, rate),
            "requests_per_round_trip": granted / max(1, sum(r["store_calls"] for r in results)),
        }
    return outcome


# -- a paced request that need not wait, beside an unpaced one --------------------------


async def _overhead(ctx: RunContext, stores: dict[str, tuple[str, dict[str, Any]]]
                    ) -> dict[str, Any]:
    concurrency, seconds, rounds = ctx.size((10, 0.5, 7), (20, 1.0, 15))
    figures: dict[str, Any] = {}
    with fake_zoom_process(expires_in=3599, qps={"Light": 100_000}) as fake:
        for label, (url, options) in stores.items():
            store = store_from_url(url, **options)
            async with (
                TokenManager(fake.credentials, token_url=fake.token_url, store=store) as tokens,
                ZoomClient(tokens, fake.api_base_url) as unpaced,
                ZoomClient(tokens, fake.api_base_url,
                           rate_limits=RateLimits(light=100_000)) as paced,
            ):
                unpaced.rate_limiter = None  # no limiter at all: the baseline
                limiter = paced.rate_limiter
                assert limiter is not None
                subjects: dict[str, Callable[[], Awaitable[object]]] = {
                    "unpaced": lambda: unpaced.get_user("me"),
                    "paced": lambda: paced.get_user("me"),
                }
                for call in subjects.values():  # warm: connections, scripts, a lease
                    await asyncio.gather(*(call() for _ in range(concurrency)))
                rps: dict[str, list[float]] = {name: [] for name in subjects}
                cpu: dict[str, list[float]] = {name: [] for name in subjects}
                calls_before, permits_before = limiter.store_calls, limiter.permits
                for _, name in rotations(list(subjects), rounds):
                    got, cost = await _drive(subjects[name], concurrency, seconds)
                    rps[name].append(got)
                    cpu[name].append(cost)
                permits = limiter.permits - permits_before
                trips = limiter.store_calls - calls_before
            figures[label] = {
                "rps": Spread.of([p / u for p, u in zip(rps["paced"], rps["unpaced"],
                                                        strict=True)]),
                "cpu": Spread.of([p / u for p, u in zip(cpu["paced"], cpu["unpaced"],
                                                        strict=True)]),
                "rps_median": (statistics.median(rps["paced"]),
                               statistics.median(rps["unpaced"])),
                "cpu_median": (statistics.median(cpu["paced"]),
                               statistics.median(cpu["unpaced"])),
                "trips_per_request": trips / max(1, permits),
            }
    return figures


async def _drive(
    call: Callable[[], Awaitable[object]], concurrency: int, seconds: float
) -> tuple[float, float]:
    """Requests per second and client CPU microseconds per request, for ``seconds``."""
    done = 0
    deadline = time.perf_counter() + seconds

    async def worker() -> None:
        nonlocal done
        while time.perf_counter() < deadline:
            await call()
            done += 1

    cpu, started = time.process_time(), time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
    return done / elapsed, cpu / max(done, 1) * 1e6


# -- the ledger's cost -------------------------------------------------------------------


async def _ledger_cost(url: str, options: dict[str, Any], fake: FakeZoom, raw: Callable[
        [], Awaitable[object]], rounds: int) -> dict[str, Any]:
    store = store_from_url(url, **options)
    try:
        async with TokenManager(fake.credentials, token_url=fake.token_url,
                                store=store) as tokens:
            await tokens.get_token()
            # A burst that covers a timed block: the slots' own spacing is not what is timed.
            limiter = RateLimiter(RateLimits(light=100_000, burst=10_000), store,
                                  scope=rate_scope("bench", f"ledger-{time.monotonic_ns()}"))
            limiter._remember_host("meetings/1", "host-a")  # learned from an earlier answer
            budget = limiter._fleet
            assert budget is not None
            counter = f"{limiter.scope}.bench"

            # A meeting update: counted against its host (a limit no run reaches).
            update = limiter.ticket("PATCH", "/meetings/1")
            assert update.cap is not None
            update.cap = attrs.evolve(update.cap, limits=10**9)

            async def capped() -> object:
                return await limiter.acquire(update)

            async def leased() -> object:
                return await limiter.acquire(limiter.ticket("GET", "/users/me"))

            async def old_permit() -> object:
                return await budget.acquire_permit(f"{limiter.scope}.old", interval=1e-6,
                                                   burst=1, max_wait=60)

            async def count_only() -> object:
                return await budget.count(counter, limit=10**9)

            before = limiter.store_calls
            for _ in range(100):
                await capped()
            trips = (limiter.store_calls - before) / 100
            timed = await compare_async(
                {"ledger (capped request)": capped, "leased slot": leased,
                 "old permit": old_permit, "raw round trip": raw,
                 "get_token": tokens.get_token, "count": count_only},
                calls=2_000, rounds=rounds,
            )
    finally:
        await store.aclose()
    return {"timed": timed, "trips": trips}


async def _redis_raw(url: str) -> tuple[Callable[[], Awaitable[object]], Callable[[], Any]]:
    import redis.asyncio as redis_asyncio

    client: Any = redis_asyncio.Redis.from_url(url)
    await client.ping()
    return client.ping, client.aclose


async def _postgres_raw(url: str) -> tuple[Callable[[], Awaitable[object]], Callable[[], Any]]:
    import asyncpg

    connection = await asyncpg.connect(url)

    async def select() -> object:
        return await connection.fetchval("SELECT 1")

    return select, connection.close


async def _costs(ctx: RunContext, stores: dict[str, tuple[str, dict[str, Any]]],
                 fake: FakeZoom) -> dict[str, Any]:
    out = {}
    for label, (url, options) in stores.items():
        raw, close = await (_redis_raw(url) if label == "Redis" else _postgres_raw(url))
        try:
            out[label] = await _ledger_cost(url, options, fake, raw, ctx.size(3, 7))
        finally:
            await close()
    return out


# -- end to end at 20/s -------------------------------------------------------------------


def _end_to_end(ctx: RunContext, redis_url: str) -> dict[str, list[dict[str, float]]]:
    processes, coroutines = ctx.size((3, 10), (4, 25))
    seconds = ctx.size(2.0, 10.0)
    layer = FakeRateLimits({"Light": LIMIT})
    outcomes: dict[str, list[dict[str, float]]] = {name: [] for name in SUBJECTS}
    with contextlib.ExitStack() as stack:
        fake = stack.enter_context(FakeZoom(rate_limits=layer).running_in_thread())
        fleet = stack.enter_context(Fleet(
            token_url=fake.token_url, credentials=fake.credentials, store=redis_url,
            api_base_url=fake.api_base_url, coroutines=coroutines, timeout=120.0,
        ))
        for _, subject in rotations(list(SUBJECTS), ctx.size(1, 3)):
            run = budget_run(fleet, layer, processes=processes, seconds=seconds,
                             pacing=subject, limit=LIMIT)
            outcomes[subject].append({
                "share_429": 100.0 * run["fake_429"] / max(1, run["fake_requests"]),
                "rate": run["rate"],
            })
    return outcomes


def run(ctx: RunContext) -> list[Figure]:
    if not ctx.has_redis():
        raise BenchmarkSkipped("needs redis-server and the redis package")
    stores: dict[str, tuple[str, dict[str, Any]]] = {"Redis": (ctx.redis_url(), {})}
    rates = {"Redis": [20, 1000, 4000, 10_000]}
    if ctx.has_postgres():
        stores["PostgreSQL"] = (ctx.postgres_url(), {"schema": ctx.postgres_schema()})
        rates["PostgreSQL"] = [20, 1000, 4000]
    figures: list[Figure] = []

    overhead = run_async(_overhead(ctx, stores), 600)
    for label, got in overhead.items():
        paced, unpaced = got["rps_median"]
        figures.append(figure(
            NAME, f"paced (need not wait) / unpaced client, requests per second, {label}",
            got["rps"], "x", at_least=0.9, note=f"median {paced:.0f} vs {unpaced:.0f} req/s",
        ))
        paced, unpaced = got["cpu_median"]
        figures.append(figure(
            NAME, f"paced / unpaced client CPU per request, {label}", got["cpu"], "x",
            at_most=1.1, note=f"median {paced:.0f} vs {unpaced:.0f} us/request",
        ))
        figures.append(figure(
            NAME, f"store round trips per paced request, {label}", got["trips_per_request"],
            "", at_most=0.5, note="leases and notice reads over requests (old: 1 or 2)",
        ))

    for label, (url, options) in stores.items():
        delivery = _delivery(ctx, url, options or None, rates[label])
        for rate, got in delivery.items():
            figures.append(figure(
                NAME, f"delivered / limit at {rate}/s, {PROCESSES} processes, {label}",
                got["delivered"], "x", at_least=0.9,
                note=f"{got['requests_per_round_trip']:.1f} slots per store round trip",
            ))
            figures.append(figure(
                NAME, f"would-be 429s at {rate}/s, {label}", got["would_be_429"], "",
                at_most=0, note="grants replayed against Zoom's per-second bucket",
            ))

    with FakeZoom().running_in_thread() as fake:
        costs = run_async(_costs(ctx, stores, fake), 300)
    for label, got in costs.items():
        timed = got["timed"]
        for subject in ("ledger (capped request)", "old permit", "leased slot",
                        "raw round trip", "get_token"):
            note = {
                "ledger (capped request)": f"{got['trips']:g} round trip(s): the count",
                "old permit": "one round trip per request, before leases",
                "leased slot": "no I/O",
            }.get(subject, "")
            figures.append(figure(
                NAME, f"{subject}, {label}",
                Spread.of([ns / 1000 for ns in timed.wall[subject]]), "us", note=note,
            ))

    ends = _end_to_end(ctx, ctx.redis_url())
    for subject in SUBJECTS:
        runs = ends[subject]
        figures.append(figure(
            NAME, f"429s end to end at {LIMIT}/s, {subject} pacing",
            Spread.of([r["share_429"] for r in runs]), "%",
            below=1.0 if subject == "fleet" else None,
        ))
        figures.append(figure(
            NAME, f"achieved rate end to end, {subject} pacing",
            Spread.of([r["rate"] for r in runs]), "x limit",
            at_least=0.9 if subject == "fleet" else None,
        ))
    ctx.data[NAME] = {
        "overhead": {k: {"trips_per_request": v["trips_per_request"]}
                     for k, v in overhead.items()},
        "costs": {k: v["timed"].summary() for k, v in costs.items()},
        "end_to_end": ends,
    }
    return figures
