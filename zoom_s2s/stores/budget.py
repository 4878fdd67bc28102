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
A *lease* reserves ``cells`` consecutive slots in that one step: the limiter
spends them in its process with no further I/O (``docs/rate-limits.rst``).

Pauses: a per-second 429 with ``Retry-After`` pauses a bucket (no slot before
the pause ends) and shifts every reservation already made by the pause's
length (``shift`` grows by as much), so a caller that wakes from its sleep
and sees ``shift`` changed sleeps that much longer. A *daily* pause grants
nothing until it ends: callers are told at once.

A *counter* (the quota ledger: daily caps per endpoint, user or host) is a
key whose ``tat`` is the end of its window and whose ``shift`` is the uses
counted in it; :meth:`RateBudget.count` takes one use or refuses.
:meth:`RateBudget.notices` lists a scope's keys paused right now, in one read.

Keys are ``<scope>.<name>`` (``[A-Za-z0-9_-]``, dot-separated): the scope is
the account. A sharded store keeps a scope on one shard (Redis: one hash
tag), so a scope's notices live beside its buckets.

Time is the backend's own clock (Redis ``TIME``, PostgreSQL
``clock_timestamp()``; one host's clocks for the file and memory stores):
the clocks of the hosts that share a bucket never matter, and a daily block
without Zoom's ``Retry-After`` ends at the next 00:00 UTC by that clock,
never more than a day away. State read back is bounded like any shared
input: a ``tat`` or pause more than :data:`MAX_AHEAD` seconds away is
corrupt and ignored.
"""

from __future__ import annotations

import math
import re

import attrs

from ..errors import ConfigurationError
from .base import Capability

__all__ = [
    "DAY",
    "DAY_SLACK",
    "MAX_AHEAD",
    "MAX_CELLS",
    "MAX_PAUSE",
    "Bucket",
    "Pause",
    "Permit",
    "RateBudget",
    "Tally",
    "check_key",
    "count_use",
    "day_end",
    "idle",
    "pause_bucket",
    "pause_end",
    "paused_bucket",
    "rate_budget_of",
    "take_permit",
]

DAY = 86_400.0
"""A counter's period that means "the UTC day": it resets at 00:00 UTC."""

DAY_SLACK = 60.0
"""Seconds a daily pause may outlast the backend's next 00:00 UTC (Zoom's clock may differ)."""

MAX_CELLS = 100_000
"""Most slots one lease may reserve."""

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


def _check_permit_args(
    key: str, interval: float, burst: int, max_wait: float, cells: int = 1
) -> None:
    """Raise :class:`ConfigurationError` unless the arguments of a permit are in range."""
    check_key(key)
    if isinstance(cells, bool) or not isinstance(cells, int) or not 1 <= cells <= MAX_CELLS:
        raise ConfigurationError(f"cells must be an integer from 1 to {MAX_CELLS}, got {cells!r}")
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


def day_end(wall: float) -> float:
    """The next 00:00 UTC after Unix time ``wall``."""
    return (math.floor(wall / DAY) + 1) * DAY


@attrs.frozen
class Permit:
    """The answer to one :meth:`RateBudget.acquire_permit`.

    Attributes:
        wait: Seconds from now until the slot; when not granted, until the
            daily pause ends or the slot would be.
        granted: Whether a slot was reserved (``False``: held by a daily pause
            or the slot is more than ``max_wait`` away).
        shift: The bucket's cumulative pause shift, seconds, when the permit
            was taken: compare with :attr:`Pause.shift` after sleeping.
    """

    wait: float
    granted: bool
    shift: float = 0.0
    ahead: float = 0.0
    """Seconds from now to the theoretical time of the first reserved slot (GCRA's
    ``tat`` before the lease): the later slots follow it ``interval`` apart."""


@attrs.frozen
class Tally:
    """The answer to :meth:`RateBudget.count`.

    Attributes:
        granted: Whether the use was counted (``False``: the cap is reached or
            the key is blocked by a daily pause).
        left: Seconds until the window resets (or the block ends).
        remaining: Uses left in the window after this one.
    """

    granted: bool
    left: float
    remaining: int


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


class RateBudget(Capability):
    """An account's rate budget shared through a backend: what the limiter asks of a store.

    A backend subclasses it and implements :meth:`_acquire`, :meth:`_pause` and
    :meth:`_paused`, which get checked arguments; an exception of its store's
    ``backend_errors`` becomes the store's :class:`~zoom_s2s.errors.StoreError`
    (:meth:`~zoom_s2s.stores.BaseTokenStore.translate_error`), as for tokens.

    Args:
        store: The token store whose backend keeps the budget (``None``: in memory).
    """

    attribute = "rate_budget"

    async def acquire_permit(
        self,
        key: str,
        *,
        interval: float,
        burst: int,
        max_wait: float,
        cells: int = 1,
    ) -> Permit:
        """Reserve the next ``cells`` slots of bucket ``key``, atomically, by the backend's clock.

        Args:
            key: ``<scope>.<bucket>``.
            interval: Seconds between two slots.
            burst: Slots that may be granted at once after a quiet spell.
            max_wait: Reserve nothing if the first slot is further away than this.
            cells: Slots to reserve (a lease), ``interval`` apart from
                :attr:`Permit.ahead`.
        """
        _check_permit_args(key, interval, burst, max_wait, cells)
        with self._translated("taking a rate-limit permit"):
            return await self._acquire(key, interval, burst, max_wait, cells)

    async def pause(
        self,
        key: str,
        seconds: float | None = None,
        *,
        daily: bool = False,
        until: float | None = None,
    ) -> Pause:
        """Grant no slot of ``key`` for a while (by the backend's clock); only ever extends.

        A non-daily pause also shifts the reservations already made by its length.

        Args:
            key: ``<scope>.<name>``.
            seconds: How long from now.
            daily: A daily limit: callers are refused, not delayed.
            until: Instead of ``seconds``: the Unix time it ends (Zoom's
                ``Retry-After``), read against the backend's clock. With
                neither, a daily pause ends at the next 00:00 UTC by the
                backend's clock; it never lasts more than :data:`DAY_SLACK`
                beyond that.

        Returns:
            The key's pause after this one.
        """
        check_key(key)
        if seconds is not None and until is not None:
            raise ConfigurationError("pause() takes seconds or until, not both")
        if until is not None and not (
            isinstance(until, (int, float)) and not isinstance(until, bool)
            and math.isfinite(until)
        ):
            raise ConfigurationError(f"until is a Unix time, got {until!r}")
        if seconds is None and until is None and not daily:
            raise ConfigurationError("a pause that is not daily needs seconds or until")
        span = None if seconds is None else _check_pause(seconds)
        with self._translated("pausing a rate-limit bucket"):
            return await self._pause(key, span, bool(daily), until)

    async def paused(self, key: str) -> Pause:
        """Whether ``key`` is paused, for how long, and its cumulative shift."""
        check_key(key)
        with self._translated("reading a rate-limit pause"):
            return await self._paused(key)

    async def count(self, key: str, *, limit: int, period: float = DAY) -> Tally:
        """Count one use of counter ``key`` unless ``limit`` uses were counted in its window.

        Args:
            key: ``<scope>.<name>`` (not a bucket's key).
            limit: Uses a window allows.
            period: The window, seconds from its first use; :data:`DAY`: the
                UTC day (resets at 00:00 UTC by the backend's clock).
        """
        check_key(key)
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= 10**9:
            raise ConfigurationError(f"limit must be an integer from 1 to 1e9, got {limit!r}")
        if not (isinstance(period, (int, float)) and 1 <= period <= DAY):
            raise ConfigurationError(f"period must be 1 to 86400 s, got {period!r}")
        with self._translated("counting a rate-limit quota"):
            return await self._count(key, limit, float(period))

    async def notices(self, scope: str) -> dict[str, Pause]:
        """The keys of ``scope`` paused right now (by name below the scope), in one read."""
        check_key(f"{scope}.x")
        with self._translated("reading rate-limit notices"):
            return await self._notices(scope)

    async def _acquire(
        self, key: str, interval: float, burst: int, max_wait: float, cells: int
    ) -> Permit:
        raise NotImplementedError

    async def _pause(
        self, key: str, seconds: float | None, daily: bool, until: float | None
    ) -> Pause:
        raise NotImplementedError

    async def _paused(self, key: str) -> Pause:
        raise NotImplementedError

    async def _count(self, key: str, limit: int, period: float) -> Tally:
        raise NotImplementedError

    async def _notices(self, scope: str) -> dict[str, Pause]:
        raise NotImplementedError


def rate_budget_of(store: object) -> RateBudget | None:
    """The budget ``store`` provides (its ``rate_budget``), or a wrapped store's (``inner``)."""
    return RateBudget.of(store)


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
    cells: int = 1,
) -> Permit:
    """GCRA: reserve ``bucket``'s next ``cells`` slots at ``now`` (mutates it only when granted)."""
    if bucket.daily and bucket.until > now:
        return Permit(bucket.until - now, False, bucket.shift)
    allow = max(now, bucket.tat - (burst - 1) * interval, bucket.until)
    wait = allow - now
    if wait > max_wait:
        return Permit(wait, False, bucket.shift)
    first = max(bucket.tat, allow)
    bucket.tat = first + cells * interval
    return Permit(wait, True, bucket.shift, first - now)


def pause_end(now: float, wall: float, seconds: float | None, daily: bool,
              until: float | None) -> float:
    """When a pause asked at ``now`` (``wall``: the same moment in Unix time) ends."""
    if until is not None:
        end = now + (until - wall)
    elif seconds is not None:
        end = now + seconds
    else:
        end = now + (day_end(wall) - wall)
    return min(end, now + (day_end(wall) - wall) + DAY_SLACK) if daily else end


def pause_bucket(bucket: Bucket, now: float, end: float, *, daily: bool) -> bool:
    """Pause ``bucket`` until ``end`` unless it is paused longer; whether it changed."""
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


def count_use(bucket: Bucket, now: float, *, limit: int, window_end: float) -> Tally:
    """Count one use of the counter ``bucket`` (mutates it only when granted).

    ``window_end``: when a window opened now would end.
    """
    if bucket.daily and bucket.until > now:
        return Tally(False, bucket.until - now, 0)
    if bucket.tat <= now:
        bucket.tat, bucket.shift = window_end, 0.0
    if bucket.shift + 1 > limit:
        return Tally(False, bucket.tat - now, 0)
    bucket.shift += 1
    return Tally(True, bucket.tat - now, max(0, int(limit - bucket.shift)))


def idle(bucket: Bucket, now: float) -> bool:
    """Whether ``bucket`` holds nothing any more (may be forgotten)."""
    return bucket.tat <= now and bucket.until <= now
