"""zoom_s2s.webhooks: Zoom's signature scheme, the URL challenge, the aiohttp and FastAPI handlers.

The scheme is checked against HMACs computed here with the hmac module, against
an independent implementation's test vector, and end to end with the fake Zoom
sending signed events to real servers on loopback.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio
from aiohttp import web

from zoom_s2s import webhooks
from zoom_s2s.errors import WebhookError, WebhookSignatureError, ZoomS2SError
from zoom_s2s.testing import FakeZoom
from zoom_s2s.webhooks import (
    WebhookEvent,
    aiohttp_handler,
    fastapi_dependency,
    url_validation_response,
    verify_signature,
)

SECRET = "wh-secret-Tk9bXq2"
NOW = 1_658_940_994
BODY = b'{"event":"meeting.started","payload":{"account_id":"a1","object":{"id":"85"}},"event_ts":1658940994000}'


def zoom_signature(secret: str, timestamp: int | str, body: bytes) -> str:
    """Computed here, independently: v0= hex HMAC-SHA256(secret, "v0:{ts}:{body}")."""
    message = f"v0:{timestamp}:".encode() + body
    return "v0=" + hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def headers(timestamp: int = NOW, body: bytes = BODY, secret: str = SECRET) -> dict[str, str]:
    return {
        "x-zm-request-timestamp": str(timestamp),
        "x-zm-signature": zoom_signature(secret, timestamp, body),
    }


def test_the_signature_is_zooms_scheme() -> None:
    assert webhooks.signature(SECRET, NOW, BODY) == zoom_signature(SECRET, NOW, BODY)
    assert webhooks.signed_headers(SECRET, BODY, timestamp=NOW)["x-zm-signature"] == (
        zoom_signature(SECRET, NOW, BODY)
    )


def test_a_signed_request_verifies_whatever_the_header_case() -> None:
    verify_signature(headers(), BODY, SECRET, now=NOW + 10)
    shouting = {k.upper(): v for k, v in headers().items()}
    verify_signature(shouting, BODY.decode(), SECRET, now=NOW)


@pytest.mark.parametrize(
    ("sent", "body", "match"),
    [
        ({}, BODY, "no x-zm-signature header"),
        ({"x-zm-signature": "v0=00"}, BODY, "no x-zm-request-timestamp"),
        (headers(), BODY + b" ", "does not match the body"),
        (headers(secret="another-secret"), BODY, "does not match"),
        ({**headers(), "x-zm-signature": "v1=" + "0" * 64}, BODY, "does not match"),
        ({**headers(), "x-zm-request-timestamp": "soon"}, BODY, "not a number"),
        (headers(timestamp=NOW - 301), BODY, "301 s old"),
        (headers(timestamp=NOW + 400), BODY, "in the future"),
    ],
)
def test_what_does_not_verify_is_refused(sent: dict[str, str], body: bytes, match: str) -> None:
    with pytest.raises(WebhookSignatureError, match=match) as info:
        verify_signature(sent, body, SECRET, now=NOW)
    assert isinstance(info.value, ZoomS2SError)
    assert SECRET not in str(info.value)
    assert zoom_signature(SECRET, NOW, body) not in str(info.value)


@pytest.mark.parametrize("stamp", ["\u00b2", "\u0661\u0667\u0660\u0660", "\uff11\uff17"])
def test_a_timestamp_of_non_ascii_digits_is_refused_not_crashed(stamp: str) -> None:
    # str.isdigit() admits "²" (int() then raised ValueError) and other scripts' digits.
    sent = {"x-zm-signature": "v0=" + "0" * 64, "x-zm-request-timestamp": stamp}
    for tolerance in (300.0, None):
        with pytest.raises(WebhookSignatureError, match="not a number"):
            verify_signature(sent, BODY, SECRET, tolerance=tolerance, now=NOW)


def test_the_tolerance_can_be_set_or_turned_off() -> None:
    old = headers(timestamp=NOW - 3600)
    verify_signature(old, BODY, SECRET, tolerance=None, now=NOW)
    verify_signature(old, BODY, SECRET, tolerance=4000, now=NOW)
    with pytest.raises(WebhookSignatureError):
        verify_signature(old, BODY, SECRET, tolerance=60, now=NOW)


def test_an_empty_secret_is_refused() -> None:
    with pytest.raises(WebhookSignatureError, match="secret token is empty"):
        verify_signature(headers(), BODY, "", now=NOW)


def test_the_url_challenge_answer_is_hex_hmac_of_the_plain_token() -> None:
    plain = "qgg8vlvZRS6UYooatFL8Aw"  # the plainToken of Zoom's documented example
    answer = url_validation_response(plain, SECRET)
    expected = hmac.new(SECRET.encode(), plain.encode(), hashlib.sha256).hexdigest()
    assert answer == {"plainToken": plain, "encryptedToken": expected}
    # Zoom's documented example does not publish its secret; elastic/beats' test
    # of its Zoom CRC handler pairs that plainToken with the secret "secretValueTest"
    # (x-pack/filebeat/input/http_endpoint/handler_test.go).
    assert url_validation_response(plain, "secretValueTest")["encryptedToken"] == (
        "70c1f2e2e6ca2d39297490d1f9142c7d701415ea8e6151f6562a08fa657a40ff"
    )
    with pytest.raises(WebhookError, match="plainToken"):
        url_validation_response("", SECRET)


def test_parse_event() -> None:
    event = webhooks.parse_event(BODY)
    assert (event.event, event.event_ts, event.payload["account_id"]) == (
        "meeting.started",
        1658940994000,
        "a1",
    )
    assert not event.is_url_validation
    for bad in (b"[]", b"{not json", b'{"payload": {}}', b'{"event": 3}'):
        with pytest.raises(WebhookError):
            webhooks.parse_event(bad)


# -- the ready-made handlers, driven by the fake Zoom --------------------------------------


@pytest_asyncio.fixture
async def endpoint() -> AsyncIterator[tuple[str, list[WebhookEvent]]]:
    received: list[WebhookEvent] = []

    async def on_event(event: WebhookEvent) -> None:
        received.append(event)

    app = web.Application()
    app.router.add_post("/zoom/events", aiohttp_handler(SECRET, on_event))
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield f"http://127.0.0.1:{port}/zoom/events", received
    finally:
        await runner.cleanup()


async def test_the_aiohttp_handler_takes_signed_events_and_answers_the_challenge(
    endpoint: tuple[str, list[WebhookEvent]],
) -> None:
    url, received = endpoint
    async with FakeZoom(webhook_secret_token=SECRET) as zoom:
        status, _ = await zoom.send_webhook(url, "meeting.started", {"object": {"id": "85"}})
        assert status == 200
        assert await zoom.validate_endpoint(url)
        # Signed with another secret, or stale: refused, never handed over.
        status, body = await zoom.send_webhook(url, "meeting.ended", secret_token="wrong")
        assert status == 401
        assert b"does not match" in body
        status, _ = await zoom.send_webhook(url, "meeting.ended", timestamp=1)
        assert status == 401
    assert [(e.event, dict(e.payload)) for e in received] == [
        ("meeting.started", {"object": {"id": "85"}})
    ]


async def test_an_unsigned_challenge_is_not_answered(
    endpoint: tuple[str, list[WebhookEvent]],
) -> None:
    """Answering it would sign any body: plainToken = "v0:{ts}:{body}" is a valid signature."""
    import aiohttp

    url, received = endpoint
    forged = b'{"event": "meeting.deleted", "payload": {}}'
    plain = f"v0:{NOW}:".encode() + forged
    challenge = json.dumps(
        {"event": "endpoint.url_validation", "payload": {"plainToken": plain.decode()}}
    )
    async with aiohttp.ClientSession() as session, session.post(url, data=challenge) as response:
        assert response.status == 401
        assert "encryptedToken" not in await response.text()
    assert received == []


async def test_a_signed_body_that_is_not_an_event_is_400(
    endpoint: tuple[str, list[WebhookEvent]],
) -> None:
    import aiohttp

    url, _ = endpoint
    body = b'{"no": "event"}'
    sent = webhooks.signed_headers(SECRET, body)
    async with aiohttp.ClientSession() as session, session.post(url, data=body, headers=sent) as r:
        assert r.status == 400


def test_the_fastapi_dependency_verifies_answers_and_hands_over() -> None:
    from fastapi import Depends, FastAPI
    from fastapi.testclient import TestClient

    received: list[str] = []
    app = FastAPI()
    zoom_events = fastapi_dependency(SECRET, lambda event: received.append(event.event))

    @app.post("/zoom/events")
    async def events(answer: dict[str, Any] = Depends(zoom_events)) -> dict[str, Any]:  # noqa: B008
        return answer

    client = TestClient(app)
    body = webhooks.event_body("recording.completed", {"object": {"id": 1}})
    response = client.post("/zoom/events", content=body, headers=webhooks.signed_headers(SECRET, body))
    assert (response.status_code, response.json()) == (200, {})
    challenge = webhooks.event_body("endpoint.url_validation", {"plainToken": "abc"})
    response = client.post(
        "/zoom/events", content=challenge, headers=webhooks.signed_headers(SECRET, challenge)
    )
    assert response.json() == url_validation_response("abc", SECRET)
    response = client.post("/zoom/events", content=body, headers={"x-zm-signature": "v0=1"})
    assert response.status_code == 401
    assert received == ["recording.completed"]
