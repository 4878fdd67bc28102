"""fleet_soak: a fleet on short-lived tokens for T seconds.

P processes x C coroutines share a Redis store and call ``get_token()`` in a
loop (1-5 ms apart) for T seconds; FakeZoom (in a parent thread) issues tokens
that live ~3 s, so the fleet refreshes many times (refresh margin: the default,
capped by the manager at half the lifetime). Every coroutine also calls
``GET /v2/users/me`` through :class:`~zoom_s2s.ZoomClient` every so often.

Figures: token requests vs the ideal (one per lifetime plus the cold fetch;
target: at most one per refresh window), the slowest ``get_token()`` after
warm-up (target < 1 ms; the same timer around the dict-read baseline gives
the machine's noise floor), and 401s counted by the fake (target 0). Run
twice: normal, and with ``FakeZoom(revoke_previous=True)`` (Zoom before June
2023: a new token revokes the old ones). A per-call latency timeline feeds
the plot, with every fetch marked.
"""

from __future__ import annotations

import array
import asyncio
import collections
import math
import random
import time
from typing import Any

import aiohttp
import attrs

from tests.harness.fleet import Fleet, WorkerContext
from zoom_s2s import Credentials, RedisTokenStore, TokenEvent, TokenManager
from zoom_s2s.events import EventKind
from zoom_s2s.testing import FakeZoom

from ._common import (
    BenchmarkSkipped,
    Figure,
    RunContext,
    figure,
    load_zoom_client,
    percentile,
)
from .hot_path import _CACHE, baseline_get_token
from .report import plot_soak

NAME = "fleet_soak"
TITLE = "a fleet on ~3 s tokens: requests, slowest get_token(), 401s"
LIFETIME = 3.0
TOKEN_LATENCY = 0.02
WARMUP = 0.5  # seconds after the start that do not count for latency
BUCKET = 0.05  # seconds per point of the latency timeline
SLOWEST_TARGET_MS = 1.0
_EVENTS = (EventKind.FETCHED, EventKind.ADOPTED, EventKind.INVALIDATED, EventKind.REFRESH_FAILED)


@attrs.frozen
class SoakSpec:
    """What a soak worker needs (picklable)."""

    token_url: str
    api_base_url: str
    credentials: Credentials
    redis_url: str
    coroutines: int
    seconds: float
    api_interval: float


async def soak_worker(worker: WorkerContext) -> dict[str, Any]:
    """One process of the soak (a fleet workload; its options are a :class:`SoakSpec`)."""
    options = worker.options
    assert worker.credentials is not None
    spec = SoakSpec(
        token_url=worker.token_url,
        api_base_url=str(options["api_base_url"]),
        credentials=worker.credentials,
        redis_url=str(options["redis_url"]),
        coroutines=int(options["coroutines"]),
        seconds=float(options["seconds"]),
        api_interval=float(options["api_interval"]),
    )
    return await _soak(worker, spec)


class _Recorder:
    def __init__(self) -> None:
        self.start = 0.0
        self.stamps = array.array("d")  # seconds since start
        self.latencies = array.array("d")  # seconds
        self.floor = array.array("d")  # baseline timed the same way
        self.events: list[tuple[str, float]] = []
        self.token_errors: collections.Counter[str] = collections.Counter()
        self.api_errors: collections.Counter[str] = collections.Counter()
        self.api_calls = 0

    def hook(self, event: TokenEvent) -> None:
        if event.kind in _EVENTS:
            self.events.append((event.kind.value, time.time()))

    def summary(self, seconds: float) -> dict[str, Any]:
        warm = [lat for t, lat in zip(self.stamps, self.latencies, strict=True) if t >= WARMUP]
        floor = sorted(self.floor)
        buckets: list[float | None] = [None] * (math.ceil(seconds / BUCKET) + 1)
        slowest: list[tuple[float, float]] = []
        for t, lat in zip(self.stamps, self.latencies, strict=True):
            i = min(int(t / BUCKET), len(buckets) - 1)
            us = lat * 1e6
            buckets[i] = max(buckets[i] or 0.0, us)
            if t >= WARMUP:
                slowest.append((us, t))
        slowest.sort(reverse=True)
        return {
            "start": self.start,
            "calls": len(self.latencies),
            "warm_calls": len(warm),
            "p50_us": _us(percentile(warm, 50)),
            "p99_us": _us(percentile(warm, 99)),
            "p999_us": _us(percentile(warm, 99.9)),
            "max_us": _us(max(warm, default=None)),
            "slowest": [(round(us, 1), round(t, 3)) for us, t in slowest[:5]],
            "floor_max_us": _us(floor[-1] if floor else None),
            "floor_p999_us": _us(percentile(floor, 99.9)),
            "max_us_per_bucket": [None if b is None else round(b, 1) for b in buckets],
            "events": self.events,
            "token_errors": dict(self.token_errors),
            "api_errors": dict(self.api_errors),
            "api_calls": self.api_calls,
        }


def _us(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1e6, 1)


async def _soak(worker: WorkerContext, spec: SoakSpec) -> dict[str, Any]:
    zoom_client = load_zoom_client()
    if zoom_client is None:
        raise BenchmarkSkipped("zoom_s2s.ZoomClient is not there yet")
    rec = _Recorder()
    _CACHE["token"] = (object(), time.time() + 3600)
    store = RedisTokenStore.from_url(spec.redis_url)
    await store.read("warm-up")
    try:
        async with (
            aiohttp.ClientSession() as session,
            TokenManager(
                spec.credentials,
                store=store,
                token_url=spec.token_url,
                session=session,
                hooks=[rec.hook],
            ) as tokens,
            zoom_client(tokens, base_url=spec.api_base_url, session=session) as zoom,
        ):

            async def caller() -> None:
                next_api = time.time() + random.uniform(0, spec.api_interval)
                while (now := time.time()) < end:
                    started = time.perf_counter()
                    try:
                        await tokens.get_token()
                    except Exception as exc:
                        rec.token_errors[type(exc).__name__] += 1
                        await asyncio.sleep(0.05)
                        continue
                    took = time.perf_counter() - started
                    rec.stamps.append(now - rec.start)
                    rec.latencies.append(took)
                    started = time.perf_counter()
                    await baseline_get_token()
                    rec.floor.append(time.perf_counter() - started)
                    if now >= next_api:
                        next_api = now + spec.api_interval
                        rec.api_calls += 1
                        try:
                            await zoom.get_user("me")
                        except Exception as exc:
                            rec.api_errors[type(exc).__name__] += 1
                    await asyncio.sleep(random.uniform(0.001, 0.005))

            await worker.gate()
            rec.start, cpu = time.time(), time.process_time()
            end = rec.start + spec.seconds
            await asyncio.gather(*(caller() for _ in range(spec.coroutines)))
            cpu = time.process_time() - cpu
    finally:
        await store.aclose()
    return {**rec.summary(spec.seconds), "cpu_s": cpu}


def _one_run(
    ctx: RunContext, fleet: Fleet, *, revoke: bool, processes: int, coroutines: int, seconds: float
) -> dict[str, Any]:
    fake = FakeZoom(expires_in=LIFETIME, latency=TOKEN_LATENCY, revoke_previous=revoke)
    with fake.running_in_thread():
        job = {
            "api_base_url": fake.api_base_url,
            "redis_url": ctx.redis_url(),
            "coroutines": coroutines,
            "seconds": seconds,
            "api_interval": ctx.size(0.25, 0.5),
        }
        fleet.token_url, fleet.credentials = fake.token_url, fake.credentials
        results = fleet.run(soak_worker, [job] * processes, timeout=seconds + 60)
        counters = {
            "token_requests": fake.token_requests,
            "api_requests": fake.api_requests,
            "api_unauthorized": fake.api_unauthorized,
        }
    start = min(r["start"] for r in results)
    fetches = sorted(t - start for r in results for kind, t in r["events"] if kind == "fetched")
    return {
        "processes": processes,
        "coroutines": coroutines,
        "seconds": seconds,
        "revoke_previous": revoke,
        "fake": counters,
        "fetches_s": [round(t, 3) for t in fetches],
        "bucket_s": BUCKET,
        "per_process": results,
        "processes_series": [{"max_us": r["max_us_per_bucket"]} for r in results],
    }


def _figures(label: str, run: dict[str, Any]) -> list[Figure]:
    seconds, fake, per = run["seconds"], run["fake"], run["per_process"]
    margin = min(300.0, LIFETIME / 2)  # the manager's default margin, capped at lifetime / 2
    ideal = 1 + seconds / LIFETIME
    bound = 1 + math.ceil(seconds / (LIFETIME - margin))
    requests = fake["token_requests"]
    slowest = max((p["max_us"] or 0.0) for p in per) / 1000
    floor = max((p["floor_max_us"] or 0.0) for p in per) / 1000
    p999 = max((p["p999_us"] or 0.0) for p in per) / 1000
    api_errors: collections.Counter[str] = collections.Counter()
    token_errors: collections.Counter[str] = collections.Counter()
    for p in per:
        api_errors.update(p["api_errors"])
        token_errors.update(p["token_errors"])
    calls = sum(p["calls"] for p in per)
    kinds = collections.Counter(kind for p in per for kind, _ in p["events"])
    waits = (
        f"{kinds['invalidated']} invalidations, {kinds['adopted']} adoptions, "
        f"{kinds['fetched']} fetches"
    )
    api_calls = sum(p["api_calls"] for p in per)
    cpu_s = sum(p["cpu_s"] for p in per)
    return [
        figure(
            NAME,
            f"{label}: token requests",
            requests,
            at_most=bound,
            note=f"ideal {ideal:.1f} (1 + T/lifetime), ratio {requests / ideal:.2f}; "
            f"bound = 1 per refresh window; {calls} get_token() calls",
        ),
        figure(
            NAME,
            f"{label}: slowest get_token() after warm-up",
            slowest,
            "ms",
            below=SLOWEST_TARGET_MS,
            note=f"worst p99.9 {p999:.3f} ms; noise floor (dict read, same timer) max "
            f"{floor:.3f} ms; {waits}",
        ),
        figure(
            NAME,
            f"{label}: 401 answers at the fake",
            fake["api_unauthorized"],
            at_most=0,
            note=f"{api_calls} API calls; caller-visible API errors {dict(api_errors) or 0}; "
            f"token errors {dict(token_errors) or 0}",
        ),
        figure(
            NAME,
            f"{label}: caller-visible errors",
            sum(api_errors.values()) + sum(token_errors.values()),
            at_most=0,
        ),
        figure(
            NAME,
            f"{label}: fleet CPU per get_token() call",
            cpu_s / max(calls, 1) * 1e6,
            "us",
            note=f"{cpu_s:.1f} s CPU over {len(per)} processes in {seconds:g} s "
            f"(callers, API calls, timing and sleeps included)",
        ),
    ]


def run(ctx: RunContext) -> list[Figure]:
    if not ctx.has_redis():
        raise BenchmarkSkipped("needs redis-server and the redis package")
    if load_zoom_client() is None:
        raise BenchmarkSkipped("zoom_s2s.ZoomClient is not there yet")
    processes, coroutines, seconds = ctx.size((2, 10, 6.0), (4, 25, 40.0))
    figures: list[Figure] = []
    runs: dict[str, Any] = {}
    with Fleet(timeout=120.0) as fleet:
        for revoke in (False, True):
            label = f"{processes}x{coroutines} {seconds:g}s"
            label += " revoke_previous" if revoke else ""
            run = _one_run(
                ctx,
                fleet,
                revoke=revoke,
                processes=processes,
                coroutines=coroutines,
                seconds=seconds,
            )
            figures += _figures(label, run)
            runs[label] = {
                "bucket_s": run["bucket_s"],
                "fetches_s": run["fetches_s"],
                "processes": run["processes_series"],
                "fake": run["fake"],
                "per_process": [
                    {k: v for k, v in p.items() if k != "max_us_per_bucket"}
                    for p in run["per_process"]
                ],
            }
    ctx.data[NAME] = {"lifetime_s": LIFETIME, "runs": runs}
    plot = ctx.output / "soak_latency.png"
    why_not = plot_soak(plot, runs)
    figures.append(figure(NAME, "latency plot", None, note=why_not or f"written to {plot}"))
    return figures
