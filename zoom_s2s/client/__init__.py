"""The Zoom REST API client: :class:`ZoomClient` on the shared token, :class:`User`,
:func:`discover_account_id`, and the API's base URLs. See ``docs/client.rst``."""

from .client import ZoomClient
from .discovery import discover_account_id
from .urls import DEFAULT_API_URL, ZOOMGOV_API_URL
from .user import User

__all__ = [
    "DEFAULT_API_URL",
    "ZOOMGOV_API_URL",
    "User",
    "ZoomClient",
    "discover_account_id",
]
