"""cold_stampede: P processes x C coroutines ask for a token at one instant on a cold store.

A FakeZoom with ~50 ms token latency is served from a thread of the parent.
The workers of a :class:`tests.harness.fleet.Fleet` prepare their store and
client, then all start together; every coroutine calls ``get_token()`` once.
Measured: token requests at the fake, time to first and last token, the
*hand-off* (for each caller, the time from the fetch of the token it got, the
leader's FETCHED event just before its store write, until it had it) and the
fleet's CPU time (all workers, from the start to their last token).

The subjects run in interleaved rounds (every subject once per round, order
rotating, each on a cold store); ratios are the median of the per-round
ratios, shown with their range.

Subjects, all in the same run:

* zoom-s2s on Redis and on a file store (targets: 1 request; Redis hand-off
  p99 < 5 ms; file hand-off p99 within 2x of Redis), and on PostgreSQL when
  its binaries are installed (1 request; hand-off p99 within 1.5x of Redis);
* per-process caching: a TokenManager on a MemoryTokenStore per process
  (one fetch per process);
* redis-py's ``redis.asyncio.lock.Lock`` with its default 0.1 s polling,
  guarding a fetch + SET (what one writes by hand);
* a reference "pub/sub floor": the least a Redis hand-off can do, to show
  what the machine itself allows; and with PostgreSQL a "LISTEN floor", the
  least a PostgreSQL hand-off can do (the token in plain text in the
  ``NOTIFY``), so the PostgreSQL / Redis ratio can be read against what the
  two servers allow here (LISTEN floor / pub/sub floor).

The subjects live in :mod:`benchmarks._subjects`; the peer benchmark adds
Authlib subjects and reuses :func:`measure`.
"""

from __future__ import annotations

import asyncio
import importlib
import statistics
import time
from typing import Any

import attrs

from tests.harness.fleet import Fleet, WorkerContext
from zoom_s2s.testing import FakeZoom

from ._common import (
    BenchmarkSkipped,
    Figure,
    RunContext,
    Spread,
    figure,
    percentile,
    rotations,
    workload_name,
)
from ._subjects import (
    Spec,
    SubjectFactory,
    listen_floor,
    per_process_memory,
    pubsub_floor,
    redis_py_lock,
    zoom_s2s_file,
    zoom_s2s_postgres,
    zoom_s2s_redis,
)

NAME = "cold_stampede"
TITLE = "P processes x C coroutines on a cold store, all at one instant"
TOKEN_LATENCY = 0.05
P99_TARGET_MS = 5.0
FILE_VS_REDIS_TARGET = 2.0
POSTGRES_VS_REDIS_TARGET = 1.5


# -- the worker ----------------------------------------------------------------------


async def stampede_worker(worker: WorkerContext) -> dict[str, Any]:
    """One process of the stampede (a fleet workload; options: subject, store_dir, redis_url)."""
    options = worker.options
    assert worker.credentials is not None
    spec = Spec(
        token_url=worker.token_url,
        credentials=worker.credentials,
        coroutines=int(options["coroutines"]),
        store_dir=options.get("store_dir"),
        redis_url=options.get("redis_url"),
        postgres_url=options.get("postgres_url"),
        postgres_schema=options.get("postgres_schema"),
    )
    module, _, name = str(options["subject"]).partition(":")
    subject: SubjectFactory = getattr(importlib.import_module(module), name)
    async with subject(spec) as source:

        async def caller() -> tuple[float, str]:
            token_id = await source.get_token()
            return time.time(), token_id

        await worker.gate()
        start, cpu = time.time(), time.process_time()
        results = await asyncio.gather(
            *(caller() for _ in range(spec.coroutines)), return_exceptions=True
        )
        cpu = time.process_time() - cpu
    done = [r for r in results if not isinstance(r, BaseException)]
    errors = [f"{type(r).__name__}: {r}" for r in results if isinstance(r, BaseException)]
    return {"start": start, "done": done, "fetched": source.fetched, "errors": errors, "cpu_s": cpu}


# -- the parent ----------------------------------------------------------------------


@attrs.frozen
class Stampede:
    """One stampede of one subject: what the fake counted and the workers saw."""

    requests: int
    first_ms: float
    last_ms: float
    handoff_ms: list[float]  # every caller
    cpu_ms: float  # all workers, from the start to their last token
    errors: list[str]

    @property
    def handoff_p99(self) -> float | None:
        return percentile(self.handoff_ms, 99)


@attrs.frozen
class Outcome:
    """One subject at one P x C over its rounds."""

    rounds: list[Stampede]

    @property
    def requests(self) -> int:
        """The worst round's token requests."""
        return max(r.requests for r in self.rounds)

    @property
    def first_ms(self) -> float:
        return statistics.median(r.first_ms for r in self.rounds)

    @property
    def last_ms(self) -> float:
        return statistics.median(r.last_ms for r in self.rounds)

    @property
    def cpu_ms(self) -> float:
        return statistics.median(r.cpu_ms for r in self.rounds)

    @property
    def handoff_ms(self) -> list[float]:
        return [ms for r in self.rounds for ms in r.handoff_ms]

    @property
    def errors(self) -> list[str]:
        return [e for r in self.rounds for e in r.errors]

    @property
    def handoff_p50(self) -> float | None:
        return percentile(self.handoff_ms, 50)

    @property
    def handoff_p99(self) -> float | None:
        """The median of the per-round p99s."""
        values = [p for r in self.rounds if (p := r.handoff_p99) is not None]
        return statistics.median(values) if values else None

    def summary(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "first_token_ms": self.first_ms,
            "last_token_ms": self.last_ms,
            "fleet_cpu_ms": self.cpu_ms,
            "handoff_p50_ms": self.handoff_p50,
            "handoff_p99_ms": self.handoff_p99,
            "handoff_p99_ms_per_round": [r.handoff_p99 for r in self.rounds],
            "last_token_ms_per_round": [r.last_ms for r in self.rounds],
            "handoff_max_ms": max(self.handoff_ms, default=None),
            "callers": len(self.handoff_ms),
            "errors": self.errors[:5],
            "error_count": len(self.errors),
        }


def stampede(
    ctx: RunContext,
    fleet: Fleet,
    fake: FakeZoom,
    subject: SubjectFactory,
    *,
    processes: int,
    coroutines: int,
    timeout: float = 30.0,
) -> Stampede:
    """Run ``subject`` once as a stampede on a cold store."""
    job = {
        "subject": workload_name(subject),
        "coroutines": coroutines,
        "store_dir": str(ctx.temp_dir("stampede")),
        "redis_url": ctx.redis_url() if ctx.has_redis() else None,  # flushed: cold
    }
    if subject in (zoom_s2s_postgres, listen_floor):
        job["postgres_url"] = ctx.postgres_url()
        job["postgres_schema"] = ctx.postgres_schema()  # a new, empty schema: cold
    before = fake.token_requests
    results = fleet.run(stampede_worker, [job] * processes, timeout=timeout + 30)
    fetched: dict[str, float] = {}
    errors: list[str] = []
    for result in results:
        fetched.update(result["fetched"])
        errors += result["errors"]
    start = min(result["start"] for result in results)
    done = [item for result in results for item in result["done"]]
    return Stampede(
        requests=fake.token_requests - before,
        first_ms=(min(t for t, _ in done) - start) * 1000 if done else float("nan"),
        last_ms=(max(t for t, _ in done) - start) * 1000 if done else float("nan"),
        handoff_ms=[(t - fetched[tid]) * 1000 for t, tid in done if tid in fetched],
        cpu_ms=sum(result["cpu_s"] for result in results) * 1000,
        errors=errors,
    )


def measure(
    ctx: RunContext,
    fleet: Fleet,
    fake: FakeZoom,
    subjects: dict[str, SubjectFactory],
    *,
    processes: int,
    coroutines: int,
    rounds: int,
    timeout: float = 30.0,
) -> dict[str, Outcome]:
    """Every subject ``rounds`` times, interleaved (A B C, B C A, ...), each on a cold store."""
    runs: dict[str, list[Stampede]] = {label: [] for label in subjects}
    for _, label in rotations(list(subjects), rounds):
        runs[label].append(
            stampede(
                ctx,
                fleet,
                fake,
                subjects[label],
                processes=processes,
                coroutines=coroutines,
                timeout=timeout,
            )
        )
    return {label: Outcome(each) for label, each in runs.items()}


def per_round(a: Outcome, b: Outcome, what: str) -> Spread | None:
    """The spread of per-round ratios ``a / b`` of ``what`` (``handoff_p99`` or ``last_ms``)."""
    ratios = []
    for x, y in zip(a.rounds, b.rounds, strict=False):
        top, bottom = getattr(x, what), getattr(y, what)
        if top is not None and bottom:
            ratios.append(top / bottom)
    return Spread.of(ratios) if ratios else None


def configs(ctx: RunContext) -> list[tuple[int, int]]:
    """(processes, coroutines) for this mode."""
    result: list[tuple[int, int]] = ctx.size([(4, 25)], [(6, 50), (8, 100)])
    return result


def run(ctx: RunContext) -> list[Figure]:
    if not ctx.has_redis():
        raise BenchmarkSkipped("needs redis-server and the redis package")
    rounds = ctx.size(3, 30)  # p99 ratios of 15-round runs ranged 1.21x-1.81x: 30 rounds
    subjects: dict[str, SubjectFactory] = {
        "zoom-s2s redis": zoom_s2s_redis,
        "zoom-s2s file": zoom_s2s_file,
        "per-process memory": per_process_memory,
        "pub/sub floor": pubsub_floor,
    }
    figures: list[Figure] = []
    if ctx.has_postgres():
        subjects["zoom-s2s postgres"] = zoom_s2s_postgres
        subjects["LISTEN floor"] = listen_floor
    else:
        figures.append(figure(NAME, f"skipped postgres: {_why_not_postgres(ctx)}", None))
    data: dict[str, Any] = {}
    with (
        FakeZoom(latency=TOKEN_LATENCY).running_in_thread() as fake,
        Fleet(token_url=fake.token_url, credentials=fake.credentials, timeout=120.0) as fleet,
    ):
        for processes, coroutines in configs(ctx):
            shape = f"{processes}x{coroutines}"
            outcomes = measure(
                ctx,
                fleet,
                fake,
                subjects,
                processes=processes,
                coroutines=coroutines,
                rounds=rounds,
            )
            # Its waiters poll in lockstep: about one caller per 0.1 s tick gets through,
            # so it takes seconds per hundred callers. One round is enough.
            outcomes["redis-py Lock"] = Outcome(
                [
                    stampede(
                        ctx,
                        fleet,
                        fake,
                        redis_py_lock,
                        processes=processes,
                        coroutines=coroutines,
                        timeout=90.0,
                    )
                ]
            )
            data[shape] = {label: o.summary() for label, o in outcomes.items()}
            figures += _figures(shape, outcomes)
    ctx.data[NAME] = {"token_latency_s": TOKEN_LATENCY, "rounds": rounds, "runs": data}
    return figures


def _why_not_postgres(ctx: RunContext) -> str:
    try:
        ctx.postgres_url()
    except BenchmarkSkipped as exc:
        return str(exc)
    return "unknown"


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
        p99s = [p for r in outcome.rounds if (p := r.handoff_p99) is not None]
        figures.append(
            figure(
                NAME,
                f"{shape} {label}: hand-off p99",
                Spread.of(p99s) if p99s else None,
                "ms",
                below=P99_TARGET_MS if label == "zoom-s2s redis" else None,
                note=f"p50 {_ms(outcome.handoff_p50)} over {len(outcome.handoff_ms)} callers",
            )
        )
    ours = outcomes["zoom-s2s redis"]
    comparisons = [
        ("zoom-s2s redis", "pub/sub floor", "handoff_p99", None),
        ("zoom-s2s file", "zoom-s2s redis", "handoff_p99", FILE_VS_REDIS_TARGET),
        ("zoom-s2s postgres", "zoom-s2s redis", "handoff_p99", POSTGRES_VS_REDIS_TARGET),
        ("zoom-s2s postgres", "LISTEN floor", "handoff_p99", None),
        ("LISTEN floor", "pub/sub floor", "handoff_p99", None),
        ("redis-py Lock", "zoom-s2s redis", "handoff_p99", None),
        ("per-process memory", "zoom-s2s redis", "last_ms", None),
        ("redis-py Lock", "zoom-s2s redis", "last_ms", None),
    ]
    for top, bottom, what, target in comparisons:
        if top not in outcomes or bottom not in outcomes:
            continue
        a, b = outcomes[top], outcomes[bottom]
        spread = per_round(a, b, what)
        if spread is None:
            continue
        if what == "handoff_p99":
            title = f"{shape} {top} / {bottom}: hand-off p99"
            note = f"{_ms(a.handoff_p99)} vs {_ms(b.handoff_p99)} (medians of per-round p99)"
        else:
            title = f"{shape} {top} / {bottom}: last token time"
            note = (
                f"{_ms(a.last_ms)} vs {_ms(b.last_ms)}; requests {a.requests} vs {b.requests}; "
                f"fleet CPU {a.cpu_ms:.0f} vs {b.cpu_ms:.0f} ms"
            )
        figures.append(figure(NAME, title, spread, "x", at_most=target, note=note))
    figures.append(
        figure(
            NAME,
            f"{shape} zoom-s2s redis: fleet CPU per stampede",
            Spread.of([r.cpu_ms for r in ours.rounds]),
            "ms",
            note=f"all {shape.split('x')[0]} workers, start to last token; pub/sub floor "
            f"{outcomes['pub/sub floor'].cpu_ms:.0f} ms",
        )
    )
    return figures
