"""Celery (prefork) tasks sharing one Zoom token through the blocking facade.

Celery tasks are synchronous and prefork workers are forked processes:
:mod:`zoom_s2s.sync` runs the async machinery on a private event-loop thread
per process and rebuilds it after ``fork()``, so the objects below can be
created at import time, in the parent, and used in every child. Share the
token between the children with ZOOM_S2S_STORE=file:///dir (one host) or
redis://... (many hosts).

Run it with ``celery -A examples.celery_app worker`` after setting
ZOOM_ACCOUNT_ID, ZOOM_CLIENT_ID, ZOOM_CLIENT_SECRET, ZOOM_S2S_STORE,
CELERY_BROKER_URL and optionally ZOOM_TOKEN_URL and ZOOM_API_URL. Needs
``pip install zoom-s2s[examples]``.
"""

from __future__ import annotations

import functools
import os

from celery import Celery

from zoom_s2s import DEFAULT_TOKEN_URL, Credentials
from zoom_s2s.client import DEFAULT_API_URL
from zoom_s2s.sync import SyncTokenManager, SyncZoomClient

app = Celery("zoom_example", broker=os.environ.get("CELERY_BROKER_URL", "memory://"))


@functools.cache
def zoom() -> SyncZoomClient:
    """The process's Zoom client, made on first use (from the environment)."""
    tokens = SyncTokenManager(
        Credentials.from_env(),
        store=os.environ.get("ZOOM_S2S_STORE", "memory://"),
        token_url=os.environ.get("ZOOM_TOKEN_URL", DEFAULT_TOKEN_URL),
    )
    return SyncZoomClient(tokens, os.environ.get("ZOOM_API_URL", DEFAULT_API_URL))


@app.task
def user_email(user_id: str = "me") -> str | None:
    """Look a user up and return the email address."""
    return zoom().get_user(user_id).email
