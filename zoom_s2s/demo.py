"""``zoom-s2s demo``: a fleet of processes and coroutines on a fake Zoom, sharing one token.

It starts :class:`~zoom_s2s.testing.FakeZoom` in this process, then ``workers``
processes (a :class:`~zoom_s2s.testing.fleet.Fleet`), which start together,
each running ``coroutines`` coroutines that call ``get_user("me")`` ``calls`` times through one
:class:`~zoom_s2s.ZoomClient` and :class:`~zoom_s2s.TokenManager` per
process, all sharing a token store (by default a
:class:`~zoom_s2s.FileTokenStore` in a new temporary directory). The fake
counts the token requests it gets; the demo succeeds (exit status 0) only if
the whole run fetched exactly one token and every call succeeded.

Progress goes to stderr, one line per finished worker; the report to stdout.
"""

from __future__ import annotations

import logging
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from .client import ZoomClient
from .manager import TokenManager
from .oauth import RetryPolicy
from .testing.fake_zoom import FakeZoom
from .testing.fleet import Fleet, Outcome, WorkerContext

__all__ = ["run_demo"]

_WORKER_DEADLINE = 60.0  # seconds the whole fleet may take before the demo gives up
_TOKEN_LATENCY = 0.1  # the fake's token endpoint is slow, so workers really race for it


async def demo_worker(worker: WorkerContext) -> dict[str, Any]:
    """One worker process: ``coroutines`` coroutines x ``calls`` ``get_user("me")`` calls."""
    level = int(worker.options["log_level"])
    logging.basicConfig(
        level=level, format=f"%(levelname)s worker {worker.index + 1} %(name)s: %(message)s"
    )
    assert worker.credentials is not None
    assert worker.api_base_url is not None
    # Generous retries: on a busy 2-core machine the fake may answer slowly.
    retry = RetryPolicy(attempts=5, timeout=30.0, wait_initial=0.05, wait_jitter=0.05)
    calls = int(worker.options["calls"])
    async with (
        TokenManager(
            worker.credentials, store=worker.store, token_url=worker.token_url, retry=retry
        ) as tokens,
        ZoomClient(tokens, worker.api_base_url, retry=retry) as zoom,
    ):
        await worker.gate()  # every process starts at one instant

        async def one_coroutine(_: int) -> list[str | None]:
            return [(await zoom.get_user("me")).account_id for _ in range(calls)]

        results = await worker.gather(one_coroutine)
        account_ids = sorted({a for each in results for a in each if a is not None})
        return {
            "api_calls": sum(len(each) for each in results),
            "fetches": tokens.stats().fetches,
            "account_ids": account_ids,
        }


def _collect(fleet: Fleet, workers: int) -> list[Outcome]:
    collected: list[Outcome] = []
    relay_logs = logging.getLogger().getEffectiveLevel() < logging.WARNING
    for outcome in fleet.outcomes(timeout=_WORKER_DEADLINE):
        collected.append(outcome)
        if relay_logs:  # --log-level INFO/DEBUG: show what the worker logged
            sys.stderr.write(outcome.worker.log(limit=1_000_000))
        value = outcome.value or {}
        text = outcome.error or (
            f"{value['api_calls']} API calls, fetched {value['fetches']} token(s)"
        )
        print(
            f"worker {len(collected)}/{workers} done (#{outcome.worker.index + 1}): {text}",
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
        with (
            zoom.running_in_thread(),
            Fleet(
                token_url=zoom.token_url,
                credentials=zoom.credentials,
                api_base_url=zoom.api_base_url,
                store=store_url,
                coroutines=coroutines,
                options={"calls": calls, "log_level": logging.getLogger().getEffectiveLevel()},
                timeout=_WORKER_DEADLINE,
            ) as fleet,
        ):
            started = time.monotonic()
            for _ in range(workers):
                fleet.spawn(demo_worker)
            problems: list[str] = []
            try:
                fleet.start()
            except AssertionError as exc:  # a worker died before it was ready
                problems.append(str(exc).split("\n")[0])
            collected = _collect(fleet, workers) if not problems else []
            elapsed = time.monotonic() - started
            token_requests, api_requests = zoom.token_requests, zoom.api_requests
    return _report(
        collected,
        problems,
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
    collected: list[Outcome],
    problems: list[str],
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
    values = [o.value for o in collected if o.error is None]
    api_calls = sum(int(v["api_calls"]) for v in values)
    account_ids = frozenset(a for v in values for a in v["account_ids"])
    print(f"zoom-s2s demo: {workers} worker processes x {coroutines} coroutines x {calls} calls")
    print(f"  store:          {store}")
    print(f"  API calls:      {api_calls} (answered by the fake Zoom: {api_requests})")
    print(f"  token fetches:  {token_requests} (counted at the fake Zoom's token endpoint)")
    print(f"  account id:     {', '.join(sorted(account_ids)) or '-'}")
    print(f"  elapsed:        {elapsed:.2f} s")
    problems += [f"worker #{o.worker.index + 1} failed: {o.error}" for o in collected if o.error]
    if len(values) < workers:
        problems.append(f"only {len(values)} of {workers} workers reported back")
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
