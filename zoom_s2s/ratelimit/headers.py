"""Zoom's rate-limit headers and the shapes of its 429 answers.

Every answer may carry (``docs/zoom.rst``, "Rate limits")::

    X-RateLimit-Category: Light | Medium | Heavy | Resource-intensive
    X-RateLimit-Type: QPS | Daily-limit
    X-RateLimit-Limit: 30000
    X-RateLimit-Remaining: 0
    Retry-After: 2020-05-31T00:00:00Z

A daily limit shows itself in two ways: ``X-RateLimit-Type: Daily-limit``,
or (no type, no ``Retry-After``) a message such as "You have exceeded the
daily rate limit (100) of Meeting Create/Update API requests permitted for
this particular user. You may resume these requests at GMT 00:00:00."
Daily limits reset at 00:00 UTC.
"""

from __future__ import annotations

import datetime as dt
import math
import re
import time
from collections.abc import Mapping

from .. import _clock
from ..errors import RateLimitInfo
from ..oauth import parse_retry_after
from .limits import category_name

__all__ = [
    "RateLimitInfo",
    "is_daily_message",
    "is_per_user_message",
    "next_utc_midnight",
    "rate_limit_info",
    "retry_at",
]

_DAILY = re.compile(r"\bdaily\b.{0,40}\blimit\b|\bGMT\s*00:00(:00)?\b|per\s+day", re.I | re.S)
_PER_USER = re.compile(r"particular user|per user|for this user|for the user", re.I)
_MAX_NUMBER = 10**12


def is_daily_message(message: str | None) -> bool:
    """Whether a 429's message says a *daily* limit was reached (the header-less form)."""
    return bool(message) and _DAILY.search(message or "") is not None


def is_per_user_message(message: str | None) -> bool:
    """Whether a daily-limit message names a per-user limit ("for this particular user")."""
    return bool(message) and _PER_USER.search(message or "") is not None


def next_utc_midnight(now: float | None = None) -> dt.datetime:
    """The next 00:00 UTC after ``now`` (Unix time; default: the current time)."""
    today = dt.datetime.fromtimestamp(time.time() if now is None else now, tz=dt.timezone.utc)
    return (today + dt.timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)


def retry_at(value: str | None) -> float | None:
    """The Unix time a ``Retry-After`` names (a date as Zoom sends it, or seconds from now).

    A date is read as it is, not against this host's clock: the store compares it
    with its own.
    """
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        return parse_retry_after(value, 0.0)  # seconds since the epoch: the date itself
    return _clock.wall() + seconds if math.isfinite(seconds) and seconds >= 0 else None


def _count(value: str | None) -> int | None:
    if value is None:
        return None
    value = value.strip()
    if not value.isascii() or not value.isdigit() or len(value) > 12:
        return None
    number = int(value)
    return number if number <= _MAX_NUMBER else None


def rate_limit_info(headers: Mapping[str, str]) -> RateLimitInfo | None:
    """The rate-limit headers of an answer, or ``None`` if it sent none.

    Values are validated like any input: an unknown category, a type longer
    than 32 characters or a count that is not a small number is left out.
    """
    category = headers.get("X-RateLimit-Category")
    limit_type = headers.get("X-RateLimit-Type")
    limit = headers.get("X-RateLimit-Limit")
    remaining = headers.get("X-RateLimit-Remaining")
    if category is None and limit_type is None and limit is None and remaining is None:
        return None
    if limit_type is not None:
        limit_type = limit_type.strip()
        if len(limit_type) > 32 or not limit_type.isprintable():
            limit_type = None
    return RateLimitInfo(
        category=category_name(category),
        limit_type=limit_type or None,
        limit=_count(limit),
        remaining=_count(remaining),
    )
