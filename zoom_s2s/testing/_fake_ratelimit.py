"""Zoom's rate limits in the fake: an API hook (``FakeZoom(rate_limits=FakeRateLimits(...))``).

:class:`FakeRateLimits` enforces, per account and category, a per-second
limit (a token bucket: ``qps`` a second, holding ``burst`` seconds' worth),
optional daily limits per category and per user and endpoint (reset at 00:00
UTC, or by :meth:`FakeRateLimits.reset_daily`), and sends Zoom's headers on
every answer (``docs/zoom.rst``, "Rate limits")::

    X-RateLimit-Category: Light          (the route's category)
    X-RateLimit-Type: QPS | Daily-limit  (Daily-limit where a daily limit applies;
                                          not sent in the "message" form)
    X-RateLimit-Limit: 20                (the daily limit, else the per-second one)
    X-RateLimit-Remaining: 19            (what is left of it)

It also counts Zoom's caps by their scopes (``zoom_s2s.ratelimit.operation_of``):
per endpoint (``POST /users`` by ``plan``, ``POST /groups``), per user
(presence status once a minute) and per host (meeting **and** webinar
creates and updates, 100 a day per host, an update counted against the
meeting's host), and the daily limit Heavy and Resource-intensive share on
paid plans (``shared_daily``), so tests catch a scope the client gets wrong.

A 429 is Zoom's: ``{"code": 429, "message": ...}``. A per-second one carries
``Retry-After`` (ISO 8601, the moment a request would pass again). A daily
one has two forms, as on Zoom: ``"header"`` (``X-RateLimit-Type: Daily-limit``
and ``Retry-After`` at the next midnight UTC) and ``"message"`` (neither, only
"... You may resume these requests at GMT 00:00:00."); per-user daily limits
always use the message form ("... for this particular user ...").

:meth:`FakeRateLimits.throttle` makes Zoom answer a category with 429s for a
while, as after a burst from another app of the account. Every request is
logged (:attr:`FakeRateLimits.log`) with its arrival time, so tests can count
what arrived when.
"""

from __future__ import annotations

import datetime as dt
import math
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping
from typing import Literal

import attrs
from aiohttp import web

from ..ratelimit.quota import rule_of
from ._fake_state import ApiCall

__all__ = ["PRO_QPS", "Arrival", "FakeRateLimits"]

PRO_QPS: dict[str, float] = {"Light": 30, "Medium": 20, "Heavy": 10, "Resource-intensive": 10 / 60}
"""Zoom's per-second limits of a Pro account (``docs/zoom.rst``)."""

QPS_MESSAGE = "You have reached the maximum per-second rate limit for this API. Try again later."

DailyForm = Literal["header", "message"]

_LABELS = {
    "meeting_webinar_write": "Meeting Create/Update",
    "user_create": "Create User",
    "group_create": "Create Group",
    "presence_status": "Presence Status",
}


@attrs.frozen
class Arrival:
    """One API request as the rate-limit layer saw it.

    Attributes:
        at: When it arrived (the layer's clock: ``time.monotonic()`` by default).
        account: The account it acted in.
        category: Its category (``"Light"``, ...).
        status: 0 if let through, else the 429 it got.
        kind: ``""``, ``"qps"``, ``"daily"``, ``"user-daily"`` or ``"throttled"``.
    """

    at: float
    account: str
    category: str
    status: int
    kind: str


@attrs.define
class _Bucket:
    tokens: float
    updated: float


def _iso(moment: float) -> str:
    return (
        dt.datetime.fromtimestamp(moment, tz=dt.timezone.utc)
        .isoformat(timespec="milliseconds")
        .replace("+00:00", "Z")
    )


class FakeRateLimits:
    """An API hook for :class:`~zoom_s2s.testing.FakeZoom` that enforces Zoom's rate limits.

    Args:
        qps: Requests per second per account, by category (default: Pro's).
        daily: Requests per day per account, by category (default: none).
        per_user_daily: Requests per day per user, by route (``"POST
            /v2/users/{user_id}/meetings"``), counted by the route's ``user_id``.
        caps: Limits of Zoom's caps by name (``{"meeting_webinar_write": 3}``),
            instead of Zoom's own (``zoom_s2s.ratelimit.operation_of``).
        plan: The account's plan, for the caps that depend on it (``POST /users``).
        shared_daily: Heavy and Resource-intensive requests per day together
            (paid plans: 30,000 on Pro); default: not counted.
        burst: Seconds' worth of requests the per-second bucket holds (1.0:
            ``qps`` requests may come at once after a quiet second).
        daily_form: How a category's daily 429 looks: ``"header"`` or ``"message"``.
        clock: Monotonic seconds, for the per-second limits and :attr:`log`.
        wall: Unix time, for the daily reset at 00:00 UTC and ``Retry-After``.

    Attributes:
        log: Every request seen, in order of arrival (:class:`Arrival`).
        passed: Requests let through, by (account, category).
        refused: 429s, by kind (``qps``, ``daily``, ``user-daily``, ``throttled``).
    """

    def __init__(
        self,
        qps: Mapping[str, float] | None = None,
        daily: Mapping[str, int] | None = None,
        *,
        per_user_daily: Mapping[str, int] | None = None,
        burst: float = 1.0,
        daily_form: DailyForm = "header",
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
        caps: Mapping[str, int] | None = None,
        plan: str = "pro",
        shared_daily: int | None = None,
    ) -> None:
        if daily_form not in ("header", "message"):
            raise ValueError(f"daily_form={daily_form!r}: use 'header' or 'message'")
        self.qps = dict(PRO_QPS if qps is None else qps)
        self.daily = dict(daily or {})
        self.per_user_daily = dict(per_user_daily or {})
        self.burst = burst
        self.daily_form: DailyForm = daily_form
        self.clock = clock
        self.wall = wall
        self.log: list[Arrival] = []
        self.passed: Counter[tuple[str, str]] = Counter()
        self.refused: Counter[str] = Counter()
        self._buckets: dict[tuple[str, str], _Bucket] = {}
        self._day = self._today()
        self._daily_used: Counter[tuple[str, str]] = Counter()
        self._user_used: Counter[tuple[str, str, str]] = Counter()
        self.caps = dict(caps or {})
        self.plan = plan
        self.shared_daily = shared_daily
        #: Meetings and webinars by id (``FakeZoom`` shares its own): a host's caps.
        self.meetings: dict[str, dict[str, object]] = {}
        self._cap_used: dict[tuple[str, str, str], tuple[float, int]] = {}
        self._throttled: dict[str, float] = {}  # category -> clock() until which all get 429
        self._throttle_left: dict[str, int | None] = {}  # 429s left to answer (None: all)
        self._guard = threading.Lock()  # tests read the counters from another thread

    # -- test controls ----------------------------------------------------------------

    def throttle(self, category: str, seconds: float, *, requests: int | None = None) -> None:
        """Answer every ``category`` request of the next ``seconds`` with a per-second 429.

        Its ``Retry-After`` is the end of that window (as when another app of
        the account spent the budget).

        Args:
            category: The category (``"Light"``, ...).
            seconds: How long the window lasts.
            requests: Answer only the first ``requests`` of them with the 429; the
                others are served as usual. With ``requests=1`` exactly one process
                learns of the window, so a test can check that the others are
                told through the store rather than by 429s of their own.
        """
        with self._guard:
            self._throttled[category] = self.clock() + seconds
            self._throttle_left[category] = requests

    def reset_daily(self) -> None:
        """Forget the day's counts, as at 00:00 UTC."""
        with self._guard:
            self._daily_used.clear()
            self._user_used.clear()
            self._cap_used.clear()

    def arrivals(
        self, category: str | None = None, *, since: float = -math.inf, until: float = math.inf
    ) -> list[Arrival]:
        """Requests seen (of ``category``) that arrived in ``[since, until)``."""
        with self._guard:
            return [
                a for a in self.log
                if (category is None or a.category == category) and since <= a.at < until
            ]

    # -- the hook ---------------------------------------------------------------------

    def _today(self) -> int:
        return int(self.wall() // 86_400)

    def _midnight(self) -> float:
        return (self._today() + 1) * 86_400.0

    def _bucket(self, key: tuple[str, str], rate: float, now: float) -> _Bucket:
        capacity = max(1.0, rate * self.burst)
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = _Bucket(capacity, now)
        bucket.tokens = min(capacity, bucket.tokens + (now - bucket.updated) * rate)
        bucket.updated = now
        return bucket

    async def __call__(self, call: ApiCall) -> web.StreamResponse | None:
        """Let ``call`` through (adding the headers) or answer it with Zoom's 429."""
        now = self.clock()
        account, category = call.account.account_id, call.category
        with self._guard:
            today = self._today()
            if today != self._day:
                self._day = today
                self._daily_used.clear()
                self._user_used.clear()
                self._cap_used.clear()
            status, kind, answer = self._decide(call, now, account, category)
            self.log.append(Arrival(now, account, category, status, kind))
            if status:
                self.refused[kind] += 1
            else:
                self.passed[(account, category)] += 1
        return answer

    def _decide(
        self, call: ApiCall, now: float, account: str, category: str
    ) -> tuple[int, str, web.StreamResponse | None]:
        headers = call.headers
        rate = self.qps.get(category)
        daily = self.daily.get(category)
        headers["X-RateLimit-Category"] = category
        if self.daily_form == "header":
            headers["X-RateLimit-Type"] = "QPS" if daily is None else "Daily-limit"
        until = self._throttled.get(category, 0.0)
        left = self._throttle_left.get(category)
        if until > now and (left is None or left > 0):
            if left is not None:
                self._throttle_left[category] = left - 1
            return 429, "throttled", self._qps_429(headers, rate, until - now)
        user_limit = self.per_user_daily.get(call.route)
        user = call.request.match_info.get("user_id", "")
        if user_limit is not None and self._user_used[(account, call.route, user)] >= user_limit:
            headers.pop("X-RateLimit-Type", None)
            message = (
                f"You have exceeded the daily rate limit ({user_limit}) of "
                f"{call.route} API requests permitted for this particular user. You may "
                "resume these requests at GMT 00:00:00."
            )
            return 429, "user-daily", _error(message, headers)
        capped = self._cap(call, account)
        if capped is not None:
            key, limit, period, label, per = capped
            end, used = self._cap_used.get(key, (0.0, 0))
            wall = self.wall()
            if end <= wall:
                end, used = (self._midnight() if period >= 86_400 else wall + period), 0
            if used >= limit:
                headers.pop("X-RateLimit-Type", None)
                if period < 86_400:
                    headers["Retry-After"] = _iso(end)
                    message = (
                        f"You have reached the maximum rate limit ({limit} per {period:g} s) "
                        f"of {label} API requests for this {per}. Try again later."
                    )
                    return 429, "cap", _error(message, headers)
                message = (
                    f"You have exceeded the daily rate limit ({limit}) of {label} API requests "
                    f"permitted for this {per}. You may resume these requests at GMT 00:00:00."
                )
                if self.daily_form == "header" and per == "account":
                    headers["X-RateLimit-Type"] = "Daily-limit"
                    headers["Retry-After"] = _iso(self._midnight())
                return 429, "cap", _error(message, headers)
            self._cap_used[key] = (end, used + 1)
        shared = self.shared_daily if category in ("Heavy", "Resource-intensive") else None
        if shared is not None and self._daily_used[(account, "Heavy+RI")] >= shared:
            headers["X-RateLimit-Type"] = "Daily-limit"
            headers["X-RateLimit-Limit"] = str(shared)
            headers["X-RateLimit-Remaining"] = "0"
            message = (
                f"You have exceeded the daily rate limit ({shared}) of Heavy and "
                "Resource-intensive API requests permitted for this account. You may resume "
                "these requests at GMT 00:00:00."
            )
            if self.daily_form == "header":
                headers["Retry-After"] = _iso(self._midnight())
            else:
                headers.pop("X-RateLimit-Type", None)
            return 429, "daily", _error(message, headers)
        if daily is not None and self._daily_used[(account, category)] >= daily:
            headers["X-RateLimit-Limit"] = str(daily)
            headers["X-RateLimit-Remaining"] = "0"
            message = (
                f"You have exceeded the daily rate limit ({daily}) of {category} API "
                "requests permitted for this account. You may resume these requests at GMT "
                "00:00:00."
            )
            if self.daily_form == "header":
                headers["Retry-After"] = _iso(self._midnight())
            return 429, "daily", _error(message, headers)
        if rate is not None:
            bucket = self._bucket((account, category), rate, now)
            if bucket.tokens < 1.0:
                return 429, "qps", self._qps_429(headers, rate, (1.0 - bucket.tokens) / rate)
            bucket.tokens -= 1.0
        if user_limit is not None:
            self._user_used[(account, call.route, user)] += 1
        if shared is not None:
            self._daily_used[(account, "Heavy+RI")] += 1
            if daily is None:
                headers["X-RateLimit-Type"] = "Daily-limit"
                headers["X-RateLimit-Limit"] = str(shared)
                headers["X-RateLimit-Remaining"] = str(
                    shared - self._daily_used[(account, "Heavy+RI")]
                )
                return 0, "", None
        if daily is not None:
            self._daily_used[(account, category)] += 1
            headers["X-RateLimit-Limit"] = str(daily)
            headers["X-RateLimit-Remaining"] = str(daily - self._daily_used[(account, category)])
        elif rate is not None:
            headers["X-RateLimit-Limit"] = str(max(1, round(rate)))
            tokens = self._buckets[(account, category)].tokens
            headers["X-RateLimit-Remaining"] = str(max(0, math.floor(tokens)))
        return 0, "", None

    def _cap(
        self, call: ApiCall, account: str
    ) -> tuple[tuple[str, str, str], int, float, str, str] | None:
        """The request's cap as Zoom counts it: (key, limit, period, label, "user"/...)."""
        request = call.request
        path = request.path[3:] if request.path.startswith("/v2/") else request.path
        cap = rule_of(request.method, path).cap
        if cap is None or cap.scope == "registrant":
            return None
        limit = self.caps.get(cap.name, cap.limit(self.plan))
        if limit is None:
            return None
        subject = ""
        if cap.scope in ("user", "host") and cap.subject:
            subject = cap.subject
            if cap.kind is not None:
                meeting = self.meetings.get(subject)
                if meeting is None:
                    return None  # the handler answers 404
                subject = str(meeting["host_id"])
            else:
                user = call.account.find_user(subject)
                subject = str(user["id"]) if user is not None else subject
        label = _LABELS.get(cap.name, cap.name.replace("_", " ").title())
        per = "account" if cap.scope == "account" else "particular user"
        return (account, cap.name, subject), limit, float(cap.period), label, per

    def _qps_429(
        self, headers: dict[str, str], rate: float | None, wait: float
    ) -> web.StreamResponse:
        headers["X-RateLimit-Type"] = "QPS"
        headers["X-RateLimit-Limit"] = str(max(1, round(rate or 1)))
        headers["X-RateLimit-Remaining"] = "0"
        headers["Retry-After"] = _iso(self.wall() + wait)
        return _error(QPS_MESSAGE, headers)


def _error(message: str, headers: dict[str, str]) -> web.Response:
    return web.json_response({"code": 429, "message": message}, status=429, headers=dict(headers))
