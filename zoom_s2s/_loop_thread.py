"""A private event loop on a daemon thread, for blocking faces (``zoom_s2s.sync``, webhooks).

Callers on other threads submit coroutines and block for the answer, with a
timeout; the loop belongs to the process that made it (check :attr:`pid`
after a ``fork()``).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import os
import threading
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from .errors import UsageError

__all__ = ["LoopThread"]

logger = logging.getLogger("zoom_s2s.sync")

T = TypeVar("T")

CLOSE_TIMEOUT = 5.0  # seconds a shutdown waits for the loop to close things


class LoopThread:
    """An event loop running forever on a daemon thread of this process."""

    def __init__(self, name: str) -> None:
        self.pid = os.getpid()
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self._serve, name=name, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        asyncio.set_event_loop(self.loop)
        try:
            self.loop.run_forever()
        finally:
            self.loop.run_until_complete(self.loop.shutdown_asyncgens())
            self.loop.close()

    def run(self, make: Callable[[], Coroutine[Any, Any, T]], timeout: float | None) -> T:
        """Run ``make()`` on the loop and block until it finishes (or ``timeout``).

        Raises:
            TimeoutError: It took longer than ``timeout``; it is cancelled.
            UsageError: Called from the loop's own thread (it would wait forever).
        """
        if threading.get_ident() == self.thread.ident:
            raise UsageError(
                "a zoom_s2s blocking call was made from its own event-loop thread (from a "
                "hook?); it would wait for itself forever. Use the async API there"
            )
        future = asyncio.run_coroutine_threadsafe(make(), self.loop)
        try:
            return future.result(timeout)
        except concurrent.futures.TimeoutError:
            future.cancel()
            raise TimeoutError(f"the zoom_s2s call took longer than {timeout:g} s") from None

    async def _aclose_all(self) -> None:
        """What to close on the loop before it stops (subclasses keep objects there)."""

    def shutdown(self) -> None:
        """Close what lives on the loop, stop it, join the thread (bounded)."""
        if self.pid != os.getpid() or not self.thread.is_alive():
            return
        if threading.get_ident() == self.thread.ident:  # collected on its own loop thread
            self.loop.stop()
            return
        try:
            self.run(self._aclose_all, CLOSE_TIMEOUT)
        except Exception:  # exit must go on; the error is still reported
            logger.warning("closing a zoom_s2s loop thread failed", exc_info=True)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(CLOSE_TIMEOUT)
