"""ZoomAuthMiddleware: an aiohttp client middleware that signs requests with the shared token.

A face of the request pipeline (:mod:`~zoom_s2s.client.pipeline`): it signs
only requests to the token's destinations, paces them with ``rate_limits``,
and after a refused token (401 code 124, or a scope error) retries once with
a fresh one. aiohttp calls it once per redirect hop; a hop to another origin
goes out untouched (or is refused: ``on_foreign_redirect``). The manager's
token request passes through it untouched. See ``docs/architecture.rst``.
"""

from __future__ import annotations

import functools
import logging
from typing import Literal

import yarl
from aiohttp import ClientHandlerType, ClientRequest, ClientResponse, hdrs
from aiohttp.payload import Payload

from ..errors import ConfigurationError, ForeignRedirectError
from ..manager import TokenManager
from ..ratelimit.limiter import RateLimiter
from ..ratelimit.limits import RateLimits
from .pipeline import Answer, Pipeline, wants_body
from .urls import Destinations, origin_of

__all__ = ["ForeignRedirect", "RedirectGuard", "ZoomAuthMiddleware"]

logger = logging.getLogger("zoom_s2s.client")

ForeignRedirect = Literal["strip", "refuse"]
"""What to do with a redirect to an origin the token may not go to."""

REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})


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
            budget (:class:`~zoom_s2s.RateLimits`), as ``ZoomClient`` does. A
            request held back raises :class:`~zoom_s2s.RateLimitedError` or
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
        destinations = Destinations.for_api_url(
            api_url, use_token_api_url=use_token_api_url, allow_insecure_http=allow_insecure_http
        )
        limiter = RateLimiter.for_manager(rate_limits, tokens)
        self._pipeline = Pipeline(tokens, destinations, limiter)
        token_url = yarl.URL(tokens.token_url)
        self._token_origin = origin_of(token_url)
        self._token_path = token_url.path

    @property
    def rate_limiter(self) -> RateLimiter | None:
        """What paces the requests it signs (``rate_limits=``), or ``None``."""
        return self._pipeline.limiter

    def __repr__(self) -> str:
        mode = "refuse" if self._refuse else "strip"
        return (
            f"ZoomAuthMiddleware(tokens={self._tokens!r}, "
            f"api_url={self._pipeline.destinations.base_url!r}, on_foreign_redirect={mode!r})"
        )

    async def __call__(self, request: ClientRequest, handler: ClientHandlerType) -> ClientResponse:
        """Send ``request``, signed if its origin may have the token, retried once if refused.

        Raises:
            UnauthorizedError: The token was refused and the body (a stream)
                cannot be sent again; the token is replaced: send again.
            MissingScopesError: The same, for a scope error.
            ForeignRedirectError: See ``on_foreign_redirect``.
            RateLimitedError: See ``rate_limits``.
        """
        url = request.url
        if url.path == self._token_path and origin_of(url) == self._token_origin:
            return await handler(request)
        flow = self._pipeline.flow(
            request.method, url, rewind=functools.partial(_replayable, request)
        )
        token = await flow.asend(None)
        if token is None:
            return await handler(request)  # another origin: a redirect hop, or not Zoom at all
        while True:
            request.headers[hdrs.AUTHORIZATION] = "Bearer " + token.access_token
            response = await handler(request)
            status = response.status
            if status in REDIRECT_STATUSES:
                check_redirect(request, response, self._pipeline.destinations, refuse=self._refuse)
            body = await response.read() if wants_body(status, response.content_length) else None
            authorization = request.headers.get(hdrs.AUTHORIZATION)
            try:
                token = await flow.asend(Answer(status, response.headers, body, url, authorization))
            except BaseException:
                response.release()
                raise
            if token is None:
                return response
            response.release()


def _replayable(request: ClientRequest) -> bool:
    """Whether the body can be sent again in full (aiohttp rewinds files; a stream is spent)."""
    body = request.body
    return not (isinstance(body, Payload) and body.consumed)
