"""Back-off after failed token fetches, for one process and for the whole fleet.

A failed fetch is remembered twice: in the process (callers without a token
get the error at once until the back-off ends) and in the store as a
:class:`~zoom_s2s.stores.base.FailureRecord` (other processes do not ask Zoom
before ``retry_at``). The interval doubles with each consecutive failure:
about 1, 2, 4 ... up to 60 s, jittered down by up to half so a fleet does not
retry in step. A fleet therefore loads a failing Zoom about as much as one
process does.
"""

from __future__ import annotations

import random

from . import errors
from .stores.base import FailureRecord

__all__ = ["MAX_BACKOFF", "backoff_seconds", "error_from_failure", "failure_after"]

MAX_BACKOFF = 60.0

_TOKEN_ERRORS: dict[str, type[errors.TokenError]] = {
    cls.__name__: cls
    for cls in (
        errors.InvalidCredentialsError,
        errors.MalformedTokenResponseError,
        errors.TokenEndpointError,
        errors.TokenRateLimitedError,
    )
}


def backoff_seconds(failures: int) -> float:
    """Seconds to wait after ``failures`` consecutive failed fetches (jittered)."""
    base = min(MAX_BACKOFF, 2.0 ** max(0, failures - 1))
    return base * random.uniform(0.5, 1.0)


def failure_after(exc: errors.TokenError, failures: int, now: float) -> FailureRecord:
    """The record to store after the ``failures``-th consecutive failure ``exc``."""
    return FailureRecord(
        failures=failures,
        retry_at=now + backoff_seconds(failures),
        error_type=type(exc).__name__,
        message=str(exc)[:500],
    )


def error_from_failure(record: FailureRecord, now: float) -> errors.TokenError:
    """The error a caller sees while the fleet backs off after ``record``."""
    cls = _TOKEN_ERRORS.get(record.error_type, errors.TokenEndpointError)
    return cls(
        f"{record.message} [a recent fetch failed ({record.failures} in a row); the fleet "
        f"waits {max(0.0, record.retry_at - now):.1f} s more before asking Zoom again]"
    )
