"""A fake Zoom: a real aiohttp server that speaks the S2S token grant and ``/v2/users``.

Use it in your own tests to exercise code that calls Zoom, without Zoom::

    async with FakeZoom(expires_in=60) as zoom:
        manager = TokenManager(zoom.credentials, token_url=zoom.token_url)
        ...
        assert zoom.token_requests == 1

or, from synchronous code and other processes, ``with FakeZoom().running_in_thread()``.

It follows ``docs/zoom.rst``: form or query parameters, Basic auth, Zoom's flat
``{"reason", "error"}`` token errors, ``{"code", "message"}`` API errors with
an ``x-zm-trackingid`` header, 401 code 124 for bad tokens, 400 code 4711 for
missing scopes, 404 code 1001 for unknown users. Faults are injected with
:meth:`FakeZoom.fail_next`.

Routes: ``POST /oauth/token``; ``GET /v2/users`` (list), ``POST /v2/users``
(create), ``GET /v2/users/{userId}`` (id, email or ``me``) and
``DELETE /v2/users/{userId}`` (204).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import copy
import json
import secrets
import threading
import time
from collections import Counter, deque
from collections.abc import Iterable, Iterator, Mapping
from typing import Any, Literal

import attrs
from aiohttp import web

from ..models import Credentials

__all__ = ["FakeZoom", "Fault"]

Route = Literal["token", "api"]

SAMPLE_USER: dict[str, Any] = {
    "id": "zJKyaiAyTNC-MWjiWC18KQ",
    "created_at": "2018-10-31T04:32:37Z",
    "dept": "Developers",
    "email": "jchill@example.com",
    "first_name": "Jill",
    "last_name": "Chill",
    "last_client_version": "5.9.6.4993(mac)",
    "last_login_time": "2021-05-05T20:40:30Z",
    "pmi": 3542471135,
    "role_name": "Admin",
    "timezone": "Asia/Shanghai",
    "type": 1,
    "use_pmi": False,
    "account_number": 10009239,
    "language": "en-US",
    "status": "active",
    "verified": 1,
    "cluster": "us04",
    "zoom_one_type": 4,
    "custom_attributes": {"key": "cbf_cywdkexrtqc73f97gd4w6g", "name": "A1", "value": "1"},
    "group_ids": ["RSMaSp8sTEGK0_oamiA2_w"],
}


@attrs.frozen
class Fault:
    """One injected failure: answer with ``status``/``body``, hang, or drop the connection.

    Attributes:
        status: HTTP status to answer with.
        body: Raw body; JSON-encoded if not a string.
        content_type: Content type of ``body``.
        headers: Extra response headers.
        delay: Seconds to wait before answering.
        reset: Drop the connection without an answer (a connection reset).
        then_serve: After ``delay``, answer normally: a slow success
            (``Fault(delay=5, then_serve=True)``).
    """

    status: int = 503
    body: object = attrs.field(default=attrs.Factory(lambda: {"reason": "fake outage"}))
    content_type: str = "application/json"
    headers: Mapping[str, str] = attrs.field(factory=dict)
    delay: float = 0.0
    reset: bool = False
    then_serve: bool = False


@attrs.define
class _Issued:
    expires_at: float
    scopes: frozenset[str] = frozenset()
    revoked: bool = False


class FakeZoom:
    """A fake of Zoom's token endpoint and the ``/v2/users`` API on loopback.

    Args:
        account_id: The account id it accepts.
        client_id: The client id it accepts.
        client_secret: The client secret it accepts.
        expires_in: ``expires_in`` of issued tokens, in seconds.
        scope: The space-separated scopes it grants.
        latency: Seconds every token request takes.
        revoke_previous: Issuing a token revokes all earlier ones (Zoom before
            June 2023; the library must stay correct under it).
        required_scopes: Scopes every ``/v2`` call needs; a token granted
            without one of them gets HTTP 400 code 4711, as on Zoom.
        api_url: The ``api_url`` in token answers; default this server's
            :attr:`url` (tests of a tampered or hostile ``api_url`` set another).
        host: Interface to listen on.
        port: Port; 0 picks a free one.

    Attributes:
        token_requests: POSTs to the token endpoint (including failed ones).
        tokens_issued: Tokens handed out.
        api_requests: Requests to ``/v2``.
        api_unauthorized: ``/v2`` requests answered with 401.
        api_requests_by_token: ``/v2`` requests per bearer token sent (as sent,
            valid or not; requests without one count under ``""``).
    """

    def __init__(
        self,
        *,
        account_id: str = "fake-account-id",
        client_id: str = "fake-client-id",
        client_secret: str = "fake-client-secret-0123456789",  # noqa: S107 - a fake
        expires_in: float = 3599,
        scope: str = "user:read:admin meeting:write:admin",
        latency: float = 0.0,
        revoke_previous: bool = False,
        required_scopes: Iterable[str] = (),
        api_url: str | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self.credentials = Credentials(account_id, client_id, client_secret)
        self.expires_in = expires_in
        self.scope = scope
        self.latency = latency
        self.revoke_previous = revoke_previous
        self.required_scopes = tuple(required_scopes)
        self.api_url = api_url
        self.host = host
        self.port = port
        self.token_requests = 0
        self.tokens_issued = 0
        self.api_requests = 0
        self.api_unauthorized = 0
        self.api_requests_by_token: Counter[str] = Counter()
        self.issued_tokens: list[str] = []
        self._issued: dict[str, _Issued] = {}
        self._faults: dict[Route, deque[Fault]] = {"token": deque(), "api": deque()}
        me = dict(SAMPLE_USER, account_id=account_id)
        self.users: dict[str, dict[str, Any]] = {me["id"]: me}
        self.me_id: str = me["id"]
        self._runner: web.AppRunner | None = None
        self.app = self._make_app()

    # -- configuration --------------------------------------------------------------

    def fail_next(self, count: int = 1, route: Route = "token", fault: Fault | None = None) -> None:
        """Answer the next ``count`` requests to ``route`` with ``fault`` (default: HTTP 503)."""
        self._faults[route].extend([fault or Fault()] * count)

    def clear_faults(self) -> None:
        """Drop every fault still queued: Zoom is healthy again."""
        for faults in self._faults.values():
            faults.clear()

    def revoke_all(self) -> None:
        """Revoke every token issued so far (API calls with them get 401 code 124)."""
        for issued in self._issued.values():
            issued.revoked = True

    def add_user(self, user: Mapping[str, Any]) -> None:
        """Add a user that ``GET /v2/users/{id or email}`` will find."""
        self.users[str(user["id"])] = dict(user)

    def find_user(self, user_id: str) -> dict[str, Any] | None:
        """The user with this id or email (``"me"``: the app's creating user), if any."""
        if user_id == "me":
            user_id = self.me_id
        return self.users.get(user_id) or next(
            (u for u in self.users.values() if u.get("email") == user_id), None
        )

    # -- lifecycle ------------------------------------------------------------------

    @property
    def url(self) -> str:
        """Base URL, e.g. ``http://127.0.0.1:41234``."""
        if self._runner is None:
            raise RuntimeError("FakeZoom is not running; use 'async with FakeZoom()' first")
        return f"http://{self.host}:{self.port}"

    @property
    def token_url(self) -> str:
        """URL of the fake token endpoint."""
        return f"{self.url}/oauth/token"

    @property
    def api_base_url(self) -> str:
        """Base URL of the fake REST API (``.../v2``)."""
        return f"{self.url}/v2"

    async def start(self) -> None:
        """Start listening (picks a free port when ``port`` is 0)."""
        runner = web.AppRunner(self.app, access_log=None, handle_signals=False)
        await runner.setup()
        site = web.TCPSite(runner, self.host, self.port, reuse_address=True)
        await site.start()
        server = site._server
        if self.port == 0 and server is not None:
            self.port = server.sockets[0].getsockname()[1]  # type: ignore[attr-defined]
        self._runner = runner

    async def close(self) -> None:
        """Stop listening."""
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> FakeZoom:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @contextlib.contextmanager
    def running_in_thread(self) -> Iterator[FakeZoom]:
        """Serve from a private event-loop thread (for sync code and multi-process tests)."""
        loop = asyncio.new_event_loop()
        started = threading.Event()
        thread = threading.Thread(
            target=self._serve_forever, args=(loop, started), name="fake-zoom", daemon=True
        )
        thread.start()
        if not started.wait(10):
            raise RuntimeError("FakeZoom did not start within 10 s")
        try:
            yield self
        finally:
            asyncio.run_coroutine_threadsafe(self.close(), loop).result(10)
            loop.call_soon_threadsafe(loop.stop)
            thread.join(10)

    def _serve_forever(self, loop: asyncio.AbstractEventLoop, started: threading.Event) -> None:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(self.start())
        started.set()
        loop.run_forever()
        loop.close()

    # -- the app --------------------------------------------------------------------

    def _make_app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/oauth/token", self._token)
        app.router.add_get("/v2/users", self._list_users)
        app.router.add_post("/v2/users", self._create_user)
        app.router.add_get("/v2/users/{user_id}", self._get_user)
        app.router.add_get("/v2/users/{user_id}/meetings", self._list_meetings)
        app.router.add_delete("/v2/users/{user_id}", self._delete_user)
        return app

    async def _apply_fault(self, route: Route, request: web.Request) -> web.StreamResponse | None:
        if not self._faults[route]:
            return None
        fault = self._faults[route].popleft()
        if fault.delay:
            await asyncio.sleep(fault.delay)
        if fault.then_serve:
            return None
        if fault.reset:
            if request.transport is not None:
                request.transport.abort()
            raise asyncio.CancelledError  # aiohttp ends the handler; the client sees a reset
        body = fault.body if isinstance(fault.body, str) else json.dumps(fault.body)
        return web.Response(
            status=fault.status,
            text=body,
            content_type=fault.content_type,
            headers={**fault.headers, "x-zm-trackingid": _tracking_id()},
        )

    async def _token(self, request: web.Request) -> web.StreamResponse:
        self.token_requests += 1
        sent = time.time()
        if self.latency:
            await asyncio.sleep(self.latency)
        fault = await self._apply_fault("token", request)
        if fault is not None:
            return fault
        form = await request.post()
        params = {**request.query, **{k: str(v) for k, v in form.items()}}
        if not self._basic_auth_ok(request.headers.get("Authorization", "")):
            return _token_error(401, "invalid_client", "Invalid client_id or client_secret")
        if params.get("grant_type") != "account_credentials":
            return _token_error(400, "unsupported_grant_type", "unsupported grant type")
        if params.get("account_id") != self.credentials.account_id:
            return _token_error(400, "invalid_request", "Account does not exist")
        if self.revoke_previous:
            self.revoke_all()
        token = "fake." + secrets.token_urlsafe(32)
        self._issued[token] = _Issued(
            expires_at=sent + self.expires_in, scopes=frozenset(self.scope.split())
        )
        self.issued_tokens.append(token)
        self.tokens_issued += 1
        return web.json_response(
            {
                "access_token": token,
                "token_type": "bearer",
                "expires_in": self.expires_in,
                "scope": self.scope,
                "api_url": self.url if self.api_url is None else self.api_url,
            }
        )

    def _basic_auth_ok(self, header: str) -> bool:
        scheme, _, encoded = header.partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            decoded = base64.b64decode(encoded, validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            return False
        client_id, _, secret = decoded.partition(":")
        expected = f"{self.credentials.client_id}:{self.credentials.client_secret}"
        return secrets.compare_digest(f"{client_id}:{secret}", expected)

    def token_is_valid(self, token: str) -> bool:
        """Whether ``token`` was issued here, is unexpired and not revoked."""
        issued = self._issued.get(token)
        return issued is not None and not issued.revoked and issued.expires_at > time.time()

    async def _api_call(self, request: web.Request) -> web.StreamResponse | None:
        """Count, inject faults, check the bearer token and scopes; an answer ends the call."""
        self.api_requests += 1
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        self.api_requests_by_token[token if scheme.lower() == "bearer" else ""] += 1
        fault = await self._apply_fault("api", request)
        if fault is not None:
            return fault
        if scheme.lower() != "bearer" or not self.token_is_valid(token):
            self.api_unauthorized += 1
            return _api_error(401, 124, "Invalid access token.")
        granted = self._issued[token].scopes
        missing = [scope for scope in self.required_scopes if scope not in granted]
        if missing:
            return _api_error(
                400, 4711, f"Invalid access token, does not contain scopes:[{','.join(missing)}]."
            )
        return None

    async def _user_call(self, request: web.Request) -> dict[str, Any] | web.StreamResponse:
        """An API call on ``/users/{user_id}``: the user, or the answer that ends the call."""
        refused = await self._api_call(request)
        if refused is not None:
            return refused
        user_id = request.match_info["user_id"]
        user = self.find_user(user_id)
        if user is None:
            return _api_error(404, 1001, f"User does not exist: {user_id}.")
        return user

    async def _get_user(self, request: web.Request) -> web.StreamResponse:
        user = await self._user_call(request)
        if isinstance(user, web.StreamResponse):
            return user
        return web.json_response(copy.deepcopy(user), headers={"x-zm-trackingid": _tracking_id()})

    async def _list_meetings(self, request: web.Request) -> web.StreamResponse:
        user = await self._user_call(request)
        if isinstance(user, web.StreamResponse):
            return user
        return web.json_response(
            {"page_size": 30, "total_records": 0, "next_page_token": "", "meetings": []},
            headers={"x-zm-trackingid": _tracking_id()},
        )

    async def _list_users(self, request: web.Request) -> web.StreamResponse:
        refused = await self._api_call(request)
        if refused is not None:
            return refused
        wanted = request.query.get("status", "active")
        users = [u for u in self.users.values() if u.get("status", "active") == wanted]
        try:
            page_size = max(1, min(300, int(request.query.get("page_size", "30"))))
        except ValueError:
            return _api_error(400, 300, "Invalid field: page_size.")
        return web.json_response(
            {
                "page_count": max(1, -(-len(users) // page_size)),
                "page_number": 1,
                "page_size": page_size,
                "total_records": len(users),
                "next_page_token": "",
                "users": copy.deepcopy(users[:page_size]),
            },
            headers={"x-zm-trackingid": _tracking_id()},
        )

    async def _create_user(self, request: web.Request) -> web.StreamResponse:
        refused = await self._api_call(request)
        if refused is not None:
            return refused
        try:
            info = (await request.json())["user_info"]
            email = info["email"]
        except (ValueError, KeyError, TypeError):
            return _api_error(
                400,
                300,
                "Validation Failed.",
                errors=[{"field": "user_info.email", "message": "Invalid field."}],
            )
        if self.find_user(email) is not None:
            return _api_error(409, 1005, f"User already in the account: {email}")
        user = {
            "id": secrets.token_urlsafe(16),
            "email": email,
            "first_name": info.get("first_name", ""),
            "last_name": info.get("last_name", ""),
            "type": info.get("type", 1),
            "account_id": self.credentials.account_id,
            "status": "pending",
        }
        self.add_user(user)
        fields = ("id", "email", "first_name", "last_name", "type")
        return web.json_response(
            {key: user[key] for key in fields},
            status=201,
            headers={"x-zm-trackingid": _tracking_id()},
        )

    async def _delete_user(self, request: web.Request) -> web.StreamResponse:
        user = await self._user_call(request)
        if isinstance(user, web.StreamResponse):
            return user
        del self.users[str(user["id"])]
        return web.Response(status=204, headers={"x-zm-trackingid": _tracking_id()})


def _tracking_id() -> str:
    return "v=2.0;clid=us05;rid=" + secrets.token_hex(8)


def _token_error(status: int, error: str, reason: str) -> web.Response:
    return web.json_response({"reason": reason, "error": error}, status=status)


def _api_error(
    status: int, code: int, message: str, *, errors: list[dict[str, str]] | None = None
) -> web.Response:
    body: dict[str, Any] = {"code": code, "message": message}
    if errors:
        body["errors"] = errors
    return web.json_response(body, status=status, headers={"x-zm-trackingid": _tracking_id()})
