"""TokenManager: one token per lifetime for every coroutine, process and host sharing a store.

The algorithm (DESIGN.md, "Getting a token"):

1. Hot path: a fresh token in memory is returned with no I/O, no lock and no
   await that yields.
2. Inside the refresh window the current token is returned at once and one
   background refresh starts; callers never wait while a valid token exists.
3. With no valid token, callers wait for one shared in-flight refresh task
   (single-flight); a cancelled caller never cancels that task.
4. A refresh reads the store first; only if it holds nothing newer does it take
   the store's lock, read again, fetch from Zoom, write (fenced by a
   generation taken under the lock) and release.
5. Processes that find the lock taken sleep until the store tells them it
   changed (or the lock's TTL lapses, when they may take over).
6. Each process picks its refresh moment at random in the first half of the
   refresh window, so a fleet does not hit the lock at one instant.
7. Writes are fenced: a holder whose lock lapsed cannot overwrite its
   successor's token, and it stops retrying its own fetch.
8. :meth:`TokenManager.invalidate` is compare-and-delete.
9. A failed fetch is remembered in the store (see ``_failures.py``), so the
   whole fleet backs off together; a valid token is served meanwhile.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import copy
import logging
import os
import random
import time
from collections.abc import Callable
from types import TracebackType

import aiohttp

from ._failures import backoff_seconds, error_from_failure, failure_after
from ._session import SessionSlot
from .errors import ConfigurationError, LockTimeoutError, StoreError, TokenError
from .events import EventKind, TokenEvent, TokenHook, TokenStats, log_event
from .models import AccessToken, Credentials, fingerprint
from .oauth import DEFAULT_TOKEN_URL, ENV_TOKEN_URL, RetryPolicy, request_token, validate_url
from .stores.base import FailureRecord, TokenStore
from .stores.memory import MemoryTokenStore

__all__ = ["TokenManager", "TokenStats"]

logger = logging.getLogger("zoom_s2s")

_STORE_ERROR_POLICIES = ("raise", "fetch")


# While a failure is remembered, a caller without a token looks in the store
# for another process's fresh token at most this often (seconds).
_STORE_PEEK_INTERVAL = 0.5


class _LockLapsed(Exception):
    """The store lock expired during our fetch; start over from reading the store."""


class TokenManager:
    """Gives every caller a valid Zoom S2S access token, fetched once per lifetime.

    Use it as ``async with TokenManager(creds, store=...) as tokens`` (or call
    :meth:`aclose`) and call :meth:`get_token` wherever a token is needed.

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
            covers clock skew between hosts.
        lock_ttl: Seconds the store's lock lives if its holder dies. Must exceed
            one request's timeout; the default covers the whole retry budget.
        wait_timeout: Seconds a caller waits for another process's fetch before
            :class:`LockTimeoutError`; default ``lock_ttl + 15``.
        request_timeout: Seconds one token request may take.
        retry: Retry policy for the token request.
        hooks: Callables receiving each :class:`TokenEvent`; default: DEBUG logging.
        on_store_error: What a refresh does when the store fails: ``"raise"``
            (default) raises the :class:`StoreError` to callers without a valid
            token; ``"fetch"`` falls back to fetching for this process alone
            (one token per process while the store is down) and goes back to
            the store on the next refresh. A valid token in memory is served
            either way.
        close_store: Close the store in :meth:`aclose`; by default only a store
            the manager made (from ``None`` or a URL) is closed.

    Raises:
        ConfigurationError: A bad URL or inconsistent timing arguments.
    """

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
    ) -> None:
        if not isinstance(credentials, Credentials):
            raise ConfigurationError(
                "credentials must be a zoom_s2s.Credentials, e.g. Credentials.from_env()"
            )
        if token_url is None:
            token_url = os.environ.get(ENV_TOKEN_URL) or DEFAULT_TOKEN_URL
        validate_url(token_url, "token_url")
        self._retry = retry or RetryPolicy()
        if lock_ttl is None:
            lock_ttl = self._retry.timeout + request_timeout + 5.0
        for name, value in (
            ("refresh_margin", refresh_margin),
            ("min_ttl", min_ttl),
            ("lock_ttl", lock_ttl),
            ("request_timeout", request_timeout),
        ):
            if value < 0 or (value == 0 and name in ("lock_ttl", "request_timeout")):
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
        self.on_store_error = on_store_error
        self.credentials = credentials
        self.token_url = token_url
        self.refresh_margin = refresh_margin
        self.min_ttl = min_ttl
        self.lock_ttl = lock_ttl
        self.wait_timeout = lock_ttl + 15.0 if wait_timeout is None else wait_timeout
        self.request_timeout = request_timeout
        self._owns_store = not isinstance(store, TokenStore) if close_store is None else close_store
        if store is None:
            store = MemoryTokenStore()
        elif isinstance(store, str):
            from .stores.url import store_from_url

            store = store_from_url(store)
        self.store: TokenStore = store
        self.store_key = fingerprint(token_url, credentials.account_id, credentials.client_id)
        self._session = SessionSlot(session, "TokenManager")
        self._hooks: tuple[TokenHook, ...] = (log_event,) if hooks is None else tuple(hooks)

        self._token: AccessToken | None = None
        self._refresh_after = 0.0  # wall clock: start refresh-ahead from here
        self._usable_until = 0.0  # wall clock: from here callers must wait
        self._inflight: asyncio.Task[AccessToken] | None = None
        self._revoked: collections.deque[str] = collections.deque(maxlen=32)
        self._failures = 0
        self._retry_not_before = 0.0
        self._last_error: TokenError | None = None
        self._closed = False
        self._counts: collections.Counter[EventKind] = collections.Counter()
        self._hits = 0  # get_token() calls answered from memory
        self._refresh_started = 0.0
        self._next_store_peek = 0.0
        self._backoff_decided = False  # the last refresh set _retry_not_before itself

    def __repr__(self) -> str:
        return (
            f"TokenManager(account_id={self.credentials.account_id!r}, "
            f"client_id={self.credentials.client_id!r}, store={self.store.name!r}, "
            f"key={self.store_key!r})"
        )

    # -- the public API ---------------------------------------------------------------

    async def get_token(self) -> AccessToken:
        """Return a valid access token, fetching or waiting only when none is valid.

        Raises:
            TokenError: Zoom refused or kept failing, and no valid token exists.
            StoreError: The store failed and no valid token exists.
            LockTimeoutError: Another process held the lock past ``wait_timeout``.
            RuntimeError: The manager is closed.
        """
        token = self._token
        if token is not None:
            now = time.time()
            if now < self._refresh_after:
                self._hits += 1
                return token
            if now < self._usable_until:
                self._hits += 1
                self._refresh_in_background(now)
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
        self._revoked.append(token_fp)
        if self._token is not None and self._token.fingerprint == token_fp:
            self._token = None
        deleted = await self.store.delete(self.store_key, fingerprint=token_fp)
        self._emit(EventKind.INVALIDATED, token, None)
        return deleted

    def peek_token(self) -> AccessToken | None:
        """The token in memory if it is fresh (before its refresh moment), else ``None``.

        Never does I/O and never starts a refresh, so any thread may call it;
        the sync facade uses it as its fast path.
        """
        token = self._token
        if token is not None and time.time() < self._refresh_after:
            self._hits += 1  # from other threads this count may miss a few: it is a gauge
            return token
        return None

    def add_hook(self, hook: TokenHook) -> None:
        """Also deliver every later :class:`TokenEvent` to ``hook``."""
        self._hooks = (*self._hooks, hook)

    def stats(self) -> TokenStats:
        """A snapshot of this manager's counters and current token."""
        token = self._token
        return TokenStats(
            hits=self._hits,
            fetches=self._counts[EventKind.FETCHED],
            adoptions=self._counts[EventKind.ADOPTED],
            background_refreshes=self._counts[EventKind.REFRESH_STARTED],
            waits=self._counts[EventKind.WAITED],
            lock_waits=self._counts[EventKind.LOCK_WAITED],
            invalidations=self._counts[EventKind.INVALIDATED],
            failures=self._counts[EventKind.REFRESH_FAILED],
            token_fingerprint=token.fingerprint if token else None,
            expires_in=token.remaining(time.time()) if token else None,
        )

    async def aclose(self) -> None:
        """Stop background work and close what the manager created. Idempotent."""
        if self._closed:
            return
        self._closed = True
        self._token = None
        task, self._inflight = self._inflight, None
        if task is not None and not task.done():
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        await self._session.close()
        if self._owns_store:
            await self.store.aclose()

    async def __aenter__(self) -> TokenManager:
        if self._closed:
            raise RuntimeError("this TokenManager is closed; create a new one")
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    def __del__(self) -> None:
        slot = getattr(self, "_session", None)  # absent if __init__ raised
        if slot is not None:
            slot.warn_if_unclosed(repr(self))

    # -- scheduling -------------------------------------------------------------------

    def _windows(self, token: AccessToken) -> tuple[float, float]:
        """(refresh margin, min ttl) for ``token``, shrunk for short lifetimes."""
        lifetime = max(token.lifetime, 1e-3)
        return min(self.refresh_margin, lifetime / 2), min(self.min_ttl, lifetime / 10)

    def _is_newer_and_usable(self, token: AccessToken | None, now: float) -> bool:
        if token is None or token.fingerprint in self._revoked:
            return False
        _margin, min_ttl = self._windows(token)
        if token.remaining(now) <= min_ttl:
            return False
        current = self._token
        # By fingerprint: a Redis read re-derives expires_at from the key's TTL,
        # so the same token read twice may differ by milliseconds.
        return current is None or (
            token.fingerprint != current.fingerprint and token.expires_at > current.expires_at
        )

    def _adopt(self, token: AccessToken) -> None:
        margin, min_ttl = self._windows(token)
        window_start = token.expires_at - margin
        # XFetch-style spreading: each process refreshes at its own random moment
        # in the first half of the window; the first one refreshes for all.
        self._refresh_after = window_start + random.uniform(0.0, margin / 2)
        self._usable_until = token.expires_at - min_ttl
        self._token = token
        self._failures = 0
        self._last_error = None

    # -- refreshing -------------------------------------------------------------------

    def _refresh_in_background(self, now: float) -> None:
        if self._inflight is None and now >= self._retry_not_before and not self._closed:
            self._start_refresh()
            self._emit(EventKind.REFRESH_STARTED, self._token, None)

    def _start_refresh(self) -> asyncio.Task[AccessToken]:
        task = asyncio.get_running_loop().create_task(self._refresh(), name="zoom-s2s-refresh")
        self._inflight = task
        self._refresh_started = time.monotonic()
        task.add_done_callback(self._refresh_done)
        return task

    def _refresh_done(self, task: asyncio.Task[AccessToken]) -> None:
        if self._inflight is task:
            self._inflight = None
        if task.cancelled():
            return
        exc = task.exception()  # also marks it retrieved for background refreshes
        if exc is None:
            return
        decided, self._backoff_decided = self._backoff_decided, False
        if not decided:
            # A failure the store could not record (the store itself failed, or
            # on_store_error="fetch"): back off on our own. Otherwise the wait is
            # the fleet record's retry_at, already set.
            self._failures += 1
            self._retry_not_before = max(
                self._retry_not_before, time.time() + backoff_seconds(self._failures)
            )
        # A valid token keeps being served meanwhile; callers without one get
        # the remembered error at once.
        if isinstance(exc, TokenError):
            self._last_error = exc
        duration = time.monotonic() - self._refresh_started
        self._emit(EventKind.REFRESH_FAILED, self._token, duration, error=exc)

    async def _wait_for_token(self) -> AccessToken:
        if self._closed:
            raise RuntimeError("this TokenManager is closed; create a new one")
        task = self._inflight
        if task is None:
            last, now = self._last_error, time.time()
            if last is not None and now < self._retry_not_before:
                # Remembered failure: don't hammer Zoom; callers learn at once. But
                # another process may have recovered meanwhile: look in the store,
                # at most every _STORE_PEEK_INTERVAL (the others raise at once).
                if now >= self._next_store_peek:
                    self._next_store_peek = now + _STORE_PEEK_INTERVAL
                    with contextlib.suppress(StoreError):
                        adopted = await self._adopt_from_store()
                        if adopted is not None:
                            return adopted
                error = copy.copy(last)
                error.args = (
                    f"{last} [remembered; next attempt in {self._retry_not_before - now:.1f} s]",
                )
                raise error from last
            task = self._start_refresh()
        started = time.monotonic()
        # shield: a caller cancelled while waiting must not cancel the shared fetch.
        token = await asyncio.shield(task)
        self._emit(EventKind.WAITED, token, time.monotonic() - started)
        return token

    async def _refresh(self) -> AccessToken:
        try:
            return await self._refresh_through_store()
        except StoreError as exc:
            self._emit(EventKind.STORE_ERROR, self._token, None, error=exc)
            if self.on_store_error == "raise":
                raise
        # on_store_error="fetch": the store is down, so this process fetches for itself.
        token = await self._fetch()
        self._adopt(token)
        return token

    async def _refresh_through_store(self) -> AccessToken:
        store, key = self.store, self.store_key
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.wait_timeout
        while True:
            adopted = await self._adopt_from_store()
            if adopted is not None:
                return adopted
            await self._respect_fleet_backoff()
            lease = await store.acquire_lock(key, ttl=self.lock_ttl)
            if lease is not None:
                try:
                    # Double-checked: someone may have written between read and lock.
                    adopted = await self._adopt_from_store()
                    if adopted is not None:
                        return adopted
                    failure = await self._respect_fleet_backoff()
                    generation = await store.next_generation(key)
                    return await self._fetch_and_store(generation, failure, time.monotonic())
                except _LockLapsed:
                    continue  # a successor holds the lock now: read what it stored
                finally:
                    await store.release_lock(lease)
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise LockTimeoutError(
                    f"waited {self.wait_timeout:g} s for another process to fetch a token "
                    f"into {store.name}; that process may be stuck. Check the store, or raise "
                    "wait_timeout"
                )
            started = time.monotonic()
            await store.wait_for_change(key, timeout=min(remaining, self.lock_ttl))
            self._emit(EventKind.LOCK_WAITED, None, time.monotonic() - started)

    async def _adopt_from_store(self) -> AccessToken | None:
        token = await self.store.read(self.store_key)
        if token is not None and self._is_newer_and_usable(token, time.time()):
            self._adopt(token)
            self._emit(EventKind.ADOPTED, token, None)
            return token
        return None

    async def _respect_fleet_backoff(self) -> FailureRecord | None:
        """Raise the remembered error while the fleet backs off; else return the record."""
        failure = await self.store.read_failure(self.store_key)
        if failure is not None:
            now = time.time()
            if failure.retry_at > now:
                self._retry_not_before = max(self._retry_not_before, failure.retry_at)
                self._backoff_decided = True  # not a failure of ours: see _refresh_done
                raise error_from_failure(failure, now)
        return failure

    async def _fetch(self, keep_trying: Callable[[], bool] | None = None) -> AccessToken:
        started = time.monotonic()
        token = await request_token(
            self._session.get(),
            self.credentials,
            token_url=self.token_url,
            request_timeout=self.request_timeout,
            retry=self._retry,
            keep_trying=keep_trying,
        )
        self._emit(EventKind.FETCHED, token, time.monotonic() - started)
        return token

    async def _fetch_and_store(
        self, generation: int, failure: FailureRecord | None, locked_at: float
    ) -> AccessToken:
        key = self.store_key

        def lock_still_ours() -> bool:
            # A holder stalled past the lock TTL (paused VM, SIGSTOP, long GC) must
            # not retry: a successor has the lock and may already have fetched.
            return time.monotonic() - locked_at < self.lock_ttl

        try:
            token = await self._fetch(lock_still_ours)
        except TokenError as exc:
            if not lock_still_ours():
                raise _LockLapsed from exc
            record = failure_after(exc, (failure.failures if failure else 0) + 1, time.time())
            with contextlib.suppress(StoreError):  # the fetch's error is the one to report
                await self.store.write_failure(key, record)
                # The fleet and this process wait for the same moment.
                self._retry_not_before = max(self._retry_not_before, record.retry_at)
                self._backoff_decided = True
            raise
        try:
            if failure is not None:
                await self.store.write_failure(key, None)
            written = await self.store.write(key, token, generation=generation)
        except StoreError as exc:
            if self.on_store_error == "raise":
                raise
            self._emit(EventKind.STORE_ERROR, token, None, error=exc)
            written = True  # keep this token for this process; the store is down
        if not written:
            self._emit(EventKind.STALE_WRITE, token, None)
            newer = await self._adopt_from_store()
            if newer is not None:
                return newer
        self._adopt(token)
        return token

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
            expires_in=token.remaining(time.time()) if token else None,
            duration=duration,
            error=f"{type(error).__name__}: {error}" if error is not None else None,
        )
        for hook in self._hooks:
            try:
                hook(event)
            except Exception:
                logger.exception("zoom_s2s event hook %r failed", hook)
