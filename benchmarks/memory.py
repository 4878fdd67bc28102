"""memory: RSS growth over many warm ``get_token()`` calls and many refresh cycles.

The fake runs in a child process so its own bookkeeping (it remembers every
token it issued) does not count. After a warm-up, resident set size is read
(psutil, else ``/proc/self/statm``) before and after:

* N warm ``get_token()`` calls (quick 200,000; full 1,000,000);
* M refresh cycles, each ``invalidate(token)`` then ``get_token()`` (a real
  token request to the fake, store write, ...), on a memory store and, when
  Redis is available, on a Redis store (quick 1,000; full 10,000).

Target: flat, under 1 MiB of growth after warm-up; reported in KiB.
"""

from __future__ import annotations

import asyncio
import gc
from typing import Any

from zoom_s2s import MemoryTokenStore, RedisTokenStore, TokenManager, TokenStore

from ._common import Figure, RunContext, figure, rss_bytes
from ._fake_process import FakeZoomProcess, fake_zoom_process

NAME = "memory"
TITLE = "RSS growth over many get_token() calls and refresh cycles"
TARGET_KIB = 1024.0


def _rss_kib() -> float:
    gc.collect()
    return rss_bytes() / 1024


async def _calls(manager: TokenManager, count: int) -> float:
    for _ in range(min(count, 20_000)):  # warm-up
        await manager.get_token()
    before = _rss_kib()
    for _ in range(count):
        await manager.get_token()
    return _rss_kib() - before


async def _refreshes(manager: TokenManager, count: int) -> tuple[float, int]:
    for _ in range(min(count, 200)):  # warm-up: connections, caches, allocator arenas
        await manager.invalidate(await manager.get_token())
    fetches = manager.stats().fetches
    before = _rss_kib()
    for _ in range(count):
        await manager.invalidate(await manager.get_token())
    await manager.get_token()
    return _rss_kib() - before, manager.stats().fetches - fetches


async def _measure(ctx: RunContext, fake: FakeZoomProcess) -> dict[str, Any]:
    calls, cycles = ctx.size((200_000, 1_000), (1_000_000, 10_000))
    result: dict[str, Any] = {"calls": calls, "cycles": cycles}
    async with TokenManager(
        fake.credentials, store=MemoryTokenStore(), token_url=fake.token_url
    ) as manager:
        await manager.get_token()
        result["get_token_growth_kib"] = await _calls(manager, calls)
    stores: dict[str, TokenStore] = {"memory": MemoryTokenStore()}
    if ctx.has_redis():
        stores["redis"] = RedisTokenStore.from_url(ctx.redis_url())
    for name, store in stores.items():
        try:
            async with TokenManager(
                fake.credentials, store=store, token_url=fake.token_url
            ) as manager:
                growth, fetches = await _refreshes(manager, cycles)
        finally:
            await store.aclose()
        result[f"refresh_{name}_growth_kib"] = growth
        result[f"refresh_{name}_fetches"] = fetches
    return result


def run(ctx: RunContext) -> list[Figure]:
    with fake_zoom_process(expires_in=3599) as fake:
        result = asyncio.run(asyncio.wait_for(_measure(ctx, fake), 600))
    result["fake"] = fake.counters
    ctx.data[NAME] = result
    figures = [
        figure(
            NAME,
            f"RSS growth over {result['calls']:,} warm get_token() calls",
            result["get_token_growth_kib"],
            "KiB",
            below=TARGET_KIB,
        )
    ]
    for store in ("memory", "redis"):
        if f"refresh_{store}_growth_kib" in result:
            figures.append(
                figure(
                    NAME,
                    f"RSS growth over {result['cycles']:,} refresh cycles ({store} store)",
                    result[f"refresh_{store}_growth_kib"],
                    "KiB",
                    below=TARGET_KIB,
                    note=f"{result[f'refresh_{store}_fetches']:,} token fetches",
                )
            )
    return figures
