"""A loopback HTTP server that records the Authorization header of every request it gets.

For the requests/httpx adapter tests: one plays the API's origin (it answers,
redirects or refuses as told), another on a different host (127.0.0.2, also
loopback on Linux) plays a foreign origin a redirect points at.

Also the fixtures both adapter test modules share (``tokens``, ``api``,
``foreign``): each module imports them by name, so pytest finds them there.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from aiohttp import web

from zoom_s2s.sync import SyncTokenManager
from zoom_s2s.testing import FakeZoom

from ..support import FAST_RETRY

__all__ = ["INVALID", "Origin", "api", "foreign", "running", "tokens"]

# Zoom's reply to an expired or revoked token (code 124), as the API sends it.
INVALID = {"code": 124, "message": "Invalid access token."}


class Origin:
    """Records ``(path, Authorization or None)`` and answers from a table of canned replies.

    Attributes:
        seen: Every request's path and Authorization header, in order.
        bodies: Every request's body, in order.
        replies: Per path: ``("redirect", url)``, ``("json", status, body)``.
            Unknown paths get 200 ``{"ok": true}``.
        next_answers: ``(status, body)`` answers for the next requests, whatever
            their path, before ``replies``.
    """

    def __init__(self, host: str = "127.0.0.1") -> None:
        self.host = host
        self.port = 0
        self.seen: list[tuple[str, str | None]] = []
        self.bodies: list[bytes] = []
        self.replies: dict[str, tuple[Any, ...]] = {}
        self.next_answers: list[tuple[int, object]] = []

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def authorizations(self) -> list[str | None]:
        return [auth for _path, auth in self.seen]

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        self.seen.append((request.path, request.headers.get("Authorization")))
        self.bodies.append(await request.read())
        if self.next_answers:
            status, body = self.next_answers.pop(0)
            return web.json_response(body, status=status)
        reply = self.replies.get(request.path)
        if reply is None:
            return web.json_response({"ok": True, "path": request.path})
        if reply[0] == "redirect":
            raise web.HTTPFound(location=reply[1])
        _kind, status, body = reply
        return web.Response(status=status, text=json.dumps(body), content_type="application/json")


@contextlib.contextmanager
def running(origin: Origin) -> Iterator[Origin]:
    """Serve ``origin`` from a thread of its own until the block ends."""
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", origin._handle)
    loop = asyncio.new_event_loop()
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    started = threading.Event()

    def serve() -> None:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(runner.setup())
        site = web.TCPSite(runner, origin.host, 0)
        loop.run_until_complete(site.start())
        server: Any = site._server
        origin.port = server.sockets[0].getsockname()[1]
        started.set()
        loop.run_forever()
        loop.run_until_complete(runner.cleanup())
        loop.close()

    thread = threading.Thread(target=serve, name=f"origin-{origin.host}", daemon=True)
    thread.start()
    if not started.wait(10):
        raise RuntimeError(f"the test origin on {origin.host} did not start")
    try:
        yield origin
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)


@pytest.fixture
def tokens(zoom: FakeZoom) -> Iterator[SyncTokenManager]:
    """A SyncTokenManager on the ``zoom`` fixture, retrying without waiting."""
    with SyncTokenManager(zoom.credentials, token_url=zoom.token_url, retry=FAST_RETRY) as sync:
        yield sync


@pytest.fixture
def api() -> Iterator[Origin]:
    """An origin on 127.0.0.1 that plays the API's host."""
    with running(Origin("127.0.0.1")) as origin:
        yield origin


@pytest.fixture
def foreign() -> Iterator[Origin]:
    """An origin on 127.0.0.2: a host the token must never reach."""
    with running(Origin("127.0.0.2")) as origin:
        yield origin
