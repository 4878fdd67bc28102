"""The Zoom REST API client layer: :class:`ZoomClient`, its middleware and :class:`User`.

* :class:`ZoomClient`: ``request()`` and ``get_user()`` on the shared token,
  with Zoom's 401/429/5xx policy.
* :class:`ZoomAuthMiddleware`: the same token handling for your own
  ``aiohttp.ClientSession(middlewares=...)``.
* :func:`discover_account_id`: the account id behind any Zoom access token.
"""

from .client import ZoomClient
from .discovery import discover_account_id
from .middleware import ZoomAuthMiddleware
from .urls import DEFAULT_API_URL, ZOOMGOV_API_URL
from .user import User

__all__ = [
    "DEFAULT_API_URL",
    "ZOOMGOV_API_URL",
    "User",
    "ZoomAuthMiddleware",
    "ZoomClient",
    "discover_account_id",
]
