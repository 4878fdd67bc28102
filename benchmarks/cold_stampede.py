"""cold_stampede: P processes x C coroutines ask for a token at one instant on a cold store.

A FakeZoom with ~50 ms token latency is served from a thread of the parent.
The workers of a :class:`~benchmarks._fleet.Fleet` prepare their store and
client, then all start together; every coroutine calls ``get_token()`` once.
Measured: token requests at the fake, time to first and last token, and the
*hand-off*: for each caller, the time from the fetch of the token it got (the
leader's FETCHED event, just before its store write) until it had it.

Subjects, all in the same run:

* zoom-s2s on Redis and on a file store (targets: 1 request; Redis hand-off
  p99 < 5 ms);
* per-process caching: a TokenManager on a MemoryTokenStore per process
  (one fetch per process);
* redis-py's ``redis.asyncio.lock.Lock`` with its default 0.1 s polling,
  guarding a fetch + SET (what one writes by hand);
* a reference "pub/sub floor": the least a Redis hand-off can do, to show
  what the machine itself allows.

The subjects live in :mod:`benchmarks._subjects`; the peer benchmark adds
Authlib subjects and reuses :func:`measure`.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from typing import Any

import attrs

from zoom_s2s.testing import FakeZoom

from ._common import BenchmarkSkipped, Figure, RunContext, figure, percentile, run_async
from ._fleet import Fleet, Gate
from ._subjects import (
    Spec,
    SubjectFactory,
    per_process_memory,
    pubsub_floor,
    redis_py_lock,
    zoom_s2s_file,
    zoom_s2s_redis,
)

NAME = "cold_stampede"
TITLE = "P processes x C coroutines on a cold store, all at one instant"
TOKEN_LATENCY = 0.05
P99_TARGET_MS = 5.0


# -- the worker ----------------------------------------------------------------------


def stampede_worker(
    *, gate: Gate, index: int, subject: SubjectFactory, spec: Spec, timeout: float
) -> dict[str, Any]:
    """One process of the stampede (runs in a fleet worker)."""
    result: dict[str, Any] = run_async(_stampede(gate, subject, spec), timeout)
    return result


async def _stampede(gate: Gate, subject: SubjectFactory, spec: Spec) -> dict[str, Any]:
    async with subject(spec) as source:

        async def caller() -> tuple[float, str]:
            token_id = await source.get_token()
            return time.time(), token_id

        gate()
        start = time.time()
        results = await asyncio.gather(
            *(caller() for _ in range(spec.coroutines)), return_exceptions=True
        )
    done = [r for r in results if not isinstance(r, BaseException)]
    errors = [f"{type(r).__name__}: {r}" for r in results if isinstance(r, BaseException)]
    return {"start": start, "done": done, "fetched": source.fetched, "errors": errors}


# -- the parent ----------------------------------------------------------------------


@attrs.frozen
class Outcome:
    """One subject at one P x C, pooled over repeats."""

    requests: int  # worst repeat
    first_ms: float  # median over repeats
    last_ms: float  # median over repeats
    handoff_ms: list[float]  # every caller of every repeat
    errors: list[str]

    @property
    def handoff_p50(self) -> float | None:
        return percentile(self.handoff_ms, 50)

    @property
    def handoff_p99(self) -> float | None:
        return percentile(self.handoff_ms, 99)

    def summary(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "first_token_ms": self.first_ms,
            "last_token_ms": self.last_ms,
            "handoff_p50_ms": self.handoff_p50,
            "handoff_p99_ms": self.handoff_p99,
            "handoff_max_ms": max(self.handoff_ms, default=None),
            "callers": len(self.handoff_ms),
            "errors": self.errors[:5],
            "error_count": len(self.errors),
        }


def measure(
    ctx: RunContext,
    fleet: Fleet,
    fake: FakeZoom,
    subject: SubjectFactory,
    *,
    processes: int,
    coroutines: int,
    repeats: int,
    timeout: float = 30.0,
) -> Outcome:
    """Run ``subject`` as a stampede ``repeats`` times on a cold store each time."""
    requests, firsts, lasts, handoffs, errors = 0, [], [], [], []
    for _ in range(repeats):
        redis_url = ctx.redis_url() if ctx.has_redis() else None  # flushed: cold
        spec = Spec(
            token_url=fake.token_url,
            credentials=fake.credentials,
            coroutines=coroutines,
            store_dir=str(ctx.temp_dir("stampede")),
            redis_url=redis_url,
        )
        before = fake.token_requests
        job = {"subject": subject, "spec": spec, "timeout": timeout}
        results = fleet.run(stampede_worker, [job] * processes, timeout + 30)
        requests = max(requests, fake.token_requests - before)
        fetched: dict[str, float] = {}
        for result in results:
            fetched.update(result["fetched"])
            errors += result["errors"]
        start = min(result["start"] for result in results)
        done = [item for result in results for item in result["done"]]
        if done:
            firsts.append((min(t for t, _ in done) - start) * 1000)
            lasts.append((max(t for t, _ in done) - start) * 1000)
        handoffs += [(t - fetched[tid]) * 1000 for t, tid in done if tid in fetched]
    return Outcome(
        requests=requests,
        first_ms=statistics.median(firsts) if firsts else float("nan"),
        last_ms=statistics.median(lasts) if lasts else float("nan"),
        handoff_ms=handoffs,
        errors=errors,
    )


def configs(ctx: RunContext) -> list[tuple[int, int]]:
    """(processes, coroutines) for this mode."""
    result: list[tuple[int, int]] = ctx.size([(4, 25)], [(6, 50), (8, 100)])
    return result


def run(ctx: RunContext) -> list[Figure]:
    if not ctx.has_redis():
        raise BenchmarkSkipped("needs redis-server and the redis package")
    repeats = ctx.size(2, 3)
    # label -> (subject, repeats, seconds a worker may take)
    subjects: dict[str, tuple[SubjectFactory, int, float]] = {
        "zoom-s2s redis": (zoom_s2s_redis, repeats, 30.0),
        "zoom-s2s file": (zoom_s2s_file, repeats, 30.0),
        "per-process memory": (per_process_memory, repeats, 30.0),
        "pub/sub floor": (pubsub_floor, repeats, 30.0),
        # Its waiters poll in lockstep: about one caller per 0.1 s tick gets through,
        # so it takes seconds per hundred callers. Once is enough.
        "redis-py Lock": (redis_py_lock, 1, 90.0),
    }
    figures: list[Figure] = []
    data: dict[str, Any] = {}
    largest = max(p for p, _ in configs(ctx))
    with FakeZoom(latency=TOKEN_LATENCY).running_in_thread() as fake, Fleet(largest) as fleet:
        for processes, coroutines in configs(ctx):
            shape = f"{processes}x{coroutines}"
            outcomes = {
                label: measure(
                    ctx,
                    fleet,
                    fake,
                    factory,
                    processes=processes,
                    coroutines=coroutines,
                    repeats=times,
                    timeout=timeout,
                )
                for label, (factory, times, timeout) in subjects.items()
            }
            data[shape] = {label: o.summary() for label, o in outcomes.items()}
            figures += _figures(shape, outcomes)
    ctx.data[NAME] = {"token_latency_s": TOKEN_LATENCY, "repeats": repeats, "runs": data}
    return figures


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f} ms"


def _figures(shape: str, outcomes: dict[str, Outcome]) -> list[Figure]:
    figures = []
    for label, outcome in outcomes.items():
        mine = label.startswith("zoom-s2s")
        errors = f"; {len(outcome.errors)} errors: {outcome.errors[:1]}" if outcome.errors else ""
        figures.append(
            figure(
                NAME,
                f"{shape} {label}: token requests",
                outcome.requests,
                at_most=1 if mine else None,
                note=f"first token {_ms(outcome.first_ms)}, last {_ms(outcome.last_ms)}{errors}",
            )
        )
        figures.append(
            figure(
                NAME,
                f"{shape} {label}: hand-off p99",
                outcome.handoff_p99,
                "ms",
                below=P99_TARGET_MS if label == "zoom-s2s redis" else None,
                note=f"median {_ms(outcome.handoff_p50)} over {len(outcome.handoff_ms)} callers",
            )
        )
    ours, floor = outcomes["zoom-s2s redis"], outcomes["pub/sub floor"]
    if ours.handoff_p99 and floor.handoff_p99:
        figures.append(
            figure(
                NAME,
                f"{shape} zoom-s2s redis / pub/sub floor: hand-off p99",
                ours.handoff_p99 / floor.handoff_p99,
                "x",
                note=f"{_ms(ours.handoff_p99)} vs {_ms(floor.handoff_p99)}",
            )
        )
    lock = outcomes["redis-py Lock"]
    if ours.handoff_p99 and lock.handoff_p99:
        figures.append(
            figure(
                NAME,
                f"{shape} redis-py Lock / zoom-s2s redis: hand-off p99",
                lock.handoff_p99 / ours.handoff_p99,
                "x",
                note=f"{_ms(lock.handoff_p99)} vs {_ms(ours.handoff_p99)}",
            )
        )
    for label in ("per-process memory", "redis-py Lock"):
        other = outcomes[label]
        figures.append(
            figure(
                NAME,
                f"{shape} {label} / zoom-s2s redis: last token time",
                other.last_ms / ours.last_ms,
                "x",
                note=f"{_ms(other.last_ms)} vs {_ms(ours.last_ms)}; requests "
                f"{other.requests} vs {ours.requests}",
            )
        )
    return figures
