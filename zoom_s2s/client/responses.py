"""Turning a REST API answer into decoded JSON or the right :class:`ZoomAPIError`.

Bodies are read up to a limit, never trusted, and every text an error keeps is
scrubbed of the bearer token. Zoom's error shapes: ``docs/zoom.rst``.
"""

from __future__ import annotations

import datetime as dt
import re
import time
from collections.abc import Iterable, Mapping
from typing import Any

import aiohttp

from .._http import describe_body, parse_json, read_bounded
from .._redact import scrub
from ..errors import (
    DailyLimitExceededError,
    MissingScopesError,
    NotFoundError,
    PermissionDeniedError,
    PlanRequiredError,
    RateLimitedError,
    ServerError,
    UnauthorizedError,
    ZoomAPIError,
)
from ..oauth import parse_retry_after
from ..ratelimit.headers import is_daily_message, next_utc_midnight

__all__ = [
    "DEFAULT_MAX_RESPONSE_BYTES",
    "INVALID_TOKEN_CODE",
    "decode_response",
    "error_from_response",
    "read_body",
]

INVALID_TOKEN_CODE = 124
MISSING_SCOPES_CODE = 4711
INVALID_SCOPES_CODE = 4700
NO_PERMISSION_CODE = 200
SCOPE_CODES = frozenset({INVALID_SCOPES_CODE, MISSING_SCOPES_CODE})
DEFAULT_MAX_RESPONSE_BYTES = 16 * 1024 * 1024
"""Largest API answer read by default: far above any JSON page Zoom sends (16 MiB)."""

_MAX_MESSAGE = 300
NO_SECRETS: tuple[str, ...] = ()
_SCOPE_LIST = re.compile(r"scopes?\s*:?\s*\[([^\]]*)\]", re.IGNORECASE)
_SCOPE_NAME = re.compile(r"^[A-Za-z0-9_.:-]{1,100}$")

_API_ERROR_HINTS = {
    401: (
        "Zoom rejected the access token even after a fresh one was fetched; check that the "
        "Server-to-Server OAuth app is activated and that the base URL is Zoom's API"
    ),
    403: (
        "the user this call acts for lacks the permission (or shared access is not "
        "authorised): check the role of the app's creator, or of the user in the path, in "
        "the Zoom web portal (User Management, Roles); retrying cannot help"
    ),
    NO_PERMISSION_CODE: (
        "Zoom says the account or user may not do this: check the role of the app's "
        "creator in the Zoom web portal (User Management, Roles); retrying cannot help"
    ),
    429: "Zoom's per-second rate limit did not clear; slow down or retry later",
}


class _TooLarge(Exception):
    """The answer's body is over the limit (carries read_bounded's message)."""


async def read_body(
    response: aiohttp.ClientResponse, limit: int, *, method: str, path: str
) -> bytes:
    """The body of an API answer, at most ``limit`` bytes.

    Raises:
        ZoomAPIError: The body is larger than ``limit`` (the connection is closed).
    """
    try:
        return await read_bounded(response, limit, "the answer", too_big=_TooLarge)
    except _TooLarge as exc:
        raise ZoomAPIError(
            status=response.status,
            code=None,
            message=str(exc),
            tracking_id=response.headers.get("x-zm-trackingid"),
            method=method,
            path=path,
            hint="no Zoom API answer is that large: check the base URL, or raise "
            "max_response_bytes if you expect answers this big",
        ) from None


def _scrub_item(value: object, forms: tuple[str, ...]) -> object:
    if isinstance(value, str):
        return scrub(value, forms)
    if isinstance(value, dict):
        return {str(k): _scrub_item(v, forms) for k, v in value.items()}
    if isinstance(value, list):
        return [_scrub_item(v, forms) for v in value]
    return value


def _unparsable(body: bytes, exc: ValueError) -> str:
    """What is wrong with a body that did not parse: summarised, never quoted."""
    if body.lstrip()[:1] in (b"{", b"["):
        return f"the body is malformed JSON ({exc}; {len(body)} bytes)"
    return describe_body(body)


def zoom_fields(
    body: bytes, forms: tuple[str, ...]
) -> tuple[int | None, str | None, list[dict[str, object]] | None]:
    """(code, message, errors) from a Zoom error body; message summarises a non-JSON body."""
    try:
        data: Any = parse_json(body)
    except ValueError as exc:
        return None, _unparsable(body, exc), None
    if not isinstance(data, dict):
        return None, f"the body is a JSON {type(data).__name__}, not an object", None
    code = data.get("code")
    message = data.get("message")
    errors = data.get("errors")
    return (
        code if isinstance(code, int) and not isinstance(code, bool) else None,
        scrub(message[:_MAX_MESSAGE], forms) if isinstance(message, str) else None,
        [_scrub_item(item, forms) for item in errors if isinstance(item, dict)]  # type: ignore[misc]
        if isinstance(errors, list)
        else None,
    )


def is_scope_error(code: int | None, message: str | None) -> bool:
    """Whether Zoom's code says the token lacks a scope: 4711, or 4700 about scopes."""
    return code in SCOPE_CODES and (code == MISSING_SCOPES_CODE or "scope" in (message or "scope"))


def scopes_named(message: str | None) -> tuple[str, ...]:
    """The scope names in a Zoom scope error, e.g. ``...does not contain scopes:[a, b].``.

    Zoom lists alternatives (the granular and the classic name of one
    permission): any one of them would do. Names are returned as written,
    quotes stripped; anything that does not look like a scope is left out.
    """
    match = _SCOPE_LIST.search(message or "")
    if match is None:
        return ()
    names = (part.strip().strip("\"'").strip() for part in match.group(1).split(","))
    return tuple(dict.fromkeys(name for name in names if _SCOPE_NAME.match(name)))


def scopes_hint(required: tuple[str, ...], granted: frozenset[str] | None) -> str:
    """What to do about a scope error, naming the scopes on both sides."""
    if required:
        text = "the token has none of the scopes this call accepts (" + ", ".join(required) + ")"
    else:
        text = "the token lacks a scope this call needs (Zoom did not name it)"
    if granted is not None:
        shown = ", ".join(sorted(granted)) if granted else "none"
        text += f"; it was granted: {shown}"
    return (
        text + ". Add the scope to the Server-to-Server OAuth app in the Zoom App Marketplace "
        "(Scopes); scopes granted there reach only tokens issued afterwards, and the client "
        "fetches a fresh token once before raising this"
    )


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
    secrets: tuple[str, ...] = NO_SECRETS,
    scopes: Iterable[str] | None = None,
) -> ZoomAPIError:
    """The :class:`ZoomAPIError` subclass for an error answer.

    Args:
        status: HTTP status (not 2xx).
        headers: Response headers (case-insensitive mapping).
        body: Raw response body.
        method: HTTP method of the request.
        path: Request path without the query string.
        hint: What the user can do, overriding the default hint for the status.
        secrets: Forms of the bearer token sent (:func:`zoom_s2s._redact.secret_forms`),
            scrubbed from every text the error keeps from the answer.
        scopes: The scopes of the token sent, named by a scope error.

    Returns:
        The error to raise: code 4711 (or 4700 about scopes), whatever the
        status, :class:`MissingScopesError`; 401 :class:`UnauthorizedError`;
        code 200 :class:`PlanRequiredError` ("Only available for Paid or ZMP
        account") or :class:`PermissionDeniedError`; 403
        :class:`PermissionDeniedError`; 404 :class:`NotFoundError`; 429
        :class:`RateLimitedError` or :class:`DailyLimitExceededError`; 5xx
        :class:`ServerError`; else :class:`ZoomAPIError`.
    """
    code, message, errors = zoom_fields(body, secrets)
    tracking_id = headers.get("x-zm-trackingid")
    fields: dict[str, Any] = {
        "status": status,
        "code": code,
        "message": message,
        "tracking_id": None if tracking_id is None else scrub(tracking_id, secrets),
        "method": method,
        "path": path,
        "errors": errors,
    }
    if status == 429:
        limit_type = headers.get("X-RateLimit-Type")
        if limit_type is not None:
            limit_type = scrub(limit_type, secrets)
        retry_at = retry_after_time(headers.get("Retry-After"))
        # Zoom also sends daily limits without X-RateLimit-Type or Retry-After, only
        # a message ("... daily rate limit ... resume these requests at GMT 00:00:00").
        if (limit_type or "").lower() == "daily-limit" or is_daily_message(message):
            reset = retry_at or next_utc_midnight()
            return DailyLimitExceededError(
                limit_type=limit_type,
                retry_at=reset,
                hint=hint
                or f"Zoom's daily limit for this API resets at {reset.isoformat()}; "
                "retry after that",
                **fields,
            )
        return RateLimitedError(
            limit_type=limit_type,
            retry_at=retry_at,
            hint=hint or _API_ERROR_HINTS[429],
            **fields,
        )
    if is_scope_error(code, message):
        required = scopes_named(message)
        granted = None if scopes is None else frozenset(scopes)
        return MissingScopesError(
            required_scopes=required,
            granted_scopes=granted,
            hint=hint or scopes_hint(required, granted),
            **fields,
        )
    if status == 401:
        return UnauthorizedError(hint=hint or _API_ERROR_HINTS[401], **fields)
    if code == NO_PERMISSION_CODE and 400 <= status < 500:
        if "paid or zmp" in (message or "").lower():
            return PlanRequiredError(
                hint=hint
                or "this API needs a paid plan (or the add-on it belongs to) on the account; "
                "retrying cannot help",
                **fields,
            )
        return PermissionDeniedError(hint=hint or _API_ERROR_HINTS[NO_PERMISSION_CODE], **fields)
    if status == 403:
        return PermissionDeniedError(hint=hint or _API_ERROR_HINTS[403], **fields)
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
    secrets: tuple[str, ...] = NO_SECRETS,
) -> Any:
    """Decoded JSON of a 2xx answer (``None`` when it has no body), or raise its error.

    Raises:
        ZoomAPIError: The status is not 2xx (the subclass its status calls
            for), or a 2xx body is not JSON (or is nested too deeply to parse).
    """
    if not 200 <= status < 300:
        raise error_from_response(status, headers, body, method=method, path=path, secrets=secrets)
    if status == 204 or not body:
        return None
    try:
        return parse_json(body)
    except ValueError as exc:
        if not body.strip():
            return None
        tracking_id = headers.get("x-zm-trackingid")
        raise ZoomAPIError(
            status=status,
            code=None,
            message=f"{_unparsable(body, exc)}, expected JSON",
            tracking_id=None if tracking_id is None else scrub(tracking_id, secrets),
            method=method,
            path=path,
            hint="check that the base URL is Zoom's API and that no proxy rewrites answers",
        ) from None
