"""The RateBudget contract as a pytest test class any store's rate budget can run.

It asks for stores the way :class:`~zoom_s2s.testing.StoreContract` does (the
same hooks, so one class may run both) and tests their ``rate_budget``::

    import pytest
    from zoom_s2s.testing.budget_contract import RateBudgetContract
    from zoom_s2s.testing.contract import StoreContract

    class TestMyStore(StoreContract, RateBudgetContract):
        @pytest.fixture(autouse=True)
        def _backend(self, tmp_path):
            self.path = tmp_path

        async def make_store(self):
            return MyStore(self.path)

        async def make_peer(self, store):      # optional: another client (process)
            return MyStore(self.path)

        async def make_broken_store(self):     # optional: a store whose backend fails
            return MyStore("/nonexistent/dir")

Stores are closed after each test. Every check takes a fresh scope
(:meth:`~RateBudgetContract.new_scope`), so the tests share one backend safely.
Waits are computed, not slept through: each bound allows for the time the
test itself took on a loaded machine. ``docs/stores.rst`` says what a budget
must do.
"""

from __future__ import annotations

import math
import secrets
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio

from ..errors import ConfigurationError, StoreError
from ..stores.base import TokenStore
from ..stores.budget import DAY, DAY_SLACK, Permit, RateBudget, rate_budget_of

__all__ = ["RateBudgetContract"]

EPS = 0.05  # seconds: a backend's clock resolution and rounding


def daily(seconds: float, wall: float) -> float:
    """How long a daily pause of ``seconds`` asked at Unix time ``wall`` lasts: never past
    the next 00:00 UTC (and a minute of slack), so near midnight it is shorter."""
    return min(seconds, (math.floor(wall / DAY) + 1) * DAY - wall + DAY_SLACK)


def near(value: float, expected: float, since: float) -> None:
    """Assert ``value`` is ``expected`` less at most the time since ``since`` (monotonic)."""
    elapsed = time.monotonic() - since
    assert expected - elapsed - EPS <= value <= expected + EPS, (value, expected, elapsed)


async def _take(budget: RateBudget, key: str, **options: Any) -> Permit:
    return await budget.acquire_permit(
        key, **{"interval": 1.0, "burst": 1, "max_wait": 30.0, **options}
    )


class RateBudgetContract:
    """What every :class:`~zoom_s2s.stores.RateBudget` must do; subclass to run it."""

    pytestmark = [pytest.mark.asyncio]  # also runs under pytest-asyncio's strict mode

    async def make_store(self) -> TokenStore:
        """Return a new store with a ``rate_budget``. Subclasses must override this."""
        raise NotImplementedError("subclasses of RateBudgetContract implement make_store()")

    async def make_peer(self, store: TokenStore) -> TokenStore | None:
        """Return another client of ``store``'s backend (another process), or ``None``."""
        return None

    async def make_broken_store(self) -> TokenStore | None:
        """Return a store whose backend fails (unreachable, ...); ``None`` skips that test."""
        return None

    def new_scope(self) -> str:
        """A scope (an account) no other test uses."""
        return "rate-" + secrets.token_hex(6)

    @staticmethod
    def budget_of(store: TokenStore) -> RateBudget:
        """``store``'s rate budget, or fail the test."""
        budget = rate_budget_of(store)
        assert budget is not None, f"{store!r} offers no rate_budget"
        return budget

    @pytest_asyncio.fixture
    async def budgets(self) -> AsyncIterator[tuple[RateBudget, RateBudget]]:
        store = await self.make_store()
        peer = None
        try:
            peer = await self.make_peer(store)
            yield self.budget_of(store), self.budget_of(peer or store)
        finally:
            for opened in (peer, store):
                if opened is not None:
                    await opened.aclose()

    async def test_slots_are_spaced_by_the_interval_across_clients(
        self, budgets: tuple[RateBudget, RateBudget]
    ) -> None:
        a, b = budgets
        key = f"{self.new_scope()}.light"
        waits, asked = [], []
        for budget in (a, b, a, b, a):
            asked.append(time.monotonic())
            permit = await _take(budget, key)
            assert permit.granted
            waits.append(permit.wait)
        assert waits[0] == pytest.approx(0, abs=EPS)
        for i in range(1, len(waits)):
            near(waits[i] - waits[i - 1], 1.0, asked[i - 1])

    async def test_a_burst_goes_at_once_then_spacing(
        self, budgets: tuple[RateBudget, RateBudget]
    ) -> None:
        a, b = budgets
        key = f"{self.new_scope()}.medium"
        started = time.monotonic()
        waits = [(await _take(budget, key, burst=3)).wait for budget in (a, b, a, b)]
        assert max(waits[:3]) == pytest.approx(0, abs=EPS)
        near(waits[3], 1.0, started)

    async def test_a_slot_beyond_max_wait_is_not_reserved(
        self, budgets: tuple[RateBudget, RateBudget]
    ) -> None:
        a, b = budgets
        key = f"{self.new_scope()}.heavy"
        started = time.monotonic()
        await _take(a, key, interval=3.0)  # the next slot is 3 s away
        refused = await _take(b, key, interval=3.0, max_wait=1.5)
        assert not refused.granted
        near(refused.wait, 3.0, started)
        granted = await _take(a, key, interval=3.0)  # the refusal reserved nothing
        assert granted.granted
        near(granted.wait, 3.0, started)

    async def test_a_pause_holds_slots_and_shifts_reservations(
        self, budgets: tuple[RateBudget, RateBudget]
    ) -> None:
        a, b = budgets
        key = f"{self.new_scope()}.light"
        started = time.monotonic()
        first = await _take(a, key)
        second = await _take(a, key)
        near(second.wait, 1.0, started)
        paused_at = time.monotonic()
        await b.pause(key, 5.0)
        pause = await a.paused(key)
        near(pause.left, 5.0, paused_at)
        assert not pause.daily
        # The reservation made before the pause moves by the shift.
        assert pause.shift - first.shift == pytest.approx(5.0, abs=EPS)
        after = await _take(b, key)
        assert after.granted
        assert after.wait >= 5.0 - (time.monotonic() - paused_at) - EPS

    async def test_a_pause_only_extends(self, budgets: tuple[RateBudget, RateBudget]) -> None:
        a, b = budgets
        scope = self.new_scope()
        started = time.monotonic()
        await a.pause(f"{scope}.light", 4.0)
        await b.pause(f"{scope}.light", 1.0)
        near((await a.paused(f"{scope}.light")).left, 4.0, started)
        assert (await b.paused(f"{scope}.other")).left == 0

    async def test_a_daily_pause_refuses_at_once(
        self, budgets: tuple[RateBudget, RateBudget]
    ) -> None:
        a, b = budgets
        scope = self.new_scope()
        started, wall = time.monotonic(), time.time()
        await a.pause(f"{scope}.heavy", 3600.0, daily=True)
        permit = await _take(b, f"{scope}.heavy", max_wait=30.0)
        assert not permit.granted
        near(permit.wait, daily(3600.0, wall), started)
        assert (await b.paused(f"{scope}.heavy")).daily
        assert (await _take(b, f"{scope}.light")).granted  # other categories go on

    async def test_a_lease_reserves_consecutive_slots_in_one_step(
        self, budgets: tuple[RateBudget, RateBudget]
    ) -> None:
        a, b = budgets
        key = f"{self.new_scope()}.light"
        started = time.monotonic()
        lease = await _take(a, key, interval=0.5, cells=4)
        assert lease.granted
        assert lease.wait == pytest.approx(0, abs=EPS)
        assert lease.ahead == pytest.approx(0, abs=EPS)
        # The other client's slot comes after the four leased ones.
        after = await _take(b, key, interval=0.5, cells=2)
        assert after.granted
        near(after.wait, 2.0, started)
        near(after.ahead, 2.0, started)
        third = await _take(a, key, interval=0.5)
        near(third.ahead, 3.0, started)

    async def test_a_lease_honours_a_pause_and_a_daily_block(
        self, budgets: tuple[RateBudget, RateBudget]
    ) -> None:
        a, b = budgets
        scope = self.new_scope()
        started = time.monotonic()
        await a.pause(f"{scope}.light", 2.0)
        lease = await _take(b, f"{scope}.light", interval=0.1, cells=10)
        assert lease.granted
        near(lease.wait, 2.0, started)
        await a.pause(f"{scope}.heavy", daily=True)
        assert not (await _take(b, f"{scope}.heavy", cells=10)).granted

    async def test_a_daily_pause_ends_at_the_backends_midnight_or_retry_after(
        self, budgets: tuple[RateBudget, RateBudget]
    ) -> None:
        a, b = budgets
        scope = self.new_scope()
        started, wall = time.monotonic(), time.time()
        midnight = (math.floor(wall / DAY) + 1) * DAY
        pause = await a.pause(f"{scope}.heavy", daily=True)
        assert pause.daily
        near(pause.left, midnight - wall, started)
        at = await b.pause(f"{scope}.medium", daily=True, until=wall + 120.0)
        near(at.left, daily(120.0, wall), started)
        # A Retry-After past the next reset is bounded by it (and a minute of slack).
        far = await b.pause(f"{scope}.light", daily=True, until=wall + 5 * DAY)
        assert far.left <= midnight - wall + 60 + EPS
        assert (await a.paused(f"{scope}.medium")).daily

    async def test_a_counter_counts_uses_across_clients_up_to_its_limit(
        self, budgets: tuple[RateBudget, RateBudget]
    ) -> None:
        a, b = budgets
        key = f"{self.new_scope()}.user_create"
        started, wall = time.monotonic(), time.time()
        tallies = [await budget.count(key, limit=3) for budget in (a, b, a, b)]
        assert [t.granted for t in tallies] == [True, True, True, False]
        assert [t.remaining for t in tallies] == [2, 1, 0, 0]
        near(tallies[-1].left, (math.floor(wall / DAY) + 1) * DAY - wall, started)
        other = await b.count(f"{key}.h1", limit=3, period=60)
        assert other.granted
        near(other.left, 60.0, started)

    async def test_a_daily_block_refuses_a_counter_at_once(
        self, budgets: tuple[RateBudget, RateBudget]
    ) -> None:
        a, b = budgets
        key = f"{self.new_scope()}.meeting_write.h1"
        assert (await a.count(key, limit=100)).granted
        started, wall = time.monotonic(), time.time()
        await b.pause(key, 600.0, daily=True)
        refused = await a.count(key, limit=100)
        assert not refused.granted
        near(refused.left, daily(600.0, wall), started)

    async def test_notices_list_a_scopes_pauses_in_one_read(
        self, budgets: tuple[RateBudget, RateBudget]
    ) -> None:
        a, b = budgets
        scope, other = self.new_scope(), self.new_scope()
        started, wall = time.monotonic(), time.time()
        assert await b.notices(scope) == {}
        await a.pause(f"{scope}.heavy", daily=True, until=wall + 300)
        await a.pause(f"{scope}.e-abc", 30.0)
        await a.pause(f"{other}.light", 30.0)
        found = await b.notices(scope)
        assert set(found) == {"heavy", "e-abc"}
        assert found["heavy"].daily
        assert not found["e-abc"].daily
        near(found["heavy"].left, daily(300.0, wall), started)
        near(found["e-abc"].left, 30.0, started)

    async def test_bad_arguments_are_configuration_errors(
        self, budgets: tuple[RateBudget, RateBudget]
    ) -> None:
        a, _ = budgets
        scope = self.new_scope()
        for options in ({"interval": 0}, {"interval": float("nan")}, {"burst": 0},
                        {"burst": True}, {"max_wait": -1}, {"cells": 0}, {"cells": 1.5}):
            with pytest.raises(ConfigurationError):
                await _take(a, f"{scope}.light", **options)
        for key in ("nodot", "a.{b}", "a b.c", ""):
            with pytest.raises(ConfigurationError):
                await _take(a, key)
        with pytest.raises(ConfigurationError):
            await a.pause(f"{scope}.light", float("nan"))
        with pytest.raises(ConfigurationError):
            await a.pause(f"{scope}.light")  # neither seconds nor daily
        with pytest.raises(ConfigurationError):
            await a.count(f"{scope}.c", limit=0)

    async def test_a_failing_backend_is_a_store_error(self) -> None:
        broken = await self.make_broken_store()
        if broken is None:
            pytest.skip("the test class does not implement make_broken_store()")
        try:
            budget = self.budget_of(broken)
            with pytest.raises(StoreError, match="rate-limit permit"):
                await _take(budget, f"{self.new_scope()}.light", max_wait=1.0)
            with pytest.raises(StoreError, match="rate-limit"):
                await budget.pause(f"{self.new_scope()}.light", 1.0)
        finally:
            await broken.aclose()
