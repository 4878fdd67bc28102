"""The aiohttp session a manager or client either borrows or makes and owns."""

from __future__ import annotations

import warnings

import aiohttp

from .errors import UsageError

__all__ = ["SessionSlot"]


class SessionSlot:
    """Holds a borrowed session (never closed here) or one made on first use and owned.

    Args:
        session: A session to borrow, or ``None`` to make one when first needed.
        owner: How to name the owner in messages, e.g. ``"TokenManager"``.
    """

    def __init__(self, session: aiohttp.ClientSession | None, owner: str) -> None:
        self._session = session
        self._owned = session is None
        self._owner = owner

    def get(self) -> aiohttp.ClientSession:
        """The session, made now if owned and not made yet (call inside the event loop).

        Raises:
            UsageError: The borrowed session has been closed.
        """
        session = self._session
        if session is None or session.closed:
            if not self._owned:
                raise UsageError(f"the aiohttp session passed to {self._owner} is closed")
            session = self._session = aiohttp.ClientSession()
        return session

    async def close(self) -> None:
        """Close the session if it is owned; a borrowed one is left alone."""
        session, self._session = self._session, None
        if self._owned and session is not None:
            await session.close()

    def warn_if_unclosed(self, owner_repr: str) -> None:
        """Warn (ResourceWarning) if an owned session was left open; for ``__del__``."""
        session = self._session
        if self._owned and session is not None and not session.closed:
            warnings.warn(
                f"unclosed {owner_repr}; use 'async with {self._owner}(...)' or await aclose()",
                ResourceWarning,
                stacklevel=3,
            )
