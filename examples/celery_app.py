"""Celery (prefork) tasks sharing one Zoom token through the blocking facade.

Celery tasks are synchronous and prefork workers are forked processes:
:mod:`zoom_s2s.sync` runs the async machinery on a private event-loop thread
per process and rebuilds it after ``fork()``, so the objects below can be
created at import time, in the parent, and used in every child.

Run a worker from any directory (``pip install 'zoom-s2s[examples]'``)::

    export ZOOM_ACCOUNT_ID=... ZOOM_CLIENT_ID=... ZOOM_CLIENT_SECRET=...
    export CELERY_BROKER_URL=redis://localhost:6379/0 CELERY_RESULT_BACKEND=redis://localhost:6379/1
    celery --workdir path/to/zoom-s2s/examples -A celery_app worker --pool prefork --concurrency 4

The children share the token through ``ZOOM_S2S_STORE`` (``redis://...``
across hosts); by default a per-user directory that needs no root:
``$XDG_RUNTIME_DIR/zoom-s2s``, else ``~/.cache/zoom-s2s``. Optional:
ZOOM_TOKEN_URL and ZOOM_API_URL.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path

from celery import Celery

from zoom_s2s import Credentials
from zoom_s2s.client import DEFAULT_API_URL
from zoom_s2s.oauth import DEFAULT_TOKEN_URL
from zoom_s2s.sync import SyncTokenManager, SyncZoomClient

app = Celery(
    "zoom_example",
    broker=os.environ.get("CELERY_BROKER_URL", "redis://localhost:6379/0"),
    backend=os.environ.get("CELERY_RESULT_BACKEND"),
)


def default_store() -> str:
    """A per-user token directory, no root needed: $XDG_RUNTIME_DIR or ~/.cache."""
    base = os.environ.get("XDG_RUNTIME_DIR") or Path.home() / ".cache"
    return Path(base, "zoom-s2s").as_uri()


@functools.cache
def zoom() -> SyncZoomClient:
    """The process's Zoom client, made on first use (from the environment)."""
    tokens = SyncTokenManager(
        Credentials.from_env(),
        store=os.environ.get("ZOOM_S2S_STORE") or default_store(),
        token_url=os.environ.get("ZOOM_TOKEN_URL", DEFAULT_TOKEN_URL),
    )
    return SyncZoomClient(tokens, os.environ.get("ZOOM_API_URL", DEFAULT_API_URL))


@app.task
def user_email(user_id: str = "me") -> str | None:
    """Look a user up and return the email address."""
    return zoom().get_user(user_id).email
