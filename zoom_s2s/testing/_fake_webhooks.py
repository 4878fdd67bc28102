"""The fake Zoom's webhooks (``FakeZoom.webhooks``): signed deliveries, Zoom's retries, logs.

As on Zoom (``docs/zoom.rst``, "Webhooks"): every delivery is signed with the
app's secret token and carries an ``x-zm-request-id`` that stays the same for
its retries; a 5xx, a network error or no answer within :attr:`timeout` (3 s)
is retried after :attr:`FakeWebhooks.retry_delays` (+5, +20 and +60 minutes;
tests shorten them), a 4xx never. Every attempt is logged, and
``GET /v2/marketplace/apps/{appId}/webhook_logs`` serves the logs (type 1
all, 2 failed (the default), 3 successful; ``from``/``to`` within 7 days;
``event``, ``retry_num``; pages of ``page_size`` with ``next_page_token``).
Deliveries go to one URL, or to one picked at random per attempt from
several (a load balancer in front of a fleet).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import hmac
import json
import random
import secrets
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

import aiohttp
import attrs
from aiohttp import web

from ..webhooks import REQUEST_ID_HEADER, URL_VALIDATION_EVENT, signed_headers
from ._fake_state import ApiCall, FakeAccount, iso_time

__all__ = ["RETRY_DELAYS", "Delivery", "FakeWebhooks", "event_body"]

RETRY_DELAYS = (300.0, 1200.0, 3600.0)
"""Seconds before Zoom's retries of a failed delivery."""
_WINDOW = 7 * 86_400.0
_STAMP = "%Y-%m-%dT%H:%M:%SZ"


class _Zoom(Protocol):  # what the sender uses of FakeZoom
    clock: Callable[[], float]
    webhook_secret_token: str
    default_account: FakeAccount


def _error(status: int, code: int, message: str) -> web.Response:
    return web.json_response({"code": code, "message": message}, status=status)


def event_body(event: str, payload: Mapping[str, Any], *, event_ts: int | None = None) -> bytes:
    """A notification body as Zoom lays it out (``event``, ``payload``, ``event_ts``)."""
    stamp = int(time.time() * 1000) if event_ts is None else event_ts
    return json.dumps({"event": event, "payload": dict(payload), "event_ts": stamp}).encode()


@attrs.define
class Delivery:
    """One event delivered with its retries.

    Attributes:
        request_id: Its ``x-zm-request-id``.
        body: The body every attempt sent.
        statuses: Each attempt's HTTP status, ``-1`` for a network error or timeout.
    """

    request_id: str
    body: bytes
    statuses: list[int] = attrs.field(factory=list)

    @property
    def delivered(self) -> bool:
        """Whether the last attempt was answered 2xx."""
        return bool(self.statuses) and 200 <= self.statuses[-1] < 300


class FakeWebhooks:
    """The fake's webhook sender and its logs.

    Attributes:
        retry_delays: Seconds before each retry (Zoom: 300, 1200, 3600).
        timeout: Seconds an attempt may take before it counts as failed (Zoom: 3).
        logs: Every attempt, as ``webhook_logs`` items (newest last).
    """

    def __init__(self, zoom: _Zoom) -> None:
        self._zoom = zoom
        self.retry_delays: tuple[float, ...] = RETRY_DELAYS
        self.timeout = 3.0
        self.logs: list[dict[str, Any]] = []
        self._pages: dict[str, tuple[dict[str, Any], int]] = {}

    def body(self, event: str, payload: Mapping[str, Any] | None = None) -> bytes:
        """A body for ``event`` (default payload: the default account's id)."""
        zoom = self._zoom
        return event_body(
            event,
            {"account_id": zoom.default_account.account_id} if payload is None else payload,
            event_ts=int(zoom.clock() * 1000),
        )

    async def send(
        self,
        url: str,
        body: bytes,
        *,
        request_id: str | None = None,
        secret_token: str | None = None,
        timestamp: int | None = None,
        retry_num: int = 0,
        session: aiohttp.ClientSession | None = None,
    ) -> tuple[int, bytes]:
        """POST ``body`` once, signed, and log it: (status, answer); -1 on a network error."""
        zoom = self._zoom
        headers = signed_headers(
            zoom.webhook_secret_token if secret_token is None else secret_token,
            body,
            timestamp=int(zoom.clock()) if timestamp is None else timestamp,
            request_id=request_id,
        )
        headers["User-Agent"] = "Zoom Marketplace/1.0a"
        headers["traceparent"] = f"00-{secrets.token_hex(16)}-{secrets.token_hex(8)}-01"
        status, answer, reason = -1, b"", 0
        own = session is None
        client = aiohttp.ClientSession() if session is None else session
        try:
            timeout = aiohttp.ClientTimeout(total=self.timeout)
            async with client.post(url, data=body, headers=headers, timeout=timeout) as response:
                status, answer = response.status, await response.read()
        except asyncio.TimeoutError:
            reason = 1  # read time out
        except aiohttp.ClientConnectorError:
            reason = 2  # connection refused
        except aiohttp.ClientError:
            reason = 7  # remote error
        finally:
            if own:
                await client.close()
        self._log(url, body, headers[REQUEST_ID_HEADER], retry_num, status, reason, answer)
        return status, answer

    async def deliver(
        self,
        url: str | Sequence[str],
        event: str,
        payload: Mapping[str, Any] | None = None,
        *,
        body: bytes | None = None,
        request_id: str | None = None,
        session: aiohttp.ClientSession | None = None,
    ) -> Delivery:
        """Deliver an event as Zoom does: retried after a 5xx or network error, never after a 4xx.

        Args:
            url: The endpoint, or several: each attempt goes to one picked at random
                from the sequence as it is then (drop a dead one, as a load balancer does).
            event: The event name.
            payload: Its payload (default: the default account's id).
            body: The exact body instead (``event`` and ``payload`` then unused).
            request_id: ``x-zm-request-id`` (default: a new one).
            session: Send through this session (default: one per attempt).
        """
        urls = [url] if isinstance(url, str) else url  # read at each attempt: a load balancer
        delivery = Delivery(request_id or secrets.token_hex(16), body or self.body(event, payload))
        for retry_num in range(len(self.retry_delays) + 1):
            if retry_num:
                await asyncio.sleep(self.retry_delays[retry_num - 1])
            status, _ = await self.send(
                random.choice(urls), delivery.body, request_id=delivery.request_id,
                retry_num=retry_num, session=session,
            )
            delivery.statuses.append(status)
            if 200 <= status < 500:
                break
        return delivery

    async def validate_endpoint(self, url: str) -> bool:
        """Send Zoom's ``endpoint.url_validation`` challenge; whether the answer is right."""
        plain = secrets.token_urlsafe(16)
        body = self.body(URL_VALIDATION_EVENT, {"plainToken": plain})
        status, answer = await self.send(url, body)
        if status not in (200, 204):
            return False
        try:
            decoded = json.loads(answer)
        except ValueError:
            return False
        key = self._zoom.webhook_secret_token.encode()
        expected = hmac.new(key, plain.encode(), hashlib.sha256).hexdigest()
        return bool(decoded == {"plainToken": plain, "encryptedToken": expected})

    def _log(
        self, url: str, body: bytes, request_id: str, retry_num: int, status: int, reason: int,
        answer: bytes,
    ) -> None:
        now = self._zoom.clock()
        try:
            event = json.loads(body).get("event", "")
        except (ValueError, AttributeError):
            event = ""
        self.logs.append({
            "event": event,
            "status": status,
            **({"failed_reason_type": reason} if reason else {}),
            "user_id": "",
            "endpoint": url,
            "subscription_id": "fake-subscription",
            "request_headers": "N/A",
            "request_body": body.decode("utf-8", "replace"),
            "response_headers": "N/A",
            "response_body": answer[:1000].decode("utf-8", "replace"),
            "date_time": iso_time(now),
            "trace_id": "WEB_" + secrets.token_hex(16),
            "request_id": request_id,
            "retry_num": retry_num,
            "_at": now,
        })

    async def logs_page(self, call: ApiCall) -> web.StreamResponse:
        """``GET /v2/marketplace/apps/{app_id}/webhook_logs``."""
        query = call.request.query
        token = query.get("next_page_token", "")
        if token:
            if token not in self._pages:
                return _error(400, 300, "The next page token is invalid or expired.")
            selection, offset = self._pages.pop(token)
        else:
            now = self._zoom.clock()
            try:
                start, end = (
                    dt.datetime.strptime(query[name], _STAMP).replace(tzinfo=dt.timezone.utc)
                    .timestamp() if name in query else default
                    for name, default in (("from", now - 86_400.0), ("to", now))
                )
                kind = int(query.get("type", "2"))
                retry = int(query["retry_num"]) if "retry_num" in query else None
            except ValueError:
                return _error(
                    404, 1503, "The dates must follow the format: yyyy-MM-dd'T'HH:mm:ss'Z'."
                )
            if end < start:
                return _error(404, 1501, "The 'to' date must be after the 'from' date.")
            if start < now - _WINDOW - 60:
                return _error(404, 1502, "The date range must be within the last seven days.")
            selection = {"start": start, "end": end + 1, "type": kind, "retry": retry,
                         "event": query.get("event")}
            offset = 0
        page_size = max(1, min(300, int(query.get("page_size", "30") or 30)))
        matching = [log for log in self.logs if _selected(log, selection)]
        page = matching[offset:offset + page_size]
        following = ""
        if offset + page_size < len(matching):
            following = secrets.token_urlsafe(24)
            self._pages[following] = (selection, offset + page_size)
        return web.json_response({
            "next_page_token": following,
            "page_size": page_size,
            "webhook_logs": [{k: v for k, v in log.items() if k != "_at"} for log in page],
        })


def _selected(log: Mapping[str, Any], selection: Mapping[str, Any]) -> bool:
    ok = 200 <= log["status"] < 300
    return (
        selection["start"] <= log["_at"] <= selection["end"]
        and (selection["type"] == 1 or (selection["type"] == 3) == ok)
        and selection["retry"] in (None, log["retry_num"])
        and selection["event"] in (None, log["event"])
    )
