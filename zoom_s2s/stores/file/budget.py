"""FileRateBudget: the rate budget of :class:`~zoom_s2s.stores.file.FileTokenStore`.

Files per bucket key (mode 0600, in the store's directory)::

    <key>.rate    {"v": 1, "tat", "until", "daily", "shift"}: the GCRA state
                  (zoom_s2s.stores.budget), padded to a fixed size
    <key>.mutex   flock() guarding its read-modify-write (as for tokens)

Every permit reads and rewrites ``<key>.rate`` under the mutex in a worker
thread, one ``pwrite()`` of a fixed size: a reader never sees a torn record.
Times are the host's monotonic clock, shared by every process of the host; a
record from before a reboot is far "ahead" of the new clock and is ignored
(:data:`~zoom_s2s.stores.budget.MAX_AHEAD`), like any corrupt record.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Protocol, TypeVar

from ...errors import StoreError
from ..budget import (
    DAY,
    Bucket,
    Pause,
    Permit,
    RateBudget,
    Tally,
    count_use,
    day_end,
    pause_bucket,
    pause_end,
    paused_bucket,
    take_permit,
)

__all__ = ["FileRateBudget"]

logger = logging.getLogger("zoom_s2s.stores.file")

_SIZE = 160  # bytes: a record is at most ~110


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


_T = TypeVar("_T")


class _Directory(Protocol):
    """What the budget uses of its :class:`~zoom_s2s.stores.file.FileTokenStore`."""

    @property
    def backend_errors(self) -> tuple[type[BaseException], ...]: ...

    def translate_error(self, exc: BaseException, action: str) -> StoreError: ...

    def _path(self, key: str, suffix: str) -> Path: ...

    def _ensure_dir(self) -> None: ...

    def _read_private(self, path: Path) -> bytes | None: ...

    async def _run(self, function: Callable[[], _T]) -> _T: ...

    async def _locked(self, key: str, body: Callable[[], _T]) -> _T: ...


class FileRateBudget(RateBudget):
    """Buckets in the store's directory: one locked read-modify-write per permit.

    Args:
        store: The file store whose directory, mutexes and private files it uses.
        write_in_place: The store's fixed-size in-place writer (handed in: the
            store's module imports this one, never the reverse).
    """

    def __init__(
        self, store: _Directory, write_in_place: Callable[[Path, bytes, int], None]
    ) -> None:
        super().__init__(store)
        self._files = store
        self._write_in_place = write_in_place

    def _load(self, key: str, now: float) -> Bucket:
        path = self._files._path(key, ".rate")
        return _parse(self._files._read_private(path), path).sane(now)

    def _save(self, key: str, bucket: Bucket) -> None:
        """Overwrite ``<key>.rate`` in place with one fixed-size ``pwrite()`` (under the mutex)."""
        record = {
            "v": 1,
            "tat": bucket.tat,
            "until": bucket.until,
            "daily": bucket.daily,
            "shift": bucket.shift,
        }
        data = json.dumps(record, separators=(",", ":")).encode()
        self._write_in_place(self._files._path(key, ".rate"), data, _SIZE)

    async def _acquire(
        self, key: str, interval: float, burst: int, max_wait: float, cells: int
    ) -> Permit:
        def body() -> Permit:
            now = time.monotonic()
            bucket = self._load(key, now)
            permit = take_permit(
                bucket, now, interval=interval, burst=burst, max_wait=max_wait, cells=cells
            )
            if permit.granted:
                self._save(key, bucket)
            return permit

        return await self._files._locked(key, body)

    async def _pause(
        self, key: str, seconds: float | None, daily: bool, until: float | None
    ) -> Pause:
        def body() -> Pause:
            now = time.monotonic()
            bucket = self._load(key, now)
            end = pause_end(now, time.time(), seconds, daily, until)
            if pause_bucket(bucket, now, end, daily=daily):
                self._save(key, bucket)
            return paused_bucket(bucket, now)

        return await self._files._locked(key, body)

    async def _count(self, key: str, limit: int, period: float) -> Tally:
        def body() -> Tally:
            now, wall = time.monotonic(), time.time()
            bucket = self._load(key, now)
            end = now + (day_end(wall) - wall if period == DAY else period)
            tally = count_use(bucket, now, limit=limit, window_end=end)
            if tally.granted:
                self._save(key, bucket)
            return tally

        return await self._files._locked(key, body)

    async def _notices(self, scope: str) -> dict[str, Pause]:
        def body() -> dict[str, Pause]:
            self._files._ensure_dir()
            now = time.monotonic()
            found = {}
            directory = self._files._path(f"{scope}.x", ".rate").parent
            for path in directory.glob(f"{scope}.*.rate"):
                key = path.name[: -len(".rate")]
                pause = paused_bucket(self._load(key, now), now)
                if pause.left > 0:
                    found[key[len(scope) + 1:]] = pause
            return found

        return await self._files._run(body)

    async def _paused(self, key: str) -> Pause:
        def body() -> Pause:  # a read: no mutex
            self._files._ensure_dir()
            now = time.monotonic()
            return paused_bucket(self._load(key, now), now)

        return await self._files._run(body)
