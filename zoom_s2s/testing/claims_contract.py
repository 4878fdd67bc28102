"""The webhook-claims contract as a pytest test class any store's ``webhook_claims`` can run.

It asks for stores the way :class:`~zoom_s2s.testing.StoreContract` does (the
same hooks, so one class may run both)::

    class TestMyStore(StoreContract, ClaimsContract):
        async def make_store(self):
            return MyStore(...)

        async def make_peer(self, store):      # optional: another client (process)
            return MyStore(...)

Stores are closed after each test; every check uses fresh keys, so tests
share one backend safely. ``docs/webhooks.rst`` says what claims must do.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from .. import _clock
from ..errors import ConfigurationError, StoreError
from ..stores.base import TokenStore
from ..stores.claims import WebhookClaims, claims_of

__all__ = ["ClaimsContract"]

LEASE = 30.0
KEEP = 60.0


def _key(kind: str = "r") -> str:
    return f"{kind}.{secrets.token_hex(8)}"


def _owner() -> str:
    return secrets.token_hex(8)


class ClaimsContract:
    """What every :class:`~zoom_s2s.stores.WebhookClaims` must do; subclass to run it."""

    pytestmark = [pytest.mark.asyncio]

    async def make_store(self) -> TokenStore:
        """Return a new store with ``webhook_claims``. Subclasses must override this."""
        raise NotImplementedError("subclasses of ClaimsContract implement make_store()")

    async def make_peer(self, store: TokenStore) -> TokenStore | None:
        """Return another client of ``store``'s backend (another process), or ``None``."""
        return None

    async def make_broken_store(self) -> TokenStore | None:
        """Return a store whose backend fails; ``None`` skips that test."""
        return None

    @staticmethod
    def claims_of(store: TokenStore) -> WebhookClaims:
        """``store``'s claims, or fail the test."""
        claims = claims_of(store)
        assert claims is not None, f"{store!r} offers no webhook_claims"
        return claims

    @pytest_asyncio.fixture
    async def pair(self) -> AsyncIterator[tuple[WebhookClaims, WebhookClaims]]:
        store = await self.make_store()
        peer = None
        try:
            peer = await self.make_peer(store)
            yield self.claims_of(store), self.claims_of(peer or store)
        finally:
            for opened in (peer, store):
                if opened is not None:
                    await opened.aclose()

    async def test_a_delivery_is_claimed_once_then_busy_then_done(
        self, pair: tuple[WebhookClaims, WebhookClaims]
    ) -> None:
        a, b = pair
        key, mine = _key(), _owner()
        assert (await a.claim(key, mine, lease=LEASE, keep=KEEP)).outcome == "claimed"
        assert (await b.claim(key, _owner(), lease=LEASE, keep=KEEP)).outcome == "busy"
        assert await a.finish(key, mine, KEEP)
        assert (await b.claim(key, _owner(), lease=LEASE, keep=KEEP)).outcome == "done"
        assert not await a.release(key, mine)  # a done claim is not released

    async def test_of_many_concurrent_claims_exactly_one_wins(
        self, pair: tuple[WebhookClaims, WebhookClaims]
    ) -> None:
        key = _key()
        answers = await asyncio.gather(
            *(pair[i % 2].claim(key, _owner(), lease=LEASE, keep=KEEP) for i in range(16))
        )
        assert sorted(answer.outcome for answer in answers) == ["busy"] * 15 + ["claimed"]

    async def test_a_released_claim_is_taken_again(
        self, pair: tuple[WebhookClaims, WebhookClaims]
    ) -> None:
        a, b = pair
        key, mine, theirs = _key(), _owner(), _owner()
        await a.claim(key, mine, lease=LEASE, keep=KEEP)
        assert await a.release(key, mine)
        assert (await b.claim(key, theirs, lease=LEASE, keep=KEEP)).outcome == "claimed"
        assert not await a.finish(key, mine, KEEP)  # the claim is theirs now
        assert await b.finish(key, theirs, KEEP)

    async def test_only_the_owner_extends_finishes_or_releases(
        self, pair: tuple[WebhookClaims, WebhookClaims]
    ) -> None:
        a, b = pair
        key, mine, other = _key(), _owner(), _owner()
        await a.claim(key, mine, lease=LEASE, keep=KEEP)
        assert not await b.extend(key, other, LEASE)
        assert not await b.finish(key, other, KEEP)
        assert not await b.release(key, other)
        assert (await b.claim(key, other, lease=LEASE, keep=KEEP)).outcome == "busy"
        assert not await a.extend(_key(), mine, LEASE)  # nothing there

    async def test_a_lapsed_lease_lets_another_owner_in(
        self, pair: tuple[WebhookClaims, WebhookClaims]
    ) -> None:
        a, b = pair
        key, mine, theirs = _key(), _owner(), _owner()
        await a.claim(key, mine, lease=0.3, keep=KEEP)
        await _clock.sleep(0.45)
        assert (await b.claim(key, theirs, lease=LEASE, keep=KEEP)).outcome == "claimed"
        assert not await a.extend(key, mine, LEASE)
        assert not await a.finish(key, mine, KEEP)

    async def test_extending_keeps_the_lease(
        self, pair: tuple[WebhookClaims, WebhookClaims]
    ) -> None:
        a, b = pair
        key, mine = _key(), _owner()
        await a.claim(key, mine, lease=0.4, keep=KEEP)
        await _clock.sleep(0.2)
        assert await a.extend(key, mine, 1.5)
        await _clock.sleep(0.4)
        assert (await b.claim(key, _owner(), lease=LEASE, keep=KEEP)).outcome == "busy"
        assert await a.finish(key, mine, KEEP)

    async def test_a_done_claim_is_kept_for_keep_then_forgotten(
        self, pair: tuple[WebhookClaims, WebhookClaims]
    ) -> None:
        a, b = pair
        key, mine = _key(), _owner()
        await a.claim(key, mine, lease=LEASE, keep=KEEP)
        await a.finish(key, mine, 1.0)  # a second: the next claim lands inside it under load
        assert (await b.claim(key, _owner(), lease=LEASE, keep=KEEP)).outcome == "done"
        await _clock.sleep(1.1)
        assert (await b.claim(key, _owner(), lease=LEASE, keep=KEEP)).outcome == "claimed"

    async def test_an_older_event_of_an_object_is_dropped_or_flagged(
        self, pair: tuple[WebhookClaims, WebhookClaims]
    ) -> None:
        a, b = pair
        order = _key("o")

        async def claim(claims: WebhookClaims, ts: int, drop: bool) -> tuple[str, bool]:
            answer = await claims.claim(
                _key(), _owner(), lease=LEASE, keep=KEEP, order=order, event_ts=ts,
                drop_stale=drop,
            )
            return answer.outcome, answer.stale

        assert await claim(a, 2000, True) == ("claimed", False)
        assert await claim(b, 1000, True) == ("dropped", True)
        assert await claim(b, 1500, False) == ("claimed", True)
        assert await claim(a, 2000, True) == ("claimed", False)  # not older: same instant
        assert await claim(b, 3000, True) == ("claimed", False)
        assert await claim(a, 2500, True) == ("dropped", True)  # the mark moved on
        other = await a.claim(_key(), _owner(), lease=LEASE, keep=KEEP, order=_key("o"),
                              event_ts=1, drop_stale=True)
        assert (other.outcome, other.stale) == ("claimed", False)  # marks are per object

    async def test_order_marks_lapse_after_keep(
        self, pair: tuple[WebhookClaims, WebhookClaims]
    ) -> None:
        a, b = pair
        order = _key("o")
        await a.claim(_key(), _owner(), lease=LEASE, keep=0.3, order=order, event_ts=2000)
        await _clock.sleep(0.45)
        answer = await b.claim(_key(), _owner(), lease=LEASE, keep=KEEP, order=order,
                               event_ts=1000, drop_stale=True)
        assert answer.outcome == "claimed"

    @pytest.mark.parametrize(
        "bad",
        [
            {"key": "has space"},
            {"key": "x" * 129},
            {"owner": ""},
            {"lease": float("nan")},
            {"lease": 0},
            {"keep": float("inf")},
            {"event_ts": -1},
            {"order": "same"},
        ],
    )
    async def test_bad_arguments_are_refused_before_the_backend(
        self, pair: tuple[WebhookClaims, WebhookClaims], bad: dict[str, object]
    ) -> None:
        arguments: dict[str, object] = {
            "key": "same", "owner": "me", "lease": LEASE, "keep": KEEP, "event_ts": 0,
            **bad,
        }
        key, owner = arguments.pop("key"), arguments.pop("owner")
        with pytest.raises(ConfigurationError):
            await pair[0].claim(key, owner, **arguments)  # type: ignore[arg-type]

    async def test_a_failing_backend_is_a_store_error(self) -> None:
        store = await self.make_broken_store()
        if store is None:
            pytest.skip("no broken store to test with")
        try:
            with pytest.raises(StoreError):
                await self.claims_of(store).claim(_key(), _owner(), lease=LEASE, keep=KEEP)
        finally:
            await store.aclose()
