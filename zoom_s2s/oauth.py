"""The wire: one Server-to-Server OAuth token request, its parsing, and its retries.

Transient failures are retried by stamina (:class:`RetryPolicy`); nothing the
endpoint sends is trusted (``docs/architecture.rst``, "The wire"; Zoom's side:
``docs/zoom.rst``).
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import email.utils
import ipaddress
import logging
import math
import re
from collections.abc import Callable
from typing import Any

import aiohttp
import attrs
import stamina
import yarl

from . import _clock
from ._env import DEFAULT_TOKEN_URL, ENV_TOKEN_URL, ZOOMGOV_TOKEN_URL
from ._http import describe_body, own_retry_notices, parse_json, read_bounded
from ._redact import REDACTED, scrub, secret_forms
from .errors import (
    ConfigurationError,
    InvalidCredentialsError,
    MalformedTokenResponseError,
    TokenEndpointError,
    TokenRateLimitedError,
)
from .models import AccessToken, Credentials

__all__ = [
    "DEFAULT_TOKEN_URL",
    "ENV_TOKEN_URL",
    "MAX_EXPIRES_IN",
    "MAX_REPLY_BYTES",
    "ZOOMGOV_TOKEN_URL",
    "RetryPolicy",
    "parse_retry_after",
    "request_token",
    "validate_url",
]

logger = logging.getLogger(__name__)

MAX_REPLY_BYTES = 64 * 1024
"""Largest token-endpoint body read, bytes: Zoom's replies are under 2 KiB."""

MAX_EXPIRES_IN = 86400.0
"""Largest ``expires_in`` accepted, seconds: Zoom issues 3599-3600 s tokens."""

# RFC 6750 section 2.1 b64token: what a bearer token may contain.
_B64TOKEN = re.compile(r"[A-Za-z0-9\-._~+/]+=*")
_USERINFO = re.compile(r"(//)[^/?#]*@")
_MAX_FIELD = 200

_TOKEN_ERROR_HINTS = {
    "invalid_client": "check ZOOM_CLIENT_ID and ZOOM_CLIENT_SECRET (the app's credentials page)",
    "invalid_request": (
        "check ZOOM_ACCOUNT_ID and that the Server-to-Server OAuth app is activated"
    ),
    "unsupported_grant_type": (
        "these look like the credentials of an app that is not Server-to-Server OAuth "
        "(a general/user-level OAuth, Meeting SDK or Zoom Apps app): create a "
        "Server-to-Server OAuth app in the Zoom App Marketplace and use its account id, "
        "client id and secret; or the token URL is not Zoom's"
    ),
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


def _hide_userinfo(text: str) -> str:
    """``text`` with any ``//user:password@`` of a URL in it replaced by ``//***@``."""
    return _USERINFO.sub(rf"\1{REDACTED}@", text)


def _is_loopback(host: str) -> bool:
    if host.lower().rstrip(".") == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def validate_url(url: str, what: str, *, allow_insecure_http: bool = False) -> yarl.URL:
    """Parse an http(s) URL or raise :class:`ConfigurationError` saying what is wrong.

    Args:
        url: The URL to check.
        what: How to name it in the error, e.g. ``"token_url"``.
        allow_insecure_http: Accept ``http://`` to any host. By default plain
            HTTP is accepted only to a loopback host (``localhost``,
            ``127.0.0.0/8``, ``::1``): elsewhere it would send the client
            credentials and access tokens across the network in clear text.

    Raises:
        ConfigurationError: The URL is not an absolute http(s) URL, carries a
            user name or password, or is plain HTTP to a host that is not
            loopback without ``allow_insecure_http``. The message never shows
            a password.
    """
    try:
        parsed = yarl.URL(url)
    except (TypeError, ValueError) as exc:
        shown = _hide_userinfo(str(url))
        raise ConfigurationError(
            f"{what} {shown!r} is not a valid URL ({_hide_userinfo(str(exc))})"
        ) from None
    if parsed.user is not None or parsed.password is not None:
        shown = str(parsed.with_user(None)) if parsed.is_absolute() else _hide_userinfo(url)
        raise ConfigurationError(
            f"{what} {shown!r} must not carry a user name or password (user:password@): "
            "credentials in a URL end up in logs and error messages; give the app's "
            "credentials through Credentials (ZOOM_CLIENT_ID, ZOOM_CLIENT_SECRET) instead"
        )
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise ConfigurationError(
            f"{what} {str(parsed)!r} must be an absolute http(s) URL "
            "such as 'https://zoom.us/oauth/token'"
        )
    if parsed.scheme == "http" and not allow_insecure_http and not _is_loopback(parsed.host):
        raise ConfigurationError(
            f"{what} {str(parsed)!r} uses plain http:// to a host that is not loopback: "
            "the client credentials and access tokens would cross the network in clear "
            "text. Use https://, or pass allow_insecure_http=True if you accept that "
            "(a test server on a network you trust)"
        )
    return parsed


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header: delta-seconds, ISO 8601 or HTTP date."""
    if not value:
        return None
    value = value.strip()
    now = _clock.wall() if now is None else now
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


@attrs.define
class _Attempts:
    """What the retry hook needs to know about the attempt that just failed."""

    policy: RetryPolicy
    keep_trying: Callable[[], bool] | None
    attempt: stamina.Attempt | None = None

    @property
    def num(self) -> int:
        return self.attempt.num if self.attempt is not None else 0

    def hook(self, exc: Exception) -> bool | float:
        """stamina back-off hook: retry transient failures, log the retry on our logger."""
        if not isinstance(exc, TokenEndpointError):
            return False
        if self.keep_trying is not None and not self.keep_trying():
            return False
        wait: float | None = None
        if exc.retry_after is not None:
            wait = min(exc.retry_after, self.policy.max_retry_after)
        if self.num < self.policy.attempts:
            expected = wait if wait is not None else self._backoff()
            logger.info(
                "token request attempt %d of %d failed (%s, %s); retrying in about %.2f s",
                self.num,
                self.policy.attempts,
                type(exc).__name__,
                f"HTTP {exc.status}" if exc.status is not None else "no answer",
                expected,
            )
        return True if wait is None else wait

    def _backoff(self) -> float:
        """stamina's jitter-less back-off after this attempt (the jitter comes on top)."""
        if self.attempt is None:  # pragma: no cover - the hook runs inside an attempt
            return 0.0
        return self.attempt.next_wait


async def request_token(
    session: aiohttp.ClientSession,
    credentials: Credentials,
    *,
    token_url: str = DEFAULT_TOKEN_URL,
    request_timeout: float = 10.0,
    retry: RetryPolicy | None = None,
    keep_trying: Callable[[], bool] | None = None,
    allow_insecure_http: bool = False,
) -> AccessToken:
    """Fetch a new access token with the ``account_credentials`` grant, retrying transients.

    Retries are logged at INFO on the ``zoom_s2s.oauth`` logger (attempt,
    wait, error class); stamina's own ``stamina.retry_scheduled`` records for
    them are dropped, whatever stamina's configuration.

    Args:
        session: The aiohttp session to send with.
        credentials: The app's credentials.
        token_url: Zoom's token endpoint (ZoomGov: :data:`ZOOMGOV_TOKEN_URL`).
        request_timeout: Seconds one attempt may take.
        retry: The retry policy; :class:`RetryPolicy()` by default.
        keep_trying: Asked before each retry; ``False`` gives up at once (the
            manager stops when its store lock has lapsed).
        allow_insecure_http: Accept a plain ``http://`` token URL to a host that
            is not loopback (the credentials then cross the network in clear text).

    Raises:
        ConfigurationError: ``token_url`` is not a usable URL (see :func:`validate_url`).
        InvalidCredentialsError: Zoom rejected the credentials or the grant (no retry).
        TokenEndpointError: Transient failures on every attempt (429: TokenRateLimitedError),
            including a token that had expired by the time its answer arrived.
        MalformedTokenResponseError: The answer was not a usable token (no retry).
    """
    validate_url(token_url, "token_url", allow_insecure_http=allow_insecure_http)
    policy = retry or RetryPolicy()
    forms = secret_forms(credentials.client_secret, client_id=credentials.client_id)
    attempts = _Attempts(policy, keep_trying)
    try:
        with own_retry_notices():
            async for attempt in stamina.retry_context(
                on=attempts.hook,
                attempts=policy.attempts,
                timeout=policy.timeout,
                wait_initial=policy.wait_initial,
                wait_max=policy.wait_max,
                wait_jitter=policy.wait_jitter,
            ):
                with attempt:
                    attempts.attempt = attempt
                    return await _request_once(
                        session, credentials, token_url, request_timeout, forms
                    )
    except TokenEndpointError as exc:
        plural = "s" if attempts.num > 1 else ""
        raise type(exc)(
            f"{exc} (gave up after {attempts.num} attempt{plural}); Zoom or the network is "
            "failing, try again later",
            status=exc.status,
            error=exc.error,
            reason=exc.reason,
            retry_after=exc.retry_after,
            retry_at=exc.retry_at,
        ) from exc
    raise AssertionError("unreachable: stamina either returns or raises")  # pragma: no cover


class _TooBig(Exception):
    """A body over :data:`MAX_REPLY_BYTES`; its message says so."""


async def _request_once(
    session: aiohttp.ClientSession,
    credentials: Credentials,
    token_url: str,
    request_timeout: float,
    forms: tuple[str, ...],
) -> AccessToken:
    sent_at = _clock.wall()
    sent_mono = _clock.monotonic()
    too_big: str | None = None
    try:
        async with session.post(
            token_url,
            data={"grant_type": "account_credentials", "account_id": credentials.account_id},
            headers={"Authorization": _basic_auth(credentials)},
            timeout=aiohttp.ClientTimeout(total=request_timeout),
            allow_redirects=False,
        ) as response:
            status = response.status
            retry_after_header = response.headers.get("Retry-After")
            try:
                body = await read_bounded(response, MAX_REPLY_BYTES, "the body", too_big=_TooBig)
            except _TooBig as exc:
                body, too_big = b"", str(exc)
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
    elapsed = _clock.monotonic() - sent_mono
    logger.debug("token endpoint answered HTTP %d in %.3f s (%d bytes)", status, elapsed, len(body))

    if status == 200:
        if too_big is not None:
            raise _malformed(token_url, too_big)
        return _parse_token(body, token_url, sent_at, elapsed)
    error, reason = _parse_error(body, forms)
    detail = f"{error}: {reason}" if error and reason else (error or reason or too_big)
    detail = detail or "no details"
    retry_after = parse_retry_after(retry_after_header)
    if status == 429:
        raise TokenRateLimitedError(
            f"token endpoint {token_url} is rate limiting (HTTP 429, {detail})",
            status=status,
            error=error,
            reason=reason,
            retry_after=retry_after,
        )
    if status >= 500:
        raise TokenEndpointError(
            f"token endpoint {token_url} failed with HTTP {status} ({detail})",
            status=status,
            error=error,
            reason=reason,
            retry_after=retry_after,
        )
    hint = _TOKEN_ERROR_HINTS.get(error or "", "check the token URL and the app's credentials")
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


def _field(value: object, forms: tuple[str, ...]) -> str | None:
    """A string field of an error reply, scrubbed of the secret and then shortened.

    Scrubbing comes first: shortening could cut an encoded secret into a
    fragment that no longer matches.
    """
    if not isinstance(value, str):
        return None
    return scrub(value, forms)[:_MAX_FIELD]


def _parse_error(body: bytes, forms: tuple[str, ...]) -> tuple[str | None, str | None]:
    """(error, reason) of an error reply, both scrubbed of the client secret."""
    try:
        data = parse_json(body)
    except ValueError:
        return None, None
    if not isinstance(data, dict):
        return None, None
    return _field(data.get("error"), forms), _field(data.get("reason"), forms)


def _malformed(token_url: str, problem: str) -> MalformedTokenResponseError:
    return MalformedTokenResponseError(
        f"token endpoint {token_url} answered HTTP 200 but {problem}; check that the "
        "token URL is Zoom's token endpoint and that no proxy rewrites the answer",
        status=200,
    )


def _parse_token(body: bytes, token_url: str, sent_at: float, elapsed: float) -> AccessToken:
    try:
        data: Any = parse_json(body)
    except ValueError as exc:
        problem = str(exc) if "deeply" in str(exc) else describe_body(body)
        raise _malformed(token_url, problem) from None
    if not isinstance(data, dict):
        raise _malformed(token_url, f"the JSON is a {type(data).__name__}, not an object")
    token = data.get("access_token")
    if not isinstance(token, str) or not token.strip():
        raise _malformed(token_url, "'access_token' is missing or empty")
    if not _B64TOKEN.fullmatch(token):
        raise _malformed(
            token_url,
            "'access_token' has characters a bearer token cannot have (spaces, line "
            "breaks, control or non-ASCII characters; RFC 6750 allows A-Z a-z 0-9 - . _ ~ + / "
            "and a trailing =)",
        )
    expires_in = _expires_in(data.get("expires_in"), token_url)
    token_type = data.get("token_type", "bearer")
    if not isinstance(token_type, str) or token_type.lower() != "bearer":
        raise _malformed(token_url, f"'token_type' is {_field_summary(token_type)}, not 'bearer'")
    if elapsed >= expires_in:
        raise TokenEndpointError(
            f"token endpoint {token_url} took {elapsed:.1f} s to answer with a token that "
            f"lives {expires_in:g} s: it had expired on arrival and was discarded; the "
            "endpoint or the network is too slow",
            status=200,
        )
    scope = data.get("scope", "")
    api_url = data.get("api_url")
    return AccessToken(
        access_token=token,
        expires_ts=sent_at + expires_in,
        issued_ts=sent_at,
        token_type="bearer",  # noqa: S106 - a type name
        scopes=scope if isinstance(scope, (str, list)) else (),
        api_url=api_url if isinstance(api_url, str) and api_url else None,
    )


def _expires_in(value: object, token_url: str) -> float:
    """``expires_in`` as seconds: a finite number (or numeric string) in (0, a day]."""
    number: object = value
    if isinstance(value, str):
        try:
            number = float(value)
        except ValueError:
            number = value
    if (
        isinstance(number, bool)
        or not isinstance(number, (int, float))
        or not math.isfinite(number)
        or not 0 < number <= MAX_EXPIRES_IN
    ):
        raise _malformed(
            token_url,
            f"'expires_in' is {_field_summary(value)}, not a number of seconds above 0 "
            f"and at most {MAX_EXPIRES_IN:g} (Zoom issues 3599-3600)",
        )
    return float(number)


def _field_summary(value: object) -> str:
    """A safe summary of a reply field for a message: numbers as they are, else the type."""
    if value is None:
        return "missing"
    if isinstance(value, (int, float, bool)):
        return repr(value)
    return f"a {type(value).__name__}"
