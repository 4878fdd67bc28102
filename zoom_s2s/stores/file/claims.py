"""FileClaims: the webhook claims of :class:`~zoom_s2s.stores.file.FileTokenStore`.

One file per claim or order mark (mode 0600, in the store's directory)::

    wh.<key>.claim   {"v": 1, "until", "owner", "done", "newest"}, padded to a fixed size
    webhooks.mutex   flock() guarding every claim step (a claim may touch two files)

Times are the host's monotonic clock, shared by every process of the host; a
record from before a reboot lies far "ahead" of the new clock and counts as
lapsed, like any unreadable record. Lapsed files are swept every few hundred
claims.
"""

from __future__ import annotations

import json
import logging
import math
import os
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from ... import _clock
from ..claims import MAX_KEEP, ClaimAnswer, Record, WebhookClaims, owned, take_claim
from .budget import _Directory

__all__ = ["FileClaims"]

logger = logging.getLogger("zoom_s2s.stores.file")

_SIZE = 320  # bytes: a record is at most ~240
_MUTEX = "webhooks"
_SWEEP_EVERY = 256
_T = TypeVar("_T")


def _parse(data: bytes | None, now: float) -> Record | None:
    if data is None or not data.strip():
        return None
    try:
        raw = json.loads(data)
        until, newest = raw["until"], raw["newest"]
        if (
            raw.get("v") != 1 or not isinstance(raw["owner"], str)
            or not isinstance(raw["done"], bool)
            or not isinstance(until, (int, float)) or not math.isfinite(until)
            or isinstance(newest, bool) or not isinstance(newest, int)
        ):
            raise ValueError("not a zoom-s2s claim record (version 1)")
    except (ValueError, TypeError, KeyError, RecursionError):
        return None
    if until > now + MAX_KEEP:  # from before a reboot, or planted
        return None
    return Record(until=float(until), owner=raw["owner"], done=raw["done"], newest=newest)


class FileClaims(WebhookClaims):
    """Claims in the store's directory: one locked step per call.

    Args:
        store: The file store whose directory, mutexes and private files it uses.
        write_in_place: The store's fixed-size in-place writer.
    """

    def __init__(
        self, store: _Directory, write_in_place: Callable[[Path, bytes, int], None]
    ) -> None:
        super().__init__(store)
        self._files = store
        self._write_in_place = write_in_place
        self._claims = 0

    def _path(self, key: str) -> Path:
        return self._files._path(f"wh.{key}", ".claim")

    def _load(self, keys: tuple[str, ...], now: float) -> dict[str, Record]:
        records = {}
        for key in keys:
            record = _parse(self._files._read_private(self._path(key)), now)
            if record is not None and record.until > now:
                records[key] = record
        return records

    def _save(self, key: str, record: Record) -> None:
        data = json.dumps(
            {"v": 1, "until": record.until, "owner": record.owner, "done": record.done,
             "newest": record.newest},
            separators=(",", ":"),
        ).encode()
        self._write_in_place(self._path(key), data, _SIZE)

    def _sweep(self, now: float) -> None:
        directory = self._path("x").parent
        for name in os.listdir(directory):
            if name.startswith("wh.") and name.endswith(".claim"):
                path = directory / name
                record = _parse(self._files._read_private(path), now)
                if record is None or record.until <= now:
                    path.unlink(missing_ok=True)

    async def _step(
        self, keys: tuple[str, ...], change: Callable[[dict[str, Record], float], _T]
    ) -> _T:
        def body() -> _T:
            now = _clock.monotonic()
            records = self._load(keys, now)
            before = {key: (r.until, r.owner, r.done, r.newest) for key, r in records.items()}
            answer = change(records, now)
            for key in keys:
                record = records.get(key)
                if record is None and key in before:
                    self._path(key).unlink(missing_ok=True)
                elif record is not None and before.get(key) != (
                    record.until, record.owner, record.done, record.newest
                ):
                    self._save(key, record)
            return answer

        return await self._files._locked(_MUTEX, body)

    async def _claim(
        self, key: str, owner: str, lease: float, keep: float, order: str | None,
        event_ts: int, drop_stale: bool,
    ) -> ClaimAnswer:
        self._claims += 1
        if self._claims % _SWEEP_EVERY == 0:
            await self._files._locked(_MUTEX, lambda: self._sweep(_clock.monotonic()))
        return await self._step(
            (key,) if order is None else (key, order),
            lambda records, now: take_claim(
                records, now, key, owner, lease, keep, order, event_ts, drop_stale
            ),
        )

    async def _extend(self, key: str, owner: str, lease: float) -> bool:
        def change(records: dict[str, Record], now: float) -> bool:
            held = owned(records, now, key, owner)
            if held is not None:
                held.until = now + lease
            return held is not None

        return await self._step((key,), change)

    async def _finish(self, key: str, owner: str, keep: float) -> bool:
        def change(records: dict[str, Record], now: float) -> bool:
            held = owned(records, now, key, owner)
            if held is not None:
                records[key] = Record(until=now + keep, done=True)
            return held is not None

        return await self._step((key,), change)

    async def _release(self, key: str, owner: str) -> bool:
        def change(records: dict[str, Record], now: float) -> bool:
            held = owned(records, now, key, owner)
            if held is not None:
                del records[key]
            return held is not None

        return await self._step((key,), change)
