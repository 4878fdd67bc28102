"""zoom_s2s.webhooks: Zoom's signature scheme, the URL challenge, the Receiver's claims, and
its faces (aiohttp, FastAPI/Starlette, blocking) driven by the fake Zoom on loopback.

The scheme is checked against HMACs computed here with the hmac module and against an
independent implementation's test vector. The fleet-wide behaviour (several processes, real
Redis and PostgreSQL) is in tests/system/test_webhook_fleet.py.
"""

from __future__ import annotations

import datetime
import hashlib
import hmac
import json
import threading
import wsgiref.simple_server
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
from aiohttp import web

from zoom_s2s import webhooks
from zoom_s2s.errors import ConfigurationError, WebhookError, WebhookSignatureError, ZoomS2SError
from zoom_s2s.fastapi import webhook_endpoint
from zoom_s2s.stores import MemoryTokenStore
from zoom_s2s.testing import FakeClock, FakeZoom
from zoom_s2s.testing._fake_webhooks import event_body
from zoom_s2s.webhooks import (
    Receiver,
    Reply,
    WebhookEvent,
    aiohttp_handler,
    object_key,
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


def signed(event: str, payload: dict[str, Any] | None = None, *, request_id: str = "req-1",
           event_ts: int | None = None) -> tuple[dict[str, str], bytes]:
    body = event_body(event, payload or {}, event_ts=event_ts)
    return webhooks.signed_headers(SECRET, body, request_id=request_id), body


# -- the scheme ----------------------------------------------------------------------------


def test_the_signature_is_zooms_scheme() -> None:
    assert webhooks.signature(SECRET, NOW, BODY) == zoom_signature(SECRET, NOW, BODY)
    assert webhooks.signed_headers(SECRET, BODY, timestamp=NOW)["x-zm-signature"] == (
        zoom_signature(SECRET, NOW, BODY)
    )


def test_a_signed_request_verifies_whatever_the_header_case() -> None:
    verify_signature(headers(), BODY, SECRET, now=NOW + 10)
    shouting = {k.upper(): v for k, v in headers().items()}
    verify_signature(shouting, BODY.decode(), SECRET, now=NOW)


def test_any_of_several_secret_tokens_verifies_during_a_rotation() -> None:
    verify_signature(headers(secret="old-token"), BODY, ["new-token", "old-token"], now=NOW)
    verify_signature(headers(secret="new-token"), BODY, ["new-token", "old-token"], now=NOW)
    with pytest.raises(WebhookSignatureError, match="does not match"):
        verify_signature(headers(secret="third"), BODY, ["new-token", "old-token"], now=NOW)
    with pytest.raises(WebhookSignatureError, match="secret token is empty"):
        verify_signature(headers(), BODY, [], now=NOW)


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
    sent = {"x-zm-signature": "v0=" + "0" * 64, "x-zm-request-timestamp": stamp}
    for tolerance in (300.0, None):
        with pytest.raises(WebhookSignatureError, match="not a number"):
            verify_signature(sent, BODY, SECRET, tolerance=tolerance, now=NOW)


def test_the_tolerance_can_be_set_or_turned_off_with_none_only() -> None:
    old = headers(timestamp=NOW - 3600)
    verify_signature(old, BODY, SECRET, tolerance=None, now=NOW)
    verify_signature(old, BODY, SECRET, tolerance=4000, now=NOW)
    with pytest.raises(WebhookSignatureError):
        verify_signature(old, BODY, SECRET, tolerance=60, now=NOW)


@pytest.mark.parametrize("tolerance", [float("nan"), float("inf"), -1.0, "300", True])
def test_a_tolerance_that_would_turn_replay_protection_off_is_refused(tolerance: Any) -> None:
    signed_in_2001 = headers(timestamp=1_000_000_000)
    with pytest.raises(ConfigurationError, match="None is the one way"):
        verify_signature(signed_in_2001, BODY, SECRET, tolerance=tolerance, now=NOW)
    with pytest.raises(ConfigurationError, match="None is the one way"):
        Receiver(SECRET, tolerance=tolerance)


def test_an_empty_secret_is_refused() -> None:
    with pytest.raises(WebhookSignatureError, match="secret token is empty"):
        verify_signature(headers(), BODY, "", now=NOW)
    with pytest.raises(WebhookSignatureError, match="secret token is empty"):
        Receiver(["ok", ""])


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


def test_an_event_carries_its_request_id_account_and_traceparent() -> None:
    trace = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    event = webhooks.parse_event(
        BODY, {"X-Zm-Request-Id": "rid-7", "traceparent": trace}
    )
    assert (event.event, event.event_ts, event.payload["account_id"]) == (
        "meeting.started", 1658940994000, "a1",
    )
    assert (event.request_id, event.account_id, event.traceparent) == ("rid-7", "a1", trace)
    assert not event.is_url_validation
    assert "rid-7" in repr(event)
    assert "a1" not in repr(event)
    for bad in (b"[]", b"{not json", b'{"payload": {}}', b'{"event": 3}'):
        with pytest.raises(WebhookError):
            webhooks.parse_event(bad)


def test_object_key_names_the_object_and_its_participant() -> None:
    def key(payload: dict[str, Any]) -> str | None:
        return object_key(webhooks.parse_event(event_body("x", payload)))

    assert key({"object": {"uuid": "m==", "id": 85}}) == "m=="
    assert key({"object": {"id": 85}}) == "85"
    assert key({"object": {"uuid": "m==", "participant": {"user_id": "u1"}}}) == "m==/u1"
    assert key({"object": {"uuid": "m==", "participant": {"participant_uuid": "p", "user_id": "u"}}}) == "m==/p"
    assert key({}) is None


# -- the Receiver in one process -----------------------------------------------------------


async def test_a_delivery_and_its_retries_run_the_handler_once() -> None:
    receiver = Receiver(SECRET)
    sent, body = signed("meeting.started", {"object": {"id": 1}}, request_id="same")
    claim = receiver.claim(sent, body)
    async with claim as event:
        assert event is not None
        assert event.request_id == "same"
        retry = receiver.claim(webhooks.signed_headers(SECRET, body, request_id="same"), body)
        async with retry as duplicate:
            assert duplicate is None
        assert (retry.outcome, retry.reply.status) == ("busy", 503)
    assert (claim.outcome, claim.reply) == ("claimed", Reply(200))
    later = receiver.claim(sent, body)
    async with later as duplicate:
        assert duplicate is None
    assert (later.outcome, later.reply) == ("done", Reply(200))


async def test_a_handler_that_raises_releases_the_claim_for_zooms_retry() -> None:
    receiver = Receiver(SECRET)
    sent, body = signed("meeting.started", request_id="flaky")
    calls: list[str] = []

    def flaky(event: WebhookEvent) -> None:
        calls.append(event.event)
        if len(calls) == 1:
            raise RuntimeError("the database is down")

    assert (await receiver.respond(sent, body, flaky)).status == 500
    assert (await receiver.respond(sent, body, flaky)) == Reply(200)
    assert (await receiver.respond(sent, body, flaky)) == Reply(200)
    assert calls == ["meeting.started", "meeting.started"]


async def test_a_long_handler_keeps_its_claim_by_renewing_the_lease(
    fake_clock: FakeClock,
) -> None:
    receiver = Receiver(SECRET, lease=0.3)
    sent, body = signed("recording.completed", request_id="slow")
    async with receiver.claim(sent, body) as event:
        assert event is not None
        await fake_clock.sleep(0.7)  # more than two leases
        other = receiver.claim(sent, body)
        async with other:
            pass
        assert other.outcome == "busy"


async def test_a_lost_lease_lets_the_retry_in(fake_clock: FakeClock) -> None:
    store = MemoryTokenStore()
    receiver = Receiver(SECRET, store=store, lease=0.2)
    sent, body = signed("meeting.started", request_id="orphan")
    # A process that claimed and died: its claim is never renewed.
    await store.webhook_claims.claim(receiver.claim(sent, body)._key, "dead", lease=0.2, keep=60)
    assert (await receiver.respond(sent, body, lambda e: None)).status == 503
    await fake_clock.sleep(0.3)
    handled: list[str] = []
    assert (await receiver.respond(sent, body, lambda e: handled.append(e.event))).status == 200
    assert handled == ["meeting.started"]


@pytest.mark.parametrize("stale", ["drop", "report"])
async def test_an_older_event_of_the_same_object_is_dropped_or_reported(stale: Any) -> None:
    receiver = Receiver(SECRET, order_key=object_key, stale=stale)
    seen: list[tuple[str, bool]] = []

    def handle(event: WebhookEvent) -> None:
        seen.append((event.event, event.out_of_order))

    participant = {"object": {"uuid": "m1", "participant": {"user_id": "u1"}}}
    for name, ts in (("meeting.participant_left", 2000), ("meeting.participant_joined", 1000)):
        sent, body = signed(name, participant, request_id=name, event_ts=ts)
        assert (await receiver.respond(sent, body, handle)).status == 200
    other = {"object": {"uuid": "m1", "participant": {"user_id": "u2"}}}
    sent, body = signed("meeting.participant_joined", other, request_id="u2", event_ts=1000)
    await receiver.respond(sent, body, handle)
    expected_late = [] if stale == "drop" else [("meeting.participant_joined", True)]
    assert seen == [
        ("meeting.participant_left", False), *expected_late, ("meeting.participant_joined", False)
    ]


async def test_respond_answers_each_kind_of_request() -> None:
    receiver = Receiver(SECRET, max_body=2000)
    sent, body = signed("endpoint.url_validation", {"plainToken": "abc"})
    assert await receiver.respond(sent, body, lambda e: None) == Reply(
        200, url_validation_response("abc", SECRET)
    )
    assert (await receiver.respond({}, BODY, lambda e: None)).status == 401
    not_an_event = b'{"no": "event"}'
    assert (await receiver.respond(
        webhooks.signed_headers(SECRET, not_an_event), not_an_event, lambda e: None
    )).status == 400
    big = event_body("x", {"pad": "a" * 3000})
    assert (await receiver.respond(webhooks.signed_headers(SECRET, big), big, lambda e: None)).status == 413


def test_a_store_without_claims_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="shares no webhook claims"):
        Receiver(SECRET, store=object())


# -- headers before bodies -----------------------------------------------------------------


class CountingBody:
    """An ASGI ``receive`` handing out a large body in chunks, counting what was pulled."""

    def __init__(self, chunks: int, chunk: bytes = b"x" * 65536) -> None:
        self.left, self.chunk, self.pulled = chunks, chunk, 0

    async def __call__(self) -> dict[str, Any]:
        if self.left == 0:
            return {"type": "http.request", "body": b"", "more_body": False}
        self.left -= 1
        self.pulled += len(self.chunk)
        return {"type": "http.request", "body": self.chunk, "more_body": self.left > 0}


async def call_asgi(app: Any, headers: dict[str, str], receive: CountingBody) -> int:
    status: list[int] = []

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            status.append(message["status"])

    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
        "path": "/zoom/events", "raw_path": b"/zoom/events", "query_string": b"",
        "root_path": "", "scheme": "http", "server": ("127.0.0.1", 80),
        "client": ("127.0.0.1", 5000),
        "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()],
    }
    await app(scope, receive, send)
    return status[0]


async def test_the_fastapi_face_checks_headers_before_reading_and_bounds_the_body() -> None:
    from fastapi import FastAPI

    app = FastAPI()
    receiver = Receiver(SECRET, max_body=1 << 20)
    app.add_api_route("/zoom/events", webhook_endpoint(receiver, lambda e: None), methods=["POST"])
    unsigned = CountingBody(chunks=300 * 16)  # 300 MiB, never sent in full
    assert await call_asgi(app, {"content-type": "application/json"}, unsigned) == 401
    assert unsigned.pulled == 0
    stamp = str(int(datetime.datetime.now().timestamp()))
    signed_big = CountingBody(chunks=300 * 16)
    sent = {"x-zm-signature": "v0=" + "0" * 64, "x-zm-request-timestamp": stamp}
    assert await call_asgi(app, sent, signed_big) == 413
    assert signed_big.pulled <= (1 << 20) + 65536
    declared = CountingBody(chunks=300 * 16)
    assert await call_asgi(app, {**sent, "content-length": str(300 << 20)}, declared) == 413
    assert declared.pulled == 0


def test_the_fastapi_face_verifies_answers_and_hands_over() -> None:
    from fastapi import FastAPI
    from fastapi.testclient import TestClient

    received: list[str] = []
    app = FastAPI()
    receiver = Receiver(SECRET)
    app.add_api_route(
        "/zoom/events", webhook_endpoint(receiver, lambda e: received.append(e.event)),
        methods=["POST"],
    )
    client = TestClient(app)
    sent, body = signed("recording.completed", {"object": {"id": 1}})
    assert client.post("/zoom/events", content=body, headers=sent).status_code == 200
    assert client.post("/zoom/events", content=body, headers=sent).status_code == 200  # retry
    sent, challenge = signed("endpoint.url_validation", {"plainToken": "abc"})
    response = client.post("/zoom/events", content=challenge, headers=sent)
    assert response.json() == url_validation_response("abc", SECRET)
    response = client.post("/zoom/events", content=body, headers={"x-zm-signature": "v0=1"})
    assert response.status_code == 401
    assert received == ["recording.completed"]


# -- the aiohttp face, driven by the fake Zoom ---------------------------------------------


@pytest_asyncio.fixture
async def endpoint() -> AsyncIterator[tuple[str, list[WebhookEvent], Receiver]]:
    received: list[WebhookEvent] = []

    async def on_event(event: WebhookEvent) -> None:
        if event.payload.get("fail"):
            raise RuntimeError("handler failed")
        received.append(event)

    receiver = Receiver(SECRET, max_body=4096)
    app = web.Application()
    app.router.add_post("/zoom/events", aiohttp_handler(receiver, on_event))
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield f"http://127.0.0.1:{port}/zoom/events", received, receiver
    finally:
        await runner.cleanup()


async def test_the_aiohttp_face_takes_signed_events_and_answers_the_challenge(
    endpoint: tuple[str, list[WebhookEvent], Receiver],
) -> None:
    url, received, _ = endpoint
    async with FakeZoom(webhook_secret_token=SECRET) as zoom:
        status, _ = await zoom.send_webhook(url, "meeting.started", {"object": {"id": "85"}})
        assert status == 200
        assert await zoom.validate_endpoint(url)
        status, body = await zoom.send_webhook(url, "meeting.ended", secret_token="wrong")
        assert status == 401
        assert b"does not match" in body
        status, _ = await zoom.send_webhook(url, "meeting.ended", timestamp=1)
        assert status == 401
    assert [(e.event, dict(e.payload)) for e in received] == [
        ("meeting.started", {"object": {"id": "85"}})
    ]
    assert received[0].traceparent is not None
    assert received[0].request_id


async def test_the_fake_retries_after_5xx_and_network_errors_never_after_4xx(
    endpoint: tuple[str, list[WebhookEvent], Receiver],
) -> None:
    url, received, _ = endpoint
    async with FakeZoom(webhook_secret_token=SECRET) as zoom:
        zoom.webhooks.retry_delays = (0.01, 0.02, 0.03)
        failing = await zoom.webhooks.deliver(url, "meeting.ended", {"fail": True})
        assert failing.statuses == [500, 500, 500, 500]
        refused = await zoom.webhooks.deliver(url, "x", body=b"x" * 5000)
        assert refused.statuses == [413]
        closed = await zoom.webhooks.deliver("http://127.0.0.1:1/", "meeting.ended")
        assert closed.statuses == [-1, -1, -1, -1]
        ok = await zoom.webhooks.deliver(url, "meeting.started")
        assert ok.statuses == [200]
        assert ok.delivered
        assert {log["request_id"] for log in zoom.webhooks.logs if log["retry_num"] == 3} == {
            failing.request_id, closed.request_id
        }
    assert [e.request_id for e in received] == [ok.request_id]


async def test_an_unsigned_challenge_is_not_answered(
    endpoint: tuple[str, list[WebhookEvent], Receiver],
) -> None:
    """Answering it would sign any body: plainToken = "v0:{ts}:{body}" is a valid signature."""
    url, received, _ = endpoint
    forged = b'{"event": "meeting.deleted", "payload": {}}'
    plain = f"v0:{NOW}:".encode() + forged
    challenge = json.dumps(
        {"event": "endpoint.url_validation", "payload": {"plainToken": plain.decode()}}
    )
    async with aiohttp.ClientSession() as session, session.post(url, data=challenge) as response:
        assert response.status == 401
        assert "encryptedToken" not in await response.text()
    assert received == []


async def test_the_aiohttp_face_answers_413_to_a_large_body_and_400_to_a_non_event(
    endpoint: tuple[str, list[WebhookEvent], Receiver],
) -> None:
    url, _, _ = endpoint

    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(100):
            yield b"x" * 1024

    async with aiohttp.ClientSession() as session:
        body = b'{"no": "event"}'
        sent = webhooks.signed_headers(SECRET, body)
        async with session.post(url, data=body, headers=sent) as response:
            assert response.status == 400
        stamp = str(int(datetime.datetime.now().timestamp()))
        sent = {"x-zm-signature": "v0=" + "0" * 64, "x-zm-request-timestamp": stamp}
        async with session.post(url, data=chunks(), headers=sent) as response:
            assert response.status == 413


# -- recovery from Zoom's webhook logs -----------------------------------------------------


async def test_replay_handles_exactly_the_failed_events_not_yet_handled(
    endpoint: tuple[str, list[WebhookEvent], Receiver],
) -> None:
    from zoom_s2s import TokenManager, ZoomClient

    url, received, receiver = endpoint
    async with FakeZoom(webhook_secret_token=SECRET) as zoom:
        zoom.webhooks.retry_delays = (0.01, 0.01, 0.01)
        lost = await zoom.webhooks.deliver("http://127.0.0.1:1/", "meeting.created", {"n": 1})
        failed = await zoom.webhooks.deliver(url, "meeting.updated", {"fail": True, "n": 2})
        ok = await zoom.webhooks.deliver(url, "meeting.deleted", {"n": 3})
        # Failed first, handled on a retry: in the failed logs, but already handled.
        recovered = zoom.webhooks.body("meeting.ended", {"n": 4})
        await zoom.webhooks.send("http://127.0.0.1:1/", recovered, request_id="recovered")
        await zoom.webhooks.send(url, recovered, request_id="recovered", retry_num=1)
        assert [e.payload["n"] for e in received] == [3, 4]

        replayed: list[WebhookEvent] = []
        async with TokenManager(zoom.credentials, token_url=zoom.token_url) as tokens, \
                ZoomClient(tokens, base_url=zoom.api_base_url) as client:
            report = await receiver.replay_failed(
                client, "app-1", lambda e: replayed.append(e),
                since=datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(hours=1),
            )
            again = await receiver.replay_failed(client, "app-1", lambda e: replayed.append(e))
    assert sorted(e.request_id or "" for e in replayed) == sorted([lost.request_id, failed.request_id])
    assert (report.handled, report.failed) == (2, 0)
    assert report.skipped == 1  # "recovered"; ok was never in the failed logs
    assert (again.handled, again.skipped) == (0, 3)
    assert ok.request_id not in {e.request_id for e in replayed}


async def test_the_fake_serves_webhook_logs_by_type_and_pages() -> None:
    from zoom_s2s import TokenManager, ZoomClient

    async with FakeZoom(webhook_secret_token=SECRET) as zoom:
        zoom.webhooks.retry_delays = ()
        for _ in range(5):
            await zoom.webhooks.deliver("http://127.0.0.1:1/", "meeting.created")
        async with TokenManager(zoom.credentials, token_url=zoom.token_url) as tokens, \
                ZoomClient(tokens, base_url=zoom.api_base_url) as client:
            path = "/marketplace/apps/a/webhook_logs"
            failed = [log async for log in client.paginate(path, key="webhook_logs", page_size=2)]
            ok = await client.request("GET", path, params={"type": 3})
            with pytest.raises(ZoomS2SError, match="seven days"):
                await client.request("GET", path, params={"from": "2001-01-01T00:00:00Z"})
    assert len(failed) == 5
    assert {log["status"] for log in failed} == {-1}
    assert {log["failed_reason_type"] for log in failed} == {2}
    assert ok["webhook_logs"] == []


# -- the blocking face (Flask, Django: a WSGI view) ----------------------------------------


@pytest.fixture
def wsgi_endpoint() -> Iterator[tuple[str, list[str]]]:
    received: list[str] = []
    receiver = Receiver(SECRET)
    on_event: Callable[[WebhookEvent], object] = lambda event: received.append(event.event)  # noqa: E731

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        # What a Flask view does with request.headers and request.get_data().
        headers = {k[5:].replace("_", "-").lower(): v for k, v in environ.items()
                   if k.startswith("HTTP_")}
        length = int(environ.get("CONTENT_LENGTH") or 0)
        reply = receiver.respond_blocking(headers, environ["wsgi.input"].read(length), on_event)
        start_response(f"{reply.status} -", [("Content-Type", "application/json")])
        return [json.dumps(dict(reply.body or {})).encode()]

    server = wsgiref.simple_server.make_server("127.0.0.1", 0, app)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/", received
    finally:
        server.shutdown()
        server.server_close()


async def test_the_blocking_face_serves_a_wsgi_view(wsgi_endpoint: tuple[str, list[str]]) -> None:
    url, received = wsgi_endpoint
    async with FakeZoom(webhook_secret_token=SECRET) as zoom:
        delivery = await zoom.webhooks.deliver(url, "meeting.started")
        body = zoom.webhooks.body("meeting.started")
        await zoom.webhooks.send(url, body, request_id=delivery.request_id)  # a duplicate
        assert await zoom.validate_endpoint(url)
        status, _ = await zoom.send_webhook(url, "meeting.ended", secret_token="wrong")
    assert (delivery.statuses, status) == ([200], 401)
    assert received == ["meeting.started"]


async def test_the_handler_runs_in_a_span_continuing_zooms_traceparent(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    pytest.importorskip("opentelemetry.sdk", reason="needs the otel extra")
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    monkeypatch.setattr(trace, "get_tracer", lambda *args, **kwargs: provider.get_tracer("t"))
    trace_id, parent_id = "0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331"
    sent, body = signed("meeting.started", request_id="traced")
    sent["traceparent"] = f"00-{trace_id}-{parent_id}-01"
    inside: list[int] = []

    def handle(event: WebhookEvent) -> None:
        inside.append(trace.get_current_span().get_span_context().trace_id)

    assert (await Receiver(SECRET).respond(sent, body, handle)).status == 200
    (span,) = exporter.get_finished_spans()
    assert span.name == "zoom_s2s.webhook meeting.started"
    assert inside == [int(trace_id, 16)]
    assert span.parent is not None
    assert span.parent.span_id == int(parent_id, 16)
    assert dict(span.attributes or {})["zoom_s2s.webhook.request_id"] == "traced"
