"""TokenManagerPool: token managers and clients for many Zoom apps, on one session and one store.

A product that integrates with its customers' Zoom holds one Server-to-Server
app per customer: hundreds to tens of thousands of credentials in one fleet.
One :class:`~zoom_s2s.TokenManager` per app, each with its own aiohttp
session and store connection, would open as many connections (and, on Redis,
as many pub/sub connections). The pool shares instead::

    async with TokenManagerPool(store="redis://localhost:6379/0") as pool:
        zoom = pool.client(customer.credentials)      # made on first use, then reused
        user = await zoom.get_user("me")
        token = await pool.manager(customer.credentials).get_token()

What the accounts share, whatever their number: one aiohttp session (its
connector's connection limit applies to all of them), one store object (one
Redis client, so its connection pool, and one pub/sub connection for every
waiter of every account). Each account keeps its own token, single-flight
refresh, back-off and failure record: the store key is per app (account id,
client id and a hash of the secret), so one customer's revoked app never
makes another customer's requests wait.

What an idle account costs: its manager object and its token in memory, and
nothing that runs. There is no task or timer per account; a refresh starts
only when that account's token is asked for. With ``max_idle`` the pool
forgets managers nobody asked for in that long (their tokens stay in the
store, where the next manager for that account finds them). The sweep runs
inside :meth:`TokenManagerPool.manager` calls, at most every quarter of
``max_idle``, so nothing runs for it either.

Why "pool": the pool's point is the resources it pools (one session, one
store connection, one pub/sub connection) under many managers, as a
connection pool shares connections under many requests. The name keeps the
``TokenManager`` family together (``SyncTokenManagerPool`` is its blocking
twin in :mod:`zoom_s2s.sync_pool`).
"""

from __future__ import annotations

import asyncio
import time
import urllib.parse
import weakref
from collections.abc import Iterator, Mapping
from typing import Any

import aiohttp

from ._env import api_url_from_env, token_url_from_env
from ._lifecycle import AsyncClosedOnExit
from ._session import SessionSlot
from .client import ZoomClient
from .errors import ConfigurationError, UsageError
from .manager import TokenManager
from .models import Credentials
from .oauth import validate_url
from .stores.base import TokenStore
from .stores.memory import MemoryTokenStore

__all__ = ["DEFAULT_REDIS_CONNECTIONS", "TokenManagerPool"]

DEFAULT_REDIS_CONNECTIONS = 16
"""Connections to Redis a pool made from a Redis URL keeps at most, whatever the accounts."""

REDIS_SCHEMES = ("redis", "rediss", "unix")


class _Entry:
    """One app in the pool: its credentials, manager, client (if asked for) and last use."""

    __slots__ = ("activity", "client", "credentials", "manager", "used_at")

    def __init__(self, credentials: Credentials, manager: TokenManager, now: float) -> None:
        self.credentials = credentials
        self.manager = manager
        self.client: ZoomClient | None = None
        self.used_at = now
        self.activity = 0  # the manager's counters (summed) at the last sweep


def _activity(manager: TokenManager) -> int:
    """A number that changes whenever ``manager`` is used (its public counters, summed)."""
    stats = manager.stats()
    return (
        stats.hits
        + stats.waits
        + stats.fetches
        + stats.adoptions
        + stats.invalidations
        + stats.failures
    )


class TokenManagerPool(AsyncClosedOnExit):
    """Token managers and API clients for many Zoom apps, sharing one session and one store.

    Use it as ``async with TokenManagerPool(store=...) as pool`` (or call
    :meth:`aclose`), inside the event loop that uses it; then
    :meth:`manager` and :meth:`client` give each app's manager and client,
    made on first use and reused after.

    An app is its account id and client id. Given the same ids with a new
    secret (the customer rotated it), the pool replaces that app's manager and
    client: the new manager starts afresh (its own store key, no remembered
    failure), and the old ones are no longer handed out. Managers and clients
    the pool has replaced or forgotten keep working for whoever still holds
    them, and are closed with the pool; ask the pool each time rather than
    keeping them (a lookup is a dict read).

    Args:
        store: Where every app's token is shared: a :class:`TokenStore`, a
            store URL (``"redis://..."``) or ``None`` for one private
            :class:`MemoryTokenStore`. One store serves every app.
        token_url: Zoom's token endpoint; default ``$ZOOM_TOKEN_URL`` or
            ``https://zoom.us/oauth/token``.
        base_url: The API base of the clients; default ``$ZOOM_API_URL`` or
            ``https://api.zoom.us/v2``.
        session: An aiohttp session to share (not closed by the pool); by
            default the pool makes one, on first use, and closes it.
        max_idle: Forget an app's manager and client after this many seconds
            without use (``None``: never). Its token stays in the store.
        close_store: Close the store in :meth:`aclose`; by default only a
            store the pool made (from ``None`` or a URL) is closed.
        client_options: Other :class:`~zoom_s2s.ZoomClient` arguments for
            every client (``use_token_api_url``, ``retry``, ...).
        store_options: Options for :func:`~zoom_s2s.store_from_url` when
            ``store`` is a URL. For a Redis URL ``max_connections`` defaults
            to :data:`DEFAULT_REDIS_CONNECTIONS`: however many accounts
            refresh at once, the process keeps at most that many connections
            to Redis (pub/sub included); commands wait for a free one.
        **manager_options: Other :class:`~zoom_s2s.TokenManager` arguments for
            every manager (``refresh_margin``, ``retry``, ``hooks``, ...).

    Raises:
        ConfigurationError: An argument a manager or client would reject, or
            one the pool sets itself (``session`` in ``client_options``, ...).
    """

    def __init__(
        self,
        *,
        store: TokenStore | str | None = None,
        token_url: str | None = None,
        base_url: str | None = None,
        session: aiohttp.ClientSession | None = None,
        max_idle: float | None = None,
        close_store: bool | None = None,
        client_options: Mapping[str, Any] | None = None,
        store_options: Mapping[str, Any] | None = None,
        **manager_options: Any,
    ) -> None:
        client_options = dict(client_options or {})
        if "session" in client_options:
            raise ConfigurationError(
                "client_options must not set session: the clients use the pool's session"
            )
        if max_idle is not None and (
            isinstance(max_idle, bool)
            or not isinstance(max_idle, (int, float))
            or not max_idle > 0
        ):
            raise ConfigurationError(
                f"max_idle must be a positive number of seconds or None, got {max_idle!r}"
            )
        allow_insecure_http = bool(manager_options.get("allow_insecure_http", False))
        self.token_url = token_url_from_env() if token_url is None else token_url
        self.base_url = api_url_from_env() if base_url is None else base_url
        validate_url(self.token_url, "token_url", allow_insecure_http=allow_insecure_http)
        # Fail now on bad options, not on the first account (this makes no I/O).
        probe = Credentials("pool-check", "pool-check", "pool-check")
        client_options.setdefault("allow_insecure_http", allow_insecure_http)
        try:
            probe_manager = TokenManager(
                probe, store=MemoryTokenStore(), token_url=self.token_url, **manager_options
            )
            ZoomClient(probe_manager, self.base_url, **client_options)
        except TypeError as exc:
            raise ConfigurationError(f"unexpected option for TokenManagerPool: {exc}") from None

        self._owns_store = not isinstance(store, TokenStore) if close_store is None else close_store
        if store is None:
            store = MemoryTokenStore()
        elif isinstance(store, str):
            from .stores.url import store_from_url

            options = dict(store_options or {})
            if urllib.parse.urlsplit(store).scheme.lower() in REDIS_SCHEMES:
                # A burst over many accounts must not open a connection per account.
                options.setdefault("max_connections", DEFAULT_REDIS_CONNECTIONS)
            store = store_from_url(store, **options)
        self.store: TokenStore = store
        self.max_idle = None if max_idle is None else float(max_idle)
        self._manager_options = manager_options
        self._client_options = client_options
        self._session = SessionSlot(session, "TokenManagerPool")
        self._entries: dict[tuple[str, str], _Entry] = {}
        # Replaced or forgotten managers and clients someone may still hold:
        # closed with the pool if they are still alive then.
        self._released: weakref.WeakSet[TokenManager | ZoomClient] = weakref.WeakSet()
        self._next_sweep = 0.0 if self.max_idle is None else time.monotonic() + self.max_idle / 4
        self._closed = False

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        accounts = len(self._entries)
        return f"TokenManagerPool(store={self.store.name!r}, accounts={accounts}, {state})"

    def __len__(self) -> int:
        """How many apps have a manager in the pool now."""
        return len(self._entries)

    def __contains__(self, credentials: object) -> bool:
        """Whether the pool holds a manager for exactly these credentials."""
        if not isinstance(credentials, Credentials):
            return False
        entry = self._entries.get((credentials.account_id, credentials.client_id))
        return entry is not None and entry.credentials == credentials

    def __iter__(self) -> Iterator[Credentials]:
        """The credentials of every app in the pool (a snapshot)."""
        return iter([entry.credentials for entry in self._entries.values()])

    # -- the public API ---------------------------------------------------------------

    def manager(self, credentials: Credentials) -> TokenManager:
        """The token manager of the app ``credentials`` name, made on first use.

        Call it inside the pool's event loop.

        Raises:
            ConfigurationError: ``credentials`` is not a :class:`Credentials`.
            UsageError: The pool is closed, or no event loop runs.
        """
        if self.max_idle is None:  # the hot path, inlined: one dict read
            try:
                entry = self._entries.get((credentials.account_id, credentials.client_id))
            except AttributeError:
                entry = None
            if entry is not None and entry.credentials is credentials:
                return entry.manager
        return self._entry(credentials).manager

    def client(self, credentials: Credentials) -> ZoomClient:
        """The API client of the app ``credentials`` name, on its manager, made on first use.

        It uses the pool's session, ``base_url`` and ``client_options``.

        Raises:
            ConfigurationError: ``credentials`` is not a :class:`Credentials`.
            UsageError: The pool is closed, or no event loop runs.
        """
        entry = self._entry(credentials)
        client = entry.client
        if client is None:
            client = entry.client = ZoomClient(
                entry.manager, self.base_url, self._session.get(), **self._client_options
            )
        return client

    def discard(self, credentials: Credentials) -> bool:
        """Forget the app ``credentials`` name (any secret); ``True`` if it was there.

        Its manager and client keep working for whoever holds them and are
        closed with the pool; its token stays in the store.
        """
        entry = self._entries.pop((credentials.account_id, credentials.client_id), None)
        if entry is None:
            return False
        self._release(entry)
        return True

    def evict_idle(self) -> int:
        """Forget now every app unused for ``max_idle`` seconds; return how many.

        The pool also does this by itself, at most every quarter of
        ``max_idle``, when :meth:`manager` or :meth:`client` is called.
        Without ``max_idle`` it does nothing.
        """
        if self.max_idle is None:
            return 0
        now = time.monotonic()
        self._next_sweep = now + self.max_idle / 4
        evicted = 0
        for key, entry in list(self._entries.items()):
            activity = _activity(entry.manager)
            if activity != entry.activity:  # used since the last sweep, perhaps directly
                entry.activity = activity
                entry.used_at = now
            elif now - entry.used_at >= self.max_idle:
                del self._entries[key]
                self._release(entry)
                evicted += 1
        return evicted

    async def aclose(self) -> None:
        """Close every manager and client, the session and store if the pool made them.

        Idempotent. Callers still waiting for a token get :class:`UsageError`.
        """
        if self._closed:
            return
        self._closed = True
        entries, self._entries = list(self._entries.values()), {}
        released = list(self._released)
        self._released = weakref.WeakSet()
        closing: list[Any] = []
        for entry in entries:
            if entry.client is not None:
                closing.append(entry.client.aclose())
            closing.append(entry.manager.aclose())
        closing += [item.aclose() for item in released]
        await asyncio.gather(*closing, return_exceptions=True)
        await self._session.close()
        if self._owns_store:
            await self.store.aclose()

    async def __aenter__(self) -> TokenManagerPool:
        if self._closed:
            raise UsageError("this TokenManagerPool is closed; create a new one")
        return self

    # -- internals --------------------------------------------------------------------

    def _entry(self, credentials: Credentials) -> _Entry:
        try:
            entry = self._entries.get((credentials.account_id, credentials.client_id))
        except AttributeError:  # not Credentials: _add says so
            entry = None
        if entry is not None and (
            entry.credentials is credentials or entry.credentials == credentials
        ):
            if self.max_idle is not None:
                now = time.monotonic()
                entry.used_at = now
                if now >= self._next_sweep:
                    self.evict_idle()
            return entry
        return self._add(credentials, entry)

    def _add(self, credentials: Credentials, replaced: _Entry | None) -> _Entry:
        if not isinstance(credentials, Credentials):
            raise ConfigurationError(
                "credentials must be a zoom_s2s.Credentials, e.g. "
                "Credentials(account_id, client_id, client_secret)"
            )
        if self._closed:
            raise UsageError("this TokenManagerPool is closed; create a new one")
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            raise UsageError(
                "TokenManagerPool.manager() and .client() must be called inside the pool's "
                "event loop (the managers share its aiohttp session); from threads, use "
                "zoom_s2s.sync_pool.SyncTokenManagerPool"
            ) from None
        manager = TokenManager(
            credentials,
            store=self.store,
            close_store=False,
            token_url=self.token_url,
            session=self._session.get(),
            **self._manager_options,
        )
        if replaced is not None:  # a new secret for the same app: start afresh
            self._release(replaced)
        now = time.monotonic()
        entry = _Entry(credentials, manager, now)
        self._entries[(credentials.account_id, credentials.client_id)] = entry
        if self.max_idle is not None and now >= self._next_sweep:
            self.evict_idle()
        return entry

    def _release(self, entry: _Entry) -> None:
        self._released.add(entry.manager)
        if entry.client is not None:
            self._released.add(entry.client)
