"""FakeZoom in a spawned child process, for benchmarks whose own process must stay clean.

The API-overhead benchmark wants the server's CPU off the client's core, and
the memory benchmark must not count the fake's growing list of issued tokens
in its RSS. ``with fake_zoom_process(expires_in=...) as fake:`` gives the
URLs and credentials; the counters come back in ``fake.counters`` on exit.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import multiprocessing.connection
import signal
from collections.abc import Iterator
from typing import Any

import attrs

from zoom_s2s import Credentials

from ._fleet import _die_with_parent

__all__ = ["FakeZoomProcess", "fake_zoom_process"]


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


def _serve(conn: multiprocessing.connection.Connection, options: dict[str, Any]) -> None:
    _die_with_parent()
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    from zoom_s2s.testing import FakeZoom

    async def main() -> None:
        async with FakeZoom(**options) as fake:
            creds = fake.credentials
            conn.send((fake.url, creds.account_id, creds.client_id, creds.client_secret))
            loop = asyncio.get_running_loop()
            stop = asyncio.Event()
            loop.add_reader(conn.fileno(), stop.set)
            await stop.wait()
            loop.remove_reader(conn.fileno())
            counters = {
                "token_requests": fake.token_requests,
                "tokens_issued": fake.tokens_issued,
                "api_requests": fake.api_requests,
                "api_unauthorized": fake.api_unauthorized,
            }
        conn.send(counters)

    asyncio.run(main())


@contextlib.contextmanager
def fake_zoom_process(**options: Any) -> Iterator[FakeZoomProcess]:
    """Serve a :class:`~zoom_s2s.testing.FakeZoom` (``options`` as its arguments) from a child."""
    context = multiprocessing.get_context("spawn")
    parent_end, child_end = context.Pipe()
    proc = context.Process(
        target=_serve, args=(child_end, options), name="bench-fake-zoom", daemon=True
    )
    proc.start()
    child_end.close()
    try:
        if not parent_end.poll(30):
            raise RuntimeError("the fake Zoom process did not start within 30 s")
        url, account_id, client_id, secret = parent_end.recv()
        fake = FakeZoomProcess(url, Credentials(account_id, client_id, secret))
        yield fake
        parent_end.send("stop")
        if parent_end.poll(10):
            fake.counters = parent_end.recv()
    finally:
        with contextlib.suppress(OSError, ValueError):
            parent_end.send("stop")  # also on errors; a second one is harmless
        proc.join(5)
        if proc.is_alive():
            proc.terminate()
            proc.join(5)
        if proc.is_alive():
            proc.kill()
            proc.join(5)
        parent_end.close()
