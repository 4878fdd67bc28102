"""``zoom_s2s.httpx.ZoomAuth``: the shared token for code built on httpx (sync and async).

::

    tokens = SyncTokenManager(Credentials.from_env(), store="redis://localhost:6379/0")
    with httpx.Client(auth=ZoomAuth(tokens), base_url="https://api.zoom.us/v2") as http:
        me = http.get("/users/me").json()

A face of the request pipeline (:mod:`zoom_s2s.client.pipeline`), like
:class:`~zoom_s2s.aiohttp.ZoomAuthMiddleware`. Needs ``pip install zoom-s2s[httpx]``;
imports here are absolute, so this module's name does not hide ``httpx``.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import AsyncGenerator, Callable, Generator
from typing import Any

import anyio.to_thread
import httpx

from .client.pipeline import Answer, Pacer, Pipeline, SyncTokens, blocking_pacer, wants_body
from .client.urls import Destinations
from .errors import ConfigurationError, UsageError
from .manager import TokenManager
from .models import AccessToken
from .ratelimit.limiter import RateLimiter
from .ratelimit.limits import RateLimits

__all__ = ["ZoomAuth"]


class ZoomAuth(httpx.Auth):
    """An :class:`httpx.Auth` that signs Zoom API requests with the shared token.

    Only requests to the API's origin are signed (a request anywhere else goes
    out untouched); after a refused token (401 code 124, or a scope error) the
    request is sent once more with a fresh token when its body can be sent
    again (bytes, str, a seekable file).

    Args:
        tokens: A :class:`~zoom_s2s.TokenManager` (for ``httpx.AsyncClient``)
            or a blocking manager such as :class:`~zoom_s2s.sync.SyncTokenManager`
            or :meth:`SyncTokenManagerPool.manager(...)
            <zoom_s2s.sync.SyncTokenManagerPool.manager>` (for
            ``httpx.Client``, and for ``httpx.AsyncClient`` through a thread).
        api_url, use_token_api_url, allow_insecure_http: Where the token may
            go, as for :class:`~zoom_s2s.aiohttp.ZoomAuthMiddleware`.
        rate_limits: Pace the requests it signs through the fleet's shared
            budget (:class:`~zoom_s2s.RateLimits`), as
            :class:`~zoom_s2s.aiohttp.ZoomAuthMiddleware` does; Zoom's 429s and
            daily blocks are honoured with or without it. A request held back
            raises :class:`~zoom_s2s.errors.RateLimitedError` or
            :class:`~zoom_s2s.errors.DailyLimitExceededError` from the client's
            call, unsent. With a blocking manager the pacing runs on its loop
            (:class:`~zoom_s2s.sync.BlockingPacer`).

    Raises:
        ConfigurationError: A bad ``api_url``; ``rate_limits`` with a token
            source that is neither a ``TokenManager`` nor a manager of
            :mod:`zoom_s2s.sync`.
    """

    def __init__(
        self,
        tokens: TokenManager | SyncTokens,
        *,
        api_url: str | None = None,
        use_token_api_url: bool = False,
        allow_insecure_http: bool = False,
        rate_limits: RateLimits | None = None,
    ) -> None:
        self.tokens = tokens
        is_async = isinstance(tokens, TokenManager) or inspect.iscoroutinefunction(
            getattr(tokens, "get_token", None)
        )
        destinations = Destinations.for_api_url(
            api_url, use_token_api_url=use_token_api_url, allow_insecure_http=allow_insecure_http
        )
        self.pacer: Pacer | None = None
        if isinstance(tokens, TokenManager):
            self._async = Pipeline(
                tokens, destinations, RateLimiter.for_manager(rate_limits, tokens)
            )
            self._sync = None
        elif is_async:
            if rate_limits is not None:
                raise ConfigurationError(
                    "zoom_s2s.httpx.ZoomAuth paces (rate_limits=) a TokenManager or a "
                    f"manager of zoom_s2s.sync; {type(tokens).__name__} cannot be paced"
                )
            self._async, self._sync = Pipeline(tokens, destinations), None
        else:
            self.pacer = blocking_pacer(tokens, rate_limits, "zoom_s2s.httpx.ZoomAuth")
            self._sync = Pipeline(tokens, destinations, self.pacer)
            # httpx.AsyncClient on a blocking manager: its calls, pacing included, in threads.
            self._async = Pipeline(
                _InThread(tokens), destinations,
                None if self.pacer is None else _PacerInThread(self.pacer),
            )

    @property
    def rate_limiter(self) -> RateLimiter | None:
        """What paces the requests it signs with a ``TokenManager`` (``None`` with a
        blocking manager, whose :attr:`pacer` paces on its loop)."""
        limiter = self._async.limiter
        return limiter if isinstance(limiter, RateLimiter) else None

    def __repr__(self) -> str:
        base = self._async.destinations.base_url
        return f"zoom_s2s.httpx.ZoomAuth(tokens={self.tokens!r}, api_url={base!r})"

    def sync_auth_flow(
        self, request: httpx.Request
    ) -> Generator[httpx.Request, httpx.Response, None]:
        """The flow for ``httpx.Client``.

        Raises:
            UnauthorizedError: The token was refused and the body (a stream)
                cannot be sent again; the token is replaced: send again.
            MissingScopesError: The same, for a scope error.
            UsageError: The auth holds an async manager.
        """
        if self._sync is None:
            raise UsageError(
                "zoom_s2s.httpx.ZoomAuth was given an async TokenManager but used by a "
                "blocking httpx.Client; give it a zoom_s2s.sync.SyncTokenManager, or use "
                "httpx.AsyncClient"
            )
        flow = self._sync.flow(request.method, str(request.url), rewind=_rewind(request))
        token = flow.send(None)
        if token is None:
            yield request  # another origin: untouched
        while token is not None:
            response = yield _signed(request, token)
            wanted = wants_body(response.status_code, response.headers.get("content-length"))
            token = flow.send(_answer(response, response.read() if wanted else None))

    async def async_auth_flow(
        self, request: httpx.Request
    ) -> AsyncGenerator[httpx.Request, httpx.Response]:
        """The flow for ``httpx.AsyncClient``; raises as :meth:`sync_auth_flow`."""
        flow = self._async.flow(request.method, str(request.url), rewind=_rewind(request))
        token = await flow.asend(None)
        if token is None:
            yield request  # another origin: untouched
        while token is not None:
            response = yield _signed(request, token)
            wanted = wants_body(response.status_code, response.headers.get("content-length"))
            token = await flow.asend(_answer(response, await response.aread() if wanted else None))


class _PacerInThread:
    """A blocking pacer's trips to its loop, each made from a worker thread (for
    ``httpx.AsyncClient`` on a blocking manager)."""

    def __init__(self, pacer: Pacer) -> None:
        self._pacer = pacer
        self.ticket = pacer.ticket
        self.take_now = pacer.take_now
        self.routine = pacer.routine

    async def acquire(self, ticket: Any) -> Any:
        return await anyio.to_thread.run_sync(self._pacer.acquire, ticket)

    async def observe(self, ticket: Any, **answer: Any) -> Any:
        report = functools.partial(self._pacer.observe, ticket, **answer)
        return await anyio.to_thread.run_sync(report)

    def unanswered(self, ticket: Any) -> None:
        self._pacer.unanswered(ticket)  # does not wait


class _InThread:
    """A blocking manager's calls, each run in a worker thread (for ``httpx.AsyncClient``)."""

    def __init__(self, tokens: Any) -> None:
        self._tokens: SyncTokens = tokens

    async def get_token(self) -> AccessToken:
        return await anyio.to_thread.run_sync(self._tokens.get_token)

    async def invalidate(self, token: AccessToken) -> bool:
        return await anyio.to_thread.run_sync(self._tokens.invalidate, token)


def _signed(request: httpx.Request, token: AccessToken) -> httpx.Request:
    request.headers["Authorization"] = "Bearer " + token.access_token
    return request


def _answer(response: httpx.Response, body: bytes | None) -> Answer:
    sent = response.request  # after redirects, the last hop
    url, authorization = str(sent.url), sent.headers.get("Authorization")
    return Answer(response.status_code, response.headers, body, url, authorization)


def _rewind(request: httpx.Request) -> Callable[[], bool] | None:
    """How to make the body ready to be sent again: ``None`` for bytes; a file is sought back."""
    stream = request.stream
    if isinstance(stream, httpx.ByteStream):
        return None
    source: Any = getattr(stream, "_stream", None)  # what httpx iterates: a file, a generator
    try:
        seek, start = source.seek, source.tell() if source.seekable() else None
    except (AttributeError, OSError, ValueError):
        start = None
    return (lambda: False) if start is None else (lambda: seek(start) == start)
