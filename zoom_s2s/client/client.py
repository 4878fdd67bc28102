"""ZoomClient: a small Zoom REST API client on the shared token.

Layers, outermost first (each closes the response if anything escapes):

1. :meth:`ZoomClient.request` retries, with `stamina <https://stamina.hynek.me>`_:
   429 per-second limits (waiting what ``Retry-After`` says, capped, a bounded
   number of times; a daily limit is raised at once) and 5xx answers or
   connection failures of idempotent methods (bounded attempts and time).
2. :class:`~zoom_s2s.client.middleware.ZoomAuthMiddleware` adds the token and
   retries once with a fresh token after 401 code 124.
3. aiohttp sends the request once.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
from collections.abc import Mapping
from types import TracebackType
from typing import Any
from urllib.parse import quote

import aiohttp
import stamina
import yarl

from .._session import SessionSlot
from ..errors import (
    APIConnectionError,
    ConfigurationError,
    DailyLimitExceededError,
    RateLimitedError,
    ServerError,
    ZoomAPIError,
)
from ..manager import TokenManager
from ..oauth import RetryPolicy
from .middleware import ZoomAuthMiddleware
from .responses import decode_response
from .urls import DEFAULT_API_URL, ENV_API_URL, api_base, quote_path
from .user import User

__all__ = ["ZoomClient"]

logger = logging.getLogger("zoom_s2s.client")

IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})
Params = Mapping[str, str | int | float] | None


class _RetryDecision:
    """stamina back-off hook for one :meth:`ZoomClient.request` call (it counts per call)."""

    def __init__(
        self, policy: RetryPolicy, *, idempotent: bool, rate_limit_retries: int, max_wait: float
    ) -> None:
        self.policy = policy
        self.idempotent = idempotent
        self.rate_limit_retries = rate_limit_retries
        self.max_wait = max_wait
        self.rate_limited = 0
        self.failed = 0

    @property
    def attempts(self) -> int:
        return self.policy.attempts + self.rate_limit_retries

    def __call__(self, exc: Exception) -> bool | float:
        if isinstance(exc, DailyLimitExceededError):
            return False  # clears at midnight UTC: never sleep for hours
        if isinstance(exc, RateLimitedError):
            self.rate_limited += 1
            if self.rate_limited > self.rate_limit_retries:
                return False
            if exc.retry_after is None:
                return True  # stamina's exponential back-off
            wait = min(exc.retry_after, self.max_wait)
            logger.debug("429 %s: waiting %.2f s (Retry-After)", exc.limit_type or "QPS", wait)
            return wait
        if not self.idempotent:
            return False  # the server may have acted on it: never repeat a POST or PATCH
        if isinstance(exc, (ServerError, aiohttp.ClientConnectionError, asyncio.TimeoutError)):
            self.failed += 1
            return self.failed < self.policy.attempts
        return False


class ZoomClient:
    """A Zoom REST API client that shares one token through a :class:`TokenManager`.

    Use it as ``async with ZoomClient(tokens) as zoom`` (or call :meth:`aclose`)::

        async with TokenManager(creds, store=store) as tokens, ZoomClient(tokens) as zoom:
            user = await zoom.get_user("me")
            page = await zoom.request("GET", "/users", params={"page_size": 30})

    Args:
        tokens: Where tokens come from.
        base_url: The API base; default ``$ZOOM_API_URL`` or
            ``https://api.zoom.us/v2`` (ZoomGov: :data:`ZOOMGOV_API_URL`).
        session: An aiohttp session to reuse (the client closes only a session
            it made). The client passes its middleware with each request, so
            the session's own middlewares do not apply to the client's calls.
        use_token_api_url: Send requests to the account's regional host that
            Zoom names in the token's ``api_url`` (base ``api_url + "/v2"``),
            falling back to ``base_url`` when a token has none.
            ``https://api.zoom.us`` works for every account; the regional host
            saves a hop.
        retry: Retries of 5xx answers and connection failures (idempotent
            methods only: GET, HEAD, OPTIONS, PUT, DELETE), and the back-off
            of a 429 without ``Retry-After``.
        rate_limit_retries: How many times a per-second 429 is retried.
        max_rate_limit_wait: Longest wait, in seconds, for one 429 retry.
        request_timeout: Seconds one attempt may take.

    Raises:
        ConfigurationError: ``base_url`` is not an absolute http(s) URL.
    """

    def __init__(
        self,
        tokens: TokenManager,
        base_url: str | None = None,
        session: aiohttp.ClientSession | None = None,
        *,
        use_token_api_url: bool = False,
        retry: RetryPolicy | None = None,
        rate_limit_retries: int = 3,
        max_rate_limit_wait: float = 2.0,
        request_timeout: float = 30.0,
    ) -> None:
        if rate_limit_retries < 0 or max_rate_limit_wait < 0 or request_timeout <= 0:
            raise ConfigurationError(
                "rate_limit_retries and max_rate_limit_wait must be >= 0, request_timeout > 0"
            )
        self.tokens = tokens
        if base_url is None:
            base_url = os.environ.get(ENV_API_URL) or DEFAULT_API_URL
        self.base_url = api_base(base_url, "base_url")
        self.use_token_api_url = use_token_api_url
        self._retry = retry or RetryPolicy()
        self._rate_limit_retries = rate_limit_retries
        self._max_rate_limit_wait = max_rate_limit_wait
        self._timeout = aiohttp.ClientTimeout(total=request_timeout)
        self._auth = ZoomAuthMiddleware(tokens, hosts=[yarl.URL(self.base_url).host or ""])
        self._session = SessionSlot(session, "ZoomClient")
        self._closed = False
        self._regional_bases: dict[str, str] = {}

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return f"ZoomClient(base_url={self.base_url!r}, tokens={self.tokens!r}, {state})"

    # -- the public API ---------------------------------------------------------------

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: Params = None,
        json: Any = None,
    ) -> Any:
        """Call the API and return the decoded JSON answer (``None`` for 204 or no body).

        Args:
            method: HTTP method, e.g. ``"GET"``.
            path: Path below the base URL, e.g. ``"/users/me"``. Characters
                that cannot appear in a path are quoted; quote ids yourself
                with ``urllib.parse.quote(value, safe="")`` (``get_user`` does).
            params: Query parameters.
            json: A JSON-serialisable request body.

        Returns:
            The decoded JSON body.

        Raises:
            UnauthorizedError: 401, also after one retry with a fresh token.
            MissingScopesError: 400 code 4711: add the scope to the app.
            NotFoundError: 404.
            RateLimitedError: 429 per-second limit after the bounded retries.
            DailyLimitExceededError: 429 daily limit, raised at once.
            ServerError: 5xx after the bounded retries (at once for POST/PATCH).
            ZoomAPIError: Any other error answer, or a 2xx body that is not JSON.
            TokenError: No token could be had.
            APIConnectionError: The connection failed or an attempt exceeded
                ``request_timeout`` (after retries when idempotent).
            RuntimeError: The client is closed.
        """
        session = self._open_session()
        method = method.upper()
        quoted = quote_path(path)
        decide = _RetryDecision(
            self._retry,
            idempotent=method in IDEMPOTENT_METHODS,
            rate_limit_retries=self._rate_limit_retries,
            max_wait=self._max_rate_limit_wait,
        )
        try:
            # The first attempt goes without the retry machinery: most requests
            # succeed, and setting stamina up costs more than aiohttp's own send.
            try:
                return await self._send_once(session, method, quoted, params, json)
            except Exception as exc:
                verdict = decide(exc)
                if verdict is False:
                    raise
                first_wait = (
                    self._retry.wait_initial + random.uniform(0, self._retry.wait_jitter)
                    if verdict is True
                    else verdict
                )
                await asyncio.sleep(first_wait)
            async for attempt in stamina.retry_context(
                on=decide,
                attempts=decide.attempts - 1,
                timeout=self._retry.timeout,
                wait_initial=self._retry.wait_initial,
                wait_max=self._retry.wait_max,
                wait_jitter=self._retry.wait_jitter,
            ):
                with attempt:
                    return await self._send_once(session, method, quoted, params, json)
        except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
            what = "timed out" if isinstance(exc, asyncio.TimeoutError) else type(exc).__name__
            tries = f"after {decide.failed} attempts" if decide.idempotent else "not retried"
            raise APIConnectionError(
                f"{method} {quoted.split('?')[0]} could not reach the Zoom API at "
                f"{self.base_url} ({what}; {tries}); check the network and base_url"
            ) from exc
        raise AssertionError("unreachable: stamina either returns or raises")  # pragma: no cover

    async def get_user(self, user_id: str = "me") -> User:
        """Return a user by id, email address, or ``"me"`` (the app's creating user).

        Args:
            user_id: The user's id or email address, or ``"me"``.

        Returns:
            The user.

        Raises:
            NotFoundError: No such user (Zoom code 1001).
            ZoomAPIError: Any other API error, or an answer that is not a user.
        """
        if not isinstance(user_id, str) or not user_id:
            raise ValueError("user_id must be a non-empty string: an id, an email or 'me'")
        path = "/users/" + quote(user_id, safe="")
        data = await self.request("GET", path)
        try:
            return User.from_api(data)
        except ValueError as exc:
            raise ZoomAPIError(
                status=200,
                code=None,
                message=f"the answer is not a user ({exc})",
                tracking_id=None,
                method="GET",
                path=path,
            ) from None

    async def aclose(self) -> None:
        """Close the session if the client made it. Idempotent."""
        self._closed = True
        await self._session.close()

    async def __aenter__(self) -> ZoomClient:
        self._open_session()
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

    # -- internals --------------------------------------------------------------------

    def _open_session(self) -> aiohttp.ClientSession:
        if self._closed:
            raise RuntimeError("this ZoomClient is closed; create a new one")
        return self._session.get()

    async def _base(self) -> str:
        if not self.use_token_api_url:
            return self.base_url
        api_url = (await self.tokens.get_token()).api_url
        if api_url is None:
            return self.base_url
        base = self._regional_bases.get(api_url)
        if base is None:
            try:
                base = api_base(api_url.rstrip("/") + "/v2", "the token's api_url")
            except ConfigurationError:
                logger.warning("ignoring the token's unusable api_url; using %s", self.base_url)
                base = self.base_url
            self._regional_bases[api_url] = base
        return base

    async def _send_once(
        self,
        session: aiohttp.ClientSession,
        method: str,
        quoted_path: str,
        params: Params,
        json: Any,
    ) -> Any:
        url = yarl.URL(await self._base() + quoted_path, encoded=True)
        async with session.request(
            method,
            url,
            params=params,
            json=json,
            middlewares=(self._auth,),
            timeout=self._timeout,
            raise_for_status=False,
        ) as response:
            body = await response.read()
            return decode_response(
                response.status, response.headers, body, method=method, path=url.path
            )
