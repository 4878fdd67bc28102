"""ZoomAuthMiddleware: an aiohttp client middleware that signs requests with the shared token.

It follows aiohttp's client-middleware contract (aiohttp >= 3.12): it sets
``Authorization: Bearer <token>``, and when Zoom answers 401 with code 124
("Invalid access token" / "Access token is expired") it releases that
response, invalidates the token with the manager (compare-and-delete, so a
burst of 401s refetches once) and retries exactly once with a fresh token.
Its loop is bounded: a second 401 is returned as is.

Where the token goes. aiohttp runs client middlewares once per hop of a
redirect chain, so a middleware that signs every request it sees would hand
the token to whatever host a ``Location`` header names. This one signs only
requests to the destinations :class:`~zoom_s2s.client.urls.Destinations`
allows (the configured API origin; with ``use_token_api_url``, the token's
trusted ``api_url`` origin). A redirect to any other origin is followed
without the token (``on_foreign_redirect="strip"``, the default) or refused
with :class:`~zoom_s2s.errors.ForeignRedirectError` (``"refuse"``). Requests
the session sends elsewhere on its own go out untouched.

The token request itself never passes through it: the manager sends that with
its own session, and if a session carrying this middleware is shared with the
manager, requests to the manager's token URL are passed through untouched.
"""

from __future__ import annotations

import logging
from typing import Literal

import yarl
from aiohttp import ClientHandlerType, ClientRequest, ClientResponse, hdrs

from .._http import parse_json
from ..errors import ConfigurationError, ForeignRedirectError
from ..manager import TokenManager
from ..models import AccessToken
from ..ratelimit.limiter import RateLimiter
from ..ratelimit.limits import RateLimits
from .responses import INVALID_TOKEN_CODE
from .urls import Destinations, origin_of

__all__ = ["ForeignRedirect", "RedirectGuard", "ZoomAuthMiddleware"]

logger = logging.getLogger("zoom_s2s.client")

ForeignRedirect = Literal["strip", "refuse"]
"""What to do with a redirect to an origin the token may not go to."""

REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})

# A 401 body is read to look for code 124 only when it declares a small length,
# so that the caller can still read it afterwards and a hostile answer cannot
# make the middleware buffer much.
_MAX_401_BODY = 64 * 1024


def check_redirect_mode(value: str) -> bool:
    """Whether ``on_foreign_redirect`` says to refuse; raises for anything but strip/refuse."""
    if value not in ("strip", "refuse"):
        raise ConfigurationError(
            f"on_foreign_redirect={value!r}: use 'strip' (follow without the token) or "
            "'refuse' (raise ForeignRedirectError)"
        )
    return value == "refuse"


class RedirectGuard:
    """The redirect half of the token rule, as an aiohttp middleware of its own.

    :class:`~zoom_s2s.client.ZoomClient` signs its requests itself (it must
    know which token a 401 rejected). aiohttp drops that ``Authorization``
    header on a redirect to another origin, so following such a redirect
    without the token needs nothing more; to refuse it, the client passes
    this middleware with each request. On every hop it also removes an
    ``Authorization`` header the destinations do not allow (whatever aiohttp
    does), and it logs (or refuses) a redirect to such an origin.

    Args:
        destinations: Where the token may go.
        refuse: Raise :class:`ForeignRedirectError` on a redirect to another
            origin instead of following it without the token.
    """

    __slots__ = ("_destinations", "_refuse")

    def __init__(self, destinations: Destinations, *, refuse: bool) -> None:
        self._destinations = destinations
        self._refuse = refuse

    async def __call__(self, request: ClientRequest, handler: ClientHandlerType) -> ClientResponse:
        """Send ``request``, unsigned if its origin may not have the token; police redirects."""
        if not self._destinations.allows(request.url):
            request.headers.popall(hdrs.AUTHORIZATION, None)
        response = await handler(request)
        if response.status in REDIRECT_STATUSES:
            check_redirect(request, response, self._destinations, refuse=self._refuse)
        return response


def check_redirect(
    request: ClientRequest,
    response: ClientResponse,
    destinations: Destinations,
    *,
    refuse: bool,
) -> None:
    """Log, or refuse, a redirect answer whose target the token may not go to.

    Raises:
        ForeignRedirectError: ``refuse`` is set and the target is another origin
            (the response is closed first).
    """
    location = response.headers.get(hdrs.LOCATION) or response.headers.get(hdrs.URI)
    if not location:
        return
    try:
        target = request.url.join(yarl.URL(location))
        scheme, host, port = origin_of(target)
    except (TypeError, ValueError):
        return  # aiohttp refuses to follow what it cannot parse either
    if not host or destinations.allows(target):
        return
    shown = f"{scheme}://{host}" + ("" if port in (None, 80, 443) else f":{port}")
    if not refuse:
        logger.debug(
            "%s %s: HTTP %d redirects to %s, another origin: following it without the token",
            request.method,
            request.url.path,
            response.status,
            shown,
        )
        return
    response.close()
    raise ForeignRedirectError(
        status=response.status,
        code=None,
        message=f"the answer redirects to {shown}, another origin",
        tracking_id=response.headers.get("x-zm-trackingid"),
        method=request.method,
        path=request.url.path,
        location=shown,
        hint="the access token goes only to the configured API origin, and "
        "on_foreign_redirect='refuse' is set: check the base URL, or use "
        "on_foreign_redirect='strip' to follow such redirects without the token",
    )


class ZoomAuthMiddleware:
    """Adds the shared access token to requests and recovers once from a revoked token.

    Use it with any aiohttp session that talks to Zoom::

        auth = ZoomAuthMiddleware(tokens)  # the API at $ZOOM_API_URL or api.zoom.us
        async with aiohttp.ClientSession(middlewares=(auth,)) as session:
            async with session.get("https://api.zoom.us/v2/users/me") as response:
                ...

    Args:
        tokens: The token manager to take tokens from and report bad ones to.
        api_url: The API the token is for; the token is sent only to its origin
            (scheme, host and port). Default ``$ZOOM_API_URL`` or
            ``https://api.zoom.us/v2``.
        use_token_api_url: Also send the token to the origin of the token's
            ``api_url`` (the account's regional host) when that is a Zoom host
            (``zoom.us``, ``zoomgov.com`` or a subdomain) or ``api_url``'s host.
        on_foreign_redirect: A redirect to any other origin is followed
            without the token (``"strip"``, the default) or refused with
            :class:`~zoom_s2s.errors.ForeignRedirectError` (``"refuse"``).
        allow_insecure_http: Accept an ``http://`` ``api_url`` on a host that
            is not loopback (the token would cross the network in clear text).
        rate_limits: Pace the requests it signs through the fleet's shared
            budget (:class:`~zoom_s2s.RateLimits`), as ``ZoomClient`` does: each
            waits for a permit of its category (the built-in table, or what
            ``X-RateLimit-Category`` said), and 429s are shared with the fleet.
            A request held back raises :class:`~zoom_s2s.RateLimitedError` or
            :class:`~zoom_s2s.DailyLimitExceededError` (``sent`` is ``False``);
            Zoom's own 429s are returned as responses. ``None``: no pacing.

    Raises:
        ConfigurationError: A bad ``api_url`` or ``on_foreign_redirect``.
    """

    def __init__(
        self,
        tokens: TokenManager,
        *,
        api_url: str | None = None,
        use_token_api_url: bool = False,
        on_foreign_redirect: ForeignRedirect = "strip",
        allow_insecure_http: bool = False,
        rate_limits: RateLimits | None = None,
    ) -> None:
        self._tokens = tokens
        self._refuse = check_redirect_mode(on_foreign_redirect)
        self._destinations = Destinations.for_api_url(
            api_url, use_token_api_url=use_token_api_url, allow_insecure_http=allow_insecure_http
        )
        token_url = yarl.URL(tokens.token_url)
        self._token_origin = origin_of(token_url)
        self._token_path = token_url.path
        self.rate_limiter: RateLimiter | None = (
            None if rate_limits is None else RateLimiter.for_manager(rate_limits, tokens)
        )
        self._api_path = yarl.URL(self._destinations.base_url).path.rstrip("/")

    def __repr__(self) -> str:
        mode = "refuse" if self._refuse else "strip"
        return (
            f"ZoomAuthMiddleware(tokens={self._tokens!r}, "
            f"api_url={self._destinations.base_url!r}, on_foreign_redirect={mode!r})"
        )

    async def __call__(self, request: ClientRequest, handler: ClientHandlerType) -> ClientResponse:
        """Sign ``request`` if its origin may have the token; on 401 code 124, retry once."""
        url = request.url
        if url.path == self._token_path and origin_of(url) == self._token_origin:
            return await handler(request)
        token = await self._tokens.get_token()
        if not self._destinations.allows(url, token.api_url):
            return await handler(request)  # another origin: a redirect hop, or not Zoom at all
        if self.rate_limiter is not None:
            return await self._paced(request, handler, token, self.rate_limiter)
        return await self._signed(request, handler, token)

    async def _paced(
        self,
        request: ClientRequest,
        handler: ClientHandlerType,
        token: AccessToken,
        limiter: RateLimiter,
    ) -> ClientResponse:
        """Wait for a permit, send, and tell the limiter what the answer said."""
        path = request.url.path
        if self._api_path and path.startswith(self._api_path + "/"):
            path = path[len(self._api_path):]
        category = limiter.category(request.method, path)
        await limiter.acquire(category, method=request.method, path=path)
        response = await self._signed(request, handler, token)
        message = None
        if response.status == 429:
            message = await _small_json_message(response)
        await limiter.observe(category, method=request.method, path=path,
                              status=response.status, headers=response.headers, message=message)
        return response

    async def _signed(
        self, request: ClientRequest, handler: ClientHandlerType, token: AccessToken
    ) -> ClientResponse:
        """Send signed; on 401 code 124, invalidate the token and retry once."""
        url = request.url
        response = await self._send(request, handler, token)
        if response.status != 401 or not await _is_invalid_token(response):
            return response
        response.release()
        logger.debug(
            "%s %s: 401 code %d with token_fp=%s; invalidating it and retrying once",
            request.method,
            url.path,
            INVALID_TOKEN_CODE,
            token.fingerprint,
        )
        await self._tokens.invalidate(token)
        return await self._send(request, handler, await self._tokens.get_token())

    async def _send(
        self, request: ClientRequest, handler: ClientHandlerType, token: AccessToken
    ) -> ClientResponse:
        request.headers[hdrs.AUTHORIZATION] = f"Bearer {token.access_token}"
        response = await handler(request)
        if response.status in REDIRECT_STATUSES:
            check_redirect(request, response, self._destinations, refuse=self._refuse)
        return response


async def _small_json(response: ClientResponse) -> object:
    """The decoded body of an answer that declares a small length (read and kept), else None.

    Only a body that declares a small ``Content-Length`` is read (Zoom's
    always does), so that the caller can still read it and a hostile answer
    cannot make the middleware buffer much.
    """
    declared = response.content_length
    if declared is None or declared > _MAX_401_BODY:
        return None
    try:
        return parse_json(await response.read())
    except ValueError:
        return None


async def _small_json_message(response: ClientResponse) -> str | None:
    """Zoom's ``message`` of a small JSON error answer (read and kept for the caller)."""
    data = await _small_json(response)
    message = data.get("message") if isinstance(data, dict) else None
    return message if isinstance(message, str) else None


async def _is_invalid_token(response: ClientResponse) -> bool:
    """Whether a 401 says the token itself is bad (Zoom code 124); reads (and keeps) the body."""
    data = await _small_json(response)
    return isinstance(data, dict) and data.get("code") == INVALID_TOKEN_CODE
