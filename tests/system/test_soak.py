"""Soak: a small fleet on a real Redis with short tokens, Redis restarts and Zoom faults.

P=3 processes x C=10 coroutines (``tests/system/reliability_worker.py``, mode
``callers``) share a dedicated redis-server. Each coroutine loops: get_token(),
then ``GET /v2/users/me`` on the fake Zoom with that token. Tokens live 5 s, so a
60 s run covers a dozen lifetimes. On a 20 s cycle the test restarts Redis
(down about 1 s, data lost) and queues token-endpoint faults: bursts of 503s, a
connection reset, a slow-but-successful answer.

The managers use ``on_store_error="fetch"``: that is the documented way to keep
callers served when the store is down at the moment a process needs a new token
(with the default ``"raise"`` such callers get StoreUnavailableError until Redis
is back; see tests/system/test_store_faults.py).

Duration: ``ZOOM_S2S_SOAK_SECONDS`` (default 60).
"""

from __future__ import annotations

import os
import statistics
import time
from pathlib import Path

import pytest

from tests.harness.redis_server import RedisServer
from zoom_s2s.testing import FakeZoom, Fault

from .reliability_worker import Worker, logs, workers, write_json

# Opt-in (a minute or more): python -m pytest -m soak -n 3
pytestmark = [pytest.mark.soak, pytest.mark.slow, pytest.mark.redis]

PROCESSES = 3
COROUTINES = 10
LIFETIME = 5
CYCLE = 20.0
REDIS_DOWN = 1.0
RSS_LIMIT_KIB = 3 * 1024  # measured growth is well under 100 KiB

# Offsets in each cycle -> what happens. Token faults hit the next token requests.
SCHEDULE: list[tuple[float, str]] = [
    (3.0, "burst"),  # two 503s: retried inside one fetch
    (8.0, "reset"),  # one connection reset
    (10.0, "restart"),  # Redis down ~1 s, comes back empty
    (14.0, "slow"),  # one answer 1.5 s late (request timeout 2 s)
    (17.0, "burst3"),  # three 503s: the fourth attempt succeeds
]


def _soak_seconds() -> float:
    return float(os.environ.get("ZOOM_S2S_SOAK_SECONDS", "60"))


def _apply(event: str, zoom: FakeZoom, server: RedisServer) -> None:
    if event == "burst":
        zoom.fail_next(2, fault=Fault(status=503))
    elif event == "burst3":
        zoom.fail_next(3, fault=Fault(status=503))
    elif event == "reset":
        zoom.fail_next(1, fault=Fault(reset=True))
    elif event == "slow":
        zoom.fail_next(1, fault=Fault(delay=1.5, then_serve=True))
    elif event == "restart":
        server.stop()
        time.sleep(REDIS_DOWN)
        server.start()
    else:  # pragma: no cover - a typo in SCHEDULE
        raise ValueError(event)


def _rss_growth(samples: list[list[float]], warmup: float) -> float:
    """KiB from the RSS just after warm-up to the RSS at the end (medians of 5 samples)."""
    after = [kib for t, kib in samples if t >= warmup]
    assert len(after) >= 10, f"too few RSS samples after warm-up: {samples}"
    return statistics.median(after[-5:]) - statistics.median(after[:5])


def test_soak_fleet_on_redis_with_restarts_and_token_faults(tmp_path: Path) -> None:
    duration = _soak_seconds()
    warmup = min(20.0, duration / 3)
    injected: list[tuple[float, str]] = []
    with RedisServer() as server, FakeZoom(expires_in=LIFETIME).running_in_thread() as zoom, \
            workers(tmp_path / "ipc") as (ipc, started):
        creds = zoom.credentials
        for index in range(PROCESSES):
            started.append(Worker(ipc, {
                "mode": "callers",
                "name": f"soak-{index}",
                "go": "go",
                "credentials": [creds.account_id, creds.client_id, creds.client_secret],
                "token_url": zoom.token_url,
                "api_base_url": zoom.api_base_url,
                "store": {"kind": "redis", "url": server.url,
                          "socket_timeout": 1, "socket_connect_timeout": 1},
                "coroutines": COROUTINES,
                "pause": [0.1, 0.3],
                "retry": {"attempts": 4, "timeout": 10.0, "wait_initial": 0.1,
                          "wait_max": 0.5, "wait_jitter": 0.1},
                "manager": {"request_timeout": 2.0, "on_store_error": "fetch"},
                "valid_threshold": LIFETIME / 10 + 0.05,  # min_ttl is a tenth of 5 s
                "hang_guard": 30.0,
                "timeout": duration + 120,
            }))
        try:
            for worker in started:
                worker.wait_for("ready")
            t_go = time.time()
            write_json(ipc / "go", t_go)
            cycle_start = t_go
            while cycle_start < t_go + duration:
                for offset, event in SCHEDULE:
                    at = cycle_start + offset
                    if at >= t_go + duration - 2:  # leave the end quiet
                        break
                    time.sleep(max(0.0, at - time.time()))
                    _apply(event, zoom, server)
                    injected.append((round(at - t_go, 1), event))
                cycle_start += CYCLE
            time.sleep(max(0.0, t_go + duration - time.time()))
            (ipc / "stop").touch()
            results = [worker.result(60) for worker in started]
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{logs(started)}") from None
        elapsed = time.time() - t_go
        requests, issued = zoom.token_requests, zoom.tokens_issued
        unauthorized, api_requests = zoom.api_unauthorized, zoom.api_requests

    restarts = sum(1 for _, event in injected if event == "restart")
    token_faults = len(injected) - restarts
    # One fetch per lifetime for the fleet, plus one per fault: a fetch fallback per
    # process per restart, and the failed attempts of each token fault.
    ideal = elapsed / LIFETIME + restarts * PROCESSES + sum(
        {"burst": 2, "burst3": 3, "reset": 1, "slow": 0}[e] for _, e in injected if e != "restart"
    )
    growth = {r["name"]: _rss_growth(r["rss"], warmup) for r in results}
    total = {key: sum(r["counts"].get(key, 0) for r in results)
             for key in ("ok", "errors", "errors_with_valid_token", "hangs", "expired_served")}
    api_status: dict[str, int] = {}
    for r in results:
        for status, count in r["api_status"].items():
            api_status[status] = api_status.get(status, 0) + count
    print(
        f"\nsoak {elapsed:.0f} s, {PROCESSES}x{COROUTINES} on Redis, tokens {LIFETIME} s: "
        f"{restarts} Redis restarts, {token_faults} token faults {injected}\n"
        f"  token requests {requests} (issued {issued}), ideal {ideal:.0f}, "
        f"ratio {requests / ideal:.2f}\n"
        f"  get_token: {total}; errors by class "
        f"{[r['error_classes'] for r in results]}\n"
        f"  API: {api_requests} requests, statuses {api_status}, 401s {unauthorized}\n"
        f"  RSS growth after {warmup:.0f} s warm-up (KiB): {growth}"
    )
    for r in results:
        print(f"  {r['name']}: {r['counts']} stats={r['stats']}")

    assert total["errors_with_valid_token"] == 0, [r["samples"] for r in results]
    assert total["hangs"] == 0
    assert total["expired_served"] == 0
    assert total["ok"] > 0
    assert unauthorized == 0
    assert set(api_status) == {"200"}, api_status
    assert requests <= 3 * ideal, (requests, ideal)
    assert issued >= elapsed / LIFETIME  # tokens really were refreshed all along
    for name, kib in growth.items():
        assert kib < RSS_LIMIT_KIB, (name, kib)


# -- PostgreSQL frozen and thawed under load ----------------------------------------

PG_ACCOUNTS = 30  # per process: concurrent refreshes queue for the pool's connections
PG_POOL_SIZE = 3
PG_COMMAND_TIMEOUT = 1.0
PG_LOCK_TTL = 3.0
PG_LIFETIME = 6
PG_CYCLE = 16.0
PG_FREEZE = 8.0  # longer than a token outlives its refresh moment: callers need the store
# The longest a caller may wait when PostgreSQL hangs (docs/failure-behaviour.rst):
# each store call answers within command_timeout; a caller's first failed call ends
# its get_token(), after at most one answered call (twice command_timeout), or after
# waiting for another process's fetch (at most the lock's TTL; the listener's check
# wakes it sooner).
PG_BOUND = PG_LOCK_TTL + 2 * PG_COMMAND_TIMEOUT + 1.0


@pytest.mark.postgres
async def test_soak_fleet_on_postgres_frozen_and_thawed() -> None:
    """P=3 processes (a store each, pool of 3) x 30 accounts x 2 callers each,
    on a PostgreSQL frozen (SIGSTOP) for 8 s every 16 s. No caller waits past the
    bound; a caller with a valid token never sees an error; the fleet fetches once
    per renewal per account, not once per process."""
    import asyncio
    import random

    from tests.harness.postgres_server import PostgresServer
    from zoom_s2s import TokenManager, ZoomS2SError
    from zoom_s2s.stores import PostgresTokenStore

    from ..support import FAST_RETRY
    from .conftest import require_asyncpg, require_postgres_server

    require_postgres_server()
    require_asyncpg()
    duration = _soak_seconds()
    waits: list[float] = []
    counts: dict[str, int] = {"ok": 0, "errors": 0, "errors_with_valid_token": 0}
    error_classes: dict[str, int] = {}
    freezes = 0
    with PostgresServer(settings={"synchronous_commit": "on"}) as server:
        async with FakeZoom(expires_in=PG_LIFETIME) as zoom:
            apps = [zoom.add_app() for _ in range(PG_ACCOUNTS)]
            stores = [
                PostgresTokenStore.from_url(
                    server.url, pool_size=PG_POOL_SIZE, command_timeout=PG_COMMAND_TIMEOUT,
                    connect_timeout=PG_COMMAND_TIMEOUT,
                )
                for _ in range(PROCESSES)
            ]
            managers = [
                TokenManager(
                    app.credentials, store=store, token_url=zoom.token_url, retry=FAST_RETRY,
                    lock_ttl=PG_LOCK_TTL, request_timeout=2.0, wait_timeout=10.0,
                )
                for store in stores for app in apps
            ]
            stop = asyncio.Event()

            async def caller(manager: TokenManager) -> None:
                while not stop.is_set():
                    before = manager.stats().expires_in
                    valid = before is not None and before > PG_LIFETIME / 10 + 0.05
                    started = time.monotonic()
                    try:
                        await asyncio.wait_for(manager.get_token(), 60)
                        counts["ok"] += 1
                    except ZoomS2SError as exc:
                        counts["errors"] += 1
                        counts["errors_with_valid_token"] += valid
                        name = type(exc).__name__
                        error_classes[name] = error_classes.get(name, 0) + 1
                    waits.append(time.monotonic() - started)
                    await asyncio.sleep(random.uniform(0.05, 0.15))

            try:
                callers = [
                    asyncio.create_task(caller(managers[i % len(managers)]))
                    for i in range(2 * len(managers))
                ]
                started = time.monotonic()
                while time.monotonic() - started < duration - PG_CYCLE / 2:
                    await asyncio.sleep(PG_CYCLE - PG_FREEZE)
                    server.pause()
                    freezes += 1
                    await asyncio.sleep(PG_FREEZE)
                    server.resume()
                await asyncio.sleep(max(0.0, duration - (time.monotonic() - started)))
                stop.set()
                await asyncio.wait_for(asyncio.gather(*callers), 90)
                elapsed = time.monotonic() - started
            finally:
                server.resume()
                for manager in managers:
                    await manager.aclose()
                for store in stores:
                    await store.aclose()
            requests = zoom.token_requests

    # Refresh-ahead renews a token at 50-75 % of its lifetime: one fetch per renewal
    # per account for the whole fleet, plus (per freeze) a fetch per process whose
    # token could not be stored or read back.
    renewals = elapsed / (0.5 * PG_LIFETIME)
    print(
        f"\nsoak {elapsed:.0f} s, {PROCESSES} processes x {PG_ACCOUNTS} accounts on "
        f"PostgreSQL, {freezes} freezes of {PG_FREEZE:g} s: {counts}, errors {error_classes}; "
        f"token requests {requests} (at most {PG_ACCOUNTS * renewals:.0f} renewals); longest "
        f"wait {max(waits):.2f} s (bound {PG_BOUND:g} s), "
        f"p99 {statistics.quantiles(waits, n=100)[98]:.3f} s"
    )
    assert max(waits) <= PG_BOUND
    assert counts["errors_with_valid_token"] == 0
    assert counts["ok"] > 0
    assert set(error_classes) <= {"StoreUnavailableError"}, error_classes
    thawed = elapsed - freezes * PG_FREEZE
    assert requests >= PG_ACCOUNTS * thawed / PG_LIFETIME  # renewed whenever it could be
    assert requests <= PG_ACCOUNTS * (renewals + freezes * PROCESSES)
