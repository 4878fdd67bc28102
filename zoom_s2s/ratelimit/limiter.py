"""RateLimiter: one permit per request, from a budget the fleet shares through its store.

What a client does around each request::

    category = limiter.category(method, path, override)
    await limiter.acquire(category, method=method, path=path)   # sleeps until the slot
    ...send...
    limiter.observe(...)                                        # 429s, headers, learning

Where the budget lives: the token manager's store's ``rate_budget``
(:func:`~zoom_s2s.stores.rate_budget_of`: memory, file, Redis, PostgreSQL,
encrypted over those); without one, and whenever it fails, a
:class:`~zoom_s2s.stores.memory.MemoryRateBudget` in this process, with a
warning: pacing degrades to per-process pacing, never to "no requests".
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, TypeVar

from .. import _clock
from ..errors import ConfigurationError, DailyLimitExceededError, RateLimitedError, StoreError
from ..models import fingerprint
from ..oauth import parse_retry_after
from ..stores.budget import Pause, Permit, RateBudget, rate_budget_of
from ..stores.memory import MemoryRateBudget
from .categories import CategoryTable
from .headers import (
    RateLimitInfo,
    is_daily_message,
    is_per_user_message,
    next_utc_midnight,
    rate_limit_info,
)
from .limits import Category, RateLimits, category_name

if TYPE_CHECKING:
    from ..manager import TokenManager

__all__ = ["RateLimiter", "rate_scope"]

logger = logging.getLogger("zoom_s2s.ratelimit")

_T = TypeVar("_T")

_STORE_RETRY = 5.0  # seconds of per-process pacing after a store error before asking it again
_RECHECK_AFTER = 0.02  # a caller that slept longer asks whether a pause came meanwhile
_MAX_RECHECKS = 4
_QPS_PAUSE = 1.0  # a per-second 429 without Retry-After: Zoom's window is one second


def rate_scope(token_url: str, account_id: str) -> str:
    """The scope of an account's buckets: a hash of the token URL and the account id.

    Every app of one account shares it (Zoom's limits are per account); the
    client id and the secret are not part of it.
    """
    return "rate-" + fingerprint("zoom-s2s rate limits", token_url, account_id)


class RateLimiter:
    """Paces requests per account and category through a shared store.

    Args:
        limits: The rates.
        store: The token store (its rate budget, if it has one, is shared).
        scope: The account's scope (:func:`rate_scope`).
        name: The store's name, for messages.
    """

    def __init__(self, limits: RateLimits, store: object, *, scope: str, name: str = "") -> None:
        self.limits = limits
        self.scope = scope
        self.categories = CategoryTable(limits.default_category)
        self._name = name or type(store).__name__
        self._fleet: RateBudget | None = rate_budget_of(store)
        self._local = MemoryRateBudget()
        self._fleet_down_until = 0.0  # monotonic
        # Daily limits this process knows of: key -> (monotonic end, reset moment).
        self._blocked: dict[str, tuple[float, dt.datetime]] = {}
        self.permits = 0
        self.waited = 0.0
        self.held_back = 0
        if self._fleet is None:
            logger.warning(
                "token store %s has no rate budget to share; each process paces itself "
                "(the fleet may exceed the account's limits %s)",
                self._name,
                "by the number of processes",
            )

    @classmethod
    def for_manager(cls, limits: RateLimits, tokens: TokenManager) -> RateLimiter:
        """The limiter for the account ``tokens`` fetches tokens for, on its store."""
        return cls(
            limits,
            tokens.store,
            scope=rate_scope(tokens.token_url, tokens.credentials.account_id),
            name=tokens.store.name,
        )

    def __repr__(self) -> str:
        where = self._name if self._fleet is not None else "this process"
        return f"RateLimiter({self.limits!r}, shared in {where})"

    @property
    def shared(self) -> bool:
        """Whether permits come from the shared store right now (not per-process fallback)."""
        return self._budget() is not self._local

    # -- keys -----------------------------------------------------------------

    def category(self, method: str, path: str, override: str | None = None) -> Category:
        """The category of a request: ``override``, the table, what answers said, the default."""
        if override is not None:
            named = category_name(override)
            if named is None:
                raise ConfigurationError(
                    f"rate_category={override!r}: use light, medium, heavy or resource_intensive"
                )
            return named
        return self.categories.category(method, path)

    def bucket(self, category: Category) -> str:
        """The store key of ``category``'s bucket."""
        return f"{self.scope}.{category}"

    def hold_key(self, method: str, path: str) -> str:
        """The store key of a per-user daily limit on this user and endpoint (method and path)."""
        return f"{self.scope}.u{fingerprint(method, path.split('?', 1)[0])}"

    # -- permits --------------------------------------------------------------

    async def acquire(self, category: Category, *, method: str, path: str) -> float:
        """Wait for this request's slot; returns the seconds waited.

        Raises:
            DailyLimitExceededError: The category (or this user and endpoint)
                is blocked by a daily limit until ``retry_at``; nothing was sent.
            RateLimitedError: No slot within ``max_wait``; nothing was sent.
        """
        interval = self.limits.interval(category)
        if interval is None:
            return 0.0
        bucket = self.bucket(category)
        hold = self.hold_key(method, path)
        self._check_blocked(bucket, hold, category, method, path)
        start = _clock.monotonic()
        deadline = start + self.limits.max_wait
        while True:
            budget = max(0.0, deadline - _clock.monotonic())
            permit = await self._take(bucket, interval, budget, hold)
            if permit.granted:
                break
            if permit.wait <= budget:
                await _clock.sleep(permit.wait)  # a pause or hold ends within the budget
                continue
            await self._refuse(permit, bucket, hold, category, method, path)
        if permit.wait > 0:
            await _clock.sleep(permit.wait)
            if permit.wait >= _RECHECK_AFTER:
                await self._after_sleep(permit, bucket, deadline, category, method, path)
        waited = _clock.monotonic() - start
        self.permits += 1
        self.waited += waited
        return waited

    async def _after_sleep(
        self,
        permit: Permit,
        bucket: str,
        deadline: float,
        category: Category,
        method: str,
        path: str,
    ) -> None:
        """A pause another process set while this caller slept moves its slot by as much."""
        shift = permit.shift
        for _ in range(_MAX_RECHECKS):
            pause = await self._paused(bucket)
            if pause.daily:
                self._remember_daily(bucket, pause.left)
                raise self._daily_error(category, method, path, pause.left)
            extra = max(pause.left, pause.shift - shift)
            if extra <= 0:
                return
            if _clock.monotonic() + extra > deadline:
                raise self._too_long(category, method, path, extra)
            shift = pause.shift
            await _clock.sleep(extra)

    async def _refuse(
        self,
        permit: Permit,
        bucket: str,
        hold: str,
        category: Category,
        method: str,
        path: str,
    ) -> None:
        """Raise the error for a permit that was not granted within ``max_wait``."""
        for key in (hold, bucket):
            pause = await self._paused(key)
            if pause.daily:
                self._remember_daily(key, pause.left)
                raise self._daily_error(category, method, path, pause.left)
        raise self._too_long(category, method, path, permit.wait)

    def _check_blocked(
        self, bucket: str, hold: str, category: Category, method: str, path: str
    ) -> None:
        if not self._blocked:
            return
        now = _clock.monotonic()
        for key in (bucket, hold):
            found = self._blocked.get(key)
            if found is None:
                continue
            if found[0] <= now:
                del self._blocked[key]
                continue
            raise self._daily_error(category, method, path, found[0] - now, reset=found[1])

    def _remember_daily(self, key: str, seconds: float) -> dt.datetime:
        reset = dt.datetime.fromtimestamp(_clock.wall() + seconds, tz=dt.timezone.utc)
        self._blocked[key] = (_clock.monotonic() + seconds, reset)
        return reset

    def _daily_error(
        self,
        category: Category,
        method: str,
        path: str,
        seconds: float,
        *,
        reset: dt.datetime | None = None,
    ) -> DailyLimitExceededError:
        self.held_back += 1
        reset = reset or dt.datetime.fromtimestamp(_clock.wall() + seconds, tz=dt.timezone.utc)
        error = DailyLimitExceededError(
            status=429,
            code=None,
            message=f"Zoom's daily limit ({_label(category)}) was reached for this account "
            "(a 429 seen by the fleet); the request was not sent",
            tracking_id=None,
            method=method,
            path=path.split("?", 1)[0],
            limit_type="Daily-limit",
            retry_at=reset,
            hint=f"daily limits reset at 00:00 UTC: retry after {reset.isoformat()}",
        )
        error.rate_limit = RateLimitInfo(category=category, limit_type="Daily-limit")
        error.sent = False
        return error

    def _too_long(
        self, category: Category, method: str, path: str, wait: float
    ) -> RateLimitedError:
        self.held_back += 1
        error = RateLimitedError(
            status=429,
            code=None,
            message=f"the account's {_label(category)} budget has no slot within "
            f"max_wait={self.limits.max_wait:g} s (the next is {wait:.1f} s away); the "
            "request was not sent",
            tracking_id=None,
            method=method,
            path=path.split("?", 1)[0],
            limit_type="QPS",
            retry_after=wait,
            hint="slow down, or raise RateLimits(max_wait=...)",
        )
        error.rate_limit = RateLimitInfo(category=category, limit_type="QPS")
        error.sent = False
        return error

    # -- what answers say ------------------------------------------------------

    async def observe(
        self,
        category: Category,
        *,
        method: str,
        path: str,
        status: int,
        headers: Mapping[str, str],
        message: str | None = None,
        learn: bool = True,
    ) -> RateLimitInfo | None:
        """Learn from an answer: its category, its remaining budget, a 429's pause.

        Args:
            category: The category the permit was taken for.
            method: The request's method.
            path: The request's path (below the base URL).
            status: The answer's HTTP status.
            headers: The answer's headers.
            message: Zoom's ``message`` of an error answer (daily limits without headers).
            learn: Whether the category came from the table's default (and
                ``X-RateLimit-Category`` may teach the path's real one).

        Returns:
            The answer's rate-limit headers, if it sent any.
        """
        info = rate_limit_info(headers)
        named = info.category if info is not None else None
        if (
            named is not None
            and learn
            and named != category
            and self.categories.learn(method, path, named)
        ):
            logger.debug("%s %s is %s (X-RateLimit-Category)", method, path, named)
        if status != 429 and (info is None or info.remaining != 0):
            return info
        bucket = self.bucket(named or category)
        now = _clock.wall()
        retry_after = parse_retry_after(headers.get("Retry-After"), now)
        daily = (info is not None and info.daily) or (
            status == 429 and is_daily_message(message)
        )
        if daily:
            seconds = next_utc_midnight(now).timestamp() - now
            if retry_after is not None:
                seconds = min(retry_after, seconds + 60)  # never past the next reset
            key = self.hold_key(method, path) if is_per_user_message(message) else bucket
            self._remember_daily(key, seconds)
            await self._pause(key, seconds, daily=True)
            logger.warning(
                "%s %s: Zoom's daily limit (%s%s) was reached; the fleet holds these requests "
                "until %s",
                method,
                path.split("?", 1)[0],
                _label(named or category),
                ", this user and endpoint" if key != bucket else "",
                dt.datetime.fromtimestamp(now + seconds, tz=dt.timezone.utc).isoformat(),
            )
        elif status == 429:
            seconds = min(_QPS_PAUSE if retry_after is None else retry_after, self.limits.max_pause)
            if seconds > 0:
                await self._pause(bucket, seconds)
        else:  # a success that spent the last of this window's budget: let it refill
            interval = self.limits.interval(named or category)
            if interval is not None:
                await self._pause(bucket, interval)
        return info

    # -- the store's budget, or this process's when it fails --------------------

    def _budget(self) -> RateBudget:
        if self._fleet is not None and _clock.monotonic() >= self._fleet_down_until:
            return self._fleet
        return self._local

    async def _on_budget(self, call: Callable[[RateBudget], Awaitable[_T]]) -> _T:
        """``call`` on the shared budget; on this process's when there is none or it fails."""
        budget = self._budget()
        if budget is not self._local:
            try:
                return await call(budget)
            except StoreError as exc:
                if self._fleet_down_until == 0.0 or (
                    _clock.monotonic() >= self._fleet_down_until + 60
                ):
                    logger.warning(
                        "rate limits: %s failed (%s); pacing this process on its own for now "
                        "(the fleet may exceed the account's limits until the store is back)",
                        self._name,
                        exc,
                    )
                self._fleet_down_until = _clock.monotonic() + _STORE_RETRY
        return await call(self._local)

    async def _take(self, bucket: str, interval: float, budget: float, hold: str) -> Permit:
        return await self._on_budget(lambda shared: shared.acquire_permit(
            bucket, interval=interval, burst=self.limits.burst, max_wait=budget, hold=hold
        ))

    async def _pause(self, key: str, seconds: float, *, daily: bool = False) -> None:
        await self._local.pause(key, seconds, daily=daily)  # this process knows at once
        await self._on_budget(lambda shared: shared.pause(key, seconds, daily=daily))

    async def _paused(self, key: str) -> Pause:
        return await self._on_budget(lambda shared: shared.paused(key))


def _label(category: Category) -> str:
    return "Resource-intensive" if category == "resource_intensive" else category.capitalize()
