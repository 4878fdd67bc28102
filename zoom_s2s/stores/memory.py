"""The memory backend: token store, rate budget and webhook claims, for one process."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import attrs

from .. import _clock
from ..errors import ConfigurationError
from ..models import AccessToken
from .base import BaseTokenStore, FailureRecord, LockAttempt, LockLease, StoreState, new_owner
from .budget import (
    DAY,
    Bucket,
    Pause,
    Permit,
    RateBudget,
    Tally,
    count_use,
    day_end,
    idle,
    pause_bucket,
    pause_end,
    paused_bucket,
    take_permit,
)
from .claims import ClaimAnswer, Record, WebhookClaims, owned, take_claim

__all__ = ["MemoryClaims", "MemoryRateBudget", "MemoryTokenStore"]


@attrs.define
class _Slot:
    token: AccessToken | None = None
    token_until: float = 0.0  # monotonic: the token's remaining lifetime when written
    generation: int = 0  # highest generation written (the fence)
    issued: int = 0  # highest generation handed out with a lease
    lock_owner: str | None = None
    lock_deadline: float = 0.0  # monotonic
    changed: asyncio.Event | None = None
    failure: FailureRecord | None = None
    failure_written: float = 0.0  # monotonic
    failure_until: float = 0.0  # monotonic


class MemoryTokenStore(BaseTokenStore):
    """Keeps tokens in this process's memory.

    Coroutines of one process share the token; other processes do not see it.
    It is the default store and the fastest; use :class:`FileTokenStore` or
    :class:`RedisTokenStore` to share a token between processes or hosts.
    All its deadlines are on the monotonic clock.
    """

    schemes = ("memory",)
    backend_errors = ()

    def __init__(self) -> None:
        self._slots: dict[str, _Slot] = {}
        #: The rate budget of this process (the memory store shares nothing further).
        self.rate_budget = MemoryRateBudget()
        self.webhook_claims = MemoryClaims()

    @classmethod
    def from_url(cls, url: str, **options: Any) -> MemoryTokenStore:
        """``memory://``: takes no host, path, query or options."""
        if url.strip().lower() != "memory://":
            raise ConfigurationError(f"memory:// takes no host, path or options, got {url!r}")
        if options:
            raise ConfigurationError(
                f"memory:// takes no options, got {', '.join(sorted(options))}"
            )
        return cls()

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
        return slot.lock_owner is not None and _clock.monotonic() < slot.lock_deadline

    def _state(self, slot: _Slot | None) -> StoreState:
        if slot is None:
            return StoreState()
        now = _clock.monotonic()
        token = slot.token
        if token is not None:
            left = slot.token_until - now
            if left <= 0:
                token = slot.token = None
            else:
                # Never later than the writer recorded; earlier if the wall clock stepped.
                expires_at = min(token.expires_ts, _clock.wall() + left)
                if expires_at != token.expires_ts:
                    token = attrs.evolve(token, expires_ts=expires_at)
        failure = slot.failure
        if failure is not None and slot.failure_until <= now:
            failure = slot.failure = None
        elif failure is not None:
            failure = failure.aged(now - slot.failure_written)
        return StoreState(token, failure)

    async def read(self, key: str) -> StoreState:
        return self._state(self._slots.get(key))

    async def acquire_lock(self, key: str, *, ttl: float) -> LockAttempt:
        acquired_at = _clock.monotonic()
        slot = self._slot(key)
        if self._lock_held(slot):
            return LockAttempt(None, self._state(slot))
        owner = new_owner()
        slot.lock_owner = owner
        slot.lock_deadline = acquired_at + ttl
        slot.issued = max(slot.issued, slot.generation) + 1
        lease = LockLease(
            key=key, owner=owner, generation=slot.issued, ttl=ttl, acquired_at=acquired_at
        )
        return LockAttempt(lease, self._state(slot))

    async def write(self, lease: LockLease, token: AccessToken, *, release: bool = False) -> bool:
        slot = self._slot(lease.key)
        if lease.generation < slot.generation:
            return False
        slot.generation = lease.generation
        slot.issued = max(slot.issued, lease.generation)
        left = token.expires_ts - _clock.wall()
        slot.token = token if left > 0 else None
        slot.token_until = _clock.monotonic() + left
        slot.failure = None
        if release and slot.lock_owner == lease.owner:
            slot.lock_owner = None
        self._notify(slot)
        return True

    async def write_failure(
        self, lease: LockLease, failure: FailureRecord, *, keep_for: float
    ) -> None:
        slot = self._slot(lease.key)
        now = _clock.monotonic()
        slot.failure = failure
        slot.failure_written = now
        slot.failure_until = now + max(keep_for, failure.retry_in)

    async def release_lock(self, lease: LockLease) -> bool:
        slot = self._slots.get(lease.key)
        if slot is None or slot.lock_owner != lease.owner or not self._lock_held(slot):
            return False
        slot.lock_owner = None
        self._notify(slot)
        return True

    async def delete(self, key: str, *, fingerprint: str) -> bool:
        slot = self._slots.get(key)
        if slot is None or slot.token is None or slot.token.fingerprint != fingerprint:
            return False
        slot.token = None
        self._notify(slot)
        return True

    async def wait_for_change(self, key: str, *, timeout: float) -> StoreState | None:
        slot = self._slot(key)
        if not self._lock_held(slot):
            return None
        if slot.changed is None:
            slot.changed = asyncio.Event()
        event = slot.changed
        # Never sleep past the lock's own deadline: after it anyone may take over.
        wait = min(timeout, max(0.0, slot.lock_deadline - _clock.monotonic()))
        with contextlib.suppress(asyncio.TimeoutError):
            await _clock.wait_for(event.wait(), wait)
        return None


    async def aclose(self) -> None:
        self._slots.clear()
        self.rate_budget.clear()


class MemoryRateBudget(RateBudget):
    """A :class:`~zoom_s2s.stores.budget.RateBudget` in this process's memory (monotonic clock).

    The memory store's budget, and every process's fallback when its shared
    budget fails or its store has none: it paces this process only.
    """

    _SWEEP_AT = 10_000

    def __init__(self) -> None:
        super().__init__()
        self._buckets: dict[str, Bucket] = {}

    def _bucket(self, key: str, now: float) -> Bucket:
        bucket = self._buckets.get(key)
        if bucket is None:
            if len(self._buckets) >= self._SWEEP_AT:
                self._buckets = {k: b for k, b in self._buckets.items() if not idle(b, now)}
            bucket = self._buckets[key] = Bucket()
        return bucket

    async def _acquire(
        self, key: str, interval: float, burst: int, max_wait: float, cells: int
    ) -> Permit:
        now = _clock.monotonic()
        return take_permit(
            self._bucket(key, now), now, interval=interval, burst=burst, max_wait=max_wait,
            cells=cells,
        )

    async def _pause(
        self, key: str, seconds: float | None, daily: bool, until: float | None
    ) -> Pause:
        now = _clock.monotonic()
        bucket = self._bucket(key, now)
        pause_bucket(bucket, now, pause_end(now, _clock.wall(), seconds, daily, until), daily=daily)
        return paused_bucket(bucket, now)

    async def _paused(self, key: str) -> Pause:
        bucket = self._buckets.get(key)
        return Pause() if bucket is None else paused_bucket(bucket, _clock.monotonic())

    async def _count(self, key: str, limit: int, period: float) -> Tally:
        now = _clock.monotonic()
        wall = _clock.wall()
        end = now + (day_end(wall) - wall if period == DAY else period)
        return count_use(self._bucket(key, now), now, limit=limit, window_end=end)

    async def _notices(self, scope: str) -> dict[str, Pause]:
        now = _clock.monotonic()
        prefix = scope + "."
        return {
            key[len(prefix):]: paused_bucket(bucket, now)
            for key, bucket in self._buckets.items()
            if bucket.until > now and key.startswith(prefix)
        }

    def clear(self) -> None:
        """Forget every bucket."""
        self._buckets.clear()


class MemoryClaims(WebhookClaims):
    """:class:`~zoom_s2s.stores.claims.WebhookClaims` in this process's memory (monotonic clock)."""

    _SWEEP_AT = 10_000

    def __init__(self) -> None:
        super().__init__()
        self._records: dict[str, Record] = {}

    def _live(self) -> tuple[dict[str, Record], float]:
        now = _clock.monotonic()
        if len(self._records) >= self._SWEEP_AT:
            self._records = {k: r for k, r in self._records.items() if r.until > now}
        return self._records, now

    async def _claim(
        self, key: str, owner: str, lease: float, keep: float, order: str | None,
        event_ts: int, drop_stale: bool,
    ) -> ClaimAnswer:
        records, now = self._live()
        return take_claim(records, now, key, owner, lease, keep, order, event_ts, drop_stale)

    async def _extend(self, key: str, owner: str, lease: float) -> bool:
        records, now = self._live()
        held = owned(records, now, key, owner)
        if held is not None:
            held.until = now + lease
        return held is not None

    async def _finish(self, key: str, owner: str, keep: float) -> bool:
        records, now = self._live()
        held = owned(records, now, key, owner)
        if held is not None:
            records[key] = Record(until=now + keep, done=True)
        return held is not None

    async def _release(self, key: str, owner: str) -> bool:
        records, now = self._live()
        held = owned(records, now, key, owner)
        if held is not None:
            del records[key]
        return held is not None
