"""ZoomAuthMiddleware in a plain aiohttp session, against the fake Zoom on loopback.

Where the token goes is tested with two real servers on loopback: the fake
Zoom the middleware is configured for, and a second fake on another port (so
another origin) that records the Authorization header of every request.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp import ClientHandlerType, ClientRequest, ClientResponse

from zoom_s2s import TokenManager
from zoom_s2s.aiohttp import ZoomAuthMiddleware
from zoom_s2s.errors import ConfigurationError, ForeignRedirectError
from zoom_s2s.testing import FakeZoom, Fault

from ...support import FAST_RETRY

INVALID_TOKEN = Fault(status=401, body={"code": 124, "message": "Invalid access token."})


@pytest.fixture
async def session(
    fake_zoom: FakeZoom, tokens: TokenManager
) -> AsyncIterator[aiohttp.ClientSession]:
    auth = ZoomAuthMiddleware(tokens, api_url=fake_zoom.api_base_url)
    async with aiohttp.ClientSession(middlewares=(auth,)) as client:
        yield client


def redirect_to(url: str, status: int = 302) -> Fault:
    return Fault(status=status, headers={"Location": url}, body="")


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


async def test_a_json_body_is_sent_again_on_the_retry(
    fake_zoom: FakeZoom, session: aiohttp.ClientSession
) -> None:
    fake_zoom.fail_next(1, route="api", fault=INVALID_TOKEN)
    body = {"action": "create", "user_info": {"email": "again@example.com"}}
    async with session.post(f"{fake_zoom.api_base_url}/users", json=body) as response:
        assert response.status == 201
        assert (await response.json())["email"] == "again@example.com"
    assert fake_zoom.api_requests == 2


async def test_by_default_the_token_goes_only_to_the_configured_api_origin(
    fake_zoom: FakeZoom,
    tokens: TokenManager,
    elsewhere: FakeZoom,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # As README shows it: no api_url, so $ZOOM_API_URL or https://api.zoom.us/v2.
    monkeypatch.delenv("ZOOM_API_URL", raising=False)
    async with (
        aiohttp.ClientSession(middlewares=(ZoomAuthMiddleware(tokens),)) as session,
        session.get(f"{elsewhere.api_base_url}/users/me") as response,
    ):
        assert response.status == 401
    assert elsewhere.api_requests_by_token == {"": 1}


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
async def test_a_redirect_to_another_origin_is_followed_without_the_token(
    fake_zoom: FakeZoom, session: aiohttp.ClientSession, elsewhere: FakeZoom, status: int
) -> None:
    fake_zoom.fail_next(1, route="api", fault=redirect_to(elsewhere.api_base_url + "/users/me"))
    async with session.get(f"{fake_zoom.api_base_url}/users/me") as response:
        assert response.status == 401  # the other server saw no token
        assert response.url.port == elsewhere.port
    assert elsewhere.api_requests_by_token == {"": 1}
    assert set(fake_zoom.api_requests_by_token) == set(fake_zoom.issued_tokens)


async def test_a_redirect_to_another_origin_can_be_refused(
    fake_zoom: FakeZoom, tokens: TokenManager, elsewhere: FakeZoom
) -> None:
    auth = ZoomAuthMiddleware(tokens, api_url=fake_zoom.api_base_url, on_foreign_redirect="refuse")
    fake_zoom.fail_next(1, route="api", fault=redirect_to(elsewhere.api_base_url + "/users/me"))
    async with aiohttp.ClientSession(middlewares=(auth,)) as session:
        with pytest.raises(ForeignRedirectError) as info:
            await session.get(f"{fake_zoom.api_base_url}/users/me")
        # The session is still usable, and same-origin requests still carry the token.
        async with session.get(f"{fake_zoom.api_base_url}/users/me") as response:
            assert response.status == 200
    assert info.value.location == f"http://127.0.0.1:{elsewhere.port}"
    assert info.value.status == 302
    assert "on_foreign_redirect" in str(info.value)
    assert elsewhere.api_requests == 0


async def test_a_redirect_within_the_api_origin_keeps_the_token(
    fake_zoom: FakeZoom, session: aiohttp.ClientSession
) -> None:
    fake_zoom.fail_next(1, route="api", fault=redirect_to("/v2/users/me", status=307))
    async with session.get(f"{fake_zoom.api_base_url}/users") as response:
        assert response.status == 200
        assert (await response.json())["id"] == fake_zoom.me_id
    assert fake_zoom.api_unauthorized == 0


async def test_a_tokens_api_url_on_a_foreign_host_gets_no_token(elsewhere: FakeZoom) -> None:
    # A tampered store or a hostile token endpoint names another host as api_url.
    foreign = f"http://localhost:{elsewhere.port}"
    async with (
        FakeZoom(api_url=foreign) as zoom,
        TokenManager(zoom.credentials, token_url=zoom.token_url, retry=FAST_RETRY) as tokens,
    ):
        auth = ZoomAuthMiddleware(tokens, api_url=zoom.api_base_url, use_token_api_url=True)
        async with aiohttp.ClientSession(middlewares=(auth,)) as session:
            assert (await tokens.get_token()).api_url == foreign
            async with session.get(f"{foreign}/v2/users/me") as response:
                assert response.status == 401
            async with session.get(f"{zoom.api_base_url}/users/me") as response:
                assert response.status == 200
    assert elsewhere.api_requests_by_token == {"": 1}


async def test_a_tokens_api_url_on_the_configured_host_is_trusted_when_enabled(
    fake_zoom: FakeZoom, tokens: TokenManager
) -> None:
    # The token's api_url is the fake (127.0.0.1:port); the configured API is
    # another port of the same host: trusted only with use_token_api_url.
    token = await tokens.get_token()
    for enabled, expected in [(False, 401), (True, 200)]:
        auth = ZoomAuthMiddleware(
            tokens, api_url="http://127.0.0.1:9/v2", use_token_api_url=enabled
        )
        async with (
            aiohttp.ClientSession(middlewares=(auth,)) as session,
            session.get(f"{fake_zoom.api_base_url}/users/me") as response,
        ):
            assert response.status == expected
    assert fake_zoom.api_requests_by_token == {"": 1, token.access_token: 1}


@pytest.mark.parametrize("api_url", ["http://api.example.com/v2", "http://10.0.0.8:8080/v2"])
def test_plain_http_to_a_host_that_is_not_loopback_is_refused_unless_allowed(
    tokens: TokenManager, api_url: str
) -> None:
    with pytest.raises(ConfigurationError, match="allow_insecure_http"):
        ZoomAuthMiddleware(tokens, api_url=api_url)
    ZoomAuthMiddleware(tokens, api_url=api_url, allow_insecure_http=True)


def test_an_unknown_redirect_policy_is_a_configuration_error(tokens: TokenManager) -> None:
    with pytest.raises(ConfigurationError, match="strip"):
        ZoomAuthMiddleware(tokens, on_foreign_redirect="follow")  # type: ignore[arg-type]


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
        late.inner = ZoomAuthMiddleware(tokens, api_url=fake_zoom.api_base_url)

        async def get_me() -> int:
            async with session.get(f"{fake_zoom.api_base_url}/users/me") as response:
                return response.status

        async with tokens:
            # Were the token request signed by the middleware, it would wait for itself.
            assert await asyncio.wait_for(get_me(), timeout=5) == 200
    assert fake_zoom.token_requests == 1


async def test_the_repr_names_no_token(tokens: TokenManager) -> None:
    token = await tokens.get_token()
    text = repr(ZoomAuthMiddleware(tokens, api_url="https://API.zoom.us/v2/"))
    assert text.endswith("api_url='https://api.zoom.us/v2', on_foreign_redirect='strip')")
    assert token.access_token not in text
