"""The rate-limit capability of :class:`~zoom_s2s.stores.file.FileTokenStore`.

Files per bucket key (mode 0600, in the store's directory)::

    <key>.rate    {"v": 1, "tat", "until", "daily", "shift"}: the GCRA state
                  (zoom_s2s.ratelimit.store), padded to a fixed size
    <key>.mutex   flock() guarding its read-modify-write (as for tokens)

Every permit reads and rewrites ``<key>.rate`` under the mutex in a worker
thread, one ``pwrite()`` of a fixed size: a reader never sees a torn record.
Times are the host's monotonic clock, shared by every process of the host; a
record from before a reboot is far "ahead" of the new clock and is ignored
(:data:`~zoom_s2s.ratelimit.store.MAX_AHEAD`), like any corrupt record.
A hold (per-user daily limit) is read without its mutex: one record, written
whole.
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING

from ..ratelimit.store import (
    Bucket,
    Pause,
    Permit,
    check_key,
    check_pause,
    check_permit_args,
    pause_bucket,
    paused_bucket,
    take_permit,
)
from . import file as _file  # a cycle: file.py imports this module; used at call time

if TYPE_CHECKING:
    from .file import FileTokenStore

__all__ = ["acquire_permit", "pause", "paused"]

logger = logging.getLogger("zoom_s2s.stores.file")

_SIZE = 160  # bytes: a record is at most ~110
_O_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_O_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)


def _parse(data: bytes | None, path: Path) -> Bucket:
    if data is None or not data.strip():
        return Bucket()
    try:
        raw = json.loads(data)
        if not isinstance(raw, dict) or raw.get("v") != 1:
            raise ValueError("not a zoom-s2s rate record (version 1)")
        numbers = [raw.get(name) for name in ("tat", "until", "shift")]
        if not all(
            isinstance(n, (int, float)) and not isinstance(n, bool) and math.isfinite(n)
            for n in numbers
        ):
            raise ValueError("tat, until or shift is not a finite number")
        daily = raw.get("daily")
        if not isinstance(daily, bool):
            raise ValueError("daily is not a boolean")
    except (ValueError, RecursionError) as exc:
        logger.warning("ignoring unreadable %s (%s)", path, exc)
        return Bucket()
    tat, until, shift = (float(n) for n in numbers)  # type: ignore[arg-type]
    return Bucket(tat=tat, until=until, daily=daily, shift=shift)


def _load(store: FileTokenStore, key: str, now: float) -> Bucket:
    path = store._path(key, ".rate")
    return _parse(store._read_private(path), path).sane(now)


def _save(store: FileTokenStore, key: str, bucket: Bucket) -> None:
    """Overwrite ``<key>.rate`` in place with one fixed-size ``pwrite()`` (under the mutex)."""
    path = store._path(key, ".rate")
    record = {
        "v": 1,
        "tat": bucket.tat,
        "until": bucket.until,
        "daily": bucket.daily,
        "shift": bucket.shift,
    }
    _file.write_in_place(path, json.dumps(record, separators=(",", ":")).encode(), _SIZE)


async def acquire_permit(
    store: FileTokenStore,
    key: str,
    *,
    interval: float,
    burst: int,
    max_wait: float,
    hold: str | None = None,
) -> Permit:
    """:meth:`RateLimitStore.acquire_permit` on the file store (one locked read-modify-write)."""
    check_permit_args(key, interval, burst, max_wait)
    if hold is not None:
        check_key(hold)

    def body() -> Permit:
        now = time.monotonic()
        held = None if hold is None else _load(store, hold, now)
        bucket = _load(store, key, now)
        permit = take_permit(
            bucket, now, interval=interval, burst=burst, max_wait=max_wait, hold=held
        )
        if permit.granted:
            _save(store, key, bucket)
        return permit

    return await store._locked(key, body)


async def pause(store: FileTokenStore, key: str, seconds: float, *, daily: bool = False) -> None:
    """:meth:`RateLimitStore.pause` on the file store."""
    check_key(key)
    seconds = check_pause(seconds)

    def body() -> None:
        now = time.monotonic()
        bucket = _load(store, key, now)
        if pause_bucket(bucket, now, seconds, daily=daily):
            _save(store, key, bucket)

    await store._locked(key, body)


async def paused(store: FileTokenStore, key: str) -> Pause:
    """:meth:`RateLimitStore.paused` on the file store (a read; no mutex)."""
    check_key(key)

    def body() -> Pause:
        store._ensure_dir()
        now = time.monotonic()
        return paused_bucket(_load(store, key, now), now)

    return await store._run(body)
