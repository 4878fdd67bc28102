"""An aiohttp web app sharing one Zoom token across all its requests and workers.

Run it from any directory (``pip install 'zoom-s2s[examples]'``; to try it
without Zoom, ``zoom-s2s fake-server`` prints the variables to export)::

    export ZOOM_ACCOUNT_ID=... ZOOM_CLIENT_ID=... ZOOM_CLIENT_SECRET=...
    gunicorn --chdir path/to/zoom-s2s/examples -k aiohttp.GunicornWebWorker \\
        -w 4 -b 127.0.0.1:8000 'aiohttp_web_app:create_app()'
    curl localhost:8000/me

or ``python path/to/zoom-s2s/examples/aiohttp_web_app.py`` (one process).
gunicorn needs the aiohttp worker class and the factory *called*
(``create_app()``): gunicorn's default worker speaks WSGI, not aiohttp.

The workers share the token through ``ZOOM_S2S_STORE`` (``redis://...``
across hosts); by default a per-user directory that needs no root:
``$XDG_RUNTIME_DIR/zoom-s2s``, else ``~/.cache/zoom-s2s``. Optional:
ZOOM_TOKEN_URL and ZOOM_API_URL point it at another Zoom (ZoomGov, a fake),
ZOOM_S2S_ENCRYPTION_KEYS encrypts the stored token.

Routes: ``GET /me`` (the app's creating user) and ``GET /ready`` (readiness:
200 with the manager's stats while Zoom's API answered this worker within
the last ``READY_FOR`` seconds, 503 with the reason otherwise).
"""

from __future__ import annotations

import os
import time
from collections.abc import AsyncIterator
from pathlib import Path

from aiohttp import web

from zoom_s2s import TokenManager, ZoomClient, ZoomS2SError

READY_FOR = 60.0
"""Seconds an API success keeps /ready at 200: at most one probe call per worker this often."""

ZOOM = web.AppKey("zoom", ZoomClient)
READY_UNTIL = web.AppKey("ready_until", list)  # [monotonic time]


def default_store() -> str:
    """A per-user token directory, no root needed: $XDG_RUNTIME_DIR or ~/.cache."""
    base = os.environ.get("XDG_RUNTIME_DIR") or Path.home() / ".cache"
    return Path(base, "zoom-s2s").as_uri()


async def zoom_ctx(app: web.Application) -> AsyncIterator[None]:
    """Create the token manager and the client at startup; close them at cleanup."""
    async with (
        TokenManager.from_env(store=default_store()) as tokens,  # $ZOOM_S2S_STORE wins
        ZoomClient(tokens) as zoom,  # $ZOOM_API_URL or Zoom's API
    ):
        app[ZOOM] = zoom
        app[READY_UNTIL] = [0.0]
        yield


async def me(request: web.Request) -> web.Response:
    """GET /me: the app's creating user, as Zoom returns it."""
    try:
        user = await request.app[ZOOM].get_user("me")
    except ZoomS2SError as exc:
        raise web.HTTPBadGateway(text=str(exc)) from exc
    return web.json_response(dict(user.raw))


async def ready(request: web.Request) -> web.Response:
    """GET /ready: 200 while Zoom's API answers this worker (readiness probe), else 503.

    A token that Zoom's token endpoint issued may still be refused by the API
    (revoked, the app deactivated): readiness is a real API answer, taken at
    most every ``READY_FOR`` seconds.
    """
    zoom, until = request.app[ZOOM], request.app[READY_UNTIL]
    if time.monotonic() >= until[0]:
        try:
            await zoom.get_user("me")
        except ZoomS2SError as exc:
            until[0] = 0.0
            raise web.HTTPServiceUnavailable(text=str(exc)) from exc
        until[0] = time.monotonic() + READY_FOR
    stats = zoom.tokens.stats()
    return web.json_response(
        {
            "pid": os.getpid(),
            "fetches": stats.fetches,
            "adoptions": stats.adoptions,
            "expires_in": stats.expires_in,
        }
    )


def create_app() -> web.Application:
    """The application: one ZoomClient for the app's lifetime, /me and /ready."""
    app = web.Application()
    app.cleanup_ctx.append(zoom_ctx)
    app.router.add_get("/me", me)
    app.router.add_get("/ready", ready)
    return app


if __name__ == "__main__":
    web.run_app(create_app(), port=int(os.environ.get("PORT", "8000")))
