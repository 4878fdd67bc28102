"""What the ``requests`` and ``httpx`` adapters share: where the token goes, and code 124.

Both adapters follow the rule of :class:`~zoom_s2s.ZoomAuthMiddleware`: the
bearer token is added only to requests for the configured API origin (and,
with ``use_token_api_url``, a trusted ``api_url`` origin: see
:class:`~zoom_s2s.client.urls.Destinations`), and a 401 is taken as "this
token is invalid" only when it comes from such an origin, says Zoom's code
124, and declares a small body.
"""

from __future__ import annotations

from typing import Protocol

import yarl

from ._http import parse_json
from .client.responses import INVALID_TOKEN_CODE
from .client.urls import Destinations
from .models import AccessToken

__all__ = ["MAX_401_BODY", "SyncTokens", "TokenRule", "is_invalid_token"]

MAX_401_BODY = 64 * 1024
"""A 401 body is read to look for code 124 only when it declares at most this length."""


class SyncTokens(Protocol):
    """A blocking token source: :class:`~zoom_s2s.sync.SyncTokenManager` or a pool's manager."""

    def get_token(self) -> AccessToken:
        """A valid access token."""
        ...  # pragma: no cover

    def invalidate(self, token: AccessToken) -> bool:
        """Forget ``token`` here and in the store (compare-and-delete)."""
        ...  # pragma: no cover


class TokenRule:
    """Which URLs may carry the token.

    Args:
        api_url: The API the token is for; default ``$ZOOM_API_URL`` or
            ``https://api.zoom.us/v2``. Only its origin gets the token.
        use_token_api_url: Also the origin of the token's trusted ``api_url``.
        allow_insecure_http: Accept an ``http://`` ``api_url`` off loopback.

    Raises:
        ConfigurationError: A bad ``api_url``.
    """

    __slots__ = ("destinations",)

    def __init__(
        self, api_url: str | None, *, use_token_api_url: bool, allow_insecure_http: bool
    ) -> None:
        self.destinations = Destinations.for_api_url(
            api_url, use_token_api_url=use_token_api_url, allow_insecure_http=allow_insecure_http
        )

    @property
    def base_url(self) -> str:
        """The configured API base."""
        return self.destinations.base_url

    def allows(self, url: str, token: AccessToken | None = None) -> bool:
        """Whether a request to ``url`` (absolute, as sent) may carry the token."""
        try:
            parsed = yarl.URL(url, encoded=True)
        except (TypeError, ValueError):
            return False
        if not parsed.absolute:
            return False
        return self.destinations.allows(parsed, None if token is None else token.api_url)


def is_invalid_token(status: int, declared_length: str | None, body: bytes | None) -> bool:
    """Whether an answer says the token itself is bad: 401, code 124, a small JSON body.

    Args:
        status: The HTTP status.
        declared_length: The ``Content-Length`` header, if any.
        body: The body, or ``None`` if it was not read (too large or undeclared).
    """
    if status != 401 or body is None:
        return False
    if not small_body(declared_length):
        return False
    try:
        data = parse_json(body)
    except ValueError:
        return False
    return isinstance(data, dict) and data.get("code") == INVALID_TOKEN_CODE


def small_body(declared_length: str | None) -> bool:
    """Whether a ``Content-Length`` header declares a body worth reading for code 124."""
    if declared_length is None:
        return False
    try:
        length = int(declared_length)
    except ValueError:
        return False
    return 0 <= length <= MAX_401_BODY
