"""A minimal token store for docs/stores.rst: a dict standing in for a key-value backend.

Records are kept as bytes with a time to live, the way Redis, memcached or a
database table would keep them. Every step that must be atomic is free of
``await`` here; a real backend does each in one transaction or script.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

from zoom_s2s.models import AccessToken
from zoom_s2s.stores import BaseTokenStore, FailureRecord, LockAttempt, LockLease, StoreState
from zoom_s2s.stores.base import decode_record, encode_record, new_owner

logger = logging.getLogger(__name__)


class DictTokenStore(BaseTokenStore):
    """Tokens in a dict of ``name -> (bytes, monotonic deadline)``; one process only."""

    schemes = ("dict",)  # store_from_url("dict://") builds one
    backend_errors = (OSError,)  # what the backend raises when it fails: becomes StoreError

    def __init__(self) -> None:
        self._data: dict[str, tuple[bytes, float]] = {}
        self._changed: dict[str, asyncio.Event] = {}

    @classmethod
    def from_url(cls, url: str, **options: Any) -> DictTokenStore:
        return cls()

    @property
    def name(self) -> str:
        return "dict://"

    # -- the "backend": get/set/delete with a TTL ------------------------------------

    def _get(self, name: str) -> tuple[bytes, float] | None:
        value, deadline = self._data.get(name, (b"", 0.0))
        left = deadline - time.monotonic()
        return (value, left) if left > 0 else None

    def _set(self, name: str, value: bytes, ttl: float = 1e9) -> None:
        self._data[name] = (value, time.monotonic() + ttl)

    def _wake(self, key: str) -> None:
        self._changed.pop(key, asyncio.Event()).set()

    def _number(self, name: str) -> int:
        found = self._get(name)
        return int(found[0]) if found else 0

    # -- the protocol ----------------------------------------------------------------

    def _token(self, key: str) -> AccessToken | None:
        found = self._get(f"{key}:token")
        if found is None:
            return None
        try:
            token, _ = decode_record(found[0])
        except ValueError as exc:  # bad data is a miss with a warning, never an error
            logger.warning("unreadable token record for %s (%s); ignoring it", key, exc)
            return None
        return token  # the TTL ended it on time; expires_at is as written, never later

    def _failure(self, key: str) -> FailureRecord | None:
        found = self._get(f"{key}:failure")
        if found is None:
            return None
        try:  # aged by this store's clock: the time to live it has left
            return FailureRecord.from_json(found[0], ttl_left=found[1])
        except ValueError as exc:
            logger.warning("unreadable failure record for %s (%s); ignoring it", key, exc)
            return None

    async def read(self, key: str) -> StoreState:
        # One round trip on a real backend: token and failure record together.
        return StoreState(self._token(key), self._failure(key))

    async def acquire_lock(self, key: str, *, ttl: float) -> LockAttempt:
        acquired_at = time.monotonic()  # before the request: the lease errs early
        if self._get(f"{key}:lock") is not None:
            return LockAttempt(None, await self.read(key))
        owner = new_owner()
        # Atomic with taking the lock: above every generation handed out or written.
        generation = max(self._number(f"{key}:issued"), self._number(f"{key}:fence")) + 1
        self._set(f"{key}:lock", owner.encode(), ttl)
        self._set(f"{key}:issued", str(generation).encode())
        lease = LockLease(
            key=key, owner=owner, generation=generation, ttl=ttl, acquired_at=acquired_at
        )
        # In the same step as the lock: the state the holder decides on.
        return LockAttempt(lease, await self.read(key))

    async def write(self, lease: LockLease, token: AccessToken, *, release: bool = False) -> bool:
        key = lease.key
        if lease.generation < self._number(f"{key}:fence"):
            return False  # a successor already wrote: change nothing
        self._set(f"{key}:fence", str(lease.generation).encode())
        lifetime = token.expires_ts - time.time()
        if lifetime > 0:
            self._set(f"{key}:token", encode_record(token, lease.generation), lifetime)
        self._data.pop(f"{key}:failure", None)
        if release:  # in the same step, as release_lock() would
            lock = self._get(f"{key}:lock")
            if lock is not None and lock[0] == lease.owner.encode():
                del self._data[f"{key}:lock"]
        self._wake(key)
        return True

    async def write_failure(
        self, lease: LockLease, failure: FailureRecord, *, keep_for: float
    ) -> None:
        ttl = max(keep_for, failure.retry_in)
        self._set(f"{lease.key}:failure", failure.to_json(keep_for=ttl).encode(), ttl)

    async def release_lock(self, lease: LockLease) -> bool:
        found = self._get(f"{lease.key}:lock")
        if found is None or found[0] != lease.owner.encode():
            return False
        del self._data[f"{lease.key}:lock"]
        self._wake(lease.key)
        return True

    async def delete(self, key: str, *, fingerprint: str) -> bool:
        token = self._token(key)
        if token is None or token.fingerprint != fingerprint:
            return False
        del self._data[f"{key}:token"]
        self._wake(key)
        return True

    async def wait_for_change(self, key: str, *, timeout: float) -> None:
        lock = self._get(f"{key}:lock")
        if lock is None:
            return
        event = self._changed.setdefault(key, asyncio.Event())
        with contextlib.suppress(asyncio.TimeoutError):  # never past the lock's own TTL
            await asyncio.wait_for(event.wait(), min(timeout, lock[1]))

    async def aclose(self) -> None:
        self._data.clear()
