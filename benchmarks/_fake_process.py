"""FakeZoom in a spawned child process, for benchmarks whose own process must stay clean.

The API-overhead benchmark wants the server's CPU off the client's core, and
the memory benchmark must not count the fake's growing list of issued tokens
in its RSS. ``with fake_zoom_process(expires_in=...) as fake:`` gives the
URLs and credentials; the counters come back in ``fake.counters`` on exit.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import attrs

from tests.harness.fleet import Fleet, WorkerContext
from zoom_s2s import Credentials

__all__ = ["FakeZoomProcess", "fake_zoom_process", "serve"]


@attrs.define
class FakeZoomProcess:
    """Where the child's fake listens, and (after exit) its counters."""

    url: str
    credentials: Credentials
    counters: dict[str, int] = attrs.field(factory=dict)

    @property
    def token_url(self) -> str:
        return f"{self.url}/oauth/token"

    @property
    def api_base_url(self) -> str:
        return f"{self.url}/v2"


async def serve(worker: WorkerContext) -> dict[str, int]:
    """A fleet workload: serve a FakeZoom until the parent opens the gate; its counters.

    The option ``qps`` (requests per second by category) makes the fake enforce
    and report those rates (:class:`~zoom_s2s.testing.FakeRateLimits`).
    """
    from zoom_s2s.testing import FakeRateLimits, FakeZoom

    options = dict(worker.options)
    qps = options.pop("qps", None)
    if qps is not None:
        options["rate_limits"] = FakeRateLimits(qps=qps)
    async with FakeZoom(**options) as fake:
        creds = fake.credentials
        await worker.gate(
            url=fake.url,
            credentials=[creds.account_id, creds.client_id, creds.client_secret],
        )
        return {
            "token_requests": fake.token_requests,
            "tokens_issued": fake.tokens_issued,
            "api_requests": fake.api_requests,
            "api_unauthorized": fake.api_unauthorized,
        }


@contextlib.contextmanager
def fake_zoom_process(**options: Any) -> Iterator[FakeZoomProcess]:
    """Serve a :class:`~zoom_s2s.testing.FakeZoom` (``options`` as its arguments) from a child."""
    with Fleet(timeout=600.0) as fleet:
        worker = fleet.spawn(serve, options, name="bench-fake-zoom")
        ready = worker.expect("gate", 30)
        fake = FakeZoomProcess(ready["url"], Credentials(*ready["credentials"]))
        yield fake
        fleet.go([worker], delay=0)
        fake.counters = worker.result(10)
