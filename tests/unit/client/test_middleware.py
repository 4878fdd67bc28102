"""ZoomAuthMiddleware in a plain aiohttp session, against the fake Zoom on loopback."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp import ClientHandlerType, ClientRequest, ClientResponse

from zoom_s2s import TokenManager
from zoom_s2s.client import ZoomAuthMiddleware
from zoom_s2s.testing import FakeZoom, Fault

from ...support import FAST_RETRY

INVALID_TOKEN = Fault(status=401, body={"code": 124, "message": "Invalid access token."})


@pytest.fixture
async def session(tokens: TokenManager) -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(middlewares=(ZoomAuthMiddleware(tokens),)) as client:
        yield client


async def test_requests_carry_the_shared_bearer_token(
    fake_zoom: FakeZoom, tokens: TokenManager, session: aiohttp.ClientSession
) -> None:
    async with session.get(f"{fake_zoom.api_base_url}/users/me") as response:
        assert response.status == 200
        assert (await response.json())["id"] == fake_zoom.me_id
    token = await tokens.get_token()
    assert fake_zoom.api_requests_by_token == {token.access_token: 1}


async def test_a_revoked_token_is_invalidated_and_the_request_retried_once(
    fake_zoom: FakeZoom, tokens: TokenManager, session: aiohttp.ClientSession
) -> None:
    first = await tokens.get_token()
    fake_zoom.revoke_all()
    async with session.get(f"{fake_zoom.api_base_url}/users/me") as response:
        assert response.status == 200
    second = await tokens.get_token()
    assert second.fingerprint != first.fingerprint
    assert fake_zoom.tokens_issued == 2
    assert fake_zoom.api_requests_by_token == {first.access_token: 1, second.access_token: 1}
    assert tokens.stats().invalidations == 1


async def test_the_retry_is_bounded_a_second_401_is_returned_as_is(
    fake_zoom: FakeZoom, session: aiohttp.ClientSession
) -> None:
    fake_zoom.fail_next(3, route="api", fault=INVALID_TOKEN)
    async with session.get(f"{fake_zoom.api_base_url}/users/me") as response:
        assert response.status == 401
        assert (await response.json())["code"] == 124  # the body is still readable
    assert fake_zoom.api_requests == 2
    assert fake_zoom.tokens_issued == 2


async def test_a_401_with_another_code_is_returned_without_invalidating(
    fake_zoom: FakeZoom, tokens: TokenManager, session: aiohttp.ClientSession
) -> None:
    fake_zoom.fail_next(1, route="api", fault=Fault(status=401, body="<html>no</html>"))
    async with session.get(f"{fake_zoom.api_base_url}/users/me") as response:
        assert response.status == 401
    assert fake_zoom.api_requests == 1
    assert tokens.stats().invalidations == 0


async def test_a_json_body_is_sent_again_on_the_retry(
    fake_zoom: FakeZoom, session: aiohttp.ClientSession
) -> None:
    fake_zoom.fail_next(1, route="api", fault=INVALID_TOKEN)
    body = {"action": "create", "user_info": {"email": "again@example.com"}}
    async with session.post(f"{fake_zoom.api_base_url}/users", json=body) as response:
        assert response.status == 201
        assert (await response.json())["email"] == "again@example.com"
    assert fake_zoom.api_requests == 2


async def test_the_token_goes_only_to_the_allowed_hosts_and_the_tokens_api_host(
    fake_zoom: FakeZoom, tokens: TokenManager
) -> None:
    auth = ZoomAuthMiddleware(tokens, hosts=["api.zoom.us"])
    async with FakeZoom() as elsewhere, aiohttp.ClientSession(middlewares=(auth,)) as session:
        # The fake's own host is the token's api_url: the token is sent there.
        async with session.get(f"{fake_zoom.api_base_url}/users/me") as response:
            assert response.status == 200
        # "localhost" is neither allowed nor the token's api_url host: no token.
        async with session.get(f"http://localhost:{elsewhere.port}/v2/users/me") as response:
            assert response.status == 401
        assert elsewhere.api_requests_by_token == {"": 1}
    assert fake_zoom.tokens_issued == 1


class _LateBound:
    """Lets a session carry a middleware built after it (for the manager it is shared with)."""

    inner: ZoomAuthMiddleware | None = None

    async def __call__(self, request: ClientRequest, handler: ClientHandlerType) -> ClientResponse:
        assert self.inner is not None
        return await self.inner(request, handler)


async def test_a_session_shared_with_the_manager_passes_the_token_request_through(
    fake_zoom: FakeZoom,
) -> None:
    late = _LateBound()
    async with aiohttp.ClientSession(middlewares=(late,)) as session:
        tokens = TokenManager(
            fake_zoom.credentials, token_url=fake_zoom.token_url, session=session, retry=FAST_RETRY
        )
        late.inner = ZoomAuthMiddleware(tokens)

        async def get_me() -> int:
            async with session.get(f"{fake_zoom.api_base_url}/users/me") as response:
                return response.status

        async with tokens:
            # Were the token request signed by the middleware, it would wait for itself.
            assert await asyncio.wait_for(get_me(), timeout=5) == 200
    assert fake_zoom.token_requests == 1


def test_the_repr_names_no_token(tokens: TokenManager) -> None:
    assert repr(ZoomAuthMiddleware(tokens, hosts=["API.zoom.us"])).endswith(
        "hosts=['api.zoom.us'])"
    )
