"""The workload of the rate-budget fleet tests and benchmark: C coroutines calling
``get_user`` in a loop for a while, in one process of a :class:`~tests.harness.fleet.Fleet`.

Options (JSON):

``seconds``     how long to call (after the fleet's common start).
``pacing``      ``"fleet"`` (the limiter on the shared store), ``"process"`` (a limiter of
                this process only) or ``"none"``.
``limits``      keyword arguments of :class:`~zoom_s2s.RateLimits` (``{"light": 20}``).
``retries``     ``rate_limit_retries`` of the client (default 0: a 429 is counted, not retried).
``stop_on_daily``  stop a coroutine at its first :class:`DailyLimitExceededError`.
``trace``       also return ``asked``: ``[asked, granted]`` for each granted permit
                (``time.monotonic()``, one clock for every process of the machine);
                ``daily_seen``: when a coroutine first got a daily-limit error for a
                request that was sent (the limiter has stored the hold by then); and
                ``pauses``: ``[before, after, seconds]`` for each pause this process's
                limiter stored for the fleet (a per-second 429, a spent window).

It returns counts and the permit waits' quantiles (JSON). :func:`budget_run` runs it
on every process of a fleet against the fake's limit and measures the run, for the
fleet tests and ``benchmarks/rate_budget`` alike.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

from tests.harness.fleet import Fleet, WorkerContext
from zoom_s2s.testing import FakeRateLimits


def _quantile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def hammer(worker: WorkerContext) -> dict[str, Any]:
    """Call ``get_user`` from ``worker.coroutines`` coroutines for ``seconds``."""
    from zoom_s2s import RateLimits, RetryPolicy, TokenManager, ZoomClient
    from zoom_s2s.errors import DailyLimitExceededError, RateLimitedError
    from zoom_s2s.ratelimit import RateLimiter, rate_scope
    from zoom_s2s.stores import MemoryTokenStore

    options = worker.options
    pacing = options.get("pacing", "fleet")
    limits = RateLimits(**options.get("limits", {})) if pacing != "none" else None
    counts = {"ok": 0, "r429": 0, "held": 0, "daily_sent": 0, "daily_held": 0, "other": 0}
    resets: set[str] = set()
    others: list[str] = []
    waits: list[float] = []
    asked: list[tuple[float, float]] = []
    pauses: list[tuple[float, float, float]] = []
    daily_seen: list[float] = []
    trace = bool(options.get("trace"))
    assert worker.credentials is not None
    assert worker.api_base_url is not None
    store = worker.open_store()
    retry = RetryPolicy(attempts=2, timeout=10.0, wait_initial=0.01, wait_max=0.02)
    async with TokenManager(
        worker.credentials, token_url=worker.token_url, store=store, retry=retry
    ) as tokens, ZoomClient(
        tokens,
        worker.api_base_url,
        rate_limits=limits if pacing == "fleet" else None,
        rate_limit_retries=int(options.get("retries", 0)),
        max_rate_limit_wait=5.0,
    ) as zoom:
        if pacing == "process" and limits is not None:
            zoom.rate_limiter = RateLimiter(
                limits,
                MemoryTokenStore(),  # this process's budget only
                scope=rate_scope(tokens.token_url, tokens.credentials.account_id),
            )
        limiter = zoom.rate_limiter
        if limiter is not None:
            acquire = limiter.acquire

            async def timed(*args: Any, **kwargs: Any) -> float:
                at = time.monotonic()
                waited = await acquire(*args, **kwargs)
                waits.append(waited)
                if trace:
                    asked.append((at, time.monotonic()))
                return waited

            limiter.acquire = timed  # type: ignore[method-assign]
            take_now = limiter.take_now

            def taken(ticket: Any) -> bool:
                at = time.monotonic()
                if not take_now(ticket):
                    return False
                waits.append(0.0)
                if trace:
                    asked.append((at, at))
                return True

            limiter.take_now = taken  # type: ignore[method-assign]
            if trace:  # observe (not replace) the limiter's pauses
                pause = limiter._pause

                async def traced(name: str, **how: Any) -> None:
                    before = time.monotonic()
                    await pause(name, **how)
                    pauses.append((before, time.monotonic(), how.get("seconds") or 0.0))

                limiter._pause = traced  # type: ignore[method-assign]
        await tokens.get_token()  # the token is not what is measured
        await worker.gate()
        deadline = time.monotonic() + float(options["seconds"])
        stop_on_daily = bool(options.get("stop_on_daily"))

        async def loop(_index: int) -> None:
            while time.monotonic() < deadline:
                try:
                    await zoom.get_user()
                    counts["ok"] += 1
                except DailyLimitExceededError as exc:
                    counts["daily_sent" if exc.sent else "daily_held"] += 1
                    if exc.sent:
                        daily_seen.append(time.monotonic())
                    if exc.retry_at is not None:
                        resets.add(exc.retry_at.replace(microsecond=0).isoformat())
                    if stop_on_daily:
                        return
                    await asyncio.sleep(0.01)
                except RateLimitedError as exc:
                    counts["r429" if exc.sent else "held"] += 1
                except Exception as exc:  # counted (the first few named): the run goes on
                    counts["other"] += 1
                    if len(others) < 5:
                        others.append(f"{type(exc).__name__}: {exc}")

        # Stop at the deadline: callers still queued for a permit are cancelled, not
        # drained (their slots would run seconds past the end).
        task = asyncio.ensure_future(worker.gather(loop))
        await asyncio.wait({task}, timeout=max(0.0, deadline - time.monotonic()) + 0.2)
        if not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
    return {
        **counts,
        "resets": sorted(resets),
        "others": others,
        "permits": len(waits),
        "wait_p50": _quantile(waits, 0.5),
        "wait_p99": _quantile(waits, 0.99),
        "shared": limiter.shared if limiter is not None else None,
        **({"asked": asked, "daily_seen": min(daily_seen, default=None), "pauses": pauses}
           if trace else {}),
    }


def budget_run(
    fleet: Fleet,
    layer: FakeRateLimits,
    *,
    processes: int,
    seconds: float,
    pacing: str,
    limit: float,
) -> dict[str, Any]:
    """One run of :func:`hammer` on ``processes`` workers, paced ``pacing`` at ``limit``
    Light requests per second, and what the fleet and the fake counted (JSON-ready).

    ``rate`` is the requests Zoom let through in the first ``seconds`` after the first
    arrival, as a fraction of ``limit``.
    """
    time.sleep(1.05)  # the fake's bucket refills: every run starts from the same state
    start = time.monotonic()
    results = fleet.run(
        hammer,
        [{"seconds": seconds, "pacing": pacing, "limits": {"light": limit}}] * processes,
        timeout=seconds + 60,
    )
    arrivals = layer.arrivals("Light", since=start)
    first = min((a.at for a in arrivals), default=start)
    passed = sum(1 for a in arrivals if a.status == 0 and a.at < first + seconds)
    return {
        **{key: sum(r[key] for r in results) for key in ("ok", "r429", "held", "other")},
        "fake_429": sum(1 for a in arrivals if a.status == 429),
        "fake_requests": len(arrivals),
        "rate": passed / seconds / limit,
        "wait_p99": max(r["wait_p99"] for r in results),
        "shared": sorted({r["shared"] for r in results}, key=str),
    }


async def calls(worker: WorkerContext) -> list[list[Any]]:
    """Make ``worker.options["calls"]`` (``[method, path]`` each) in order, without
    ``rate_limits=``; ``[outcome, id]`` of each: ``ok`` (and the answer's ``id``),
    ``sent`` (a daily 429 from Zoom) or ``held`` (held back by the fleet's ledger).
    ``{n}`` in a path is the id answered to call ``n`` of the same job."""
    from zoom_s2s import TokenManager, ZoomClient
    from zoom_s2s.errors import DailyLimitExceededError

    assert worker.credentials is not None
    assert worker.api_base_url is not None
    outcomes: list[list[Any]] = []
    async with TokenManager(
        worker.credentials, token_url=worker.token_url, store=worker.open_store()
    ) as tokens, ZoomClient(tokens, worker.api_base_url) as zoom:
        await tokens.get_token()
        await worker.gate()
        for method, path in worker.options["calls"]:
            path = path.format(*(str(found) for _, found in outcomes))
            try:
                data = await zoom.request(method, path, json=None if method == "GET" else {})
            except DailyLimitExceededError as exc:
                outcomes.append(["sent" if exc.sent else "held", None])
            else:
                outcomes.append(["ok", data.get("id") if isinstance(data, dict) else None])
    return outcomes
