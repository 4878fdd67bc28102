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
ZOOM_TOKEN_URL and ZOOM_API_URL, ZOOM_S2S_ENCRYPTION_KEYS.

Routes: ``GET /me`` and ``GET /ready`` (readiness: 200 with the manager's
stats while Zoom's API answered this worker within the last ``READY_FOR``
seconds, 503 with the reason otherwise).
"""

from __future__ import annotations

import os
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI, HTTPException, Request

from zoom_s2s import TokenManager, ZoomClient, ZoomS2SError

READY_FOR = 60.0
"""Seconds an API success keeps /ready at 200: at most one probe call per worker this often."""


def default_store() -> str:
    """A per-user token directory, no root needed: $XDG_RUNTIME_DIR or ~/.cache."""
    base = os.environ.get("XDG_RUNTIME_DIR") or Path.home() / ".cache"
    return Path(base, "zoom-s2s").as_uri()


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """One token manager and client for the app's lifetime."""
    async with (
        TokenManager.from_env(store=default_store()) as tokens,  # $ZOOM_S2S_STORE wins
        ZoomClient(tokens) as zoom,  # $ZOOM_API_URL or Zoom's API
    ):
        app.state.zoom = zoom
        app.state.ready_until = 0.0
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
    """200 while Zoom's API answers this worker (a readiness probe), else 503.

    A token that Zoom's token endpoint issued may still be refused by the API
    (revoked, the app deactivated): readiness is a real API answer, taken at
    most every ``READY_FOR`` seconds.
    """
    state = request.app.state
    zoom: ZoomClient = state.zoom
    if time.monotonic() >= state.ready_until:
        try:
            await zoom.get_user("me")
        except ZoomS2SError as exc:
            state.ready_until = 0.0
            raise HTTPException(status_code=503, detail=str(exc)) from exc
        state.ready_until = time.monotonic() + READY_FOR
    stats = zoom.tokens.stats()
    return {
        "pid": os.getpid(),
        "fetches": stats.fetches,
        "adoptions": stats.adoptions,
        "expires_in": stats.expires_in,
    }
