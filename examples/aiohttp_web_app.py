"""An aiohttp web app sharing one Zoom token across all its requests (and workers).

Run it (against the fake Zoom: ``zoom-s2s fake-server`` prints the variables)::

    export ZOOM_ACCOUNT_ID=... ZOOM_CLIENT_ID=... ZOOM_CLIENT_SECRET=...
    export ZOOM_S2S_STORE=file:///var/lib/myapp/zoom   # or redis://...; default memory://
    python examples/aiohttp_web_app.py                 # then: curl localhost:8000/me

Optional: ZOOM_TOKEN_URL and ZOOM_API_URL point it at another Zoom (ZoomGov, a fake).
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator

from aiohttp import web

from zoom_s2s import DEFAULT_TOKEN_URL, Credentials, TokenManager, ZoomS2SError
from zoom_s2s.client import DEFAULT_API_URL, ZoomClient

ZOOM = web.AppKey("zoom", ZoomClient)


async def zoom_ctx(app: web.Application) -> AsyncIterator[None]:
    """Create the token manager and the client at startup; close them at cleanup."""
    async with (
        TokenManager(
            Credentials.from_env(),
            store=os.environ.get("ZOOM_S2S_STORE", "memory://"),
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


def create_app() -> web.Application:
    """The application: one ZoomClient for the app's lifetime, a /me route."""
    app = web.Application()
    app.cleanup_ctx.append(zoom_ctx)
    app.router.add_get("/me", me)
    return app


if __name__ == "__main__":
    web.run_app(create_app(), port=int(os.environ.get("PORT", "8000")))
