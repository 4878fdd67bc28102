"""RateLimiter: leases of the fleet's budget, the quota ledger, and the blocks every client honours.

What a client does around each request::

    ticket = limiter.ticket(method, path, override)
    await limiter.acquire(ticket)        # a slot of this process's lease; caps; blocks
    ...send...
    await limiter.observe(ticket, ...)   # 429s, headers, rates and hosts learned

Where the budget lives: the token manager's store's ``rate_budget``
(:func:`~zoom_s2s.stores.rate_budget_of`); without one, and whenever it fails,
a :class:`~zoom_s2s.stores.memory.MemoryRateBudget` in this process, with a
warning: pacing degrades to per-process pacing, never to "no requests".
``docs/rate-limits.rst`` explains leases, the ledger and the blocks.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
import math
import re
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import quote

from .. import _clock
from ..errors import ConfigurationError, DailyLimitExceededError, RateLimitedError, StoreError
from ..models import fingerprint
from ..stores.budget import DAY, RateBudget, Tally, day_end, rate_budget_of
from ..stores.memory import MemoryRateBudget
from .categories import CategoryTable, path_shape
from .headers import RateLimitInfo, is_daily_message, is_per_user_message, rate_limit_info, retry_at
from .limits import Category, RateLimits, category_name
from .quota import Cap, daily_scope, rule_of

if TYPE_CHECKING:
    from ..manager import TokenManager

__all__ = ["RateLimiter", "Ticket", "rate_scope"]

logger = logging.getLogger("zoom_s2s.ratelimit")

_T = TypeVar("_T")

LEASE_SECONDS = 0.1
"""Longest stretch of the rate one lease reserves: what one process's burst can hold from the
others, and how late a pause set elsewhere reaches a process that holds a lease."""

NOTICE_EVERY = 1.0
"""Seconds between two reads of the scope's blocks (for requests that take no lease)."""

_GRAIN = 0.001  # a slot may go this early: the event loop cannot sleep less
_LEAD = 0.03  # a process asks for its next lease this long before its last slot
_STORE_RETRY = 5.0  # seconds of per-process pacing after a store error before asking it again
_QPS_PAUSE = 1.0  # a per-second 429 without Retry-After: Zoom's window is one second
_PROBE_WAIT = 2.0  # longest the first answer of an unknown budget is waited for
_CACHE = 4096
_CONCURRENT = re.compile(r"too many concurrent", re.I)
_HOSTED = re.compile(r"/(meetings|webinars)/([^/]+)")


def rate_scope(token_url: str, account_id: str) -> str:
    """The scope of an account's buckets: a hash of the token URL and the account id.

    Every app of one account shares it (Zoom's limits are per account); the
    client id and the secret are not part of it.
    """
    return "rate-" + fingerprint("zoom s2s rate limits", token_url, account_id)


class Ticket:
    """One request as the limiter sees it (from :meth:`RateLimiter.ticket`)."""

    __slots__ = (
        "_names", "bucket", "cap", "cap_key", "category", "learn", "method", "path", "product"
    )

    def __init__(
        self, method: str, path: str, category: Category, product: str, cap: Cap | None,
        learn: bool,
    ) -> None:
        self.method = method
        self.path = path
        self.category = category
        self.product = product
        self.bucket = f"{product}-{category}" if product else category
        self.cap = cap
        self.cap_key: str | None = None
        self.learn = learn
        self._names: tuple[str, ...] | None = None

    def names(self) -> tuple[str, ...]:
        """The names of the scopes whose block holds this request back (its cap's aside)."""
        if self._names is None:
            self._names = (
                self.bucket,
                "e-" + fingerprint(self.method, path_shape(self.path)),
                "u-" + fingerprint(self.method, self.path),
            )
        return self._names

    def __repr__(self) -> str:
        return f"Ticket({self.method} {self.path}, {self.bucket})"


class _Share:
    """This process's lease of one bucket: slots it spends with no I/O (monotonic times).

    ``next`` is the theoretical time of the next slot; slots go ``interval``
    apart, never earlier than that (``tol``: the burst, or the millisecond an
    event loop cannot sleep) nor than ``floor`` (a pause). A slot not taken at
    its time may still be taken later, until ``deadline`` (:data:`LEASE_SECONDS`
    after the lease's slots): then what is left expires, so an idle process
    holds nothing.
    """

    __slots__ = ("deadline", "floor", "interval", "left", "next", "size", "started", "tol")

    def __init__(self, now: float, ahead: float, wait: float, cells: int, interval: float,
                 burst: int) -> None:
        self.next = now + ahead
        self.floor = now + wait
        self.left = self.size = cells
        self.interval = interval
        self.tol = max((burst - 1) * interval, _GRAIN)
        self.started = now
        self.deadline = self.next + cells * interval + LEASE_SECONDS


class RateLimiter:
    """Paces requests per account and category through a shared store, and keeps Zoom's quotas.

    Args:
        limits: The rates and the plan; ``None``: nothing is paced up front
            (rates are learned from Zoom's answers, blocks are honoured).
        store: The token store (its rate budget, if it has one, is shared).
        scope: The account's scope (:func:`rate_scope`).
        name: The store's name, for messages.

    Attributes:
        fetch: ``GET`` of an API path, used to learn a meeting's host when a
            per-host cap needs it (:class:`~zoom_s2s.ZoomClient` sets it).
    """

    def __init__(
        self, limits: RateLimits | None, store: object, *, scope: str, name: str = ""
    ) -> None:
        self.limits = limits or RateLimits()
        self.scope = scope
        self.categories = CategoryTable(self.limits.default_category)
        self.fetch: Callable[[str], Awaitable[Any]] | None = None
        self._name = name or type(store).__name__
        self._fleet: RateBudget | None = rate_budget_of(store)
        self._local = MemoryRateBudget()
        self._fleet_down_until = 0.0  # monotonic
        self._shares: dict[str, _Share] = {}
        self._leasing: dict[str, asyncio.Future[None]] = {}
        self._waiting: dict[str, int] = {}
        self._learned: dict[str, float] = {}  # bucket -> interval taught by X-RateLimit-Limit
        self._seen: set[str] = set()  # buckets an answer has told about
        self._probes: dict[str, asyncio.Event] = {}
        # Blocks known here, by name below the scope: name -> (monotonic end, daily).
        self._blocks: dict[str, tuple[float, bool]] = {}
        self._notices_due = 0.0
        self._notices: asyncio.Future[None] | None = None
        self._hosts: OrderedDict[str, str] = OrderedDict()
        self._rules: dict[tuple[str, str], Any] = {}
        self._tickets: dict[tuple[str, str], Ticket] = {}
        self._intervals: dict[str, float | None] = {}  # by bucket: configured, else learned
        self.remaining: dict[str, int] = {}
        self.permits = 0
        self.leases = 0
        self.store_calls = 0
        self.waited = 0.0
        self.held_back = 0
        paced = any(self.limits.rate(category) is not None for category in _CATEGORIES)
        if self._fleet is None and paced:
            logger.warning(
                "token store %s has no rate budget to share; each process paces itself "
                "(the fleet may exceed the account's limits %s)",
                self._name,
                "by the number of processes",
            )

    @classmethod
    def for_manager(cls, limits: RateLimits | None, tokens: TokenManager) -> RateLimiter:
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

    def stats(self) -> dict[str, Any]:
        """Counters and what is left of the budgets this process has seen (for metrics)."""
        now = _clock.monotonic()
        return {
            "permits": self.permits,
            "leases": self.leases,
            "store_calls": self.store_calls,
            "waited": self.waited,
            "held_back": self.held_back,
            "remaining": dict(self.remaining),
            "blocked": sorted(k for k, (end, daily) in self._blocks.items() if daily and end > now),
            "learned_rates": {k: 1.0 / v for k, v in self._learned.items()},
        }

    # -- what a request is ------------------------------------------------------

    def ticket(self, method: str, path: str, override: str | None = None) -> Ticket:
        """What the limiter needs of a request: its bucket and its cap.

        The category is ``override``, the table's, what answers said, or the default.

        Raises:
            ConfigurationError: ``override`` names no category.
        """
        if override is None:
            known = self._tickets.get((method, path))
            if known is not None:
                return known  # a known path without a cap: nothing in it changes
        path = path.split("?", 1)[0]
        key = (method, path)
        rule = self._rules.get(key)
        if rule is None:
            if len(self._rules) >= _CACHE:
                self._rules.clear()
                self._tickets.clear()
            rule = self._rules[key] = rule_of(method, path)
        category = rule.category or self.categories.category(method, path)
        if override is not None:
            named = category_name(override)
            if named is None:
                raise ConfigurationError(
                    f"rate_category={override!r}: use light, medium, heavy or resource_intensive"
                )
            category = named
        ticket = Ticket(method, path, category, rule.product, rule.cap,
                        override is None and rule.category is None)
        if override is None and rule.category is not None and rule.cap is None:
            self._tickets[key] = ticket
        return ticket

    def category(self, method: str, path: str, override: str | None = None) -> Category:
        """The category of a request: ``override``, the table, what answers said, the default."""
        return self.ticket(method, path, override).category

    def key(self, name: str) -> str:
        """The store key of ``name`` (a bucket, a counter, a block) in this account's scope."""
        return f"{self.scope}.{name}"

    def _interval(self, ticket: Ticket) -> float | None:
        try:
            return self._intervals[ticket.bucket]
        except KeyError:
            configured = self.limits.interval(ticket.category, ticket.product)
            found = configured if configured is not None else self._learned.get(ticket.bucket)
            self._intervals[ticket.bucket] = found
            return found

    # -- before a request -------------------------------------------------------

    def take_now(self, ticket: Ticket) -> bool:
        """Take a slot at once if one is free here (no block, no cap, no wait, no I/O).

        The warm path of :meth:`acquire`: when it answers ``False``, await that.
        """
        now = _clock.monotonic()
        if now >= self._notices_due or ticket.cap is not None:
            return False
        if self._blocks and any(name in self._blocks for name in ticket.names()):
            return False
        interval = self._intervals.get(ticket.bucket)
        if interval is None:
            return ticket.bucket in self._seen and ticket.bucket in self._intervals
        found = self._slot(ticket.bucket, interval, now)
        if found is None or found[1] > 0:
            return False
        self._spend(found[0], interval)
        return True

    def _slot(self, bucket: str, interval: float, now: float) -> tuple[_Share, float] | None:
        """This process's lease of ``bucket`` and the wait for its next slot, if it has one."""
        share = self._shares.get(bucket)
        if share is None or not share.left or share.interval != interval:
            return None
        slot = share.next if share.next > now else now
        if slot >= share.deadline:
            return None
        return share, max(share.floor, slot - share.tol) - now

    def _spend(self, share: _Share, interval: float) -> None:
        now = _clock.monotonic()
        share.next = (share.next if share.next > now else now) + interval
        share.left -= 1
        self.permits += 1

    async def acquire(self, ticket: Ticket) -> float:
        """Wait for this request's slot; returns the seconds waited.

        Raises:
            DailyLimitExceededError: A daily limit of the request's scope (its
                category, cap, user or endpoint) is reached until ``retry_at``;
                nothing was sent.
            RateLimitedError: No slot within ``max_wait``; nothing was sent.
        """
        if self.take_now(ticket):
            return 0.0
        now = _clock.monotonic()
        waited = 0.0
        if now >= self._notices_due:
            await self._read_notices()
        if self._blocks:
            waited = await self._honour_blocks(ticket, _clock.monotonic())
        if ticket.cap is not None:
            await self._count(ticket)
        interval = self._interval(ticket)
        if interval is None and ticket.bucket not in self._seen:
            await self._probe(ticket.bucket)
            interval = self._interval(ticket)
        if interval is None:
            return waited
        return waited + await self._lease(ticket, interval)

    async def _lease(self, ticket: Ticket, interval: float) -> float:
        """Take a slot of this process's lease; a new lease (one round trip) when it has none."""
        bucket = ticket.bucket
        start = _clock.monotonic()
        deadline = start + self.limits.max_wait
        self._waiting[bucket] = self._waiting.get(bucket, 0) + 1
        try:
            while True:
                now = _clock.monotonic()
                found = self._slot(bucket, interval, now)
                if found is not None:
                    share, wait = found
                    if now + wait > deadline:
                        raise self._too_long(ticket, wait)
                    self._spend(share, interval)
                    break
                pending = self._leasing.get(bucket)
                if pending is not None:
                    await asyncio.shield(pending)
                    continue
                held = self._shares.get(bucket)
                ahead = 0.0 if held is None else held.next - now - _LEAD
                if ahead > 0:  # every slot given out: lease more only near the last one,
                    if now + ahead > deadline:  # so another process's lease comes between
                        raise self._too_long(ticket, ahead)
                    await _clock.sleep(ahead)
                    continue
                await self._new_lease(ticket, interval, held, deadline)
        finally:
            self._waiting[bucket] -= 1
        if wait > 0:
            await _clock.sleep(wait)
            if self._blocks:  # a block this process learned while the caller slept
                await self._honour_blocks(ticket, _clock.monotonic())
        waited = _clock.monotonic() - start
        self.waited += waited
        return waited

    async def _new_lease(
        self, ticket: Ticket, interval: float, old: _Share | None, deadline: float
    ) -> None:
        bucket = ticket.bucket
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._leasing[bucket] = done
        try:
            # As many slots as this process used in LEASE_SECONDS lately (its callers
            # waiting now at least), at most LEASE_SECONDS of the rate.
            most = max(1, int(LEASE_SECONDS / interval))
            demand = self._waiting.get(bucket, 1)
            if old is not None:
                lasted = max(_clock.monotonic() - old.started, interval)
                demand = max(demand, math.ceil((old.size - old.left) / lasted * LEASE_SECONDS))
            cells = min(most, demand)
            budget = max(0.0, deadline - _clock.monotonic())
            key = self.key(bucket)
            permit = await self._on_budget(lambda shared: shared.acquire_permit(
                key, interval=interval, burst=self.limits.burst, max_wait=budget, cells=cells
            ))
            self.leases += 1
            if not permit.granted:
                pause = await self._on_budget(lambda shared: shared.paused(key))
                if pause.daily:
                    self._block(bucket, pause.left, daily=True)
                    raise self._daily_error(ticket, bucket, pause.left)
                raise self._too_long(ticket, permit.wait)
            self._shares[bucket] = _Share(
                _clock.monotonic(), permit.ahead, permit.wait, cells, interval, self.limits.burst
            )
        finally:
            del self._leasing[bucket]
            done.set_result(None)

    def unanswered(self, ticket: Ticket) -> None:
        """A request ended before any answer (a connection error, a refused redirect).

        If it was the first request of its budget, the callers waiting for its
        answer go on at once instead of waiting :data:`_PROBE_WAIT` for it.
        """
        if ticket.bucket not in self._seen:
            probe = self._probes.pop(ticket.bucket, None)
            if probe is not None:
                probe.set()

    async def _probe(self, bucket: str) -> None:
        """Let the first request of a budget nobody described go; the others await its answer."""
        event = self._probes.get(bucket)
        if event is None:
            self._probes[bucket] = asyncio.Event()
            return
        try:
            await _clock.wait_for(event.wait(), _PROBE_WAIT)
        except asyncio.TimeoutError:
            self._seen.add(bucket)  # the first request never answered: go on unpaced

    async def _honour_blocks(self, ticket: Ticket, now: float) -> float:
        """Raise for a daily block of the request's scope; sleep out a pause (within max_wait)."""
        waited = 0.0
        names = ticket.names()
        if ticket.cap_key is not None:
            names = (*names, ticket.cap_key)
        for name in names:
            found = self._blocks.get(name)
            if found is None:
                continue
            end, daily = found
            if end <= now:
                del self._blocks[name]
            elif daily:
                raise self._daily_error(ticket, name, end - now)
            elif end - now > self.limits.max_wait:
                raise self._too_long(ticket, end - now)
            else:
                await _clock.sleep(end - now)
                waited += end - now
                now = _clock.monotonic()
        return waited

    async def _count(self, ticket: Ticket) -> None:
        """Count the request against its cap in the store, or refuse it before Zoom does."""
        cap = ticket.cap
        assert cap is not None
        name = ticket.cap_key = await self._cap_key(cap)
        if name is None:
            return
        found = self._blocks.get(name)
        now = _clock.monotonic()
        if found is not None and found[1] and found[0] > now:
            raise self._daily_error(ticket, name, found[0] - now)
        limit = cap.limit(self.limits.plan)
        if limit is None:
            return  # the limit depends on the plan: a 429 will tell
        key = self.key(name)
        while True:
            tally: Tally = await self._on_budget(
                lambda shared: shared.count(key, limit=limit, period=cap.period)
            )
            self.remaining[name] = tally.remaining
            if tally.granted:
                return
            if cap.period >= DAY:
                self._block(name, tally.left, daily=True)
                raise self._daily_error(ticket, name, tally.left)
            if tally.left > self.limits.max_wait:
                raise self._too_long(ticket, tally.left)
            await _clock.sleep(tally.left)  # once a minute per user: the next window

    async def _cap_key(self, cap: Cap) -> str | None:
        """The name of the counter ``cap`` is counted in (``None``: this request cannot be)."""
        if cap.scope == "account":
            return cap.name
        if cap.scope == "registrant" or not cap.subject:
            return None  # the registrant is in the body: Zoom's 429 is the only guard
        subject = cap.subject
        if cap.kind is not None:  # a meeting or webinar: its host counts
            host = await self._host(f"{cap.kind}/{subject}", "host_id")
        elif subject == "me" or "@" in subject:  # the host's id, as updates name it
            host = await self._host(subject, "id")
        else:
            host = subject
        return None if host is None else f"{cap.name}.{fingerprint(host)}"

    async def _host(self, subject: str, field: str) -> str | None:
        """The user id ``subject`` stands for: remembered, or asked of Zoom once (``fetch``)."""
        host = self._hosts.get(subject)
        if host is None and self.fetch is not None:
            path = subject if "/" in subject else "users/" + quote(subject, safe="")
            try:
                data = await self.fetch("/" + path)
            except Exception as exc:  # the request itself will tell the caller
                logger.debug("could not learn who %s is: %s", subject, exc)
                return None
            found = data.get(field) if isinstance(data, dict) else None
            if isinstance(found, str) and found:
                self._remember_host(subject, found)
                host = found
        return host

    # -- what answers say ------------------------------------------------------

    async def observe(
        self,
        ticket: Ticket,
        *,
        status: int,
        headers: Mapping[str, str],
        message: str | None = None,
        body: bytes | None = None,
    ) -> RateLimitInfo | None:
        """Learn from an answer: its category and rate, hosts, remaining budget, a 429's block.

        Args:
            ticket: The request's ticket.
            status: The answer's HTTP status.
            headers: The answer's headers.
            message: Zoom's ``message`` of an error answer (daily limits without headers).
            body: The answer's body, if read (a meeting's host is learned from it).

        Returns:
            The answer's rate-limit headers, if it sent any.
        """
        bucket = ticket.bucket
        if bucket not in self._seen:
            self._seen.add(bucket)
            probe = self._probes.pop(bucket, None)
            if probe is not None:
                probe.set()
        elif self.routine(ticket, status, headers, body):
            return None
        info = rate_limit_info(headers)
        if info is not None:
            self._learn(ticket, info)
        if body is not None and 200 <= status < 300 and (
            (ticket.cap is not None and ticket.cap.scope == "host")
            or (ticket.method == "GET" and _HOSTED.fullmatch(ticket.path))
        ):
            self._learn_host(ticket, body)
        if status != 429 and (info is None or info.remaining != 0):
            return info
        daily = (info is not None and info.daily) or (status == 429 and is_daily_message(message))
        if daily:
            scope = daily_scope(
                ticket.category, ticket.cap, plan=self.limits.plan, message=message,
                per_user=is_per_user_message(message), header_only=status != 429,
            )
            until = retry_at(headers.get("Retry-After")) if status == 429 else None
            for name in self._scope_names(ticket, scope):
                await self._pause(name, until=until, daily=True)
            if scope != "none":
                logger.warning(
                    "%s %s: Zoom's daily limit (%s) was reached; the fleet holds these "
                    "requests until it resets", ticket.method, ticket.path, scope,
                )
        elif status == 429:
            if _CONCURRENT.search(message or ""):
                return info  # one object busy: that request is retried, nothing paused
            seconds = retry_at(headers.get("Retry-After"))
            span = _QPS_PAUSE if seconds is None else seconds - _clock.wall()
            span = min(max(0.0, span), self.limits.max_pause)
            if ticket.cap is not None and ticket.cap_key is not None and ticket.cap.period < DAY:
                await self._pause(ticket.cap_key, seconds=span)  # once a minute per user
            elif span > 0:
                self._shares.pop(bucket, None)
                await self._pause(bucket, seconds=span)
        elif info is not None and (info.limit_type or "").lower() == "qps":  # window spent
            interval = self._interval(ticket)
            if interval is not None:
                await self._pause(bucket, seconds=interval)
        return info

    def routine(
        self, ticket: Ticket, status: int, headers: Mapping[str, str], body: bytes | None
    ) -> bool:
        """Note an answer that teaches nothing new (the warm path of :meth:`observe`).

        ``True``: a paced, known request went through and its budget is not
        spent; ``False``: await :meth:`observe`.
        """
        if (
            status >= 400
            or ticket.learn
            or ticket.cap is not None
            or self._intervals.get(ticket.bucket) is None
            or ticket.bucket not in self._seen
        ):
            return False
        remaining = headers.get("X-RateLimit-Remaining")
        if remaining is not None:
            if not remaining.isdigit() or remaining == "0" or len(remaining) > 12:
                return False
            self.remaining[ticket.bucket] = int(remaining)
        return body is None or ticket.method != "GET" or not _HOSTED.fullmatch(ticket.path)

    def _learn(self, ticket: Ticket, info: RateLimitInfo) -> None:
        named = info.category
        if (
            named is not None
            and ticket.learn
            and named != ticket.category
            and self.categories.learn(ticket.method, ticket.path, named)
        ):
            logger.debug("%s %s is %s (X-RateLimit-Category)", ticket.method, ticket.path, named)
        if info.remaining is not None:
            self.remaining[ticket.bucket] = info.remaining
        if (
            info.limit
            and (info.limit_type or "").lower() == "qps"
            and self.limits.interval(ticket.category, ticket.product) is None
        ):
            interval = 1.0 / (info.limit * (1.0 - self.limits.headroom))
            if self._learned.get(ticket.bucket) != interval:
                self._learned[ticket.bucket] = self._intervals[ticket.bucket] = interval
                logger.debug("%s: pacing at %d/s (X-RateLimit-Limit)", ticket.bucket, info.limit)

    def _learn_host(self, ticket: Ticket, body: bytes) -> None:
        try:
            data = json.loads(body)
        except ValueError:
            return
        if not isinstance(data, dict):
            return
        host, item = data.get("host_id"), data.get("id")
        if not isinstance(host, str) or not host or item is None:
            return
        found = _HOSTED.search(ticket.path)
        kind = found.group(1) if found else ("webinars" if "webinar" in ticket.path else "meetings")
        self._remember_host(f"{kind}/{item}", host)
        if ticket.cap is not None and ticket.cap.kind is None and ticket.cap.subject:
            self._remember_host(ticket.cap.subject, host)  # an email or "me" names this host

    def _remember_host(self, subject: str, host: str) -> None:
        self._hosts[subject] = host
        self._hosts.move_to_end(subject)
        if len(self._hosts) > _CACHE:
            self._hosts.popitem(last=False)

    def _scope_names(self, ticket: Ticket, scope: str) -> tuple[str, ...]:
        if scope == "category":
            if ticket.category in ("heavy", "resource_intensive") and self.limits.plan != "free":
                prefix = f"{ticket.product}-" if ticket.product else ""
                return (prefix + "heavy", prefix + "resource_intensive")
            return (ticket.bucket,)
        if scope == "cap" and ticket.cap_key is not None:
            return (ticket.cap_key,)
        if scope in ("cap", "user"):
            return (ticket.names()[2],)
        if scope == "endpoint":
            return (ticket.names()[1],)
        return ()

    # -- blocks, in this process and in the store --------------------------------

    def _block(self, name: str, seconds: float, *, daily: bool) -> None:
        end = _clock.monotonic() + seconds
        if daily:
            self._shares.pop(name, None)
        found = self._blocks.get(name)
        if found is None or found[0] < end:
            self._blocks[name] = (end, daily)

    async def _pause(
        self, name: str, *, seconds: float | None = None, until: float | None = None,
        daily: bool = False,
    ) -> None:
        """Pause ``name`` for the fleet; this process holds it at once, until the store's end."""
        wall = _clock.wall()
        guess = seconds if seconds is not None else (until or day_end(wall)) - wall
        self._block(name, min(guess, DAY), daily=daily)
        key = self.key(name)
        pause = await self._on_budget(
            lambda shared: shared.pause(key, seconds, daily=daily, until=until)
        )
        self._blocks[name] = (_clock.monotonic() + pause.left, pause.daily)  # the store's clock

    async def _read_notices(self) -> None:
        """Learn the blocks and pauses other processes stored (at most every NOTICE_EVERY s)."""
        pending = self._notices
        if pending is not None:
            await asyncio.shield(pending)
            return
        self._notices = asyncio.get_running_loop().create_future()
        try:
            found = await self._on_budget(lambda shared: shared.notices(self.scope))
            for name, pause in found.items():
                self._block(name, pause.left, daily=pause.daily)
            self._notices_due = _clock.monotonic() + NOTICE_EVERY
        finally:
            self._notices.set_result(None)
            self._notices = None

    def _daily_error(self, ticket: Ticket, name: str, seconds: float) -> DailyLimitExceededError:
        self.held_back += 1
        reset = dt.datetime.fromtimestamp(_clock.wall() + seconds, tz=dt.timezone.utc)
        error = DailyLimitExceededError(
            status=429,
            code=None,
            message=f"Zoom's daily limit ({_what(ticket, name)}) was reached for this account "
            "(counted by the fleet, or a 429 one of its processes saw); the request was not sent",
            tracking_id=None,
            method=ticket.method,
            path=ticket.path,
            limit_type="Daily-limit",
            retry_at=reset,
            hint=f"daily limits reset at 00:00 UTC: retry after {reset.isoformat()}",
        )
        error.rate_limit = RateLimitInfo(category=ticket.category, limit_type="Daily-limit")
        error.sent = False
        return error

    def _too_long(self, ticket: Ticket, wait: float) -> RateLimitedError:
        self.held_back += 1
        error = RateLimitedError(
            status=429,
            code=None,
            message=f"the account's {_label(ticket.category)} budget has no slot within "
            f"max_wait={self.limits.max_wait:g} s (the next is {wait:.1f} s away); the "
            "request was not sent",
            tracking_id=None,
            method=ticket.method,
            path=ticket.path,
            limit_type="QPS",
            retry_after=wait,
            hint="slow down, or raise RateLimits(max_wait=...)",
        )
        error.rate_limit = RateLimitInfo(category=ticket.category, limit_type="QPS")
        error.sent = False
        return error

    # -- the store's budget, or this process's when it fails --------------------

    def _budget(self) -> RateBudget:
        if self._fleet is not None and _clock.monotonic() >= self._fleet_down_until:
            return self._fleet
        return self._local

    async def _on_budget(self, call: Callable[[RateBudget], Awaitable[_T]]) -> _T:
        """``call`` on the shared budget; on this process's when there is none or it fails."""
        budget = self._budget()
        if budget is not self._local:
            self.store_calls += 1
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


_CATEGORIES: tuple[Category, ...] = ("light", "medium", "heavy", "resource_intensive")


def _label(category: Category) -> str:
    return "Resource-intensive" if category == "resource_intensive" else category.capitalize()


def _what(ticket: Ticket, name: str) -> str:
    if name == ticket.bucket or name.endswith(("heavy", "resource_intensive")):
        return _label(ticket.category)
    if ticket.cap is not None and name == ticket.cap_key:
        return f"{ticket.cap.name.replace('_', ' ')}, per {ticket.cap.scope}"
    return "this endpoint" if name.startswith("e-") else "this user and endpoint"
