"""ZoomClient.paginate and SyncZoomClient.paginate against the fake's real pagination."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from zoom_s2s import TokenManager, ZoomClient
from zoom_s2s.client.pagination import Pages, page_token_expired
from zoom_s2s.errors import ConfigurationError, ZoomAPIError
from zoom_s2s.sync import SyncTokenManager, SyncZoomClient
from zoom_s2s.testing import FakeZoom, Fault
from zoom_s2s.testing.fake_zoom import ApiCall

from ...support import FAST_RETRY


class Clock:
    """A settable clock for the fake: page tokens expire without waiting."""

    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest_asyncio.fixture
async def fake() -> AsyncIterator[tuple[FakeZoom, Clock]]:
    clock = Clock()
    async with FakeZoom(clock=clock, expires_in=86400) as zoom:
        zoom.default_account.add_users(999)  # 1,000 with "me"
        yield zoom, clock


@pytest_asyncio.fixture
async def client(fake: tuple[FakeZoom, Clock]) -> AsyncIterator[ZoomClient]:
    zoom, _ = fake
    async with (
        TokenManager(zoom.credentials, token_url=zoom.token_url) as tokens,
        ZoomClient(tokens, zoom.api_base_url, retry=FAST_RETRY) as api,
    ):
        yield api


async def test_paginate_walks_1000_users_in_pages(
    fake: tuple[FakeZoom, Clock], client: ZoomClient
) -> None:
    zoom, _ = fake
    ids = [user["id"] async for user in client.paginate("/users")]
    assert len(ids) == 1000
    assert set(ids) == set(zoom.users)
    assert zoom.stats.requests[("GET /v2/users", 200)] == 4  # 300 + 300 + 300 + 100


async def test_paginate_sends_params_and_a_smaller_page_size(
    fake: tuple[FakeZoom, Clock], client: ZoomClient
) -> None:
    zoom, _ = fake
    zoom.default_account.add_users(5, status="inactive", prefix="gone")
    found = [u async for u in client.paginate("/users", params={"status": "inactive"}, page_size=2)]
    assert [u["status"] for u in found] == ["inactive"] * 5
    assert zoom.stats.requests[("GET /v2/users", 200)] == 3


async def test_paginate_restarts_cleanly_when_the_page_token_expires(
    fake: tuple[FakeZoom, Clock], client: ZoomClient
) -> None:
    zoom, clock = fake
    ids = []
    async for user in client.paginate("/users", page_size=100):
        ids.append(user["id"])
        if len(ids) == 250:
            clock.now += 15 * 60 + 1  # the token for the page from 300 is now stale
    assert len(ids) == 1000
    assert len(set(ids)) == 1000  # nothing twice after the restart
    assert zoom.stats.requests[("GET /v2/users", 400)] == 1


async def test_a_page_token_that_keeps_expiring_is_an_error_in_the_end(
    fake: tuple[FakeZoom, Clock], client: ZoomClient
) -> None:
    zoom, clock = fake

    async def walk() -> None:
        async for _user in client.paginate("/users", page_size=100):
            clock.now += 16 * 60  # every token is stale by the time it is used

    with pytest.raises(ZoomAPIError, match="page token is invalid or expired"):
        await walk()
    assert zoom.stats.requests[("GET /v2/users", 400)] == 4  # 3 restarts, then the error


@pytest.mark.parametrize(
    ("path", "size"),
    [("/users", 0), ("/users", 2001), ("/users/me/meetings", 301), ("/users", True),
     ("/users", 1.5)],
)
async def test_page_size_is_checked_against_the_endpoint_s_maximum(
    client: ZoomClient, path: str, size: object
) -> None:
    with pytest.raises(ConfigurationError, match="page_size"):
        client.paginate(path, page_size=size)  # type: ignore[arg-type]


async def test_a_page_may_be_as_large_as_the_endpoint_allows(
    client: ZoomClient, fake: tuple[FakeZoom, Clock]
) -> None:
    zoom, _ = fake
    sizes: list[str] = []

    async def record(call: ApiCall) -> None:
        sizes.append(call.request.query["page_size"])

    zoom.api_hooks.append(record)
    assert [user async for user in client.paginate("/users", page_size=2000)]
    assert [p async for p in client.paginate("/past_meetings/1/participants", page_size=300)]
    *users, participants = sizes
    assert set(users) == {"2000"}
    assert participants == "300"


def test_a_page_size_above_a_smaller_maximum_sends_that_maximum(client: ZoomClient) -> None:
    walk = Pages(client, "/chat/emoji", params=None, key=None, page_size=300)
    assert walk.query["page_size"] == 50


async def test_an_answer_with_several_lists_needs_a_key(
    fake: tuple[FakeZoom, Clock], client: ZoomClient
) -> None:
    zoom, _ = fake
    body = {"users": [{"id": "a"}], "groups": [], "next_page_token": ""}
    zoom.fail_next(2, route="api", fault=Fault(status=200, body=body))
    with pytest.raises(ZoomAPIError, match="pass key="):
        [u async for u in client.paginate("/users")]
    assert [u["id"] async for u in client.paginate("/users", key="users")] == ["a"]


async def test_a_repeated_page_token_stops_the_walk(
    fake: tuple[FakeZoom, Clock], client: ZoomClient
) -> None:
    zoom, _ = fake
    body = {"users": [{"id": "a"}], "next_page_token": "same"}
    zoom.fail_next(3, route="api", fault=Fault(status=200, body=body))
    with pytest.raises(ZoomAPIError, match="same next_page_token"):
        [u async for u in client.paginate("/users")]


def test_page_token_errors_are_recognised() -> None:
    def error(status: int, code: int | None, message: str) -> ZoomAPIError:
        return ZoomAPIError(
            status=status, code=code, message=message, tracking_id=None, method="GET", path="/"
        )

    assert page_token_expired(error(400, 300, "The next page token is invalid or expired."))
    assert page_token_expired(error(400, 300, "Invalid next_page_token, it has expired"))
    assert not page_token_expired(error(400, 300, "Invalid field: page_size."))
    assert not page_token_expired(error(500, None, "next page token expired"))


def test_sync_paginate_is_a_plain_iterator(zoom: FakeZoom) -> None:
    zoom.default_account.add_users(599)
    tokens = SyncTokenManager(zoom.credentials, token_url=zoom.token_url)
    try:
        client = SyncZoomClient(tokens, zoom.api_base_url)
        ids = [user["id"] for user in client.paginate("/users", page_size=250)]
        assert len(ids) == len(set(ids)) == 600
        walk = client.paginate("/users", page_size=10)
        assert next(walk)["id"] == zoom.me_id
        walk.close()  # stops early; the async walk is closed on the loop
        assert zoom.stats.requests[("GET /v2/users", 200)] == 4
    finally:
        tokens.close()


PARTICIPANTS = [  # as Zoom reports them: a rejoin repeats an id, guests have a blank one or none
    {"id": "u1", "name": "Ann", "join_time": "2026-12-01T10:00:00Z"},
    {"id": "u2", "name": "Bo", "join_time": "2026-12-01T10:01:00Z"},
    {"id": "", "name": "Guest", "join_time": "2026-12-01T10:02:00Z"},
    {"id": "u1", "name": "Ann", "join_time": "2026-12-01T10:20:00Z"},
    {"name": "Guest 2", "join_time": "2026-12-01T10:21:00Z"},
    {"id": "", "name": "Guest", "join_time": "2026-12-01T10:30:00Z"},
    {"id": "u2", "name": "Bo", "join_time": "2026-12-01T10:40:00Z"},
    {"id": "u2", "name": "Bo", "join_time": "2026-12-01T10:40:00Z"},  # Zoom sends it twice
]


async def test_a_participants_report_keeps_every_row_over_small_pages(
    fake: tuple[FakeZoom, Clock], client: ZoomClient
) -> None:
    zoom, _ = fake
    zoom.default_account.report_participants["81234"] = PARTICIPANTS
    rows = [
        row async for row in client.paginate("/report/meetings/81234/participants", page_size=3)
    ]
    assert rows == PARTICIPANTS
    assert zoom.stats.requests[("GET /v2/report/meetings/{meeting_id}/participants", 200)] == 3


async def test_after_a_restart_only_the_rows_already_yielded_are_skipped(
    fake: tuple[FakeZoom, Clock], client: ZoomClient
) -> None:
    zoom, clock = fake
    zoom.default_account.report_participants["81234"] = PARTICIPANTS
    rows = []
    async for row in client.paginate("/report/meetings/81234/participants", page_size=3):
        rows.append(row)
        if len(rows) == 4:
            clock.now += 15 * 60 + 1  # the token of the third page is stale: start again
    assert rows == PARTICIPANTS
    assert zoom.stats.requests[("GET /v2/report/meetings/{meeting_id}/participants", 400)] == 1

