"""A FastAPI app sharing one Zoom token, set up in the lifespan.

Run it from any directory (``pip install 'zoom-s2s[examples]'``)::

    export ZOOM_ACCOUNT_ID=... ZOOM_CLIENT_ID=... ZOOM_CLIENT_SECRET=...
    uvicorn --app-dir path/to/zoom-s2s/examples --workers 4 \\
        --host 127.0.0.1 --port 8000 fastapi_app:app

or under gunicorn with uvicorn's worker class (the ``uvicorn-worker``
package; ``uvicorn.workers.UvicornWorker`` is its deprecated old name)::

    gunicorn --chdir path/to/zoom-s2s/examples -k uvicorn_worker.UvicornWorker \\
        -w 4 -b 127.0.0.1:8000 fastapi_app:app

The workers share the token through ``ZOOM_S2S_STORE`` (``redis://...``
across hosts); by default a per-user directory that needs no root:
``$XDG_RUNTIME_DIR/zoom-s2s``, else ``~/.cache/zoom-s2s``. Optional:
ZOOM_TOKEN_URL and ZOOM_API_URL.

Routes: ``GET /me`` and ``GET /ready`` (readiness, with the manager's stats).
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI, HTTPException, Request

from zoom_s2s import Credentials, TokenManager, ZoomS2SError
from zoom_s2s.client import DEFAULT_API_URL, ZoomClient
from zoom_s2s.oauth import DEFAULT_TOKEN_URL


def default_store() -> str:
    """A per-user token directory, no root needed: $XDG_RUNTIME_DIR or ~/.cache."""
    base = os.environ.get("XDG_RUNTIME_DIR") or Path.home() / ".cache"
    return Path(base, "zoom-s2s").as_uri()


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """One token manager and client for the app's lifetime."""
    async with (
        TokenManager(
            Credentials.from_env(),
            store=os.environ.get("ZOOM_S2S_STORE") or default_store(),
            token_url=os.environ.get("ZOOM_TOKEN_URL", DEFAULT_TOKEN_URL),
        ) as tokens,
        ZoomClient(tokens, os.environ.get("ZOOM_API_URL", DEFAULT_API_URL)) as zoom,
    ):
        app.state.zoom = zoom
        yield


app = FastAPI(lifespan=lifespan)


@app.get("/me")
async def me(request: Request) -> dict[str, Any]:
    """The app's creating user, as Zoom returns it."""
    zoom: ZoomClient = request.app.state.zoom
    try:
        user = await zoom.get_user("me")
    except ZoomS2SError as exc:
        raise HTTPException(status_code=502, detail=str(exc)) from exc
    return dict(user.raw)


@app.get("/ready")
async def ready(request: Request) -> dict[str, Any]:
    """200 once this process has a token (a readiness probe), else 503."""
    tokens: TokenManager = request.app.state.zoom.tokens
    try:
        await tokens.get_token()
    except ZoomS2SError as exc:
        raise HTTPException(status_code=503, detail=str(exc)) from exc
    stats = tokens.stats()
    return {
        "pid": os.getpid(),
        "fetches": stats.fetches,
        "adoptions": stats.adoptions,
        "expires_in": stats.expires_in,
    }
