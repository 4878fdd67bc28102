"""Webhooks for a fleet: four real processes behind a "load balancer", the fake Zoom as the
sender (signed deliveries, Zoom's retries compressed), claims on a real redis-server and a
real PostgreSQL. Each delivery runs the handler once across the fleet, and none is lost:
not when a handler raises, not when the handling process is killed.
"""

from __future__ import annotations

import asyncio
import os
import random
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.harness.fleet import Fleet, FleetWorker
from tests.system.webhook_worker import webhook_endpoint
from zoom_s2s.testing import FakeZoom

SECRET = "fleet-webhook-secret"
PROCESSES = 4


@pytest.fixture(params=["redis", "postgres"])
def store(request: pytest.FixtureRequest) -> tuple[str, dict[str, Any]]:
    if request.param == "redis":
        request.applymarker(pytest.mark.redis)
        return request.getfixturevalue("redis_url"), {}
    request.applymarker(pytest.mark.postgres)
    url = request.getfixturevalue("postgres_url")
    return url, {"schema": request.getfixturevalue("postgres_schema")}


@pytest.fixture
def endpoints(
    store: tuple[str, dict[str, Any]], tmp_path: Path
) -> Iterator[tuple[Fleet, list[FleetWorker], list[dict[str, Any]]]]:
    url, options = store
    (tmp_path / "marks").mkdir()
    with Fleet(store=url, store_options=options, timeout=120, log_dir=tmp_path) as fleet:
        workers = [
            fleet.spawn(webhook_endpoint, {"secret": SECRET, "lease": 1.5,
                                           "marks": str(tmp_path / "marks")})
            for _ in range(PROCESSES)
        ]
        ready = [worker.expect("ready", 60) for worker in workers]
        yield fleet, workers, ready


def finish(fleet: Fleet, workers: list[FleetWorker]) -> list[dict[str, Any]]:
    alive = [worker for worker in workers if worker.alive()]
    fleet.start(alive)  # every one is at its gate (serving): open it, and they stop
    return list(fleet.results(alive))


def handled(results: list[dict[str, Any]]) -> Counter[str]:
    return Counter(request_id for result in results for request_id in result["handled"])


@pytest.fixture
async def zoom() -> Any:
    async with FakeZoom(webhook_secret_token=SECRET) as fake:
        fake.webhooks.retry_delays = (1.0, 2.0, 4.0)  # Zoom: 5, 20, 60 minutes
        yield fake


async def test_one_delivery_received_by_four_processes_at_once_runs_once(
    endpoints: Any, zoom: FakeZoom
) -> None:
    fleet, workers, ready = endpoints
    urls = [message["url"] for message in ready]
    body = zoom.webhooks.body("meeting.started", {"sleep": 0.5})
    deliveries = await asyncio.gather(*(
        zoom.webhooks.deliver(url, "", body=body, request_id="one-event") for url in urls
    ))
    results = finish(fleet, workers)
    assert handled(results) == {"one-event": 1}
    assert all(delivery.delivered for delivery in deliveries)
    first_answers = sorted(delivery.statuses[0] for delivery in deliveries)
    assert first_answers == [200, 503, 503, 503]  # the others were busy: Zoom retried them


async def test_a_handler_that_raises_runs_again_on_zooms_retry(
    endpoints: Any, zoom: FakeZoom
) -> None:
    fleet, workers, ready = endpoints
    urls = [message["url"] for message in ready]
    delivery = await zoom.webhooks.deliver(urls, "meeting.ended", {"fail_once": True})
    results = finish(fleet, workers)
    assert delivery.statuses == [500, 200]
    assert handled(results) == {delivery.request_id: 1}


async def test_killing_the_handling_process_lets_the_retry_run_after_the_lease(
    endpoints: Any, zoom: FakeZoom, tmp_path: Path
) -> None:
    fleet, workers, ready = endpoints
    urls = [message["url"] for message in ready]  # the load balancer's live list
    pids = [message["pid"] for message in ready]
    sending = asyncio.ensure_future(
        zoom.webhooks.deliver(urls, "meeting.started", {"hang": True}, request_id="hung")
    )
    started = tmp_path / "marks" / "hung.started"
    deadline = time.monotonic() + 10
    while not started.exists() or not started.read_text():
        assert time.monotonic() < deadline, "no process started handling the event"
        await asyncio.sleep(0.02)
    victim = pids.index(int(started.read_text()))
    workers[victim].sigkill()
    killed_at = time.monotonic()
    urls.remove(ready[victim]["url"])
    delivery = await sending
    results = finish(fleet, workers)
    assert handled(results) == {"hung": 1}
    assert delivery.statuses[0] == -1  # the connection died with the process
    assert delivery.delivered
    assert all(result["pid"] != pids[victim] for result in results)
    assert time.monotonic() - killed_at >= 1.0  # not before the first retry


async def test_a_thousand_events_with_duplicates_and_shuffled_retries_are_each_handled_once(
    endpoints: Any, zoom: FakeZoom
) -> None:
    fleet, workers, ready = endpoints
    urls = [message["url"] for message in ready]
    zoom.webhooks.retry_delays = (0.5, 1.0, 2.0)
    rng = random.Random(21)
    events = [(f"ev-{i}", zoom.webhooks.body("meeting.updated", {
        "n": i, **({"fail_once": True} if rng.random() < 0.05 else {}),
    })) for i in range(1000)]
    sends = events + rng.sample(events, 300)  # 30 % delivered twice
    rng.shuffle(sends)
    gate = asyncio.Semaphore(64)

    async def send(request_id: str, body: bytes) -> Any:
        async with gate:
            return await zoom.webhooks.deliver(urls, "", body=body, request_id=request_id)

    began = time.monotonic()
    deliveries = await asyncio.gather(*(send(rid, body) for rid, body in sends))
    elapsed = time.monotonic() - began
    results = finish(fleet, workers)
    counts = handled(results)
    assert len(counts) == 1000, f"lost {1000 - len(counts)} events"
    assert set(counts.values()) == {1}, counts.most_common(3)
    assert all(delivery.delivered for delivery in deliveries)
    assert sum(1 for r in results for _ in r["handled"]) == 1000
    print(f"1000 events + 300 duplicates in {elapsed:.2f} s across {PROCESSES} processes")
    assert os.environ.get("CI") or elapsed < 60


async def test_replay_from_zooms_logs_handles_exactly_the_failed_events_not_yet_handled(
    endpoints: Any, zoom: FakeZoom, store: tuple[str, dict[str, Any]]
) -> None:
    from zoom_s2s import TokenManager, ZoomClient, store_from_url
    from zoom_s2s.webhooks import Receiver, WebhookEvent

    fleet, workers, ready = endpoints
    urls = [message["url"] for message in ready]
    dead = "http://127.0.0.1:1/zoom/events"
    zoom.webhooks.retry_delays = (0.05, 0.05, 0.05)
    delivered = [await zoom.webhooks.deliver(urls, "meeting.created", {"n": i}) for i in range(5)]
    lost = [await zoom.webhooks.deliver(dead, "meeting.updated", {"n": i}) for i in range(3)]
    for i in range(2):  # failed first, then handled on Zoom's retry
        body = zoom.webhooks.body("meeting.ended", {"n": i})
        await zoom.webhooks.send(dead, body, request_id=f"late-{i}")
        await zoom.webhooks.send(urls[i], body, request_id=f"late-{i}", retry_num=1)
    replayed: list[WebhookEvent] = []
    shared = store_from_url(store[0], **store[1])
    try:
        async with TokenManager(zoom.credentials, token_url=zoom.token_url) as tokens, \
                ZoomClient(tokens, base_url=zoom.api_base_url) as client:
            receiver = Receiver(SECRET, store=shared)
            report = await receiver.replay_failed(client, "app", replayed.append)
            again = await receiver.replay_failed(client, "app", replayed.append)
    finally:
        await shared.aclose()
    results = finish(fleet, workers)
    assert sorted(e.request_id or "" for e in replayed) == sorted(d.request_id for d in lost)
    assert (report.handled, report.skipped, report.failed) == (3, 2, 0)
    assert (again.handled, again.skipped) == (0, 5)
    assert set(handled(results)) == {d.request_id for d in delivered} | {"late-0", "late-1"}
