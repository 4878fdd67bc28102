"""SyncTokenManagerPool: the blocking facade of :class:`~zoom_s2s.TokenManagerPool`.

As :mod:`zoom_s2s.sync` does for one app, it runs the async pool on a private
event-loop thread per process, started on first use, and every calling
thread submits its call there and blocks for the answer. After ``fork()``
(Celery prefork, gunicorn ``--preload``) the child starts its own loop thread
and builds its own pool (one session, one store) on first use; what it
inherited is left untouched. Give the store as a URL or a factory so each
process builds its own::

    accounts = SyncTokenManagerPool(store="redis://localhost:6379/0")

    @app.task
    def email_of(customer_id: str, user_id: str) -> str | None:
        zoom = accounts.client(credentials_of(customer_id))
        return zoom.get_user(user_id).email

:meth:`SyncTokenManagerPool.manager` gives a per-app object with the
:class:`~zoom_s2s.sync.SyncTokenManager` methods (``get_token``,
``invalidate``, ``stats``), which :class:`zoom_s2s.requests.ZoomAuth` and
:class:`zoom_s2s.httpx.ZoomAuth` accept; :meth:`SyncTokenManagerPool.client`
a :class:`~zoom_s2s.sync.SyncZoomClient` on the pool's shared session.
"""

from __future__ import annotations

import os
import threading
import weakref
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from ._lifecycle import ClosedOnExit
from .client import ZoomClient
from .errors import ConfigurationError, UsageError
from .events import TokenStats
from .models import AccessToken, Credentials
from .pool import TokenManagerPool
from .stores.base import TokenStore
from .sync import StoreSpec, SyncZoomClient, _Holder, _inherited, _Runtime

__all__ = ["SyncPooledManager", "SyncTokenManagerPool"]

T = TypeVar("T")

_pools: weakref.WeakSet[SyncTokenManagerPool] = weakref.WeakSet()


class _PoolRuntime(_Runtime):
    """One process's loop thread and the async pool living on it."""

    def __init__(self) -> None:
        self.pool: TokenManagerPool | None = None
        super().__init__()

    async def _aclose_all(self) -> None:
        pool, self.pool = self.pool, None
        if pool is not None:
            await pool.aclose()
        await super()._aclose_all()


def _after_fork_in_child() -> None:
    # As zoom_s2s.sync does: only this thread survives a fork; start afresh, lazily.
    for facade in list(_pools):
        facade._lock = threading.Lock()
        inherited, facade._holder.runtime = facade._holder.runtime, None
        if inherited is not None:
            _inherited.append(inherited)


if hasattr(os, "register_at_fork"):  # POSIX
    os.register_at_fork(after_in_child=_after_fork_in_child)


class SyncTokenManagerPool(ClosedOnExit):
    """A blocking :class:`~zoom_s2s.TokenManagerPool`, safe across threads and ``fork()``.

    Args:
        store: A store URL (``"redis://..."``, ``"file:///abs/dir"``), a
            callable returning a new :class:`~zoom_s2s.TokenStore` (called in
            each process, on the private loop), a store object (shared as is),
            or ``None`` for a private memory store per process.
        **pool_options: Other :class:`~zoom_s2s.TokenManagerPool` arguments
            (``token_url``, ``base_url``, ``max_idle``, ``client_options`` and
            manager options such as ``retry`` or ``hooks``); not ``session``.

    Raises:
        ConfigurationError: An argument the pool rejects, or ``session``.
    """

    def __init__(self, *, store: StoreSpec = None, **pool_options: Any) -> None:
        if "session" in pool_options:
            raise ConfigurationError(
                "SyncTokenManagerPool cannot reuse an aiohttp session: sessions belong to one "
                "event loop, and the facade runs its own"
            )
        # Fail now, in the caller's thread, on bad arguments (this makes no I/O).
        probe = TokenManagerPool(**pool_options)
        self.token_url = probe.token_url
        self.base_url = probe.base_url
        self._store = store
        self._pool_options = pool_options
        self._lock = threading.Lock()
        self._holder = _Holder()
        self._closed = False
        self._finalizer = weakref.finalize(self, _Holder.shutdown, self._holder)
        _pools.add(self)

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return f"SyncTokenManagerPool(token_url={self.token_url!r}, {state})"

    def manager(self, credentials: Credentials) -> SyncPooledManager:
        """The blocking token manager of the app ``credentials`` name (a cheap view).

        Raises:
            ConfigurationError: ``credentials`` is not a :class:`Credentials`.
        """
        if not isinstance(credentials, Credentials):
            raise ConfigurationError("credentials must be a zoom_s2s.Credentials")
        return SyncPooledManager(self, credentials)

    def client(self, credentials: Credentials) -> SyncPooledClient:
        """A blocking API client of the app ``credentials`` name, on the pool's session.

        Raises:
            ConfigurationError: ``credentials`` is not a :class:`Credentials`.
        """
        return SyncPooledClient(self.manager(credentials))

    def get_token(self, credentials: Credentials, *, timeout: float | None = None) -> AccessToken:
        """A valid token of the app ``credentials`` name; see :meth:`SyncPooledManager.get_token`.

        Raises:
            TokenError: Zoom refused or kept failing, and no valid token exists.
            TimeoutError: ``timeout`` passed.
            UsageError: The pool is closed.
        """
        # Fast path, no thread hop: a fresh token in this process's pool.
        runtime = self._holder.runtime
        if runtime is not None and not self._closed:
            assert isinstance(runtime, _PoolRuntime)
            pool = runtime.pool
            if pool is not None:
                entry = pool._entries.get((credentials.account_id, credentials.client_id))
                if entry is not None and entry.credentials == credentials:
                    token = entry.manager.peek_token()
                    if token is not None:
                        return token
        return self._call(lambda pool: pool.manager(credentials).get_token(), timeout)

    def discard(self, credentials: Credentials) -> bool:
        """Forget the app in this process's pool; see :meth:`TokenManagerPool.discard`."""

        async def discard(pool: TokenManagerPool) -> bool:
            return pool.discard(credentials)

        return self._call(discard, None)

    def __len__(self) -> int:
        """How many apps this process's pool holds."""
        runtime = self._holder.runtime
        pool = getattr(runtime, "pool", None)
        return 0 if pool is None or runtime is None or runtime.pid != os.getpid() else len(pool)

    def close(self) -> None:
        """Close this process's pool (every manager and client) and its loop thread."""
        with self._lock:
            self._closed = True
            self._finalizer()

    # -- internals --------------------------------------------------------------------

    def _runtime(self) -> _PoolRuntime:
        with self._lock:
            if self._closed:
                raise UsageError("this SyncTokenManagerPool is closed; create a new one")
            runtime = self._holder.runtime
            if runtime is not None and runtime.pid != os.getpid():
                _inherited.append(runtime)  # forked without the at-fork hook running
                runtime = None
            if runtime is None:
                runtime = self._holder.runtime = _PoolRuntime()
            assert isinstance(runtime, _PoolRuntime)
            return runtime

    def _pool_on_loop(self, runtime: _PoolRuntime) -> TokenManagerPool:
        # Runs on the loop thread only, so this check-then-set needs no lock.
        if runtime.pool is None:
            store = self._store
            if callable(store) and not isinstance(store, TokenStore):
                store = store()
            runtime.pool = TokenManagerPool(store=store, **self._pool_options)
        return runtime.pool

    def _call(
        self, use: Callable[[TokenManagerPool], Awaitable[T]], timeout: float | None
    ) -> T:
        runtime = self._runtime()

        async def on_loop() -> T:
            return await use(self._pool_on_loop(runtime))

        return runtime.run(on_loop, timeout)


class SyncPooledManager:
    """One app's blocking token manager in a :class:`SyncTokenManagerPool`.

    It has :class:`~zoom_s2s.sync.SyncTokenManager`'s methods; the manager
    itself lives in the pool, in each process.
    """

    __slots__ = ("credentials", "pool")

    def __init__(self, pool: SyncTokenManagerPool, credentials: Credentials) -> None:
        self.pool = pool
        self.credentials = credentials

    def __repr__(self) -> str:
        return f"SyncPooledManager(account_id={self.credentials.account_id!r}, pool={self.pool!r})"

    def get_token(self, *, timeout: float | None = None) -> AccessToken:
        """Return a valid access token; see :meth:`zoom_s2s.TokenManager.get_token`.

        Raises:
            TokenError: Zoom refused or kept failing, and no valid token exists.
            StoreError: The store failed and no valid token exists.
            TimeoutError: ``timeout`` passed.
            UsageError: The pool is closed.
        """
        return self.pool.get_token(self.credentials, timeout=timeout)

    def invalidate(self, token: AccessToken, *, timeout: float | None = None) -> bool:
        """Forget ``token`` here and in the store if the store still holds it.

        Returns:
            ``True`` if the store held ``token`` and it was deleted.
        """
        credentials = self.credentials
        return self.pool._call(lambda pool: pool.manager(credentials).invalidate(token), timeout)

    def _runtime(self) -> _PoolRuntime:
        # What SyncZoomClient's iterators step on: the pool's loop in this process.
        return self.pool._runtime()

    def stats(self) -> TokenStats:
        """This process's manager counters for the app."""
        credentials = self.credentials

        async def stats(pool: TokenManagerPool) -> TokenStats:
            return pool.manager(credentials).stats()

        return self.pool._call(stats, None)


class SyncPooledClient(SyncZoomClient):
    """A blocking :class:`~zoom_s2s.ZoomClient` of one app in a :class:`SyncTokenManagerPool`.

    Every method of :class:`~zoom_s2s.sync.SyncZoomClient` works; the client
    itself is the pool's (one per app and process, on the pool's session).
    Closing the pool closes it.
    """

    def __init__(self, manager: SyncPooledManager) -> None:
        self._manager = manager
        self.tokens = manager  # type: ignore[assignment]
        self.base_url = manager.pool.base_url
        self._client_kwargs = {}
        self._closed = False

    def __repr__(self) -> str:
        account = self._manager.credentials.account_id
        return f"SyncPooledClient(account_id={account!r}, base_url={self.base_url!r})"

    def close(self) -> None:
        """Nothing to do: the pool closes its clients."""
        self._closed = True

    def _call(self, use: Callable[[ZoomClient], Awaitable[T]], timeout: float | None) -> T:
        if self._closed:
            raise UsageError("this SyncPooledClient is closed; ask the pool for a new one")
        credentials = self._manager.credentials
        return self._manager.pool._call(lambda pool: use(pool.client(credentials)), timeout)
