"""TokenManager: one token per lifetime for every coroutine, process and host sharing a store.

The algorithm is ``docs/architecture.rst`` ("Getting a token"); the code is
tagged ``[S1]`` ... ``[S11]`` with its steps. Local deadlines are on the
monotonic clock, read through :mod:`zoom_s2s._clock`.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import functools
import inspect
import logging
import math
import random
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import aiohttp

from . import _clock
from ._backoff import Backoff, error_from_failure, failure_record
from ._env import manager_options, token_url_from_env
from ._lifecycle import AsyncClosedOnExit
from ._redact import secret_forms
from ._session import SessionSlot
from .errors import (
    ConfigurationError,
    LockTimeoutError,
    StoreError,
    TokenEndpointError,
    TokenError,
    UsageError,
    ZoomS2SError,
)
from .events import EventKind, TokenEvent, TokenHook, TokenStats, log_event
from .models import MAX_TOKEN_LIFETIME, AccessToken, Credentials, fingerprint
from .oauth import RetryPolicy, request_token, validate_url
from .stores.base import FailureRecord, LockAttempt, LockLease, StoreState, TokenStore
from .stores.url import resolve_store

__all__ = ["TokenManager", "TokenStats", "check_options"]

logger = logging.getLogger("zoom_s2s")

_STORE_ERROR_POLICIES = ("raise", "fetch")

# While a failure is remembered, a caller without a token looks in the store
# for another process's fresh token at most this often (seconds).
_STORE_PEEK_INTERVAL = 0.5
# aclose() gives the store this long to release a lease it still holds.
_CLOSE_RELEASE_TIMEOUT = 1.0


class _LockLapsed(Exception):
    """The store lock expired during our fetch; start over from reading the store."""


def store_key(token_url: str, credentials: Credentials) -> str:
    """The store key of an app: a hash of the token URL, the ids and the secret.

    The secret is part of the key (hashed twice, never stored): a process
    with a wrong or old secret neither adopts the fleet's token (it fetches,
    and learns that its secret is wrong) nor makes the fleet back off on its
    ``invalid_client``.
    """
    secret_tag = fingerprint("zoom-s2s client secret", credentials.client_secret)
    return fingerprint(token_url, credentials.account_id, credentials.client_id, secret_tag)


def _checked_settings(
    token_url: str | None,
    refresh_margin: float,
    min_ttl: float,
    lock_ttl: float | None,
    request_timeout: float,
    retry: RetryPolicy | None,
    on_store_error: str,
    allow_insecure_http: bool,
) -> tuple[str, RetryPolicy, float]:
    """Check a manager's settings; return its token URL, retry policy and lock TTL."""
    if token_url is None:
        token_url = token_url_from_env()
    validate_url(token_url, "token_url", allow_insecure_http=allow_insecure_http)
    retry = retry or RetryPolicy()
    if lock_ttl is None:
        lock_ttl = retry.timeout + request_timeout + 5.0
    for name, value in (
        ("refresh_margin", refresh_margin),
        ("min_ttl", min_ttl),
        ("lock_ttl", lock_ttl),
        ("request_timeout", request_timeout),
    ):
        if not isinstance(value, (int, float)) or not value >= 0:
            raise ConfigurationError(f"{name} must be a non-negative number, got {value!r}")
        if value == 0 and name in ("lock_ttl", "request_timeout"):
            raise ConfigurationError(f"{name} must be positive, got {value!r}")
    if lock_ttl <= request_timeout:
        raise ConfigurationError(
            f"lock_ttl ({lock_ttl:g} s) must exceed request_timeout ({request_timeout:g} s), "
            "or the lock lapses while its holder is still fetching"
        )
    if on_store_error not in _STORE_ERROR_POLICIES:
        raise ConfigurationError(
            f"on_store_error must be 'raise' or 'fetch', got {on_store_error!r}"
        )
    return token_url, retry, lock_ttl


def check_options(**options: Any) -> None:
    """Raise what ``TokenManager(credentials, **options)`` would raise about ``options``.

    Makes nothing: for the pool and the facades, which make their managers later.

    Raises:
        ConfigurationError: An unknown option or a value the manager refuses.
    """
    try:
        bound = inspect.signature(TokenManager).bind(None, **options)
    except TypeError as exc:
        raise ConfigurationError(f"unexpected option for TokenManager: {exc}") from None
    bound.apply_defaults()
    settings = inspect.signature(_checked_settings).parameters
    _checked_settings(**{name: bound.arguments[name] for name in settings})


T = TypeVar("T")


class TokenManager(AsyncClosedOnExit):
    """Gives every caller a valid Zoom S2S access token, fetched once per lifetime.

    Use it as ``async with TokenManager(creds, store=...) as tokens`` (or call
    :meth:`aclose`) and call :meth:`get_token` wherever a token is needed. A
    manager belongs to the event loop it is first used on.

    Args:
        credentials: The app's credentials.
        store: Where tokens are shared: a :class:`TokenStore`, a store URL
            (``"redis://..."``, see :func:`store_from_url`) or ``None`` for a
            private :class:`MemoryTokenStore`. Stores passed in are not closed
            by the manager; stores it made from a URL are.
        token_url: Zoom's token endpoint; default ``$ZOOM_TOKEN_URL`` or
            ``https://zoom.us/oauth/token`` (ZoomGov: ``https://zoomgov.com/oauth/token``).
        session: An aiohttp session to reuse; the manager closes only sessions it made.
        refresh_margin: Seconds before expiry at which refresh-ahead starts
            (capped at half the token's lifetime for short-lived tokens).
        min_ttl: A token with less than this left is never handed out; callers
            wait for a new one (capped at a tenth of the lifetime). It also
            covers clock skew between hosts. Enforced even when it exceeds
            ``refresh_margin``.
        lock_ttl: Seconds the store's lock lives if its holder dies. Must exceed
            one request's timeout; the default covers the whole retry budget.
        wait_timeout: Seconds a caller waits for another process's fetch before
            :class:`LockTimeoutError`; default ``lock_ttl + 15``.
        request_timeout: Seconds one token request may take.
        retry: Retry policy for the token request.
        hooks: Callables receiving each :class:`TokenEvent`; default: DEBUG logging.
        on_store_error: What a refresh does when the store fails: ``"raise"``
            (default) raises the :class:`StoreError` to callers without a valid
            token (backed off like a failed fetch); ``"fetch"`` falls back to
            fetching for this process alone (one token per process while the
            store is down) and goes back to the store on the next refresh. A
            valid token in memory is served either way, and a token fetched
            here is never discarded because the store failed to keep it.
        close_store: Close the store in :meth:`aclose`; by default only a store
            the manager made (from ``None`` or a URL) is closed.
        allow_insecure_http: Allow an ``http://`` token URL on a host other
            than loopback (the credentials would cross the network in clear).

    Raises:
        ConfigurationError: A bad URL or inconsistent timing arguments.
    """

    # The hot path's fields are slots: a manager has over 29 attributes, past which
    # CPython 3.11 stops sharing the instance dict's keys and every attribute access
    # is slower (about 8 % of a warm get_token()); the rest stay in the instance
    # dict (the base class has one).
    __slots__ = ("_last_used", "_next_ask", "_refresh_after", "_token", "_usable_until")

    def __init__(
        self,
        credentials: Credentials,
        *,
        store: TokenStore | str | None = None,
        token_url: str | None = None,
        session: aiohttp.ClientSession | None = None,
        refresh_margin: float = 300.0,
        min_ttl: float = 30.0,
        lock_ttl: float | None = None,
        wait_timeout: float | None = None,
        request_timeout: float = 10.0,
        retry: RetryPolicy | None = None,
        hooks: list[TokenHook] | tuple[TokenHook, ...] | None = None,
        on_store_error: str = "raise",
        close_store: bool | None = None,
        allow_insecure_http: bool = False,
    ) -> None:
        if not isinstance(credentials, Credentials):
            raise ConfigurationError(
                "credentials must be a zoom_s2s.Credentials, e.g. Credentials.from_env()"
            )
        token_url, self._retry, lock_ttl = _checked_settings(
            token_url,
            refresh_margin,
            min_ttl,
            lock_ttl,
            request_timeout,
            retry,
            on_store_error,
            allow_insecure_http,
        )
        self.on_store_error = on_store_error
        self.credentials = credentials
        self.token_url = token_url
        self.allow_insecure_http = allow_insecure_http
        self.refresh_margin = float(refresh_margin)
        self.min_ttl = float(min_ttl)
        self.lock_ttl = float(lock_ttl)
        self.wait_timeout = self.lock_ttl + 15.0 if wait_timeout is None else wait_timeout
        self.request_timeout = request_timeout
        self.store, owns_store = resolve_store(store)
        self._owns_store = owns_store if close_store is None else close_store
        self.store_key = store_key(token_url, credentials)
        self._session = SessionSlot(session, "TokenManager")
        self._hooks: tuple[TokenHook, ...] = (log_event,) if hooks is None else tuple(hooks)

        # The token and its local deadlines, all on the monotonic clock.
        self._token: AccessToken | None = None
        self._refresh_after = 0.0  # [S2] from here a background refresh starts
        self._usable_until = 0.0  # [S10] from here callers must wait
        self._expires = 0.0  # the token's expiry
        self._inflight: asyncio.Task[AccessToken] | None = None
        # Before this monotonic moment no caller need ask for a refresh: one runs
        # (inf) or the back-off forbids one; a plain float keeps the hot paths cheap.
        self._next_ask = 0.0
        # Made on the first invalidate(): most managers never need it (a pool holds many).
        self._revoked: collections.deque[str] | None = None
        self._backoff = Backoff()
        self._next_store_peek = 0.0
        self._unsaved: AccessToken | None = None  # [S11] fetched here, not yet in the store
        self._saver: asyncio.Task[None] | None = None
        self._lease: LockLease | None = None  # [S11] a lease we could not release
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closed = False
        self._counts: collections.Counter[EventKind] = collections.Counter()
        # When get_token() last answered from memory: storing the clock value it
        # read anyway is free, where counting calls (a new int each) cost 10 %.
        self._last_used: float | None = None
        self._refresh_started = 0.0

    @functools.cached_property
    def _secret_forms(self) -> tuple[str, ...]:
        """The client secret in every form a reply may echo (made when a failure needs it)."""
        return secret_forms(self.credentials.client_secret, client_id=self.credentials.client_id)

    def __repr__(self) -> str:
        return (
            f"TokenManager(account_id={self.credentials.account_id!r}, "
            f"client_id={self.credentials.client_id!r}, store={self.store.name!r}, "
            f"key={self.store_key!r})"
        )

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **options: Any) -> TokenManager:
        """A manager configured by the environment, as the ``zoom-s2s`` command is.

        Reads ``ZOOM_ACCOUNT_ID``, ``ZOOM_CLIENT_ID``, ``ZOOM_CLIENT_SECRET``,
        ``ZOOM_TOKEN_URL``, ``ZOOM_S2S_STORE`` and ``ZOOM_S2S_ENCRYPTION_KEYS``
        (see :doc:`configuration`).

        Args:
            environ: The mapping to read; ``os.environ`` by default.
            **options: More arguments of the class; ``store`` and ``token_url``
                are the defaults for when their variables are unset.

        Raises:
            ConfigurationError: A variable is missing or invalid.
        """
        return cls(**manager_options(environ, **options))

    # -- the public API ---------------------------------------------------------------

    async def get_token(self) -> AccessToken:
        """Return a valid access token, fetching or waiting only when none is valid.

        Raises:
            TokenError: Zoom refused or kept failing, and no valid token exists.
            StoreError: The store failed and no valid token exists.
            LockTimeoutError: Another process held the lock past ``wait_timeout``.
            UsageError: The manager is closed (also while waiting), or belongs
                to another event loop.
        """
        token = self._token
        if token is not None:
            now = _clock.monotonic()
            if now < self._refresh_after:  # [S1]
                self._last_used = now
                return token
            if now < self._usable_until:  # [S2]
                self._last_used = now
                if now >= self._next_ask:
                    self._refresh_in_background()
                return token
        return await self._wait_for_token()

    async def invalidate(self, token: AccessToken) -> bool:
        """Forget ``token`` (after Zoom answered 401 with it), here and in the store.

        The store entry is deleted only if it still holds this very token, so a
        fleet that sees a burst of 401s refetches once. The next
        :meth:`get_token` fetches or adopts a new token.

        Returns:
            ``True`` if the store held ``token`` and it was deleted.
        """
        token_fp = token.fingerprint
        if self._revoked is None:
            self._revoked = collections.deque(maxlen=32)
        self._revoked.append(token_fp)
        if self._token is not None and self._token.fingerprint == token_fp:
            self._token = None
        if self._unsaved is not None and self._unsaved.fingerprint == token_fp:
            self._unsaved = None
        deleted = await self.store.delete(self.store_key, fingerprint=token_fp)  # [S8]
        self._emit(EventKind.INVALIDATED, token, None)
        return deleted

    def peek_token(self) -> AccessToken | None:
        """The token in memory whenever :meth:`get_token` would answer from memory, else ``None``.

        Never does I/O and never waits, so any thread may call it. Past the
        token's refresh moment it asks the manager's event loop (thread-safely,
        once) to start the background refresh, exactly as :meth:`get_token`
        would.
        """
        return self.peek_token_or(_no_token)()

    def peek_token_or(self, otherwise: Callable[[], T]) -> Callable[[], AccessToken | T]:
        """A function of no arguments: :meth:`peek_token`'s token, else ``otherwise()``.

        A blocking face makes it its ``get_token`` (``otherwise`` waits for the
        loop), so that its hot path is one plain call: a closure, which the
        interpreter calls inline, where ``functools.partial`` would add a
        C-level call (about 30 ns, a fifth of a bare function call).
        :meth:`peek_token` is ``peek_token_or(lambda: None)()``.
        """

        def peek() -> AccessToken | T:
            token = self._token
            if token is not None:
                now = _clock.monotonic()
                if now < self._refresh_after:  # [S1]
                    self._last_used = now
                    return token
                if now < self._usable_until:  # [S2]
                    self._last_used = now
                    if now >= self._next_ask:
                        self._ask_loop_to_refresh()
                    return token
            return otherwise()

        return peek

    def _ask_loop_to_refresh(self) -> None:
        """From any thread: ask the manager's event loop, once, to refresh in the background."""
        loop = self._loop
        if loop is not None:
            self._next_ask = math.inf  # until the loop has decided
            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
                loop.call_soon_threadsafe(self._refresh_in_background)

    def add_hook(self, hook: TokenHook) -> None:
        """Also deliver every later :class:`TokenEvent` to ``hook``."""
        self._hooks = (*self._hooks, hook)

    def stats(self) -> TokenStats:
        """A snapshot of this manager's counters and current token."""
        token = self._token
        return TokenStats(
            last_used=self._last_used,
            fetches=self._counts[EventKind.FETCHED],
            adoptions=self._counts[EventKind.ADOPTED],
            background_refreshes=self._counts[EventKind.REFRESH_STARTED],
            waits=self._counts[EventKind.WAITED],
            lock_waits=self._counts[EventKind.LOCK_WAITED],
            invalidations=self._counts[EventKind.INVALIDATED],
            failures=self._counts[EventKind.REFRESH_FAILED],
            token_fingerprint=token.fingerprint if token else None,
            expires_in=self._expires - _clock.monotonic() if token else None,
        )

    async def aclose(self) -> None:
        """Stop background work and close what the manager created. Idempotent.

        Callers still waiting for a token get :class:`~zoom_s2s.errors.UsageError`.
        """
        if self._closed:
            return
        self._closed = True
        self._token = None
        tasks = [task for task in (self._inflight, self._saver) if task is not None]
        self._inflight = self._saver = None
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        lease, self._lease = self._lease, None
        if lease is not None and lease.held():
            with contextlib.suppress(StoreError, asyncio.TimeoutError):
                await _clock.wait_for(self.store.release_lock(lease), _CLOSE_RELEASE_TIMEOUT)
        await self._session.close()
        if self._owns_store:
            await self.store.aclose()

    async def __aenter__(self) -> TokenManager:
        if self._closed:
            raise UsageError("this TokenManager is closed; create a new one")
        return self

    # -- the token in memory ----------------------------------------------------------

    def _windows(self, token: AccessToken) -> tuple[float, float]:
        """(refresh margin, min ttl) for ``token``, shrunk for short lifetimes."""
        lifetime = max(token.lifetime, 1e-3)
        return min(self.refresh_margin, lifetime / 2), min(self.min_ttl, lifetime / 10)

    def _remaining_of_stored(self, token: AccessToken) -> float:
        """Seconds left of a token read from the store, bounded by what it can claim.

        Wall time is the only clock hosts share; the store may only have
        shortened ``expires_at``. Never more than the token's own lifetime or
        the longest lifetime Zoom grants.
        """
        remaining = token.expires_ts - _clock.wall()
        return min(remaining, max(token.lifetime, 0.0), MAX_TOKEN_LIFETIME)

    def _worth_installing(self, token: AccessToken, remaining: float) -> bool:
        if self._revoked is not None and token.fingerprint in self._revoked:
            return False
        _margin, min_ttl = self._windows(token)
        if remaining <= min_ttl:  # [S10]
            return False
        current = self._token
        # By fingerprint: the same token read twice may differ in expires_at.
        return current is None or (
            token.fingerprint != current.fingerprint
            and _clock.monotonic() + remaining > self._expires
        )

    def _install(self, token: AccessToken, remaining: float) -> None:
        """Make ``token`` (adopted from the store or fetched here) the one callers get.

        ``remaining`` is its lifetime left now; from here on it is counted on
        the monotonic clock.
        """
        margin, min_ttl = self._windows(token)
        now = _clock.monotonic()
        self._expires = now + remaining
        self._usable_until = self._expires - min_ttl
        # [S6] XFetch-style spreading: each process refreshes at its own random
        # moment in the first half of the window; the first one refreshes for all.
        # [S10] Never later than the moment callers must stop using the token.
        refresh_at = self._expires - margin + random.uniform(0.0, margin / 2)
        self._refresh_after = min(refresh_at, self._usable_until)
        self._token = token
        self._backoff.clear()

    # -- refreshing -------------------------------------------------------------------

    def _bind_loop(self) -> None:
        loop = asyncio.get_running_loop()
        bound = self._loop
        if bound is loop:
            return
        if bound is not None:
            state = "has closed (a previous asyncio.run()?)" if bound.is_closed() else "still runs"
            raise UsageError(
                f"this TokenManager belongs to another event loop, which {state}; create one "
                "manager per event loop (inside it), or use zoom_s2s.sync from threads"
            )
        self._loop = loop

    def _refresh_in_background(self) -> None:
        """[S2] Start one background refresh unless one runs or the back-off forbids it."""
        if self._inflight is not None or self._closed:
            self._next_ask = math.inf
        elif _clock.monotonic() < self._backoff.until:
            self._next_ask = self._backoff.until
        else:
            self._start_refresh()
            self._emit(EventKind.REFRESH_STARTED, self._token, None)

    def _start_refresh(self) -> asyncio.Task[AccessToken]:
        self._bind_loop()
        task = asyncio.get_running_loop().create_task(self._refresh(), name="zoom-s2s-refresh")
        self._inflight = task
        self._next_ask = math.inf
        self._refresh_started = _clock.monotonic()
        task.add_done_callback(self._refresh_done)
        return task

    def _refresh_done(self, task: asyncio.Task[AccessToken]) -> None:
        if self._inflight is task:
            self._inflight = None
            self._next_ask = self._backoff.until  # 0 after a success
        if task.cancelled():
            return
        exc = task.exception()  # also marks it retrieved for background refreshes
        if exc is not None:
            # A valid token keeps being served; callers without one get the
            # remembered error at once until the back-off ends (see _refresh).
            duration = _clock.monotonic() - self._refresh_started
            self._emit(EventKind.REFRESH_FAILED, self._token, duration, error=exc)

    async def _wait_for_token(self) -> AccessToken:
        """[S3] No valid token in memory: share the one refresh in flight, or start it."""
        if self._closed:
            raise UsageError("this TokenManager is closed; create a new one")
        self._bind_loop()
        task = self._inflight
        if task is None:
            remembered = self._backoff.remembered()
            if remembered is not None and not isinstance(remembered, StoreError):
                token = await self._peek_during_backoff()
                if token is not None:
                    return token
            error = self._backoff.remembered()
            if error is not None:
                raise self._remembered(error)
            if self._is_closed():
                raise UsageError("this TokenManager was closed while getting a token")
            task = self._inflight or self._start_refresh()
        started = _clock.monotonic()
        try:
            # shield: a caller cancelled while waiting must not cancel the shared fetch.
            token = await asyncio.shield(task)
        except asyncio.CancelledError:
            if self._is_closed() and task.cancelled():
                raise UsageError("this TokenManager was closed while getting a token") from None
            raise
        self._emit(EventKind.WAITED, token, _clock.monotonic() - started)
        return token

    def _is_closed(self) -> bool:
        # A method, not the attribute: it changes across awaits (aclose()).
        return self._closed

    def _remembered(self, error: ZoomS2SError) -> ZoomS2SError:
        wait = max(0.0, self._backoff.wait_until() - _clock.monotonic())
        # A copy with the wait in its message; same class and attributes.
        remembered = type(error).__new__(type(error))
        remembered.__dict__.update(error.__dict__)
        remembered.args = (f"{error} [remembered; next attempt in {wait:.1f} s]",)
        remembered.__cause__ = error
        return remembered

    async def _peek_during_backoff(self) -> AccessToken | None:
        """[S9] While backing off, another process may have recovered, or the record gone.

        Looks at most every ``_STORE_PEEK_INTERVAL``; the other callers raise at once.
        """
        now = _clock.monotonic()
        if now < self._next_store_peek:
            return None
        self._next_store_peek = now + _STORE_PEEK_INTERVAL
        with contextlib.suppress(StoreError):
            state = await self.store.read(self.store_key)
            token = self._adopt(state.token)
            if token is not None:
                return token
            if self._backoff.from_fleet:
                record = state.failure
                if record is None or self._backoff.fleet_record(record) <= 0:
                    self._backoff.end_fleet_wait()  # deleted or expired: the wait ends
        return None

    async def _refresh(self) -> AccessToken:
        try:
            try:
                return await self._refresh_through_store()
            except StoreError as exc:
                return await self._after_store_error(exc)
        except ZoomS2SError as exc:
            if self._backoff.error is not exc:  # not recorded where it arose
                self._backoff.record(exc)
            raise

    async def _after_store_error(self, exc: StoreError) -> AccessToken:
        """The store-error policy, in one place (see ``on_store_error``)."""
        if self.on_store_error == "raise":
            self._backoff.record(exc)
            raise exc
        self._emit(EventKind.STORE_ERROR, self._token, None, error=exc)
        # "fetch": the store is down, so this process fetches for itself.
        token, remaining = await self._fetch()
        self._install(token, remaining)
        self._keep_unsaved(token)
        return token

    async def _refresh_through_store(self) -> AccessToken:
        """[S4] [S5] Adopt the store's token, or fetch under the lock, or wait for the holder."""
        store, key = self.store, self.store_key
        deadline = _clock.monotonic() + self.wait_timeout
        handed: StoreState | None = None
        while True:
            state, handed = (await store.read(key) if handed is None else handed), None
            token = self._adopt(state.token)
            if token is not None:
                return token
            self._respect_fleet_backoff(state.failure)
            lease, state = await self._take_lease()
            if lease is not None:
                try:
                    return await self._refresh_under(lease, state)
                except _LockLapsed:
                    continue  # [S7] a successor holds the lock now: read what it stored
            remaining = deadline - _clock.monotonic()
            if remaining <= 0:
                raise LockTimeoutError(
                    f"waited {self.wait_timeout:g} s for another process to fetch a token "
                    f"into {store.name}; that process may be stuck. Check the store, or raise "
                    "wait_timeout"
                )
            started = _clock.monotonic()
            # What the holder wrote, when the wake-up carried it; else the loop reads.
            handed = await store.wait_for_change(key, timeout=min(remaining, self.lock_ttl))
            self._emit(EventKind.LOCK_WAITED, None, _clock.monotonic() - started)

    async def _take_lease(self) -> LockAttempt:
        """[S11] This process's own unreleased lease if it is still good, else a new one."""
        lease, self._lease = self._lease, None
        if lease is not None:
            if lease.remaining() > self.request_timeout + 1.0:
                try:
                    return LockAttempt(lease, await self.store.read(self.store_key))
                except BaseException:
                    self._lease = lease
                    raise
            await self._release(lease)
        return await self.store.acquire_lock(self.store_key, ttl=self.lock_ttl)

    async def _release(self, lease: LockLease) -> None:
        """Release ``lease``; never raises, so the first error is the one reported.

        A lease that could not be released (the store is down) is kept: the
        next refresh reuses it while it is valid instead of waiting for it.
        """
        try:
            await self.store.release_lock(lease)
        except StoreError as exc:
            self._emit(EventKind.STORE_ERROR, self._token, None, error=exc)
            if lease.held():
                self._lease = lease

    async def _refresh_under(self, lease: LockLease, state: StoreState) -> AccessToken:
        """Under the lock: adopt the token its read found, or fetch; the lock is released."""
        try:
            # Double-checked: the state was read with the lock taken, so a token
            # written between our read and the lock is seen here.
            token = self._adopt(state.token)
            if token is None:
                failure = self._respect_fleet_backoff(state.failure)
                return await self._fetch_and_store(lease, failure)
        except BaseException:
            await self._release(lease)
            raise
        await self._release(lease)
        return token

    def _adopt(self, token: AccessToken | None) -> AccessToken | None:
        """Install ``token`` read from the store if it is worth it; return it if so."""
        if token is None:
            return None
        remaining = self._remaining_of_stored(token)
        if not self._worth_installing(token, remaining):
            return None
        self._install(token, remaining)
        self._emit(EventKind.ADOPTED, token, None)
        return token

    def _respect_fleet_backoff(self, record: FailureRecord | None) -> FailureRecord | None:
        """[S9] Raise the remembered error while the fleet backs off; else return the record."""
        if record is not None:
            wait = self._backoff.fleet_record(record)
            if wait > 0:
                error = error_from_failure(record, wait, self._secret_forms)
                self._backoff.record(error, wait=wait, fleet=True)
                raise error
        return record

    async def _fetch(self, lease: LockLease | None = None) -> tuple[AccessToken, float]:
        """Ask Zoom; return the token and its remaining lifetime (monotonic measure)."""
        started = _clock.monotonic()
        token = await request_token(
            self._session.get(),
            self.credentials,
            token_url=self.token_url,
            request_timeout=self.request_timeout,
            retry=self._retry,
            # [S7] A holder stalled past the lock TTL must not retry: a successor
            # has the lock and may already have fetched.
            keep_trying=lease.held if lease is not None else None,
            allow_insecure_http=self.allow_insecure_http,
        )
        # Counted from before the request was sent, so it errs early, never late.
        remaining = token.lifetime - (_clock.monotonic() - started)
        self._emit(EventKind.FETCHED, token, _clock.monotonic() - started)
        _margin, min_ttl = self._windows(token)
        if remaining <= min_ttl:  # [S10]
            raise TokenEndpointError(
                f"the token from {self.token_url} arrived with {remaining:.1f} s of its "
                f"{token.lifetime:g} s lifetime left (the request took too long); it is not used"
            )
        return token, remaining

    async def _fetch_and_store(
        self, lease: LockLease, failure: FailureRecord | None
    ) -> AccessToken:
        """[S7] [S9] [S11] Ask Zoom under ``lease``, then write and release in one store call."""
        try:
            token, remaining = await self._fetch(lease)
        except TokenError as exc:
            if not lease.held():
                raise _LockLapsed from exc
            failures = max((failure.failures if failure else 0) + 1, self._backoff.failures + 1)
            record, keep_for = failure_record(exc, failures, self._secret_forms)
            self._backoff.record(exc, wait=record.retry_in)
            try:
                await self.store.write_failure(lease, record, keep_for=keep_for)
            except StoreError as store_exc:  # the fetch's error is the one to report
                self._emit(EventKind.STORE_ERROR, self._token, None, error=store_exc)
            raise
        try:
            written = await self.store.write(lease, token, release=True)
        except StoreError as exc:
            # [S11] Never throw a good token away: serve it, store it later.
            self._emit(EventKind.STORE_ERROR, token, None, error=exc)
            self._install(token, remaining)
            self._keep_unsaved(token)
            await self._release(lease)
            return token
        if not written:
            self._emit(EventKind.STALE_WRITE, token, None)
            newer = self._adopt((await self.store.read(self.store_key)).token)
            if newer is not None:
                return newer
        self._install(token, remaining)
        return token

    # -- writing a token the store could not take ---------------------------------------

    def _keep_unsaved(self, token: AccessToken) -> None:
        """[S11] Remember ``token`` for the store and try to write it once it is back."""
        self._unsaved = token
        if self._saver is None and not self._closed:
            self._saver = asyncio.get_running_loop().create_task(
                self._save_later(), name="zoom-s2s-save"
            )

    async def _save_later(self) -> None:
        attempt = 0
        try:
            while not self._closed:
                token = self._unsaved
                if token is None or token is not self._token:
                    return  # replaced or invalidated meanwhile
                if _clock.monotonic() >= self._usable_until:
                    return  # no longer worth sharing
                attempt += 1
                await _clock.sleep(min(2.0 ** (attempt - 1), 30.0) * random.uniform(0.5, 1.0))
                try:
                    if await self._save(token):
                        return
                except StoreError:
                    continue
        finally:
            self._saver = None
            if self._unsaved is not None and self._unsaved is not self._token:
                self._unsaved = None

    async def _save(self, token: AccessToken) -> bool:
        """Write ``token`` unless the store holds a newer one; ``False``: try again later."""
        lease, state = await self._take_lease()
        if lease is None:
            return False  # someone holds the lock: try again later
        if self._unsaved is not token:
            await self._release(lease)  # invalidated or replaced while the lock was taken
            return True
        stored = state.token
        if stored is not None and stored.expires_ts >= token.expires_ts:
            await self._release(lease)  # the store holds a newer token
        else:
            try:
                await self.store.write(lease, token, release=True)
            except BaseException:
                await self._release(lease)
                raise
        if self._unsaved is token:
            self._unsaved = None
        return True

    def _emit(
        self,
        kind: EventKind,
        token: AccessToken | None,
        duration: float | None,
        *,
        error: BaseException | None = None,
    ) -> None:
        self._counts[kind] += 1
        if not self._hooks:
            return
        event = TokenEvent(
            kind=kind,
            store_key=self.store_key,
            store=self.store.name,
            token_fingerprint=token.fingerprint if token else None,
            expires_in=token.remaining(_clock.wall()) if token else None,
            duration=duration,
            error=f"{type(error).__name__}: {error}" if error is not None else None,
        )
        for hook in self._hooks:
            try:
                hook(event)
            except Exception:
                logger.exception("zoom_s2s event hook %r failed", hook)


def _no_token() -> None:
    return None
