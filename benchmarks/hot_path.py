"""hot_path: a warm ``get_token()`` per store vs a dict read and a clock read.

DESIGN.md promises that a fresh token costs "about as much as a dict lookup and
a clock read". The baseline is exactly that, as an ``async def`` awaited the
same way, in the same loop, by the same harness (best of several interleaved
repeats of N awaits, ns per call). Target: every store within 1.5x.

The blocking facade (``zoom_s2s.sync.SyncTokenManager``), when present, is
timed from a plain thread against a plain function doing the same dict read.
"""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

from zoom_s2s import FileTokenStore, MemoryTokenStore, RedisTokenStore, TokenManager, TokenStore
from zoom_s2s.testing import FakeZoom

from ._common import (
    BenchmarkSkipped,
    Figure,
    RunContext,
    compare_async,
    compare_sync,
    figure,
    load_sync_manager,
)

NAME = "hot_path"
TITLE = "warm get_token() vs a dict read + clock read"
TARGET_RATIO = 1.5

_CACHE: dict[str, tuple[object, float]] = {}


async def baseline_get_token() -> object:
    """The floor: read a dict, compare with ``time.time()``."""
    token, refresh_after = _CACHE["token"]
    if time.time() < refresh_after:
        return token
    raise RuntimeError("baseline token expired")


def baseline_get_token_sync() -> object:
    """The floor for blocking callers."""
    token, refresh_after = _CACHE["token"]
    if time.time() < refresh_after:
        return token
    raise RuntimeError("baseline token expired")


def _stores(ctx: RunContext) -> tuple[dict[str, TokenStore], list[str]]:
    stores: dict[str, TokenStore] = {
        "memory": MemoryTokenStore(),
        "file": FileTokenStore(ctx.temp_dir("hot-path")),
    }
    skipped = []
    try:
        stores["redis"] = RedisTokenStore.from_url(ctx.redis_url())
    except BenchmarkSkipped as exc:
        skipped.append(f"redis: {exc}")
    return stores, skipped


async def _measure(ctx: RunContext) -> tuple[dict[str, float], list[str]]:
    calls, repeats = ctx.size((200_000, 5), (1_000_000, 7))
    stores, skipped = _stores(ctx)
    async with FakeZoom(expires_in=3599) as fake:
        managers = {
            name: TokenManager(fake.credentials, store=store, token_url=fake.token_url)
            for name, store in stores.items()
        }
        try:
            for manager in managers.values():
                await manager.get_token()  # warm: the fetch (or adoption) happens here
            _CACHE["token"] = (object(), time.time() + 3600)
            subjects = {"baseline": baseline_get_token}
            subjects.update({name: m.get_token for name, m in managers.items()})
            best = await compare_async(
                subjects, calls=calls, repeats=repeats, budget_s=ctx.size(0.2, 0.5)
            )
        finally:
            for manager in managers.values():
                await manager.aclose()
            for store in stores.values():
                await store.aclose()
    return best, skipped


def _measure_sync(ctx: RunContext) -> dict[str, float] | str:
    sync_manager = load_sync_manager()
    if sync_manager is None:
        return "zoom_s2s.sync is not there yet"
    calls, repeats = ctx.size((100_000, 5), (500_000, 7))
    result: dict[str, Any] = {}

    def in_thread(fake: FakeZoom) -> None:
        try:
            with sync_manager(fake.credentials, token_url=fake.token_url) as tokens:
                tokens.get_token()
                _CACHE["token"] = (object(), time.time() + 3600)
                result["best"] = compare_sync(
                    {"sync baseline": baseline_get_token_sync, "sync facade": tokens.get_token},
                    calls=calls,
                    repeats=repeats,
                    budget_s=ctx.size(0.2, 0.5),
                )
        except Exception as exc:
            result["error"] = f"{type(exc).__name__}: {exc}"

    with FakeZoom(expires_in=3599).running_in_thread() as fake:
        thread = threading.Thread(
            target=in_thread, args=(fake,), name="bench-sync-caller", daemon=True
        )
        thread.start()
        thread.join(120)
    if "error" in result or "best" not in result:
        return str(result.get("error", "the sync measurement did not finish in 120 s"))
    best: dict[str, float] = dict(result["best"])
    return best


def run(ctx: RunContext) -> list[Figure]:
    best, skipped = asyncio.run(_measure(ctx))
    base = best["baseline"]
    figures = [figure(NAME, "baseline: dict read + time.time()", base, "ns/call")]
    for name in ("memory", "file", "redis"):
        if name in best:
            figures.append(
                figure(
                    NAME,
                    f"{name} store / baseline",
                    best[name] / base,
                    "x",
                    at_most=TARGET_RATIO,
                    note=f"{best[name]:.0f} vs {base:.0f} ns/call",
                )
            )
    figures += [figure(NAME, f"skipped {reason}", None) for reason in skipped]
    sync = _measure_sync(ctx)
    if isinstance(sync, str):
        figures.append(figure(NAME, "sync facade", None, note=f"not measured: {sync}"))
    else:
        sync_base, facade = sync["sync baseline"], sync["sync facade"]
        figures.append(
            figure(
                NAME,
                "sync facade (from a thread) / sync baseline",
                facade / sync_base,
                "x",
                at_most=TARGET_RATIO,
                note=f"{facade:.0f} vs {sync_base:.0f} ns/call",
            )
        )
        best.update(sync)
    ctx.data[NAME] = {"ns_per_call": best}
    return figures
