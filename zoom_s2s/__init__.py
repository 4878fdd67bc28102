"""zoom-s2s: one shared Zoom Server-to-Server OAuth token for a whole fleet.

What most applications use is importable from here. Errors are in
:mod:`zoom_s2s.errors`, token events in :mod:`zoom_s2s.events`, the blocking
facade in :mod:`zoom_s2s.sync`, framework integrations in :mod:`zoom_s2s.aiohttp`,
:mod:`zoom_s2s.httpx`, :mod:`zoom_s2s.requests`, :mod:`zoom_s2s.otel` and
:mod:`zoom_s2s.webhooks`, test helpers in :mod:`zoom_s2s.testing`. See
``docs/architecture.rst`` for how the parts fit.
"""

from ._version import __version__
from .client import User, ZoomClient, discover_account_id
from .errors import ZoomS2SError
from .events import TokenEvent
from .manager import TokenManager
from .models import AccessToken, Credentials
from .oauth import RetryPolicy
from .pool import TokenManagerPool
from .ratelimit import RateLimits
from .stores import (
    EncryptedTokenStore,
    FileTokenStore,
    MemoryTokenStore,
    PostgresTokenStore,
    RedisTokenStore,
    TokenStore,
    store_from_url,
)

__all__ = [
    "AccessToken",
    "Credentials",
    "EncryptedTokenStore",
    "FileTokenStore",
    "MemoryTokenStore",
    "PostgresTokenStore",
    "RateLimits",
    "RedisTokenStore",
    "RetryPolicy",
    "TokenEvent",
    "TokenManager",
    "TokenManagerPool",
    "TokenStore",
    "User",
    "ZoomClient",
    "ZoomS2SError",
    "__version__",
    "discover_account_id",
    "store_from_url",
]
