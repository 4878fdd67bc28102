"""discover_account_id: the account id behind an access token, against the fake Zoom."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest

from zoom_s2s import TokenManager
from zoom_s2s.client import discover_account_id
from zoom_s2s.errors import ConfigurationError, UnauthorizedError, ZoomAPIError
from zoom_s2s.testing import FakeZoom, Fault


async def a_token(zoom: FakeZoom) -> str:
    async with TokenManager(zoom.credentials, token_url=zoom.token_url) as tokens:
        return (await tokens.get_token()).access_token


async def test_a_valid_token_reveals_the_account_id(fake_zoom: FakeZoom) -> None:
    token = await a_token(fake_zoom)
    account_id = await discover_account_id(token, base_url=fake_zoom.api_base_url)
    assert account_id == fake_zoom.credentials.account_id
    assert fake_zoom.api_requests_by_token == {token: 1}


async def test_a_session_can_be_reused_and_is_left_open(fake_zoom: FakeZoom) -> None:
    token = await a_token(fake_zoom)
    async with aiohttp.ClientSession() as session:
        found = await discover_account_id(token, base_url=fake_zoom.api_base_url, session=session)
        assert found == fake_zoom.credentials.account_id
        assert not session.closed


async def test_an_invalid_token_raises_unauthorized_saying_the_token_is_invalid(
    fake_zoom: FakeZoom,
) -> None:
    token = "not-a-real-token-0123456789"
    with pytest.raises(UnauthorizedError) as info:
        await discover_account_id(token, base_url=fake_zoom.api_base_url)
    assert "token is invalid or expired" in str(info.value)
    assert info.value.code == 124
    assert token not in str(info.value)
    assert fake_zoom.api_requests == 1  # no retry: there is nothing to refresh


async def test_a_user_without_account_id_raises_a_clear_error(fake_zoom: FakeZoom) -> None:
    token = await a_token(fake_zoom)
    del fake_zoom.users[fake_zoom.me_id]["account_id"]
    with pytest.raises(ZoomAPIError, match="no account_id"):
        await discover_account_id(token, base_url=fake_zoom.api_base_url)


@pytest.mark.parametrize("token", ["", "   "])
async def test_an_empty_token_is_a_configuration_error(token: str) -> None:
    with pytest.raises(ConfigurationError, match="access_token is empty"):
        await discover_account_id(token)


async def test_an_echoed_token_is_scrubbed_from_the_error(fake_zoom: FakeZoom) -> None:
    token = "echoed-token-0123456789abcdef"
    body = {"code": 124, "message": f"Invalid access token: Bearer {token}"}
    fake_zoom.fail_next(1, route="api", fault=Fault(status=401, body=body))
    with pytest.raises(UnauthorizedError) as info:
        await discover_account_id(token, base_url=fake_zoom.api_base_url)
    assert token not in str(info.value)
    assert token not in str(info.value.message)
    assert "Bearer ***" in str(info.value)


def test_plain_http_off_loopback_is_refused_before_the_token_is_sent() -> None:
    with pytest.raises(ConfigurationError, match="allow_insecure_http"):
        asyncio.run(discover_account_id("token", base_url="http://api.example.com/v2"))


async def test_an_oversized_answer_is_a_clear_error(fake_zoom: FakeZoom) -> None:
    token = await a_token(fake_zoom)
    fake_zoom.fail_next(1, route="api", fault=Fault(status=200, body={"pad": "x" * 5000}))
    with pytest.raises(ZoomAPIError, match="more than the 1,024"):
        await discover_account_id(token, base_url=fake_zoom.api_base_url, max_response_bytes=1024)
