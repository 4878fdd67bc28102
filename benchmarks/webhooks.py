"""webhooks: what handling each delivery once per fleet costs, on Redis and PostgreSQL.

* **added latency per event**: one ``Receiver.respond()`` of a new delivery with a
  handler that does nothing (verify, parse, claim, finish), against ``Receiver.verify()``
  alone (verify and parse: what any endpoint does), in interleaved rounds; the
  difference is what the shared claim adds;
* **store round trips per event**: claim steps counted on the store (Redis: EVALSHA
  calls by ``INFO commandstats``; PostgreSQL: statements sent), per handled event;
* **events/s across a fleet**: P processes behind a "load balancer" (the worker of
  ``tests/system/webhook_worker.py``), the fake Zoom delivering N events, 30 % of them
  twice, shuffled, 64 at a time; each must be handled exactly once (checked).
"""

from __future__ import annotations

import asyncio
import random
import secrets
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import aiohttp

from tests.harness.fleet import Fleet
from tests.system.webhook_worker import webhook_endpoint
from zoom_s2s.stores import PostgresTokenStore, RedisTokenStore, TokenStore
from zoom_s2s.testing import FakeZoom
from zoom_s2s.testing._fake_webhooks import event_body
from zoom_s2s.webhooks import Receiver, signed_headers

from ._common import BenchmarkSkipped, Figure, RunContext, Spread, figure, run_async

NAME = "webhooks"
TITLE = "each webhook delivery once per fleet: added latency, round trips, events/s"

SECRET = "bench-webhook-secret"


def _requests(count: int) -> list[tuple[dict[str, str], bytes]]:
    out = []
    for i in range(count):
        body = event_body("meeting.updated", {"object": {"id": i}})
        out.append((signed_headers(SECRET, body, request_id=secrets.token_hex(16)), body))
    return out


async def _latency(store: TokenStore, events: int, rounds: int) -> dict[str, Any]:
    """Per round: median µs of respond() and of verify(), over ``events`` new deliveries each."""
    receiver = Receiver(SECRET, store=store)
    await receiver.respond(*_requests(1)[0], lambda e: None)  # warm: pool, scripts, schema

    async def noop(_event: Any) -> None:
        return None

    respond: list[float] = []
    verify: list[float] = []
    for index in range(rounds):
        batch = _requests(events)
        order = ("respond", "verify") if index % 2 == 0 else ("verify", "respond")
        for subject in order:
            times = []
            for headers, body in batch:
                began = time.perf_counter()
                if subject == "verify":
                    receiver.verify(headers, body)
                else:
                    reply = await receiver.respond(headers, body, noop)
                    assert reply.status == 200, reply
                times.append(time.perf_counter() - began)
            times.sort()
            (respond if subject == "respond" else verify).append(times[len(times) // 2] * 1e6)
    return {"respond": respond, "verify": verify}


async def _redis_round_trips(url: str, events: int) -> float:
    import redis.asyncio as redis_asyncio

    store = RedisTokenStore.from_url(url)
    raw: Any = redis_asyncio.Redis.from_url(url)
    receiver = Receiver(SECRET, store=store)
    try:
        await receiver.respond(*_requests(1)[0], lambda e: None)
        before = await raw.info("commandstats")
        for headers, body in _requests(events):
            await receiver.respond(headers, body, lambda e: None)
        after = await raw.info("commandstats")
    finally:
        await raw.aclose()
        await store.aclose()
    calls = sum(
        int(after.get(k, {}).get("calls", 0)) - int(before.get(k, {}).get("calls", 0))
        for k in ("cmdstat_evalsha", "cmdstat_eval", "cmdstat_script|load")
    )
    return calls / events


async def _postgres_round_trips(store: PostgresTokenStore, events: int) -> float:
    receiver = Receiver(SECRET, store=store)
    await receiver.respond(*_requests(1)[0], lambda e: None)
    run = store._run
    sent = [0]

    async def counted(method: str, query: str, *args: Any, **kwargs: Any) -> Any:
        sent[0] += 1  # every statement the store sends
        return await run(method, query, *args, **kwargs)

    store._run = counted  # type: ignore[method-assign]
    try:
        for headers, body in _requests(events):
            await receiver.respond(headers, body, lambda e: None)
    finally:
        del store._run
    return sent[0] / events


async def _fleet_run(
    url: str, options: dict[str, Any], processes: int, events: int
) -> dict[str, Any]:
    marks = Path(tempfile.mkdtemp(prefix="zoom-s2s-webhooks-"))
    rng = random.Random(21)
    with Fleet(store=url, store_options=options, timeout=300) as fleet:
        workers = [
            fleet.spawn(webhook_endpoint, {"secret": SECRET, "marks": str(marks)})
            for _ in range(processes)
        ]
        urls = [worker.expect("ready", 60)["url"] for worker in workers]
        async with FakeZoom(webhook_secret_token=SECRET) as zoom:
            zoom.webhooks.retry_delays = (0.5, 1.0, 2.0)
            batch = [(f"ev-{i}", zoom.webhooks.body("meeting.updated", {"n": i}))
                     for i in range(events)]
            sends = batch + rng.sample(batch, int(0.3 * events))
            rng.shuffle(sends)
            gate = asyncio.Semaphore(64)
            async with aiohttp.ClientSession() as session:

                async def send(request_id: str, body: bytes) -> Any:
                    async with gate:
                        return await zoom.webhooks.deliver(
                            urls, "", body=body, request_id=request_id, session=session
                        )

                began = time.perf_counter()
                deliveries = await asyncio.gather(*(send(r, b) for r, b in sends))
                elapsed = time.perf_counter() - began
        fleet.start(workers)
        results = fleet.results(workers)
    handled = Counter(rid for result in results for rid in result["handled"])
    return {
        "seconds": elapsed,
        "events_per_s": events / elapsed,
        "deliveries_per_s": len(sends) / elapsed,
        "exactly_once": len(handled) == events and set(handled.values()) == {1},
        "undelivered": sum(1 for d in deliveries if not d.delivered),
        "store_calls_per_event": sum(r["store_calls"] for r in results) / events,
    }


def run(ctx: RunContext) -> list[Figure]:
    if not ctx.has_redis():
        raise BenchmarkSkipped("needs redis-server and the redis package")
    events, rounds = ctx.size(200, 500), ctx.size(3, 5)
    processes, fleet_events = ctx.size(4, 4), ctx.size(300, 1000)
    backends: dict[str, tuple[str, dict[str, Any]]] = {"Redis": (ctx.redis_url(), {})}
    if ctx.has_postgres():
        backends["PostgreSQL"] = (ctx.postgres_url(), {"schema": ctx.postgres_schema()})
    figures: list[Figure] = []
    data: dict[str, Any] = {}
    for label, (url, options) in backends.items():

        def open_store(url: str = url, options: dict[str, Any] = options) -> TokenStore:
            if url.startswith("redis"):
                return RedisTokenStore.from_url(url)
            return PostgresTokenStore.from_url(url, **options)

        async def measure(url: str = url, options: dict[str, Any] = options) -> dict[str, Any]:
            store = open_store(url, options)
            try:
                timed = await _latency(store, events, rounds)
                if isinstance(store, PostgresTokenStore):
                    trips = await _postgres_round_trips(store, events)
                else:
                    trips = await _redis_round_trips(url, events)
            finally:
                await store.aclose()
            return {**timed, "round_trips": trips}

        cost = run_async(measure(), 300)
        fleet = run_async(_fleet_run(url, options, processes, fleet_events), 600)
        added = Spread.of([r - v for r, v in zip(cost["respond"], cost["verify"], strict=True)])
        figures += [
            figure(NAME, f"added latency per event on {label}", added, "us",
                   note=f"respond() {Spread.of(cost['respond']).text('us')} vs verify() "
                        f"{Spread.of(cost['verify']).text('us')}, median of {events} events"),
            figure(NAME, f"store round trips per event on {label}", cost["round_trips"], "",
                   at_most=2, note="claim + finish, one script or statement each"),
            figure(NAME, f"events/s, {processes} processes on {label}",
                   fleet["events_per_s"], "/s",
                   note=f"{fleet_events} events + 30 % duplicates, shuffled, 64 in flight; "
                        f"exactly once: {fleet['exactly_once']}, undelivered: "
                        f"{fleet['undelivered']}, "
                        f"{fleet['store_calls_per_event']:.2f} claim steps per event"),
        ]
        data[label] = {"latency_us": cost, "fleet": fleet}
    ctx.data[NAME] = data
    return figures
