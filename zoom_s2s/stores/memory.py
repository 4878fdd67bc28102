"""MemoryTokenStore: a dict and asyncio primitives, for one process."""

from __future__ import annotations

import asyncio
import contextlib
import time

import attrs

from ..models import AccessToken
from .base import FailureRecord, LockLease, new_owner

__all__ = ["MemoryTokenStore"]


@attrs.define
class _Slot:
    token: AccessToken | None = None
    generation: int = 0  # highest generation written (the fence)
    issued: int = 0  # highest generation handed out
    lock_owner: str | None = None
    lock_deadline: float = 0.0  # monotonic
    changed: asyncio.Event | None = None
    failure: FailureRecord | None = None
    failure_until: float = 0.0  # wall clock


class MemoryTokenStore:
    """Keeps tokens in this process's memory.

    Coroutines of one process share the token; other processes do not see it.
    It is the default store and the fastest; use :class:`FileTokenStore` or
    :class:`RedisTokenStore` to share a token between processes or hosts.
    """

    def __init__(self) -> None:
        self._slots: dict[str, _Slot] = {}

    @property
    def name(self) -> str:
        return "memory://"

    def __repr__(self) -> str:
        return f"MemoryTokenStore(keys={len(self._slots)})"

    def _slot(self, key: str) -> _Slot:
        slot = self._slots.get(key)
        if slot is None:
            slot = self._slots[key] = _Slot()
        return slot

    def _notify(self, slot: _Slot) -> None:
        if slot.changed is not None:
            slot.changed.set()
            slot.changed = None

    def _lock_held(self, slot: _Slot) -> bool:
        return slot.lock_owner is not None and time.monotonic() < slot.lock_deadline

    async def read(self, key: str) -> AccessToken | None:
        slot = self._slots.get(key)
        if slot is None or slot.token is None:
            return None
        if slot.token.expires_at <= time.time():
            slot.token = None
            return None
        return slot.token

    async def write(self, key: str, token: AccessToken, *, generation: int) -> bool:
        slot = self._slot(key)
        if generation < slot.generation:
            return False
        slot.generation = generation
        slot.issued = max(slot.issued, generation)
        slot.token = token if token.expires_at > time.time() else None
        self._notify(slot)
        return True

    async def delete(self, key: str, *, fingerprint: str) -> bool:
        slot = self._slots.get(key)
        if slot is None or slot.token is None or slot.token.fingerprint != fingerprint:
            return False
        slot.token = None
        self._notify(slot)
        return True

    async def next_generation(self, key: str) -> int:
        slot = self._slot(key)
        slot.issued += 1
        return slot.issued

    async def acquire_lock(self, key: str, *, ttl: float) -> LockLease | None:
        slot = self._slot(key)
        if self._lock_held(slot):
            return None
        owner = new_owner()
        slot.lock_owner = owner
        slot.lock_deadline = time.monotonic() + ttl
        return LockLease(key=key, owner=owner, ttl=ttl)

    async def release_lock(self, lease: LockLease) -> bool:
        slot = self._slots.get(lease.key)
        if slot is None or slot.lock_owner != lease.owner or not self._lock_held(slot):
            return False
        slot.lock_owner = None
        self._notify(slot)
        return True

    async def wait_for_change(self, key: str, *, timeout: float) -> None:
        slot = self._slot(key)
        if not self._lock_held(slot):
            return
        if slot.changed is None:
            slot.changed = asyncio.Event()
        event = slot.changed
        # Never sleep past the lock's own deadline: after it anyone may take over.
        wait = min(timeout, max(0.0, slot.lock_deadline - time.monotonic()))
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(event.wait(), wait)

    async def read_failure(self, key: str) -> FailureRecord | None:
        slot = self._slots.get(key)
        if slot is None or slot.failure is None or slot.failure_until <= time.time():
            return None
        return slot.failure

    async def write_failure(self, key: str, failure: FailureRecord | None) -> None:
        slot = self._slot(key)
        slot.failure = failure
        if failure is not None:
            now = time.time()
            slot.failure_until = now + failure.keep_for(now)

    async def aclose(self) -> None:
        self._slots.clear()
