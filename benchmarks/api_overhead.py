"""api_overhead: ``ZoomClient.get_user("me")`` vs a raw aiohttp GET with a fixed bearer header.

Both run in this process, against one FakeZoom served from a child process
(so the server's CPU is not this process's), at the same concurrency, in
interleaved timed rounds; the best round of each counts. The raw baseline
reads and JSON-decodes the body like the client does. Target: the client's
requests per second within 10% of raw aiohttp. Client CPU time per request is
reported too: when the fake is the bottleneck, requests per second hide the
client's own cost, CPU time does not.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp

from zoom_s2s import TokenManager

from ._common import BenchmarkSkipped, Figure, RunContext, figure, load_zoom_client
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


async def _measure(ctx: RunContext, fake: FakeZoomProcess, zoom_client: Any) -> dict[str, Any]:
    concurrency, seconds, repeats = ctx.size((10, 0.6, 3), (20, 2.0, 5))
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
        rps = dict.fromkeys(subjects, 0.0)
        cpu = dict.fromkeys(subjects, float("inf"))
        names = list(subjects)
        for repeat in range(repeats):
            for name in names[repeat % 2 :] + names[: repeat % 2]:
                got, cost = await _drive(subjects[name], concurrency, seconds)
                rps[name], cpu[name] = max(rps[name], got), min(cpu[name], cost)
    return {"concurrency": concurrency, "rps": rps, "cpu_us_per_request": cpu}


def run(ctx: RunContext) -> list[Figure]:
    zoom_client = load_zoom_client()
    if zoom_client is None:
        raise BenchmarkSkipped("zoom_s2s.ZoomClient is not there yet")
    with fake_zoom_process(expires_in=3599) as fake:
        result = asyncio.run(asyncio.wait_for(_measure(ctx, fake, zoom_client), 120))
    ctx.data[NAME] = result
    rps, cpu, concurrency = result["rps"], result["cpu_us_per_request"], result["concurrency"]
    return [
        figure(
            NAME,
            f"ZoomClient / raw aiohttp requests per second (concurrency {concurrency})",
            rps["ZoomClient"] / rps["raw aiohttp"],
            "x",
            at_least=TARGET,
            note=f"{rps['ZoomClient']:.0f} vs {rps['raw aiohttp']:.0f} req/s",
        ),
        figure(
            NAME,
            "ZoomClient / raw aiohttp client CPU per request",
            cpu["ZoomClient"] / cpu["raw aiohttp"],
            "x",
            note=f"{cpu['ZoomClient']:.0f} vs {cpu['raw aiohttp']:.0f} us/request",
        ),
    ]
