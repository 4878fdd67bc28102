"""ZoomClient against the fake Zoom on loopback: users, 401/429/5xx policy, errors, lifecycle."""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import logging
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any
from urllib.parse import quote

import aiohttp
import pytest
import stamina

from zoom_s2s import TokenManager
from zoom_s2s.client import User, ZoomClient
from zoom_s2s.errors import (
    APIConnectionError,
    ConfigurationError,
    DailyLimitExceededError,
    ForeignRedirectError,
    MissingScopesError,
    NotFoundError,
    RateLimitedError,
    ServerError,
    UnauthorizedError,
    ZoomAPIError,
)
from zoom_s2s.testing import FakeClock, FakeZoom, Fault

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
        # The fleet honours the pause (bounded by RateLimits.max_pause, 60 s): the retry
        # is held back at once instead of being sent into a window Zoom said is closed.
        with pytest.raises(RateLimitedError) as info:
            await asyncio.wait_for(zoom.get_user("me"), timeout=5)
    assert not info.value.sent
    assert fake_zoom.api_requests == 1


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


async def test_missing_scopes_refetch_once_then_raise_and_say_to_add_the_scope() -> None:
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
        assert info.value.required_scopes == ("user:write:admin",)
        assert info.value.granted_scopes == frozenset({"user:read:admin"})
        # One fresh token (grants reach only new tokens); it lacks the scope too,
        # so the request is not sent again.
        assert zoom.api_requests == 1
        assert zoom.tokens_issued == 2


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
        users = [await zoom.get_user(who) for who in ("me", "me", fake_zoom.me_id, "me")]
    assert {user.id for user in users} == {fake_zoom.me_id}
    assert fake_zoom.api_requests == 4  # every one, remembered URLs included, went there
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

    from zoom_s2s import RetryPolicy, TokenManager, ZoomClient
    from zoom_s2s.errors import APIConnectionError

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


# -- where the token goes -----------------------------------------------------------------


def redirect_to(url: str, status: int = 302) -> Fault:
    return Fault(status=status, headers={"Location": url}, body="")


async def test_a_redirect_to_another_origin_is_followed_without_the_token(
    fake_zoom: FakeZoom, client: ZoomClient, elsewhere: FakeZoom
) -> None:
    fake_zoom.fail_next(1, route="api", fault=redirect_to(elsewhere.api_base_url + "/users/me"))
    # The other server answers the unsigned request with 401 code 124: that says
    # nothing of the token, which is neither invalidated nor refetched.
    with pytest.raises(UnauthorizedError):
        await client.get_user("me")
    assert elsewhere.api_requests_by_token == {"": 1}
    assert fake_zoom.tokens_issued == 1
    assert (await client.get_user("me")).id == fake_zoom.me_id


async def test_a_redirect_to_another_origin_can_be_refused(
    fake_zoom: FakeZoom, tokens: TokenManager, elsewhere: FakeZoom
) -> None:
    fake_zoom.fail_next(1, route="api", fault=redirect_to(elsewhere.api_base_url + "/users/me"))
    async with ZoomClient(
        tokens, fake_zoom.api_base_url, retry=FAST_RETRY, on_foreign_redirect="refuse"
    ) as zoom:
        with pytest.raises(ForeignRedirectError) as info:
            await zoom.get_user("me")
        assert (await zoom.get_user("me")).id == fake_zoom.me_id
    assert isinstance(info.value, ZoomAPIError)
    assert info.value.location == f"http://127.0.0.1:{elsewhere.port}"
    assert elsewhere.api_requests == 0
    assert fake_zoom.api_requests == 2  # refused, not retried


async def test_a_first_request_that_gets_no_answer_holds_no_one_back(
    fake_zoom: FakeZoom, tokens: TokenManager, elsewhere: FakeZoom, fake_clock: FakeClock
) -> None:
    fake_zoom.fail_next(1, route="api", fault=redirect_to(elsewhere.api_base_url + "/users/me"))
    async with ZoomClient(tokens, fake_zoom.api_base_url, on_foreign_redirect="refuse") as zoom:
        first = asyncio.create_task(zoom.get_user("me"))  # the budget's first: it goes alone
        second = asyncio.create_task(zoom.get_user("me"))  # waits for the first's answer
        with pytest.raises(ForeignRedirectError):
            await first  # ... which never comes
        start = fake_clock.monotonic()
        assert (await second).id == fake_zoom.me_id
        assert fake_clock.monotonic() - start < 1  # not the probe's 2 s


async def test_a_redirect_within_the_api_origin_is_followed_with_the_token(
    fake_zoom: FakeZoom, client: ZoomClient
) -> None:
    fake_zoom.fail_next(1, route="api", fault=redirect_to("/v2/users/me", status=307))
    assert (await client.request("GET", "/users"))["id"] == fake_zoom.me_id
    assert fake_zoom.api_unauthorized == 0


async def test_a_tokens_api_url_on_a_foreign_host_is_not_used(
    elsewhere: FakeZoom, caplog: pytest.LogCaptureFixture
) -> None:
    foreign = f"http://localhost:{elsewhere.port}"
    async with (
        FakeZoom(api_url=foreign) as zoom,
        TokenManager(zoom.credentials, token_url=zoom.token_url, retry=FAST_RETRY) as tokens,
        ZoomClient(tokens, zoom.api_base_url, use_token_api_url=True, retry=FAST_RETRY) as client,
    ):
        assert (await tokens.get_token()).api_url == foreign
        assert (await client.get_user("me")).id == zoom.me_id
        await client.get_user("me")
        assert zoom.api_requests == 2
    assert elsewhere.api_requests == 0
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1  # once per api_url, not per request
    assert "neither a Zoom host" in warnings[0]


@pytest.mark.parametrize("api_url", ["https://eu01api-www4local.zoom.us", "https://zoomgov.com"])
def test_a_tokens_api_url_on_a_zoom_host_is_used(tokens: TokenManager, api_url: str) -> None:
    zoom = ZoomClient(tokens, "https://api.zoom.us/v2", use_token_api_url=True)
    assert zoom._destinations.base_for(api_url) == api_url + "/v2"
    assert zoom._destinations.base_for("https://zoom.us.example.com") == zoom.base_url
    assert zoom._destinations.base_for("http://api.zoom.us") == zoom.base_url  # plain http


@pytest.mark.parametrize("url", ["http://api.example.com/v2", "http://192.168.1.20/v2"])
def test_plain_http_to_a_host_that_is_not_loopback_is_refused_unless_allowed(
    tokens: TokenManager, url: str
) -> None:
    with pytest.raises(ConfigurationError, match="allow_insecure_http"):
        ZoomClient(tokens, url)
    assert ZoomClient(tokens, url, allow_insecure_http=True).base_url == url


# -- hostile answers -------------------------------------------------------------------------


async def test_a_bearer_token_echoed_back_is_scrubbed_from_the_error(
    fake_zoom: FakeZoom, tokens: TokenManager, client: ZoomClient
) -> None:
    token = (await tokens.get_token()).access_token
    echoes = [
        f"Authorization: Bearer {token}",
        quote(token, safe=""),
        base64.b64encode(token.encode()).decode(),
    ]
    body = {
        "code": 300,
        "message": " / ".join(echoes),
        "errors": [{"field": "Authorization", "message": f"Bearer {token}", "got": [token]}],
    }
    fake_zoom.fail_next(1, route="api", fault=Fault(status=400, body=body))
    with pytest.raises(ZoomAPIError) as info:
        await client.request("POST", "/users", json={"action": "create"})
    error = info.value
    texts = [str(error), repr(error), str(error.message), str(error.errors), str(error.args)]
    for text in texts:
        for echo in [token, *echoes[1:]]:
            assert echo not in text
    assert "Bearer ***" in str(error)
    assert error.errors == [{"field": "Authorization", "message": "Bearer ***", "got": ["***"]}]


async def test_an_answer_over_max_response_bytes_is_a_clear_error(
    fake_zoom: FakeZoom, tokens: TokenManager
) -> None:
    users = {"users": [{"id": str(n), "email": f"u{n}@example.com"} for n in range(200)]}
    async with ZoomClient(
        tokens, fake_zoom.api_base_url, retry=FAST_RETRY, max_response_bytes=4096
    ) as zoom:
        fake_zoom.fail_next(1, route="api", fault=Fault(status=200, body=users))
        with pytest.raises(ZoomAPIError, match="more than the 4,096 accepted") as info:
            await zoom.request("GET", "/users")
        assert "max_response_bytes" in str(info.value)
        assert info.value.status == 200
        assert (await zoom.get_user("me")).id == fake_zoom.me_id  # the client is fine


@pytest.mark.parametrize("max_response_bytes", [0, -1, 1.5, True])
def test_a_bad_max_response_bytes_is_a_configuration_error(
    tokens: TokenManager, max_response_bytes: object
) -> None:
    with pytest.raises(ConfigurationError, match="max_response_bytes"):
        ZoomClient(tokens, max_response_bytes=max_response_bytes)  # type: ignore[arg-type]


@pytest.mark.parametrize("status", [200, 400, 503])
async def test_deeply_nested_json_is_a_zoom_api_error_not_a_recursion_error(
    fake_zoom: FakeZoom, client: ZoomClient, status: int
) -> None:
    deep = "[" * 200_000 + "]" * 200_000
    fault = Fault(status=status, body=deep)
    fake_zoom.fail_next(1, route="api", fault=fault)
    with pytest.raises(ZoomAPIError, match="malformed JSON") as info:
        await client.request("POST", "/users", json={"action": "create"})
    assert info.value.status == status
    assert len(str(info.value)) < 1000  # summarised, not quoted


# -- one retrying caller ----------------------------------------------------------------------


@pytest.fixture
def retries_seen() -> Iterator[list[stamina.instrumentation.RetryDetails]]:
    """Every retry stamina schedules, as its instrumentation reports it."""
    seen: list[stamina.instrumentation.RetryDetails] = []

    def record(details: stamina.instrumentation.RetryDetails) -> None:
        seen.append(details)

    before = stamina.instrumentation.get_on_retry_hooks()
    stamina.instrumentation.set_on_retry_hooks([record])
    yield seen
    stamina.instrumentation.set_on_retry_hooks(before)


async def test_every_retry_goes_through_stamina_the_first_one_too(
    fake_zoom: FakeZoom,
    client: ZoomClient,
    retries_seen: list[stamina.instrumentation.RetryDetails],
) -> None:
    fake_zoom.fail_next(2, route="api", fault=Fault(status=503))
    await client.get_user("me")
    assert [type(r.caused_by) for r in retries_seen] == [ServerError, ServerError]
    assert [r.retry_num for r in retries_seen] == [1, 2]
    assert fake_zoom.api_requests == 3


async def test_the_invalid_token_retry_happens_within_an_attempt_not_as_a_stamina_retry(
    fake_zoom: FakeZoom,
    client: ZoomClient,
    retries_seen: list[stamina.instrumentation.RetryDetails],
) -> None:
    await client.get_user("me")
    fake_zoom.revoke_all()
    fake_zoom.fail_next(1, route="api", fault=Fault(status=503))
    await client.get_user("me")
    assert [type(r.caused_by) for r in retries_seen] == [ServerError]
    assert fake_zoom.tokens_issued == 2
    assert fake_zoom.api_requests == 4  # 200; 503, then 401 code 124 and its retry


async def test_a_successful_request_sets_up_no_retry_machinery(
    client: ZoomClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    await client.get_user("me")  # the token request has retries of its own
    made: list[object] = []
    real = stamina.retry_context

    def counted(*args: Any, **kwargs: Any) -> Any:
        made.append(args)
        return real(*args, **kwargs)

    monkeypatch.setattr(stamina, "retry_context", counted)
    for _ in range(5):
        await client.get_user("me")
    assert made == []


# -- User ---------------------------------------------------------------------------------


def test_a_user_reads_its_fields_from_the_answer_and_tolerates_odd_types() -> None:
    user = User.from_api(
        {"id": 42, "email": ["x"], "type": "2", "pmi": True, "created_at": "not a date"}
    )
    assert user.id == "42"
    assert (user.email, user.type, user.pmi, user.created_at) == (None, 2, None, None)
    assert user.last_login_time is None
    assert user == User.from_api(
        {"id": 42, "email": ["x"], "type": "2", "pmi": True, "created_at": "not a date"}
    )
    assert user != User.from_api({"id": 42})
    assert hash(user) == hash(User.from_api({"id": "42"}))


@pytest.mark.parametrize("data", [None, [], {"id": ""}, {"id": True}, {"email": "a@b.c"}])
def test_an_answer_without_an_id_is_not_a_user(data: object) -> None:
    with pytest.raises(ValueError, match=r"id|JSON object"):
        User.from_api(data)


def test_a_user_is_frozen() -> None:
    import attrs

    user = User.from_api({"id": "u1"})
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        user.id = "u2"  # type: ignore[misc]


async def test_a_redirect_loop_is_an_api_connection_error_that_holds_no_token(
    fake_zoom: FakeZoom, tokens: TokenManager, client: ZoomClient
) -> None:
    fake_zoom.fail_next(30, route="api", fault=redirect_to("/v2/users/me"))
    with pytest.raises(APIConnectionError, match="TooManyRedirects") as info:
        await client.get_user("me")
    token = (await tokens.get_token()).access_token
    error: BaseException | None = info.value
    while error is not None:  # the whole chain, attributes included
        assert token not in repr(vars(error))
        error = error.__cause__ or error.__context__
