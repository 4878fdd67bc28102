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

import secrets
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio

from ..errors import ConfigurationError, StoreError
from ..stores.base import TokenStore
from ..stores.budget import Permit, RateBudget, rate_budget_of

__all__ = ["RateBudgetContract"]

EPS = 0.05  # seconds: a backend's clock resolution and rounding


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
        started = time.monotonic()
        await a.pause(f"{scope}.heavy", 3600.0, daily=True)
        permit = await _take(b, f"{scope}.heavy", max_wait=30.0)
        assert not permit.granted
        near(permit.wait, 3600.0, started)
        assert (await b.paused(f"{scope}.heavy")).daily
        assert (await _take(b, f"{scope}.light")).granted  # other categories go on

    async def test_a_hold_refuses_only_its_user_and_endpoint(
        self, budgets: tuple[RateBudget, RateBudget]
    ) -> None:
        a, b = budgets
        scope = self.new_scope()
        key, hold = f"{scope}.medium", f"{scope}.uabc123"
        started = time.monotonic()
        await a.pause(hold, 600.0, daily=True)
        held = await _take(b, key, hold=hold)
        assert not held.granted
        near(held.wait, 600.0, started)
        assert (await _take(b, key, hold=f"{scope}.uother")).granted
        assert (await b.paused(hold)).daily

    async def test_bad_arguments_are_configuration_errors(
        self, budgets: tuple[RateBudget, RateBudget]
    ) -> None:
        a, _ = budgets
        scope = self.new_scope()
        for options in ({"interval": 0}, {"interval": float("nan")}, {"burst": 0},
                        {"burst": True}, {"max_wait": -1}):
            with pytest.raises(ConfigurationError):
                await _take(a, f"{scope}.light", **options)
        for key in ("nodot", "a.{b}", "a b.c", ""):
            with pytest.raises(ConfigurationError):
                await _take(a, key)
        with pytest.raises(ConfigurationError):
            await a.pause(f"{scope}.light", float("nan"))
        with pytest.raises(ConfigurationError, match="scope"):
            await _take(a, f"{scope}.light", hold=f"{self.new_scope()}.uabc")

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
