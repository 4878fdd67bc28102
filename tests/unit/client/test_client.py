"""ZoomClient against the fake Zoom on loopback: users, 401/429/5xx policy, errors, lifecycle."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time
from collections.abc import AsyncIterator

import aiohttp
import pytest

from zoom_s2s import (
    ConfigurationError,
    DailyLimitExceededError,
    MissingScopesError,
    NotFoundError,
    RateLimitedError,
    ServerError,
    TokenManager,
    UnauthorizedError,
    ZoomAPIError,
)
from zoom_s2s.client import User, ZoomClient
from zoom_s2s.testing import FakeZoom, Fault

from ...support import FAST_RETRY, SECRET


@pytest.fixture
async def client(fake_zoom: FakeZoom, tokens: TokenManager) -> AsyncIterator[ZoomClient]:
    async with ZoomClient(tokens, fake_zoom.api_base_url, retry=FAST_RETRY) as zoom:
        yield zoom


def iso_in(seconds: float) -> str:
    moment = dt.datetime.now(dt.timezone.utc) + dt.timedelta(seconds=seconds)
    return moment.isoformat().replace("+00:00", "Z")


def rate_limited(limit_type: str, retry_after: str | None = None) -> Fault:
    headers = {"X-RateLimit-Type": limit_type, "X-RateLimit-Category": "Light"}
    if retry_after is not None:
        headers["Retry-After"] = retry_after
    return Fault(
        status=429,
        headers=headers,
        body={"code": 429, "message": "You have reached the maximum rate limit for this API."},
    )


# -- users ------------------------------------------------------------------------------


async def test_get_user_me_returns_the_user_with_its_account_id(
    fake_zoom: FakeZoom, client: ZoomClient
) -> None:
    user = await client.get_user("me")
    assert isinstance(user, User)
    assert user.id == fake_zoom.me_id
    assert user.account_id == fake_zoom.credentials.account_id
    assert user.email == "jchill@example.com"
    assert user.type == 1
    assert user.pmi == 3542471135
    assert user.created_at == dt.datetime(2018, 10, 31, 4, 32, 37, tzinfo=dt.timezone.utc)
    assert user.raw["zoom_one_type"] == 4  # unknown fields are kept
    assert "custom_attributes" not in repr(user)  # raw is summarised, not dumped


async def test_after_revoke_all_the_next_call_succeeds_with_exactly_one_refetch(
    fake_zoom: FakeZoom, client: ZoomClient
) -> None:
    await client.get_user("me")
    assert fake_zoom.tokens_issued == 1
    fake_zoom.revoke_all()
    user = await client.get_user("me")
    assert user.account_id == fake_zoom.credentials.account_id
    assert fake_zoom.tokens_issued == 2
    assert fake_zoom.api_unauthorized == 1


async def test_50_concurrent_calls_rejected_for_the_same_revoked_token_cause_one_refetch(
    fake_zoom: FakeZoom, client: ZoomClient
) -> None:
    await client.get_user("me")
    fake_zoom.revoke_all()
    users = await asyncio.gather(*(client.get_user("me") for _ in range(50)))
    assert {user.id for user in users} == {fake_zoom.me_id}
    assert fake_zoom.tokens_issued == 2
    assert fake_zoom.token_requests == 2
    assert fake_zoom.api_unauthorized >= 1


async def test_a_second_401_is_raised_after_exactly_one_retry_with_a_fresh_token(
    fake_zoom: FakeZoom, client: ZoomClient
) -> None:
    invalid = Fault(status=401, body={"code": 124, "message": "Invalid access token."})
    fake_zoom.fail_next(2, route="api", fault=invalid)
    with pytest.raises(UnauthorizedError) as info:
        await client.get_user("me")
    assert info.value.code == 124
    assert info.value.status == 401
    assert fake_zoom.api_requests == 2
    assert fake_zoom.tokens_issued == 2
    # The next call is not poisoned: it uses the fresh token.
    await client.get_user("me")
    assert fake_zoom.tokens_issued == 2


async def test_a_401_without_code_124_is_raised_without_refetching(
    fake_zoom: FakeZoom, client: ZoomClient
) -> None:
    fake_zoom.fail_next(
        1, route="api", fault=Fault(status=401, body={"code": 200, "message": "No"})
    )
    with pytest.raises(UnauthorizedError):
        await client.get_user("me")
    assert fake_zoom.api_requests == 1
    assert fake_zoom.tokens_issued == 1


async def test_unknown_user_raises_not_found_with_code_1001_and_the_tracking_id(
    client: ZoomClient,
) -> None:
    with pytest.raises(NotFoundError) as info:
        await client.get_user("nobody@example.com")
    error = info.value
    assert error.status == 404
    assert error.code == 1001
    assert error.tracking_id is not None
    assert error.tracking_id.startswith("v=2.0;")
    assert error.tracking_id in str(error)
    assert error.method == "GET"
    assert error.path == "/v2/users/nobody@example.com"


@pytest.mark.parametrize(
    "email",
    ["jill.chill@example.com", "jill+zoom/dev@example.com", "who?what#where%20@example.com"],
)
async def test_a_user_id_with_reserved_characters_is_quoted_and_found(
    fake_zoom: FakeZoom, client: ZoomClient, email: str
) -> None:
    fake_zoom.add_user({"id": "u-reserved", "email": email, "account_id": "acc"})
    user = await client.get_user(email)
    assert user.id == "u-reserved"
    assert user.email == email


async def test_an_answer_that_is_not_a_user_raises_zoom_api_error(
    fake_zoom: FakeZoom, client: ZoomClient
) -> None:
    fake_zoom.fail_next(1, route="api", fault=Fault(status=200, body=["not", "a", "user"]))
    with pytest.raises(ZoomAPIError, match="not a user"):
        await client.get_user("me")


# -- rate limits --------------------------------------------------------------------------


async def test_429_qps_with_an_iso_retry_after_is_retried_after_that_moment(
    fake_zoom: FakeZoom, client: ZoomClient
) -> None:
    fake_zoom.fail_next(1, route="api", fault=rate_limited("QPS", iso_in(0.2)))
    started = time.monotonic()
    user = await client.get_user("me")
    assert user.id == fake_zoom.me_id
    assert fake_zoom.api_requests == 2
    assert time.monotonic() - started >= 0.15  # it waited for Retry-After


async def test_429_qps_that_does_not_clear_raises_rate_limited_after_bounded_retries(
    fake_zoom: FakeZoom, tokens: TokenManager
) -> None:
    fake_zoom.fail_next(10, route="api", fault=rate_limited("QPS", "0"))
    async with ZoomClient(
        tokens, fake_zoom.api_base_url, retry=FAST_RETRY, rate_limit_retries=2
    ) as zoom:
        with pytest.raises(RateLimitedError) as info:
            await zoom.get_user("me")
    assert not isinstance(info.value, DailyLimitExceededError)
    assert info.value.limit_type == "QPS"
    assert fake_zoom.api_requests == 3


async def test_a_429_wait_is_capped_even_if_retry_after_is_far_away(
    fake_zoom: FakeZoom, tokens: TokenManager
) -> None:
    fake_zoom.fail_next(1, route="api", fault=rate_limited("QPS", iso_in(3600)))
    async with ZoomClient(
        tokens, fake_zoom.api_base_url, retry=FAST_RETRY, max_rate_limit_wait=0.05
    ) as zoom:
        await asyncio.wait_for(zoom.get_user("me"), timeout=5)
    assert fake_zoom.api_requests == 2


async def test_a_daily_limit_raises_at_once_with_the_reset_time(
    fake_zoom: FakeZoom, client: ZoomClient
) -> None:
    tomorrow = (dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=1)).replace(
        hour=0, minute=0, second=0, microsecond=0
    )
    reset = tomorrow.strftime("%Y-%m-%dT%H:%M:%SZ")
    fake_zoom.fail_next(5, route="api", fault=rate_limited("Daily-limit", reset))
    with pytest.raises(DailyLimitExceededError) as info:
        await client.get_user("me")
    assert fake_zoom.api_requests == 1
    assert info.value.retry_at is not None
    assert abs((info.value.retry_at - tomorrow).total_seconds()) < 0.01
    assert info.value.limit_type == "Daily-limit"
    assert tomorrow.isoformat() in str(info.value)


async def test_a_daily_limit_without_retry_after_resets_at_the_next_utc_midnight(
    fake_zoom: FakeZoom, client: ZoomClient
) -> None:
    fake_zoom.fail_next(1, route="api", fault=rate_limited("Daily-limit"))
    with pytest.raises(DailyLimitExceededError) as info:
        await client.get_user("me")
    reset = info.value.retry_at
    assert reset is not None
    now = dt.datetime.now(dt.timezone.utc)
    assert (reset.hour, reset.minute, reset.second, reset.tzinfo) == (0, 0, 0, dt.timezone.utc)
    assert dt.timedelta(0) < reset - now <= dt.timedelta(days=1)


# -- server errors -----------------------------------------------------------------------


async def test_5xx_is_retried_for_get(fake_zoom: FakeZoom, client: ZoomClient) -> None:
    fake_zoom.fail_next(2, route="api", fault=Fault(status=503))
    user = await client.get_user("me")
    assert user.id == fake_zoom.me_id
    assert fake_zoom.api_requests == 3


async def test_5xx_is_not_retried_for_post(fake_zoom: FakeZoom, client: ZoomClient) -> None:
    fake_zoom.fail_next(1, route="api", fault=Fault(status=503))
    body = {"action": "create", "user_info": {"email": "new@example.com", "type": 1}}
    with pytest.raises(ServerError) as info:
        await client.request("POST", "/users", json=body)
    assert info.value.status == 503
    assert info.value.method == "POST"
    assert fake_zoom.api_requests == 1
    assert fake_zoom.find_user("new@example.com") is None


async def test_5xx_that_persists_raises_server_error_after_the_bounded_attempts(
    fake_zoom: FakeZoom, client: ZoomClient
) -> None:
    fake_zoom.fail_next(20, route="api", fault=Fault(status=500))
    with pytest.raises(ServerError):
        await client.get_user("me")
    assert fake_zoom.api_requests == FAST_RETRY.attempts


async def test_a_dropped_connection_is_retried_for_get(
    fake_zoom: FakeZoom, client: ZoomClient
) -> None:
    fake_zoom.fail_next(1, route="api", fault=Fault(reset=True))
    user = await client.get_user("me")
    assert user.id == fake_zoom.me_id
    assert fake_zoom.api_requests == 2


async def test_an_html_error_page_becomes_the_error_its_status_calls_for(
    fake_zoom: FakeZoom, client: ZoomClient
) -> None:
    page = "<!DOCTYPE html><html><body><h1>502 Bad Gateway</h1></body></html>"
    fake_zoom.fail_next(
        1, route="api", fault=Fault(status=502, body=page, content_type="text/html")
    )
    with pytest.raises(ServerError) as info:
        await client.request("POST", "/users", json={"action": "create"})
    assert info.value.code is None
    assert "HTML page" in str(info.value)
    assert "Bad Gateway" not in str(info.value)  # summarised, not dumped
    fake_zoom.fail_next(
        1, route="api", fault=Fault(status=404, body=page, content_type="text/html")
    )
    with pytest.raises(NotFoundError):
        await client.get_user("me")


async def test_a_2xx_body_that_is_not_json_raises_zoom_api_error(
    fake_zoom: FakeZoom, client: ZoomClient
) -> None:
    fault = Fault(status=200, body="<html>proxy login</html>", content_type="text/html")
    fake_zoom.fail_next(1, route="api", fault=fault)
    with pytest.raises(ZoomAPIError, match="HTML page"):
        await client.request("GET", "/users")


async def test_missing_scopes_raise_at_once_and_say_to_add_the_scope() -> None:
    async with FakeZoom(
        scope="user:read:admin", required_scopes=["user:read:admin", "user:write:admin"]
    ) as zoom:
        async with (
            TokenManager(zoom.credentials, token_url=zoom.token_url) as tokens,
            ZoomClient(tokens, zoom.api_base_url, retry=FAST_RETRY) as client,
        ):
            with pytest.raises(MissingScopesError) as info:
                await client.get_user("me")
        assert info.value.code == 4711
        assert "user:write:admin" in str(info.value)
        assert "Marketplace" in str(info.value)
        assert zoom.api_requests == 1
        assert zoom.tokens_issued == 1


async def test_a_validation_error_carries_zooms_field_errors(client: ZoomClient) -> None:
    with pytest.raises(ZoomAPIError) as info:
        await client.request("POST", "/users", json={"action": "create"})
    assert info.value.status == 400
    assert info.value.code == 300
    assert info.value.errors == [{"field": "user_info.email", "message": "Invalid field."}]


# -- requests ----------------------------------------------------------------------------


async def test_request_sends_params_and_json_and_decodes_the_answer(
    fake_zoom: FakeZoom, client: ZoomClient
) -> None:
    body = {"action": "create", "user_info": {"email": "new@example.com", "type": 1}}
    created = await client.request("post", "/users", json=body)
    assert created["email"] == "new@example.com"
    fake_zoom.users[created["id"]]["status"] = "active"
    page = await client.request("GET", "users", params={"page_size": 1})
    assert page["page_size"] == 1
    assert len(page["users"]) == 1
    assert page["total_records"] == 2


async def test_a_204_answer_returns_none(fake_zoom: FakeZoom, client: ZoomClient) -> None:
    fake_zoom.add_user({"id": "gone", "email": "gone@example.com"})
    assert await client.request("DELETE", "/users/gone") is None
    assert fake_zoom.find_user("gone") is None


async def test_an_error_names_method_and_path_without_the_query(client: ZoomClient) -> None:
    with pytest.raises(NotFoundError) as info:
        await client.request("GET", "/users/nobody", params={"login_type": "100"})
    assert (info.value.method, info.value.path) == ("GET", "/v2/users/nobody")
    assert "login_type" not in str(info.value)


@pytest.mark.parametrize("path", ["/users?page_size=1", "https://example.com/v2/users", ""])
async def test_paths_with_a_query_or_a_host_are_refused(client: ZoomClient, path: str) -> None:
    with pytest.raises(ValueError, match="path"):
        await client.request("GET", path)


async def test_use_token_api_url_sends_requests_to_the_tokens_regional_host(
    fake_zoom: FakeZoom, tokens: TokenManager
) -> None:
    # The base URL is unreachable; only the token's api_url (the fake) can answer.
    async with ZoomClient(tokens, "http://127.0.0.1:9/v2", use_token_api_url=True) as zoom:
        user = await zoom.get_user("me")
    assert user.id == fake_zoom.me_id
    assert (await tokens.get_token()).api_url == fake_zoom.url


@pytest.mark.parametrize(
    "url", ["ftp://api.zoom.us/v2", "api.zoom.us/v2", "https://api.zoom.us/v2?x=1", "https:///v2"]
)
def test_a_bad_base_url_raises_configuration_error(tokens: TokenManager, url: str) -> None:
    with pytest.raises(ConfigurationError, match="base_url"):
        ZoomClient(tokens, url)


# -- lifecycle ---------------------------------------------------------------------------


async def test_a_closed_client_raises_a_clear_runtime_error(
    fake_zoom: FakeZoom, tokens: TokenManager
) -> None:
    zoom = ZoomClient(tokens, fake_zoom.api_base_url)
    async with zoom:
        await zoom.get_user("me")
    with pytest.raises(RuntimeError, match="closed"):
        await zoom.get_user("me")
    await zoom.aclose()  # idempotent


async def test_the_client_leaves_a_session_it_was_given_open(
    fake_zoom: FakeZoom, tokens: TokenManager
) -> None:
    async with aiohttp.ClientSession() as session:
        async with ZoomClient(tokens, fake_zoom.api_base_url, session=session) as zoom:
            await zoom.get_user("me")
        assert not session.closed


async def test_logs_reprs_and_errors_hold_no_token_or_secret(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    texts: list[str] = []
    async with FakeZoom(client_secret=SECRET) as zoom:
        async with (
            TokenManager(zoom.credentials, token_url=zoom.token_url, retry=FAST_RETRY) as tokens,
            ZoomClient(tokens, zoom.api_base_url, retry=FAST_RETRY) as client,
        ):
            user = await client.get_user("me")
            zoom.revoke_all()
            await client.get_user("me")
            zoom.fail_next(1, route="api", fault=rate_limited("QPS", "0"))
            zoom.fail_next(1, route="api", fault=Fault(status=503))
            await client.get_user("me")
            invalid = Fault(status=401, body={"code": 124, "message": "Invalid access token."})
            zoom.fail_next(2, route="api", fault=invalid)
            with pytest.raises(UnauthorizedError) as info:
                await client.get_user("me")
            texts += [str(info.value), repr(info.value), repr(client), repr(user)]
        issued = list(zoom.issued_tokens)
    logged = [record.getMessage() for record in caplog.records]
    assert any("invalidating it and retrying once" in line for line in logged)
    for text in texts + logged:
        assert SECRET not in text
        for access_token in issued:
            assert access_token not in text


async def test_an_unreachable_api_is_an_api_connection_error_after_retries(
    fake_zoom: FakeZoom,
) -> None:
    import socket

    from zoom_s2s import APIConnectionError, RetryPolicy, TokenManager, ZoomClient

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{sock.getsockname()[1]}/v2"
    policy = RetryPolicy(attempts=3, wait_initial=0.01, wait_jitter=0)
    tokens = TokenManager(fake_zoom.credentials, token_url=fake_zoom.token_url)
    async with tokens, ZoomClient(tokens, base_url=dead, retry=policy) as zoom:
        with pytest.raises(APIConnectionError, match="after 3 attempts") as info:
            await zoom.get_user("me")
        with pytest.raises(APIConnectionError, match="not retried"):
            await zoom.request("POST", "/users", json={"action": "create"})
    assert isinstance(info.value.__cause__, OSError)
