"""Lifecycle plumbing shared by every object with a ``with`` block or a child process.

* :class:`ClosedOnExit`: ``with obj:`` calls ``obj.close()`` on the way out
  (the sync facades, the test fleet, the test servers).
* :class:`AsyncClosedOnExit`: ``async with obj:`` awaits ``obj.aclose()``, and
  an object dropped while its owned aiohttp session is open warns
  (``ResourceWarning``), as aiohttp's own session does.
* :func:`die_with_parent`: a child process asks Linux to end it when its parent dies.
"""

from __future__ import annotations

import contextlib
import signal
import sys
from types import TracebackType
from typing import TYPE_CHECKING, TypeVar

if TYPE_CHECKING:
    from ._session import SessionSlot

__all__ = ["AsyncClosedOnExit", "ClosedOnExit", "die_with_parent"]

_C = TypeVar("_C", bound="ClosedOnExit")


class ClosedOnExit:
    """``with obj:`` returns ``obj`` and calls ``obj.close()`` on the way out."""

    def close(self) -> None:
        raise NotImplementedError

    def __enter__(self: _C) -> _C:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class AsyncClosedOnExit:
    """``async with obj:`` awaits ``obj.aclose()`` on the way out; warns if left open.

    Subclasses keep their aiohttp session in ``self._session`` (a
    :class:`~zoom_s2s._session.SessionSlot`) and define ``__aenter__``.
    """

    _session: SessionSlot

    async def aclose(self) -> None:
        raise NotImplementedError

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    def __del__(self) -> None:
        slot = getattr(self, "_session", None)  # absent if __init__ raised
        if slot is not None:
            slot.warn_if_unclosed(repr(self))


def die_with_parent(signum: int = signal.SIGKILL) -> None:
    """Ask Linux to send ``signum`` to this process when its parent dies.

    A no-op elsewhere or when ``prctl`` is not reachable. SIGKILL (the default)
    also ends a stopped process; a child that must clean up can ask for
    SIGTERM. Call it in the child (or as ``preexec_fn``); the setting survives
    ``exec`` but is cleared when the process changes its user id.
    """
    if not sys.platform.startswith("linux"):
        return
    import ctypes

    with contextlib.suppress(OSError, AttributeError):
        pr_set_pdeathsig = 1
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(pr_set_pdeathsig, int(signum), 0, 0, 0)

