"""The token request against the fake Zoom on loopback: grant, parsing, retries."""

from __future__ import annotations

import base64
import datetime as dt
import socket
import time
from collections.abc import AsyncIterator

import aiohttp
import pytest
import pytest_asyncio

from zoom_s2s import (
    ConfigurationError,
    Credentials,
    InvalidCredentialsError,
    MalformedTokenResponseError,
    RetryPolicy,
    TokenEndpointError,
    TokenManager,
    TokenRateLimitedError,
    request_token,
)
from zoom_s2s.oauth import parse_retry_after
from zoom_s2s.testing import FakeZoom, Fault

from ..support import FAST_RETRY


def basic_auth(creds: Credentials) -> str:
    return "Basic " + base64.b64encode(f"{creds.client_id}:{creds.client_secret}".encode()).decode()


@pytest_asyncio.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as http:
        yield http


async def fetch(
    zoom: FakeZoom,
    session: aiohttp.ClientSession,
    credentials: Credentials | None = None,
    **kwargs: object,
) -> object:
    return await request_token(
        session,
        credentials or zoom.credentials,
        token_url=zoom.token_url,
        retry=kwargs.pop("retry", FAST_RETRY),  # type: ignore[arg-type]
        **kwargs,  # type: ignore[arg-type]
    )


async def test_grant_returns_a_token_whose_expiry_counts_from_the_send(
    fake_zoom: FakeZoom, session: aiohttp.ClientSession
) -> None:
    fake_zoom.expires_in = 3599
    fake_zoom.latency = 0.2
    before = time.time()
    token = await request_token(session, fake_zoom.credentials, token_url=fake_zoom.token_url)
    assert before <= token.issued_at <= before + 0.1  # the send, not the answer 0.2 s later
    assert token.expires_at == pytest.approx(token.issued_at + 3599)
    assert token.access_token in fake_zoom.issued_tokens
    assert token.scopes == ("user:read:admin", "meeting:write:admin")
    assert token.api_url == fake_zoom.url
    assert fake_zoom.token_requests == 1


async def test_two_transient_5xx_then_success_takes_three_requests(
    fake_zoom: FakeZoom, session: aiohttp.ClientSession
) -> None:
    fake_zoom.fail_next(2, fault=Fault(status=503))
    token = await fetch(fake_zoom, session)
    assert fake_zoom.token_requests == 3
    assert fake_zoom.tokens_issued == 1
    assert token.access_token == fake_zoom.issued_tokens[0]  # type: ignore[attr-defined]


async def test_invalid_client_is_raised_after_one_request(
    fake_zoom: FakeZoom, session: aiohttp.ClientSession
) -> None:
    wrong = Credentials(fake_zoom.credentials.account_id, "fake-client-id", "wrong-secret-xyz")
    with pytest.raises(InvalidCredentialsError) as info:
        await fetch(fake_zoom, session, wrong)
    assert fake_zoom.token_requests == 1
    assert info.value.error == "invalid_client"
    assert info.value.status == 401
    assert "ZOOM_CLIENT_SECRET" in str(info.value)
    assert "wrong-secret-xyz" not in str(info.value)


async def test_unknown_account_is_invalid_request_and_not_retried(
    fake_zoom: FakeZoom, session: aiohttp.ClientSession
) -> None:
    wrong = Credentials("no-such-account", "fake-client-id", fake_zoom.credentials.client_secret)
    with pytest.raises(InvalidCredentialsError, match="ZOOM_ACCOUNT_ID") as info:
        await fetch(fake_zoom, session, wrong)
    assert info.value.error == "invalid_request"
    assert fake_zoom.token_requests == 1


@pytest.mark.parametrize("status", [400, 403, 404, 405])
async def test_other_4xx_are_permanent(
    fake_zoom: FakeZoom, session: aiohttp.ClientSession, status: int
) -> None:
    fake_zoom.fail_next(5, fault=Fault(status=status, body="<html>nope</html>", content_type="text/html"))
    with pytest.raises(InvalidCredentialsError, match=f"HTTP {status}"):
        await fetch(fake_zoom, session)
    assert fake_zoom.token_requests == 1


async def test_5xx_storm_gives_up_after_the_policy_attempts(
    fake_zoom: FakeZoom, session: aiohttp.ClientSession
) -> None:
    fake_zoom.fail_next(10, fault=Fault(status=502, body="bad gateway", content_type="text/plain"))
    with pytest.raises(TokenEndpointError, match="gave up after 4 attempts") as info:
        await fetch(fake_zoom, session)
    assert info.value.status == 502
    assert fake_zoom.token_requests == FAST_RETRY.attempts


async def test_429_honours_retry_after_and_then_succeeds(
    fake_zoom: FakeZoom, session: aiohttp.ClientSession
) -> None:
    fake_zoom.fail_next(1, fault=Fault(status=429, headers={"Retry-After": "0.3"}))
    started = time.monotonic()
    await fetch(fake_zoom, session)
    assert time.monotonic() - started >= 0.3  # waited as told, not FAST_RETRY's 10 ms
    assert fake_zoom.token_requests == 2


async def test_429_on_every_attempt_is_token_rate_limited(
    fake_zoom: FakeZoom, session: aiohttp.ClientSession
) -> None:
    fake_zoom.fail_next(10, fault=Fault(status=429))
    with pytest.raises(TokenRateLimitedError):
        await fetch(fake_zoom, session)
    assert fake_zoom.token_requests == FAST_RETRY.attempts


async def test_a_timeout_is_retried(fake_zoom: FakeZoom, session: aiohttp.ClientSession) -> None:
    fake_zoom.fail_next(1, fault=Fault(status=200, delay=2.0))
    await fetch(fake_zoom, session, request_timeout=0.3)
    assert fake_zoom.token_requests == 2


async def test_timeouts_on_every_attempt_end_in_a_clear_error(
    fake_zoom: FakeZoom, session: aiohttp.ClientSession
) -> None:
    fake_zoom.fail_next(3, fault=Fault(status=200, delay=2.0))
    policy = RetryPolicy(attempts=2, wait_initial=0.01, wait_jitter=0)
    with pytest.raises(TokenEndpointError, match=r"timed out after 0\.2 s"):
        await fetch(fake_zoom, session, request_timeout=0.2, retry=policy)
    assert fake_zoom.token_requests == 2


async def test_a_connection_reset_is_retried(
    fake_zoom: FakeZoom, session: aiohttp.ClientSession
) -> None:
    fake_zoom.fail_next(1, fault=Fault(reset=True))
    await fetch(fake_zoom, session)
    assert fake_zoom.token_requests == 2


async def test_connection_refused_is_a_token_endpoint_error(session: aiohttp.ClientSession) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    creds = Credentials("a", "c", "secret-never-shown")
    policy = RetryPolicy(attempts=2, wait_initial=0.01, wait_jitter=0)
    with pytest.raises(TokenEndpointError, match="ClientConnectorError") as info:
        await request_token(
            session, creds, token_url=f"http://127.0.0.1:{port}/oauth/token", retry=policy
        )
    assert "secret-never-shown" not in str(info.value)


MALFORMED = [
    pytest.param("<!DOCTYPE html><html>proxy error</html>", "text/html", "an HTML page", id="html"),
    pytest.param("not json at all", "text/plain", "not JSON", id="text"),
    pytest.param('["a", "list"]', "application/json", "a list, not an object", id="list"),
    pytest.param('"a string"', "application/json", "a str, not an object", id="string"),
    pytest.param('{"expires_in": 3599}', "application/json", "'access_token' is missing", id="no-token"),
    pytest.param('{"access_token": "", "expires_in": 3599}', "application/json", "missing or empty", id="empty-token"),
    pytest.param('{"access_token": 12, "expires_in": 3599}', "application/json", "missing or empty", id="number-token"),
    pytest.param('{"access_token": "t"}', "application/json", "'expires_in' is missing", id="no-expiry"),
    pytest.param('{"access_token": "t", "expires_in": "soon"}', "application/json", "'expires_in' is a str", id="text-expiry"),
    pytest.param('{"access_token": "t", "expires_in": 0}', "application/json", "'expires_in' is 0", id="zero-expiry"),
    pytest.param('{"access_token": "t", "expires_in": -5}', "application/json", "'expires_in' is -5", id="negative-expiry"),
    pytest.param('{"access_token": "t", "expires_in": true}', "application/json", "'expires_in' is True", id="bool-expiry"),
    pytest.param('{"access_token": "t", "expires_in": 3599, "token_type": "mac"}', "application/json", "'token_type'", id="not-bearer"),
]


@pytest.mark.parametrize(("body", "content_type", "problem"), MALFORMED)
async def test_malformed_answers_are_clear_errors_and_not_retried(
    fake_zoom: FakeZoom,
    session: aiohttp.ClientSession,
    body: str,
    content_type: str,
    problem: str,
) -> None:
    fake_zoom.fail_next(1, fault=Fault(status=200, body=body, content_type=content_type))
    with pytest.raises(MalformedTokenResponseError) as info:
        await fetch(fake_zoom, session)
    assert problem in str(info.value)
    assert "token URL" in str(info.value)  # says what to check
    assert fake_zoom.token_requests == 1


async def test_a_numeric_string_expires_in_is_accepted(
    fake_zoom: FakeZoom, session: aiohttp.ClientSession
) -> None:
    fake_zoom.fail_next(1, fault=Fault(status=200, body={"access_token": "t", "expires_in": "60"}))
    token = await fetch(fake_zoom, session)
    assert token.lifetime == pytest.approx(60)  # type: ignore[attr-defined]


async def test_the_fake_accepts_query_parameters_as_zoom_does(
    fake_zoom: FakeZoom, session: aiohttp.ClientSession
) -> None:
    creds = fake_zoom.credentials
    async with session.post(
        fake_zoom.token_url,
        params={"grant_type": "account_credentials", "account_id": creds.account_id},
        headers={"Authorization": basic_auth(creds)},
    ) as response:
        assert response.status == 200
        assert (await response.json())["token_type"] == "bearer"


async def test_the_fake_rejects_a_wrong_grant(fake_zoom: FakeZoom, session: aiohttp.ClientSession) -> None:
    creds = fake_zoom.credentials
    async with session.post(
        fake_zoom.token_url,
        data={"grant_type": "client_credentials", "account_id": creds.account_id},
        headers={"Authorization": basic_auth(creds)},
    ) as response:
        assert response.status == 400
        assert (await response.json())["error"] == "unsupported_grant_type"


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("2", 2.0),
        ("0.25", 0.25),
        ("-3", 0.0),
        ("1970-01-01T00:00:10Z", 5.0),
        ("Thu, 01 Jan 1970 00:00:12 GMT", 7.0),
        ("1970-01-01T00:00:01Z", 0.0),
        ("whenever", None),
        ("", None),
        (None, None),
    ],
)
def test_retry_after_accepts_seconds_iso_and_http_dates(header: str | None, expected: float | None) -> None:
    assert parse_retry_after(header, now=5.0) == expected


def test_retry_after_iso_without_zone_is_utc() -> None:
    when = dt.datetime(2030, 1, 1, 0, 0, 30)
    now = dt.datetime(2030, 1, 1, tzinfo=dt.timezone.utc).timestamp()
    assert parse_retry_after(when.isoformat(), now=now) == 30.0


@pytest.mark.parametrize("url", ["ftp://zoom.us/oauth/token", "zoom.us/oauth/token", "https://", ""])
def test_a_bad_token_url_is_a_configuration_error(url: str) -> None:
    creds = Credentials("a", "c", "s")
    with pytest.raises(ConfigurationError, match="token_url"):
        TokenManager(creds, token_url=url)


async def test_a_slow_success_is_still_a_token(
    fake_zoom: FakeZoom, session: aiohttp.ClientSession
) -> None:
    fake_zoom.fail_next(1, fault=Fault(delay=0.3, then_serve=True))
    started = time.monotonic()
    token = await fetch(fake_zoom, session)
    assert time.monotonic() - started >= 0.3
    assert token.access_token == fake_zoom.issued_tokens[0]  # type: ignore[attr-defined]
    assert fake_zoom.token_requests == 1
