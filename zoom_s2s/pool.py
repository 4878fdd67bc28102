"""TokenManagerPool: a map from Zoom apps to their managers and clients, over one session and store.

Every app keeps its own token, single-flight refresh, back-off and store key;
the session, the store (so its connections) and the checked options are
shared. Idle apps cost memory only: nothing runs for them. See
``docs/architecture.rst`` ("Pools"); the blocking twin is
:class:`zoom_s2s.sync.SyncTokenManagerPool`.
"""

from __future__ import annotations

import asyncio
import collections
import inspect
import weakref
from collections.abc import Iterator, Mapping
from typing import Any

import aiohttp

from . import _clock
from ._env import api_url_from_env, token_url_from_env
from ._lifecycle import AsyncClosedOnExit
from ._session import SessionSlot
from .client import ZoomClient
from .errors import ConfigurationError, UsageError
from .manager import TokenManager, check_options
from .models import Credentials
from .oauth import validate_url
from .stores.base import TokenStore
from .stores.url import resolve_store

__all__ = ["TokenManagerPool", "check_pool_options"]


class _Entry:
    """One app in the pool: its credentials, manager, client (if asked for) and last use."""

    __slots__ = ("activity", "client", "credentials", "manager", "used_at")

    def __init__(self, credentials: Credentials, manager: TokenManager, now: float) -> None:
        self.credentials = credentials
        self.manager = manager
        self.client: ZoomClient | None = None
        self.used_at = now
        self.activity = _activity(manager)  # when the pool last looked


def _activity(manager: TokenManager) -> tuple[float | None, int]:
    """A value that changes whenever ``manager`` is used (its last use and counters)."""
    n = manager.stats()
    return n.last_used, n.waits + n.fetches + n.adoptions + n.invalidations + n.failures


def _key(credentials: Credentials) -> tuple[str, str]:
    return (credentials.account_id, credentials.client_id)


def check_pool_options(
    *,
    token_url: str | None = None,
    base_url: str | None = None,
    max_idle: float | None = None,
    max_managers: int | None = None,
    client_options: Mapping[str, Any] | None = None,
    close_store: bool | None = None,
    store_options: Mapping[str, Any] | None = None,
    **manager_options: Any,
) -> tuple[str, str, dict[str, Any]]:
    """Raise what :class:`TokenManagerPool` would raise about its options, making nothing.

    The store's options (``store``, ``store_options``, ``close_store``) are
    checked when it is made.

    Returns:
        The token URL, the API base and the client options they resolve to.

    Raises:
        ConfigurationError: An unknown option or a value the pool refuses.
    """
    limits = (("max_idle", max_idle, (int, float)), ("max_managers", max_managers, int))
    for name, value, kind in limits:
        if value is not None and (
            isinstance(value, bool) or not isinstance(value, kind) or not value > 0
        ):
            raise ConfigurationError(f"{name} must be a positive number or None, got {value!r}")
    token_url = token_url_from_env() if token_url is None else token_url
    base_url = api_url_from_env() if base_url is None else base_url
    check_options(token_url=token_url, **manager_options)
    client_options = dict(client_options or {})
    if "session" in client_options:
        raise ConfigurationError(
            "client_options must not set session: the clients use the pool's session"
        )
    client_options.setdefault(
        "allow_insecure_http", bool(manager_options.get("allow_insecure_http", False))
    )
    try:  # names now; values when the first client is made
        inspect.signature(ZoomClient).bind(None, base_url=base_url, session=None, **client_options)
    except TypeError as exc:
        raise ConfigurationError(f"unexpected option in client_options: {exc}") from None
    validate_url(
        base_url, "base_url", allow_insecure_http=bool(client_options["allow_insecure_http"])
    )
    return token_url, base_url, client_options


class TokenManagerPool(AsyncClosedOnExit):
    """Token managers and API clients for many Zoom apps, sharing one session and one store.

    Use it as ``async with TokenManagerPool(store=...) as pool`` (or call
    :meth:`aclose`), inside the event loop that uses it; :meth:`manager` and
    :meth:`client` give each app's manager and client, made on first use and
    reused after::

        async with TokenManagerPool(store="redis://localhost:6379/0") as pool:
            user = await pool.client(customer.credentials).get_user("me")

    An app is its account id and client id. Given the same ids with a new
    secret (the customer rotated it), the pool replaces that app's manager and
    client: the new manager starts afresh (its own store key, no remembered
    failure). Managers and clients the pool has replaced or forgotten keep
    working for whoever still holds them, and are closed with the pool; ask
    the pool each time rather than keeping them (a lookup is a dict read).

    Args:
        store: Where every app's token is shared: a :class:`TokenStore`, a
            store URL (``"redis://..."``) or ``None`` for one private
            :class:`MemoryTokenStore`.
        token_url: Zoom's token endpoint; default ``$ZOOM_TOKEN_URL`` or
            ``https://zoom.us/oauth/token``.
        base_url: The API base of the clients; default ``$ZOOM_API_URL`` or
            ``https://api.zoom.us/v2``.
        session: An aiohttp session to share (not closed by the pool); by
            default the pool makes one, on first use, and closes it.
        max_idle: Forget an app after this many seconds without use (``None``:
            never). Its token stays in the store, where a new manager finds it.
            The pool looks at the least recently used apps, at most every
            quarter of ``max_idle``, inside :meth:`manager` and :meth:`client`.
        max_managers: Hold at most this many apps (``None``: no bound); making
            one more forgets the least recently used.
        close_store: Close the store in :meth:`aclose`; by default only a
            store the pool made (from ``None`` or a URL) is closed.
        client_options: Other :class:`~zoom_s2s.ZoomClient` arguments for
            every client (``use_token_api_url``, ``retry``, ...); their names
            are checked here, their values when the first client is made.
        store_options: :func:`~zoom_s2s.store_from_url` options when ``store``
            is a URL. A Redis store keeps at most
            :data:`~zoom_s2s.stores.url.SHARED_MAX_CONNECTIONS` connections
            (pub/sub included) however many apps refresh at once, unless these
            set ``max_connections``.
        **manager_options: Other :class:`~zoom_s2s.TokenManager` arguments for
            every manager (``refresh_margin``, ``retry``, ``hooks``, ...).

    Raises:
        ConfigurationError: An argument a manager would reject, an unknown
            client option, or one the pool sets itself (``session`` in
            ``client_options``, ...).
    """

    def __init__(
        self,
        *,
        store: TokenStore | str | None = None,
        token_url: str | None = None,
        base_url: str | None = None,
        session: aiohttp.ClientSession | None = None,
        max_idle: float | None = None,
        max_managers: int | None = None,
        close_store: bool | None = None,
        client_options: Mapping[str, Any] | None = None,
        store_options: Mapping[str, Any] | None = None,
        **manager_options: Any,
    ) -> None:
        self.token_url, self.base_url, self._client_options = check_pool_options(
            token_url=token_url,
            base_url=base_url,
            max_idle=max_idle,
            max_managers=max_managers,
            client_options=client_options,
            **manager_options,
        )
        self.max_idle = None if max_idle is None else float(max_idle)
        self.max_managers = max_managers
        self.store, owns_store = resolve_store(store, shared=True, **(store_options or {}))
        self._owns_store = owns_store if close_store is None else close_store
        self._manager_options = manager_options
        self._session = SessionSlot(session, "TokenManagerPool")
        # Least recently used first; reordered only when max_idle or max_managers is set.
        self._entries: collections.OrderedDict[tuple[str, str], _Entry] = (
            collections.OrderedDict()
        )
        self._by_last_use = max_idle is not None or max_managers is not None
        # Replaced or forgotten managers and clients someone may still hold:
        # closed with the pool if they are still alive then.
        self._released: weakref.WeakSet[TokenManager | ZoomClient] = weakref.WeakSet()
        self._next_sweep = 0.0 if self.max_idle is None else _clock.monotonic() + self.max_idle / 4
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
        return isinstance(credentials, Credentials) and self.get(credentials) is not None

    def __iter__(self) -> Iterator[Credentials]:
        """The credentials of every app in the pool (a snapshot)."""
        return iter([entry.credentials for entry in list(self._entries.values())])

    # -- the public API ---------------------------------------------------------------

    def get(self, credentials: Credentials) -> TokenManager | None:
        """The manager the pool holds for exactly ``credentials``, else ``None``.

        Makes nothing and does not count as a use; any thread may call it
        (the blocking pool answers valid tokens with it on the caller's thread).
        """
        try:
            entry = self._entries.get(_key(credentials))
        except AttributeError:  # not Credentials
            return None
        if entry is not None and entry.credentials == credentials:
            return entry.manager
        return None

    def manager(self, credentials: Credentials) -> TokenManager:
        """The token manager of the app ``credentials`` name, made on first use.

        Call it inside the pool's event loop.

        Raises:
            ConfigurationError: ``credentials`` is not a :class:`Credentials`.
            UsageError: The pool is closed, or no event loop runs.
        """
        if not self._by_last_use:  # the hot path, inlined: one dict read
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
            ConfigurationError: ``credentials`` is not a :class:`Credentials`,
                or ``client_options`` hold a value the client refuses.
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
        entry = self._entries.pop(_key(credentials), None)
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
        max_idle = self.max_idle
        if max_idle is None:
            return 0
        now = _clock.monotonic()
        self._next_sweep = now + max_idle / 4
        evicted = 0
        for key, entry in list(self._entries.items()):
            if self._used_since_seen(key, entry, now):
                continue
            if now - entry.used_at >= max_idle:
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
        entries = list(self._entries.values())
        self._entries.clear()
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
            key = _key(credentials)
        except AttributeError:  # not Credentials: _add says so
            return self._add(credentials, None)
        entry = self._entries.get(key)
        if entry is None or not (
            entry.credentials is credentials or entry.credentials == credentials
        ):
            return self._add(credentials, entry)
        if self._by_last_use:
            now = _clock.monotonic()
            entry.used_at = now
            self._entries.move_to_end(key)
            if self.max_idle is not None and now >= self._next_sweep:
                self.evict_idle()
        return entry

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
                "zoom_s2s.sync.SyncTokenManagerPool"
            ) from None
        manager = TokenManager(
            credentials,
            store=self.store,
            close_store=False,
            token_url=self.token_url,
            session=self._session.get(),
            **self._manager_options,
        )
        key = _key(credentials)
        if replaced is not None:  # a new secret for the same app: start afresh
            del self._entries[key]
            self._release(replaced)
        now = _clock.monotonic()
        entry = self._entries[key] = _Entry(credentials, manager, now)
        if self.max_managers is not None:
            self._evict_least_recent(self.max_managers, entry, now)
        if self.max_idle is not None and now >= self._next_sweep:
            self.evict_idle()
        return entry

    def _evict_least_recent(self, keep: int, newest: _Entry, now: float) -> None:
        """Forget the least recently used apps until ``keep`` are left (never ``newest``)."""
        for _ in range(len(self._entries)):
            key, entry = next(iter(self._entries.items()))
            if len(self._entries) <= keep or entry is newest:
                return
            if not self._used_since_seen(key, entry, now):
                del self._entries[key]
                self._release(entry)

    def _used_since_seen(self, key: tuple[str, str], entry: _Entry, now: float) -> bool:
        """Whether the app was used since the pool last looked; if so, it counts as used now.

        Its manager's counters tell, also of uses the pool did not see: a manager
        kept by the caller, the blocking pool's hot path.
        """
        activity = _activity(entry.manager)
        if activity == entry.activity:
            return False
        entry.activity = activity
        entry.used_at = now
        self._entries.move_to_end(key)
        return True

    def _release(self, entry: _Entry) -> None:
        self._released.add(entry.manager)
        if entry.client is not None:
            self._released.add(entry.client)
