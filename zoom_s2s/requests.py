"""``zoom_s2s.requests.ZoomAuth``: the shared token for code built on requests.

::

    tokens = SyncTokenManager(Credentials.from_env(), store="redis://localhost:6379/0")
    session = requests.Session()
    session.auth = ZoomAuth(tokens)
    me = session.get("https://api.zoom.us/v2/users/me").json()

A face of the request pipeline (:mod:`zoom_s2s.client.pipeline`), like
:class:`~zoom_s2s.aiohttp.ZoomAuthMiddleware`. Needs ``pip install zoom-s2s[requests]``;
imports here are absolute, so this module's name does not hide ``requests``.
"""

from __future__ import annotations

import functools
from typing import Any

import requests
import requests.auth
import requests.cookies
import requests.exceptions
import requests.utils

from .client.pipeline import Answer, Flow, Pipeline, SyncTokens, blocking_pacer, wants_body
from .client.urls import Destinations
from .errors import UsageError
from .manager import TokenManager
from .models import AccessToken
from .ratelimit.limits import RateLimits

__all__ = ["ZoomAuth"]


class ZoomAuth(requests.auth.AuthBase):
    """A :class:`requests.auth.AuthBase` that signs Zoom API requests with the shared token.

    Only requests to the API's origin are signed (a request anywhere else goes
    out untouched). A response hook sees a refused token (401 code 124, or a
    scope error) and sends the request once more with a fresh token when its
    body can be sent again (bytes, str, a seekable file); that one retry is
    sent directly, as requests' digest auth does (a redirect answering it is
    not followed).

    Args:
        tokens: A blocking manager: :class:`~zoom_s2s.sync.SyncTokenManager`,
            or a :class:`~zoom_s2s.sync.SyncTokenManagerPool`'s manager.
        api_url, use_token_api_url, allow_insecure_http: Where the token may
            go, as for :class:`~zoom_s2s.aiohttp.ZoomAuthMiddleware`.
        rate_limits: Pace the requests it signs through the fleet's shared
            budget (:class:`~zoom_s2s.RateLimits`), as ``ZoomClient`` does;
            Zoom's 429s and daily blocks are honoured with or without it. A
            request held back raises :class:`~zoom_s2s.errors.RateLimitedError`
            or :class:`~zoom_s2s.errors.DailyLimitExceededError` from the
            session's call, unsent. Pacing needs a manager of
            :mod:`zoom_s2s.sync` (see :class:`~zoom_s2s.sync.BlockingPacer`).

    Raises:
        ConfigurationError: A bad ``api_url``; ``rate_limits`` with a token
            source that is not a manager of :mod:`zoom_s2s.sync`.
        UsageError: ``tokens`` is an async :class:`~zoom_s2s.TokenManager`.
    """

    def __init__(
        self,
        tokens: SyncTokens,
        *,
        api_url: str | None = None,
        use_token_api_url: bool = False,
        allow_insecure_http: bool = False,
        rate_limits: RateLimits | None = None,
    ) -> None:
        if isinstance(tokens, TokenManager):  # type: ignore[unreachable]
            raise UsageError(
                "zoom_s2s.requests.ZoomAuth needs a blocking manager: requests is synchronous. "
                "Use zoom_s2s.sync.SyncTokenManager (or SyncTokenManagerPool.manager(...))"
            )
        self.tokens = tokens
        destinations = Destinations.for_api_url(
            api_url, use_token_api_url=use_token_api_url, allow_insecure_http=allow_insecure_http
        )
        self.pacer = blocking_pacer(tokens, rate_limits, "zoom_s2s.requests.ZoomAuth")
        self._pipeline = Pipeline(tokens, destinations, self.pacer)

    def __repr__(self) -> str:
        base = self._pipeline.destinations.base_url
        return f"zoom_s2s.requests.ZoomAuth(tokens={self.tokens!r}, api_url={base!r})"

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        """Sign ``request`` if its origin may have the token, and watch for its answer."""
        flow = self._pipeline.flow(
            request.method or "GET", request.url or "", rewind=functools.partial(_rewind, request)
        )
        token = flow.send(None)
        if token is not None:
            request.headers["Authorization"] = "Bearer " + token.access_token
            request.register_hook("response", functools.partial(self._after, flow))
        return request

    def _after(self, flow: Flow, response: requests.Response, **kwargs: Any) -> Any:
        """The response hook: hand the answer to the flow, and send the retry it asks for.

        Raises:
            UnauthorizedError: The token was refused and the body (a stream)
                cannot be sent again; the token is replaced: send again.
            MissingScopesError: The same, for a scope error.
        """
        if response.is_redirect:
            return response  # the hook sees the hop it leads to as well
        while True:
            try:
                token = flow.send(_answer(response))
            except BaseException:
                response.close()
                raise
            if token is None:
                return response
            response = _resend(response, token, kwargs)


def _answer(response: requests.Response) -> Answer:
    status, headers, sent = response.status_code, response.headers, response.request
    body = response.content if wants_body(status, headers.get("content-length")) else None
    authorization = sent.headers.get("Authorization")
    return Answer(status, headers, body, sent.url or "", authorization)


def _resend(
    response: requests.Response, token: AccessToken, kwargs: dict[str, Any]
) -> requests.Response:
    """Send ``response``'s request again, with ``token``, through the same connection adapter."""
    sent = response.request
    response.close()  # its content is read: the connection goes back to the pool
    retry = sent.copy()
    retry.hooks = requests.hooks.default_hooks()  # the retry is not watched: one retry at most
    jar = retry._cookies
    if jar is not None:
        requests.cookies.extract_cookies_to_jar(jar, sent, response.raw)
        retry.prepare_cookies(jar)
    retry.headers["Authorization"] = "Bearer " + token.access_token
    answer: requests.Response = response.connection.send(retry, **kwargs)
    answer.history.append(response)
    answer.request = retry
    return answer


def _rewind(request: requests.PreparedRequest) -> bool:
    """Make the body ready to be sent again; whether it could be (a generator cannot)."""
    if request.body is None or isinstance(request.body, (bytes, str)):
        return True
    if not isinstance(getattr(request, "_body_position", None), int):
        return False
    try:
        requests.utils.rewind_body(request)
    except requests.exceptions.UnrewindableBodyError:
        return False
    return True
