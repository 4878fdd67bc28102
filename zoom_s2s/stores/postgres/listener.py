"""``LISTEN``/``NOTIFY`` wake-ups for :class:`~zoom_s2s.stores.postgres.PostgresTokenStore` waiters.

One listening connection per store, apart from the pool, checked while anyone
waits; without it waiters re-read the row: ``docs/backends.rst``
("PostgreSQL", "Waking waiters").
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from . import handoff

__all__ = ["Change", "ChangeListener"]

logger = logging.getLogger("zoom_s2s.stores.postgres")

CHECK_EVERY = 1.0
"""Seconds between pings of the listening connection while anyone waits (and each
ping's timeout): a connection that stopped answering is dropped within twice this."""
RETRY_AFTER = 5.0
"""Seconds before listening is tried again after it failed or was dropped."""


class Change:
    """The next notification for one key, shared by its waiters in this process.

    Attributes:
        event: Set by the notification (or when listening ends).
        sealed: What the notification carried (see
            :mod:`~zoom_s2s.stores.postgres.handoff`); ``""`` for a bare wake-up.
    """

    __slots__ = ("event", "sealed")

    def __init__(self) -> None:
        self.event = asyncio.Event()
        self.sealed = ""


class ChangeListener:
    """Turns notifications on one channel into per-key changes.

    Args:
        connect: Opens a new asyncpg connection (awaitable factory).
        channel: The channel to ``LISTEN`` on.
        name: The store's name, for log messages (no password).
        scrub: Removes the store's secrets from a message.
    """

    def __init__(
        self,
        connect: Callable[[], Awaitable[Any]],
        *,
        channel: str,
        name: str,
        scrub: Callable[[str], str],
    ) -> None:
        self._connect = connect
        self._channel = channel
        self._name = name
        self._scrub = scrub
        self._connection: Any = None
        self._opening: asyncio.Task[None] | None = None
        self._checking: asyncio.Task[None] | None = None
        self._retry_at = 0.0
        self._changed: dict[str, Change] = {}
        self._closed = False

    @property
    def listening(self) -> bool:
        """Whether the listening connection is open."""
        return self._connection is not None and not self._connection.is_closed()

    async def change(self, key: str, *, timeout: float) -> Change | None:
        """The next notification for ``key`` (shared by its waiters).

        Listens first if needed, waiting at most ``timeout`` seconds for it.

        Returns:
            ``None`` when not listening (the connection cannot be opened, or
            did not answer lately): the caller then re-reads the row instead.
        """
        if not self.listening:
            if self._opening is None:
                loop = asyncio.get_running_loop()
                if self._closed or loop.time() < self._retry_at:
                    return None
                self._opening = loop.create_task(self._open())
            await asyncio.wait((self._opening,), timeout=max(0.0, timeout))
            if not self.listening:
                return None
        return self._changed.setdefault(key, Change())

    async def _open(self) -> None:
        """Open the connection and ``LISTEN``; on failure, log it and retry later."""
        try:
            connection = await self._connect()
            try:
                connection.add_termination_listener(self._terminated)
                await connection.add_listener(self._channel, self._notified)
            except BaseException:
                connection.terminate()
                raise
            if self._closed:
                connection.terminate()
                return
            self._connection = connection
            self._checking = asyncio.get_running_loop().create_task(self._check(connection))
        except Exception as exc:
            self._retry_at = asyncio.get_running_loop().time() + RETRY_AFTER
            logger.warning(
                "cannot LISTEN on PostgreSQL at %s (%s: %s); waiters re-read the lock's "
                "row instead, and listening is tried again in %g s",
                self._name, exc.__class__.__name__, self._scrub(str(exc)) or "no detail",
                RETRY_AFTER,
            )
        finally:
            self._opening = None

    async def _check(self, connection: Any) -> None:
        """Ping ``connection`` while anyone waits; drop it when it does not answer.

        A connection whose server side is gone without a word (a NAT or
        firewall dropped it, its backend hangs) delivers no notification and
        no error: only a question shows it.
        """
        while connection is self._connection:
            await asyncio.sleep(CHECK_EVERY)
            if connection is not self._connection or not self._changed:
                continue
            try:
                await connection.fetchval("SELECT 1", timeout=CHECK_EVERY)
            except Exception as exc:
                if connection is self._connection:
                    logger.warning(
                        "the LISTEN connection to PostgreSQL at %s did not answer within %g s "
                        "(%s); dropped: waiters re-read the lock's row until listening again",
                        self._name, CHECK_EVERY, exc.__class__.__name__,
                    )
                    self._retry_at = asyncio.get_running_loop().time() + RETRY_AFTER
                    self._connection = None
                    connection.terminate()
                    self._forget()

    def _notified(self, connection: Any, pid: int, channel: str, payload: str) -> None:
        key, sealed = handoff.parse(payload)
        change = self._changed.pop(key, None)
        if change is not None:
            change.sealed = sealed
            change.event.set()

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
            change = self._changed.pop(key, None)
            if change is not None:
                change.event.set()

    async def aclose(self) -> None:
        """Close the listening connection and wake every waiter."""
        self._closed = True
        for task in (self._opening, self._checking):
            if task is not None:
                task.cancel()
        connection, self._connection = self._connection, None
        if connection is not None:
            with contextlib.suppress(Exception):
                await connection.close(timeout=2)
        self._forget()
