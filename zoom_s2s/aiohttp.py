"""``zoom_s2s.aiohttp``: the shared token for your own aiohttp sessions.

:class:`ZoomAuthMiddleware` is an aiohttp client middleware (aiohttp >= 3.12)
and a face of the request pipeline (:mod:`zoom_s2s.client.pipeline`): it signs
only requests to the token's destinations, paces them with ``rate_limits``,
and after a refused token retries once with a fresh one. See
``docs/client.rst``. This module's name does not hide the ``aiohttp``
package: imports here are absolute.
"""

from __future__ import annotations

import functools

import yarl
from aiohttp import ClientHandlerType, ClientRequest, ClientResponse, hdrs
from aiohttp.payload import Payload

from .client.middleware import (
    REDIRECT_STATUSES,
    ForeignRedirect,
    check_redirect,
    check_redirect_mode,
)
from .client.pipeline import Answer, Flow, Pipeline, wants_body
from .client.urls import Destinations, origin_of
from .manager import TokenManager
from .ratelimit.limiter import RateLimiter
from .ratelimit.limits import RateLimits

__all__ = ["ZoomAuthMiddleware"]


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
            request held back raises :class:`~zoom_s2s.errors.RateLimitedError` or
            :class:`~zoom_s2s.errors.DailyLimitExceededError` (``sent`` is ``False``);
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
        limiter = self._pipeline.limiter
        return limiter if isinstance(limiter, RateLimiter) else None

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
        try:
            return await self._through(request, handler, flow)
        finally:
            flow.close()

    async def _through(
        self, request: ClientRequest, handler: ClientHandlerType, flow: Flow
    ) -> ClientResponse:
        url = request.url
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
