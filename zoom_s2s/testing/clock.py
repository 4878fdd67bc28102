"""FakeClock: virtual time, so tests move time instead of sleeping (see ``zoom_s2s._clock``)."""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import threading
import time
from collections.abc import Awaitable
from types import TracebackType
from typing import Any, TypeVar

from .. import _clock
from ..errors import UsageError

__all__ = ["FakeClock"]

T = TypeVar("T")


class FakeClock:
    """Virtual time for the token manager, its back-off, the memory store and the rate limiter.

    ``with FakeClock() as clock:`` (or the ``fake_clock`` pytest fixture)
    swaps zoom-s2s's clocks, sleeps and timed waits for virtual ones, and puts
    the real ones back on exit. Virtual time starts at the real time and moves
    only when:

    * the test calls :meth:`advance` (both clocks at once) or :meth:`step_wall`
      (the wall clock alone, as an NTP step does);
    * the event loop has nothing left to do but wait while a virtual sleep or
      timed wait is pending: time then jumps to the earliest deadline and that
      waiter wakes, as with trio's autojump clock. Sleeps therefore end at
      once and in deadline order; a test lets ``s`` seconds pass, with all
      that falls due meanwhile, by awaiting ``clock.sleep(s)``.

    :class:`FakeZoom`'s latency and fault delays are virtual too. What runs
    outside the event loop (threads, processes) and what sleeps without
    zoom-s2s's clock (aiohttp's timeouts; stamina's back-off between token
    request retries, which ``stamina.set_testing(True)`` makes instant) keeps
    real time, and virtual time may jump while such work is pending: use it
    with the async ``fake_zoom`` fixture and in-process stores. Needs a
    selector event loop (asyncio's default on Linux and macOS).
    """

    def __init__(self) -> None:
        self._monotonic = time.monotonic()
        self._wall_offset = time.time() - self._monotonic
        self._timers: list[tuple[float, int, asyncio.Future[None]]] = []  # a heap
        self._order = itertools.count()
        self._lock = threading.Lock()
        self._saved: tuple[Any, ...] | None = None
        self._selectors: list[tuple[asyncio.AbstractEventLoop, _JumpWhenIdle]] = []

    def __repr__(self) -> str:
        return f"FakeClock(monotonic={self._monotonic:.3f}, pending={len(self._timers)})"

    # -- the clocks ---------------------------------------------------------------------

    def monotonic(self) -> float:
        """Virtual ``time.monotonic()``."""
        return self._monotonic

    def wall(self) -> float:
        """Virtual ``time.time()``."""
        return self._monotonic + self._wall_offset

    def advance(self, seconds: float) -> None:
        """Move both clocks ``seconds`` ahead at once; the waits due by then end.

        Raises:
            ValueError: ``seconds`` is negative (only the wall clock steps back:
                see :meth:`step_wall`).
        """
        if seconds < 0:
            raise ValueError(f"time does not go back ({seconds:g} s); step_wall() steps the wall")
        with self._lock:
            self._monotonic += seconds
            self._wake_due()

    def step_wall(self, seconds: float) -> None:
        """Step the wall clock alone by ``seconds`` (back if negative); deadlines do not move."""
        self._wall_offset += seconds

    # -- the waits ----------------------------------------------------------------------

    async def sleep(self, seconds: float) -> None:
        """Virtual ``asyncio.sleep()``: ends when virtual time reaches ``now + seconds``."""
        if seconds <= 0:
            await asyncio.sleep(0)
            return
        await self._timer(seconds)

    async def wait_for(self, awaitable: Awaitable[T], timeout: float) -> T:
        """Virtual ``asyncio.wait_for()``: TimeoutError once virtual time passes ``timeout``."""
        if timeout <= 0:
            return await asyncio.wait_for(awaitable, 0)
        task = asyncio.ensure_future(awaitable)
        timer = self._timer(timeout)
        try:
            await asyncio.wait((task, timer), return_when=asyncio.FIRST_COMPLETED)
            if task.done():
                return task.result()
            raise asyncio.TimeoutError
        finally:
            timer.cancel()
            if not task.done():
                task.cancel()
                await asyncio.wait((task,))
                if not task.cancelled():
                    task.exception()  # retrieved: the timeout is what the caller sees

    def _timer(self, seconds: float) -> asyncio.Future[None]:
        loop = asyncio.get_running_loop()
        self._watch(loop)
        future = loop.create_future()
        with self._lock:
            heapq.heappush(self._timers, (self._monotonic + seconds, next(self._order), future))
        return future

    def _wake_due(self) -> None:
        """Wake every waiter whose deadline has come (the lock is held)."""
        while self._timers and self._timers[0][0] <= self._monotonic:
            _deadline, _order, future = heapq.heappop(self._timers)
            _wake(future)

    def _jump(self, loop: asyncio.AbstractEventLoop) -> bool:
        """Move time to the earliest deadline ``loop`` waits for; ``False`` if it waits for none."""
        with self._lock:
            self._timers = [timer for timer in self._timers if not timer[2].done()]
            heapq.heapify(self._timers)
            deadlines = [deadline for deadline, _, f in self._timers if f.get_loop() is loop]
            if not deadlines:
                return False
            self._monotonic = max(self._monotonic, min(deadlines))
            self._wake_due()
            return True

    def _watch(self, loop: asyncio.AbstractEventLoop) -> None:
        """Make ``loop`` jump virtual time instead of blocking while it waits for one."""
        selector = getattr(loop, "_selector", None)
        if isinstance(selector, _JumpWhenIdle) and selector.clock is self:
            return
        if selector is None or not hasattr(selector, "select"):
            raise UsageError(
                f"FakeClock needs a selector event loop, not {type(loop).__name__}; use "
                "asyncio's default loop (on Windows: asyncio.WindowsSelectorEventLoopPolicy)"
            )
        jumping = _JumpWhenIdle(self, loop, selector)
        loop._selector = jumping  # type: ignore[attr-defined]
        self._selectors.append((loop, jumping))

    # -- installing ---------------------------------------------------------------------

    def __enter__(self) -> FakeClock:
        if self._saved is not None:
            raise UsageError("this FakeClock is already installed")
        self._saved = (_clock.monotonic, _clock.wall, _clock.sleep, _clock.wait_for)
        _clock.monotonic, _clock.wall = self.monotonic, self.wall
        _clock.sleep, _clock.wait_for = self.sleep, self.wait_for
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._saved is None:
            return
        _clock.monotonic, _clock.wall, _clock.sleep, _clock.wait_for = self._saved
        self._saved = None
        for loop, jumping in self._selectors:
            if getattr(loop, "_selector", None) is jumping:
                loop._selector = jumping.selector  # type: ignore[attr-defined]
        self._selectors.clear()
        with self._lock:  # nothing may sleep on a clock that no longer moves
            timers, self._timers = self._timers, []
        for _deadline, _order, future in timers:
            _wake(future)


def _wake(future: asyncio.Future[None]) -> None:
    if not future.done():
        with contextlib.suppress(RuntimeError):  # a closed loop: nobody waits any more
            future.get_loop().call_soon_threadsafe(_set_done, future)


def _set_done(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


class _JumpWhenIdle:
    """An event loop's selector that, where the loop would block, jumps virtual time instead.

    The loop asks its selector to block only when no callback is ready; if no
    I/O is ready either, the loop's only way on is the passing of time.
    """

    def __init__(self, clock: FakeClock, loop: asyncio.AbstractEventLoop, selector: Any) -> None:
        self.clock = clock
        self.loop = loop
        self.selector = selector

    def select(self, timeout: float | None = None) -> Any:
        if (timeout is not None and timeout <= 0) or not self.clock._timers:
            return self.selector.select(timeout)
        events = self.selector.select(0)
        if events or self.clock._jump(self.loop):
            return events
        return self.selector.select(timeout)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.selector, name)
