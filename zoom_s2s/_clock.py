"""The one place zoom-s2s reads time and waits, so tests can move time instead of waiting.

``monotonic`` measures local deadlines, ``wall`` is the epoch time that
crosses hosts (a token's ``expires_at``), ``sleep`` waits and ``wait_for``
bounds a wait by a timeout. Code reads them as attributes of this module at
call time (``_clock.monotonic()``), never imports the names, so
:class:`zoom_s2s.testing.FakeClock` can swap all four at once. The defaults
are the standard library's, at no extra cost.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Protocol, TypeVar

__all__ = ["monotonic", "sleep", "wait_for", "wall"]

T = TypeVar("T")


class WaitFor(Protocol):
    """``asyncio.wait_for``'s shape: the awaitable's result, or TimeoutError after ``timeout`` s."""

    def __call__(self, awaitable: Awaitable[T], timeout: float, /) -> Awaitable[T]: ...


monotonic: Callable[[], float] = time.monotonic
wall: Callable[[], float] = time.time
sleep: Callable[[float], Awaitable[None]] = asyncio.sleep
wait_for: WaitFor = asyncio.wait_for
