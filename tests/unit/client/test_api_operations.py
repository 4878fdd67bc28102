"""The generated API against the fake Zoom through the real pipeline: users, meetings, webinars,
recordings and reports, paced by the rate budget, walked page by page, retried once with a
fresh token after Zoom refuses one; recording downloads and chat file uploads."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
from aiohttp import web

from zoom_s2s import MemoryTokenStore, RateLimits, TokenManager, ZoomClient
from zoom_s2s.errors import ConfigurationError, ForeignRedirectError, NotFoundError
from zoom_s2s.sync import SyncTokenManager, SyncZoomClient
from zoom_s2s.testing import FakeClock, FakeRateLimits, FakeZoom
from zoom_s2s.testing._fake_api import RECORDING_BYTES
from zoom_s2s.testing.fake_zoom import ApiCall

from ...support import FAST_RETRY


@pytest_asyncio.fixture
async def fake(fake_clock: FakeClock) -> AsyncIterator[FakeZoom]:
    """Zoom's limits counted in virtual time: pacing waits move the clock, not the test."""
    limits = FakeRateLimits(
        {"Light": 30, "Medium": 20, "Heavy": 10, "Resource-intensive": 10},
        clock=fake_clock.monotonic, wall=fake_clock.wall,
    )
    async with FakeZoom(rate_limits=limits, clock=fake_clock.wall) as zoom:
        zoom.default_account.add_users(3)
        yield zoom


@pytest_asyncio.fixture
async def zoom(fake: FakeZoom) -> AsyncIterator[ZoomClient]:
    async with TokenManager(
        fake.credentials, token_url=fake.token_url, retry=FAST_RETRY, store=MemoryTokenStore()
    ) as tokens, ZoomClient(
        tokens, fake.api_base_url,
        rate_limits=RateLimits(light=30, medium=20, heavy=10, resource_intensive=10),
    ) as client:
        yield client


async def test_twenty_common_operations_run_paced_paginated_and_retried(
    fake: FakeZoom, zoom: ZoomClient
) -> None:
    layer = fake.rate_limits
    assert isinstance(layer, FakeRateLimits)
    sent = 0

    def count(calls: int = 1) -> None:
        nonlocal sent
        sent += calls

    # Users
    me = await zoom.users.get("me")
    count()
    assert me["id"] == fake.me_id
    users = [user async for user in zoom.users.list(status="active", page_size=2)]
    count(2)
    assert len(users) == 4
    created = await zoom.users.create(
        {"action": "create", "user_info": {"email": "new@example.com", "type": 1}}
    )
    count()
    new_id = created["id"]
    await zoom.users.update(new_id, {"first_name": "Ada"})
    count()
    settings = await zoom.users.get_settings(new_id)
    count()
    assert "schedule_meeting" in settings
    await zoom.users.set_status(new_id, {"action": "deactivate"})
    count()
    await zoom.users.delete(new_id)
    count()

    # Meetings: a refused token is replaced once, and the create is sent again
    fake.revoke_all()
    issued = fake.tokens_issued
    meeting = await zoom.meetings.create("me", {"topic": "Planning", "type": 2})
    count()
    assert fake.tokens_issued == issued + 1
    meeting_id = meeting["id"]
    assert (await zoom.meetings.get(meeting_id))["topic"] == "Planning"
    count()
    await zoom.meetings.update(meeting_id, {"topic": "Planning, again"})
    count()
    await zoom.meetings.create("me", {"topic": "Retro"})
    count()
    topics = [m["topic"] async for m in zoom.meetings.list("me", type="scheduled", page_size=1)]
    count(2)
    assert sorted(topics) == ["Planning, again", "Retro"]
    registrant = await zoom.meetings.create_registrant(
        meeting_id, {"email": "r@example.com", "first_name": "R"}
    )
    count()
    assert registrant["registrant_id"]
    registrants = [r async for r in zoom.meetings.list_registrants(meeting_id, page_size=2)]
    count(3)
    assert len(registrants) == 5
    participants = [
        p async for p in zoom.meetings.list_past_meeting_participants("/ajXp112QmuoKj4854875==")
    ]
    count()
    assert participants
    await zoom.meetings.delete(meeting_id)
    count()
    with pytest.raises(NotFoundError):
        await zoom.meetings.get(meeting_id)
    count()

    # Webinars
    webinar = await zoom.webinars.create("me", {"topic": "Launch"})
    count()
    await zoom.webinars.update(webinar["id"], {"agenda": "Everything"})
    count()
    assert (await zoom.webinars.get(webinar["id"]))["agenda"] == "Everything"
    count()
    assert [w["id"] async for w in zoom.webinars.list("me")] == [webinar["id"]]
    count()
    await zoom.webinars.delete(webinar["id"])
    count()

    # Recordings
    recordings = [r async for r in zoom.recordings.list("me", from_="2026-01-01", page_size=2)]
    count(3)
    assert len(recordings) == 5
    files = (await zoom.recordings.get(meeting_id))["recording_files"]
    count()
    assert files[0]["download_url"].startswith(fake.url)
    await zoom.recordings.delete(meeting_id, action="trash")
    count()

    # Reports
    daily = await zoom.reports.get_daily(year=2026, month=1)
    count()
    assert "dates" in daily
    report = [m async for m in zoom.reports.list_user_meetings(
        "me", from_="2026-01-01", to="2026-01-31", page_size=2)]
    count(3)
    assert len(report) == 5
    fake.default_account.report_participants[str(meeting_id)] = [
        {"id": "a", "name": "Ann"}, {"id": "b", "name": "Bo"}, {"id": "a", "name": "Ann"},
        {"id": "", "name": "Guest"}, {"id": "c", "name": "Cy"},
    ]
    rows = [r async for r in zoom.reports.list_meeting_participants(meeting_id, page_size=2)]
    count(3)
    assert [row.get("id") for row in rows] == ["a", "b", "a", "", "c"]  # every row kept

    limiter = zoom.rate_limiter
    assert limiter is not None
    # Every request Zoom saw was paced: the calls above, the one answer refused for its
    # token, and what the quota ledger asked itself (a host it had not seen yet).
    assert limiter.permits == fake.api_requests
    assert fake.api_requests >= sent + 1
    assert layer.refused == {}


async def test_each_operation_is_paced_in_its_own_category(zoom: ZoomClient) -> None:
    limiter = zoom.rate_limiter
    assert limiter is not None
    assert limiter.category("GET", "/report/daily", "heavy") == "heavy"
    before = limiter.permits
    await zoom.reports.get_daily()
    assert limiter.permits == before + 1


async def test_a_meeting_uuid_that_needs_it_is_double_encoded_on_the_wire(
    fake: FakeZoom, zoom: ZoomClient
) -> None:
    paths: list[str] = []

    async def record(call: ApiCall) -> None:
        paths.append(call.request.raw_path)

    fake.api_hooks.append(record)
    assert [p async for p in zoom.meetings.list_past_meeting_participants("/ab//cd==")]
    assert [p async for p in zoom.meetings.list_past_meeting_participants("ab+cd==")]
    assert paths == [
        "/v2/past_meetings/%252Fab%252F%252Fcd%253D%253D/participants?page_size=300",
        "/v2/past_meetings/ab%2Bcd%3D%3D/participants?page_size=300",
    ]


async def test_a_recording_downloads_with_the_token_only_on_zoom_s_host(
    fake: FakeZoom, zoom: ZoomClient, tmp_path: Path
) -> None:
    url = (await zoom.recordings.get(1))["recording_files"][0]["download_url"]
    assert zoom.rate_limiter is not None
    permits = zoom.rate_limiter.permits
    chunks = [chunk async for chunk in zoom.stream(url, chunk_size=1000)]
    assert zoom.rate_limiter.permits == permits  # a download is no API call
    assert b"".join(chunks) == RECORDING_BYTES
    assert len(chunks) > 1
    written = await zoom.download(url, tmp_path / "meeting.mp4")
    assert written == len(RECORDING_BYTES)
    assert (tmp_path / "meeting.mp4").read_bytes() == RECORDING_BYTES
    assert fake.spec_routes.storage_authorizations == [None, None]  # the redirect's host


async def test_a_download_after_a_revoked_token_is_retried_once_with_a_fresh_one(
    fake: FakeZoom, zoom: ZoomClient
) -> None:
    url = (await zoom.recordings.get(1))["recording_files"][0]["download_url"]
    fake.revoke_all()
    sink = io.BytesIO()
    assert await zoom.download(url, sink) == len(RECORDING_BYTES)


async def test_a_failed_download_raises_and_leaves_no_file(
    fake: FakeZoom, zoom: ZoomClient, tmp_path: Path
) -> None:
    target = tmp_path / "missing.mp4"
    with pytest.raises(NotFoundError):
        await zoom.download(f"{fake.url}/rec/missing", target)
    assert not target.exists()


async def test_a_download_url_off_zoom_s_hosts_never_gets_the_token(zoom: ZoomClient) -> None:
    with pytest.raises(ConfigurationError, match="not on a Zoom host"):
        [chunk async for chunk in zoom.stream("https://example.com/rec/download/x")]


async def test_a_chat_file_uploads_as_multipart_and_again_after_a_refused_token(
    fake: FakeZoom, zoom: ZoomClient
) -> None:
    answer = await zoom.chat.files.create("me", {"file": ("notes.txt", b"hello")})
    assert answer["id"]
    fake.revoke_all()
    await zoom.chat.files.create("me", {"file": ("notes.txt", io.BytesIO(b"again"), "text/plain")})
    assert [(name, content) for _, name, content in fake.spec_routes.uploads] == [
        ("notes.txt", b"hello"), ("notes.txt", b"again")
    ]


async def test_products_load_on_first_use_and_stay(zoom: ZoomClient) -> None:
    assert zoom.meetings is zoom.meetings
    assert zoom.chat.channels is not None
    assert type(zoom.phone.call_queues).__name__ == "PhoneCallQueues"


def test_the_blocking_client_has_the_same_operations(tmp_path: Path) -> None:
    fake = FakeZoom()
    with fake.running_in_thread(), SyncTokenManager(
        fake.credentials, token_url=fake.token_url, retry=FAST_RETRY
    ) as tokens, SyncZoomClient(tokens, fake.api_base_url) as zoom:
        meeting = zoom.meetings.create("me", {"topic": "Blocking"})
        assert zoom.meetings.get(meeting["id"])["topic"] == "Blocking"
        assert [m["id"] for m in zoom.meetings.list("me", page_size=1)] == [meeting["id"]]
        fake.revoke_all()
        assert zoom.users.get("me")["id"] == fake.me_id
        url = zoom.recordings.get(meeting["id"])["recording_files"][0]["download_url"]
        assert b"".join(zoom.stream(url)) == RECORDING_BYTES
        assert zoom.download(url, tmp_path / "r.mp4") == len(RECORDING_BYTES)
        assert zoom.chat.files.create("me", {"file": b"x"})["id"]
        zoom.meetings.delete(meeting["id"])
    assert fake.tokens_issued == 2


async def test_an_upload_redirected_off_zoom_s_hosts_is_refused_without_the_token(
    fake: FakeZoom, zoom: ZoomClient, elsewhere: FakeZoom
) -> None:
    async def redirect(call: ApiCall) -> web.StreamResponse | None:
        if call.request.path.endswith("/files"):
            target = elsewhere.api_base_url + "/chat/users/me/files?hop=1"
            return web.Response(status=307, headers={"Location": target})
        return None

    fake.api_hooks.insert(0, redirect)
    with pytest.raises(ForeignRedirectError) as info:
        await zoom.chat.files.create("me", {"file": b"secret plans"})
    assert info.value.location == elsewhere.url
    assert elsewhere.api_requests == 0
    assert not elsewhere.stats.requests
    assert fake.spec_routes.uploads == []
