"""Webhook claims: a store's optional capability to hand each webhook delivery to one process.

A backend that can share claims between processes gives its token store a
``webhook_claims`` (a :class:`WebhookClaims`: memory, file, Redis,
PostgreSQL); :func:`claims_of` finds it, through wrappers such as
:class:`~zoom_s2s.EncryptedTokenStore`. :class:`zoom_s2s.webhooks.Receiver`
is its user; ``zoom_s2s.testing.ClaimsContract`` is the backends' test suite
and ``docs/webhooks.rst`` the design.

A *claim* on a key is, by the backend's own clock: free (never taken, or
lapsed), *running* (an owner's lease, extended while its handler runs) or
*done* (kept ``keep`` seconds so retries of the delivery are recognised).
An *order mark* on an object key is the newest ``event_ts`` claimed for that
object; a claim that names an object checks and raises it in the same atomic
step. Keys are at most 128 of ``[A-Za-z0-9_.-]``.
"""

from __future__ import annotations

import math
import re
from typing import Literal

import attrs

from ..errors import ConfigurationError
from .base import Capability

__all__ = ["MAX_KEEP", "ClaimAnswer", "Outcome", "WebhookClaims", "check_claim_key", "claims_of"]

MAX_KEEP = 8 * 86_400.0
"""Longest a claim or order mark is kept, seconds (Zoom's webhook logs go back 7 days)."""

Outcome = Literal["claimed", "done", "busy", "dropped"]
"""``claimed``: taken by this owner; ``done``: handled; ``busy``: another owner's
unexpired lease; ``dropped``: older than its object's newest event, not taken."""

_KEY = re.compile(r"[A-Za-z0-9_.-]{1,128}")


def check_claim_key(key: str) -> str:
    """``key`` if it is 1-128 of ``[A-Za-z0-9_.-]``, else :class:`ConfigurationError`."""
    if not isinstance(key, str) or not _KEY.fullmatch(key):
        raise ConfigurationError(f"claim key {key!r} must be 1-128 of letters, digits, '_.-'")
    return key


def _seconds(name: str, value: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not (
        math.isfinite(value) and 0.001 <= value <= MAX_KEEP
    ):
        raise ConfigurationError(f"{name} must be 0.001 to {MAX_KEEP:g} seconds, got {value!r}")
    return float(value)


@attrs.frozen
class ClaimAnswer:
    """The answer to one :meth:`WebhookClaims.claim`.

    Attributes:
        outcome: See :data:`Outcome`.
        stale: The event is older than the newest one already claimed for its object.
    """

    outcome: Outcome
    stale: bool = False


class WebhookClaims(Capability):
    """Claims on webhook deliveries shared through a backend.

    A backend subclasses it and implements :meth:`_claim`, :meth:`_extend`,
    :meth:`_finish` and :meth:`_release`, which get checked arguments; an
    exception of its store's ``backend_errors`` becomes the store's
    :class:`~zoom_s2s.errors.StoreError`.

    Args:
        store: The token store whose backend keeps the claims (``None``: in memory).
    """

    attribute = "webhook_claims"

    async def claim(
        self,
        key: str,
        owner: str,
        *,
        lease: float,
        keep: float,
        order: str | None = None,
        event_ts: int = 0,
        drop_stale: bool = False,
    ) -> ClaimAnswer:
        """Take ``key`` for ``owner`` for ``lease`` seconds unless it is running or done.

        Args:
            key: The delivery's key.
            owner: A random string, one per claim.
            lease: Seconds the claim lasts unless extended or finished.
            keep: Seconds an order mark is kept.
            order: The object's key: refuse (``drop_stale``) or flag an event
                older than the newest claimed for it, and raise its mark to
                ``event_ts`` otherwise.
            event_ts: The event's ``event_ts`` (milliseconds).
            drop_stale: Take nothing for a stale event (outcome ``dropped``).
        """
        check_claim_key(key)
        check_claim_key(owner)
        if order is not None and check_claim_key(order) == key:
            raise ConfigurationError("a claim's order key must differ from its key")
        if isinstance(event_ts, bool) or not isinstance(event_ts, int) or event_ts < 0:
            raise ConfigurationError(f"event_ts must be a non-negative int, got {event_ts!r}")
        lease, keep = _seconds("lease", lease), _seconds("keep", keep)
        with self._translated("claiming a webhook delivery"):
            return await self._claim(key, owner, lease, keep, order, event_ts, bool(drop_stale))

    async def extend(self, key: str, owner: str, lease: float) -> bool:
        """Renew ``owner``'s running claim for ``lease`` seconds; ``False`` if it lost it."""
        check_claim_key(key)
        lease = _seconds("lease", lease)
        with self._translated("extending a webhook claim"):
            return await self._extend(key, owner, lease)

    async def finish(self, key: str, owner: str, keep: float) -> bool:
        """Mark ``owner``'s claim done for ``keep`` seconds; ``False`` if it lost it."""
        check_claim_key(key)
        keep = _seconds("keep", keep)
        with self._translated("finishing a webhook claim"):
            return await self._finish(key, owner, keep)

    async def release(self, key: str, owner: str) -> bool:
        """Drop ``owner``'s running claim, so a retry is handled; ``False`` if it lost it."""
        check_claim_key(key)
        with self._translated("releasing a webhook claim"):
            return await self._release(key, owner)

    async def _claim(
        self, key: str, owner: str, lease: float, keep: float, order: str | None,
        event_ts: int, drop_stale: bool,
    ) -> ClaimAnswer:
        raise NotImplementedError

    async def _extend(self, key: str, owner: str, lease: float) -> bool:
        raise NotImplementedError

    async def _finish(self, key: str, owner: str, keep: float) -> bool:
        raise NotImplementedError

    async def _release(self, key: str, owner: str) -> bool:
        raise NotImplementedError


def claims_of(store: object) -> WebhookClaims | None:
    """The claims ``store`` provides (its ``webhook_claims``), or a wrapped store's (``inner``)."""
    return WebhookClaims.of(store)


# -- the algorithm, for the backends that run it in Python ---------------------------


@attrs.define
class Record:
    """A claim (``owner`` while running, or ``done``) or an order mark (``newest``).

    ``until`` is on the store's clock.
    """

    until: float = 0.0
    owner: str = ""
    done: bool = False
    newest: int = 0


def take_claim(
    records: dict[str, Record], now: float, key: str, owner: str, lease: float, keep: float,
    order: str | None, event_ts: int, drop_stale: bool,
) -> ClaimAnswer:
    """The claim step over ``records`` (live ones only: the caller drops lapsed ones)."""
    held = records.get(key)
    if held is not None and held.until > now:
        return ClaimAnswer("done" if held.done else "busy")
    stale = False
    if order is not None:
        mark = records.get(order)
        stale = mark is not None and mark.until > now and event_ts < mark.newest
        if stale and drop_stale:
            return ClaimAnswer("dropped", True)
        if not stale:
            records[order] = Record(until=now + keep, newest=event_ts)
    records[key] = Record(until=now + lease, owner=owner)
    return ClaimAnswer("claimed", stale)


def owned(records: dict[str, Record], now: float, key: str, owner: str) -> Record | None:
    """``key``'s running record if ``owner`` holds it unexpired."""
    held = records.get(key)
    if held is None or held.until <= now or held.done or held.owner != owner:
        return None
    return held
