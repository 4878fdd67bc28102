"""The blocking facade: TokenManager, ZoomClient and TokenManagerPool for threads and Celery.

Each facade runs its async twin on a private event-loop thread per process,
started on first use and started afresh in a child after ``fork()``; a valid
token is answered on the caller's thread. Give stores as URLs or factories, so
that each process makes its own. See ``docs/architecture.rst`` ("The blocking
facade").
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import functools
import inspect
import itertools
import logging
import os
import threading
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from typing import Any, Concatenate, Generic, ParamSpec, TypeVar

from ._env import api_url_from_env, manager_options
from ._lifecycle import ClosedOnExit
from ._loop_thread import CLOSE_TIMEOUT, LoopThread
from .api import SyncProducts
from .client import ZoomClient
from .errors import ConfigurationError, UsageError
from .events import TokenHook, TokenStats, log_event
from .manager import TokenManager, check_options
from .models import AccessToken, Credentials
from .oauth import validate_url
from .pool import TokenManagerPool, check_pool_options
from .ratelimit.headers import RateLimitInfo, rate_limit_info
from .ratelimit.limiter import RateLimiter, Ticket
from .ratelimit.limits import RateLimits
from .stores.base import TokenStore

__all__ = [
    "BlockingPacer",
    "SyncPooledManager",
    "SyncTokenManager",
    "SyncTokenManagerPool",
    "SyncZoomClient",
]

logger = logging.getLogger("zoom_s2s.sync")

T = TypeVar("T")
P = ParamSpec("P")
R = TypeVar("R", TokenManager, TokenManagerPool)  # the async object a facade runs
StoreSpec = TokenStore | str | Callable[[], TokenStore] | None


# Runtimes inherited through fork(): never used or closed in the child, only
# kept referenced so their garbage collection does not warn about the
# parent's sessions from inside the child.
_inherited: list[_Runtime[Any]] = []
_facades: weakref.WeakSet[_Facade[Any]] = weakref.WeakSet()
_client_keys = itertools.count()


class _Runtime(LoopThread, Generic[R]):
    """One facade's private event-loop thread in one process, and the async objects on it."""

    def __init__(self) -> None:
        self.resident: R | None = None  # the facade's manager or pool, made on the loop
        self.clients: dict[int, ZoomClient] = {}
        # BlockingPacer's, by account (None: the manager's own) and budget.
        self.limiters: dict[tuple[Credentials | None, RateLimits | None], RateLimiter] = {}
        super().__init__("zoom-s2s-sync")

    async def _aclose_all(self) -> None:
        clients, self.clients = list(self.clients.values()), {}
        for client in clients:
            await client.aclose()
        resident, self.resident = self.resident, None
        if resident is not None:
            await resident.aclose()


class _Holder(Generic[R]):
    """A facade's runtime in this process, kept apart from it so the finalizer can reach it."""

    def __init__(self) -> None:
        self.runtime: _Runtime[R] | None = None

    def current(self) -> _Runtime[R]:
        if self.runtime is None:
            self.runtime = _Runtime()
        return self.runtime

    def forget(self) -> None:
        if self.runtime is not None:
            _inherited.append(self.runtime)
            self.runtime = None

    def shutdown(self) -> None:
        runtime, self.runtime = self.runtime, None
        if runtime is not None:
            runtime.shutdown()


def _after_fork_in_child() -> None:
    for facade in list(_facades):
        facade._forked()


if hasattr(os, "register_at_fork"):  # POSIX
    os.register_at_fork(after_in_child=_after_fork_in_child)


class _Facade(ClosedOnExit, Generic[R]):
    """A blocking face of one async object (manager or pool): its runtime per process.

    ``make(store=..., **options)`` makes the object, on the loop thread of
    each process; a store factory is called there too, and its store owned.
    """

    def __init__(
        self,
        make: Callable[..., R],
        store: StoreSpec,
        timeout: float | None,
        options: dict[str, Any],
    ) -> None:
        if "session" in options:
            raise ConfigurationError(
                f"{type(self).__name__} cannot reuse an aiohttp session: sessions belong to "
                "one event loop, and the facade runs its own"
            )
        if timeout is not None and (
            isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or timeout <= 0
        ):
            raise ConfigurationError(f"timeout must be a positive number or None, got {timeout!r}")
        self.timeout = timeout
        self._make: Callable[..., R] = make
        self._store = store
        self._options = options
        self._lock = threading.Lock()
        self._holder: _Holder[R] = _Holder()
        # The async object in this process, for the caller-thread hot path only:
        # set on the loop thread when it is made, dropped by close() and in a forked child.
        self._fast: R | None = None
        self._closed = False
        self._finalizer: weakref.finalize[[_Holder[R]], _Facade[R]] = weakref.finalize(
            self, _Holder.shutdown, self._holder
        )
        _facades.add(self)

    def _build(self) -> R:
        store, options = self._store, self._options
        if callable(store) and not isinstance(store, TokenStore):
            store, options = store(), {"close_store": True, **options}
        return self._make(store=store, **options)

    def close(self) -> None:
        """Close this process's async object, its clients and the loop thread. Idempotent."""
        with self._lock:
            self._closed = True
            self._forget()
            self._finalizer()

    def _made(self, resident: R) -> None:
        """This process's async object exists: the caller-thread hot path may use it."""
        self._fast = resident

    def _forget(self) -> None:
        """Drop the hot path's object (closed, or a parent's after fork)."""
        self._fast = None

    def _forked(self) -> None:
        # Only this thread survives a fork: a lock another thread held stays held
        # forever, and the loop thread is gone. Start afresh, lazily.
        self._lock = threading.Lock()
        self._forget()
        self._holder.forget()

    def _runtime(self) -> _Runtime[R]:
        with self._lock:
            if self._closed:
                raise UsageError(f"this {type(self).__name__} is closed; create a new one")
            return self._holder.current()

    def _resident(self, runtime: _Runtime[R]) -> R:
        # Runs on the loop thread only, so this check-then-set needs no lock.
        if runtime.resident is None:
            runtime.resident = self._build()
        if not self._closed and self._fast is None:
            self._made(runtime.resident)
        return runtime.resident

    def _call(self, use: Callable[[R], Awaitable[T]]) -> T:
        runtime = self._runtime()

        async def on_loop() -> T:
            return await use(self._resident(runtime))

        return runtime.run(on_loop, self.timeout)


class SyncTokenManager(_Facade[TokenManager]):
    """A blocking :class:`~zoom_s2s.TokenManager` that is safe across threads and ``fork()``.

    Args:
        credentials: The app's credentials.
        store: A store URL (``"file:///abs/dir"``, ``"redis://..."``), a
            callable returning a new :class:`~zoom_s2s.TokenStore` (called in
            each process, on the private loop), a store object (shared as is),
            or ``None`` for a private memory store per process.
        timeout: Seconds each blocking call waits at most (``None``: as long
            as the manager's own deadlines allow).
        **manager_kwargs: Other :class:`~zoom_s2s.TokenManager` arguments
            (``token_url``, ``refresh_margin``, ``retry``, ``hooks``, ...);
            not ``session``, which would be bound to another event loop.
            Hooks run on the private loop's thread and must not call this
            facade (such a call raises UsageError instead of deadlocking).

    Raises:
        ConfigurationError: An argument the manager rejects, or ``session``.
    """

    def __init__(
        self,
        credentials: Credentials,
        *,
        store: StoreSpec = None,
        timeout: float | None = None,
        **manager_kwargs: Any,
    ) -> None:
        if not isinstance(credentials, Credentials):
            raise ConfigurationError(
                "credentials must be a zoom_s2s.Credentials, e.g. Credentials.from_env()"
            )
        super().__init__(
            functools.partial(TokenManager, credentials), store, timeout, manager_kwargs
        )
        check_options(**manager_kwargs)
        self.credentials = credentials

    @classmethod
    def from_env(
        cls, environ: Mapping[str, str] | None = None, **options: Any
    ) -> SyncTokenManager:
        """A blocking manager configured by the environment, as
        :meth:`zoom_s2s.TokenManager.from_env` is (same variables, same arguments)."""
        return cls(**manager_options(environ, per_process=True, **options))

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return f"SyncTokenManager(account_id={self.credentials.account_id!r}, {state})"

    def get_token(self) -> AccessToken:
        """Return a valid access token; see :meth:`zoom_s2s.TokenManager.get_token`.

        A valid token in this process's manager is answered on the calling
        thread; otherwise the call waits for the private loop.

        Raises:
            TokenError: Zoom refused or kept failing, and no valid token exists.
            StoreError: The store failed and no valid token exists.
            LockTimeoutError: Another process held the lock too long.
            TimeoutError: ``timeout`` passed.
            UsageError: The facade is closed.
        """
        return self._call(lambda manager: manager.get_token())

    def _made(self, manager: TokenManager) -> None:
        super()._made(manager)
        # The hot path is one call: this instance's get_token becomes the
        # manager's peek_token_or, which falls back to the method above. Weakly,
        # so that the facade is not kept alive by its own attribute.
        facade = weakref.ref(self)

        def wait_for_loop() -> AccessToken:
            me = facade()
            if me is None:
                raise UsageError("this SyncTokenManager was garbage-collected")
            return SyncTokenManager.get_token(me)

        vars(self)["get_token"] = manager.peek_token_or(wait_for_loop)

    def _forget(self) -> None:
        super()._forget()
        vars(self).pop("get_token", None)

    def invalidate(self, token: AccessToken) -> bool:
        """Forget ``token`` here and in the store if the store still holds it.

        Returns:
            ``True`` if the store held ``token`` and it was deleted.
        """
        return self._call(lambda manager: manager.invalidate(token))

    def stats(self) -> TokenStats:
        """This process's manager counters (see :meth:`zoom_s2s.TokenManager.stats`)."""

        async def stats(manager: TokenManager) -> TokenStats:
            return manager.stats()

        return self._call(stats)

    def add_hook(self, hook: TokenHook) -> None:
        """Also deliver every later :class:`~zoom_s2s.events.TokenEvent` to ``hook``, in
        this process and in forked ones (it runs on the private loop's thread)."""
        hooks = self._options.get("hooks")
        self._options["hooks"] = (*((log_event,) if hooks is None else hooks), hook)
        manager = self._fast  # made already: it gets the hook too
        if manager is not None:
            manager.add_hook(hook)


class SyncTokenManagerPool(_Facade[TokenManagerPool]):
    """A blocking :class:`~zoom_s2s.TokenManagerPool`, safe across threads and ``fork()``.

    ::

        accounts = SyncTokenManagerPool(store="redis://localhost:6379/0")

        @app.task
        def email_of(customer_id: str, user_id: str) -> str | None:
            return accounts.client(credentials_of(customer_id)).get_user(user_id).email

    Args:
        store: As :class:`SyncTokenManager`'s: a URL, a factory (called in
            each process, on the private loop), a store object (shared as is)
            or ``None`` for a private memory store per process.
        timeout: Seconds each blocking call waits at most.
        **pool_options: Other :class:`~zoom_s2s.TokenManagerPool` arguments
            (``token_url``, ``base_url``, ``max_idle``, ``client_options`` and
            manager options such as ``retry`` or ``hooks``); not ``session``.

    Raises:
        ConfigurationError: An argument the pool rejects, or ``session``.
    """

    def __init__(
        self, *, store: StoreSpec = None, timeout: float | None = None, **pool_options: Any
    ) -> None:
        super().__init__(TokenManagerPool, store, timeout, pool_options)
        self.token_url, self.base_url, _ = check_pool_options(**pool_options)

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return f"SyncTokenManagerPool(token_url={self.token_url!r}, {state})"

    def __len__(self) -> int:
        """How many apps this process's pool holds."""
        pool = self._fast
        return 0 if pool is None else len(pool)

    def manager(self, credentials: Credentials) -> SyncPooledManager:
        """The blocking token manager of the app ``credentials`` name (a cheap view).

        Raises:
            ConfigurationError: ``credentials`` is not a :class:`Credentials`.
        """
        if not isinstance(credentials, Credentials):
            raise ConfigurationError("credentials must be a zoom_s2s.Credentials")
        return SyncPooledManager(self, credentials)

    def client(self, credentials: Credentials) -> SyncZoomClient:
        """A blocking API client of the app ``credentials`` name: the pool's client, per process.

        Raises:
            ConfigurationError: ``credentials`` is not a :class:`Credentials`.
        """
        return SyncZoomClient(self.manager(credentials))

    def get_token(self, credentials: Credentials) -> AccessToken:
        """A valid token of the app ``credentials`` name; see :meth:`SyncPooledManager.get_token`.

        Raises:
            TokenError: Zoom refused or kept failing, and no valid token exists.
            TimeoutError: ``timeout`` passed.
            UsageError: The pool is closed.
        """
        pool = self._fast  # answered on this thread while memory holds a valid token
        if pool is not None:
            manager = pool.get(credentials)
            if manager is not None:
                token = manager.peek_token()
                if token is not None:
                    return token
        return self._call(lambda pool: pool.manager(credentials).get_token())

    def discard(self, credentials: Credentials) -> bool:
        """Forget the app in this process's pool; see :meth:`TokenManagerPool.discard`."""

        async def discard(pool: TokenManagerPool) -> bool:
            return pool.discard(credentials)

        return self._call(discard)


class SyncPooledManager:
    """One app's blocking token manager in a :class:`SyncTokenManagerPool`.

    It has :class:`SyncTokenManager`'s methods (so the ``requests`` and
    ``httpx`` adapters take it); the manager itself lives in the pool, in
    each process.
    """

    __slots__ = ("credentials", "pool")

    def __init__(self, pool: SyncTokenManagerPool, credentials: Credentials) -> None:
        self.pool = pool
        self.credentials = credentials

    def __repr__(self) -> str:
        return f"SyncPooledManager(account_id={self.credentials.account_id!r}, pool={self.pool!r})"

    def get_token(self) -> AccessToken:
        """Return a valid access token; see :meth:`SyncTokenManager.get_token`."""
        return self.pool.get_token(self.credentials)

    def invalidate(self, token: AccessToken) -> bool:
        """See :meth:`SyncTokenManager.invalidate`."""
        credentials = self.credentials
        return self.pool._call(lambda pool: pool.manager(credentials).invalidate(token))

    def stats(self) -> TokenStats:
        """This process's manager counters for the app."""
        credentials = self.credentials

        async def stats(pool: TokenManagerPool) -> TokenStats:
            return pool.manager(credentials).stats()

        return self.pool._call(stats)


def _log_failure(future: concurrent.futures.Future[Any]) -> None:
    """Log what a call nobody waits for raised (it is not raised anywhere else)."""
    if not future.cancelled() and future.exception() is not None:
        logger.warning("zoom_s2s: noting an answer for pacing failed: %s", future.exception())


class _Pending:
    """A blocking face's request as :class:`BlockingPacer` sees it: its ticket is made
    on the loop, by the call that takes its slot."""

    __slots__ = ("method", "override", "path", "ticket")

    def __init__(self, method: str, path: str, override: str | None) -> None:
        self.method, self.path, self.override = method, path, override
        self.ticket: Ticket | None = None


class BlockingPacer:
    """Paces the blocking faces' requests (``requests``, ``httpx.Client``) as
    :class:`~zoom_s2s.ZoomClient` paces its own: through the fleet's budget, with
    Zoom's 429s and daily blocks honoured.

    The :class:`~zoom_s2s.ratelimit.RateLimiter` lives on the blocking manager's
    private loop, one per process, account and ``limits`` (made there on first
    use, anew after ``fork()``; pacers of the same account and limits share
    it). A paced request waits on that loop once, for its slot; its
    answer is told to the loop without waiting when it is a success that
    leaves budget (the limiter learns from it without pausing anything, before
    the thread's next request), and waited for otherwise (a 429, a spent
    budget: learned before anything else is sent). The adapters make it
    (their ``rate_limits=``); the pipeline calls it from the caller's thread.

    Args:
        tokens: The blocking manager whose account is paced.
        limits: The plan's budgets, or ``None`` (pace from Zoom's answers only).

    Raises:
        ConfigurationError: ``tokens`` is not a blocking manager of this module.
    """

    def __init__(
        self, tokens: SyncTokenManager | SyncPooledManager, limits: RateLimits | None = None
    ) -> None:
        self._facade: _Facade[Any]
        self._manager: Callable[[_Runtime[Any]], TokenManager]
        account: Credentials | None = None  # None: the manager's own
        if isinstance(tokens, SyncPooledManager):
            pool, credentials = tokens.pool, tokens.credentials
            self._facade, account = pool, credentials

            def pooled(runtime: _Runtime[Any]) -> TokenManager:
                return pool._resident(runtime).manager(credentials)

            self._manager = pooled
        elif isinstance(tokens, SyncTokenManager):
            self._facade = tokens
            self._manager = tokens._resident
        else:
            raise ConfigurationError(
                "pacing a blocking face needs zoom_s2s.sync.SyncTokenManager or "
                f"SyncTokenManagerPool.manager(...), not {type(tokens).__name__}"
            )
        self.limits = limits
        # One limiter per account and budget in each process, whatever the number of
        # pacers (an auth made per request adds none), which share what it learned.
        self._key = (account, limits)

    def __repr__(self) -> str:
        return f"BlockingPacer({self.limits!r})"

    async def _with_limiter(
        self, runtime: _Runtime[Any], use: Callable[[RateLimiter], Awaitable[T]]
    ) -> T:
        """``use`` this process's limiter (made on first use), on the loop."""
        limiter = runtime.limiters.get(self._key)
        if limiter is None:
            manager = self._manager(runtime)
            limiter = runtime.limiters[self._key] = RateLimiter.for_manager(self.limits, manager)
        return await use(limiter)

    def _on_loop(self, use: Callable[[RateLimiter], Awaitable[T]]) -> T:
        """``use`` the limiter on the loop and wait for its result."""
        runtime = self._facade._runtime()
        return runtime.run(lambda: self._with_limiter(runtime, use), self._facade.timeout)

    def _tell_loop(self, use: Callable[[RateLimiter], Awaitable[object]]) -> None:
        """``use`` the limiter on the loop without waiting (a failure is logged)."""
        runtime = self._facade._runtime()
        told = asyncio.run_coroutine_threadsafe(self._with_limiter(runtime, use), runtime.loop)
        told.add_done_callback(_log_failure)

    def stats(self) -> dict[str, Any]:
        """This process's limiter counters (see :meth:`RateLimiter.stats`)."""

        async def stats(limiter: RateLimiter) -> dict[str, Any]:
            return limiter.stats()

        return self._on_loop(stats)

    # -- what the pipeline calls (zoom_s2s.client.pipeline.Pacer) ----------------------

    def ticket(self, method: str, path: str, override: str | None = None) -> _Pending:
        return _Pending(method, path, override)

    def take_now(self, ticket: _Pending) -> bool:
        return False  # the slot is taken on the loop, by acquire: one trip

    def acquire(self, ticket: _Pending) -> float | None:
        """Take the request's slot, waiting as the fleet's budget says (blocking).

        Raises:
            RateLimitedError: The wait would pass ``max_wait``.
            DailyLimitExceededError: A daily limit blocks the request.
        """

        async def take(limiter: RateLimiter) -> float | None:
            made = ticket.ticket = limiter.ticket(ticket.method, ticket.path, ticket.override)
            return None if limiter.take_now(made) else await limiter.acquire(made)

        return self._on_loop(take)

    def routine(
        self, ticket: _Pending, status: int, headers: Mapping[str, str], body: bytes | None
    ) -> bool:
        return False  # observe does both, on the loop: one trip

    def observe(
        self, ticket: _Pending, *, status: int, headers: Mapping[str, str],
        message: str | None = None, body: bytes | None = None,
    ) -> RateLimitInfo | None:
        made = ticket.ticket
        if made is None:
            return None

        async def report(limiter: RateLimiter) -> RateLimitInfo | None:
            if limiter.routine(made, status, headers, body):
                return None
            return await limiter.observe(
                made, status=status, headers=headers, message=message, body=body
            )

        # A success that spends no budget teaches without pausing anything (the limiter
        # does not await for it): told without waiting, it runs on the loop before this
        # thread's next request takes its slot. Anything else is learned first.
        info = rate_limit_info(headers)
        if status < 400 and (info is None or info.remaining != 0):
            self._tell_loop(report)  # the caller's thread lets go of the answer
            return info
        return self._on_loop(report)  # the caller's thread waits: the loop reads alone

    def unanswered(self, ticket: _Pending) -> None:
        """The request got no answer: told to the loop without waiting (from any thread)."""
        made, runtime = ticket.ticket, self._facade._holder.runtime
        if made is None or runtime is None:
            return
        limiter = runtime.limiters.get(self._key)
        if limiter is not None:
            with contextlib.suppress(RuntimeError):  # the loop is closed: nobody waits
                runtime.loop.call_soon_threadsafe(limiter.unanswered, made)


def _blocking(
    method: Callable[Concatenate[ZoomClient, P], Awaitable[T]],
) -> Callable[Concatenate[SyncZoomClient, P], T]:
    """A :class:`ZoomClient` method as a :class:`SyncZoomClient` one: same arguments, blocking."""

    def call(self: SyncZoomClient, /, *args: P.args, **kwargs: P.kwargs) -> T:
        return self._call(lambda client: method(client, *args, **kwargs))

    _document(call, method)
    return call


def _blocking_iter(
    method: Callable[Concatenate[ZoomClient, P], AsyncIterator[T]],
) -> Callable[Concatenate[SyncZoomClient, P], Iterator[T]]:
    """A :class:`ZoomClient` async-iterator method as a plain iterator of :class:`SyncZoomClient`.

    Each step runs on the facade's loop when the previous item is used up;
    close the iterator (or let it end) to stop early.
    """

    def call(self: SyncZoomClient, /, *args: P.args, **kwargs: P.kwargs) -> Iterator[T]:
        return self._iterate(lambda client: method(client, *args, **kwargs))

    _document(call, method)
    return call


def _document(call: Callable[..., Any], method: Callable[..., Any]) -> None:
    functools.update_wrapper(call, method)
    call.__qualname__ = f"SyncZoomClient.{method.__name__}"
    call.__doc__ = (
        f"Blocking :meth:`zoom_s2s.ZoomClient.{method.__name__}` (same arguments); "
        "raises TimeoutError after the client's ``timeout``.\n\n"
        + inspect.cleandoc(method.__doc__ or "").partition("\n")[2]
    )


class SyncZoomClient(SyncProducts, ClosedOnExit):
    """A blocking :class:`~zoom_s2s.ZoomClient` on a :class:`SyncTokenManager`.

    Its methods take the same arguments as :class:`~zoom_s2s.ZoomClient`'s.
    Each process gets its own client on the manager's private loop; closing
    the manager closes its clients too. On a :class:`SyncPooledManager` it
    is the pool's client of that app (the pool's ``base_url`` and
    ``client_options``, closed with the pool).

    Args:
        tokens: The sync token manager to use.
        base_url: The API base; default ``$ZOOM_API_URL`` or ``https://api.zoom.us/v2``.
        timeout: Seconds each call waits at most, retries included; default
            the manager's ``timeout``.
        **client_kwargs: Other :class:`~zoom_s2s.ZoomClient` arguments
            (``use_token_api_url``, ``retry``, ``rate_limits``, ...); not ``session``.

    Raises:
        ConfigurationError: A bad ``base_url``, ``session``, or client
            arguments with a pooled manager.
    """

    def __init__(
        self,
        tokens: SyncTokenManager | SyncPooledManager,
        base_url: str | None = None,
        *,
        timeout: float | None = None,
        **client_kwargs: Any,
    ) -> None:
        self.tokens = tokens
        self._closed = False
        self._key: int | None = None  # its own client's key on each process's runtime
        self._facade: _Facade[Any]
        self._open: Callable[[Any], ZoomClient]  # this process's async client, on the loop
        if isinstance(tokens, SyncPooledManager):
            if base_url is not None or client_kwargs:
                raise ConfigurationError(
                    "a pool's clients use the pool's base_url and client_options; "
                    "set them on the SyncTokenManagerPool"
                )
            pool, credentials = tokens.pool, tokens.credentials
            self.base_url: str = pool.base_url
            self._facade = pool
            self.timeout = pool.timeout if timeout is None else timeout

            def pool_client(runtime: _Runtime[TokenManagerPool]) -> ZoomClient:
                return pool._resident(runtime).client(credentials)

            self._open = pool_client
            return
        if "session" in client_kwargs:
            raise ConfigurationError(
                "SyncZoomClient cannot reuse an aiohttp session: it runs on its own event loop"
            )
        url = api_url_from_env() if base_url is None else base_url
        validate_url(
            url, "base_url", allow_insecure_http=bool(client_kwargs.get("allow_insecure_http"))
        )
        key = self._key = next(_client_keys)
        self.base_url = url
        self._facade = tokens
        self.timeout = tokens.timeout if timeout is None else timeout

        def own_client(runtime: _Runtime[TokenManager]) -> ZoomClient:
            client = runtime.clients.get(key)
            if client is None:
                manager = tokens._resident(runtime)
                client = runtime.clients[key] = ZoomClient(manager, url, **client_kwargs)
            return client

        self._open = own_client

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return f"SyncZoomClient(base_url={self.base_url!r}, tokens={self.tokens!r}, {state})"

    request = _blocking(ZoomClient.request)
    get_user = _blocking(ZoomClient.get_user)
    paginate = _blocking_iter(ZoomClient.paginate)
    upload = _blocking(ZoomClient.upload)
    stream = _blocking_iter(ZoomClient.stream)
    download = _blocking(ZoomClient.download)

    def close(self) -> None:
        """Close this process's client (the manager stays open). Idempotent."""
        if self._closed:
            return
        self._closed = True
        runtime = self._facade._holder.runtime
        key = self._key
        if key is None or runtime is None or self._facade._closed:
            return

        async def close() -> None:
            client = runtime.clients.pop(key, None)
            if client is not None:
                await client.aclose()

        runtime.run(close, CLOSE_TIMEOUT)

    def _runtime(self) -> _Runtime[Any]:
        if self._closed:
            raise UsageError("this SyncZoomClient is closed; create a new one")
        return self._facade._runtime()

    def _call(self, use: Callable[[ZoomClient], Awaitable[T]]) -> T:
        runtime = self._runtime()

        async def on_loop() -> T:
            return await use(self._open(runtime))

        return runtime.run(on_loop, self.timeout)

    def _iterate(self, start: Callable[[ZoomClient], AsyncIterator[T]]) -> Iterator[T]:
        runtime = self._runtime()

        async def begin() -> AsyncIterator[T]:
            return start(self._open(runtime))

        items = runtime.run(begin, self.timeout)

        async def step() -> tuple[T] | None:
            try:
                return (await items.__anext__(),)
            except StopAsyncIteration:
                return None

        finished = False
        try:
            while (item := runtime.run(step, self.timeout)) is not None:
                yield item[0]
            finished = True
        finally:
            aclose = getattr(items, "aclose", None)
            if not finished and aclose is not None and runtime.thread.is_alive():
                with contextlib.suppress(Exception):
                    runtime.run(aclose, CLOSE_TIMEOUT)
