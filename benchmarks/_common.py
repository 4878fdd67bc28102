"""What every benchmark shares: figures, the run context, the timing harness, small helpers."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import importlib
import itertools
import math
import os
import shutil
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import aiohttp
import attrs

from zoom_s2s import Credentials

__all__ = [
    "BenchmarkSkipped",
    "Figure",
    "Rounds",
    "RunContext",
    "Spread",
    "compare_async",
    "compare_sync",
    "figure",
    "load_sync_manager",
    "load_zoom_client",
    "percentile",
    "raw_fetch",
    "rotations",
    "rss_bytes",
    "run_async",
    "workload_name",
]


class BenchmarkSkipped(Exception):
    """A benchmark (or part of one) cannot run here; the message says why."""


@attrs.frozen
class Spread:
    """A figure measured over several rounds: the median and the range of the rounds.

    Attributes:
        median: The median of the per-round values (what the table shows).
        low: The smallest per-round value.
        high: The largest per-round value.
        rounds: How many rounds.
    """

    median: float
    low: float
    high: float
    rounds: int

    @classmethod
    def of(cls, values: Sequence[float]) -> Spread:
        """The spread of ``values`` (one per round; at least one)."""
        if not values:
            raise ValueError("a spread needs at least one value")
        return cls(statistics.median(values), min(values), max(values), len(values))

    def text(self, unit: str = "") -> str:
        """``"1.05-1.20, 7 rounds"`` (with ``unit`` after each number)."""
        if self.rounds == 1:
            return "1 round"
        return f"{_num(self.low)}{unit}-{_num(self.high)}{unit}, {self.rounds} rounds"


def _num(value: float) -> str:
    if value == 0 or 0.01 <= abs(value) < 100:
        return f"{value:.2f}"
    return f"{value:.3g}" if abs(value) < 0.01 else f"{value:.0f}"


@attrs.frozen
class Figure:
    """One line of the results table.

    Attributes:
        benchmark: The benchmark's name.
        name: What was measured.
        value: The figure (``None`` when it could not be measured); for a
            figure measured over rounds, the median of the per-round values.
        unit: Its unit: ``"x"`` for ratios, ``"ms"``, ``"ns"``, ``"KiB"``, ``""`` for counts.
        target: The target as text (``"<= 1.5"``), empty when the figure is context.
        met: Whether the target was met (by the median); ``None`` without a target.
        note: Context: the raw numbers behind a ratio, or why a target was missed.
        spread: The per-round range behind :attr:`value`, if it was measured in rounds.
    """

    benchmark: str
    name: str
    value: float | None
    unit: str = ""
    target: str = ""
    met: bool | None = None
    note: str = ""
    spread: Spread | None = None


def figure(
    benchmark: str,
    name: str,
    value: float | Spread | None,
    unit: str = "",
    *,
    at_most: float | None = None,
    below: float | None = None,
    at_least: float | None = None,
    note: str = "",
) -> Figure:
    """A :class:`Figure`, judging ``value`` (a spread's median) against at most one bound."""
    spread = value if isinstance(value, Spread) else None
    number = value.median if isinstance(value, Spread) else value
    target, met = "", None
    if at_most is not None:
        target, met = f"<= {at_most:g}", number is not None and number <= at_most
    elif below is not None:
        target, met = f"< {below:g}", number is not None and number < below
    elif at_least is not None:
        target, met = f">= {at_least:g}", number is not None and number >= at_least
    return Figure(benchmark, name, number, unit, target, met, note, spread)


# kind -> (client package, server module, server class, its start error)
_SERVERS = {
    "redis": ("redis.asyncio", "tests.harness.redis_server", "RedisServer",
              "RedisServerError"),
    "postgres": ("asyncpg", "tests.harness.postgres_server", "PostgresServer",
                 "PostgresServerError"),
}


class RunContext:
    """What one ``python -m benchmarks`` run shares: mode, output, Redis, PostgreSQL,
    temporary files.

    Everything it starts is stopped by :meth:`close` (also on Ctrl-C and errors).

    Args:
        quick: CI-sized workloads.
        output: Where results and plots go.
    """

    def __init__(self, *, quick: bool, output: Path) -> None:
        self.quick = quick
        self.output = output
        self.data: dict[str, Any] = {}  # per benchmark: raw data for results.json and plots
        self._stack = contextlib.ExitStack()
        self._servers: dict[str, Any] = {}  # kind -> server, or why there is none
        self._schemas = itertools.count()
        self._tmp = Path(tempfile.mkdtemp(prefix="zoom-s2s-bench-"))
        self._stack.callback(shutil.rmtree, self._tmp, ignore_errors=True)
        self._dirs = itertools.count()

    def size(self, quick: Any, full: Any) -> Any:
        """``quick`` in quick mode, else ``full``."""
        return quick if self.quick else full

    def temp_dir(self, name: str) -> Path:
        """A new empty directory, removed at the end of the run."""
        path = self._tmp / f"{name}-{next(self._dirs)}"
        path.mkdir(mode=0o700)
        return path

    def _server(self, kind: str) -> Any:
        """This run's server of ``kind`` ("redis" or "postgres"), started on first use.

        Raises:
            BenchmarkSkipped: the server's binaries or its client package are missing.
        """
        if kind not in self._servers:
            package, module, cls, error = _SERVERS[kind]
            try:
                importlib.import_module(package)
                server_module = importlib.import_module(module)
                try:
                    self._servers[kind] = self._stack.enter_context(getattr(server_module, cls)())
                except getattr(server_module, error) as exc:
                    self._servers[kind] = BenchmarkSkipped(str(exc))
            except ImportError:
                self._servers[kind] = BenchmarkSkipped(
                    f"the {package.split('.')[0]} package is missing: pip install -e '.[bench]'"
                )
        server = self._servers[kind]
        if isinstance(server, BenchmarkSkipped):
            raise server
        return server

    def _has(self, kind: str) -> bool:
        try:
            self._server(kind)
        except BenchmarkSkipped:
            return False
        return True

    def redis_url(self) -> str:
        """URL of this run's ``redis-server`` (started on first use, on loopback, empty).

        Raises:
            BenchmarkSkipped: ``redis-server`` or the ``redis`` package is missing.
        """
        server = self._server("redis")
        server.flush()
        url: str = server.url
        return url

    def has_redis(self) -> bool:
        """Whether :meth:`redis_url` works here."""
        return self._has("redis")

    def postgres_url(self) -> str:
        """URL of this run's PostgreSQL server (started on first use, private, on loopback).

        Raises:
            BenchmarkSkipped: PostgreSQL's binaries or the ``asyncpg`` package are missing.
        """
        url: str = self._server("postgres").url
        return url

    def has_postgres(self) -> bool:
        """Whether :meth:`postgres_url` works here."""
        return self._has("postgres")

    def postgres_schema(self) -> str:
        """A new, empty store schema on :meth:`postgres_url`, created now (a cold store
        whose DDL is not part of what is measured)."""
        from zoom_s2s.stores.postgres import schema_sql

        name = f"bench_{next(self._schemas)}"
        url = self.postgres_url()

        async def create() -> None:
            import asyncpg

            connection = await asyncpg.connect(url)
            try:
                await connection.execute(schema_sql(name))
            finally:
                await connection.close()

        run_async(create(), 60)
        return name

    def callback(self, fn: Callable[[], Any]) -> None:
        """Run ``fn`` at :meth:`close` (last registered, first run)."""
        self._stack.callback(fn)

    def close(self) -> None:
        """Stop Redis and PostgreSQL, remove temporary files."""
        self._stack.close()


# -- the timing harness --------------------------------------------------------------


@contextlib.contextmanager
def _gc_paused() -> Iterator[None]:
    enabled = gc.isenabled()
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _calls_for(ns_per_call: float, calls: int, budget_s: float) -> int:
    """At most ``calls``, fewer for slow subjects so one timed block stays near ``budget_s``."""
    return max(10, min(calls, int(budget_s * 1e9 / max(ns_per_call, 1.0))))


async def _time_async(fn: Callable[[], Awaitable[object]], calls: int) -> tuple[float, float]:
    with _gc_paused():
        cpu, started = time.process_time_ns(), time.perf_counter_ns()
        for _ in itertools.repeat(None, calls):
            await fn()
        elapsed, cpu = time.perf_counter_ns() - started, time.process_time_ns() - cpu
    return elapsed / calls, cpu / calls


def _time_sync(fn: Callable[[], object], calls: int) -> tuple[float, float]:
    # CPU of the calling thread only: a blocking caller's cost, not its process's other threads'.
    with _gc_paused():
        cpu, started = time.thread_time_ns(), time.perf_counter_ns()
        for _ in itertools.repeat(None, calls):
            fn()
        elapsed, cpu = time.perf_counter_ns() - started, time.thread_time_ns() - cpu
    return elapsed / calls, cpu / calls


def rotations(names: Sequence[str], rounds: int) -> Iterator[tuple[int, str]]:
    """``(round, name)`` for interleaved rounds: every name once per round, order rotating.

    Round 0 is A B C, round 1 B C A, ...: each subject runs right after each
    other one in turn, so slow drifts of the machine hit them all alike.
    """
    for number in range(rounds):
        shift = number % len(names)
        for name in [*names[shift:], *names[:shift]]:
            yield number, name


@attrs.frozen
class Rounds:
    """Per-round measurements of several subjects, taken interleaved.

    Attributes:
        wall: Per subject, one wall-clock figure per round (e.g. ns per call).
        cpu: Per subject, one process-CPU figure per round, in the same unit.
    """

    wall: dict[str, list[float]]
    cpu: dict[str, list[float]]

    def median(self, name: str) -> float:
        """The median of ``name``'s per-round wall figures."""
        return statistics.median(self.wall[name])

    def cpu_median(self, name: str) -> float:
        """The median of ``name``'s per-round CPU figures."""
        return statistics.median(self.cpu[name])

    def ratio(self, name: str, baseline: str) -> Spread:
        """The spread of ``name / baseline`` wall figures, one ratio per round."""
        pairs = zip(self.wall[name], self.wall[baseline], strict=True)
        return Spread.of([a / b for a, b in pairs])

    def cpu_ratio(self, name: str, baseline: str) -> Spread:
        """The spread of ``name / baseline`` CPU figures, one ratio per round."""
        pairs = zip(self.cpu[name], self.cpu[baseline], strict=True)
        return Spread.of([a / max(b, 1e-9) for a, b in pairs])

    def summary(self) -> dict[str, Any]:
        """Medians and raw rounds, for results.json."""
        return {
            "median_wall": {name: self.median(name) for name in self.wall},
            "median_cpu": {name: self.cpu_median(name) for name in self.cpu},
            "rounds_wall": self.wall,
            "rounds_cpu": self.cpu,
        }


async def compare_async(
    subjects: Mapping[str, Callable[[], Awaitable[object]]],
    *,
    calls: int,
    rounds: int,
    budget_s: float = 0.2,
) -> Rounds:
    """Nanoseconds (wall and process CPU) per ``await fn()`` for each subject, in rounds.

    Each round times every subject once (``calls`` awaits in a tight loop,
    fewer for a slow subject so one block takes about ``budget_s``), in a
    rotating order, with the garbage collector paused, in the same loop, so
    machine noise hits all of them alike; compare them with
    :meth:`Rounds.ratio` (the median of the per-round ratios).
    """
    counts = {}
    for name, fn in subjects.items():
        probe = (await _time_async(fn, 10))[0]  # warm, and a first guess for slow subjects
        if probe < 100_000:
            probe = (await _time_async(fn, 1_000))[0]
        counts[name] = _calls_for(probe, calls, budget_s)
    wall: dict[str, list[float]] = {name: [] for name in subjects}
    cpu: dict[str, list[float]] = {name: [] for name in subjects}
    for _, name in rotations(list(subjects), rounds):
        ns, cpu_ns = await _time_async(subjects[name], counts[name])
        wall[name].append(ns)
        cpu[name].append(cpu_ns)
    return Rounds(wall, cpu)


def compare_sync(
    subjects: Mapping[str, Callable[[], object]],
    *,
    calls: int,
    rounds: int,
    budget_s: float = 0.2,
    deadline: float | None = None,
) -> Rounds:
    """:func:`compare_async` for plain functions: nanoseconds per ``fn()``, in rounds.

    CPU figures are the calling thread's CPU time (not the process's).

    With a ``deadline`` (``time.monotonic()``), no block starts after it and
    a round cut short is dropped: every round kept was timed before it.
    """
    counts = {}
    for name, fn in subjects.items():
        probe = _time_sync(fn, 10)[0]  # warm, and a first guess for slow subjects
        if probe < 100_000:
            probe = _time_sync(fn, 1_000)[0]
        counts[name] = _calls_for(probe, calls, budget_s)
    wall: dict[str, list[float]] = {name: [] for name in subjects}
    cpu: dict[str, list[float]] = {name: [] for name in subjects}
    for number, name in rotations(list(subjects), rounds):
        if deadline is not None and time.monotonic() + budget_s > deadline:
            for values in (*wall.values(), *cpu.values()):
                del values[number:]
            break
        ns, cpu_ns = _time_sync(subjects[name], counts[name])
        wall[name].append(ns)
        cpu[name].append(cpu_ns)
    return Rounds(wall, cpu)


def percentile(values: Sequence[float], q: float) -> float | None:
    """The ``q``-th percentile (0-100, nearest rank) of ``values``; ``None`` if empty."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


# -- helpers -------------------------------------------------------------------------


async def raw_fetch(
    session: aiohttp.ClientSession, token_url: str, credentials: Credentials
) -> tuple[str, float]:
    """One plain S2S token request (what baselines do by hand): (access token, expires_in)."""
    async with session.post(
        token_url,
        data={"grant_type": "account_credentials", "account_id": credentials.account_id},
        auth=aiohttp.BasicAuth(credentials.client_id, credentials.client_secret),
        timeout=aiohttp.ClientTimeout(total=20),
    ) as response:
        response.raise_for_status()
        body = await response.json()
    return str(body["access_token"]), float(body["expires_in"])


def rss_bytes() -> int:
    """This process's resident set size, in bytes (psutil, else /proc/self/statm)."""
    try:
        psutil: Any = importlib.import_module("psutil")
    except ImportError:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    rss: int = psutil.Process().memory_info().rss
    return rss


def load_zoom_client() -> Any | None:
    """``zoom_s2s.ZoomClient``, or ``None`` while that layer is not there yet."""
    for module in ("zoom_s2s", "zoom_s2s.client"):
        with contextlib.suppress(ImportError, AttributeError):
            return importlib.import_module(module).ZoomClient
    return None


def load_sync_manager() -> Any | None:
    """``zoom_s2s.sync.SyncTokenManager``, or ``None`` while that module is not there yet."""
    with contextlib.suppress(ImportError, AttributeError):
        return importlib.import_module("zoom_s2s.sync").SyncTokenManager
    return None


def workload_name(fn: Callable[..., Any]) -> str:
    """``"module:function"`` for a fleet worker (see :mod:`tests.harness.fleet`)."""
    return f"{fn.__module__}:{fn.__qualname__}"


def run_async(coro: Awaitable[Any], timeout: float) -> Any:
    """Run ``coro`` in a new event loop, cancelled after ``timeout`` seconds."""

    async def bounded() -> Any:
        return await asyncio.wait_for(coro, timeout)

    return asyncio.run(bounded())
