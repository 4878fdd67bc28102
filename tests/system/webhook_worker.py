"""A webhook endpoint in one process of a :class:`~tests.harness.fleet.Fleet`, for the fleet
tests and ``benchmarks/webhooks``.

The workload serves ``aiohttp_handler(Receiver(...))`` on a free loopback port, reports
``ready`` with its URL and pid, and serves until the parent opens its gate; then it returns
what its handler did. Options (JSON):

``secret``  the webhook secret token.
``lease``   the Receiver's lease, seconds.
``marks``   a directory the handler leaves marks in (shared by the processes of the host).

What a delivery's payload asks of the handler: ``sleep`` (seconds), ``fail_once`` (raise the
first time any process handles it), ``hang`` (the first time: mark ``<request_id>.started``
with the pid, then never return).

It returns ``handled`` (request ids, in order), ``pid``, ``store_calls`` (claims steps,
each one round trip) and ``store_seconds`` (time spent in them).
"""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path
from typing import Any

from aiohttp import web

from tests.harness.fleet import WorkerContext
from zoom_s2s.webhooks import Receiver, WebhookEvent, aiohttp_handler


def _first(marks: Path, name: str, content: str = "") -> bool:
    """Whether this call is the first of the whole host to leave mark ``name``."""
    try:
        fd = os.open(marks / name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return False
    os.write(fd, content.encode())
    os.close(fd)
    return True


def _counted(receiver: Receiver, counts: dict[str, float]) -> None:
    claims: Any = receiver.claims
    for name in ("claim", "extend", "finish", "release"):
        step = getattr(claims, name)

        async def timed(*args: Any, _step: Any = step, **kwargs: Any) -> Any:
            began = time.perf_counter()
            try:
                return await _step(*args, **kwargs)
            finally:
                counts["calls"] += 1
                counts["seconds"] += time.perf_counter() - began

        setattr(claims, name, timed)


async def webhook_endpoint(worker: WorkerContext) -> dict[str, Any]:
    options = worker.options
    marks = Path(options["marks"])
    store = worker.open_store()
    receiver = Receiver(options["secret"], store=store, lease=options.get("lease", 30.0))
    counts = {"calls": 0.0, "seconds": 0.0}
    _counted(receiver, counts)
    handled: list[str] = []

    async def handle(event: WebhookEvent) -> None:
        payload, request_id = event.payload, event.request_id or ""
        if payload.get("hang") and _first(marks, f"{request_id}.started", str(os.getpid())):
            await asyncio.sleep(3600)
        if payload.get("fail_once") and _first(marks, f"{request_id}.failed"):
            raise RuntimeError("failing once, as asked")
        if payload.get("sleep"):
            await asyncio.sleep(payload["sleep"])
        handled.append(request_id)

    app = web.Application()
    app.router.add_post("/zoom/events", aiohttp_handler(receiver, handle))
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    worker.send("ready", url=f"http://127.0.0.1:{port}/zoom/events", pid=os.getpid())
    try:
        await worker.gate()
    finally:
        await runner.cleanup()
        await store.aclose()
    return {
        "handled": handled, "pid": os.getpid(), "store_calls": counts["calls"],
        "store_seconds": counts["seconds"],
    }
