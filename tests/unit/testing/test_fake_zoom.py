"""The fake Zoom answers as Zoom does (docs/zoom.rst): checked over loopback."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator

import aiohttp
import pytest
import pytest_asyncio

from zoom_s2s import Credentials, TokenManager, ZoomClient
from zoom_s2s.testing import FakeZoom


def basic(client_id: str, secret: str) -> str:
    return "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()


@pytest_asyncio.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as http:
        yield http


async def post_token(
    session: aiohttp.ClientSession,
    zoom: FakeZoom,
    creds: Credentials,
    *,
    data: dict[str, str] | None = None,
    params: dict[str, str] | None = None,
) -> tuple[int, dict[str, object]]:
    form = {"grant_type": "account_credentials", "account_id": creds.account_id}
    async with session.post(
        zoom.token_url,
        data=form if data is None and params is None else data,
        params=params,
        headers={"Authorization": basic(creds.client_id, creds.client_secret)},
    ) as response:
        return response.status, await response.json()


# -- many accounts and apps ---------------------------------------------------------------


async def test_many_accounts_and_apps_each_with_its_own_credentials_and_users(
    fake_zoom: FakeZoom,
) -> None:
    acme = fake_zoom.add_account("acme")
    acme.add_user({"id": "acme-1", "email": "ann@acme.example"})
    first = fake_zoom.add_app(acme, scope="user:read:user:admin")
    second = fake_zoom.add_app("acme")
    other = fake_zoom.add_app()  # a new account of its own
    assert first.credentials.account_id == second.credentials.account_id == "acme"
    assert other.account.account_id not in ("acme", fake_zoom.credentials.account_id)
    for app in (first, second):
        async with (
            TokenManager(app.credentials, token_url=fake_zoom.token_url) as tokens,
            ZoomClient(tokens, fake_zoom.api_base_url) as zoom,
        ):
            user = await zoom.get_user("ann@acme.example")
            assert (user.id, user.account_id) == ("acme-1", "acme")
    async with (
        TokenManager(other.credentials, token_url=fake_zoom.token_url) as tokens,
        ZoomClient(tokens, fake_zoom.api_base_url) as zoom,
    ):
        with pytest.raises(Exception, match="User does not exist"):
            await zoom.get_user("ann@acme.example")  # another account's user
        me = await zoom.get_user("me")
        assert me.account_id == other.account.account_id
    assert (first.tokens_issued, second.tokens_issued, other.tokens_issued) == (1, 1, 1)
    assert fake_zoom.default_app.tokens_issued == 0
    assert fake_zoom.tokens_issued == 3


async def test_an_app_cannot_get_a_token_for_another_account(
    fake_zoom: FakeZoom, session: aiohttp.ClientSession
) -> None:
    app = fake_zoom.add_app()
    creds = Credentials(fake_zoom.credentials.account_id, app.client_id, app.client_secret)
    status, body = await post_token(session, fake_zoom, creds)
    assert (status, body["error"]) == (400, "invalid_request")


async def test_one_apps_secret_does_not_open_another_app(
    fake_zoom: FakeZoom, session: aiohttp.ClientSession
) -> None:
    app = fake_zoom.add_app(fake_zoom.default_account)
    creds = Credentials(app.account.account_id, app.client_id, fake_zoom.credentials.client_secret)
    status, body = await post_token(session, fake_zoom, creds)
    assert status == 400
    assert body == {"reason": "Invalid client_id or client_secret", "error": "invalid_client"}


def test_duplicate_accounts_and_apps_are_refused() -> None:
    zoom = FakeZoom()
    with pytest.raises(ValueError, match="already has an account"):
        zoom.add_account(zoom.credentials.account_id)
    with pytest.raises(ValueError, match="already has an app"):
        zoom.add_app(client_id=zoom.credentials.client_id)
    with pytest.raises(ValueError, match="kind="):
        zoom.add_app(kind="jwt")  # type: ignore[arg-type]
