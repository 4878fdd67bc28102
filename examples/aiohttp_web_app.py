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
ZOOM_TOKEN_URL and ZOOM_API_URL point it at another Zoom (ZoomGov, a fake).

Routes: ``GET /me`` (the app's creating user) and ``GET /ready`` (readiness:
200 with the manager's stats once a token is at hand, 503 otherwise).
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

from aiohttp import web

from zoom_s2s import Credentials, TokenManager, ZoomS2SError
from zoom_s2s.client import DEFAULT_API_URL, ZoomClient
from zoom_s2s.oauth import DEFAULT_TOKEN_URL

ZOOM = web.AppKey("zoom", ZoomClient)


def default_store() -> str:
    """A per-user token directory, no root needed: $XDG_RUNTIME_DIR or ~/.cache."""
    base = os.environ.get("XDG_RUNTIME_DIR") or Path.home() / ".cache"
    return Path(base, "zoom-s2s").as_uri()


async def zoom_ctx(app: web.Application) -> AsyncIterator[None]:
    """Create the token manager and the client at startup; close them at cleanup."""
    async with (
        TokenManager(
            Credentials.from_env(),
            store=os.environ.get("ZOOM_S2S_STORE") or default_store(),
            token_url=os.environ.get("ZOOM_TOKEN_URL", DEFAULT_TOKEN_URL),
        ) as tokens,
        ZoomClient(tokens, os.environ.get("ZOOM_API_URL", DEFAULT_API_URL)) as zoom,
    ):
        app[ZOOM] = zoom
        yield


async def me(request: web.Request) -> web.Response:
    """GET /me: the app's creating user, as Zoom returns it."""
    try:
        user = await request.app[ZOOM].get_user("me")
    except ZoomS2SError as exc:
        raise web.HTTPBadGateway(text=str(exc)) from exc
    return web.json_response(dict(user.raw))


async def ready(request: web.Request) -> web.Response:
    """GET /ready: 200 once this process has a token (readiness probe), else 503."""
    tokens = request.app[ZOOM].tokens
    try:
        await tokens.get_token()  # warm: a dict read; cold: the fleet's one fetch
    except ZoomS2SError as exc:
        raise web.HTTPServiceUnavailable(text=str(exc)) from exc
    stats = tokens.stats()
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
