"""Scope and permission errors as Zoom sends them (docs/zoom.rst), over loopback."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from zoom_s2s import MemoryTokenStore, TokenManager, ZoomClient
from zoom_s2s.client.responses import scopes_named
from zoom_s2s.errors import (
    MissingScopesError,
    PermissionDeniedError,
    PlanRequiredError,
    UnauthorizedError,
)
from zoom_s2s.testing import FakeZoom, Fault
from zoom_s2s.testing.fake_zoom import ApiCall

from ...support import FAST_RETRY

GRANULAR = "user:read:user:admin"


@pytest_asyncio.fixture
async def zoom() -> AsyncIterator[FakeZoom]:
    async with FakeZoom(scope="user:read:admin", required_scopes=[GRANULAR]) as fake:
        yield fake


def client_of(zoom: FakeZoom, tokens: TokenManager) -> ZoomClient:
    return ZoomClient(tokens, zoom.api_base_url, retry=FAST_RETRY)


async def test_a_scope_granted_in_the_marketplace_reaches_only_a_fresh_token(
    zoom: FakeZoom,
) -> None:
    async with TokenManager(zoom.credentials, token_url=zoom.token_url) as tokens:
        old = await tokens.get_token()
        zoom.default_app.scope = f"user:read:admin {GRANULAR}"  # granted in the Marketplace
        async with client_of(zoom, tokens) as client:
            user = await client.get_user("me")
        assert user.id == zoom.me_id
        assert zoom.tokens_issued == 2
        assert zoom.api_requests == 2  # refused with the old token, served with the new
        assert (await tokens.get_token()).access_token != old.access_token


async def test_a_missing_scope_names_the_scopes_and_costs_one_refetch(zoom: FakeZoom) -> None:
    async with (
        TokenManager(zoom.credentials, token_url=zoom.token_url) as tokens,
        client_of(zoom, tokens) as client,
    ):
        with pytest.raises(MissingScopesError) as info:
            await client.get_user("me")
        error = info.value
        assert (error.status, error.code) == (400, 4711)
        assert error.required_scopes == (GRANULAR,)
        assert error.granted_scopes == frozenset({"user:read:admin"})
        assert GRANULAR in str(error)
        assert "granted: user:read:admin" in str(error)
        assert "reach only tokens issued afterwards" in str(error)
        assert isinstance(error, PermissionDeniedError)
        assert (zoom.tokens_issued, zoom.api_requests) == (2, 1)
        # The fresh token is known to lack the scope: the next call does not refetch.
        with pytest.raises(MissingScopesError):
            await client.get_user("me")
        assert (zoom.tokens_issued, zoom.api_requests) == (2, 2)


async def test_a_burst_of_scope_errors_across_a_fleet_refetches_once(zoom: FakeZoom) -> None:
    store = MemoryTokenStore()
    async with (
        TokenManager(zoom.credentials, store=store, token_url=zoom.token_url) as one,
        TokenManager(zoom.credentials, store=store, token_url=zoom.token_url) as two,
        client_of(zoom, one) as first,
        client_of(zoom, two) as second,
    ):
        assert (await one.get_token()) == (await two.get_token())
        zoom.default_app.scope = f"user:read:admin {GRANULAR}"
        users = await asyncio.gather(*(c.get_user("me") for c in (first, second) * 5))
        assert {u.id for u in users} == {zoom.me_id}
        assert zoom.tokens_issued == 2  # compare-and-delete: one refetch for the fleet


@pytest.mark.parametrize("status", [401, 403])
async def test_code_4700_is_a_missing_scope_too(status: int) -> None:
    async with FakeZoom(
        scope="user:read:admin", required_scopes=[GRANULAR], scope_error=(status, 4700)
    ) as zoom:
        async with (
            TokenManager(zoom.credentials, token_url=zoom.token_url) as tokens,
            client_of(zoom, tokens) as client,
        ):
            with pytest.raises(MissingScopesError) as info:
                await client.get_user("me")
        assert (info.value.status, info.value.code) == (status, 4700)
        assert info.value.required_scopes == ()
        assert not isinstance(info.value, UnauthorizedError)
        assert "Zoom did not name it" in str(info.value)
        # Zoom named no scope to compare with: the request went again with a fresh token.
        assert (zoom.tokens_issued, zoom.api_requests) == (2, 2)


@pytest.mark.parametrize(
    ("fault", "kind", "words"),
    [
        (Fault.forbidden(), PermissionDeniedError, "Roles"),
        (Fault.no_permission(), PermissionDeniedError, "Roles"),
        (Fault.paid_only("acct-1"), PlanRequiredError, "paid plan"),
    ],
)
async def test_permission_answers_get_their_own_classes(
    fake_zoom: FakeZoom, fault: Fault, kind: type[Exception], words: str
) -> None:
    fake_zoom.fail_next(1, route="api", fault=fault)
    async with (
        TokenManager(fake_zoom.credentials, token_url=fake_zoom.token_url) as tokens,
        client_of(fake_zoom, tokens) as client,
    ):
        with pytest.raises(kind, match=words) as info:
            await client.get_user("me")
    assert type(info.value) is kind
    assert (fake_zoom.api_requests, fake_zoom.tokens_issued) == (1, 1)  # never retried


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        (
            "Invalid access token, does not contain scopes:[user:read:list_users:admin].",
            ("user:read:list_users:admin",),
        ),
        (
            "Invalid access token, does not contain scopes: [user:write:admin, user:read:admin,"
            " user:read, user:write].",
            ("user:write:admin", "user:read:admin", "user:read", "user:write"),
        ),
        (
            'Invalid access token, does not contain scopes:["calendar:read:admin","calendar:read"]',
            ("calendar:read:admin", "calendar:read"),
        ),
        ("Invalid access token, does not contain scopes", ()),
        ("scopes:[<script>, ok:scope]", ("ok:scope",)),
        (None, ()),
    ],
)
def test_scope_names_are_read_from_zooms_messages(
    message: str | None, expected: tuple[str, ...]
) -> None:
    assert scopes_named(message) == expected


async def test_get_user_sends_zooms_query_parameters(fake_zoom: FakeZoom) -> None:
    seen: list[dict[str, str]] = []

    async def record(call: ApiCall) -> None:
        seen.append(dict(call.request.query))

    fake_zoom.api_hooks.append(record)  # type: ignore[arg-type]
    async with (
        TokenManager(fake_zoom.credentials, token_url=fake_zoom.token_url) as tokens,
        client_of(fake_zoom, tokens) as client,
    ):
        await client.get_user("jchill@example.com", login_type=100, encrypted_email=False)
        await client.get_user("me", search_by_unique_id=True)
        await client.get_user("me")
        with pytest.raises(ValueError, match="login_type"):
            await client.get_user("me", login_type="sso")  # type: ignore[arg-type]
    assert seen == [
        {"login_type": "100", "encrypted_email": "false"},
        {"search_by_unique_id": "true"},
        {},
    ]


async def test_a_pending_user_parses_with_only_id_and_created_at(fake_zoom: FakeZoom) -> None:
    fake_zoom.clock = lambda: 1_767_225_600.0  # 2026-01-01T00:00:00Z
    async with (
        TokenManager(fake_zoom.credentials, token_url=fake_zoom.token_url) as tokens,
        client_of(fake_zoom, tokens) as client,
    ):
        created = await client.request(
            "POST", "/users", json={"action": "create", "user_info": {"email": "new@example.com"}}
        )
        user = await client.get_user("new@example.com")
    assert set(user.raw) == {"id", "created_at"}
    assert user.id == created["id"]
    assert user.created_at is not None
    assert user.created_at.isoformat() == (
        "2026-01-01T00:00:00+00:00"
    )
    assert user.is_pending
    assert (user.email, user.status, user.type, user.group_ids) == (None, None, None, ())
