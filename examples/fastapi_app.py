"""A FastAPI app sharing one Zoom token, set up in the lifespan.

Run it with ``uvicorn examples.fastapi_app:app`` after setting ZOOM_ACCOUNT_ID,
ZOOM_CLIENT_ID, ZOOM_CLIENT_SECRET and optionally ZOOM_S2S_STORE (``memory://``
by default; ``file:///dir`` or ``redis://...`` to share between workers),
ZOOM_TOKEN_URL and ZOOM_API_URL. Needs ``pip install zoom-s2s[examples]``.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, HTTPException, Request

from zoom_s2s import DEFAULT_TOKEN_URL, Credentials, TokenManager, ZoomS2SError
from zoom_s2s.client import DEFAULT_API_URL, ZoomClient


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """One token manager and client for the app's lifetime."""
    async with (
        TokenManager(
            Credentials.from_env(),
            store=os.environ.get("ZOOM_S2S_STORE", "memory://"),
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
