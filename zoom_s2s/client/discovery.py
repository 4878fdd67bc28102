"""discover_account_id: the account id behind an access token of any Zoom OAuth app."""

from __future__ import annotations

import asyncio

import aiohttp
import yarl

from .._redact import secret_forms
from ..errors import APIConnectionError, ConfigurationError, ZoomAPIError
from .responses import DEFAULT_MAX_RESPONSE_BYTES, decode_response, error_from_response, read_body
from .urls import DEFAULT_API_URL, api_base

__all__ = ["discover_account_id"]


async def discover_account_id(
    access_token: str,
    *,
    base_url: str = DEFAULT_API_URL,
    session: aiohttp.ClientSession | None = None,
    request_timeout: float = 30.0,
    allow_insecure_http: bool = False,
    max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
) -> str:
    """Find the account id of an access token's account (``GET /users/me``).

    Zoom's S2S grant needs the account id. A token from any other Zoom OAuth
    app of the account (user-level OAuth, a previous S2S token) reveals it.

    Args:
        access_token: A bearer token for the account; used once, never logged.
        base_url: The API base, ``https://api.zoom.us/v2``.
        session: An aiohttp session to reuse; by default a private one is used.
        request_timeout: Seconds the request may take.
        allow_insecure_http: Accept an ``http://`` ``base_url`` on a host that
            is not loopback (the token would cross the network in clear text).
        max_response_bytes: Largest answer body read.

    Returns:
        The ``account_id`` of the token's user.

    Raises:
        ConfigurationError: Bad ``base_url`` (or plain ``http://`` to a host
            that is not loopback) or an empty token.
        UnauthorizedError: Zoom rejected the token (invalid or expired).
        ZoomAPIError: Another API error, an answer without ``account_id``, or
            one over ``max_response_bytes``. No error carries the token.
        APIConnectionError: The API could not be reached.
    """
    base = api_base(base_url, "base_url", allow_insecure_http=allow_insecure_http)
    if not isinstance(access_token, str) or not access_token.strip():
        raise ConfigurationError("access_token is empty; pass a token of the Zoom account")
    url = yarl.URL(base + "/users/me", encoded=True)
    own = session is None
    active = session or aiohttp.ClientSession()
    try:
        async with active.get(
            url,
            headers={"Authorization": f"Bearer {access_token.strip()}"},
            timeout=aiohttp.ClientTimeout(total=request_timeout),
            raise_for_status=False,
            allow_redirects=False,
        ) as response:
            body = await read_body(response, max_response_bytes, method="GET", path=url.path)
            status, headers = response.status, response.headers
    except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
        what = "timed out" if isinstance(exc, asyncio.TimeoutError) else type(exc).__name__
        raise APIConnectionError(
            f"GET /users/me could not reach the Zoom API at {base} ({what}); "
            "check the network and base_url"
        ) from exc
    finally:
        if own:
            await active.close()
    secrets = secret_forms(access_token.strip())
    if status == 401:
        raise error_from_response(
            status,
            headers,
            body,
            method="GET",
            path=url.path,
            hint="the access token is invalid or expired; get a fresh one from the other app",
            secrets=secrets,
        )
    data = decode_response(status, headers, body, method="GET", path=url.path, secrets=secrets)
    account_id = data.get("account_id") if isinstance(data, dict) else None
    if not isinstance(account_id, str) or not account_id:
        raise ZoomAPIError(
            status=status,
            code=None,
            message="the user object has no account_id",
            tracking_id=headers.get("x-zm-trackingid"),
            method="GET",
            path=url.path,
            hint="the token may belong to an app type that cannot read users; use a token "
            "with a scope that reads users: user:read:user:admin (or user:read:user for a "
            "user-level OAuth app; the classic names were user:read:admin and user:read)",
        )
    return account_id
