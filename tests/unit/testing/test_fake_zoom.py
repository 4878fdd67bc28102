"""The fake Zoom answers as Zoom does (docs/zoom.rst): checked over loopback."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import json
from collections.abc import AsyncIterator, Mapping
from typing import Any

import aiohttp
import pytest
import pytest_asyncio

from zoom_s2s import Credentials, TokenManager, ZoomClient
from zoom_s2s.errors import InvalidCredentialsError
from zoom_s2s.testing import FakeApp, FakeZoom, Fault
from zoom_s2s.testing.fake_zoom import ApiCall


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


# -- the token endpoint answers as Zoom does ----------------------------------------------


async def test_bad_credentials_are_400_invalid_client_with_zooms_body(
    fake_zoom: FakeZoom, session: aiohttp.ClientSession
) -> None:
    creds = fake_zoom.credentials
    for wrong in (
        Credentials(creds.account_id, creds.client_id, "not-the-secret"),
        Credentials(creds.account_id, "no-such-client", creds.client_secret),
    ):
        status, body = await post_token(session, fake_zoom, wrong)
        assert status == 400
        assert body == {"reason": "Invalid client_id or client_secret", "error": "invalid_client"}


async def test_grant_parameters_in_the_query_string_are_refused(
    fake_zoom: FakeZoom, session: aiohttp.ClientSession
) -> None:
    creds = fake_zoom.credentials
    query = {"grant_type": "account_credentials", "account_id": creds.account_id}
    status, body = await post_token(session, fake_zoom, creds, params=query)
    assert (status, body["error"]) == (400, "invalid_request")
    assert fake_zoom.tokens_issued == 0
    status, _ = await post_token(session, fake_zoom, creds)  # the form body works
    assert status == 200


@pytest.mark.parametrize("kind", ["oauth", "meeting_sdk", "zoom_apps"])
async def test_the_credentials_of_a_non_s2s_app_get_unsupported_grant_type(
    fake_zoom: FakeZoom, session: aiohttp.ClientSession, kind: str
) -> None:
    app = fake_zoom.add_app(kind=kind)  # type: ignore[arg-type]
    status, body = await post_token(session, fake_zoom, app.credentials)
    assert (status, body["error"]) == (400, "unsupported_grant_type")


async def test_the_library_names_the_usual_causes_of_unsupported_grant_type(
    fake_zoom: FakeZoom,
) -> None:
    app = fake_zoom.add_app(kind="oauth")
    async with TokenManager(app.credentials, token_url=fake_zoom.token_url) as tokens:
        with pytest.raises(InvalidCredentialsError) as info:
            await tokens.get_token()
    text = str(info.value)
    assert info.value.error == "unsupported_grant_type"
    for cause in ("OAuth", "Meeting SDK", "Zoom Apps", "Server-to-Server"):
        assert cause in text
    assert app.client_secret not in text


# -- GET /users paginates -----------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


async def get(
    session: aiohttp.ClientSession, zoom: FakeZoom, token: str, path: str, **query: str
) -> tuple[int, dict[str, Any], Mapping[str, str]]:
    async with session.get(
        zoom.api_base_url + path, params=query, headers={"Authorization": f"Bearer {token}"}
    ) as response:
        return response.status, await response.json(), response.headers


async def bearer(session: aiohttp.ClientSession, zoom: FakeZoom, app: FakeApp | None = None) -> str:
    status, body = await post_token(session, zoom, (app or zoom.default_app).credentials)
    assert status == 200
    return str(body["access_token"])


async def test_pages_are_consistent_and_tokens_expire_after_15_minutes(
    session: aiohttp.ClientSession,
) -> None:
    clock = Clock()
    async with FakeZoom(clock=clock, expires_in=86400) as zoom:
        zoom.default_account.add_users(700)  # 701 with "me"
        token = await bearer(session, zoom)
        status, biggest, _ = await get(session, zoom, token, "/users", page_size="5000")
        assert status == 200
        assert (biggest["page_size"], len(biggest["users"])) == (2000, 701)  # capped at 2000
        assert biggest["next_page_token"] == ""
        _, first, _ = await get(session, zoom, token, "/users", page_size="300")
        assert (first["total_records"], first["page_count"], first["page_number"]) == (701, 3, 1)
        assert first["next_page_token"]
        _, second, _ = await get(
            session, zoom, token, "/users", page_size="300", next_page_token=first["next_page_token"]
        )
        assert second["page_number"] == 2
        clock.now += 15 * 60 + 1
        status, stale, _ = await get(
            session, zoom, token, "/users", page_size="300", next_page_token=second["next_page_token"]
        )
        assert (status, stale["code"]) == (400, 300)
        assert "expired" in stale["message"]
        _, again, _ = await get(session, zoom, token, "/users", page_size="300")
        _, more, _ = await get(
            session, zoom, token, "/users", page_size="300", next_page_token=again["next_page_token"]
        )
        _, last, _ = await get(
            session, zoom, token, "/users", page_size="300", next_page_token=more["next_page_token"]
        )
        assert (len(last["users"]), last["next_page_token"], last["page_number"]) == (101, "", 3)
        ids = [u["id"] for page in (again, more, last) for u in page["users"]]
        assert sorted(ids) == sorted(zoom.users)


async def test_a_page_token_belongs_to_its_account_and_query(
    fake_zoom: FakeZoom, session: aiohttp.ClientSession
) -> None:
    fake_zoom.default_account.add_users(40)
    other = fake_zoom.add_app()
    token = await bearer(session, fake_zoom)
    _, page, _ = await get(session, fake_zoom, token, "/users")
    assert len(page["users"]) == 30  # Zoom's default page size
    other_token = await bearer(session, fake_zoom, other)
    status, _, _ = await get(
        session, fake_zoom, other_token, "/users", next_page_token=page["next_page_token"]
    )
    assert status == 400
    for bad in ("0", "x"):
        status, body, _ = await get(session, fake_zoom, token, "/users", page_size=bad)
        assert (status, body["code"]) == (400, 300)


async def test_a_pending_user_is_only_id_and_created_at_the_time_of_the_call(
    session: aiohttp.ClientSession,
) -> None:
    clock = Clock()
    async with FakeZoom(clock=clock) as zoom:
        zoom.add_user({"id": "p1", "email": "p@example.com", "status": "pending"})
        token = await bearer(session, zoom)
        status, body, _ = await get(session, zoom, token, "/users/p@example.com")
        assert (status, body) == (200, {"id": "p1", "created_at": "2023-11-14T22:13:20Z"})
        clock.now += 60
        _, body, _ = await get(session, zoom, token, "/users/p1")
        assert body["created_at"] == "2023-11-14T22:14:20Z"


# -- API errors and headers ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("scope_error", "message"),
    [
        ((400, 4711), "Invalid access token, does not contain scopes:[user:read:user:admin]."),
        ((401, 4700), "Invalid access token, does not contain scopes"),
        ((403, 4700), "Invalid access token, does not contain scopes"),
    ],
)
async def test_scope_errors_take_zooms_forms(
    session: aiohttp.ClientSession, scope_error: tuple[int, int], message: str
) -> None:
    async with FakeZoom(
        scope="user:read:admin", required_scopes=["user:read:user:admin"], scope_error=scope_error
    ) as zoom:
        token = await bearer(session, zoom)
        status, body, headers = await get(session, zoom, token, "/users/me")
    assert (status, body) == (scope_error[0], {"code": scope_error[1], "message": message})
    assert headers["x-zm-trackingid"]


@pytest.mark.parametrize(
    ("fault", "status", "body"),
    [
        (Fault.forbidden(), 403, {"code": 403, "message": "User does not have permission."}),
        (Fault.no_permission(), 400, {"code": 200, "message": "No permission."}),
        (
            Fault.paid_only("a1"),
            400,
            {"code": 200, "message": "Only available for Paid or ZMP account: a1."},
        ),
    ],
)
async def test_permission_faults_take_zooms_forms(
    fake_zoom: FakeZoom,
    session: aiohttp.ClientSession,
    fault: Fault,
    status: int,
    body: dict[str, Any],
) -> None:
    token = await bearer(session, fake_zoom)
    fake_zoom.fail_next(1, route="api", fault=fault)
    assert (await get(session, fake_zoom, token, "/users/me"))[:2] == (status, body)


async def test_api_answers_carry_rate_limit_headers(
    fake_zoom: FakeZoom, session: aiohttp.ClientSession
) -> None:
    token = await bearer(session, fake_zoom)
    _, _, headers = await get(session, fake_zoom, token, "/users/me")
    assert headers["X-RateLimit-Category"] == "Light"
    assert headers["X-RateLimit-Limit"] == "30"
    assert 0 <= int(headers["X-RateLimit-Remaining"]) < 30
    _, _, headers = await get(session, fake_zoom, token, "/users/nobody")
    assert "X-RateLimit-Category" in headers  # errors after authentication too


@pytest.mark.parametrize("requests", [None, 1])
async def test_a_throttle_refuses_every_request_of_its_window_or_only_the_first_n(
    session: aiohttp.ClientSession, requests: int | None
) -> None:
    from zoom_s2s.testing import FakeRateLimits

    layer = FakeRateLimits({"Light": 1000})
    async with FakeZoom(rate_limits=layer) as zoom:
        token = await bearer(session, zoom)
        layer.throttle("Light", 5.0, requests=requests)
        answers = [await get(session, zoom, token, "/users/me") for _ in range(3)]
    statuses = [status for status, _, _ in answers]
    assert statuses == ([429, 429, 429] if requests is None else [429, 200, 200])
    # Zoom's form: the end of the window as an ISO 8601 UTC time.
    ends = dt.datetime.fromisoformat(answers[0][2]["Retry-After"].replace("Z", "+00:00"))
    left = (ends - dt.datetime.now(dt.timezone.utc)).total_seconds()
    assert 3.5 <= left <= 5.0
    assert layer.refused == {"throttled": statuses.count(429)}


async def test_an_api_hook_can_refuse_a_call(
    fake_zoom: FakeZoom, session: aiohttp.ClientSession
) -> None:
    from aiohttp import web

    async def budget(call: ApiCall) -> web.StreamResponse | None:
        call.headers["X-RateLimit-Type"] = "QPS"
        return web.json_response({"code": 429, "message": "slow down"}, status=429)

    fake_zoom.api_hooks.append(budget)
    token = await bearer(session, fake_zoom)
    status, _, headers = await get(session, fake_zoom, token, "/users/me")
    assert (status, headers["X-RateLimit-Type"]) == (429, "QPS")
    assert fake_zoom.snapshot()["rate_limited"] == 1


async def test_stats_are_served_as_json(fake_zoom: FakeZoom, session: aiohttp.ClientSession) -> None:
    token = await bearer(session, fake_zoom)
    await get(session, fake_zoom, token, "/users/me")
    await get(session, fake_zoom, token, "/users/nobody")
    await get(session, fake_zoom, "not-a-token", "/users/me")
    async with session.get(fake_zoom.stats_url) as response:
        stats = await response.json()
    assert stats["token_requests"] == 1
    assert stats["api_requests"] == 3
    assert stats["requests"]["GET /v2/users/{user_id}"] == {"200": 1, "401": 1, "404": 1}
    assert stats["requests"]["POST /oauth/token"] == {"200": 1}
    assert stats["apps"][fake_zoom.credentials.client_id]["tokens_issued"] == 1
    assert fake_zoom.credentials.client_secret not in json.dumps(stats)


async def test_the_fake_signs_webhooks_as_zoom_does(session: aiohttp.ClientSession) -> None:
    from aiohttp import web

    seen: list[tuple[Mapping[str, str], bytes]] = []

    async def endpoint(request: web.Request) -> web.Response:
        seen.append((request.headers.copy(), await request.read()))
        return web.Response()

    app = web.Application()
    app.router.add_post("/hook", endpoint)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        async with FakeZoom(webhook_secret_token="s3cret") as zoom:
            status, _ = await zoom.send_webhook(f"http://127.0.0.1:{port}/hook", "user.created")
    finally:
        await runner.cleanup()
    assert status == 200
    headers, body = seen[0]
    stamp = headers["x-zm-request-timestamp"]
    mac = hmac.new(b"s3cret", f"v0:{stamp}:".encode() + body, hashlib.sha256).hexdigest()
    assert headers["x-zm-signature"] == f"v0={mac}"
    assert json.loads(body)["event"] == "user.created"


# -- zoom-s2s fake-server -----------------------------------------------------------------


async def test_fake_server_prints_an_evaluable_environment_and_a_summary_when_it_stops(
    capsys: pytest.CaptureFixture[str], session: aiohttp.ClientSession
) -> None:
    import asyncio
    import shlex

    from zoom_s2s.cli import build_parser, cmd_fake_server

    args = build_parser().parse_args(["fake-server", "--port", "0", "--users", "5"])
    server = asyncio.create_task(cmd_fake_server(args))
    env: dict[str, str] = {}
    for _ in range(200):
        await asyncio.sleep(0.01)
        out = capsys.readouterr().out
        for line in out.splitlines():
            assert line.startswith(("#", "export ")), line  # all of stdout is shell code
            if line.startswith("export "):
                name, _, value = line[len("export ") :].partition("=")
                env[name] = shlex.split(value)[0]
        if len(env) == 5:
            break
    assert set(env) == {
        "ZOOM_ACCOUNT_ID",
        "ZOOM_CLIENT_ID",
        "ZOOM_CLIENT_SECRET",
        "ZOOM_TOKEN_URL",
        "ZOOM_API_URL",
    }
    creds = Credentials(env["ZOOM_ACCOUNT_ID"], env["ZOOM_CLIENT_ID"], env["ZOOM_CLIENT_SECRET"])
    async with (
        TokenManager(creds, token_url=env["ZOOM_TOKEN_URL"]) as tokens,
        ZoomClient(tokens, env["ZOOM_API_URL"]) as zoom,
    ):
        assert len([u async for u in zoom.paginate("/users", page_size=2)]) == 6
        async with session.get(env["ZOOM_API_URL"].replace("/v2", "/_fake/stats")) as response:
            assert (await response.json())["requests"]["GET /v2/users"] == {"200": 3}
    server.cancel()
    with pytest.raises(asyncio.CancelledError):
        await server
    err = capsys.readouterr().err
    assert "fake Zoom stopped: 1 token requests, 1 tokens issued, 3 API requests" in err
    assert "GET /v2/users  200: 3" in err
    assert env["ZOOM_CLIENT_SECRET"] not in err
