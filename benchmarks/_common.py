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
    "RunContext",
    "compare_async",
    "compare_sync",
    "figure",
    "load_sync_manager",
    "load_zoom_client",
    "percentile",
    "raw_fetch",
    "rss_bytes",
    "run_async",
]


class BenchmarkSkipped(Exception):
    """A benchmark (or part of one) cannot run here; the message says why."""


@attrs.frozen
class Figure:
    """One line of the results table.

    Attributes:
        benchmark: The benchmark's name.
        name: What was measured.
        value: The figure (``None`` when it could not be measured).
        unit: Its unit: ``"x"`` for ratios, ``"ms"``, ``"ns"``, ``"KiB"``, ``""`` for counts.
        target: The target as text (``"<= 1.5"``), empty when the figure is context.
        met: Whether the target was met; ``None`` without a target.
        note: Context: the raw numbers behind a ratio, or why a target was missed.
    """

    benchmark: str
    name: str
    value: float | None
    unit: str = ""
    target: str = ""
    met: bool | None = None
    note: str = ""


def figure(
    benchmark: str,
    name: str,
    value: float | None,
    unit: str = "",
    *,
    at_most: float | None = None,
    below: float | None = None,
    at_least: float | None = None,
    note: str = "",
) -> Figure:
    """A :class:`Figure`, judging ``value`` against at most one of the bounds."""
    target, met = "", None
    if at_most is not None:
        target, met = f"<= {at_most:g}", value is not None and value <= at_most
    elif below is not None:
        target, met = f"< {below:g}", value is not None and value < below
    elif at_least is not None:
        target, met = f">= {at_least:g}", value is not None and value >= at_least
    return Figure(benchmark, name, value, unit, target, met, note)


class RunContext:
    """What one ``python -m benchmarks`` run shares: mode, output, Redis, temporary files.

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
        self._redis: Any = None
        self._redis_error: str | None = None
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

    def redis_url(self) -> str:
        """URL of this run's ``redis-server`` (started on first use, on loopback, empty).

        Raises:
            BenchmarkSkipped: ``redis-server`` or the ``redis`` package is missing.
        """
        if self._redis is None and self._redis_error is None:
            try:
                importlib.import_module("redis.asyncio")
                from zoom_s2s.testing.redis_server import RedisServer, RedisServerError

                try:
                    self._redis = self._stack.enter_context(RedisServer())
                except RedisServerError as exc:
                    self._redis_error = str(exc)
            except ImportError:
                self._redis_error = "the redis package is missing: pip install -e '.[bench]'"
        if self._redis is None:
            raise BenchmarkSkipped(self._redis_error or "no redis-server")
        self._redis.flush()
        url: str = self._redis.url
        return url

    def has_redis(self) -> bool:
        """Whether :meth:`redis_url` works here."""
        try:
            self.redis_url()
        except BenchmarkSkipped:
            return False
        return True

    def callback(self, fn: Callable[[], Any]) -> None:
        """Run ``fn`` at :meth:`close` (last registered, first run)."""
        self._stack.callback(fn)

    def close(self) -> None:
        """Stop Redis, remove temporary files."""
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
    return max(1_000, min(calls, int(budget_s * 1e9 / max(ns_per_call, 1.0))))


async def _time_async(fn: Callable[[], Awaitable[object]], calls: int) -> float:
    with _gc_paused():
        started = time.perf_counter_ns()
        for _ in itertools.repeat(None, calls):
            await fn()
        elapsed = time.perf_counter_ns() - started
    return elapsed / calls


def _time_sync(fn: Callable[[], object], calls: int) -> float:
    with _gc_paused():
        started = time.perf_counter_ns()
        for _ in itertools.repeat(None, calls):
            fn()
        elapsed = time.perf_counter_ns() - started
    return elapsed / calls


def _rotations(names: list[str], repeats: int) -> Iterator[str]:
    for repeat in range(repeats):
        shift = repeat % len(names)
        yield from names[shift:] + names[:shift]


async def compare_async(
    subjects: Mapping[str, Callable[[], Awaitable[object]]],
    *,
    calls: int,
    repeats: int,
    budget_s: float = 0.5,
) -> dict[str, float]:
    """Best-of-``repeats`` nanoseconds per ``await fn()`` for each subject, interleaved.

    Each repeat times every subject once (``calls`` awaits in a tight loop,
    fewer for a slow subject so one block takes about ``budget_s``), in a
    rotating order, with the garbage collector paused, in the same loop:
    machine noise hits all of them alike, and the best repeat is the one least
    disturbed.
    """
    counts = {
        name: _calls_for(await _time_async(fn, 1_000), calls, budget_s)
        for name, fn in subjects.items()
    }
    best = dict.fromkeys(subjects, math.inf)
    for name in _rotations(list(subjects), repeats):
        best[name] = min(best[name], await _time_async(subjects[name], counts[name]))
    return best


def compare_sync(
    subjects: Mapping[str, Callable[[], object]],
    *,
    calls: int,
    repeats: int,
    budget_s: float = 0.5,
) -> dict[str, float]:
    """:func:`compare_async` for plain functions: best nanoseconds per ``fn()``."""
    counts = {
        name: _calls_for(_time_sync(fn, 1_000), calls, budget_s) for name, fn in subjects.items()
    }
    best = dict.fromkeys(subjects, math.inf)
    for name in _rotations(list(subjects), repeats):
        best[name] = min(best[name], _time_sync(subjects[name], counts[name]))
    return best


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


def run_async(coro: Awaitable[Any], timeout: float) -> Any:
    """Run ``coro`` in a new event loop, cancelled after ``timeout`` seconds."""

    async def bounded() -> Any:
        return await asyncio.wait_for(coro, timeout)

    return asyncio.run(bounded())
