"""ZoomClient: a small Zoom REST API client on the shared token.

One request: a first attempt made directly (most succeed); if it fails with
something worth retrying (per-second 429s; 5xx and connection failures of
idempotent methods), stamina takes over with one back-off hook per request
(:class:`_Retries`). Each attempt goes through the request pipeline
(:mod:`~zoom_s2s.client.pipeline`: token, pacing, the one retry after a
refused token) and aiohttp. See ``docs/architecture.rst`` ("The client").
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import AsyncIterator, Mapping
from functools import partial
from typing import IO, TYPE_CHECKING, Any
from urllib.parse import quote

import aiohttp
import stamina
import yarl
from aiohttp import hdrs

from .._env import api_url_from_env
from .._http import own_retry_notices
from .._lifecycle import AsyncClosedOnExit
from .._redact import secret_forms
from .._session import SessionSlot
from ..api import Products
from ..errors import (
    APIConnectionError,
    ConfigurationError,
    DailyLimitExceededError,
    RateLimitedError,
    ServerError,
    UsageError,
    ZoomAPIError,
)
from ..manager import TokenManager
from ..models import AccessToken
from ..oauth import RetryPolicy
from ..ratelimit.headers import RateLimitInfo, rate_limit_info
from ..ratelimit.limiter import RateLimiter
from ..ratelimit.limits import RateLimits
from . import transfers
from .middleware import ForeignRedirect, RedirectGuard, check_redirect_mode
from .pagination import MAX_PAGE_SIZE, Pages, Params
from .pipeline import Answer, Flow, Pipeline
from .responses import (
    DEFAULT_MAX_RESPONSE_BYTES,
    decode_response,
    error_from_response,
    read_body,
)
from .urls import Destinations, api_base, quote_path
from .user import User

if TYPE_CHECKING:
    from ..api._base import Upload

__all__ = ["ZoomClient"]

logger = logging.getLogger("zoom_s2s.client")

IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})

_PATH_CACHE_SIZE = 512


class _Retries:
    """stamina back-off hook of one :meth:`ZoomClient.request` call whose first attempt failed.

    It counts per call: ``rate_limit_retries`` after per-second 429s,
    ``policy.attempts`` attempts for transient failures. (A refused token is
    retried inside each attempt, by the pipeline.)
    """

    __slots__ = (
        "_last",
        "_verdict",
        "failed",
        "idempotent",
        "max_wait",
        "method",
        "path",
        "policy",
        "rate_limit_retries",
        "rate_limited",
    )

    def __init__(
        self,
        policy: RetryPolicy,
        *,
        method: str,
        path: str,
        rate_limit_retries: int,
        max_wait: float,
    ) -> None:
        self.policy = policy
        self.method = method
        self.path = path
        self.idempotent = method in IDEMPOTENT_METHODS
        self.rate_limit_retries = rate_limit_retries
        self.max_wait = max_wait
        self.rate_limited = 0
        self.failed = 0
        self._last: Exception | None = None
        self._verdict: bool | float = False

    @property
    def attempts(self) -> int:
        """The most attempts stamina may make (the hook stops sooner)."""
        return self.policy.attempts + self.rate_limit_retries

    def __call__(self, exc: Exception) -> bool | float:
        if exc is self._last:
            return self._verdict  # the first failure, handed to stamina after being decided
        verdict = self._decide(exc)
        self._last, self._verdict = exc, verdict
        if verdict is not False:
            wait = "now" if verdict is True else f"in {verdict:.2f} s"
            logger.debug("%s %s: %s; retrying %s", self.method, self.path, _what(exc), wait)
        return verdict

    def _decide(self, exc: Exception) -> bool | float:
        if isinstance(exc, DailyLimitExceededError):
            return False  # clears at midnight UTC: never sleep for hours
        if isinstance(exc, RateLimitedError):
            if not exc.sent:
                return False  # the rate limiter already waited max_wait: Zoom was not called
            self.rate_limited += 1
            if self.rate_limited > self.rate_limit_retries:
                return False
            if exc.retry_after is None:
                return True  # stamina's exponential back-off
            return min(exc.retry_after, self.max_wait)
        if not self.idempotent:
            return False  # the server may have acted on it: never repeat a POST or PATCH
        if isinstance(exc, (ServerError, aiohttp.ClientConnectionError, asyncio.TimeoutError)):
            self.failed += 1
            return self.failed < self.policy.attempts
        return False


def _what(exc: Exception) -> str:
    if isinstance(exc, ZoomAPIError):
        return f"HTTP {exc.status}" + ("" if exc.code is None else f" code {exc.code}")
    return "timed out" if isinstance(exc, asyncio.TimeoutError) else type(exc).__name__


class ZoomClient(Products, AsyncClosedOnExit):
    """A Zoom REST API client that shares one token through a :class:`TokenManager`.

    Use it as ``async with ZoomClient(tokens) as zoom`` (or call :meth:`aclose`)::

        async with TokenManager(creds, store=store) as tokens, ZoomClient(tokens) as zoom:
            user = await zoom.get_user("me")
            page = await zoom.request("GET", "/users", params={"page_size": 30})

    The token goes only to ``base_url``'s origin (scheme, host and port) and,
    with ``use_token_api_url``, to the token's ``api_url`` when that is a Zoom
    host or ``base_url``'s host; never to another origin a redirect names.

    Args:
        tokens: Where tokens come from.
        base_url: The API base; default ``$ZOOM_API_URL`` or
            ``https://api.zoom.us/v2`` (ZoomGov: :data:`ZOOMGOV_API_URL`).
        session: An aiohttp session to reuse (the client closes only a session
            it made). The session's own middlewares do not apply to the
            client's calls.
        use_token_api_url: Send requests to the account's regional host that
            Zoom names in the token's ``api_url`` (base ``api_url + "/v2"``),
            falling back to ``base_url`` when a token has none, or one whose
            host is neither a Zoom host (``zoom.us``, ``zoomgov.com`` or a
            subdomain) nor ``base_url``'s host (logged as a warning).
            ``https://api.zoom.us`` works for every account; the regional host
            saves a hop.
        on_foreign_redirect: A redirect to another origin is followed without
            the token (``"strip"``, the default) or refused with
            :class:`~zoom_s2s.errors.ForeignRedirectError` (``"refuse"``).
        allow_insecure_http: Accept an ``http://`` base (or ``api_url``) on a
            host that is not loopback; the token would cross the network in
            clear text.
        max_response_bytes: Largest answer body read; a larger one is a
            :class:`ZoomAPIError` (the connection is closed, not drained).
        retry: Retries of 5xx answers and connection failures (idempotent
            methods only: GET, HEAD, OPTIONS, PUT, DELETE), and the back-off
            of a 429 without ``Retry-After``.
        rate_limit_retries: How many times a per-second 429 is retried.
        max_rate_limit_wait: Longest wait, in seconds, for one 429 retry.
        request_timeout: Seconds one attempt may take.
        rate_limits: Pace requests so that the whole fleet stays within the
            account's Zoom rate limits (:class:`~zoom_s2s.RateLimits`, e.g.
            ``RateLimits.for_plan("pro")``): each request first takes a permit
            from a budget per account and category shared through the token
            manager's store, and a 429 seen by any process pauses (daily
            limits: blocks exactly its scope for) the others. ``None`` (the
            default): the plan is not known up front; the client paces itself
            from Zoom's answers and honours the fleet's blocks all the same.

    Raises:
        ConfigurationError: ``base_url`` is not an absolute http(s) URL, is
            ``http://`` to a host that is not loopback without
            ``allow_insecure_http``, or another argument is out of range.
    """

    def __init__(
        self,
        tokens: TokenManager,
        base_url: str | None = None,
        session: aiohttp.ClientSession | None = None,
        *,
        use_token_api_url: bool = False,
        on_foreign_redirect: ForeignRedirect = "strip",
        allow_insecure_http: bool = False,
        max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
        retry: RetryPolicy | None = None,
        rate_limit_retries: int = 3,
        max_rate_limit_wait: float = 2.0,
        request_timeout: float = 30.0,
        rate_limits: RateLimits | None = None,
    ) -> None:
        if rate_limit_retries < 0 or max_rate_limit_wait < 0 or request_timeout <= 0:
            raise ConfigurationError(
                "rate_limit_retries and max_rate_limit_wait must be >= 0, request_timeout > 0"
            )
        if (
            isinstance(max_response_bytes, bool)
            or not isinstance(max_response_bytes, int)
            or max_response_bytes < 1
        ):
            raise ConfigurationError(
                f"max_response_bytes={max_response_bytes!r} must be a positive number of bytes"
            )
        refuse = check_redirect_mode(on_foreign_redirect)
        self.tokens = tokens
        self.base_url = api_base(
            api_url_from_env() if base_url is None else base_url,
            "base_url",
            allow_insecure_http=allow_insecure_http,
        )
        self.use_token_api_url = use_token_api_url
        self.max_response_bytes = max_response_bytes
        self._destinations = Destinations(
            self.base_url,
            use_token_api_url=use_token_api_url,
            allow_insecure_http=allow_insecure_http,
        )
        # aiohttp drops the Authorization header on every redirect to another
        # origin (documented; the tests check it with real servers), which is
        # the "strip" rule at no cost. "refuse" needs to see the redirect first.
        # An empty tuple also keeps a borrowed session's middlewares out.
        self._middlewares: tuple[RedirectGuard, ...] = (
            (RedirectGuard(self._destinations, refuse=True),) if refuse else ()
        )
        self._retry = retry or RetryPolicy()
        self._rate_limit_retries = rate_limit_retries
        self._max_rate_limit_wait = max_rate_limit_wait
        self._timeout = aiohttp.ClientTimeout(total=request_timeout)
        self._session = SessionSlot(session, "ZoomClient")
        self._closed = False
        # Work that is the same for every request, done once: the URL of each
        # path at the configured base, and the headers of the current token.
        self._paths: dict[str, tuple[str, yarl.URL]] = {}
        self._regional_urls: dict[tuple[str, str], yarl.URL] = {}  # (base, quoted path)
        self._signed: tuple[AccessToken | None, dict[str, str]] = (None, {})
        # The fleet's budgets and blocks (zoom_s2s.ratelimit); rate_limits=None paces
        # only from what Zoom's answers say.
        limiter = RateLimiter.for_manager(rate_limits, tokens)
        limiter.fetch = partial(self.request, "GET")  # a meeting's host, for its cap
        self._pipeline = Pipeline(tokens, self._destinations, limiter)
        self._last_headers: Mapping[str, str] | None = None

    @property
    def rate_limiter(self) -> RateLimiter | None:
        """What paces this client's requests and keeps the fleet's quotas."""
        limiter = self._pipeline.limiter
        return limiter if isinstance(limiter, RateLimiter) else None

    @rate_limiter.setter
    def rate_limiter(self, limiter: RateLimiter | None) -> None:
        self._pipeline.limiter = limiter

    @property
    def last_rate_limit(self) -> RateLimitInfo | None:
        """The ``X-RateLimit-*`` headers of the last answer this client read, if it sent any.

        With many concurrent requests "last" is whichever answer came last; an
        error carries its own answer's headers as ``error.rate_limit``.
        """
        headers = self._last_headers
        return None if headers is None else rate_limit_info(headers)

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
        rate_category: str | None = None,
    ) -> Any:
        """Call the API and return the decoded JSON answer (``None`` for 204 or no body).

        Args:
            method: HTTP method, e.g. ``"GET"``.
            path: Path below the base URL, e.g. ``"/users/me"``. Characters
                that cannot appear in a path are quoted; quote ids yourself
                with ``urllib.parse.quote(value, safe="")`` (``get_user`` does).
            params: Query parameters.
            json: A JSON-serialisable request body.
            rate_category: The Zoom rate-limit category to pace this request
                by (``"light"``, ``"medium"``, ``"heavy"``,
                ``"resource_intensive"``), instead of the built-in table's or
                what earlier answers said (with ``rate_limits=`` only).

        Returns:
            The decoded JSON body.

        Raises:
            UnauthorizedError: 401, also after one retry with a fresh token.
            MissingScopesError: Code 4700 or 4711, also after one retry with a
                fresh token: add the scope to the app.
            PlanRequiredError: Code 200 "Only available for Paid or ZMP account".
            PermissionDeniedError: 403, or code 200 "No permission.".
            NotFoundError: 404.
            RateLimitedError: 429 per-second limit after the bounded retries; or,
                with ``rate_limits=``, no slot within ``max_wait`` (``sent`` is
                ``False``: Zoom was not called).
            DailyLimitExceededError: 429 daily limit, raised at once; with
                ``rate_limits=``, also once any process of the fleet has hit it
                (``sent`` is ``False``).
            ServerError: 5xx after the bounded retries (at once for POST/PATCH).
            ForeignRedirectError: A redirect to another origin, with
                ``on_foreign_redirect="refuse"``.
            ZoomAPIError: Any other error answer, a 2xx body that is not JSON,
                or a body over ``max_response_bytes``.
            TokenError: No token could be had.
            APIConnectionError: The connection failed or an attempt exceeded
                ``request_timeout`` (after retries when idempotent).
            ValueError: ``path`` is empty, absolute, or has a query.
            UsageError: The client is closed (a ``RuntimeError`` too).
        """
        session = self._open_session()
        method = method.upper()
        target = self._paths.get(path) or self._target(path)
        retries: _Retries | None = None
        try:
            try:
                return await self._attempt(session, method, target, params, json, rate_category)
            except Exception as exc:
                retries = _Retries(
                    self._retry,
                    method=method,
                    path=target[1].path,
                    rate_limit_retries=self._rate_limit_retries,
                    max_wait=self._max_rate_limit_wait,
                )
                if retries(exc) is False:
                    raise
                first: Exception | None = exc
            with own_retry_notices():
                async for attempt in stamina.retry_context(
                    on=retries,
                    attempts=retries.attempts,
                    timeout=self._retry.timeout,
                    wait_initial=self._retry.wait_initial,
                    wait_max=self._retry.wait_max,
                    wait_jitter=self._retry.wait_jitter,
                ):
                    with attempt:
                        if first is not None:
                            # The first attempt's failure, decided above: stamina
                            # waits for it and counts it like any other.
                            failure, first = first, None
                            raise failure
                        return await self._attempt(
                            session, method, target, params, json, rate_category
                        )
        except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
            what = _what(exc)
            failed = 0 if retries is None else retries.failed
            tries = f"after {failed} attempts" if failed > 1 else "not retried"
            error = APIConnectionError(
                f"{method} {target[0]} could not reach the Zoom API at "
                f"{self.base_url} ({what}; {tries}); check the network and base_url"
            )
            # aiohttp's response errors (TooManyRedirects, ...) keep the request's
            # headers, the token among them: they are neither chained nor kept
            # as the context (the raise below is outside this except block).
            cause = None if isinstance(exc, aiohttp.ClientResponseError) else exc
        raise error from cause

    async def get_user(
        self,
        user_id: str = "me",
        *,
        login_type: int | None = None,
        encrypted_email: bool | None = None,
        search_by_unique_id: bool | None = None,
    ) -> User:
        """Return a user by id, email address, or ``"me"`` (the app's creating user).

        A pending user (invited, not yet activated) comes back with only
        ``id`` and ``created_at``, as Zoom sends it.

        Args:
            user_id: The user's id or email address, or ``"me"``; with
                ``search_by_unique_id``, the employee unique id.
            login_type: Zoom's ``login_type`` query parameter: the login
                method of an email that has several (e.g. 100 Zoom, 101 SSO).
            encrypted_email: ``user_id`` is an encrypted email address.
            search_by_unique_id: ``user_id`` is an employee unique id.

        Returns:
            The user.

        Raises:
            NotFoundError: No such user (Zoom code 1001).
            ZoomAPIError: Any other API error, or an answer that is not a user.
        """
        if not isinstance(user_id, str) or not user_id:
            raise ValueError("user_id must be a non-empty string: an id, an email or 'me'")
        path = "/users/me" if user_id == "me" else "/users/" + quote(user_id, safe="")
        params: dict[str, str | int] | None = None
        if login_type is not None or encrypted_email is not None or search_by_unique_id is not None:
            params = _user_query(login_type, encrypted_email, search_by_unique_id)
        data = await self.request("GET", path, params=params)
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

    def paginate(
        self,
        path: str,
        *,
        params: Params = None,
        key: str | None = None,
        page_size: int = MAX_PAGE_SIZE,
    ) -> AsyncIterator[Any]:
        """Iterate over the items of every page of a list API, following ``next_page_token``::

            async for user in zoom.paginate("/users", params={"status": "active"}):
                print(user["email"])

        Each page is one :meth:`request` (with its retries). If Zoom says the
        page token is invalid or expired (they last 15 minutes), the walk
        starts again from the first page and skips the items already yielded
        (by ``id``), at most 3 times.

        Args:
            path: The list API, e.g. ``"/users"`` or ``"/users/me/meetings"``.
            params: Other query parameters, sent with every page.
            key: The answer's list of items, e.g. ``"users"``; default the one
                key of the first answer whose value is a list.
            page_size: Items per page, 1 to 300, or to the API's own maximum
                where it is larger (2000 on ``/users``); where it is smaller,
                that maximum is sent (:func:`zoom_s2s.ratelimit.page_size_max`).

        Yields:
            The items, as decoded JSON.

        Raises:
            ConfigurationError: ``page_size`` is out of range.
            ZoomAPIError: An API error, or an answer that is not a page of
                items (no list, several lists without ``key``, a repeated
                page token).
        """
        return Pages(self, path, params=params, key=key, page_size=page_size).items()

    async def upload(
        self,
        method: str,
        path: str,
        *,
        files: Mapping[str, Upload],
        params: Params = None,
        base_url: str | None = None,
        rate_category: str | None = None,
    ) -> Any:
        """Send files as multipart/form-data (``zoom.chat.files.create`` uses it).

        Args:
            method: HTTP method, e.g. ``"POST"``.
            path: Path below the base URL.
            files: Form field -> content, or (file name, content[, content type]);
                content is bytes or a binary file (a seekable one is sent again
                after a refused token or Zoom's redirect to another of its hosts).
            params: Query parameters.
            base_url: Zoom's host for this operation (``https://file.zoom.us/v2``),
                used when the client is on Zoom's default API host.
            rate_category: The category to pace it by.

        Returns:
            The decoded JSON answer.

        Raises:
            ForeignRedirectError: Redirected to a host that is not Zoom's.
            ZoomAPIError: As :meth:`request`.
        """
        return await transfers.upload(
            self._link(), method, path, files=files, params=params, base_url=base_url,
            rate_category=rate_category,
        )

    def stream(self, url: str, *, chunk_size: int = transfers.CHUNK_SIZE) -> AsyncIterator[bytes]:
        """The body of a download URL (a recording file's ``download_url``), in chunks::

            async for chunk in zoom.stream(recording_file["download_url"]):
                sink.write(chunk)

        The token goes to the URL only if it is on a Zoom host (or this
        client's base URL's origin); Zoom's redirect to its storage is followed
        without it. A refused token is replaced and the download retried once.

        Raises:
            ConfigurationError: The URL is not on a Zoom host.
            ZoomAPIError: An error answer.
        """
        return transfers.stream(self._link(), url, chunk_size=chunk_size)

    async def download(self, url: str, to: str | os.PathLike[str] | IO[bytes]) -> int:
        """Write the body of a download URL to ``to`` (a path or a binary file), as :meth:`stream`.

        Returns:
            The number of bytes written.
        """
        return await transfers.download(self._link(), url, to)

    async def aclose(self) -> None:
        """Close the session if the client made it. Idempotent."""
        self._closed = True
        await self._session.close()

    async def __aenter__(self) -> ZoomClient:
        self._open_session()
        return self


    # -- internals --------------------------------------------------------------------

    def _open_session(self) -> aiohttp.ClientSession:
        if self._closed:
            raise UsageError("this ZoomClient is closed; create a new one")
        return self._session.get()

    def _link(self) -> transfers.Link:
        return transfers.Link(
            self._open_session(), self._pipeline, self.tokens, self.base_url,
            self._timeout.total, self.max_response_bytes,
        )

    def _target(self, path: str) -> tuple[str, yarl.URL]:
        """(quoted path, URL at the configured base) for ``path``; remembered for next time."""
        quoted = quote_path(path)
        target = (quoted, yarl.URL(self.base_url + quoted, encoded=True))
        if len(self._paths) >= _PATH_CACHE_SIZE:
            self._paths.clear()  # paths with ids in them: keep the memory bounded
        self._paths[path] = target
        return target

    def _regional_url(self, base: str, quoted: str) -> yarl.URL:
        """The URL of ``quoted`` at the token's regional ``base``; remembered for next time."""
        key = (base, quoted)
        url = self._regional_urls.get(key)
        if url is None:
            if len(self._regional_urls) >= _PATH_CACHE_SIZE:
                self._regional_urls.clear()
            url = self._regional_urls[key] = yarl.URL(base + quoted, encoded=True)
        return url

    def _headers(self, token: AccessToken) -> dict[str, str]:
        signed_for, headers = self._signed
        if token is not signed_for:
            headers = {hdrs.AUTHORIZATION: "Bearer " + token.access_token}
            self._signed = (token, headers)
        return headers

    async def _attempt(
        self,
        session: aiohttp.ClientSession,
        method: str,
        target: tuple[str, yarl.URL],
        params: Params,
        json: Any,
        rate_category: str | None,
    ) -> Any:
        """One attempt through the pipeline: the answer decoded, or its error raised."""
        flow = self._pipeline.flow(method, path=target[0], rate_category=rate_category)
        try:
            return await self._through(session, method, target, params, json, flow)
        finally:
            flow.close()

    async def _through(
        self,
        session: aiohttp.ClientSession,
        method: str,
        target: tuple[str, yarl.URL],
        params: Params,
        json: Any,
        flow: Flow,
    ) -> Any:
        token = await flow.asend(None)
        while True:
            assert token is not None  # the client's own URLs are always destinations
            sent, url = token, target[1]
            if self.use_token_api_url:
                base = self._destinations.base_for(token.api_url)
                if base != self.base_url:
                    url = self._regional_url(base, target[0])
            async with session.request(
                method,
                url,
                params=params,
                json=json,
                headers=self._headers(token),
                middlewares=self._middlewares,
                timeout=self._timeout,
                raise_for_status=False,
            ) as response:
                body = await read_body(
                    response, self.max_response_bytes, method=method, path=url.path
                )
                status, headers = response.status, response.headers
            self._last_headers = headers
            authorization = response.request_info.headers.get(hdrs.AUTHORIZATION)
            token = await flow.asend(Answer(status, headers, body, response.url, authorization))
            if token is None:
                break
        if 200 <= status < 300:
            return decode_response(status, headers, body, method=method, path=url.path)
        # The scopes are a fresh token's when one was fetched but could not help.
        error = error_from_response(
            status, headers, body, method=method, path=url.path,
            secrets=secret_forms(sent.access_token), scopes=(flow.token or sent).scopes,
        )
        error.rate_limit = rate_limit_info(headers)
        raise error


def _user_query(
    login_type: int | None, encrypted_email: bool | None, search_by_unique_id: bool | None
) -> dict[str, str | int]:
    """``get_user``'s query parameters, as Zoom spells them."""
    query: dict[str, str | int] = {}
    if login_type is not None:
        if isinstance(login_type, bool) or not isinstance(login_type, int):
            raise ValueError(f"login_type={login_type!r} must be an int (e.g. 100 Zoom, 101 SSO)")
        query["login_type"] = login_type
    if encrypted_email is not None:
        query["encrypted_email"] = "true" if encrypted_email else "false"
    if search_by_unique_id is not None:
        query["search_by_unique_id"] = "true" if search_by_unique_id else "false"
    return query
