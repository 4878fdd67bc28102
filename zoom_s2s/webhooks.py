"""Zoom webhooks: verify event notifications and answer the endpoint URL challenge.

Zoom signs each event notification it POSTs to an app's endpoint
(``docs/zoom.rst``, "Webhooks"): with the app's *secret token*,

* ``x-zm-request-timestamp`` is the time of sending, in Unix seconds;
* ``x-zm-signature`` is ``"v0=" + hex(HMAC-SHA256(secret_token,
  "v0:{timestamp}:{raw body}"))``.

When an endpoint URL is added or changed (and every 72 hours after), Zoom
sends an ``endpoint.url_validation`` event with a ``plainToken``; the endpoint
answers ``{"plainToken": ..., "encryptedToken": hex(HMAC-SHA256(secret_token,
plainToken))}`` within 3 seconds.

The challenge is answered only when its own signature verifies: an endpoint
that hashed any ``plainToken`` it was sent would hand out valid signatures
for bodies of the sender's choosing (a ``plainToken`` of
``"v0:{timestamp}:{body}"``).

Use :func:`verify_signature` and :func:`url_validation_response` with any web
framework, or the ready-made :func:`aiohttp_handler` and
:func:`fastapi_dependency`::

    async def on_event(event: WebhookEvent) -> None:
        print(event.event, event.payload)

    app.router.add_post("/zoom/events", aiohttp_handler(secret_token, on_event))
"""

from __future__ import annotations

import hashlib
import hmac
import inspect
import json
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any

import attrs

from ._http import parse_json
from .errors import WebhookError, WebhookSignatureError

if TYPE_CHECKING:
    from aiohttp import web

__all__ = [
    "SIGNATURE_HEADER",
    "TIMESTAMP_HEADER",
    "URL_VALIDATION_EVENT",
    "WebhookEvent",
    "aiohttp_handler",
    "fastapi_dependency",
    "parse_event",
    "signature",
    "signed_headers",
    "url_validation_response",
    "verify_signature",
]

SIGNATURE_HEADER = "x-zm-signature"
TIMESTAMP_HEADER = "x-zm-request-timestamp"
URL_VALIDATION_EVENT = "endpoint.url_validation"
DEFAULT_TOLERANCE = 300.0
"""Seconds a request's timestamp may be away from now (replay protection)."""

EventCallback = Callable[["WebhookEvent"], "Awaitable[object] | object"]
"""What the ready-made handlers hand each verified event to (sync or async)."""


@attrs.frozen(repr=False)
class WebhookEvent:
    """One verified event notification.

    Attributes:
        event: The event name, e.g. ``"meeting.started"``.
        payload: The event's ``payload`` object (``{}`` if it had none).
        event_ts: Zoom's ``event_ts`` (milliseconds since the epoch), if sent.
        raw: The whole decoded body.
    """

    event: str
    payload: Mapping[str, Any]
    event_ts: int | None
    raw: Mapping[str, Any]

    @property
    def is_url_validation(self) -> bool:
        """Whether this is Zoom's ``endpoint.url_validation`` challenge."""
        return self.event == URL_VALIDATION_EVENT

    def __repr__(self) -> str:
        return f"WebhookEvent(event={self.event!r}, event_ts={self.event_ts!r})"


def _key(secret_token: str) -> bytes:
    if not isinstance(secret_token, str) or not secret_token:
        raise WebhookSignatureError(
            "the webhook secret token is empty; pass the Secret Token from the app's "
            "Features page in the Zoom App Marketplace"
        )
    return secret_token.encode()


def _bytes(body: bytes | str) -> bytes:
    return body.encode() if isinstance(body, str) else bytes(body)


def signature(secret_token: str, timestamp: str | int, body: bytes | str) -> str:
    """Zoom's ``x-zm-signature`` for ``body`` sent at ``timestamp``: ``"v0=" + hex HMAC``."""
    message = b"v0:" + str(timestamp).encode() + b":" + _bytes(body)
    return "v0=" + hmac.new(_key(secret_token), message, hashlib.sha256).hexdigest()


def signed_headers(
    secret_token: str, body: bytes | str, *, timestamp: int | None = None
) -> dict[str, str]:
    """The headers Zoom would send with ``body`` (for tests of your endpoint).

    Args:
        secret_token: The app's secret token.
        body: The exact bytes to be sent.
        timestamp: Unix seconds; default now.
    """
    stamp = str(int(time.time()) if timestamp is None else timestamp)
    return {
        TIMESTAMP_HEADER: stamp,
        SIGNATURE_HEADER: signature(secret_token, stamp, body),
        "Content-Type": "application/json",
    }


def _header(headers: Mapping[str, str], name: str) -> str | None:
    value = headers.get(name)
    if value is None:  # a plain dict with other capitalisation
        value = next((v for k, v in headers.items() if k.lower() == name), None)
    return value


def verify_signature(
    headers: Mapping[str, str],
    body: bytes | str,
    secret_token: str,
    *,
    tolerance: float | None = DEFAULT_TOLERANCE,
    now: float | None = None,
) -> None:
    """Check that Zoom sent ``body`` recently, signed with ``secret_token``.

    Args:
        headers: The request's headers (any mapping; names are matched
            without regard to case).
        body: The raw request body, exactly as received (not re-serialised JSON).
        secret_token: The app's secret token (Marketplace, the app's Features page).
        tolerance: Seconds the ``x-zm-request-timestamp`` may differ from
            ``now`` (either way); ``None`` skips the check.
        now: The current Unix time (default: the clock).

    Raises:
        WebhookSignatureError: A header is missing or malformed, the timestamp
            is outside the tolerance, or the signature does not match. The
            message never contains the secret or the expected signature.
    """
    key = _key(secret_token)
    sent = _header(headers, SIGNATURE_HEADER)
    stamp = _header(headers, TIMESTAMP_HEADER)
    if not sent or stamp is None:
        missing = SIGNATURE_HEADER if not sent else TIMESTAMP_HEADER
        raise WebhookSignatureError(
            f"the request has no {missing} header: it was not sent by Zoom's webhooks "
            "(or a proxy dropped the header)"
        )
    stamp = stamp.strip()
    if not stamp.isascii() or not stamp.isdigit() or len(stamp) > 12:  # isdigit() alone admits "²"
        raise WebhookSignatureError(
            f"the {TIMESTAMP_HEADER} header is not a number of seconds; refusing the request"
        )
    if tolerance is not None:
        skew = (time.time() if now is None else now) - int(stamp)
        if abs(skew) > tolerance:
            when = "old" if skew > 0 else "in the future"
            raise WebhookSignatureError(
                f"the request's timestamp is {abs(skew):.0f} s {when}, beyond the "
                f"{tolerance:g} s tolerance: a replay, or this host's clock is off (check NTP)"
            )
    message = b"v0:" + stamp.encode() + b":" + _bytes(body)
    expected = "v0=" + hmac.new(key, message, hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected.encode(), sent.strip().encode("utf-8", "replace")):
        raise WebhookSignatureError(
            f"the {SIGNATURE_HEADER} header does not match the body: check the secret "
            "token (the app's Features page; regenerating it changes it), and verify the "
            "raw body as received, not re-serialised JSON"
        )


def url_validation_response(plain_token: str, secret_token: str) -> dict[str, str]:
    """The answer to Zoom's ``endpoint.url_validation`` challenge.

    Returns:
        ``{"plainToken": plain_token, "encryptedToken": ...}`` where the encrypted
        token is the hex HMAC-SHA256 of ``plain_token`` keyed with
        ``secret_token``; send it as JSON with HTTP 200.

    Raises:
        WebhookError: ``plain_token`` is not a non-empty string.
    """
    if not isinstance(plain_token, str) or not plain_token:
        raise WebhookError("the url_validation event has no payload.plainToken string")
    digest = hmac.new(_key(secret_token), plain_token.encode(), hashlib.sha256).hexdigest()
    return {"plainToken": plain_token, "encryptedToken": digest}


def parse_event(body: bytes | str) -> WebhookEvent:
    """Decode an event notification's body.

    Raises:
        WebhookError: The body is not a JSON object with an ``event`` string.
    """
    try:
        data = parse_json(_bytes(body))
    except ValueError as exc:
        raise WebhookError(f"the webhook body is not JSON ({exc})") from None
    if not isinstance(data, dict) or not isinstance(data.get("event"), str):
        raise WebhookError("the webhook body is not a JSON object with an 'event' name")
    payload = data.get("payload")
    event_ts = data.get("event_ts")
    return WebhookEvent(
        event=data["event"],
        payload=payload if isinstance(payload, dict) else {},
        event_ts=event_ts if type(event_ts) is int else None,
        raw=data,
    )


async def handle(
    headers: Mapping[str, str],
    body: bytes,
    secret_token: str,
    callback: EventCallback | None,
    *,
    tolerance: float | None = DEFAULT_TOLERANCE,
) -> dict[str, str] | None:
    """Verify, then answer the challenge or hand the event to ``callback``.

    Returns:
        The challenge answer, or ``None`` after an event was handed over.

    Raises:
        WebhookSignatureError: The request did not verify (answer 401).
        WebhookError: A signed body that is not an event (answer 400).
    """
    verify_signature(headers, body, secret_token, tolerance=tolerance)
    event = parse_event(body)
    if event.is_url_validation:
        return url_validation_response(event.payload.get("plainToken"), secret_token)  # type: ignore[arg-type]
    if callback is not None:
        result = callback(event)
        if inspect.isawaitable(result):
            await result
    return None


def aiohttp_handler(
    secret_token: str,
    callback: EventCallback | None = None,
    *,
    tolerance: float | None = DEFAULT_TOLERANCE,
) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    """An aiohttp request handler for Zoom's event notifications.

    It answers 401 to a request that does not verify, 400 to a signed body
    that is not an event, the challenge to ``endpoint.url_validation``, and
    200 once ``callback`` (sync or async) has taken the event. Zoom waits 3
    seconds at most: hand long work to a queue.

    Args:
        secret_token: The app's secret token.
        callback: Receives each verified :class:`WebhookEvent` (not the challenge).
        tolerance: See :func:`verify_signature`.
    """
    from aiohttp import web

    _key(secret_token)

    async def zoom_webhook(request: web.Request) -> web.StreamResponse:
        body = await request.read()
        try:
            answer = await handle(
                request.headers, body, secret_token, callback, tolerance=tolerance
            )
        except WebhookSignatureError as exc:
            return web.json_response({"error": str(exc)}, status=401)
        except WebhookError as exc:
            return web.json_response({"error": str(exc)}, status=400)
        if answer is None:
            return web.Response(status=200)
        return web.json_response(answer)

    return zoom_webhook


def fastapi_dependency(
    secret_token: str,
    callback: EventCallback | None = None,
    *,
    tolerance: float | None = DEFAULT_TOLERANCE,
) -> Callable[..., Awaitable[dict[str, str]]]:
    """A FastAPI dependency for Zoom's event notifications; the route returns its value::

        zoom_events = fastapi_dependency(secret_token, on_event)

        @app.post("/zoom/events")
        async def events(answer: dict = Depends(zoom_events)) -> dict:
            return answer

    It raises ``HTTPException(401)`` for a request that does not verify and
    ``HTTPException(400)`` for a signed body that is not an event; it returns
    the challenge answer for ``endpoint.url_validation``, else ``{}`` once
    ``callback`` has taken the event.
    """
    from fastapi import HTTPException, Request

    _key(secret_token)

    async def zoom_webhook(request: Request) -> dict[str, str]:
        body = await request.body()
        try:
            answer = await handle(
                request.headers, body, secret_token, callback, tolerance=tolerance
            )
        except WebhookSignatureError as exc:
            raise HTTPException(status_code=401, detail=str(exc)) from None
        except WebhookError as exc:
            raise HTTPException(status_code=400, detail=str(exc)) from None
        return answer or {}

    # FastAPI reads the parameter's type to inject the request; give it the
    # class itself (this module's annotations are strings).
    zoom_webhook.__annotations__ = {"request": Request, "return": dict}
    return zoom_webhook


def event_body(event: str, payload: Mapping[str, Any], *, event_ts: int | None = None) -> bytes:
    """A notification body as Zoom lays it out (``event``, ``payload``, ``event_ts``)."""
    stamp = int(time.time() * 1000) if event_ts is None else event_ts
    return json.dumps({"event": event, "payload": dict(payload), "event_ts": stamp}).encode()
