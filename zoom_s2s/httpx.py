"""``zoom_s2s.httpx.ZoomAuth``: the shared token for code built on httpx (sync and async).

::

    import httpx
    from zoom_s2s.httpx import ZoomAuth
    from zoom_s2s.sync import SyncTokenManager

    tokens = SyncTokenManager(Credentials.from_env(), store="redis://localhost:6379/0")
    with httpx.Client(auth=ZoomAuth(tokens), base_url="https://api.zoom.us/v2") as http:
        me = http.get("/users/me").json()

With ``httpx.AsyncClient`` give it a :class:`~zoom_s2s.TokenManager` (or a
blocking manager, whose calls then run in a worker thread). The auth flow:

* adds ``Authorization: Bearer <token>`` only to requests for the API's
  origin (``api_url``; with ``use_token_api_url`` also the token's trusted
  ``api_url`` origin); a request anywhere else goes out untouched;
* on a redirect to another origin httpx drops the ``Authorization`` header
  itself (it keeps it only on a same-host upgrade from http to https); the
  tests check this against a second server;
* on 401 with Zoom's code 124 from the API's origin it invalidates that token
  (compare-and-delete, so a burst of 401s across a fleet refetches once) and
  sends the request once more with a fresh token. A second 401 is returned.

Needs ``pip install zoom-s2s[httpx]``. This module's name does not hide the
``httpx`` package: imports here are absolute.
"""

from __future__ import annotations

import inspect
from collections.abc import AsyncGenerator, Generator
from typing import Any

import anyio.to_thread
import httpx

from ._bearer import SyncTokens, TokenRule, is_invalid_token, small_body
from .errors import UsageError
from .manager import TokenManager
from .models import AccessToken

__all__ = ["ZoomAuth"]


class ZoomAuth(httpx.Auth):
    """An :class:`httpx.Auth` that signs Zoom API requests with the shared token.

    Args:
        tokens: A :class:`~zoom_s2s.TokenManager` (for ``httpx.AsyncClient``)
            or a blocking manager such as :class:`~zoom_s2s.sync.SyncTokenManager`
            or :meth:`SyncTokenManagerPool.manager(...)
            <zoom_s2s.sync_pool.SyncTokenManagerPool.manager>` (for
            ``httpx.Client``, and for ``httpx.AsyncClient`` through a thread).
        api_url: The API the token is for; default ``$ZOOM_API_URL`` or
            ``https://api.zoom.us/v2``. Only its origin gets the token.
        use_token_api_url: Also send the token to the origin of the token's
            ``api_url`` when that is a Zoom host or ``api_url``'s host.
        allow_insecure_http: Accept an ``http://`` ``api_url`` on a host that
            is not loopback.

    Raises:
        ConfigurationError: A bad ``api_url``.
    """

    def __init__(
        self,
        tokens: TokenManager | SyncTokens,
        *,
        api_url: str | None = None,
        use_token_api_url: bool = False,
        allow_insecure_http: bool = False,
    ) -> None:
        self.tokens = tokens
        self._rule = TokenRule(
            api_url, use_token_api_url=use_token_api_url, allow_insecure_http=allow_insecure_http
        )
        self._async = isinstance(tokens, TokenManager) or inspect.iscoroutinefunction(
            getattr(tokens, "get_token", None)
        )

    def __repr__(self) -> str:
        return f"zoom_s2s.httpx.ZoomAuth(tokens={self.tokens!r}, api_url={self._rule.base_url!r})"

    def sync_auth_flow(
        self, request: httpx.Request
    ) -> Generator[httpx.Request, httpx.Response, None]:
        """The flow for ``httpx.Client``: sign, send, and on 401 code 124 retry once."""
        if self._async:
            raise UsageError(
                "zoom_s2s.httpx.ZoomAuth was given an async TokenManager but used by a "
                "blocking httpx.Client; give it a zoom_s2s.sync.SyncTokenManager, or use "
                "httpx.AsyncClient"
            )
        tokens: Any = self.tokens
        token: AccessToken = tokens.get_token()
        if not self._sign(request, token):
            yield request
            return
        response = yield request
        if self._must_retry(response, token, response.read if self._readable(response) else None):
            tokens.invalidate(token)
            self._sign(request, tokens.get_token())
            yield request

    async def async_auth_flow(
        self, request: httpx.Request
    ) -> AsyncGenerator[httpx.Request, httpx.Response]:
        """The flow for ``httpx.AsyncClient``: sign, send, and on 401 code 124 retry once."""
        token = await self._get_token()
        if not self._sign(request, token):
            yield request
            return
        response = yield request
        body = await response.aread() if self._readable(response) else None
        if self._must_retry(response, token, (lambda: body) if body is not None else None):
            await self._invalidate(token)
            self._sign(request, await self._get_token())
            yield request

    # -- internals --------------------------------------------------------------------

    def _sign(self, request: httpx.Request, token: AccessToken) -> bool:
        """Add the token if the request's origin may have it; whether it did."""
        if not self._rule.allows(str(request.url), token):
            request.headers.pop("Authorization", None)
            return False
        request.headers["Authorization"] = "Bearer " + token.access_token
        return True

    def _readable(self, response: httpx.Response) -> bool:
        return response.status_code == 401 and small_body(response.headers.get("content-length"))

    def _must_retry(self, response: httpx.Response, token: AccessToken, read: Any) -> bool:
        """Whether ``response`` says that ``token``, as sent to the API, is invalid."""
        if response.status_code != 401 or read is None:
            return False
        # After redirects this is the last hop: only the API's own 401 counts.
        sent = response.request
        if sent.headers.get("Authorization") != "Bearer " + token.access_token:
            return False
        if not self._rule.allows(str(sent.url), token):
            return False
        return is_invalid_token(401, response.headers.get("content-length"), read())

    async def _get_token(self) -> AccessToken:
        tokens: Any = self.tokens
        if self._async:
            token: AccessToken = await tokens.get_token()
            return token
        return await anyio.to_thread.run_sync(tokens.get_token)

    async def _invalidate(self, token: AccessToken) -> None:
        tokens: Any = self.tokens
        if self._async:
            await tokens.invalidate(token)
        else:
            await anyio.to_thread.run_sync(tokens.invalidate, token)
