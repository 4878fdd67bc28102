"""Where a redirect may take the token: the rule aiohttp applies on every hop.

:class:`RedirectGuard` and :func:`check_redirect` follow a redirect to another
origin without the token, or refuse it (``on_foreign_redirect``); the client
and the aiohttp middleware (:mod:`zoom_s2s.aiohttp`) use them.
"""

from __future__ import annotations

import logging
from typing import Literal

import yarl
from aiohttp import ClientHandlerType, ClientRequest, ClientResponse, hdrs

from ..errors import ConfigurationError, ForeignRedirectError
from .urls import Destinations, origin_of

__all__ = [
    "REDIRECT_STATUSES",
    "ForeignRedirect",
    "RedirectGuard",
    "check_redirect",
    "check_redirect_mode",
]

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
