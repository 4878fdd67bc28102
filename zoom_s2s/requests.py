"""``zoom_s2s.requests.ZoomAuth``: the shared token for code built on requests.

::

    import requests
    from zoom_s2s.requests import ZoomAuth
    from zoom_s2s.sync import SyncTokenManager

    tokens = SyncTokenManager(Credentials.from_env(), store="redis://localhost:6379/0")
    session = requests.Session()
    session.auth = ZoomAuth(tokens)
    me = session.get("https://api.zoom.us/v2/users/me").json()

It takes a blocking manager (:class:`~zoom_s2s.sync.SyncTokenManager`, or
:meth:`SyncTokenManagerPool.manager(...)
<zoom_s2s.sync_pool.SyncTokenManagerPool.manager>` for one of many accounts):

* it adds ``Authorization: Bearer <token>`` only to requests for the API's
  origin (``api_url``; with ``use_token_api_url`` also the token's trusted
  ``api_url`` origin); a request anywhere else goes out untouched;
* on a redirect to another host or port requests drops the
  ``Authorization`` header itself and does not call the auth again; the
  tests check this against a second server;
* a response hook sees a 401 with Zoom's code 124 from the API's origin,
  invalidates that token (compare-and-delete, so a burst of 401s across a
  fleet refetches once), and sends the request once more with a fresh token.
  A second 401 is returned. (As with requests' digest auth, that one retry
  is sent by the adapter directly: a redirect answering it is not followed.)

Needs ``pip install zoom-s2s[requests]``. This module's name does not hide
the ``requests`` package: imports here are absolute.
"""

from __future__ import annotations

import functools
from typing import Any

import requests
import requests.auth
import requests.cookies
import requests.utils

from ._bearer import SyncTokens, TokenRule, is_invalid_token, small_body
from .errors import UsageError
from .manager import TokenManager
from .models import AccessToken

__all__ = ["ZoomAuth"]


class ZoomAuth(requests.auth.AuthBase):
    """A :class:`requests.auth.AuthBase` that signs Zoom API requests with the shared token.

    Args:
        tokens: A blocking manager: :class:`~zoom_s2s.sync.SyncTokenManager`,
            or a :class:`~zoom_s2s.sync_pool.SyncTokenManagerPool`'s manager.
        api_url: The API the token is for; default ``$ZOOM_API_URL`` or
            ``https://api.zoom.us/v2``. Only its origin gets the token.
        use_token_api_url: Also send the token to the origin of the token's
            ``api_url`` when that is a Zoom host or ``api_url``'s host.
        allow_insecure_http: Accept an ``http://`` ``api_url`` on a host that
            is not loopback.

    Raises:
        ConfigurationError: A bad ``api_url``.
        UsageError: ``tokens`` is an async :class:`~zoom_s2s.TokenManager`.
    """

    def __init__(
        self,
        tokens: SyncTokens,
        *,
        api_url: str | None = None,
        use_token_api_url: bool = False,
        allow_insecure_http: bool = False,
    ) -> None:
        if isinstance(tokens, TokenManager):  # type: ignore[unreachable]
            raise UsageError(
                "zoom_s2s.requests.ZoomAuth needs a blocking manager: requests is synchronous. "
                "Use zoom_s2s.sync.SyncTokenManager (or SyncTokenManagerPool.manager(...))"
            )
        self.tokens = tokens
        self._rule = TokenRule(
            api_url, use_token_api_url=use_token_api_url, allow_insecure_http=allow_insecure_http
        )

    def __repr__(self) -> str:
        return (
            f"zoom_s2s.requests.ZoomAuth(tokens={self.tokens!r}, "
            f"api_url={self._rule.base_url!r})"
        )

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        """Sign ``request`` if its origin may have the token, and watch for its 401."""
        url = request.url or ""
        if not self._rule.allows(url):
            request.headers.pop("Authorization", None)
            return request
        token = self.tokens.get_token()
        if not self._rule.allows(url, token):  # pragma: no cover - allows() only widens
            return request
        request.headers["Authorization"] = "Bearer " + token.access_token
        request.register_hook("response", functools.partial(self._after, token))
        return request

    def _after(self, token: AccessToken, response: requests.Response, **kwargs: Any) -> Any:
        """The response hook: on 401 code 124 for ``token``, invalidate it and retry once."""
        if response.status_code != 401:
            return response
        sent = response.request
        if sent.headers.get("Authorization") != "Bearer " + token.access_token:
            return response  # a redirect hop without the token, or not ours
        if not self._rule.allows(sent.url or "", token):
            return response
        declared = response.headers.get("content-length")
        if not small_body(declared) or not is_invalid_token(401, declared, response.content):
            return response
        self.tokens.invalidate(token)
        fresh = self.tokens.get_token()
        if not self._rule.allows(sent.url or "", fresh):
            return response  # the fresh token may not go there (another regional api_url)
        response.close()  # the content is read: the connection goes back to the pool
        retry = sent.copy()
        # The retry is not watched again: at most one retry per request.
        retry.hooks = requests.hooks.default_hooks()
        for hook in sent.hooks.get("response", []):
            if getattr(hook, "func", None) != self._after:
                retry.register_hook("response", hook)
        jar = retry._cookies
        if jar is not None:
            requests.cookies.extract_cookies_to_jar(jar, sent, response.raw)
            retry.prepare_cookies(jar)
        if getattr(retry, "_body_position", None) is not None:
            requests.utils.rewind_body(retry)
        retry.headers["Authorization"] = "Bearer " + fresh.access_token
        answer: requests.Response = response.connection.send(retry, **kwargs)
        answer.history.append(response)
        answer.request = retry
        return answer
