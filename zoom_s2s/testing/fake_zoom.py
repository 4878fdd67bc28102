"""A fake Zoom: a real aiohttp server answering the S2S token grant and ``/v2/users`` as Zoom does.

Use it in your own tests to exercise code that calls Zoom, without Zoom::

    async with FakeZoom(expires_in=60) as zoom:
        manager = TokenManager(zoom.credentials, token_url=zoom.token_url)
        ...
        assert zoom.token_requests == 1

or, from synchronous code and other processes, ``with FakeZoom().running_in_thread()``.

It follows ``docs/zoom.rst``, which cites a source for each behaviour:

* the token grant: form-body parameters only (parameters in the query string
  are refused with 400), Basic auth; bad credentials are 400
  ``{"reason": "Invalid client_id or client_secret", "error": "invalid_client"}``;
  the credentials of an app that is not Server-to-Server
  (:meth:`FakeZoom.add_app` with ``kind="oauth"``) get ``unsupported_grant_type``;
* many accounts and apps at once (:meth:`FakeZoom.add_account`,
  :meth:`FakeZoom.add_app`), each token acting in its app's account;
* ``{"code", "message"}`` API errors with an ``x-zm-trackingid`` header: 401
  code 124 for bad tokens, code 4711 (or 4700, ``scope_error``) for missing
  scopes, 404 code 1001 for unknown users; :class:`Fault` presets for 403
  and code 200;
* ``GET /v2/users`` paginates with ``next_page_token`` (tokens expire after 15
  minutes of the fake's ``clock``); a pending user is only ``id`` and
  ``created_at``;
* ``X-RateLimit-Category``, ``-Limit`` and ``-Remaining`` on every API answer
  (counted, not enforced: a layer added to :attr:`FakeZoom.api_hooks` may);
* signed webhook deliveries with Zoom's retries, and the webhook logs API
  (:attr:`FakeZoom.webhooks`, ``zoom_s2s.testing._fake_webhooks``);
* ``GET /_fake/stats``: its counters as JSON, for other processes.

Faults are injected with :meth:`FakeZoom.fail_next`.

Routes: ``POST /oauth/token``; ``GET /v2/users`` (list), ``POST /v2/users``
(create), ``GET /v2/users/{userId}`` (id, email or ``me``; query parameters
``login_type``, ``encrypted_email``, ``search_by_unique_id``),
``DELETE /v2/users/{userId}`` (204), ``GET /v2/users/{userId}/meetings``,
``GET /v2/marketplace/apps/{appId}/webhook_logs``, the participants report;
meetings, webinars and the other operations of Zoom's specs from their
examples (:mod:`._fake_api`); ``GET /_fake/stats``.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import copy
import json
import math
import secrets
import threading
import time
from collections import Counter, deque
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping
from typing import Any, Literal

import attrs
from aiohttp import web

from .. import _clock
from ..models import Credentials
from ._fake_api import SpecRoutes
from ._fake_ratelimit import FakeRateLimits
from ._fake_state import (
    APP_KINDS,
    SAMPLE_USER,
    ApiCall,
    AppKind,
    FakeAccount,
    FakeApp,
    FakeStats,
    Issued,
    PageCursor,
    iso_time,
    public_copy,
)
from ._fake_webhooks import FakeWebhooks

__all__ = ["ApiCall", "FakeAccount", "FakeApp", "FakeZoom", "Fault"]

Route = Literal["token", "api"]

PAGE_TOKEN_LIFETIME = 15 * 60.0
"""Seconds a ``next_page_token`` stays valid, as on Zoom."""
MAX_PAGE_SIZE = 300
USERS_MAX_PAGE_SIZE = 2000  # GET /users allows larger pages (Zoom's Users spec)

# Zoom's rate-limit categories of the routes served, and the per-second limits
# of a Pro account (docs/zoom.rst, "Rate limits").
CATEGORY_LIMITS = {"Light": 30, "Medium": 20, "Heavy": 10, "Resource-intensive": 10}


@attrs.frozen
class Fault:
    """One injected failure: answer with ``status``/``body``, hang, or drop the connection.

    The class methods build the answers Zoom gives for permission problems.

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

    @classmethod
    def forbidden(cls) -> Fault:
        """HTTP 403: the user the call acts for lacks the permission."""
        return cls(status=403, body={"code": 403, "message": "User does not have permission."})

    @classmethod
    def no_permission(cls) -> Fault:
        """HTTP 400 code 200 "No permission."."""
        return cls(status=400, body={"code": 200, "message": "No permission."})

    @classmethod
    def paid_only(cls, account_id: str = "fake-account-id") -> Fault:
        """HTTP 400 code 200: the API needs a paid plan."""
        message = f"Only available for Paid or ZMP account: {account_id}."
        return cls(status=400, body={"code": 200, "message": message})

    @classmethod
    def missing_scopes(cls, *scopes: str, status: int = 400, code: int = 4711) -> Fault:
        """A scope error: code 4711 names ``scopes``; code 4700 names none."""
        return cls(status=status, body={"code": code, "message": _scopes_message(scopes)})


ApiHook = Callable[[ApiCall], Awaitable[web.StreamResponse | None]]
"""Runs on every authenticated API call; an answer it returns ends the call."""
Handler = Callable[[ApiCall], Awaitable[web.StreamResponse]]


class RateHeaders:
    """The default API hook: Zoom's ``X-RateLimit-*`` headers, counted per account and second.

    It counts requests per (account, category, second) and reports the
    remaining budget of a Pro account; it never refuses a request.
    """

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._second = -1
        self._counts: Counter[tuple[str, str]] = Counter()

    async def __call__(self, call: ApiCall) -> web.StreamResponse | None:
        second = int(self._clock())
        if second != self._second:
            self._second, self._counts = second, Counter()
        key = (call.account.account_id, call.category)
        self._counts[key] += 1
        limit = CATEGORY_LIMITS.get(call.category, 30)
        call.headers["X-RateLimit-Category"] = call.category
        call.headers["X-RateLimit-Limit"] = str(limit)
        call.headers["X-RateLimit-Remaining"] = str(max(0, limit - self._counts[key]))
        return None


class FakeZoom:
    """A fake of Zoom's token endpoint and the ``/v2/users`` API on loopback.

    The arguments describe the default account and app
    (:attr:`default_account`, :attr:`default_app`); :meth:`add_account` and
    :meth:`add_app` add more. :attr:`credentials`, :attr:`users`,
    :meth:`add_user` and the like are the default ones'.

    Args:
        account_id: The default account's id.
        client_id: The default app's client id.
        client_secret: The default app's client secret.
        expires_in: ``expires_in`` of issued tokens, in seconds.
        scope: The space-separated scopes tokens get.
        latency: Seconds every token request takes.
        revoke_previous: Issuing a token revokes all earlier ones (Zoom before
            June 2023; the library must stay correct under it).
        required_scopes: Scopes every ``/v2`` call needs; a token granted
            without one of them gets ``scope_error``.
        scope_error: (HTTP status, Zoom code) of a missing-scope answer:
            ``(400, 4711)`` names the scopes; ``(401, 4700)`` or
            ``(403, 4700)`` does not.
        api_url: The ``api_url`` in token answers; default this server's
            :attr:`url` (tests of a tampered or hostile ``api_url`` set another).
        clock: Unix time for token expiry, page tokens and ``created_at``
            (tests may pass a settable clock instead of waiting).
        webhook_secret_token: The secret token webhook deliveries are signed with.
        rate_limits: Enforce Zoom's rate limits
            (:class:`~zoom_s2s.testing.FakeRateLimits`: per-account QPS per
            category, daily limits, 429s and headers) instead of only counting.
        host: Interface to listen on.
        port: Port; 0 picks a free one.

    Attributes:
        token_requests: POSTs to the token endpoint (including failed ones).
        tokens_issued: Tokens handed out.
        api_requests: Requests to ``/v2``.
        api_unauthorized: ``/v2`` requests answered with 401.
        api_requests_by_token: ``/v2`` requests per bearer token sent (as sent,
            valid or not; requests without one count under ``""``).
        stats: Answers by route and status, and 429s (``GET /_fake/stats``).
        api_hooks: Run in order on each authenticated API call (after the
            scope check); the default one adds the rate-limit headers.
        webhooks: The webhook sender and its logs (:class:`FakeWebhooks`).
        accounts: Accounts by id.
        apps: Apps by client id.
        app: The aiohttp application serving all this.
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
        scope_error: tuple[int, int] = (400, 4711),
        api_url: str | None = None,
        clock: Callable[[], float] = time.time,
        webhook_secret_token: str = "fake-webhook-secret-token",  # noqa: S107 - a fake
        rate_limits: FakeRateLimits | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        if not 0 < expires_in < math.inf:  # JSON has no NaN or Infinity
            raise ValueError(f"expires_in must be a number of seconds above 0, not {expires_in}")
        self.expires_in = expires_in
        self.scope = scope
        self.latency = latency
        self.revoke_previous = revoke_previous
        self.required_scopes = tuple(required_scopes)
        self.scope_error = scope_error
        self.api_url = api_url
        self.clock = clock
        self.webhook_secret_token = webhook_secret_token
        self.host = host
        self.port = port
        self.token_requests = 0
        self.tokens_issued = 0
        self.api_requests = 0
        self.api_unauthorized = 0
        self.api_requests_by_token: Counter[str] = Counter()
        self.issued_tokens: list[str] = []
        self.stats = FakeStats()
        self.accounts: dict[str, FakeAccount] = {}
        self.apps: dict[str, FakeApp] = {}
        self.default_account = self.add_account(account_id)
        self.default_app = self.add_app(
            self.default_account, client_id=client_id, client_secret=client_secret
        )
        self.meetings: dict[str, dict[str, Any]] = {}  # meetings and webinars, by id
        self.rate_limits = rate_limits
        if rate_limits is not None:
            rate_limits.meetings = self.meetings  # per-host caps count a meeting's host
        self.api_hooks: list[ApiHook] = [RateHeaders(clock) if rate_limits is None else rate_limits]
        self._issued: dict[str, Issued] = {}
        self._pages: dict[str, PageCursor] = {}
        self._faults: dict[Route, deque[Fault]] = {"token": deque(), "api": deque()}
        self._runner: web.AppRunner | None = None
        self.spec_routes = SpecRoutes(self)
        self.webhooks = FakeWebhooks(self)
        self.app = self._make_app()

    # -- accounts and apps ------------------------------------------------------------

    def add_account(self, account_id: str | None = None) -> FakeAccount:
        """Add an account with its own "me" user (a copy of Zoom's example user).

        Args:
            account_id: Its id; default a random one.

        Returns:
            The account; add users with :meth:`FakeAccount.add_user` or
            :meth:`FakeAccount.add_users`.
        """
        account_id = account_id or "acct-" + secrets.token_urlsafe(12)
        if account_id in self.accounts:
            raise ValueError(f"the fake already has an account {account_id!r}")
        account = FakeAccount(account_id)
        me = account.add_user(dict(SAMPLE_USER, account_id=account_id))
        account.me_id = str(me["id"])
        self.accounts[account_id] = account
        return account

    def add_app(
        self,
        account: FakeAccount | str | None = None,
        *,
        client_id: str | None = None,
        client_secret: str | None = None,
        kind: AppKind = "s2s",
        scope: str | None = None,
        expires_in: float | None = None,
    ) -> FakeApp:
        """Register a Marketplace app on an account.

        Args:
            account: The account (or its id); default a new account.
            client_id: Default a random one.
            client_secret: Default a random one.
            kind: ``"s2s"``; another type (``"oauth"``, ``"meeting_sdk"``,
                ``"zoom_apps"``) is refused the S2S grant with
                ``unsupported_grant_type``, as Zoom refuses it.
            scope: Its tokens' scopes; default the fake's ``scope``.
            expires_in: Its tokens' lifetime; default the fake's ``expires_in``.

        Returns:
            The app; ``app.credentials`` are for a :class:`~zoom_s2s.TokenManager`.
        """
        if kind not in APP_KINDS:
            raise ValueError(f"kind={kind!r}: use one of {', '.join(APP_KINDS)}")
        if account is None:
            account = self.add_account()
        elif isinstance(account, str):
            account = self.accounts[account]
        client_id = client_id or "client-" + secrets.token_urlsafe(12)
        if client_id in self.apps:
            raise ValueError(f"the fake already has an app with client id {client_id!r}")
        app = FakeApp(
            account,
            client_id,
            client_secret or secrets.token_urlsafe(24),
            kind=kind,
            scope=scope,
            expires_in=expires_in,
        )
        self.apps[client_id] = app
        return app

    # -- the default account, as before -----------------------------------------------

    @property
    def credentials(self) -> Credentials:
        """The default app's credentials."""
        return self.default_app.credentials

    @property
    def users(self) -> dict[str, dict[str, Any]]:
        """The default account's users by id."""
        return self.default_account.users

    @property
    def me_id(self) -> str:
        """The default account's "me" user id."""
        return self.default_account.me_id

    def add_user(self, user: Mapping[str, Any]) -> None:
        """Add a user to the default account (``GET /v2/users/{id or email}`` finds it)."""
        self.default_account.add_user(user)

    def find_user(self, user_id: str) -> dict[str, Any] | None:
        """The default account's user with this id or email (``"me"``: the creating user)."""
        return self.default_account.find_user(user_id)

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

    def snapshot(self) -> dict[str, Any]:
        """The counters ``GET /_fake/stats`` serves, as a dict."""
        return {
            "token_requests": self.token_requests,
            "tokens_issued": self.tokens_issued,
            "api_requests": self.api_requests,
            "api_unauthorized": self.api_unauthorized,
            "rate_limited": self.stats.rate_limited,
            "requests": self.stats.by_route(),
            "apps": {
                app.client_id: {
                    "account_id": app.account.account_id,
                    "token_requests": app.token_requests,
                    "tokens_issued": app.tokens_issued,
                }
                for app in self.apps.values()
            },
        }

    # -- lifecycle ------------------------------------------------------------------

    @property
    def url(self) -> str:
        """Base URL, e.g. ``http://127.0.0.1:41234``."""
        if self._runner is None:
            raise RuntimeError("FakeZoom is not running; use 'async with FakeZoom()' first")
        host = f"[{self.host}]" if ":" in self.host else self.host  # an IPv6 address
        return f"http://{host}:{self.port}"

    @property
    def token_url(self) -> str:
        """URL of the fake token endpoint."""
        return f"{self.url}/oauth/token"

    @property
    def api_base_url(self) -> str:
        """Base URL of the fake REST API (``.../v2``)."""
        return f"{self.url}/v2"

    @property
    def stats_url(self) -> str:
        """URL of ``GET /_fake/stats``."""
        return f"{self.url}/_fake/stats"

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

    # -- webhooks -------------------------------------------------------------------

    async def send_webhook(
        self,
        url: str,
        event: str,
        payload: Mapping[str, Any] | None = None,
        *,
        secret_token: str | None = None,
        timestamp: int | None = None,
    ) -> tuple[int, bytes]:
        """POST one signed event notification to ``url`` (no retry; :attr:`webhooks` retries).

        Returns:
            The endpoint's (HTTP status, body); status -1 for a network error.
        """
        body = self.webhooks.body(event, payload)
        return await self.webhooks.send(url, body, secret_token=secret_token, timestamp=timestamp)

    async def validate_endpoint(self, url: str) -> bool:
        """Send Zoom's ``endpoint.url_validation`` challenge; whether the answer is right."""
        return await self.webhooks.validate_endpoint(url)

    # -- the app --------------------------------------------------------------------

    def _make_app(self) -> web.Application:
        app = web.Application(middlewares=[self._count])
        app.router.add_post("/oauth/token", self._token)
        app.router.add_get("/_fake/stats", self._stats)
        api = [
            ("GET", "/v2/users", self._list_users, "Medium"),
            ("POST", "/v2/users", self._create_user, "Light"),
            ("GET", "/v2/users/{user_id}", self._get_user, "Light"),
            ("DELETE", "/v2/users/{user_id}", self._delete_user, "Light"),
            ("GET", "/v2/report/meetings/{meeting_id}/participants", self._report_participants,
             "Heavy"),
            ("GET", "/v2/marketplace/apps/{app_id}/webhook_logs", self.webhooks.logs_page,
             "Medium"),
            ("POST", "/v2/groups", self._create_group, "Light"),
        ]
        for method, path, handler, category in api:
            app.router.add_route(method, path, self._api(handler, f"{method} {path}", category))
        self.spec_routes.add_routes(app)
        return app

    @web.middleware
    async def _count(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        """Count every answer by route pattern and status (``GET /_fake/stats``)."""
        info = request.match_info.route.resource
        pattern = info.canonical if info is not None else request.path
        if pattern.startswith("/_fake/"):
            return await handler(request)
        route = f"{request.method} {pattern}"
        try:
            response = await handler(request)
        except web.HTTPException as exc:
            self.stats.count(route, exc.status)
            raise
        self.stats.count(route, response.status)
        return response

    async def _stats(self, request: web.Request) -> web.StreamResponse:
        return web.json_response(self.snapshot())

    async def _apply_fault(self, route: Route, request: web.Request) -> web.StreamResponse | None:
        if not self._faults[route]:
            return None
        fault = self._faults[route].popleft()
        if fault.delay:
            await _clock.sleep(fault.delay)
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

    # -- the token endpoint -----------------------------------------------------------

    async def _token(self, request: web.Request) -> web.StreamResponse:
        self.token_requests += 1
        sent = self.clock()
        if self.latency:
            await _clock.sleep(self.latency)
        fault = await self._apply_fault("token", request)
        if fault is not None:
            return fault
        app = self._authenticate(request.headers.get("Authorization", ""))
        if app is None:
            return _token_error(400, "invalid_client", "Invalid client_id or client_secret")
        app.token_requests += 1
        # Only the form body counts: parameters in the query string are not read,
        # so a request carrying them there is missing its grant type.
        form = await request.post()
        params = {k: str(v) for k, v in form.items()}
        grant = params.get("grant_type")
        if not grant:
            return _token_error(400, "invalid_request", "Missing grant type")
        if grant != "account_credentials" or app.kind != "s2s":
            return _token_error(400, "unsupported_grant_type", "unsupported grant type")
        if params.get("account_id") != app.account.account_id:
            return _token_error(400, "invalid_request", "Account does not exist")
        if self.revoke_previous:
            self.revoke_all()
        scope = self.scope if app.scope is None else app.scope
        expires_in = self.expires_in if app.expires_in is None else app.expires_in
        token = "fake." + secrets.token_urlsafe(32)
        self._issued[token] = Issued(
            app, expires_at=sent + expires_in, scopes=frozenset(scope.split())
        )
        self.issued_tokens.append(token)
        self.tokens_issued += 1
        app.tokens_issued += 1
        return web.json_response(
            {
                "access_token": token,
                "token_type": "bearer",
                "expires_in": expires_in,
                "scope": scope,
                "api_url": self.url if self.api_url is None else self.api_url,
            }
        )

    def _authenticate(self, header: str) -> FakeApp | None:
        """The app whose ``client_id:client_secret`` the Basic header carries, if it matches."""
        scheme, _, encoded = header.partition(" ")
        if scheme.lower() != "basic":
            return None
        try:
            decoded = base64.b64decode(encoded.strip(), validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            return None
        client_id, _, secret = decoded.partition(":")
        app = self.apps.get(client_id)
        if app is None or not secrets.compare_digest(secret.encode(), app.client_secret.encode()):
            return None
        return app

    def token_is_valid(self, token: str) -> bool:
        """Whether ``token`` was issued here, is unexpired and not revoked."""
        return self._valid(token) is not None

    def _valid(self, token: str) -> Issued | None:
        issued = self._issued.get(token)
        if issued is None or issued.revoked or issued.expires_at <= self.clock():
            return None
        return issued

    # -- the API ----------------------------------------------------------------------

    def _api(
        self, handler: Handler, route: str, category: str
    ) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        """Wrap ``handler``: count, inject faults, check the token and scopes, run the hooks."""

        async def api_call(request: web.Request) -> web.StreamResponse:
            self.api_requests += 1
            scheme, _, token = request.headers.get("Authorization", "").partition(" ")
            if scheme.lower() != "bearer":
                token = ""
            self.api_requests_by_token[token] += 1
            fault = await self._apply_fault("api", request)
            if fault is not None:
                return fault
            issued = self._valid(token) if token else None
            if issued is None:
                self.api_unauthorized += 1
                return _api_error(401, 124, "Invalid access token.")
            missing = [s for s in self.required_scopes if s not in issued.scopes]
            if missing:
                return self._scope_error(missing)
            call = ApiCall(request, route, category, issued.app, issued.app.account)
            for hook in self.api_hooks:
                answer = await hook(call)
                if answer is not None:
                    answer.headers.update(call.headers)
                    return answer
            response = await handler(call)
            response.headers.update(call.headers)
            response.headers.setdefault("x-zm-trackingid", _tracking_id())
            return response

        return api_call

    def _scope_error(self, missing: list[str]) -> web.Response:
        status, code = self.scope_error
        return _api_error(status, code, _scopes_message(() if code == 4700 else missing))

    def _user(self, call: ApiCall) -> dict[str, Any] | web.Response:
        user_id = call.request.match_info["user_id"]
        user = call.account.find_user(user_id)
        if user is None:
            return _api_error(404, 1001, f"User does not exist: {user_id}.")
        return user

    async def _get_user(self, call: ApiCall) -> web.StreamResponse:
        query = call.request.query
        login_type = query.get("login_type")
        if login_type is not None and not login_type.isdigit():
            return _api_error(400, 300, "Invalid field: login_type.")
        user = self._user(call)
        if isinstance(user, web.Response):
            return user
        if user.get("status") == "pending":
            # Zoom: only id and created_at, created_at being the time of the call.
            return web.json_response({"id": user["id"], "created_at": iso_time(self.clock())})
        return web.json_response(copy.deepcopy(user))

    async def _delete_user(self, call: ApiCall) -> web.StreamResponse:
        user = self._user(call)
        if isinstance(user, web.Response):
            return user
        del call.account.users[str(user["id"])]
        return web.Response(status=204)

    async def _list_users(self, call: ApiCall) -> web.StreamResponse:
        status = call.request.query.get("status", "active")
        users = [u for u in call.account.users.values() if u.get("status", "active") == status]
        return self._page_of(call, f"users:{status}", public_copy(users), "users",
                             most=USERS_MAX_PAGE_SIZE)

    async def _create_group(self, call: ApiCall) -> web.StreamResponse:
        return web.json_response({"id": secrets.token_urlsafe(8)}, status=201)

    async def _report_participants(self, call: ApiCall) -> web.StreamResponse:
        meeting_id = call.request.match_info["meeting_id"]
        rows = call.account.report_participants.get(meeting_id)
        if rows is None:
            return _api_error(404, 3001, "Meeting does not exist.")
        return self._page_of(call, f"participants:{meeting_id}", rows, "participants")

    def _page_of(
        self,
        call: ApiCall,
        listing: str,
        rows: list[dict[str, Any]],
        key: str,
        *,
        most: int = MAX_PAGE_SIZE,
    ) -> web.StreamResponse:
        """One page of ``rows`` as Zoom pages a list: ``page_size``, ``next_page_token``."""
        query = call.request.query
        try:
            page_size = min(most, int(query.get("page_size", "30")))
        except ValueError:
            return _api_error(400, 300, "Invalid field: page_size.")
        if page_size < 1:
            return _api_error(400, 300, "Invalid field: page_size.")
        offset = 0
        token = query.get("next_page_token", "")
        if token:
            cursor = self._pages.get(token)
            if (
                cursor is None
                or cursor.account_id != call.account.account_id
                or cursor.listing != listing
                or self.clock() - cursor.issued_at > PAGE_TOKEN_LIFETIME
            ):
                self._pages.pop(token, None)
                return _api_error(400, 300, "The next page token is invalid or expired.")
            offset = cursor.offset
        following = ""
        if offset + page_size < len(rows):
            following = secrets.token_urlsafe(24)
            self._pages[following] = PageCursor(
                call.account.account_id, listing, page_size, offset + page_size, self.clock()
            )
        return web.json_response(
            {
                "page_count": max(1, -(-len(rows) // page_size)),
                "page_number": offset // page_size + 1,
                "page_size": page_size,
                "total_records": len(rows),
                "next_page_token": following,
                key: rows[offset : offset + page_size],
            }
        )

    async def _create_user(self, call: ApiCall) -> web.StreamResponse:
        try:
            info = (await call.request.json())["user_info"]
            email = info["email"]
        except (ValueError, KeyError, TypeError):
            return _api_error(
                400,
                300,
                "Validation Failed.",
                errors=[{"field": "user_info.email", "message": "Invalid field."}],
            )
        if call.account.find_user(email) is not None:
            return _api_error(409, 1005, f"User already in the account: {email}")
        user = {
            "id": secrets.token_urlsafe(16),
            "email": email,
            "first_name": info.get("first_name", ""),
            "last_name": info.get("last_name", ""),
            "type": info.get("type", 1),
            "account_id": call.account.account_id,
            "status": "pending",
            "created_at": iso_time(self.clock()),
        }
        call.account.add_user(user)
        fields = ("id", "email", "first_name", "last_name", "type")
        return web.json_response({key: user[key] for key in fields}, status=201)


def _scopes_message(scopes: Iterable[str]) -> str:
    """Zoom's scope-error message, naming ``scopes`` if any (code 4700 names none)."""
    names = ", ".join(scopes)
    message = "Invalid access token, does not contain scopes"
    return f"{message}:[{names}]." if names else message


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
