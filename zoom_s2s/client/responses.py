"""Turning a REST API answer into decoded JSON or the right :class:`ZoomAPIError`.

Zoom's errors are ``{"code": ..., "message": ...}`` objects (plus an ``errors``
list on validation failures) with an ``x-zm-trackingid`` header (ZOOM.md). A
body that is not such JSON (an HTML page from a proxy) still gives the error
class its HTTP status calls for, with a message that summarises the body.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from collections.abc import Mapping
from typing import Any

from ..errors import (
    DailyLimitExceededError,
    MissingScopesError,
    NotFoundError,
    RateLimitedError,
    ServerError,
    UnauthorizedError,
    ZoomAPIError,
)
from ..oauth import parse_retry_after

__all__ = ["decode_response", "error_from_response"]

INVALID_TOKEN_CODE = 124
MISSING_SCOPES_CODE = 4711
_MAX_MESSAGE = 300

_HINTS = {
    401: (
        "Zoom rejected the access token even after a fresh one was fetched; check that the "
        "Server-to-Server OAuth app is activated and that the base URL is Zoom's API"
    ),
    MISSING_SCOPES_CODE: (
        "The app lacks a scope this call needs: add it to the app in the Zoom App Marketplace "
        "(Scopes), then fetch a new token; retrying with the same app cannot help"
    ),
    429: "Zoom's per-second rate limit did not clear; slow down or retry later",
}


def describe_body(body: bytes) -> str:
    """A one-line summary of a body that is not the JSON we expected (never its content)."""
    start = body[:64].decode("utf-8", "replace").strip()
    if not start:
        return "the body is empty"
    kind = "an HTML page" if start.startswith("<") else "not JSON"
    return f"the body is {kind} ({len(body)} bytes)"


def _zoom_fields(body: bytes) -> tuple[int | None, str | None, list[dict[str, object]] | None]:
    """(code, message, errors) from a Zoom error body; message summarises a non-JSON body."""
    try:
        data: Any = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return None, describe_body(body), None
    if not isinstance(data, dict):
        return None, f"the body is a JSON {type(data).__name__}, not an object", None
    code = data.get("code")
    message = data.get("message")
    errors = data.get("errors")
    return (
        code if isinstance(code, int) and not isinstance(code, bool) else None,
        message[:_MAX_MESSAGE] if isinstance(message, str) else None,
        [item for item in errors if isinstance(item, dict)] if isinstance(errors, list) else None,
    )


def next_utc_midnight(now: float | None = None) -> dt.datetime:
    """The next 00:00 UTC after ``now`` (Unix time; default: the current time)."""
    today = dt.datetime.fromtimestamp(time.time() if now is None else now, tz=dt.timezone.utc)
    return (today + dt.timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)


def retry_after_time(value: str | None, now: float | None = None) -> dt.datetime | None:
    """The moment a ``Retry-After`` header (ISO 8601, HTTP date or seconds) points at, in UTC."""
    now = time.time() if now is None else now
    seconds = parse_retry_after(value, now)
    if seconds is None:
        return None
    return dt.datetime.fromtimestamp(now + seconds, tz=dt.timezone.utc)


def error_from_response(
    status: int,
    headers: Mapping[str, str],
    body: bytes,
    *,
    method: str,
    path: str,
    hint: str | None = None,
) -> ZoomAPIError:
    """The :class:`ZoomAPIError` subclass for an error answer.

    Args:
        status: HTTP status (not 2xx).
        headers: Response headers (case-insensitive mapping).
        body: Raw response body.
        method: HTTP method of the request.
        path: Request path without the query string.
        hint: What the user can do, overriding the default hint for the status.

    Returns:
        The error to raise: 401 :class:`UnauthorizedError`, 400 code 4711
        :class:`MissingScopesError`, 404 :class:`NotFoundError`, 429
        :class:`RateLimitedError` or :class:`DailyLimitExceededError`, 5xx
        :class:`ServerError`, else :class:`ZoomAPIError`.
    """
    code, message, errors = _zoom_fields(body)
    fields: dict[str, Any] = {
        "status": status,
        "code": code,
        "message": message,
        "tracking_id": headers.get("x-zm-trackingid"),
        "method": method,
        "path": path,
        "errors": errors,
    }
    if status == 429:
        limit_type = headers.get("X-RateLimit-Type")
        retry_after = retry_after_time(headers.get("Retry-After"))
        if (limit_type or "").lower() == "daily-limit":
            reset = retry_after or next_utc_midnight()
            return DailyLimitExceededError(
                limit_type=limit_type,
                retry_after=reset,
                hint=hint
                or f"Zoom's daily limit for this API resets at {reset.isoformat()}; "
                "retry after that",
                **fields,
            )
        return RateLimitedError(
            limit_type=limit_type, retry_after=retry_after, hint=hint or _HINTS[429], **fields
        )
    if status == 401:
        return UnauthorizedError(hint=hint or _HINTS[401], **fields)
    if status == 400 and code == MISSING_SCOPES_CODE:
        return MissingScopesError(hint=hint or _HINTS[MISSING_SCOPES_CODE], **fields)
    if status == 404:
        return NotFoundError(hint=hint, **fields)
    if status >= 500:
        return ServerError(hint=hint or "Zoom or a proxy failed; retry later", **fields)
    return ZoomAPIError(hint=hint, **fields)


def decode_response(
    status: int,
    headers: Mapping[str, str],
    body: bytes,
    *,
    method: str,
    path: str,
) -> Any:
    """Decoded JSON of a 2xx answer (``None`` when it has no body), or raise its error.

    Raises:
        ZoomAPIError: The status is not 2xx (the subclass its status calls
            for), or a 2xx body is not JSON.
    """
    if not 200 <= status < 300:
        raise error_from_response(status, headers, body, method=method, path=path)
    if status == 204 or not body.strip():
        return None
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise ZoomAPIError(
            status=status,
            code=None,
            message=f"{describe_body(body)}, expected JSON",
            tracking_id=headers.get("x-zm-trackingid"),
            method=method,
            path=path,
            hint="check that the base URL is Zoom's API and that no proxy rewrites answers",
        ) from None
