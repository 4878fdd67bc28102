"""``LISTEN``/``NOTIFY`` wake-ups for :class:`~zoom_s2s.stores.postgres.PostgresTokenStore` waiters.

One listening connection per store, apart from the pool: ``docs/backends.rst``
("PostgreSQL", "Waking waiters").
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any

__all__ = ["ChangeListener"]

logger = logging.getLogger("zoom_s2s.stores.postgres")


class ChangeListener:
    """Turns notifications on one channel into per-key events.

    Args:
        connect: Opens a new asyncpg connection (awaitable factory).
        channel: The channel to ``LISTEN`` on.
        name: The store's name, for log messages (no password).
    """

    def __init__(
        self, connect: Callable[[], Awaitable[Any]], *, channel: str, name: str
    ) -> None:
        self._connect = connect
        self._channel = channel
        self._name = name
        self._lock = asyncio.Lock()
        self._connection: Any = None
        self._changed: dict[str, asyncio.Event] = {}
        self._closed = False

    @property
    def listening(self) -> bool:
        """Whether the listening connection is open."""
        return self._connection is not None and not self._connection.is_closed()

    def event(self, key: str) -> asyncio.Event:
        """The event the next notification for ``key`` sets (shared by its waiters)."""
        return self._changed.setdefault(key, asyncio.Event())

    async def listen(self) -> None:
        """Open the connection and ``LISTEN``, unless already listening.

        Raises:
            Exception: The backend's, when the connection or ``LISTEN`` fails.
        """
        if self.listening:
            return
        async with self._lock:
            if self.listening or self._closed:
                return
            connection = await self._connect()
            try:
                connection.add_termination_listener(self._terminated)
                await connection.add_listener(self._channel, self._notified)
            except BaseException:
                with contextlib.suppress(Exception):
                    await connection.close(timeout=1)
                raise
            self._connection = connection

    def _notified(self, connection: Any, pid: int, channel: str, payload: str) -> None:
        event = self._changed.pop(payload, None)
        if event is not None:
            event.set()

    def _terminated(self, connection: Any) -> None:
        if connection is self._connection:
            self._connection = None
            if not self._closed:
                logger.warning(
                    "the LISTEN connection to PostgreSQL at %s ended; waiters listen again "
                    "on their next wait", self._name,
                )
        self._forget()

    def _forget(self) -> None:
        """Wake every waiter."""
        for key in list(self._changed):
            event = self._changed.pop(key, None)
            if event is not None:
                event.set()

    async def aclose(self) -> None:
        """Close the listening connection and wake every waiter."""
        self._closed = True
        connection, self._connection = self._connection, None
        if connection is not None:
            with contextlib.suppress(Exception):
                await connection.close(timeout=2)
        self._forget()
