"""The wire: one Server-to-Server OAuth token request, its parsing, and its retries.

``POST {token_url}`` with ``grant_type=account_credentials&account_id=...`` as a
form body and the client id and secret as HTTP Basic auth (ZOOM.md). Transient
failures (429, 5xx, timeouts, connection errors) are retried with exponential
back-off and jitter by `stamina <https://stamina.hynek.me>`_, bounded in
attempts and total time, honouring ``Retry-After``. Permanent failures
(``invalid_client``, ``invalid_request``, any other 4xx) are raised at once.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import datetime as dt
import email.utils
import json
import math
import time
from collections.abc import Callable
from typing import Any

import aiohttp
import attrs
import stamina
import yarl

from .errors import (
    ConfigurationError,
    InvalidCredentialsError,
    MalformedTokenResponseError,
    TokenEndpointError,
    TokenRateLimitedError,
)
from .models import AccessToken, Credentials

__all__ = ["DEFAULT_TOKEN_URL", "ZOOMGOV_TOKEN_URL", "RetryPolicy", "request_token"]

DEFAULT_TOKEN_URL = "https://zoom.us/oauth/token"  # noqa: S105 - a URL
ZOOMGOV_TOKEN_URL = "https://zoomgov.com/oauth/token"  # noqa: S105 - a URL
ENV_TOKEN_URL = "ZOOM_TOKEN_URL"  # noqa: S105 - a variable's name

_HINTS = {
    "invalid_client": "check ZOOM_CLIENT_ID and ZOOM_CLIENT_SECRET (the app's credentials page)",
    "invalid_request": (
        "check ZOOM_ACCOUNT_ID and that the Server-to-Server OAuth app is activated"
    ),
    "unsupported_grant_type": "the token URL may not be Zoom's S2S token endpoint",
}


@attrs.frozen
class RetryPolicy:
    """How transient token-request failures are retried.

    The defaults give up after 4 attempts or 30 s, whichever comes first, with
    back-offs of about 0.5, 1 and 2 s plus up to 0.5 s of random jitter. A
    ``Retry-After`` from Zoom replaces the computed back-off, capped at
    ``max_retry_after``.

    Attributes:
        attempts: Total attempts, the first included.
        timeout: Total seconds across all attempts and back-offs.
        wait_initial: First back-off, seconds.
        wait_max: Largest back-off, seconds.
        wait_jitter: Up to this many random seconds added to each back-off.
        max_retry_after: Largest ``Retry-After`` honoured, seconds.
    """

    attempts: int = attrs.field(default=4, validator=attrs.validators.ge(1))
    timeout: float = attrs.field(default=30.0, validator=attrs.validators.gt(0))
    wait_initial: float = attrs.field(default=0.5, validator=attrs.validators.ge(0))
    wait_max: float = attrs.field(default=8.0, validator=attrs.validators.ge(0))
    wait_jitter: float = attrs.field(default=0.5, validator=attrs.validators.ge(0))
    max_retry_after: float = attrs.field(default=10.0, validator=attrs.validators.ge(0))


def validate_url(url: str, what: str) -> yarl.URL:
    """Parse an http(s) URL or raise :class:`ConfigurationError` saying what is wrong."""
    try:
        parsed = yarl.URL(url)
    except (TypeError, ValueError) as exc:
        raise ConfigurationError(f"{what} {url!r} is not a valid URL ({exc})") from None
    if parsed.scheme not in ("http", "https") or not parsed.host:
        shown = parsed.with_password(None) if parsed.is_absolute() else parsed
        raise ConfigurationError(
            f"{what} {str(shown)!r} must be an absolute http(s) URL "
            "such as 'https://zoom.us/oauth/token'"
        )
    return parsed


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header: delta-seconds, ISO 8601 or HTTP date."""
    if not value:
        return None
    value = value.strip()
    now = time.time() if now is None else now
    try:
        seconds = float(value)
    except ValueError:
        pass
    else:
        return max(0.0, seconds) if math.isfinite(seconds) else None
    when: dt.datetime | None
    try:
        when = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.timezone.utc)
    return max(0.0, when.timestamp() - now)


def _retry_hook(
    policy: RetryPolicy, keep_trying: Callable[[], bool] | None
) -> Callable[[Exception], bool | float]:
    def hook(exc: Exception) -> bool | float:
        if not isinstance(exc, TokenEndpointError):
            return False
        if keep_trying is not None and not keep_trying():
            return False
        if exc.retry_after is not None:
            return min(exc.retry_after, policy.max_retry_after)
        return True

    return hook


async def request_token(
    session: aiohttp.ClientSession,
    credentials: Credentials,
    *,
    token_url: str = DEFAULT_TOKEN_URL,
    request_timeout: float = 10.0,
    retry: RetryPolicy | None = None,
    keep_trying: Callable[[], bool] | None = None,
) -> AccessToken:
    """Fetch a new access token with the ``account_credentials`` grant, retrying transients.

    Args:
        session: The aiohttp session to send with.
        credentials: The app's credentials.
        token_url: Zoom's token endpoint (ZoomGov: :data:`ZOOMGOV_TOKEN_URL`).
        request_timeout: Seconds one attempt may take.
        retry: The retry policy; :class:`RetryPolicy()` by default.
        keep_trying: Asked before each retry; ``False`` gives up at once (the
            manager stops when its store lock has lapsed).

    Raises:
        InvalidCredentialsError: Zoom rejected the credentials or the grant (no retry).
        TokenEndpointError: Transient failures on every attempt (429: TokenRateLimitedError).
        MalformedTokenResponseError: The answer was not a usable token (no retry).
    """
    policy = retry or RetryPolicy()
    attempts = 0
    try:
        async for attempt in stamina.retry_context(
            on=_retry_hook(policy, keep_trying),
            attempts=policy.attempts,
            timeout=policy.timeout,
            wait_initial=policy.wait_initial,
            wait_max=policy.wait_max,
            wait_jitter=policy.wait_jitter,
        ):
            with attempt:
                attempts = attempt.num
                return await _request_once(session, credentials, token_url, request_timeout)
    except TokenEndpointError as exc:
        plural = "s" if attempts > 1 else ""
        raise type(exc)(
            f"{exc} (gave up after {attempts} attempt{plural}); Zoom or the network is "
            "failing, try again later",
            status=exc.status,
            error=exc.error,
            reason=exc.reason,
            retry_after=exc.retry_after,
        ) from exc
    raise AssertionError("unreachable: stamina either returns or raises")  # pragma: no cover


async def _request_once(
    session: aiohttp.ClientSession,
    credentials: Credentials,
    token_url: str,
    request_timeout: float,
) -> AccessToken:
    sent_at = time.time()
    try:
        async with session.post(
            token_url,
            data={"grant_type": "account_credentials", "account_id": credentials.account_id},
            headers={"Authorization": _basic_auth(credentials)},
            timeout=aiohttp.ClientTimeout(total=request_timeout),
            allow_redirects=False,
        ) as response:
            body = await response.read()
            status = response.status
            headers = response.headers
    except asyncio.TimeoutError:
        raise TokenEndpointError(
            f"token request to {token_url} timed out after {request_timeout:g} s"
        ) from None
    except aiohttp.InvalidURL as exc:
        raise ConfigurationError(f"token URL {token_url!r} is not a valid URL") from exc
    except aiohttp.ClientError as exc:
        raise TokenEndpointError(
            f"token request to {token_url} failed: {exc.__class__.__name__}"
        ) from None

    if status == 200:
        return _parse_token(body, token_url, sent_at)
    error, reason = _parse_error(body)
    detail = f"{error}: {reason}" if error and reason else (error or reason or "no details")
    detail = _scrub(detail, credentials)
    if status == 429:
        raise TokenRateLimitedError(
            f"token endpoint {token_url} is rate limiting (HTTP 429, {detail})",
            status=status,
            error=error,
            reason=reason,
            retry_after=parse_retry_after(headers.get("Retry-After")),
        )
    if status >= 500:
        raise TokenEndpointError(
            f"token endpoint {token_url} failed with HTTP {status} ({detail})",
            status=status,
            error=error,
            reason=reason,
            retry_after=parse_retry_after(headers.get("Retry-After")),
        )
    hint = _HINTS.get(error or "", "check the token URL and the app's credentials")
    if 300 <= status < 400:
        hint = "the token URL redirects; use Zoom's token endpoint URL exactly"
    raise InvalidCredentialsError(
        f"Zoom refused the token request (HTTP {status}, {detail}); {hint}",
        status=status,
        error=error,
        reason=reason,
    )


def _basic_auth(credentials: Credentials) -> str:
    pair = f"{credentials.client_id}:{credentials.client_secret}".encode()
    return "Basic " + base64.b64encode(pair).decode("ascii")


def _scrub(text: str, credentials: Credentials) -> str:
    return text.replace(credentials.client_secret, "***")


def _parse_error(body: bytes) -> tuple[str | None, str | None]:
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return None, None
    if not isinstance(data, dict):
        return None, None
    error, reason = data.get("error"), data.get("reason")
    return (
        error if isinstance(error, str) else None,
        reason[:200] if isinstance(reason, str) else None,
    )


def _malformed(token_url: str, problem: str) -> MalformedTokenResponseError:
    return MalformedTokenResponseError(
        f"token endpoint {token_url} answered HTTP 200 but {problem}; check that the "
        "token URL is Zoom's token endpoint and that no proxy rewrites the answer",
        status=200,
    )


def _parse_token(body: bytes, token_url: str, sent_at: float) -> AccessToken:
    try:
        data: Any = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        start = body[:15].decode("utf-8", "replace").strip()
        looks = "an HTML page" if start.lower().startswith(("<!doctype", "<html")) else "not JSON"
        raise _malformed(token_url, f"the body is {looks} ({len(body)} bytes)") from None
    if not isinstance(data, dict):
        raise _malformed(token_url, f"the JSON is a {type(data).__name__}, not an object")
    token = data.get("access_token")
    if not isinstance(token, str) or not token.strip():
        raise _malformed(token_url, "'access_token' is missing or empty")
    expires_in = data.get("expires_in")
    if isinstance(expires_in, str):
        with contextlib.suppress(ValueError):
            expires_in = float(expires_in)
    if (
        isinstance(expires_in, bool)
        or not isinstance(expires_in, (int, float))
        or not math.isfinite(expires_in)
        or expires_in <= 0
    ):
        problem = f"'expires_in' is {_describe(expires_in)}, not a positive number"
        raise _malformed(token_url, problem)
    token_type = data.get("token_type", "bearer")
    if not isinstance(token_type, str) or token_type.lower() != "bearer":
        raise _malformed(token_url, f"'token_type' is {_describe(token_type)}, not 'bearer'")
    scope = data.get("scope", "")
    api_url = data.get("api_url")
    return AccessToken(
        access_token=token,
        expires_at=sent_at + float(expires_in),
        issued_at=sent_at,
        token_type="bearer",  # noqa: S106 - a type name
        scopes=scope if isinstance(scope, (str, list)) else (),
        api_url=api_url if isinstance(api_url, str) and api_url else None,
    )


def _describe(value: object) -> str:
    if value is None:
        return "missing"
    if isinstance(value, (int, float, bool)):
        return repr(value)
    return f"a {type(value).__name__}"
