"""The token request against the fake Zoom on loopback: grant, parsing, retries."""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import logging
import socket
import time
import urllib.parse
from collections.abc import AsyncIterator, Awaitable, Callable

import aiohttp
import pytest
import pytest_asyncio
from aiohttp import web
from aiohttp.test_utils import TestServer

from zoom_s2s import Credentials, RetryPolicy, TokenManager
from zoom_s2s.errors import (
    ConfigurationError,
    InvalidCredentialsError,
    MalformedTokenResponseError,
    TokenEndpointError,
    TokenError,
    TokenRateLimitedError,
)
from zoom_s2s.oauth import MAX_REPLY_BYTES, parse_retry_after, request_token, validate_url
from zoom_s2s.testing import FakeClock, FakeZoom, Fault

from ..support import FAST_RETRY, instant_retries


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
    fake_zoom: FakeZoom, session: aiohttp.ClientSession, fake_clock: FakeClock
) -> None:
    fake_zoom.expires_in = 3599
    fake_zoom.latency = 0.2
    before = fake_clock.wall()
    token = await request_token(session, fake_zoom.credentials, token_url=fake_zoom.token_url)
    assert before <= token.issued_ts <= before + 0.1  # the send, not the answer 0.2 s later
    assert token.expires_ts == pytest.approx(token.issued_ts + 3599)
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
    assert info.value.status == 400  # as Zoom answers (docs/zoom.rst)
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
    fake_zoom.fail_next(1, fault=Fault(status=200, delay=0.5))
    await fetch(fake_zoom, session, request_timeout=0.3)
    assert fake_zoom.token_requests == 2


async def test_timeouts_on_every_attempt_end_in_a_clear_error(
    fake_zoom: FakeZoom, session: aiohttp.ClientSession
) -> None:
    fake_zoom.fail_next(3, fault=Fault(status=200, delay=0.4))
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


async def test_the_fake_refuses_query_parameters_as_zoom_does(
    fake_zoom: FakeZoom, session: aiohttp.ClientSession
) -> None:
    creds = fake_zoom.credentials
    async with session.post(
        fake_zoom.token_url,
        params={"grant_type": "account_credentials", "account_id": creds.account_id},
        headers={"Authorization": basic_auth(creds)},
    ) as response:
        assert response.status == 400
        assert (await response.json())["error"] == "invalid_request"


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
    fake_zoom: FakeZoom, session: aiohttp.ClientSession, fake_clock: FakeClock
) -> None:
    fake_zoom.fail_next(1, fault=Fault(delay=0.3, then_serve=True))
    started = fake_clock.monotonic()
    token = await fetch(fake_zoom, session)
    assert fake_clock.monotonic() - started == pytest.approx(0.3)
    assert token.access_token == fake_zoom.issued_tokens[0]  # type: ignore[attr-defined]
    assert fake_zoom.token_requests == 1


# -- a scripted token endpoint on loopback ------------------------------------------------

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class Scripted:
    """A real aiohttp token endpoint on loopback whose answer each test writes."""

    def __init__(self) -> None:
        self.handler: Handler | None = None
        self.requests = 0
        self.server = TestServer(web.Application())
        self.server.app.router.add_post("/oauth/token", self._handle)

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        self.requests += 1
        assert self.handler is not None
        return await self.handler(request)

    @property
    def token_url(self) -> str:
        return str(self.server.make_url("/oauth/token"))

    def answer_json(self, data: object, status: int = 200, **kwargs: object) -> None:
        async def handler(_request: web.Request) -> web.StreamResponse:
            return web.json_response(data, status=status, **kwargs)  # type: ignore[arg-type]

        self.handler = handler


@pytest_asyncio.fixture
async def endpoint() -> AsyncIterator[Scripted]:
    scripted = Scripted()
    await scripted.server.start_server()
    try:
        yield scripted
    finally:
        await scripted.server.close()


CREDS = Credentials("acct", "client-id", "hostile/s3cr3t+value=")
ONE_TRY = RetryPolicy(attempts=1)


async def token_from(endpoint: Scripted, session: aiohttp.ClientSession, **kwargs: object) -> object:
    return await request_token(
        session,
        CREDS,
        token_url=endpoint.token_url,
        retry=kwargs.pop("retry", ONE_TRY),  # type: ignore[arg-type]
        **kwargs,  # type: ignore[arg-type]
    )


# -- credentials a hostile endpoint reflects never leak -----------------------------------


def echoes(authorization: str) -> dict[str, str]:
    """Everything the endpoint can build from the Authorization header it received."""
    pair = base64.b64decode(authorization.removeprefix("Basic ")).decode()
    secret = pair.split(":", 1)[1]
    b64 = base64.b64encode(pair.encode()).decode()
    return {
        "header": authorization,
        "base64": b64,
        "base64-unpadded": b64.rstrip("="),
        "base64-urlsafe": base64.urlsafe_b64encode(pair.encode()).decode().rstrip("="),
        "pair": pair,
        "secret": secret,
        "quoted": urllib.parse.quote(secret, safe=""),
        "quoted-lowercase": urllib.parse.quote(secret, safe="").lower(),
        "quote-plus": urllib.parse.quote_plus(secret),
        "quoted-pair": urllib.parse.quote(pair, safe=""),
        "secret-in-a-long-reason": "x" * 185 + secret,  # cut at 200 characters
        "header-in-a-long-reason": "x" * 180 + authorization,
    }


def secret_windows() -> set[str]:
    """Every 12-character piece of every encoding of the secret: no fragment may leak."""
    encoded = echoes("Basic " + base64.b64encode(f"{CREDS.client_id}:{CREDS.client_secret}".encode()).decode())
    encodings = [value.lstrip("x") for key, value in encoded.items() if key != "header"]
    return {
        form[i : i + 12] for form in encodings for i in range(len(form) - 11) if "client-id" not in form[i : i + 12]
    }


def everything_said(exc: BaseException, caplog: pytest.LogCaptureFixture) -> list[str]:
    """str, repr and every attribute of the error and its chain, and every log line."""
    said: list[str] = []
    seen: BaseException | None = exc
    while seen is not None:
        said += [str(seen), repr(seen), *(repr(value) for value in vars(seen).values())]
        said += [repr(arg) for arg in seen.args]
        seen = seen.__cause__ or seen.__context__
    for record in caplog.records:
        said += [record.getMessage(), repr(record.args), repr(vars(record))]
    return said


REFLECTED_STATUSES = [200, 302, 400, 401, 429, 500, 503]


@pytest.mark.parametrize("status", REFLECTED_STATUSES)
@pytest.mark.parametrize("echo", sorted(echoes("Basic " + base64.b64encode(b"i:s").decode())))
async def test_a_reflected_secret_leaks_in_no_encoding_field_or_log(
    endpoint: Scripted,
    session: aiohttp.ClientSession,
    caplog: pytest.LogCaptureFixture,
    status: int,
    echo: str,
) -> None:
    caplog.set_level(logging.DEBUG)

    async def reflect(request: web.Request) -> web.StreamResponse:
        said = echoes(request.headers["Authorization"])[echo]
        body = await request.text()
        fields = {"error": said, "reason": said, "message": said, "body": body}
        if status == 200:  # a "token" made of the reflection, in every field
            fields.update(access_token=said, token_type=said, expires_in=said, scope=said)
        return web.json_response(
            fields,
            status=status,
            reason=said[-60:],  # the HTTP reason phrase
            headers={"X-Echo": said, "Retry-After": said, "Location": f"https://x.example/{said}"},
        )

    endpoint.handler = reflect
    with instant_retries(), pytest.raises(TokenError) as info:
        await token_from(endpoint, session, retry=FAST_RETRY)
    said = "\n".join(everything_said(info.value, caplog))
    leaked = {window for window in secret_windows() if window in said}
    assert not leaked, said
    assert endpoint.requests >= 1


async def test_a_reflected_secret_is_scrubbed_but_the_rest_of_the_reason_stays(
    endpoint: Scripted, session: aiohttp.ClientSession
) -> None:
    async def reflect(request: web.Request) -> web.StreamResponse:
        auth = request.headers["Authorization"]
        return web.json_response({"error": "invalid_client", "reason": f"bad {auth}!"}, status=401)

    endpoint.handler = reflect
    with pytest.raises(InvalidCredentialsError) as info:
        await token_from(endpoint, session)
    assert info.value.reason == "bad ***!"
    assert info.value.error == "invalid_client"
    assert "bad ***!" in str(info.value)
    assert "ZOOM_CLIENT_SECRET" in str(info.value)  # the hint still says what to do


# -- plain HTTP only to loopback unless the user opts in -----------------------------------


@pytest.mark.parametrize("url", ["http://example.com/oauth/token", "http://10.0.0.1/oauth/token", "HTTP://zoom.us/oauth/token"])
def test_plain_http_to_another_host_is_refused_with_the_reason_and_the_way_out(url: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        validate_url(url, "token_url")
    message = str(info.value)
    assert "clear text" in message
    assert "allow_insecure_http=True" in message
    assert "https://" in message


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8080/oauth/token",
        "http://127.9.8.7/oauth/token",
        "http://localhost:1/oauth/token",
        "http://[::1]:8080/oauth/token",
        "https://example.com/oauth/token",
    ],
)
def test_https_and_plain_http_to_loopback_are_accepted(url: str) -> None:
    assert validate_url(url, "token_url").host


def test_plain_http_is_accepted_when_the_user_opts_in() -> None:
    assert validate_url("http://example.com/t", "token_url", allow_insecure_http=True).host == "example.com"


async def test_request_token_refuses_plain_http_before_sending(session: aiohttp.ClientSession) -> None:
    with pytest.raises(ConfigurationError, match="clear text"):
        await request_token(session, CREDS, token_url="http://192.0.2.1/oauth/token", retry=ONE_TRY)


async def test_request_token_sends_over_plain_http_when_allowed(
    endpoint: Scripted, session: aiohttp.ClientSession
) -> None:
    endpoint.answer_json({"access_token": "t", "expires_in": 3599})
    token = await token_from(endpoint, session, allow_insecure_http=True)
    assert token.access_token == "t"  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    "url",
    [
        "https://user:pa55word-never-shown@zoom.us/oauth/token",
        "https://:pa55word-never-shown@zoom.us/oauth/token",
        "http://user:pa55word-never-shown@[::1/oauth/token",  # not even parseable
    ],
)
def test_a_url_with_user_and_password_is_refused_without_echoing_the_password(url: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        validate_url(url, "token_url")
    assert "pa55word-never-shown" not in str(info.value)
    assert "token_url" in str(info.value)


def test_a_url_with_a_password_names_the_problem() -> None:
    with pytest.raises(ConfigurationError, match="must not carry a user name or password"):
        validate_url("https://user:pw@zoom.us/oauth/token", "token_url")


# -- expires_in in range, a token that expired on arrival ----------------------------------


@pytest.mark.parametrize(
    "expires_in",
    [1e300, 86401, "1e300", "inf", "nan", "-inf", None, [3599], {"s": 1}, 0.0, -1],
)
async def test_an_expires_in_outside_0_to_a_day_is_malformed(
    endpoint: Scripted, session: aiohttp.ClientSession, expires_in: object
) -> None:
    endpoint.answer_json({"access_token": "t", "expires_in": expires_in})
    with pytest.raises(MalformedTokenResponseError, match=r"'expires_in' is .* at most 86400") as info:
        await token_from(endpoint, session)
    assert "3599" in str(info.value)  # says what Zoom issues


@pytest.mark.parametrize("expires_in", [86400, 3599, "3600", 0.5])
async def test_an_expires_in_up_to_a_day_is_accepted(
    endpoint: Scripted, session: aiohttp.ClientSession, expires_in: object
) -> None:
    endpoint.answer_json({"access_token": "t", "expires_in": expires_in})
    token = await token_from(endpoint, session)
    assert token.lifetime == pytest.approx(float(expires_in))  # type: ignore[attr-defined, arg-type]


async def test_a_token_that_expired_before_its_answer_arrived_is_never_returned(
    endpoint: Scripted, session: aiohttp.ClientSession, fake_clock: FakeClock
) -> None:
    async def slow(_request: web.Request) -> web.StreamResponse:
        await fake_clock.sleep(0.3)
        return web.json_response({"access_token": "t", "expires_in": 0.2})

    endpoint.handler = slow
    with pytest.raises(TokenEndpointError, match="expired on arrival") as info:
        await token_from(endpoint, session, retry=RetryPolicy(attempts=2, wait_initial=0, wait_jitter=0))
    assert info.value.status == 200
    assert endpoint.requests == 2  # a transient failure: retried like a 5xx


# -- a token value that cannot go into a header is refused on arrival ------------------------


@pytest.mark.parametrize(
    "token",
    ["abc\r\nX-Injected: 1", "abc\ndef", "abc def", "abc\tdef", "abc\x00", "tök", "a=b", "Bearer abc", "abc\x7f"],
)
async def test_an_access_token_outside_rfc6750_characters_is_malformed(
    endpoint: Scripted, session: aiohttp.ClientSession, token: str
) -> None:
    endpoint.answer_json({"access_token": token, "expires_in": 3599})
    with pytest.raises(MalformedTokenResponseError, match="'access_token' has characters") as info:
        await token_from(endpoint, session)
    assert token not in str(info.value)


@pytest.mark.parametrize("token", ["eyJhbGciOiJIUzUxMiJ9.eyJ2ZXIiOjl9.a-b_c~d+e/f==", "x"])
async def test_jwt_and_b64_tokens_are_accepted(
    endpoint: Scripted, session: aiohttp.ClientSession, token: str
) -> None:
    endpoint.answer_json({"access_token": token, "expires_in": 3599, "token_type": "Bearer"})
    assert (await token_from(endpoint, session)).access_token == token  # type: ignore[attr-defined]


async def test_a_deeply_nested_token_reply_is_malformed_not_a_recursion_error(
    endpoint: Scripted, session: aiohttp.ClientSession
) -> None:
    nested = "[" * 30_000 + "]" * 30_000

    async def deep(_request: web.Request) -> web.StreamResponse:
        return web.Response(text=nested, content_type="application/json")

    endpoint.handler = deep
    with pytest.raises(MalformedTokenResponseError, match="nested too deeply"):
        await token_from(endpoint, session)


async def test_a_deeply_nested_error_reply_still_gives_the_status_error(
    endpoint: Scripted, session: aiohttp.ClientSession
) -> None:
    async def deep(_request: web.Request) -> web.StreamResponse:
        return web.Response(text='{"a":' * 50_000, status=400, content_type="application/json")

    endpoint.handler = deep
    with pytest.raises(InvalidCredentialsError, match="HTTP 400"):
        await token_from(endpoint, session)


# -- replies are bounded -----------------------------------------------------------------


def streaming(total: int, status: int, sent: list[int]) -> Handler:
    """A handler streaming ``total`` bytes (chunked, no length), counting what it got out."""

    async def stream(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(status=status)
        response.content_type = "application/json"
        await response.prepare(request)
        chunk = b" " * 65536
        try:
            while sent[0] < total:
                await response.write(chunk)
                sent[0] += len(chunk)
        except (ConnectionResetError, ConnectionError):
            pass
        return response

    return stream


HUGE = 64 * 1024 * 1024


async def test_a_huge_token_reply_fails_fast_without_being_read(
    endpoint: Scripted, session: aiohttp.ClientSession
) -> None:
    sent = [0]
    endpoint.handler = streaming(HUGE, 200, sent)
    with pytest.raises(MalformedTokenResponseError, match="more than the 65,536 bytes accepted"):
        await token_from(endpoint, session)
    await asyncio.sleep(0.1)  # let the server notice the closed connection
    assert sent[0] < HUGE  # the client hung up instead of draining it


async def test_a_huge_error_reply_keeps_its_status_class(
    endpoint: Scripted, session: aiohttp.ClientSession
) -> None:
    endpoint.handler = streaming(HUGE, 503, [0])
    with pytest.raises(TokenEndpointError, match=r"HTTP 503 \(the body is more than") as info:
        await token_from(endpoint, session)
    assert info.value.status == 503


async def test_a_declared_huge_length_is_refused_before_reading(
    endpoint: Scripted, session: aiohttp.ClientSession
) -> None:
    async def declared(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(status=200, headers={"Content-Length": str(10**9)})
        await response.prepare(request)
        await response.write(b"{")
        return response

    endpoint.handler = declared
    with pytest.raises(MalformedTokenResponseError, match="1,000,000,000 bytes"):
        await token_from(endpoint, session)


async def test_a_reply_at_the_limit_is_read(endpoint: Scripted, session: aiohttp.ClientSession) -> None:
    body = b'{"access_token": "t", "expires_in": 3599}'
    padded = body[:-1] + b" " * (MAX_REPLY_BYTES - len(body)) + b"}"

    async def full(_request: web.Request) -> web.StreamResponse:
        return web.Response(body=padded, content_type="application/json")

    endpoint.handler = full
    assert (await token_from(endpoint, session)).access_token == "t"  # type: ignore[attr-defined]


# -- retries are logged on zoom_s2s's logger, not by stamina on stderr -----------------------


async def test_retries_are_logged_on_the_zoom_s2s_logger_with_their_context(
    fake_zoom: FakeZoom, session: aiohttp.ClientSession, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    fake_zoom.fail_next(2, fault=Fault(status=503))
    await fetch(fake_zoom, session)
    notices = [r for r in caplog.records if r.name == "zoom_s2s.oauth" and "retrying" in r.getMessage()]
    assert [r.levelno for r in notices] == [logging.INFO, logging.INFO]
    assert "attempt 1 of 4 failed (TokenEndpointError, HTTP 503); retrying in about" in notices[0].getMessage()
    assert not [r for r in caplog.records if r.name == "stamina"]


@pytest.mark.parametrize("status", [400, 503])
async def test_a_reflected_secret_reaches_neither_the_managers_error_nor_its_logs(
    endpoint: Scripted, caplog: pytest.LogCaptureFixture, status: int
) -> None:
    caplog.set_level(logging.DEBUG)

    async def reflect(request: web.Request) -> web.StreamResponse:
        said = request.headers["Authorization"]
        return web.json_response({"error": said, "reason": said}, status=status, reason=said)

    endpoint.handler = reflect
    async with TokenManager(CREDS, token_url=endpoint.token_url, retry=FAST_RETRY) as tokens:
        with pytest.raises(TokenError) as info:
            await tokens.get_token()
        with pytest.raises(TokenError) as again:  # the remembered failure, as others see it
            await tokens.get_token()
    said = "\n".join(everything_said(info.value, caplog) + everything_said(again.value, caplog))
    assert "***" in said
    assert not {window for window in secret_windows() if window in said}, said
