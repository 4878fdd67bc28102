"""An arq worker whose jobs share one Zoom token through Redis.

Run workers from any directory (on as many hosts as you like)::

    pip install 'zoom-s2s[redis]' 'arq>=0.25'     # arq pins redis<6: its own environment
    export ZOOM_ACCOUNT_ID=... ZOOM_CLIENT_ID=... ZOOM_CLIENT_SECRET=...
    export REDIS_URL=redis://localhost:6379/0
    PYTHONPATH=path/to/zoom-s2s/examples arq arq_worker.WorkerSettings

REDIS_URL is arq's queue and, unless ZOOM_S2S_STORE says otherwise, the
token store too: every worker process on every host shares one token.
Optional: ZOOM_TOKEN_URL and ZOOM_API_URL. arq requires ``redis<6``, so give
it an environment of its own (zoom-s2s works with redis-py 5 and newer);
``[examples]`` leaves arq out for that reason.
"""

from __future__ import annotations

import os
from typing import Any

from arq.connections import RedisSettings

from zoom_s2s import Credentials, TokenManager
from zoom_s2s.client import DEFAULT_API_URL, ZoomClient
from zoom_s2s.oauth import DEFAULT_TOKEN_URL

REDIS_URL = os.environ.get("REDIS_URL", "redis://localhost:6379/0")


async def startup(ctx: dict[str, Any]) -> None:
    """Put a token manager and a client in the worker's context."""
    tokens = TokenManager(
        Credentials.from_env(),
        store=os.environ.get("ZOOM_S2S_STORE", REDIS_URL),
        token_url=os.environ.get("ZOOM_TOKEN_URL", DEFAULT_TOKEN_URL),
    )
    ctx["zoom_tokens"] = tokens
    ctx["zoom"] = ZoomClient(tokens, os.environ.get("ZOOM_API_URL", DEFAULT_API_URL))


async def shutdown(ctx: dict[str, Any]) -> None:
    """Close the client, then the manager."""
    await ctx["zoom"].aclose()
    await ctx["zoom_tokens"].aclose()


async def user_email(ctx: dict[str, Any], user_id: str = "me") -> str | None:
    """A job: look a user up and return the email address."""
    zoom: ZoomClient = ctx["zoom"]
    return (await zoom.get_user(user_id)).email


class WorkerSettings:
    """``arq examples.arq_worker.WorkerSettings``."""

    functions = (user_email,)
    on_startup = startup
    on_shutdown = shutdown
    redis_settings = RedisSettings.from_dsn(REDIS_URL)
