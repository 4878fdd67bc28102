"""``zoom-s2s demo``: processes and coroutines on a fake Zoom, sharing one token.

It serves :class:`~zoom_s2s.testing.FakeZoom` from this process and starts ``workers``
processes that pass one barrier together, each running ``coroutines`` coroutines that call
``get_user("me")`` ``calls`` times through one :class:`~zoom_s2s.TokenManager` and
:class:`~zoom_s2s.ZoomClient`, all sharing a token store (default: a
:class:`~zoom_s2s.FileTokenStore` in a new temporary directory). It succeeds (exit
status 0) only if the whole run fetched exactly one token and every call succeeded.
Progress goes to stderr, one line per finished worker; the report to stdout.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import queue
import signal
import sys
import tempfile
import time
import urllib.parse
from pathlib import Path
from typing import Any

from ._redact import scrub, secret_forms
from .client import ZoomClient
from .errors import ConfigurationError
from .manager import TokenManager
from .oauth import RetryPolicy
from .stores.url import redact_url, url_secrets

__all__ = ["run_demo"]

_DEADLINE = 60.0  # seconds the whole fleet may take before the demo gives up
_TOKEN_LATENCY = 0.1  # the fake's token endpoint is slow, so workers really race for it

# What a worker process reports: (its index, its figures or None, an error or None).
_Report = tuple[int, dict[str, Any] | None, str | None]


async def _work(job: dict[str, Any], barrier: Any) -> dict[str, Any]:
    # Generous retries: on a busy 2-core machine the fake may answer slowly.
    retry = RetryPolicy(attempts=5, timeout=30.0, wait_initial=0.05, wait_jitter=0.05)
    async with (
        TokenManager(
            job["credentials"], store=job["store"], token_url=job["token_url"], retry=retry
        ) as tokens,
        ZoomClient(tokens, job["api_base_url"], retry=retry) as zoom,
    ):
        await asyncio.to_thread(barrier.wait, _DEADLINE)  # every process starts at one instant

        async def one_coroutine() -> list[str | None]:
            return [(await zoom.get_user("me")).account_id for _ in range(job["calls"])]

        results = await asyncio.gather(*(one_coroutine() for _ in range(job["coroutines"])))
        return {
            "api_calls": sum(len(each) for each in results),
            "fetches": tokens.stats().fetches,
            "account_ids": sorted({a for each in results for a in each if a is not None}),
        }


def _worker(index: int, job: dict[str, Any], barrier: Any, reports: Any) -> None:
    """One worker process: run :func:`_work` and put a :data:`_Report` on ``reports``."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C: the parent ends the workers
    logging.basicConfig(
        level=job["log_level"], format=f"%(levelname)s worker {index + 1} %(name)s: %(message)s"
    )
    try:
        value = asyncio.run(asyncio.wait_for(_work(job, barrier), _DEADLINE))
    except Exception as exc:  # reported to the parent, which decides the exit status
        barrier.abort()  # the others stop waiting for this one
        forms = secret_forms(*url_secrets(job["store"]))  # whatever the error quotes
        reports.put((index, None, scrub(f"{type(exc).__name__}: {exc}", forms)))
    else:
        reports.put((index, value, None))


def _run_workers(job: dict[str, Any], workers: int) -> list[_Report]:
    """Start ``workers`` processes on ``job``; their reports, in the order they finish."""
    # Not fork: the fake serves from a thread. A fork server (POSIX) imports the
    # library once and forks each worker from it; elsewhere each one is spawned.
    context: multiprocessing.context.BaseContext
    if "forkserver" in multiprocessing.get_all_start_methods():
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload([__name__])
    else:
        context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(workers)
    reports = context.Queue()
    processes = [
        context.Process(target=_worker, args=(i, job, barrier, reports), daemon=True)
        for i in range(workers)
    ]
    for process in processes:
        process.start()
    collected: list[_Report] = []
    deadline = time.monotonic() + _DEADLINE
    try:
        while len(collected) < workers:
            try:
                report: _Report = reports.get(timeout=1.0)
            except queue.Empty:
                if time.monotonic() > deadline or not any(p.is_alive() for p in processes):
                    break  # the missing reports are not coming
                continue
            collected.append(report)
            index, value, error = report
            text = (
                f"{value['api_calls']} API calls, fetched {value['fetches']} token(s)"
                if value is not None
                else error
            )
            print(
                f"worker {len(collected)}/{workers} done (#{index + 1}): {text}",
                file=sys.stderr,
                flush=True,
            )
    finally:
        for process in processes:  # a worker still running after the loop is stuck
            process.join(5 if len(collected) == workers else 0)
            if process.is_alive():
                process.kill()
                process.join()
        reports.close()
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

    Raises:
        ConfigurationError: ``store`` is ``memory://``, which each worker
            process would have to itself.
    """
    from .testing.fake_zoom import FakeZoom

    if store is not None and urllib.parse.urlsplit(store.strip()).scheme.lower() == "memory":
        raise ConfigurationError(
            "the demo's workers are separate processes and memory:// is one process's "
            "memory, so each would fetch its own token; give a store they share "
            "(file:///absolute/dir, redis://..., postgresql://...) or leave --store out"
        )

    with tempfile.TemporaryDirectory(prefix="zoom-s2s-demo-") as tmp:
        zoom = FakeZoom(latency=_TOKEN_LATENCY)
        with zoom.running_in_thread():
            job = {
                "credentials": zoom.credentials,
                "token_url": zoom.token_url,
                "api_base_url": zoom.api_base_url,
                "store": store or Path(tmp, "tokens").as_uri(),
                "coroutines": coroutines,
                "calls": calls,
                "log_level": logging.getLogger().getEffectiveLevel(),
            }
            started = time.monotonic()
            collected = _run_workers(job, workers)
            elapsed = time.monotonic() - started
            token_requests, api_requests = zoom.token_requests, zoom.api_requests
    return _report(
        collected,
        workers=workers,
        coroutines=coroutines,
        calls=calls,
        store=redact_url(store) if store else "FileTokenStore in a temporary directory",
        token_requests=token_requests,
        api_requests=api_requests,
        expected_account_id=zoom.credentials.account_id,
        elapsed=elapsed,
    )


def _report(
    collected: list[_Report],
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
    values = [value for _, value, _ in collected if value is not None]
    api_calls = sum(int(v["api_calls"]) for v in values)
    account_ids = frozenset(a for v in values for a in v["account_ids"])
    print(f"zoom-s2s demo: {workers} worker processes x {coroutines} coroutines x {calls} calls")
    print(f"  store:          {store}")
    print(f"  API calls:      {api_calls} (answered by the fake Zoom: {api_requests})")
    print(f"  token fetches:  {token_requests} (counted at the fake Zoom's token endpoint)")
    print(f"  account id:     {', '.join(sorted(account_ids)) or '-'}")
    print(f"  elapsed:        {elapsed:.2f} s")
    problems = [f"worker #{i + 1} failed: {error}" for i, _, error in collected if error]
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
