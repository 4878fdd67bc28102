"""Every error zoom-s2s raises, in one tree.

Catch :class:`ZoomS2SError` to handle anything the library raises; catch a
branch to handle one kind of failure::

    ZoomS2SError
    ├── ConfigurationError            bad arguments, URLs, environment; missing extras
    ├── TokenError                    getting a token from Zoom failed
    │   ├── InvalidCredentialsError   permanent: Zoom rejected the credentials or grant
    │   ├── TokenEndpointError        transient: 5xx, timeout, connection; raised after retries
    │   │   └── TokenRateLimitedError HTTP 429 from the token endpoint, after retries
    │   └── MalformedTokenResponseError  the answer was not a usable token
    ├── APIConnectionError            the REST API could not be reached (after retries)
    ├── ZoomAPIError                  the REST API answered with an error
    │   ├── UnauthorizedError         401 (still, after one retry with a fresh token)
    │   ├── MissingScopesError        400 with code 4711: the app lacks a scope
    │   ├── NotFoundError             404 (code 1001: no such user)
    │   ├── RateLimitedError          429 per-second limit, after bounded retries
    │   │   └── DailyLimitExceededError  429 daily limit: raised at once with the reset time
    │   └── ServerError               5xx, after bounded retries (idempotent methods only)
    ├── StoreError                    a token store could not be read or written
    │   └── StoreUnavailableError     the store's backend (Redis, the directory) is unreachable
    └── LockTimeoutError              waited too long for another process's token fetch

Messages say what went wrong and what to do about it. They never contain the
client secret or an access token: where a token must be named, its
fingerprint (a short hash) is used instead.
"""

from __future__ import annotations

import datetime as dt

__all__ = [
    "APIConnectionError",
    "ConfigurationError",
    "DailyLimitExceededError",
    "InvalidCredentialsError",
    "LockTimeoutError",
    "MalformedTokenResponseError",
    "MissingScopesError",
    "NotFoundError",
    "RateLimitedError",
    "ServerError",
    "StoreError",
    "StoreUnavailableError",
    "TokenEndpointError",
    "TokenError",
    "TokenRateLimitedError",
    "UnauthorizedError",
    "ZoomAPIError",
    "ZoomS2SError",
]


class ZoomS2SError(Exception):
    """Base class of every error raised by zoom-s2s."""


class ConfigurationError(ZoomS2SError, ValueError):
    """An argument, URL, environment variable or installed extra is wrong or missing."""


class TokenError(ZoomS2SError):
    """Getting an access token from Zoom's token endpoint failed.

    Attributes:
        status: The HTTP status of the last answer, or ``None`` if none came.
        error: Zoom's ``error`` field (``invalid_client``, ...), if any.
        reason: Zoom's ``reason`` field, if any.
    """

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        error: str | None = None,
        reason: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.error = error
        self.reason = reason


class InvalidCredentialsError(TokenError):
    """Zoom rejected the request for good (``invalid_client``, ``invalid_request``, other 4xx).

    Retrying cannot help: fix the account id, client id, client secret or the
    app's activation in the Zoom App Marketplace.
    """


class TokenEndpointError(TokenError):
    """The token endpoint failed transiently (5xx, timeout, connection error), retries exhausted.

    Attributes:
        retry_after: Seconds the endpoint asked to wait (``Retry-After``), if it did.
    """

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        error: str | None = None,
        reason: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message, status=status, error=error, reason=reason)
        self.retry_after = retry_after


class TokenRateLimitedError(TokenEndpointError):
    """The token endpoint answered HTTP 429 on every attempt."""


class MalformedTokenResponseError(TokenError):
    """The token endpoint answered, but not with a usable token (HTML, bad JSON, bad fields)."""


class APIConnectionError(ZoomS2SError):
    """The REST API could not be reached: connection refused or reset, DNS, timeout.

    Idempotent requests were retried first; POST and PATCH never are.
    """


class ZoomAPIError(ZoomS2SError):
    """Zoom's REST API answered with an error.

    Attributes:
        status: HTTP status.
        code: Zoom's numeric error ``code`` from the body, if any.
        message: Zoom's ``message`` from the body, if any.
        tracking_id: The ``x-zm-trackingid`` header; Zoom support asks for it.
        method: HTTP method of the request.
        path: Path of the request, without the query string.
        errors: Field errors of a validation failure (code 300), if any.
    """

    def __init__(
        self,
        *,
        status: int,
        code: int | None,
        message: str | None,
        tracking_id: str | None,
        method: str,
        path: str,
        errors: list[dict[str, object]] | None = None,
        hint: str | None = None,
    ) -> None:
        self.status = status
        self.code = code
        self.message = message
        self.tracking_id = tracking_id
        self.method = method
        self.path = path
        self.errors = errors or []
        text = f"{method} {path} failed with HTTP {status}"
        if code is not None:
            text += f", Zoom code {code}"
        if message:
            text += f": {message}"
        if tracking_id:
            text += f" (x-zm-trackingid {tracking_id})"
        if hint:
            text += f". {hint}"
        super().__init__(text)


class UnauthorizedError(ZoomAPIError):
    """HTTP 401 even after invalidating the token and retrying once with a fresh one."""


class MissingScopesError(ZoomAPIError):
    """HTTP 400 with code 4711: the token lacks a scope; add it to the app in the Marketplace."""


class NotFoundError(ZoomAPIError):
    """HTTP 404, e.g. code 1001 "User does not exist"."""


class RateLimitedError(ZoomAPIError):
    """HTTP 429 that did not clear within the bounded retries.

    Attributes:
        limit_type: ``X-RateLimit-Type`` (``QPS`` or ``Daily-limit``), if sent.
        retry_after: When Zoom says to retry (from ``Retry-After``), if sent.
    """

    def __init__(
        self,
        *,
        limit_type: str | None = None,
        retry_after: dt.datetime | None = None,
        **kwargs: object,
    ) -> None:
        self.limit_type = limit_type
        self.retry_after = retry_after
        super().__init__(**kwargs)  # type: ignore[arg-type]


class DailyLimitExceededError(RateLimitedError):
    """HTTP 429 with ``X-RateLimit-Type: Daily-limit``; ``retry_after`` is the reset time."""


class ServerError(ZoomAPIError):
    """HTTP 5xx from the API after the bounded retries."""


class StoreError(ZoomS2SError):
    """A token store failed to read, write or lock.

    Attributes:
        store: A short description of the store (never with a password).
    """

    def __init__(self, message: str, *, store: str) -> None:
        super().__init__(message)
        self.store = store


class StoreUnavailableError(StoreError):
    """The store's backend cannot be reached (Redis down, directory missing or read-only)."""


class LockTimeoutError(ZoomS2SError):
    """Waited longer than the deadline for another process to store a token."""
