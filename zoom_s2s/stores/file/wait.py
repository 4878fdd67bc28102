"""Waiting for an ``flock(2)`` lock without polling and without blocking the event loop.

The blocking call runs in a daemon thread of its own: ``docs/backends.rst``
("A local directory", "Waiting on a lock").
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
import threading

if sys.platform != "win32":
    import fcntl

__all__ = ["flock_wait", "unlock_and_close"]


def unlock_and_close(fd: int) -> None:
    """Release ``fd``'s flock (if any) and close it, ignoring errors."""
    with contextlib.suppress(OSError):
        fcntl.flock(fd, fcntl.LOCK_UN)
    with contextlib.suppress(OSError):
        os.close(fd)


class _Grant:
    """One blocking ``flock()`` in a daemon thread, with a hand-over protocol.

    ``_state`` moves from ``"waiting"`` to exactly one of ``"granted"`` (the
    thread got the lock and the caller owns it), ``"failed"`` (flock raised;
    the caller owns the unlocked descriptor) or ``"abandoned"`` (the caller
    gave up first; the thread owns the descriptor). The guard makes the
    decision atomic between the two sides.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, fd: int, operation: int) -> None:
        self.loop = loop
        self.fd = fd
        self.operation = operation
        self.future: asyncio.Future[None] = loop.create_future()
        self.error: OSError | None = None
        self._guard = threading.Lock()
        self._state = "waiting"

    def run(self) -> None:
        """The thread's body: block in flock(), then hand the outcome over."""
        try:
            fcntl.flock(self.fd, self.operation)
        except OSError as exc:
            with self._guard:
                abandoned = self._state == "abandoned"
                self._state = "failed"
                self.error = exc
            if abandoned:
                with contextlib.suppress(OSError):
                    os.close(self.fd)
            else:
                self._post()
            return
        with self._guard:
            if self._state == "abandoned":
                unlock_and_close(self.fd)
                return
            self._state = "granted"
        self._post()

    def _post(self) -> None:
        try:
            self.loop.call_soon_threadsafe(self._settle)
        except RuntimeError:  # the loop is closed: nobody will take the lock
            if self.abandon() == "granted":
                unlock_and_close(self.fd)
            else:
                with contextlib.suppress(OSError):
                    os.close(self.fd)

    def _settle(self) -> None:
        if not self.future.done():
            self.future.set_result(None)

    def abandon(self) -> str:
        """Give up waiting; return the state decided (see the class docstring)."""
        with self._guard:
            if self._state == "waiting":
                self._state = "abandoned"
            return self._state


async def flock_wait(fd: int, operation: int, timeout: float | None) -> bool:
    """Wait up to ``timeout`` seconds for ``flock(fd, operation)``, off the event loop.

    Takes ownership of ``fd``. Returns ``True`` when the lock is held: ``fd``
    belongs to the caller again, locked. Returns ``False`` on timeout: ``fd``
    is no longer the caller's (closed now, or by the waiting thread once the
    lock comes). The same holds when the caller is cancelled.

    Raises:
        OSError: ``flock()`` failed (``fd`` is closed).
    """
    loop = asyncio.get_running_loop()
    grant = _Grant(loop, fd, operation)
    thread = threading.Thread(target=grant.run, name="zoom-s2s-flock-wait", daemon=True)
    thread.start()
    try:
        await asyncio.wait_for(asyncio.shield(grant.future), timeout)
    except asyncio.TimeoutError:
        state = grant.abandon()
    except BaseException:  # cancelled: let go of whatever the thread got
        state = grant.abandon()
        if state == "granted":
            unlock_and_close(fd)
        elif state == "failed":
            with contextlib.suppress(OSError):
                os.close(fd)
        raise
    else:
        state = grant.abandon()
    if state == "granted":
        return True
    if state == "failed":
        with contextlib.suppress(OSError):
            os.close(fd)
        assert grant.error is not None
        raise grant.error
    return False
