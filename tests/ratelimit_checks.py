"""What every RateLimitStore must do: shared by the unit tests (memory, file, encrypted)
and the system tests (a real redis-server, a Redis Cluster).

Each check takes two stores that share state (two processes' views of one
backend; for the memory store, the same object twice) and a fresh scope.
"""

from __future__ import annotations

import itertools
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from zoom_s2s import ConfigurationError
from zoom_s2s.ratelimit import RateLimitStore

Check = Callable[[RateLimitStore, RateLimitStore, str], Awaitable[None]]
CHECKS: dict[str, Check] = {}

# Reservations are computed, not slept through, so the intervals can be long
# enough (1 s) that a loaded machine's delays between calls (up to SLACK)
# cannot blur one slot into the next.
SLACK = 0.3  # seconds: the store's clock moves while the test runs


def check(function: Check) -> Check:
    CHECKS[function.__name__] = function
    return function


async def _take(store: RateLimitStore, key: str, **kwargs: Any) -> Any:
    options = {"interval": 1.0, "burst": 1, "max_wait": 30.0, **kwargs}
    return await store.acquire_permit(key, **options)


@check
async def slots_are_spaced_by_the_interval_across_stores(
    a: RateLimitStore, b: RateLimitStore, scope: str
) -> None:
    key = f"{scope}.light"
    waits = []
    for store in (a, b, a, b, a):
        permit = await _take(store, key)
        assert permit.granted
        waits.append(permit.wait)
    assert waits[0] == pytest.approx(0, abs=SLACK)
    for earlier, later in itertools.pairwise(waits):
        assert later - earlier == pytest.approx(1.0, abs=SLACK)


@check
async def a_burst_goes_at_once_then_spacing(
    a: RateLimitStore, b: RateLimitStore, scope: str
) -> None:
    key = f"{scope}.medium"
    waits = [(await _take(s, key, burst=3)).wait for s in (a, b, a, b)]
    assert max(waits[:3]) == pytest.approx(0, abs=SLACK)
    assert waits[3] == pytest.approx(1.0, abs=SLACK)


@check
async def a_slot_beyond_max_wait_is_not_reserved(
    a: RateLimitStore, b: RateLimitStore, scope: str
) -> None:
    key = f"{scope}.heavy"
    await _take(a, key, interval=3.0)  # the next slot is 3 s away
    refused = await _take(b, key, interval=3.0, max_wait=1.5)
    assert not refused.granted
    assert refused.wait == pytest.approx(3.0, abs=SLACK)
    granted = await _take(a, key, interval=3.0)  # the refusal reserved nothing
    assert granted.granted
    assert granted.wait == pytest.approx(3.0, abs=SLACK)


@check
async def a_pause_holds_slots_and_shifts_reservations(
    a: RateLimitStore, b: RateLimitStore, scope: str
) -> None:
    key = f"{scope}.light"
    first = await _take(a, key)
    second = await _take(a, key)
    assert second.wait == pytest.approx(1.0, abs=SLACK)
    await b.pause(key, 5.0)
    pause = await a.paused(key)
    assert pause.left == pytest.approx(5.0, abs=SLACK)
    assert not pause.daily
    # The reservation made before the pause moves by the shift.
    assert pause.shift - first.shift == pytest.approx(5.0, abs=SLACK)
    after = await _take(b, key)
    assert after.granted
    assert after.wait >= 5.0 - SLACK


@check
async def a_pause_only_extends(a: RateLimitStore, b: RateLimitStore, scope: str) -> None:
    key = f"{scope}.light"
    await a.pause(key, 4.0)
    await b.pause(key, 1.0)
    assert (await a.paused(key)).left == pytest.approx(4.0, abs=SLACK)
    assert (await b.paused(f"{scope}.other")).left == 0


@check
async def a_daily_pause_refuses_at_once(
    a: RateLimitStore, b: RateLimitStore, scope: str
) -> None:
    key = f"{scope}.heavy"
    await a.pause(key, 3600.0, daily=True)
    permit = await _take(b, key, max_wait=30.0)
    assert not permit.granted
    assert permit.wait == pytest.approx(3600.0, abs=1)
    pause = await b.paused(key)
    assert pause.daily
    assert (await _take(b, f"{scope}.light")).granted  # other categories go on


@check
async def a_hold_refuses_only_its_user_and_endpoint(
    a: RateLimitStore, b: RateLimitStore, scope: str
) -> None:
    key, hold = f"{scope}.medium", f"{scope}.uabc123"
    await a.pause(hold, 600.0, daily=True)
    held = await _take(b, key, hold=hold)
    assert not held.granted
    assert held.wait == pytest.approx(600.0, abs=1)
    assert (await _take(b, key, hold=f"{scope}.uother")).granted
    assert (await b.paused(hold)).daily


@check
async def bad_arguments_are_configuration_errors(
    a: RateLimitStore, b: RateLimitStore, scope: str
) -> None:
    for kwargs in ({"interval": 0}, {"interval": float("nan")}, {"burst": 0},
                   {"burst": True}, {"max_wait": -1}):
        with pytest.raises(ConfigurationError):
            await _take(a, f"{scope}.light", **kwargs)
    for key in ("nodot", "a.{b}", "a b.c", ""):
        with pytest.raises(ConfigurationError):
            await _take(a, key)
    with pytest.raises(ConfigurationError):
        await a.pause(f"{scope}.light", float("nan"))
