"""The one place zoom-s2s reads time and sleeps, so tests can move time instead of waiting.

``monotonic`` measures local deadlines, ``wall`` is the epoch time that
crosses hosts (a token's ``expires_at``) and ``sleep`` waits. Code reads them
as attributes of this module at call time (``_clock.monotonic()``), never
imports the names, so :class:`zoom_s2s.testing.FakeClock` can swap all three
at once. The defaults are the standard library's, at no extra cost.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

__all__ = ["monotonic", "sleep", "wall"]

monotonic: Callable[[], float] = time.monotonic
wall: Callable[[], float] = time.time
sleep: Callable[[float], Awaitable[None]] = asyncio.sleep
