"""``zoom-s2s demo``: a fleet of processes and coroutines on a fake Zoom, sharing one token.

It starts :class:`~zoom_s2s.testing.FakeZoom` in this process, then ``workers``
processes (``spawn`` start method), each running ``coroutines`` coroutines
that call ``get_user("me")`` ``calls`` times through one
:class:`~zoom_s2s.ZoomClient` and :class:`~zoom_s2s.TokenManager` per
process, all sharing a token store (by default a
:class:`~zoom_s2s.FileTokenStore` in a new temporary directory). The fake
counts the token requests it gets; the demo succeeds (exit status 0) only if
the whole run fetched exactly one token and every call succeeded.

Progress goes to stderr, one line per finished worker; the report to stdout.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import queue
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import attrs

from .client import ZoomClient
from .manager import TokenManager
from .models import Credentials
from .oauth import RetryPolicy
from .testing.fake_zoom import FakeZoom

__all__ = ["run_demo"]

_WORKER_DEADLINE = 60.0  # seconds the whole fleet may take before the demo gives up
_TOKEN_LATENCY = 0.1  # the fake's token endpoint is slow, so workers really race for it


@attrs.frozen
class _WorkerSpec:
    index: int
    credentials: Credentials
    token_url: str
    api_url: str
    store: str
    coroutines: int
    calls: int
    log_level: int


@attrs.frozen
class _WorkerResult:
    index: int
    api_calls: int = 0
    fetches: int = 0
    account_ids: frozenset[str] = frozenset()
    error: str | None = None


async def _run_worker(spec: _WorkerSpec) -> _WorkerResult:
    # Generous retries: on a busy 2-core machine the fake may answer slowly.
    retry = RetryPolicy(attempts=5, timeout=30.0, wait_initial=0.05, wait_jitter=0.05)
    async with (
        TokenManager(
            spec.credentials,
            store=spec.store,
            token_url=spec.token_url,
            retry=retry,
        ) as tokens,
        ZoomClient(tokens, spec.api_url, retry=retry) as zoom,
    ):

        async def one_coroutine() -> list[str | None]:
            return [(await zoom.get_user("me")).account_id for _ in range(spec.calls)]

        results = await asyncio.gather(*(one_coroutine() for _ in range(spec.coroutines)))
        account_ids = frozenset(a for calls in results for a in calls if a is not None)
        return _WorkerResult(
            index=spec.index,
            api_calls=sum(len(calls) for calls in results),
            fetches=tokens.stats().fetches,
            account_ids=account_ids,
        )


def _worker_main(spec: _WorkerSpec, results: multiprocessing.Queue[_WorkerResult]) -> None:
    logging.basicConfig(
        level=spec.log_level, format=f"%(levelname)s worker {spec.index} %(name)s: %(message)s"
    )
    try:
        result = asyncio.run(_run_worker(spec))
    except Exception as exc:  # reported by the parent, which decides the exit status
        result = _WorkerResult(index=spec.index, error=f"{type(exc).__name__}: {exc}")
    results.put(result)


def _collect(
    processes: Sequence[multiprocessing.process.BaseProcess],
    results: multiprocessing.Queue[_WorkerResult],
) -> list[_WorkerResult]:
    collected: list[_WorkerResult] = []
    deadline = time.monotonic() + _WORKER_DEADLINE
    while len(collected) < len(processes):
        try:
            result = results.get(timeout=0.2)
        except queue.Empty:
            if time.monotonic() > deadline:
                break
            if all(not p.is_alive() for p in processes):
                # Every process is gone: whatever was put is in the queue now.
                try:
                    result = results.get(timeout=1.0)
                except queue.Empty:
                    break
            else:
                continue
        collected.append(result)
        outcome = result.error or (
            f"{result.api_calls} API calls, fetched {result.fetches} token(s)"
        )
        print(
            f"worker {len(collected)}/{len(processes)} done (#{result.index}): {outcome}",
            file=sys.stderr,
            flush=True,
        )
    return collected


def run_demo(
    *, workers: int = 4, coroutines: int = 25, calls: int = 3, store: str | None = None
) -> int:
    """Run the demo and print its report.

    Args:
        workers: Worker processes.
        coroutines: Coroutines per worker.
        calls: ``get_user("me")`` calls per coroutine.
        store: Store URL shared by the workers; default: a FileTokenStore in a
            new temporary directory (removed afterwards).

    Returns:
        0 if exactly one token was fetched and every call succeeded, else 1.
    """
    with tempfile.TemporaryDirectory(prefix="zoom-s2s-demo-") as tmp:
        store_url = store or Path(tmp, "tokens").as_uri()
        zoom = FakeZoom(latency=_TOKEN_LATENCY)
        with zoom.running_in_thread():
            context = multiprocessing.get_context("spawn")
            results: multiprocessing.Queue[_WorkerResult] = context.Queue()
            specs = [
                _WorkerSpec(
                    index=i,
                    credentials=zoom.credentials,
                    token_url=zoom.token_url,
                    api_url=zoom.api_base_url,
                    store=store_url,
                    coroutines=coroutines,
                    calls=calls,
                    log_level=logging.getLogger().getEffectiveLevel(),
                )
                for i in range(1, workers + 1)
            ]
            started = time.monotonic()
            processes = [
                context.Process(target=_worker_main, args=(spec, results), daemon=True)
                for spec in specs
            ]
            for process in processes:
                process.start()
            collected = _collect(processes, results)
            for process in processes:
                process.join(5)
                if process.is_alive():
                    process.kill()
            elapsed = time.monotonic() - started
            token_requests, api_requests = zoom.token_requests, zoom.api_requests
    return _report(
        collected,
        workers=workers,
        coroutines=coroutines,
        calls=calls,
        store=store_url if store else "FileTokenStore in a temporary directory",
        token_requests=token_requests,
        api_requests=api_requests,
        expected_account_id=zoom.credentials.account_id,
        elapsed=elapsed,
    )


def _report(
    collected: list[_WorkerResult],
    *,
    workers: int,
    coroutines: int,
    calls: int,
    store: str,
    token_requests: int,
    api_requests: int,
    expected_account_id: str,
    elapsed: float,
) -> int:
    expected_calls = workers * coroutines * calls
    api_calls = sum(r.api_calls for r in collected)
    account_ids = frozenset().union(*(r.account_ids for r in collected))
    print(f"zoom-s2s demo: {workers} worker processes x {coroutines} coroutines x {calls} calls")
    print(f"  store:          {store}")
    print(f"  API calls:      {api_calls} (answered by the fake Zoom: {api_requests})")
    print(f"  token fetches:  {token_requests} (counted at the fake Zoom's token endpoint)")
    print(f"  account id:     {', '.join(sorted(account_ids)) or '-'}")
    print(f"  elapsed:        {elapsed:.2f} s")
    problems = [f"worker #{r.index} failed: {r.error}" for r in collected if r.error]
    if len(collected) < workers:
        problems.append(f"only {len(collected)} of {workers} workers reported back")
    if token_requests != 1:
        problems.append(f"{token_requests} token fetches, expected exactly 1")
    if api_calls != expected_calls:
        problems.append(f"{api_calls} API calls succeeded, expected {expected_calls}")
    if account_ids != {expected_account_id}:
        problems.append(f"account ids {sorted(account_ids)}, expected [{expected_account_id!r}]")
    if problems:
        for problem in problems:
            print(f"zoom-s2s demo: FAILED: {problem}", file=sys.stderr)
        return 1
    print("OK: one token fetch served every process and coroutine")
    return 0
