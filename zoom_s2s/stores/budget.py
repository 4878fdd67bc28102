"""The rate budget: a store's optional capability to pace a fleet's Zoom API calls.

A backend that can share an account's budget between processes gives its
token store a ``rate_budget`` (a :class:`RateBudget`: memory, file, Redis,
PostgreSQL); :func:`rate_budget_of` finds it, through wrappers such as
:class:`~zoom_s2s.EncryptedTokenStore`. A store without one still works: the
limiter then paces each process on its own, with a warning. Backends
subclass :class:`RateBudget`; ``zoom_s2s.testing.RateBudgetContract`` is
their test suite (``docs/stores.rst``).

The algorithm is GCRA (the generic cell rate algorithm; a token bucket kept
as one number): per *bucket* the store keeps the theoretical arrival time
``tat``. A permit is granted at ``max(now, tat - (burst - 1) * interval)``
and moves ``tat`` on by one ``interval``, so callers are spaced
``interval`` apart and at most ``burst`` go at once after a quiet spell.
Every caller *reserves* its slot in one atomic step and then sleeps until
it: nobody polls. A slot further away than ``max_wait`` is not reserved.

Pauses: a per-second 429 with ``Retry-After`` pauses a bucket (no slot before
the pause ends) and shifts every reservation already made by the pause's
length (``shift`` grows by as much), so a caller that wakes from its sleep
and sees ``shift`` changed sleeps that much longer. A *daily* pause grants
nothing until it ends: callers are told at once. A *hold* is a daily pause
on another key (one user and endpoint) checked in the same step.

Keys are ``<scope>.<name>`` (``[A-Za-z0-9_-]``, dot-separated): the scope is
the account. Keys of one scope may be used in one call (``hold``), so a
sharded store keeps a scope on one shard (Redis: one hash tag).

Time is the backend's own clock (Redis ``TIME``; one host's monotonic clock for
the file and memory stores): the clocks of the hosts that share a bucket
never matter. State read back is bounded like any shared input: a ``tat``
or pause more than :data:`MAX_AHEAD` seconds away is corrupt and ignored.
"""

from __future__ import annotations

import contextlib
import math
import re
from collections.abc import Iterator
from typing import Protocol

import attrs

from ..errors import ConfigurationError, StoreError, ZoomS2SError

__all__ = [
    "MAX_AHEAD",
    "MAX_PAUSE",
    "Bucket",
    "Pause",
    "Permit",
    "RateBudget",
    "check_key",
    "idle",
    "pause_bucket",
    "paused_bucket",
    "rate_budget_of",
    "take_permit",
]

MAX_PAUSE = 86_400.0 + 60.0
"""Longest pause a budget accepts, seconds: a daily limit resets within a day."""

MAX_AHEAD = MAX_PAUSE + 3_600.0
"""State further ahead than this (seconds) is corrupt (or from before a reboot): ignored."""

_KEY = re.compile(r"[A-Za-z0-9_-]{1,64}(\.[A-Za-z0-9_-]{1,64}){1,3}")


def check_key(key: str) -> str:
    """``key`` if it is ``<scope>.<name>`` of safe characters; its scope otherwise raises.

    Returns:
        The scope (the part before the first dot).

    Raises:
        ConfigurationError: Not such a key.
    """
    if not isinstance(key, str) or not _KEY.fullmatch(key):
        raise ConfigurationError(
            f"rate-limit key {key!r} must be <scope>.<name>: letters, digits, '_' and '-' "
            "separated by dots"
        )
    return key.split(".", 1)[0]


def _check_permit_args(key: str, interval: float, burst: int, max_wait: float) -> None:
    """Raise :class:`ConfigurationError` unless the arguments of a permit are in range."""
    check_key(key)
    if not (isinstance(interval, (int, float)) and math.isfinite(interval)
            and 1e-6 <= interval <= 86_400):
        raise ConfigurationError(f"interval must be 1 µs to 86400 s, got {interval!r}")
    if isinstance(burst, bool) or not isinstance(burst, int) or not 1 <= burst <= 10_000:
        raise ConfigurationError(f"burst must be an integer from 1 to 10000, got {burst!r}")
    if not (isinstance(max_wait, (int, float)) and math.isfinite(max_wait)
            and 0 <= max_wait <= 86_400):
        raise ConfigurationError(f"max_wait must be 0 to 86400 s, got {max_wait!r}")


def _check_pause(seconds: float) -> float:
    """``seconds`` bounded to ``[0, MAX_PAUSE]``; raise for a non-number."""
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or math.isnan(seconds):
        raise ConfigurationError(f"a pause is a number of seconds, got {seconds!r}")
    return min(MAX_PAUSE, max(0.0, float(seconds)))


@attrs.frozen
class Permit:
    """The answer to one :meth:`RateBudget.acquire_permit`.

    Attributes:
        wait: Seconds from now until the slot; when not granted, until the
            pause or hold ends or the slot would be.
        granted: Whether a slot was reserved (``False``: held by a daily pause
            or a hold, or the slot is more than ``max_wait`` away).
        shift: The bucket's cumulative pause shift, seconds, when the permit
            was taken: compare with :attr:`Pause.shift` after sleeping.
    """

    wait: float
    granted: bool
    shift: float = 0.0


@attrs.frozen
class Pause:
    """The answer to :meth:`RateBudget.paused`.

    Attributes:
        left: Seconds until the pause ends (0: not paused).
        daily: Whether it is a daily-limit pause (callers are refused, not delayed).
        shift: The bucket's cumulative pause shift, seconds.
    """

    left: float = 0.0
    daily: bool = False
    shift: float = 0.0


class _Translator(Protocol):
    """What turns a backend's exceptions into :class:`~zoom_s2s.StoreError`: its token store."""

    @property
    def backend_errors(self) -> tuple[type[BaseException], ...]: ...

    def translate_error(self, exc: BaseException, action: str) -> StoreError: ...


class RateBudget:
    """An account's rate budget shared through a backend: what the limiter asks of a store.

    A backend subclasses it and implements :meth:`_acquire`, :meth:`_pause` and
    :meth:`_paused`, which get checked arguments; an exception of its store's
    ``backend_errors`` becomes the store's :class:`~zoom_s2s.StoreError`
    (:meth:`~zoom_s2s.stores.BaseTokenStore.translate_error`), as for tokens.

    Args:
        store: The token store whose backend keeps the budget (``None``: in memory).
    """

    def __init__(self, store: _Translator | None = None) -> None:
        self._store = store

    async def acquire_permit(
        self,
        key: str,
        *,
        interval: float,
        burst: int,
        max_wait: float,
        hold: str | None = None,
    ) -> Permit:
        """Reserve the next slot of bucket ``key``, atomically, by the backend's clock.

        Args:
            key: ``<scope>.<bucket>``.
            interval: Seconds between two slots.
            burst: Slots that may be granted at once after a quiet spell.
            max_wait: Reserve nothing if the slot is further away than this.
            hold: Another key of the same scope: while it is paused, nothing
                is granted (per-user daily limits).
        """
        _check_permit_args(key, interval, burst, max_wait)
        if hold is not None and check_key(hold) != check_key(key):
            raise ConfigurationError(f"hold {hold!r} is not in the scope of {key!r}")
        with self._translated("taking a rate-limit permit"):
            return await self._acquire(key, interval, burst, max_wait, hold)

    async def pause(self, key: str, seconds: float, *, daily: bool = False) -> None:
        """Grant no slot of ``key`` for ``seconds`` (by the backend's clock); only ever extends.

        A non-daily pause also shifts the reservations already made by its length.
        """
        check_key(key)
        span = _check_pause(seconds)
        with self._translated("pausing a rate-limit bucket"):
            await self._pause(key, span, bool(daily))

    async def paused(self, key: str) -> Pause:
        """Whether ``key`` is paused, for how long, and its cumulative shift."""
        check_key(key)
        with self._translated("reading a rate-limit pause"):
            return await self._paused(key)

    @contextlib.contextmanager
    def _translated(self, action: str) -> Iterator[None]:
        try:
            yield
        except ZoomS2SError:
            raise
        except Exception as exc:
            if self._store is None or not isinstance(exc, self._store.backend_errors):
                raise
            raise self._store.translate_error(exc, action) from exc

    async def _acquire(
        self, key: str, interval: float, burst: int, max_wait: float, hold: str | None
    ) -> Permit:
        raise NotImplementedError

    async def _pause(self, key: str, seconds: float, daily: bool) -> None:
        raise NotImplementedError

    async def _paused(self, key: str) -> Pause:
        raise NotImplementedError


def rate_budget_of(store: object) -> RateBudget | None:
    """The budget ``store`` provides (its ``rate_budget``), or a wrapped store's (``inner``)."""
    while store is not None:
        budget = getattr(store, "rate_budget", None)
        if isinstance(budget, RateBudget):
            return budget
        store = getattr(store, "inner", None)
    return None


# -- the algorithm, for the budgets that run it in Python ---------------------------


@attrs.define
class Bucket:
    """A bucket's state: times on the store's clock, seconds."""

    tat: float = 0.0
    until: float = 0.0
    daily: bool = False
    shift: float = 0.0

    def sane(self, now: float) -> Bucket:
        """This bucket with corrupt values (too far ahead, not finite) dropped."""
        if not math.isfinite(self.tat) or self.tat > now + MAX_AHEAD:
            self.tat = 0.0
        if not math.isfinite(self.until) or self.until > now + MAX_AHEAD:
            self.until, self.daily = 0.0, False
        if not math.isfinite(self.shift) or self.shift < 0:
            self.shift = 0.0
        return self


def take_permit(
    bucket: Bucket,
    now: float,
    *,
    interval: float,
    burst: int,
    max_wait: float,
    hold: Bucket | None = None,
) -> Permit:
    """GCRA: reserve ``bucket``'s next slot at ``now`` (mutates it only when granted)."""
    if hold is not None and hold.until > now:
        return Permit(hold.until - now, False, bucket.shift)
    if bucket.daily and bucket.until > now:
        return Permit(bucket.until - now, False, bucket.shift)
    allow = max(now, bucket.tat - (burst - 1) * interval, bucket.until)
    wait = allow - now
    if wait > max_wait:
        return Permit(wait, False, bucket.shift)
    bucket.tat = max(bucket.tat, allow) + interval
    return Permit(wait, True, bucket.shift)


def pause_bucket(bucket: Bucket, now: float, seconds: float, *, daily: bool) -> bool:
    """Pause ``bucket`` until ``now + seconds`` unless it is paused longer; whether it changed."""
    end = now + seconds
    if end <= bucket.until:
        return False
    if not daily:
        extension = end - max(bucket.until, now)
        bucket.tat = max(bucket.tat, now) + extension
        bucket.shift += extension
    bucket.until, bucket.daily = end, daily
    return True


def paused_bucket(bucket: Bucket, now: float) -> Pause:
    """:class:`Pause` of ``bucket`` at ``now``."""
    left = max(0.0, bucket.until - now)
    return Pause(left, bucket.daily and left > 0, bucket.shift)


def idle(bucket: Bucket, now: float) -> bool:
    """Whether ``bucket`` holds nothing any more (may be forgotten)."""
    return bucket.tat <= now and bucket.until <= now
