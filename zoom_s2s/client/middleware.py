"""ZoomAuthMiddleware: an aiohttp client middleware that signs requests with the shared token.

It follows aiohttp's client-middleware contract (aiohttp >= 3.12): it sets
``Authorization: Bearer <token>``, and when Zoom answers 401 with code 124
("Invalid access token" / "Access token is expired") it releases that
response, invalidates the token with the manager (compare-and-delete, so a
burst of 401s refetches once) and retries exactly once with a fresh token.
Its loop is bounded: a second 401 is returned as is.

The token request itself never passes through it: the manager sends that with
its own session, and if a session carrying this middleware is shared with the
manager, requests to the manager's token URL are passed through untouched.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from typing import Any

import yarl
from aiohttp import ClientHandlerType, ClientRequest, ClientResponse, hdrs

from ..manager import TokenManager
from ..models import AccessToken
from .responses import INVALID_TOKEN_CODE

__all__ = ["ZoomAuthMiddleware"]

logger = logging.getLogger("zoom_s2s.client")


class ZoomAuthMiddleware:
    """Adds the shared access token to requests and recovers once from a revoked token.

    Use it with any aiohttp session that talks to Zoom::

        auth = ZoomAuthMiddleware(tokens, hosts=["api.zoom.us"])
        async with aiohttp.ClientSession(middlewares=(auth,)) as session:
            async with session.get("https://api.zoom.us/v2/users/me") as response:
                ...

    Args:
        tokens: The token manager to take tokens from and report bad ones to.
        hosts: Host names the token may be sent to. A request to any other
            host (say, a redirect to a download CDN) goes out without it,
            except to the host of the token's own ``api_url``. ``None`` (the
            default) sends the token to every host the session talks to.
    """

    def __init__(self, tokens: TokenManager, *, hosts: Iterable[str] | None = None) -> None:
        self._tokens = tokens
        self._hosts = None if hosts is None else frozenset(host.lower() for host in hosts)
        self._token_url = yarl.URL(tokens.token_url).with_query(None).with_fragment(None)

    def __repr__(self) -> str:
        hosts = "any" if self._hosts is None else sorted(self._hosts)
        return f"ZoomAuthMiddleware(tokens={self._tokens!r}, hosts={hosts!r})"

    async def __call__(self, request: ClientRequest, handler: ClientHandlerType) -> ClientResponse:
        """Send ``request`` with the token; on 401 code 124, invalidate and retry once."""
        if request.url.with_query(None).with_fragment(None) == self._token_url:
            return await handler(request)
        token = await self._tokens.get_token()
        if not self._may_receive(request.url, token):
            return await handler(request)
        response = await self._send(request, handler, token)
        if response.status != 401 or not await _is_invalid_token(response):
            return response
        response.release()
        logger.debug(
            "%s %s: 401 code %d with token_fp=%s; invalidating it and retrying once",
            request.method,
            request.url.path,
            INVALID_TOKEN_CODE,
            token.fingerprint,
        )
        await self._tokens.invalidate(token)
        fresh = await self._tokens.get_token()
        return await self._send(request, handler, fresh)

    def _may_receive(self, url: yarl.URL, token: AccessToken) -> bool:
        if self._hosts is None or (url.host or "").lower() in self._hosts:
            return True
        if token.api_url is None:
            return False
        return yarl.URL(token.api_url).origin() == url.origin()

    @staticmethod
    async def _send(
        request: ClientRequest, handler: ClientHandlerType, token: AccessToken
    ) -> ClientResponse:
        request.headers[hdrs.AUTHORIZATION] = f"Bearer {token.access_token}"
        return await handler(request)


async def _is_invalid_token(response: ClientResponse) -> bool:
    """Whether a 401 says the token itself is bad (Zoom code 124); reads (and keeps) the body."""
    try:
        data: Any = json.loads(await response.read())
    except (ValueError, UnicodeDecodeError):
        return False
    return isinstance(data, dict) and data.get("code") == INVALID_TOKEN_CODE
