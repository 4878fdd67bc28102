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
    │   ├── PermissionDeniedError     403, or code 200: the app's user or plan may not do this
    │   │   ├── MissingScopesError    codes 4700/4711: the token lacks a scope (named if Zoom says)
    │   │   └── PlanRequiredError     code 200 "Only available for Paid or ZMP account"
    │   ├── NotFoundError             404 (code 1001: no such user)
    │   ├── ForeignRedirectError      a redirect to another origin, refused (the token stays home)
    │   ├── RateLimitedError          429 per-second limit, after bounded retries
    │   │   └── DailyLimitExceededError  429 daily limit: raised at once with the reset time
    │   └── ServerError               5xx, after bounded retries (idempotent methods only)
    ├── StoreError                    a token store could not be read or written
    │   └── StoreUnavailableError     the store's backend (Redis, the directory) is unreachable
    ├── LockTimeoutError              waited too long for another process's token fetch
    ├── WebhookError                  a webhook request is not a Zoom event notification
    │   └── WebhookSignatureError     its x-zm-signature or timestamp did not verify
    └── UsageError (RuntimeError)     an object used after aclose() or from another event loop

Messages say what went wrong and what to do about it. They never contain the
client secret or an access token, in any encoding (raw, URL-encoded,
``client_id:secret``, Base64, ``Basic ...``), even when an endpoint echoes
them back: where a token must be named, its fingerprint (a short hash) is
used instead.

Errors that come with a wait (:class:`TokenEndpointError`,
:class:`RateLimitedError`) expose it the same way: ``retry_after`` in seconds
and ``retry_at`` as an aware UTC :class:`datetime.datetime`.
"""

from __future__ import annotations

import datetime as dt
import time
from typing import Literal

import attrs

__all__ = [
    "APIConnectionError",
    "ConfigurationError",
    "DailyLimitExceededError",
    "ForeignRedirectError",
    "InvalidCredentialsError",
    "LockTimeoutError",
    "MalformedTokenResponseError",
    "MissingScopesError",
    "NotFoundError",
    "PermissionDeniedError",
    "PlanRequiredError",
    "RateLimitedError",
    "ServerError",
    "StoreError",
    "StoreUnavailableError",
    "TokenEndpointError",
    "TokenError",
    "TokenRateLimitedError",
    "UnauthorizedError",
    "UsageError",
    "WebhookError",
    "WebhookSignatureError",
    "ZoomAPIError",
    "ZoomS2SError",
]


def _wait(
    retry_after: float | None, retry_at: dt.datetime | None
) -> tuple[float | None, dt.datetime | None]:
    """(seconds, aware UTC moment) from whichever of the two is known."""
    now = time.time()
    if retry_at is not None:
        if retry_at.tzinfo is None:
            retry_at = retry_at.replace(tzinfo=dt.timezone.utc)
        retry_at = retry_at.astimezone(dt.timezone.utc)
        if retry_after is None:
            retry_after = max(0.0, retry_at.timestamp() - now)
    elif retry_after is not None:
        retry_at = dt.datetime.fromtimestamp(now + retry_after, tz=dt.timezone.utc)
    return retry_after, retry_at


class ZoomS2SError(Exception):
    """Base class of every error raised by zoom-s2s.

    Catch it to handle anything the library raises; the message says what
    went wrong and what to do.
    """


class ConfigurationError(ZoomS2SError, ValueError):
    """An argument, URL, environment variable or installed extra is wrong or missing.

    Retrying cannot help: fix the configuration the message names (or install
    the extra it names) and start again.
    """


class TokenError(ZoomS2SError):
    """Getting an access token from Zoom's token endpoint failed.

    Catch it to handle every token failure; its subclasses say whether to fix
    the credentials (:class:`InvalidCredentialsError`), retry later
    (:class:`TokenEndpointError`) or check the token URL and proxies
    (:class:`MalformedTokenResponseError`). The fields are scrubbed of the
    client secret like the message.

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

    Also raised when the endpoint answered so slowly that the token had
    expired on arrival. Zoom or the network is failing: retry later (after
    ``retry_after`` if set); a :class:`~zoom_s2s.TokenManager` backs off by
    itself.

    Attributes:
        retry_after: Seconds the endpoint asked to wait (``Retry-After``), if it did.
        retry_at: The same moment as an aware UTC datetime, if the endpoint asked.
    """

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        error: str | None = None,
        reason: str | None = None,
        retry_after: float | None = None,
        retry_at: dt.datetime | None = None,
    ) -> None:
        super().__init__(message, status=status, error=error, reason=reason)
        self.retry_after, self.retry_at = _wait(retry_after, retry_at)


class TokenRateLimitedError(TokenEndpointError):
    """The token endpoint answered HTTP 429 on every attempt.

    Too many token requests for this app: share one token across processes
    (one store for the fleet) and retry after ``retry_after`` seconds.
    """


class MalformedTokenResponseError(TokenError):
    """The token endpoint answered, but not with a usable token.

    HTML instead of JSON, JSON nested too deeply, a body over the size limit,
    a missing or malformed ``access_token``, an ``expires_in`` that is not a
    number of seconds up to a day, a ``token_type`` other than bearer. Not
    retried: check that the token URL is Zoom's token endpoint and that no
    proxy rewrites the answer.
    """


class APIConnectionError(ZoomS2SError):
    """The REST API could not be reached: connection refused or reset, DNS, timeout.

    Idempotent requests were retried first; POST and PATCH never are. Check
    the network and the API base URL, then retry.
    """


class ZoomAPIError(ZoomS2SError):
    """Zoom's REST API answered with an error.

    The message carries Zoom's code and message and what to do; quote
    ``tracking_id`` when asking Zoom support.

    Attributes:
        status: HTTP status.
        code: Zoom's numeric error ``code`` from the body, if any.
        message: Zoom's ``message`` from the body, if any.
        tracking_id: The ``x-zm-trackingid`` header; Zoom support asks for it.
        method: HTTP method of the request.
        path: Path of the request, without the query string.
        errors: Field errors of a validation failure (code 300), if any.
        rate_limit: The answer's ``X-RateLimit-*`` headers
            (:class:`~zoom_s2s.ratelimit.RateLimitInfo`), if it sent any.
    """

    rate_limit: RateLimitInfo | None = None

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
    """HTTP 401 even after invalidating the token and retrying once with a fresh one.

    Check that the Server-to-Server OAuth app is activated and that the base
    URL is Zoom's API.
    """


class PermissionDeniedError(ZoomAPIError):
    """Zoom refused the call for lack of permission: HTTP 403, or Zoom code 200.

    403 means the user the call acts for (with an S2S token, the app's
    creator or the user named in the path) lacks the role permission, or a
    shared-access permission is not authorised; code 200 ("No permission.")
    likewise. Check the roles in the Zoom web portal (User Management, Roles).
    Retrying cannot help.
    """


class MissingScopesError(PermissionDeniedError):
    """Zoom codes 4700 or 4711: the access token lacks a scope this call needs.

    Add a scope to the app in the Zoom App Marketplace (the app's Scopes
    page). Scopes granted there reach only tokens issued afterwards, so the
    client fetches one fresh token (fleet-wide compare-and-delete, as after a
    401) before raising this.

    Attributes:
        required_scopes: The scopes Zoom named (any one of them is accepted;
            Zoom lists the granular and the classic names). Empty when Zoom
            did not name them (code 4700).
        granted_scopes: The scopes of the token that was refused, if known.
    """

    def __init__(
        self,
        *,
        required_scopes: tuple[str, ...] = (),
        granted_scopes: frozenset[str] | None = None,
        **kwargs: object,
    ) -> None:
        self.required_scopes = required_scopes
        self.granted_scopes = granted_scopes
        super().__init__(**kwargs)  # type: ignore[arg-type]


class PlanRequiredError(PermissionDeniedError):
    """Zoom code 200 "Only available for Paid or ZMP account": the account's plan lacks this API.

    Upgrade the account (or the add-on the API needs); retrying cannot help.
    """


class NotFoundError(ZoomAPIError):
    """HTTP 404, e.g. code 1001 "User does not exist": check the id or path you asked for."""


class ForeignRedirectError(ZoomAPIError):
    """The API redirected to another origin and ``on_foreign_redirect="refuse"`` is set.

    The access token goes only to the configured API origin (and a trusted
    ``api_url``); the redirect was not followed. Check the base URL, or use
    ``on_foreign_redirect="strip"`` to follow such redirects without the token.

    Attributes:
        location: The origin the redirect named (``scheme://host[:port]``; never
            its path or query).
    """

    def __init__(self, *, location: str, **kwargs: object) -> None:
        self.location = location
        super().__init__(**kwargs)  # type: ignore[arg-type]


class RateLimitedError(ZoomAPIError):
    """HTTP 429 that did not clear within the bounded retries.

    Slow down, and retry after ``retry_after`` seconds (at ``retry_at``).

    Attributes:
        limit_type: ``X-RateLimit-Type`` (``QPS`` or ``Daily-limit``), if sent.
        retry_after: Seconds until Zoom says to retry (from ``Retry-After``), if sent.
        retry_at: That moment as an aware UTC datetime, if known.
        sent: ``False`` when the client's rate limiter held the request back
            (``rate_limits=``: no slot within ``max_wait``, or a daily limit the
            fleet already hit): Zoom was not called.
    """

    sent: bool = True

    def __init__(
        self,
        *,
        limit_type: str | None = None,
        retry_after: float | None = None,
        retry_at: dt.datetime | None = None,
        **kwargs: object,
    ) -> None:
        self.limit_type = limit_type
        self.retry_after, self.retry_at = _wait(retry_after, retry_at)
        super().__init__(**kwargs)  # type: ignore[arg-type]


class DailyLimitExceededError(RateLimitedError):
    """HTTP 429 for a daily limit; ``retry_at`` is the reset time (00:00 UTC).

    Zoom says so with ``X-RateLimit-Type: Daily-limit``, or only in its message
    ("... daily rate limit ... resume these requests at GMT 00:00:00"). The
    account's daily quota for this API (or a user's, for per-user limits) is
    spent: retrying before ``retry_at`` cannot help. With ``rate_limits=`` the
    whole fleet learns of it and raises it without calling Zoom (``sent`` is
    ``False``).
    """


class ServerError(ZoomAPIError):
    """HTTP 5xx from the API after the bounded retries: Zoom or a proxy failed; retry later."""


class StoreError(ZoomS2SError):
    """A token store failed to read, write or lock.

    The message says which store and what to check (its permissions, the
    Redis user's rights, the encryption keys).

    Attributes:
        store: A short description of the store (never with a password).
    """

    def __init__(self, message: str, *, store: str) -> None:
        super().__init__(message)
        self.store = store


class StoreUnavailableError(StoreError):
    """The store's backend cannot be reached (Redis down, directory missing or read-only).

    Bring the backend back or fix the store URL; with ``on_store_error="fetch"``
    a :class:`~zoom_s2s.TokenManager` fetches its own token meanwhile.
    """


class LockTimeoutError(ZoomS2SError):
    """Waited longer than the deadline for another process to store a token.

    The process holding the fetch lock is stuck or slow: retry, and check that
    process and the store; raise ``wait_timeout`` if fetches are slow.
    """


class UsageError(ZoomS2SError, RuntimeError):
    """An object was used in a way that cannot work.

    A :class:`~zoom_s2s.TokenManager` (or client) used after ``aclose()``
    (create a new one), or used from an event loop other than the one it is
    bound to while that loop still runs (make one per event loop, or use the
    :mod:`zoom_s2s.sync` facade from threads).
    """


class WebhookError(ZoomS2SError):
    """A request to a webhook endpoint is not a usable Zoom event notification.

    A body that is not a JSON object with an ``event`` name, or a challenge
    without its ``plainToken``. Answer HTTP 400.
    """


class WebhookSignatureError(WebhookError):
    """A webhook request did not verify: missing or wrong ``x-zm-signature``, or a stale timestamp.

    It was not sent by Zoom with this secret token (or it is a replay, or this
    host's clock is off). Answer HTTP 401 and do not act on it. The message
    never contains the secret token or the expected signature.
    """


@attrs.frozen
class RateLimitInfo:
    """What one answer said about the rate limits (``X-RateLimit-*``); fields absent are ``None``.

    Read from the headers by :func:`zoom_s2s.ratelimit.rate_limit_info`; kept
    here because errors carry it (:attr:`ZoomAPIError.rate_limit`).

    Attributes:
        category: The category the answer named (``"light"``, ...), if a known one.
        limit_type: ``"QPS"`` or ``"Daily-limit"`` as sent (at most 32 characters).
        limit: ``X-RateLimit-Limit``, if a number.
        remaining: ``X-RateLimit-Remaining``, if a number.
    """

    category: Literal["light", "medium", "heavy", "resource_intensive"] | None = None
    limit_type: str | None = None
    limit: int | None = None
    remaining: int | None = None

    @property
    def daily(self) -> bool:
        """Whether the answer says its budget is a daily one (``X-RateLimit-Type: Daily-limit``)."""
        return (self.limit_type or "").lower() == "daily-limit"
