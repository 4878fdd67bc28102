"""Zoom webhooks: verify each delivery, answer the URL challenge, handle each event once per fleet.

:class:`Receiver` verifies Zoom's signature (several secret tokens, for
rotation), answers ``endpoint.url_validation``, and claims each delivery in
the store shared by the fleet, so a delivery and Zoom's retries of it run
the handler once; :meth:`Receiver.replay_failed` recovers what Zoom gave up
on. The aiohttp face is :func:`aiohttp_handler`, the FastAPI/Starlette face
``zoom_s2s.fastapi``, the blocking one :meth:`Receiver.respond_blocking`.
``docs/webhooks.rst`` has the design and the recipes.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import hashlib
import hmac
import importlib.util
import inspect
import logging
import math
import os
import secrets
import urllib.parse
from collections.abc import (
    AsyncIterable,
    AsyncIterator,
    Awaitable,
    Callable,
    Mapping,
    Sequence,
)
from contextlib import AbstractContextManager
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal, Protocol, TypeVar

import attrs

from . import _clock
from ._http import parse_json
from ._loop_thread import LoopThread
from .errors import ConfigurationError, StoreError, WebhookError, WebhookSignatureError
from .stores.claims import ClaimAnswer, WebhookClaims, claims_of
from .stores.memory import MemoryClaims

if TYPE_CHECKING:
    from aiohttp import web

__all__ = [
    "REQUEST_ID_HEADER",
    "SIGNATURE_HEADER",
    "TIMESTAMP_HEADER",
    "URL_VALIDATION_EVENT",
    "Claim",
    "Receiver",
    "Replayed",
    "Reply",
    "WebhookEvent",
    "aiohttp_handler",
    "object_key",
    "parse_event",
    "signature",
    "signed_headers",
    "url_validation_response",
    "verify_signature",
]

logger = logging.getLogger("zoom_s2s.webhooks")

SIGNATURE_HEADER = "x-zm-signature"
TIMESTAMP_HEADER = "x-zm-request-timestamp"
REQUEST_ID_HEADER = "x-zm-request-id"
URL_VALIDATION_EVENT = "endpoint.url_validation"
DEFAULT_TOLERANCE = 300.0
"""Seconds a request's timestamp may be away from now (replay protection)."""
DEFAULT_MAX_BODY = 1 << 20
"""Bytes a notification may have (Zoom's are a few KiB)."""
RETRY_WINDOW = 2 * 3600.0
"""Seconds a handled delivery is remembered: Zoom retries at +5, +20 and +60 minutes."""

EventHandler = Callable[["WebhookEvent"], "Awaitable[object] | object"]
"""What handles each claimed event (sync or async)."""

_T = TypeVar("_T")


@attrs.frozen(repr=False)
class WebhookEvent:
    """One verified event notification.

    Attributes:
        event: The event name, e.g. ``"meeting.started"``.
        payload: The event's ``payload`` object (``{}`` if it had none).
        event_ts: Zoom's ``event_ts`` (milliseconds since the epoch), if sent.
        raw: The whole decoded body.
        request_id: ``x-zm-request-id``: the same for every retry of a delivery.
        account_id: The payload's ``account_id``, if sent.
        traceparent: The W3C ``traceparent`` header Zoom sent, if any.
        out_of_order: Older than the newest event claimed for its object
            (with ``Receiver(order_key=..., stale="report")``).
    """

    event: str
    payload: Mapping[str, Any]
    event_ts: int | None
    raw: Mapping[str, Any]
    request_id: str | None = None
    account_id: str | None = None
    traceparent: str | None = None
    out_of_order: bool = False

    @property
    def is_url_validation(self) -> bool:
        """Whether this is Zoom's ``endpoint.url_validation`` challenge."""
        return self.event == URL_VALIDATION_EVENT

    def __repr__(self) -> str:
        return (
            f"WebhookEvent(event={self.event!r}, event_ts={self.event_ts!r}, "
            f"request_id={self.request_id!r})"
        )


# -- Zoom's signature scheme ---------------------------------------------------------


def _key(secret_token: str) -> bytes:
    if not isinstance(secret_token, str) or not secret_token:
        raise WebhookSignatureError(
            "the webhook secret token is empty; pass the Secret Token from the app's "
            "Features page in the Zoom App Marketplace"
        )
    return secret_token.encode()


def _bytes(body: bytes | str) -> bytes:
    return body.encode() if isinstance(body, str) else bytes(body)


def _tolerance(tolerance: float | None) -> float | None:
    if tolerance is None:
        return None
    if isinstance(tolerance, bool) or not isinstance(tolerance, (int, float)) or not (
        math.isfinite(tolerance) and tolerance >= 0
    ):
        raise ConfigurationError(
            f"tolerance={tolerance!r} must be a finite number of seconds >= 0; "
            "None is the one way to turn replay protection off"
        )
    return float(tolerance)


def signature(secret_token: str, timestamp: str | int, body: bytes | str) -> str:
    """Zoom's ``x-zm-signature`` for ``body`` sent at ``timestamp``: ``"v0=" + hex HMAC``."""
    message = b"v0:" + str(timestamp).encode() + b":" + _bytes(body)
    return "v0=" + hmac.new(_key(secret_token), message, hashlib.sha256).hexdigest()


def signed_headers(
    secret_token: str, body: bytes | str, *, timestamp: int | None = None,
    request_id: str | None = None,
) -> dict[str, str]:
    """The headers Zoom would send with ``body`` (for tests of your endpoint).

    Args:
        secret_token: The app's secret token.
        body: The exact bytes to be sent.
        timestamp: Unix seconds; default now.
        request_id: ``x-zm-request-id``; default a new random one.
    """
    stamp = str(int(_clock.wall()) if timestamp is None else timestamp)
    return {
        TIMESTAMP_HEADER: stamp,
        SIGNATURE_HEADER: signature(secret_token, stamp, body),
        REQUEST_ID_HEADER: request_id or secrets.token_hex(16),
        "Content-Type": "application/json",
    }


def _header(headers: Mapping[str, str], name: str) -> str | None:
    value = headers.get(name)
    if value is None:  # a plain dict with other capitalisation
        value = next((v for k, v in headers.items() if k.lower() == name), None)
    return value


def _signed_stamp(
    headers: Mapping[str, str], tolerance: float | None, now: float | None
) -> tuple[str, str]:
    """The signature and timestamp headers, checked without the body."""
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
        skew = (_clock.wall() if now is None else now) - int(stamp)
        if abs(skew) > tolerance:
            when = "old" if skew > 0 else "in the future"
            raise WebhookSignatureError(
                f"the request's timestamp is {abs(skew):.0f} s {when}, beyond the "
                f"{tolerance:g} s tolerance: a replay, or this host's clock is off (check NTP)"
            )
    return sent, stamp


def verify_signature(
    headers: Mapping[str, str],
    body: bytes | str,
    secret_token: str | Sequence[str],
    *,
    tolerance: float | None = DEFAULT_TOLERANCE,
    now: float | None = None,
) -> None:
    """Check that Zoom sent ``body`` recently, signed with ``secret_token`` (or one of several).

    Args:
        headers: The request's headers (any mapping; names are matched
            without regard to case).
        body: The raw request body, exactly as received (not re-serialised JSON).
        secret_token: The app's secret token (Marketplace, the app's Features
            page), or several while a rotation is under way.
        tolerance: Seconds the ``x-zm-request-timestamp`` may differ from
            ``now`` (either way); ``None`` skips the check.
        now: The current Unix time (default: the clock).

    Raises:
        ConfigurationError: ``tolerance`` is not a finite number >= 0 or ``None``.
        WebhookSignatureError: A header is missing or malformed, the timestamp
            is outside the tolerance, or the signature does not match. The
            message never contains the secret or the expected signature.
    """
    tokens = [secret_token] if isinstance(secret_token, str) else secret_token
    keys = [_key(token) for token in tokens]
    if not keys:
        _key("")
    sent, stamp = _signed_stamp(headers, _tolerance(tolerance), now)
    message = b"v0:" + stamp.encode() + b":" + _bytes(body)
    given = sent.strip().encode("utf-8", "replace")
    matches = [
        hmac.compare_digest(
            ("v0=" + hmac.new(key, message, hashlib.sha256).hexdigest()).encode(), given
        )
        for key in keys
    ]
    if not any(matches):
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


def parse_event(body: bytes | str, headers: Mapping[str, str] | None = None) -> WebhookEvent:
    """Decode an event notification's body (and its ``x-zm-request-id`` and ``traceparent``).

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
    payload = payload if isinstance(payload, dict) else {}
    event_ts = data.get("event_ts")
    account_id = payload.get("account_id")
    headers = headers or {}
    return WebhookEvent(
        event=data["event"],
        payload=payload,
        event_ts=event_ts if type(event_ts) is int and event_ts >= 0 else None,
        raw=data,
        request_id=_header(headers, REQUEST_ID_HEADER) or None,
        account_id=account_id if isinstance(account_id, str) else None,
        traceparent=_header(headers, "traceparent") or None,
    )


def object_key(event: WebhookEvent) -> str | None:
    """The object an event is about, for ``Receiver(order_key=...)``: the object's
    ``uuid`` (or ``id``) and, for participant events, the participant's id."""
    obj = event.payload.get("object")
    if not isinstance(obj, Mapping):
        return None
    name = obj.get("uuid") or obj.get("id")
    if name is None:
        return None
    participant = obj.get("participant")
    if isinstance(participant, Mapping):
        who = next(
            (participant[k] for k in ("participant_uuid", "user_id", "id", "email")
             if participant.get(k)),
            None,
        )
        return f"{name}/{who}"
    return str(name)


def _hashed(kind: str, value: str) -> str:
    return f"{kind}.{hashlib.sha256(value.encode('utf-8', 'surrogatepass')).hexdigest()[:40]}"


# -- answers and claims ---------------------------------------------------------------


@attrs.frozen
class Reply:
    """What a face answers Zoom: an HTTP status and a JSON body (``None``: empty)."""

    status: int
    body: Mapping[str, str] | None = None


_REPLIES: dict[str, Reply] = {
    "claimed": Reply(200),
    "done": Reply(200),
    "dropped": Reply(200),
    # Zoom retries after a 5xx: by then the other process has finished or lost its lease.
    "busy": Reply(503, {"error": "this delivery is being handled by another process"}),
}


class _Tracing:
    """OpenTelemetry's span per claimed event when ``opentelemetry`` is installed, else nothing."""

    span: Callable[[str, str | None, Mapping[str, str]], AbstractContextManager[object]] | None
    span = None
    checked = False

    @classmethod
    def of(cls, event: WebhookEvent) -> AbstractContextManager[object]:
        if not cls.checked:
            cls.checked = True
            if importlib.util.find_spec("opentelemetry") is not None:
                from .otel import webhook_span

                cls.span = webhook_span
        if cls.span is None:
            return contextlib.nullcontext()
        attributes = {"zoom_s2s.webhook.event": event.event,
                      "zoom_s2s.webhook.request_id": event.request_id or ""}
        return cls.span(event.event, event.traceparent, attributes)


class Claim:
    """One delivery's claim: ``async with`` yields the event to handle, or ``None``.

    Made by :meth:`Receiver.claim`. After the block, :attr:`outcome` says what
    happened and :attr:`reply` what to answer Zoom.

    Attributes:
        event: The verified event.
        outcome: ``"claimed"`` (this process handled it), ``"done"`` (handled
            elsewhere), ``"busy"`` (being handled elsewhere), ``"dropped"``
            (older than its object's newest event), ``"challenge"`` (the URL
            validation, answered by :attr:`reply`), or ``None`` before the block.
    """

    def __init__(
        self, receiver: Receiver, event: WebhookEvent, key: str, challenge: Reply | None = None
    ) -> None:
        self.event = event
        self.outcome: str | None = None
        self._receiver = receiver
        self._challenge = challenge
        self._key = key
        self._owner = secrets.token_hex(12)
        self._renewer: asyncio.Task[None] | None = None
        self._span = contextlib.ExitStack()

    @property
    def reply(self) -> Reply:
        """The answer for Zoom once the block is done."""
        if self._challenge is not None:
            return self._challenge
        return _REPLIES.get(self.outcome or "busy", _REPLIES["busy"])

    async def __aenter__(self) -> WebhookEvent | None:
        if self._challenge is not None:
            self.outcome = "challenge"
            return None
        receiver = self._receiver
        order = None if self.event.event_ts is None else receiver._order_of(self.event)
        answer: ClaimAnswer = await receiver.claims.claim(
            self._key, self._owner, lease=receiver.lease, keep=receiver.keep,
            order=order, event_ts=self.event.event_ts or 0,
            drop_stale=receiver.stale == "drop",
        )
        self.outcome = answer.outcome
        if answer.outcome != "claimed":
            if answer.outcome == "dropped":
                logger.info("dropped %r: older than its object's newest event", self.event)
            return None
        self._renewer = asyncio.get_running_loop().create_task(self._renew())
        self._span.enter_context(_Tracing.of(self.event))
        return attrs.evolve(self.event, out_of_order=True) if answer.stale else self.event

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self.outcome != "claimed":
            return
        self._span.__exit__(kind, exc, tb)
        if self._renewer is not None:
            self._renewer.cancel()
        receiver = self._receiver
        try:
            if exc is None:
                kept = await receiver.claims.finish(self._key, self._owner, receiver.keep)
            else:
                kept = await receiver.claims.release(self._key, self._owner)
        except StoreError as error:
            # Handled or not, the lease lapses: a retry after it finds the claim free.
            logger.warning("could not %s the claim of %r: %s",
                           "finish" if exc is None else "release", self.event, error)
            return
        if not kept:
            logger.warning("the claim of %r lapsed while it was handled (lease %g s): "
                           "another process may have handled it too", self.event, receiver.lease)

    async def _renew(self) -> None:
        receiver = self._receiver
        while True:
            await _clock.sleep(receiver.lease / 3)
            try:
                if not await receiver.claims.extend(self._key, self._owner, receiver.lease):
                    return
            except StoreError as error:
                logger.warning("could not extend the claim of %r: %s", self.event, error)


class _Paginator(Protocol):  # what replay_failed needs of ZoomClient
    def paginate(
        self, path: str, *, params: Mapping[str, str | int | float] | None = ...,
        key: str | None = ..., page_size: int = ...,
    ) -> AsyncIterator[Any]: ...


@attrs.frozen
class Replayed:
    """What :meth:`Receiver.replay_failed` did.

    Attributes:
        handled: Events this call handled.
        skipped: Deliveries already handled (or being handled) by the fleet, or dropped as stale.
        failed: Events whose handler raised (their claims were released).
    """

    handled: int = 0
    skipped: int = 0
    failed: int = 0


class Receiver:
    """Receives Zoom's event notifications for a fleet: each delivery handled once.

    Args:
        secret_tokens: The app's secret token, or several while a rotation is
            under way (any of them verifies; the first answers the URL challenge).
        store: The store the fleet shares (its ``webhook_claims``); ``None``:
            claims in this process only.
        tolerance: Seconds a request's timestamp may be off (replay
            protection); ``None`` turns the check off.
        max_body: Largest body accepted, in bytes (larger: 413).
        lease: Seconds a claim lasts unless renewed; it is renewed while the
            handler runs, so a process that dies loses it within this time.
        keep: Seconds a handled delivery is remembered (at least Zoom's retry window).
        order_key: Names the object of an event (e.g. :func:`object_key`) to
            guard the order of its events; ``None``: no guard.
        stale: An event older than the newest one claimed for its object is
            ``"drop"``-ped (answered 200, not handled) or handled with
            ``out_of_order=True`` (``"report"``).

    Raises:
        ConfigurationError: An argument is out of range, or ``store`` shares no claims.
        WebhookSignatureError: A secret token is empty.
    """

    def __init__(
        self,
        secret_tokens: str | Sequence[str],
        *,
        store: object | None = None,
        tolerance: float | None = DEFAULT_TOLERANCE,
        max_body: int = DEFAULT_MAX_BODY,
        lease: float = 30.0,
        keep: float = RETRY_WINDOW,
        order_key: Callable[[WebhookEvent], str | None] | None = None,
        stale: Literal["drop", "report"] = "drop",
    ) -> None:
        tokens = [secret_tokens] if isinstance(secret_tokens, str) else list(secret_tokens)
        for token in tokens or [""]:
            _key(token)
        self._tokens = tokens
        self.tolerance = _tolerance(tolerance)
        if isinstance(max_body, bool) or not isinstance(max_body, int) or max_body < 1:
            raise ConfigurationError(f"max_body={max_body!r} must be a positive number of bytes")
        self.max_body = max_body
        for name, value in (("lease", lease), ("keep", keep)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not (
                math.isfinite(value) and value > 0
            ):
                raise ConfigurationError(f"{name}={value!r} must be a positive number of seconds")
        self.lease, self.keep = float(lease), float(keep)
        if stale not in ("drop", "report"):
            raise ConfigurationError(f"stale={stale!r} must be 'drop' or 'report'")
        self.order_key, self.stale = order_key, stale
        claims = MemoryClaims() if store is None else claims_of(store)
        if claims is None:
            raise ConfigurationError(
                f"{store!r} shares no webhook claims (no webhook_claims); use a memory, file, "
                "Redis or PostgreSQL store"
            )
        self.claims: WebhookClaims = claims
        self._loop: LoopThread | None = None

    def __repr__(self) -> str:
        return f"Receiver(claims={type(self.claims).__name__}, tokens={len(self._tokens)})"

    def _order_of(self, event: WebhookEvent) -> str | None:
        name = None if self.order_key is None else self.order_key(event)
        return None if name is None else _hashed("o", name)

    def _check_headers(self, headers: Mapping[str, str]) -> Reply | None:
        """Judge a request by its headers, before its body is read: an early answer, or ``None``."""
        try:
            _signed_stamp(headers, self.tolerance, None)
        except WebhookSignatureError as exc:
            return Reply(401, {"error": str(exc)})
        length = _header(headers, "content-length")
        if length is not None and length.strip().isdigit() and int(length) > self.max_body:
            return self._too_large()
        return None

    def _too_large(self) -> Reply:
        return Reply(413, {"error": f"the body is larger than max_body={self.max_body} bytes"})

    def verify(self, headers: Mapping[str, str], body: bytes | str) -> WebhookEvent:
        """The verified event of a request.

        Raises:
            WebhookSignatureError: It did not verify (answer 401).
            WebhookError: Too large, or a signed body that is not an event (answer 400).
        """
        if len(body) > self.max_body:
            raise WebhookError(f"the body is larger than max_body={self.max_body} bytes")
        verify_signature(headers, body, self._tokens, tolerance=self.tolerance)
        return parse_event(body, headers)

    def claim(self, headers: Mapping[str, str], body: bytes | str) -> Claim:
        """Verify a request and return its :class:`Claim`::

            claim = receiver.claim(request.headers, body)
            async with claim as event:
                if event is not None:
                    await handle(event)
            return claim.reply

        The block runs for one delivery of an event per fleet; if it raises,
        the claim is released so Zoom's retry is handled.

        Raises:
            WebhookSignatureError: It did not verify (answer 401).
            WebhookError: A signed body that is not an event (answer 400).
        """
        event = self.verify(headers, body)
        challenge = None
        if event.is_url_validation:
            plain = event.payload.get("plainToken")
            challenge = Reply(200, url_validation_response(plain, self._tokens[0]))  # type: ignore[arg-type]
        return Claim(self, event, self._key_of(event, body), challenge)

    @staticmethod
    def _key_of(event: WebhookEvent, body: bytes | str) -> str:
        """The claim key: the delivery's ``x-zm-request-id`` (or, without one, its body)."""
        if event.request_id:
            return _hashed("r", event.request_id)
        return _hashed("b", hashlib.sha256(_bytes(body)).hexdigest())

    async def respond(
        self,
        headers: Mapping[str, str],
        body: bytes | str | AsyncIterable[bytes],
        handler: EventHandler,
    ) -> Reply:
        """Verify, claim, run ``handler`` on a claimed event, and say what to answer Zoom.

        401 for a request that does not verify, 400 for a body that is not an
        event, 413 for a body over ``max_body``, the challenge's answer, 200
        when the event was handled here or elsewhere, 500 when ``handler``
        raised (Zoom retries), 503 when another process is handling it or
        the store failed (Zoom retries).

        Args:
            headers: The request's headers.
            body: The raw body, or its chunks as they arrive: then the headers
                are checked before the body is read, and the body is read only
                up to ``max_body``.
            handler: Runs on the claimed event (sync or async).
        """
        if not isinstance(body, (bytes, str)):
            early = self._check_headers(headers)
            if early is not None:
                return early
            received = bytearray()
            async for chunk in body:
                received += chunk
                if len(received) > self.max_body:
                    return self._too_large()
            body = bytes(received)
        claim = self._open(headers, body)
        if isinstance(claim, Reply):
            return claim
        return await self._run(claim, handler)

    def _open(self, headers: Mapping[str, str], body: bytes | str) -> Claim | Reply:
        if len(body) > self.max_body:
            return self._too_large()
        try:
            return self.claim(headers, body)
        except WebhookSignatureError as exc:
            return Reply(401, {"error": str(exc)})
        except WebhookError as exc:
            return Reply(400, {"error": str(exc)})

    @staticmethod
    async def _enter(claim: Claim) -> WebhookEvent | Reply | None:
        try:
            return await claim.__aenter__()
        except StoreError as exc:
            logger.warning("could not claim %r: %s", claim.event, exc)
            return Reply(503, {"error": "the store shared by the fleet failed; retry later"})

    @staticmethod
    async def _exit(claim: Claim, exc: BaseException | None) -> Reply:
        await claim.__aexit__(None if exc is None else type(exc), exc, None)
        if exc is None:
            return claim.reply
        logger.error("the handler of %r failed; Zoom will retry it", claim.event, exc_info=exc)
        return Reply(500, {"error": "the handler failed"})

    async def _run(self, claim: Claim, handler: EventHandler) -> Reply:
        event = await self._enter(claim)
        if isinstance(event, Reply):
            return event
        try:
            if event is not None:
                result = handler(event)
                if inspect.isawaitable(result):
                    await result
        except Exception as exc:
            return await self._exit(claim, exc)
        except BaseException as exc:
            await self._exit(claim, exc)
            raise
        return await self._exit(claim, None)

    def respond_blocking(
        self,
        headers: Mapping[str, str],
        body: bytes | str,
        handler: Callable[[WebhookEvent], object],
        *,
        timeout: float = 30.0,
    ) -> Reply:
        """:meth:`respond` for synchronous views (Flask, Django); ``handler`` runs on this thread.

        The claims run on a private event-loop thread per process (started on
        first use, and again in a forked child).
        """
        claim = self._open(headers, body)
        if isinstance(claim, Reply):
            return claim
        if self._loop is None or self._loop.pid != os.getpid():
            self._loop = LoopThread("zoom-s2s-webhooks")
        loop = self._loop
        try:
            event = loop.run(lambda: self._enter(claim), timeout)
        except TimeoutError:
            return Reply(503, {"error": f"claiming took over {timeout:g} s; retry later"})
        if isinstance(event, Reply):
            return event
        failure: BaseException | None = None
        try:
            if event is not None:
                handler(event)
        except BaseException as exc:
            failure = exc
        try:
            reply = loop.run(lambda: self._exit(claim, failure), timeout)
        except TimeoutError:  # the claim lapses with its lease
            reply = Reply(200) if failure is None else Reply(500, {"error": "the handler failed"})
        if failure is not None and not isinstance(failure, Exception):
            raise failure
        return reply

    async def replay_failed(
        self,
        client: _Paginator,
        app_id: str,
        handler: EventHandler,
        *,
        since: datetime.datetime | None = None,
    ) -> Replayed:
        """Handle the events Zoom failed to deliver, through the same claims as live deliveries.

        Walks ``GET /marketplace/apps/{app_id}/webhook_logs`` (failed
        deliveries, at most the last 7 days: Zoom's limit) and runs ``handler``
        on each event the fleet has not handled (once per ``request_id``).
        The ``client`` needs the ``marketplace_app:read:admin`` scope.

        Args:
            client: A :class:`~zoom_s2s.ZoomClient` (anything with its ``paginate``).
            app_id: The app's id (Marketplace, the app's page).
            handler: Runs on each claimed event (sync or async).
            since: Start of the window (an aware datetime); default 7 days ago.
        """
        now = datetime.datetime.now(datetime.timezone.utc)
        earliest = now - datetime.timedelta(days=7) + datetime.timedelta(minutes=1)
        start = earliest if since is None else max(since, earliest)
        stamp = "%Y-%m-%dT%H:%M:%SZ"
        params: dict[str, str | int | float] = {
            "type": 2, "from": start.strftime(stamp), "to": now.strftime(stamp)
        }
        path = f"/marketplace/apps/{urllib.parse.quote(app_id, safe='')}/webhook_logs"
        seen: set[str] = set()
        handled = skipped = failed = 0
        async for log in client.paginate(path, params=params, key="webhook_logs"):
            request_id, body = log.get("request_id"), log.get("request_body")
            if not isinstance(request_id, str) or not isinstance(body, str) or request_id in seen:
                continue
            seen.add(request_id)
            try:
                event = parse_event(body, {REQUEST_ID_HEADER: request_id})
            except WebhookError as exc:
                logger.warning("skipping webhook log %s: %s", request_id, exc)
                continue
            if event.is_url_validation:
                continue
            claim = Claim(self, event, self._key_of(event, body))
            reply = await self._run(claim, handler)
            if claim.outcome == "claimed" and reply.status == 200:
                handled += 1
            elif reply.status == 500:
                failed += 1
            else:
                skipped += 1
        return Replayed(handled, skipped, failed)


def aiohttp_handler(
    receiver: Receiver, handler: EventHandler
) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    """An aiohttp request handler for Zoom's event notifications (see :meth:`Receiver.respond`)::

        app.router.add_post("/zoom/events", aiohttp_handler(receiver, on_event))

    Headers are checked before the body is read, and the body is read up to
    ``max_body``. Zoom waits 3 seconds at most: hand long work to a queue.
    """
    from aiohttp import web

    async def zoom_webhook(request: web.Request) -> web.StreamResponse:
        reply = await receiver.respond(
            request.headers, request.content.iter_chunked(1 << 16), handler
        )
        if reply.body is None:
            return web.Response(status=reply.status)
        return web.json_response(dict(reply.body), status=reply.status)

    return zoom_webhook
