"""What every RateLimitStore must do: shared by the unit tests (memory, file, encrypted)
and the system tests (a real redis-server, a Redis Cluster).

Each check takes two stores that share state (two processes' views of one
backend; for the memory store, the same object twice) and a fresh scope.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from zoom_s2s import ConfigurationError
from zoom_s2s.ratelimit import RateLimitStore

Check = Callable[[RateLimitStore, RateLimitStore, str], Awaitable[None]]
CHECKS: dict[str, Check] = {}

# Reservations are computed, not slept through. A wait the store answers is
# counted from the store's "now", which moves while the test runs: a wait of X
# seconds after a reference call reads X less the time since that call. The
# checks measure that time on this machine (near()), so a loaded machine's delays
# between calls widen the bound by exactly as much as they took, never more.
EPS = 0.05  # seconds: the store's clock resolution and rounding


def near(value: float, expected: float, since: float) -> None:
    """Assert ``value`` is ``expected`` less at most the time since ``since``.

    ``since`` is ``time.monotonic()`` taken before the call that set the reference.
    """
    elapsed = time.monotonic() - since
    assert expected - elapsed - EPS <= value <= expected + EPS, (value, expected, elapsed)


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
    waits, asked = [], []
    for store in (a, b, a, b, a):
        asked.append(time.monotonic())
        permit = await _take(store, key)
        assert permit.granted
        waits.append(permit.wait)
    assert waits[0] == pytest.approx(0, abs=EPS)
    for i in range(1, len(waits)):
        near(waits[i] - waits[i - 1], 1.0, asked[i - 1])


@check
async def a_burst_goes_at_once_then_spacing(
    a: RateLimitStore, b: RateLimitStore, scope: str
) -> None:
    key = f"{scope}.medium"
    started = time.monotonic()
    waits = [(await _take(s, key, burst=3)).wait for s in (a, b, a, b)]
    assert max(waits[:3]) == pytest.approx(0, abs=EPS)
    near(waits[3], 1.0, started)


@check
async def a_slot_beyond_max_wait_is_not_reserved(
    a: RateLimitStore, b: RateLimitStore, scope: str
) -> None:
    key = f"{scope}.heavy"
    started = time.monotonic()
    await _take(a, key, interval=3.0)  # the next slot is 3 s away
    refused = await _take(b, key, interval=3.0, max_wait=1.5)
    assert not refused.granted
    near(refused.wait, 3.0, started)
    granted = await _take(a, key, interval=3.0)  # the refusal reserved nothing
    assert granted.granted
    near(granted.wait, 3.0, started)


@check
async def a_pause_holds_slots_and_shifts_reservations(
    a: RateLimitStore, b: RateLimitStore, scope: str
) -> None:
    key = f"{scope}.light"
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


@check
async def a_pause_only_extends(a: RateLimitStore, b: RateLimitStore, scope: str) -> None:
    key = f"{scope}.light"
    started = time.monotonic()
    await a.pause(key, 4.0)
    await b.pause(key, 1.0)
    near((await a.paused(key)).left, 4.0, started)
    assert (await b.paused(f"{scope}.other")).left == 0


@check
async def a_daily_pause_refuses_at_once(
    a: RateLimitStore, b: RateLimitStore, scope: str
) -> None:
    key = f"{scope}.heavy"
    started = time.monotonic()
    await a.pause(key, 3600.0, daily=True)
    permit = await _take(b, key, max_wait=30.0)
    assert not permit.granted
    near(permit.wait, 3600.0, started)
    pause = await b.paused(key)
    assert pause.daily
    assert (await _take(b, f"{scope}.light")).granted  # other categories go on


@check
async def a_hold_refuses_only_its_user_and_endpoint(
    a: RateLimitStore, b: RateLimitStore, scope: str
) -> None:
    key, hold = f"{scope}.medium", f"{scope}.uabc123"
    started = time.monotonic()
    await a.pause(hold, 600.0, daily=True)
    held = await _take(b, key, hold=hold)
    assert not held.granted
    near(held.wait, 600.0, started)
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
