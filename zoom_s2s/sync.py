"""A blocking facade for synchronous code: Celery prefork tasks, threads, scripts.

The async :class:`~zoom_s2s.TokenManager` and :class:`~zoom_s2s.ZoomClient`
run on a private event loop in a daemon thread, started on first use. Every
calling thread submits its call to that one loop
(:func:`asyncio.run_coroutine_threadsafe`) and blocks for the answer, so many
threads share one token and one single-flight refresh.

Fork safety (Celery prefork, gunicorn ``--preload``, :mod:`multiprocessing`):
a forked child has no copy of the loop thread, and the parent's loop, aiohttp
sessions and Redis connections must not be used there. After ``fork()`` the
child therefore starts its own loop thread and builds a fresh manager and
store on first use; what it inherited is left untouched. Give the store as a
URL (``"file:///var/lib/app/zoom"``, ``"redis://..."``) or as a factory
callable so that each process builds its own; a store *object* passed in is
shared as is, which is only safe for stores that are fine after a fork.

Everything is closed at interpreter exit (or on :meth:`SyncTokenManager.close`)
with a bounded wait, so exit never hangs on it::

    tokens = SyncTokenManager(Credentials.from_env(), store="file:///var/lib/app/zoom")
    zoom = SyncZoomClient(tokens)

    @app.task
    def email_of(user_id: str) -> str | None:
        return zoom.get_user(user_id).email
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import itertools
import logging
import os
import threading
import time
import weakref
from collections.abc import AsyncGenerator, Awaitable, Callable, Coroutine, Iterator
from typing import Any, TypeVar

from ._env import api_url_from_env
from ._lifecycle import ClosedOnExit
from .client import User, ZoomClient
from .errors import ConfigurationError, UsageError
from .manager import TokenManager, TokenStats
from .models import AccessToken, Credentials
from .oauth import validate_url
from .stores.base import TokenStore

__all__ = ["SyncTokenManager", "SyncZoomClient"]

logger = logging.getLogger("zoom_s2s.sync")

T = TypeVar("T")
StoreSpec = TokenStore | str | Callable[[], TokenStore] | None

_monotonic = time.monotonic  # the clock of TokenManager's local deadlines
_CLOSE_TIMEOUT = 5.0  # seconds the shutdown waits for the loop to close things

# Runtimes inherited through fork(): never used or closed in the child, only
# kept referenced so their garbage collection does not warn about the
# parent's sessions from inside the child.
_inherited: list[_Runtime] = []
_facades: weakref.WeakSet[SyncTokenManager] = weakref.WeakSet()
_client_keys = itertools.count()


class _Runtime:
    """One process's private event-loop thread and the async objects living on it."""

    def __init__(self) -> None:
        self.pid = os.getpid()
        self.loop = asyncio.new_event_loop()
        self.manager: TokenManager | None = None
        self.clients: dict[int, ZoomClient] = {}
        self.thread = threading.Thread(target=self._serve, name="zoom-s2s-sync", daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        asyncio.set_event_loop(self.loop)
        try:
            self.loop.run_forever()
        finally:
            self.loop.run_until_complete(self.loop.shutdown_asyncgens())
            self.loop.close()

    def run(self, make: Callable[[], Coroutine[Any, Any, T]], timeout: float | None) -> T:
        """Run ``make()`` on the loop and block until it finishes (or ``timeout``)."""
        if threading.get_ident() == self.thread.ident:
            raise UsageError(
                "a zoom_s2s.sync call was made from its own event-loop thread (from a hook?); "
                "it would wait for itself forever. Use the async API there"
            )
        future = asyncio.run_coroutine_threadsafe(make(), self.loop)
        try:
            return future.result(timeout)
        except concurrent.futures.TimeoutError:
            future.cancel()
            raise TimeoutError(f"the zoom_s2s call took longer than {timeout:g} s") from None

    def shutdown(self) -> None:
        """Close the clients and the manager, stop the loop, join the thread (bounded)."""
        if self.pid != os.getpid() or not self.thread.is_alive():
            return
        if threading.get_ident() == self.thread.ident:  # collected on its own loop thread
            self.loop.stop()
            return
        try:
            self.run(self._aclose_all, _CLOSE_TIMEOUT)
        except Exception:  # exit must go on; the error is still reported
            logger.warning("closing the zoom_s2s sync runtime failed", exc_info=True)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(_CLOSE_TIMEOUT)

    async def _aclose_all(self) -> None:
        clients, self.clients = list(self.clients.values()), {}
        for client in clients:
            await client.aclose()
        manager, self.manager = self.manager, None
        if manager is not None:
            await manager.aclose()


class _Holder:
    """The current runtime, kept apart from the facade so the finalizer can reach it."""

    def __init__(self) -> None:
        self.runtime: _Runtime | None = None

    def shutdown(self) -> None:
        runtime, self.runtime = self.runtime, None
        if runtime is not None:
            runtime.shutdown()


def _after_fork_in_child() -> None:
    # Only this thread survives a fork: a lock another thread held stays held
    # forever, and the loop thread is gone. Start afresh, lazily.
    for facade in list(_facades):
        facade._lock = threading.Lock()
        facade._fast = None
        inherited, facade._holder.runtime = facade._holder.runtime, None
        if inherited is not None:
            _inherited.append(inherited)


if hasattr(os, "register_at_fork"):  # POSIX
    os.register_at_fork(after_in_child=_after_fork_in_child)


class SyncTokenManager(ClosedOnExit):
    """A blocking :class:`~zoom_s2s.TokenManager` that is safe across threads and ``fork()``.

    Args:
        credentials: The app's credentials.
        store: A store URL (``"file:///abs/dir"``, ``"redis://..."``), a
            callable returning a new :class:`~zoom_s2s.TokenStore` (called in
            each process, on the private loop), a store object (shared as is),
            or ``None`` for a private memory store per process.
        **manager_kwargs: Other :class:`~zoom_s2s.TokenManager` arguments
            (``token_url``, ``refresh_margin``, ``retry``, ``hooks``, ...);
            not ``session``, which would be bound to another event loop.
            Hooks run on the private loop's thread and must not call this
            facade (such a call raises UsageError instead of deadlocking).

    Raises:
        ConfigurationError: An argument the manager rejects, or ``session``.
    """

    def __init__(
        self, credentials: Credentials, *, store: StoreSpec = None, **manager_kwargs: Any
    ) -> None:
        if "session" in manager_kwargs:
            raise ConfigurationError(
                "SyncTokenManager cannot reuse an aiohttp session: sessions belong to one "
                "event loop, and the facade runs its own"
            )
        # Fail now, in the caller's thread, on bad arguments (this makes no I/O).
        TokenManager(credentials, **manager_kwargs)
        self.credentials = credentials
        self._store = store
        self._manager_kwargs = manager_kwargs
        self._lock = threading.Lock()
        self._holder = _Holder()
        # This process's manager, for the hot path only: set on the loop thread when
        # the manager is made, dropped by close() and in a forked child.
        self._fast: TokenManager | None = None
        self._closed = False
        self._finalizer = weakref.finalize(self, _Holder.shutdown, self._holder)
        _facades.add(self)

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return f"SyncTokenManager(account_id={self.credentials.account_id!r}, {state})"

    def get_token(self, *, timeout: float | None = None) -> AccessToken:
        """Return a valid access token; see :meth:`zoom_s2s.TokenManager.get_token`.

        Args:
            timeout: Seconds to wait at most; ``None``: as long as the manager's
                own deadlines allow.

        Raises:
            TokenError: Zoom refused or kept failing, and no valid token exists.
            StoreError: The store failed and no valid token exists.
            LockTimeoutError: Another process held the lock too long.
            TimeoutError: ``timeout`` passed.
            UsageError: The facade is closed.
        """
        # Fast path, no thread hop: a valid token already in this process's manager
        # (TokenManager.peek_token() inlined). close() and the at-fork hook drop
        # self._fast, so this never hands out a closed or a parent's manager's token.
        manager = self._fast
        if manager is not None:
            token = manager._token
            if token is not None:
                now = _monotonic()
                if now < manager._refresh_after:
                    manager._hits += 1  # a gauge: from threads it may miss a few
                    return token
                if now < manager._usable_until:
                    manager._hits += 1
                    if now >= manager._next_ask:
                        manager._ask_loop_to_refresh()
                    return token
        return self._call(lambda manager: manager.get_token(), timeout)

    def invalidate(self, token: AccessToken, *, timeout: float | None = None) -> bool:
        """Forget ``token`` here and in the store if the store still holds it.

        Returns:
            ``True`` if the store held ``token`` and it was deleted.
        """
        return self._call(lambda manager: manager.invalidate(token), timeout)

    def stats(self) -> TokenStats:
        """This process's manager counters (see :meth:`zoom_s2s.TokenManager.stats`)."""

        async def stats(manager: TokenManager) -> TokenStats:
            return manager.stats()

        return self._call(stats, None)

    def close(self) -> None:
        """Close the manager, the clients using it and the loop thread. Idempotent."""
        with self._lock:
            self._closed = True
            self._fast = None
            self._finalizer()


    # -- for SyncZoomClient -----------------------------------------------------------

    def _runtime(self) -> _Runtime:
        with self._lock:
            if self._closed:
                raise UsageError(f"this {type(self).__name__} is closed; create a new one")
            runtime = self._holder.runtime
            if runtime is not None and runtime.pid != os.getpid():
                _inherited.append(runtime)  # forked without the at-fork hook running
                runtime = None
            if runtime is None:
                runtime = self._holder.runtime = _Runtime()
            return runtime

    def _call(self, use: Callable[[TokenManager], Awaitable[T]], timeout: float | None) -> T:
        runtime = self._runtime()

        async def on_loop() -> T:
            return await use(self._manager_on_loop(runtime))

        return runtime.run(on_loop, timeout)

    def _manager_on_loop(self, runtime: _Runtime) -> TokenManager:
        # Runs on the loop thread only, so this check-then-set needs no lock.
        if runtime.manager is None:
            store = self._store
            if callable(store) and not isinstance(store, TokenStore):
                store = store()
            runtime.manager = TokenManager(self.credentials, store=store, **self._manager_kwargs)
        if not self._closed and runtime.pid == os.getpid():
            self._fast = runtime.manager
        return runtime.manager


class SyncZoomClient(ClosedOnExit):
    """A blocking :class:`~zoom_s2s.ZoomClient` on a :class:`SyncTokenManager`.

    Each process gets its own client on the manager's private loop; closing the
    manager closes its clients too.

    Args:
        tokens: The sync token manager to use.
        base_url: The API base; default ``$ZOOM_API_URL`` or ``https://api.zoom.us/v2``.
        **client_kwargs: Other :class:`~zoom_s2s.ZoomClient` arguments
            (``use_token_api_url``, ``retry``, ...); not ``session``.

    Raises:
        ConfigurationError: A bad ``base_url``, or ``session``.
    """

    def __init__(
        self, tokens: SyncTokenManager, base_url: str | None = None, **client_kwargs: Any
    ) -> None:
        if "session" in client_kwargs:
            raise ConfigurationError(
                "SyncZoomClient cannot reuse an aiohttp session: it runs on its own event loop"
            )
        if base_url is None:
            base_url = api_url_from_env()
        validate_url(
            base_url,
            "base_url",
            allow_insecure_http=bool(client_kwargs.get("allow_insecure_http", False)),
        )
        self.tokens = tokens
        self.base_url = base_url
        self._client_kwargs = client_kwargs
        self._key = next(_client_keys)  # its client's key on each process's runtime
        self._closed = False

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return f"SyncZoomClient(base_url={self.base_url!r}, {state})"

    def request(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, Any] | None = None,
        json: Any = None,
        timeout: float | None = None,
    ) -> Any:
        """Call the API; see :meth:`zoom_s2s.ZoomClient.request`.

        Args:
            method: HTTP method.
            path: Path below the base URL, e.g. ``"/users"``.
            params: Query parameters.
            json: A JSON-serialisable request body.
            timeout: Seconds to wait at most, retries included.

        Returns:
            The decoded JSON answer (``None`` for 204).

        Raises:
            ZoomAPIError: The API answered with an error (see ZoomClient.request).
            TimeoutError: ``timeout`` passed.
            UsageError: The client or its manager is closed.
        """
        return self._call(
            lambda client: client.request(method, path, params=params, json=json), timeout
        )

    def get_user(self, user_id: str = "me", *, timeout: float | None = None) -> User:
        """Return a user by id, email or ``"me"``; see :meth:`zoom_s2s.ZoomClient.get_user`.

        Raises:
            NotFoundError: No such user.
            ZoomAPIError: Any other API error.
        """
        return self._call(lambda client: client.get_user(user_id), timeout)

    def paginate(
        self,
        path: str,
        *,
        params: dict[str, Any] | None = None,
        key: str | None = None,
        page_size: int = 300,
        timeout: float | None = None,
    ) -> Iterator[Any]:
        """Iterate over the items of every page; see :meth:`zoom_s2s.ZoomClient.paginate`.

        A plain iterator: each page is fetched on the manager's loop when the
        previous one is used up. Close it (or let it end) to stop early.

        Args:
            path: The list API, e.g. ``"/users"``.
            params: Other query parameters.
            key: The answer's list of items; default found in the first answer.
            page_size: Items per page, 1 to 300.
            timeout: Seconds to wait at most for each page, retries included.

        Raises:
            ConfigurationError: ``page_size`` is out of range.
            ZoomAPIError: An API error, or an answer that is not a page.
            TimeoutError: ``timeout`` passed.
        """
        from .client.pagination import Pages

        async def start(client: ZoomClient) -> AsyncGenerator[list[Any], None]:
            return Pages(client, path, params=params, key=key, page_size=page_size).pages()

        pages = self._call(start, timeout)
        runtime = self.tokens._runtime()

        async def step() -> list[Any] | None:
            try:
                return await pages.__anext__()
            except StopAsyncIteration:
                return None

        finished = False
        try:
            while (page := runtime.run(step, timeout)) is not None:
                yield from page
            finished = True
        finally:
            if not finished and runtime.thread.is_alive():
                with contextlib.suppress(Exception):
                    runtime.run(pages.aclose, _CLOSE_TIMEOUT)

    def close(self) -> None:
        """Close this process's client (the manager stays open). Idempotent."""
        if self._closed:
            return
        self._closed = True
        runtime = self.tokens._holder.runtime
        if runtime is None or runtime.pid != os.getpid() or self.tokens._closed:
            return

        async def close() -> None:
            client = runtime.clients.pop(self._key, None)
            if client is not None:
                await client.aclose()

        runtime.run(close, _CLOSE_TIMEOUT)


    def _call(self, use: Callable[[ZoomClient], Awaitable[T]], timeout: float | None) -> T:
        if self._closed:
            raise UsageError("this SyncZoomClient is closed; create a new one")
        runtime = self.tokens._runtime()

        async def on_loop() -> T:
            client = runtime.clients.get(self._key)
            if client is None:
                manager = self.tokens._manager_on_loop(runtime)
                client = ZoomClient(manager, self.base_url, **self._client_kwargs)
                runtime.clients[self._key] = client
            return await use(client)

        return runtime.run(on_loop, timeout)
