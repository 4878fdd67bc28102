"""Pub/sub wake-ups for :class:`~zoom_s2s.stores.redis.RedisTokenStore` waiters.

One subscription per store; waiters register before they look at the lock:
``docs/backends.rst`` ("Redis", "Waking waiters").
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from redis.asyncio.client import PubSub

__all__ = ["READ_TIMEOUT", "ChangeListener"]

logger = logging.getLogger("zoom_s2s.stores.redis")

READ_TIMEOUT = 1.0
"""Seconds one read of the subscription waits before looking again (not a wake-up delay:
a message is handled as soon as it arrives)."""


class ChangeListener:
    """Turns messages on subscribed channels into per-channel events.

    Args:
        client: A ``redis.asyncio`` client with a ``pubsub()`` method.
        name: The store's name, for log messages (no password).
    """

    def __init__(self, client: Any, *, name: str) -> None:
        self._client = client
        self._name = name
        self._lock = asyncio.Lock()
        self._pubsub: PubSub | None = None
        self._reader: asyncio.Task[None] | None = None
        self._subscribed: dict[str, asyncio.Future[bool]] = {}  # channel -> confirmed?
        self._changed: dict[str, asyncio.Event] = {}

    def event(self, channel: str) -> asyncio.Event:
        """The event the next message on ``channel`` sets (shared by its waiters)."""
        return self._changed.setdefault(channel, asyncio.Event())

    async def subscribe(self, channel: str, timeout: float) -> bool:
        """Subscribe to ``channel`` once; return whether the server confirmed it in time.

        Raises:
            redis.RedisError: The subscription could not be sent.
        """
        confirmed = self._subscribed.get(channel)
        if confirmed is None:
            confirmed = asyncio.get_running_loop().create_future()
            self._subscribed[channel] = confirmed
            try:
                await self._send_subscribe(channel)
            except BaseException:
                if self._subscribed.get(channel) is confirmed:
                    del self._subscribed[channel]
                if not confirmed.done():
                    confirmed.set_result(False)
                raise
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(asyncio.shield(confirmed), timeout)
        return confirmed.done() and confirmed.result()

    async def _send_subscribe(self, channel: str) -> None:
        async with self._lock:
            if self._pubsub is not None:
                await self._pubsub.subscribe(channel)
                return
            initialize = getattr(self._client, "initialize", None)
            if callable(initialize):  # RedisCluster routes SUBSCRIBE by its slot map
                await initialize()
            pubsub = self._client.pubsub()
            try:
                await pubsub.subscribe(channel)
            except BaseException:
                with contextlib.suppress(Exception):
                    await pubsub.aclose()
                raise
            self._pubsub = pubsub
            self._reader = asyncio.create_task(self._read_messages(pubsub))

    async def _read_messages(self, pubsub: PubSub) -> None:
        try:
            # Not "while True": a cancellation that lands as a read times out
            # can be lost inside redis-py (it returns None); aclose() first
            # clears self._pubsub, so the loop ends on its next turn anyway.
            while self._pubsub is pubsub:
                # An explicit timeout: None on expiry, on redis-py 5 as on 8.
                message = await pubsub.get_message(timeout=READ_TIMEOUT)
                if not message:
                    continue
                channel = message["channel"]
                if isinstance(channel, bytes):
                    channel = channel.decode()
                confirmed = self._subscribed.get(channel)
                if message["type"] == "subscribe" and confirmed and not confirmed.done():
                    confirmed.set_result(True)
                elif message["type"] in ("message", "subscribe"):
                    # A repeated "subscribe" follows a reconnect: anything may have changed.
                    self._wake(channel)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            if self._pubsub is pubsub:  # not closing
                # The exception text of redis-py never holds the password.
                logger.warning(
                    "pub/sub on Redis at %s failed (%s: %s); waiters re-subscribe on their "
                    "next wait", self._name, exc.__class__.__name__, exc,
                )
                self._pubsub = None
                self._forget()
            with contextlib.suppress(Exception):
                await _close(pubsub)

    def _wake(self, channel: str) -> None:
        event = self._changed.pop(channel, None)
        if event is not None:
            event.set()

    def _forget(self) -> None:
        """Wake every waiter and drop every subscription."""
        for confirmed in self._subscribed.values():
            if not confirmed.done():
                confirmed.set_result(False)
        self._subscribed.clear()
        for channel in list(self._changed):
            self._wake(channel)

    async def aclose(self) -> None:
        """Stop the reader and close the subscription connection."""
        reader, self._reader = self._reader, None
        pubsub, self._pubsub = self._pubsub, None  # ends the reader's loop
        if reader is not None:
            reader.cancel()
            # Bounded: if the cancellation was lost, the loop ends after one read.
            await asyncio.wait({reader}, timeout=READ_TIMEOUT * 2)
            if reader.done() and not reader.cancelled():
                reader.exception()  # retrieved: nothing to report at close
        if pubsub is not None:
            with contextlib.suppress(Exception):
                await _close(pubsub)
        self._forget()


async def _close(pubsub: Any) -> None:
    """Close a subscription; ``Any`` because redis-py types ``aclose`` only from 6 on."""
    await pubsub.aclose()
