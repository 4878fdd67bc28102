"""zoom-s2s: one shared Zoom Server-to-Server OAuth token for a whole fleet.

What an application uses is importable from here. Elsewhere:
``zoom_s2s.stores`` holds what a store author needs (``BaseTokenStore``,
``LockLease``, ``FailureRecord``, ``register_store``); ``zoom_s2s.oauth`` the
raw ``request_token`` (no single-flight: prefer :class:`TokenManager`);
``zoom_s2s.testing`` the fake Zoom server, the fleet harness and the store
contract suite; ``zoom_s2s.sync`` the blocking facade.
"""

import logging as _logging

from ._version import __version__
from .client import (
    DEFAULT_API_URL,
    ZOOMGOV_API_URL,
    User,
    ZoomAuthMiddleware,
    ZoomClient,
    discover_account_id,
)
from .errors import (
    APIConnectionError,
    ConfigurationError,
    DailyLimitExceededError,
    InvalidCredentialsError,
    LockTimeoutError,
    MalformedTokenResponseError,
    MissingScopesError,
    NotFoundError,
    PermissionDeniedError,
    PlanRequiredError,
    RateLimitedError,
    ServerError,
    StoreError,
    StoreUnavailableError,
    TokenEndpointError,
    TokenError,
    TokenRateLimitedError,
    UnauthorizedError,
    UsageError,
    WebhookError,
    WebhookSignatureError,
    ZoomAPIError,
    ZoomS2SError,
)
from .events import EventKind, TokenEvent, TokenHook, log_event
from .manager import TokenManager, TokenStats
from .models import AccessToken, Credentials
from .oauth import DEFAULT_TOKEN_URL, ZOOMGOV_TOKEN_URL, RetryPolicy
from .pool import TokenManagerPool
from .ratelimit import RateLimits
from .stores import (
    EncryptedTokenStore,
    FileTokenStore,
    MemoryTokenStore,
    RedisTokenStore,
    TokenStore,
    store_from_url,
)

# An application without logging configuration hears nothing (no stderr fallback).
_logging.getLogger("zoom_s2s").addHandler(_logging.NullHandler())

__all__ = [
    "DEFAULT_API_URL",
    "DEFAULT_TOKEN_URL",
    "ZOOMGOV_API_URL",
    "ZOOMGOV_TOKEN_URL",
    "APIConnectionError",
    "AccessToken",
    "ConfigurationError",
    "Credentials",
    "DailyLimitExceededError",
    "EncryptedTokenStore",
    "EventKind",
    "FileTokenStore",
    "InvalidCredentialsError",
    "LockTimeoutError",
    "MalformedTokenResponseError",
    "MemoryTokenStore",
    "MissingScopesError",
    "NotFoundError",
    "PermissionDeniedError",
    "PlanRequiredError",
    "RateLimitedError",
    "RateLimits",
    "RedisTokenStore",
    "RetryPolicy",
    "ServerError",
    "StoreError",
    "StoreUnavailableError",
    "TokenEndpointError",
    "TokenError",
    "TokenEvent",
    "TokenHook",
    "TokenManager",
    "TokenManagerPool",
    "TokenRateLimitedError",
    "TokenStats",
    "TokenStore",
    "UnauthorizedError",
    "UsageError",
    "User",
    "WebhookError",
    "WebhookSignatureError",
    "ZoomAPIError",
    "ZoomAuthMiddleware",
    "ZoomClient",
    "ZoomS2SError",
    "__version__",
    "discover_account_id",
    "log_event",
    "store_from_url",
]
