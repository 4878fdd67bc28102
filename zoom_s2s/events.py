"""Instrumentation: what the token manager did, as one frozen record type handed to hooks.

A hook is any callable taking a :class:`TokenEvent`. By default the manager
uses :func:`log_event`, which logs every event at DEBUG on the ``zoom_s2s``
logger. Pass ``hooks=[...]`` to :class:`~zoom_s2s.TokenManager` to replace
that (include :func:`log_event` to keep logging). Events carry fingerprints,
never a token or a secret, so hooks may log or export them freely.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Callable

import attrs

__all__ = ["EventKind", "TokenEvent", "TokenHook", "TokenStats", "log_event"]

logger = logging.getLogger("zoom_s2s")


class EventKind(str, enum.Enum):
    """What happened."""

    FETCHED = "fetched"
    """This process fetched a new token from Zoom."""
    ADOPTED = "adopted"
    """This process took a token that another process (or an earlier run) stored."""
    REFRESH_STARTED = "refresh_started"
    """A background refresh began while the current token was still valid."""
    WAITED = "waited"
    """A caller had no valid token and waited for one."""
    LOCK_WAITED = "lock_waited"
    """This process waited for another process that held the store's lock."""
    INVALIDATED = "invalidated"
    """A token was invalidated (after a 401)."""
    STALE_WRITE = "stale_write"
    """A fetched token was not stored: a newer generation was already written."""
    REFRESH_FAILED = "refresh_failed"
    """Getting a token failed; ``error`` says why. Callers without a valid token
    got the error raised; with one (``expires_in`` above 0) they keep being served."""
    STORE_ERROR = "store_error"
    """The store failed and the manager went on without it (served, or fetched,
    a token anyway); ``error`` says why. A store failure raised to callers is a
    ``REFRESH_FAILED``."""


@attrs.frozen
class TokenEvent:
    """One event of a :class:`~zoom_s2s.TokenManager`.

    Attributes:
        kind: What happened.
        store_key: The manager's store key (a hash of token URL, account and client id).
        store: The store's name (no passwords).
        token_fingerprint: Fingerprint of the token concerned, if any.
        expires_in: Seconds the token concerned had left, if any.
        duration: Seconds the operation took (fetch, wait), if measured.
        error: ``"ClassName: message"`` of a failure (messages never hold secrets).
    """

    kind: EventKind
    store_key: str
    store: str
    token_fingerprint: str | None = None
    expires_in: float | None = None
    duration: float | None = None
    error: str | None = None


TokenHook = Callable[[TokenEvent], None]


@attrs.frozen
class TokenStats:
    """A snapshot of a manager's counters, for health endpoints and tests.

    Attributes:
        last_used: When ``get_token()`` last answered from memory, on the
            library's monotonic clock (``time.monotonic()``), or ``None``:
            ``time.monotonic() - last_used`` is how long the manager has been
            idle. (Calls answered from memory are not counted: a count cost a
            tenth of that path.)
        fetches: Tokens this process fetched from Zoom.
        adoptions: Tokens this process took from the store (fetched elsewhere).
        background_refreshes: Refreshes started while a valid token existed.
        waits: Callers that had to wait for a token.
        lock_waits: Times this process waited for another process's lock.
        invalidations: Calls to :meth:`TokenManager.invalidate`.
        failures: Refreshes that failed.
        token_fingerprint: Fingerprint of the token in memory, if any.
        expires_in: Seconds that token has left, if any.
    """

    last_used: float | None
    fetches: int
    adoptions: int
    background_refreshes: int
    waits: int
    lock_waits: int
    invalidations: int
    failures: int
    token_fingerprint: str | None
    expires_in: float | None


def log_event(event: TokenEvent) -> None:
    """The default hook: log ``event`` on the ``zoom_s2s`` logger.

    A failure nobody else hears of is a WARNING: a store error the manager
    worked around, a refresh that failed while a valid token is still served.
    Everything else is DEBUG, failures raised to a caller included: the caller
    reports those, so one failure is not told twice.
    """
    swallowed = event.kind is EventKind.STORE_ERROR or (
        event.kind is EventKind.REFRESH_FAILED and (event.expires_in or 0.0) > 0
    )
    level = logging.WARNING if swallowed else logging.DEBUG
    if not logger.isEnabledFor(level):
        return
    parts = [f"token {event.kind.value}", f"key={event.store_key}", f"store={event.store}"]
    if event.token_fingerprint is not None:
        parts.append(f"token_fp={event.token_fingerprint}")
    if event.expires_in is not None:
        parts.append(f"expires_in={event.expires_in:.1f}s")
    if event.duration is not None:
        parts.append(f"took={event.duration * 1000:.1f}ms")
    if event.error is not None:
        parts.append(f"error={event.error}")
    logger.log(level, " ".join(parts))
