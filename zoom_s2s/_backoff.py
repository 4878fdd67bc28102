"""Back-off after failed refreshes: the schedule, and one process's state.

About 1, 2, 4 ... up to 60 s, jittered; a fleet record read from the store is
believed only up to the schedule (``docs/architecture.rst``, "Trust model").
"""

from __future__ import annotations

import random

from . import _clock, errors
from ._redact import scrub
from .stores.base import FailureRecord

__all__ = [
    "FAILURE_MEMORY",
    "MAX_BACKOFF",
    "Backoff",
    "backoff_seconds",
    "error_from_failure",
    "failure_record",
    "max_delay",
]

MAX_BACKOFF = 60.0
# How long a failure record outlives its retry moment: long enough that the
# next failure still finds the count and backs off further.
FAILURE_MEMORY = 300.0

_TOKEN_ERRORS: dict[str, type[errors.TokenError]] = {
    cls.__name__: cls
    for cls in (
        errors.InvalidCredentialsError,
        errors.MalformedTokenResponseError,
        errors.TokenEndpointError,
        errors.TokenRateLimitedError,
    )
}


def max_delay(failures: int) -> float:
    """The longest wait the schedule allows after ``failures`` consecutive failures."""
    return min(MAX_BACKOFF, 2.0 ** max(0, min(failures, 64) - 1))


def backoff_seconds(failures: int) -> float:
    """Seconds to wait after ``failures`` consecutive failed fetches (jittered)."""
    return max_delay(failures) * random.uniform(0.5, 1.0)


def failure_record(
    exc: BaseException, failures: int, secrets: tuple[str, ...]
) -> tuple[FailureRecord, float]:
    """The record to store after the ``failures``-th consecutive failure, and its keep-for.

    ``secrets`` (every encoding of the client secret, see ``_redact``) are
    scrubbed from the message once more before it leaves the process.
    """
    delay = backoff_seconds(failures)
    record = FailureRecord(
        failures=failures,
        retry_in=delay,
        error_type=type(exc).__name__,
        message=scrub(str(exc), secrets)[:500],
    )
    return record, delay + FAILURE_MEMORY


def error_from_failure(
    record: FailureRecord, wait: float, secrets: tuple[str, ...] = ()
) -> errors.TokenError:
    """The error a caller sees while the fleet backs off after ``record`` for ``wait`` s more."""
    cls = _TOKEN_ERRORS.get(record.error_type, errors.TokenEndpointError)
    return cls(
        f"{scrub(record.message, secrets)} [a recent fetch failed ({record.failures} in a "
        f"row); the fleet waits {wait:.1f} s more before asking Zoom again]"
    )


class Backoff:
    """One process's back-off: the error callers get, and until when (monotonic clock).

    ``record()`` a failure of this process (the wait grows with the count) or
    one the fleet remembered (the wait is the record's, bounded by the
    schedule); ``remembered()`` is the error to raise at once, or ``None``
    when a refresh may be tried; ``wait_until()`` is when that becomes true.
    """

    __slots__ = ("_error", "_failures", "_from_fleet", "_seen", "_seen_at", "until")

    def __init__(self) -> None:
        self._error: errors.ZoomS2SError | None = None
        self._failures = 0
        #: The monotonic moment from which a refresh may be tried (read-only for
        #: callers; a plain attribute so hot paths read it without a call).
        self.until = 0.0
        self._from_fleet = False
        self._seen: tuple[int, str, str] | None = None  # the last fleet record read
        self._seen_at = 0.0

    @property
    def failures(self) -> int:
        """Consecutive failures of this process."""
        return self._failures

    @property
    def from_fleet(self) -> bool:
        """Whether the current wait comes from a fleet record (re-checked in the store)."""
        return self._from_fleet

    @property
    def error(self) -> errors.ZoomS2SError | None:
        """The last error recorded (whether or not its wait is over)."""
        return self._error

    def record(
        self, error: errors.ZoomS2SError, *, wait: float | None = None, fleet: bool = False
    ) -> float:
        """Remember ``error``; return the seconds to wait.

        Args:
            error: What callers get meanwhile.
            wait: Seconds to wait; ``None``: the schedule's for this process's count.
            fleet: The wait comes from a fleet record read from the store (not a
                failure of this process: the count stays, and the wait is
                re-checked in the store and ends when the record goes).
        """
        now = _clock.monotonic()
        if not fleet:
            self._failures += 1
        if wait is None:
            wait = backoff_seconds(self._failures)
        self._error = error
        self._from_fleet = fleet
        self.until = now + wait if fleet else max(self.until, now + wait)
        return wait

    def fleet_record(self, record: FailureRecord) -> float:
        """The wait a fleet record may impose here: its own, bounded by local evidence.

        At most :func:`max_delay` of its failure count, counted from when this
        process first saw that record: re-reading the same record (a
        neighbour's clock is broken, or the record was tampered with) never
        extends the wait.
        """
        now = _clock.monotonic()
        seen = (record.failures, record.error_type, record.message)
        if seen != self._seen:
            self._seen, self._seen_at = seen, now
        allowed = self._seen_at + max_delay(record.failures) - now
        return max(0.0, min(record.retry_in, allowed))

    def remembered(self, now: float | None = None) -> errors.ZoomS2SError | None:
        """The error to raise at once, or ``None`` once a refresh may be tried."""
        if self._error is None:
            return None
        if (_clock.monotonic() if now is None else now) >= self.until:
            return None
        return self._error

    def wait_until(self) -> float:
        """The monotonic moment from which a refresh may be tried."""
        return self.until

    def clear(self) -> None:
        """Forget everything: a token arrived, or the fleet's record is gone."""
        self._error = None
        self._failures = 0
        self.until = 0.0
        self._from_fleet = False

    def end_fleet_wait(self) -> None:
        """The fleet's record was deleted or expired: its wait ends now."""
        if self._from_fleet:
            self._error = None
            self.until = 0.0
            self._from_fleet = False
