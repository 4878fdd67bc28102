"""api_overhead: ``ZoomClient.get_user("me")`` vs a raw aiohttp GET with a fixed bearer header.

Both run in this process, against one FakeZoom served from a child process
(so the server's CPU is not this process's), at the same concurrency, in
interleaved rounds (raw, client, client, raw, ...: each round times both, in
alternating order). Each round gives a ratio of requests per second and a
ratio of client CPU per request; the figures are the medians of those
per-round ratios, with their range. The raw baseline reads and JSON-decodes
the body like the client does. Target: the client's requests per second
within 10% of raw aiohttp. Client CPU time per request is reported too: when
the fake is the bottleneck, requests per second hide the client's own cost,
CPU time does not.

The blocking faces are measured the same way, one thread each: a
``requests.Session`` whose auth is ``zoom_s2s.requests.ZoomAuth`` on a
``SyncTokenManager`` (Zoom's blocks honoured; and paced with
``RateLimits(light=100000)``) against the same session with a fixed header.
Their client CPU includes the manager's loop thread.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp

from zoom_s2s import TokenManager

from ._common import (
    BenchmarkSkipped,
    Figure,
    Rounds,
    RunContext,
    figure,
    load_zoom_client,
    rotations,
)
from ._fake_process import FakeZoomProcess, fake_zoom_process

NAME = "api_overhead"
TITLE = "ZoomClient.get_user('me') vs raw aiohttp GET, same concurrency"
TARGET = 0.9


async def _drive(
    call: Callable[[], Awaitable[object]], concurrency: int, seconds: float
) -> tuple[float, float]:
    """Requests per second and client CPU microseconds per request, for ``seconds``."""
    done = 0
    deadline = time.perf_counter() + seconds

    async def worker() -> None:
        nonlocal done
        while time.perf_counter() < deadline:
            await call()
            done += 1

    cpu, started = time.process_time(), time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
    return done / elapsed, cpu / max(done, 1) * 1e6


async def _measure(ctx: RunContext, fake: FakeZoomProcess, zoom_client: Any) -> tuple[int, Rounds]:
    concurrency, seconds, rounds = ctx.size((10, 0.5, 7), (20, 1.0, 21))
    url = f"{fake.api_base_url}/users/me"
    async with (
        TokenManager(fake.credentials, token_url=fake.token_url) as tokens,
        zoom_client(tokens, base_url=fake.api_base_url) as zoom,
        aiohttp.ClientSession() as session,
    ):
        token = await tokens.get_token()
        headers = {"Authorization": f"Bearer {token.access_token}"}

        async def raw() -> object:
            async with session.get(url, headers=headers) as response:
                response.raise_for_status()
                return json.loads(await response.read())

        async def client() -> object:
            return await zoom.get_user("me")

        subjects = {"raw aiohttp": raw, "ZoomClient": client}
        for call in subjects.values():  # warm: connections, caches
            await asyncio.gather(*(call() for _ in range(concurrency)))
        rps: dict[str, list[float]] = {name: [] for name in subjects}
        cpu: dict[str, list[float]] = {name: [] for name in subjects}
        for _, name in rotations(list(subjects), rounds):
            got, cost = await _drive(subjects[name], concurrency, seconds)
            rps[name].append(got)
            cpu[name].append(cost)
    return concurrency, Rounds(rps, cpu)


def _drive_blocking(call: Callable[[], object], seconds: float) -> tuple[float, float]:
    """Requests per second and process CPU microseconds per request, for ``seconds``."""
    done = 0
    cpu, started = time.process_time(), time.perf_counter()
    deadline = started + seconds
    while time.perf_counter() < deadline:
        call()
        done += 1
    elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
    return done / elapsed, cpu / max(done, 1) * 1e6


def _measure_blocking(ctx: RunContext, fake: FakeZoomProcess) -> Rounds | None:
    """The requests face against a raw session, or ``None`` without requests installed."""
    try:
        import requests
    except ImportError:
        return None
    from zoom_s2s import RateLimits
    from zoom_s2s.requests import ZoomAuth
    from zoom_s2s.sync import SyncTokenManager

    seconds, rounds = ctx.size((0.5, 7), (1.0, 15))
    url = f"{fake.api_base_url}/users/me"
    with SyncTokenManager(fake.credentials, token_url=fake.token_url) as tokens:
        sessions = {name: requests.Session() for name in BLOCKING}
        sessions["ZoomAuth"].auth = ZoomAuth(tokens, api_url=fake.api_base_url)
        sessions["ZoomAuth paced"].auth = ZoomAuth(
            tokens, api_url=fake.api_base_url, rate_limits=RateLimits(light=100_000)
        )
        token = tokens.get_token()
        sessions["raw requests"].headers["Authorization"] = f"Bearer {token.access_token}"

        def caller(session: Any) -> Callable[[], object]:
            def call() -> object:
                response = session.get(url, timeout=30)
                response.raise_for_status()
                return response.json()

            return call

        calls = {name: caller(session) for name, session in sessions.items()}
        for call in calls.values():  # warm: connections, the pacer's first answer
            for _ in range(20):
                call()
        rps: dict[str, list[float]] = {name: [] for name in calls}
        cpu: dict[str, list[float]] = {name: [] for name in calls}
        for _, name in rotations(list(calls), rounds):
            got, cost = _drive_blocking(calls[name], seconds)
            rps[name].append(got)
            cpu[name].append(cost)
        for session in sessions.values():
            session.close()
    return Rounds(rps, cpu)


BLOCKING = ("raw requests", "ZoomAuth", "ZoomAuth paced")


def run(ctx: RunContext) -> list[Figure]:
    zoom_client = load_zoom_client()
    if zoom_client is None:
        raise BenchmarkSkipped("zoom_s2s.ZoomClient is not there yet")
    # The fake enforces 100,000 Light requests a second, so its headers report the
    # budget left, as Zoom's do for a client under its limit (by default it reports
    # Pro's 30/s without enforcing it: "Remaining: 0" on every answer).
    with fake_zoom_process(expires_in=3599, qps={"Light": 100_000}) as fake:
        concurrency, measured = asyncio.run(asyncio.wait_for(_measure(ctx, fake, zoom_client), 300))
        blocking = _measure_blocking(ctx, fake)
    ctx.data[NAME] = {"concurrency": concurrency, **measured.summary()}
    if blocking is not None:
        ctx.data[NAME]["blocking"] = blocking.summary()
    client_rps, raw_rps = measured.median("ZoomClient"), measured.median("raw aiohttp")
    client_cpu, raw_cpu = measured.cpu_median("ZoomClient"), measured.cpu_median("raw aiohttp")
    return [
        figure(
            NAME,
            f"ZoomClient / raw aiohttp requests per second (concurrency {concurrency})",
            measured.ratio("ZoomClient", "raw aiohttp"),
            "x",
            at_least=TARGET,
            note=f"median {client_rps:.0f} vs {raw_rps:.0f} req/s",
        ),
        figure(
            NAME,
            "ZoomClient / raw aiohttp client CPU per request",
            measured.cpu_ratio("ZoomClient", "raw aiohttp"),
            "x",
            note=f"median {client_cpu:.0f} vs {raw_cpu:.0f} us/request",
        ),
        *_blocking_figures(blocking),
    ]


def _blocking_figures(blocking: Rounds | None) -> list[Figure]:
    if blocking is None:
        return [figure(NAME, "requests face", None, note="requests is not installed: skipped")]
    raw_rps, raw_cpu = blocking.median("raw requests"), blocking.cpu_median("raw requests")
    figures = []
    for name, what in (("ZoomAuth", "Zoom's blocks honoured"), ("ZoomAuth paced", "paced")):
        figures += [
            figure(
                NAME,
                f"requests + {name} / raw requests, requests per second (one thread)",
                blocking.ratio(name, "raw requests"),
                "x",
                note=f"{what}; median {blocking.median(name):.0f} vs {raw_rps:.0f} req/s",
            ),
            figure(
                NAME,
                f"requests + {name} / raw requests, CPU per request",
                blocking.cpu_ratio(name, "raw requests"),
                "x",
                note=f"median {blocking.cpu_median(name):.0f} vs {raw_cpu:.0f} us/request, "
                "the manager's loop thread included",
            ),
        ]
    return figures
