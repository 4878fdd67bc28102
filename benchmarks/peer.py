"""peer: the hot-path and cold-stampede workloads through Authlib, as ratios to zoom-s2s.

Authlib's ``AsyncOAuth2Client`` (httpx integration) is the usual choice for a
client-credentials style token in asyncio code. Zoom's grant is not
``client_credentials`` but ``account_credentials`` with an ``account_id``;
Authlib sends it when asked explicitly::

    await client.fetch_token(token_url, grant_type="account_credentials",
                             account_id=...)   # client auth: client_secret_basic

(checked below against the fake: the token it gets is accepted by the API).
Authlib cannot *renew* that grant by itself: ``ensure_active_token`` only
re-fetches for ``client_credentials`` or with a refresh token, and raises
``InvalidTokenError`` otherwise (also checked below). So the closest Authlib
equivalent of ``get_token()`` is: fetch when there is no token (guarded by an
``asyncio.Lock`` in each process, as a careful user would write it; and
unguarded, as it is often written), then ``ensure_active_token()``, which every
Authlib request runs. It caches per client, so per process: it has no
cross-process sharing.

Authlib is a benchmark-only dependency (the ``bench`` extra).
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import time
import warnings
from collections.abc import AsyncIterator
from typing import Any

from tests.harness.fleet import Fleet
from zoom_s2s import MemoryTokenStore, TokenManager
from zoom_s2s.testing import FakeZoom

from . import _subjects, cold_stampede
from ._common import BenchmarkSkipped, Figure, Rounds, RunContext, compare_async, figure
from .hot_path import _CACHE, baseline_get_token

NAME = "peer"
TITLE = "Authlib AsyncOAuth2Client on the same workloads (ratios to zoom-s2s)"


def _authlib_client_class() -> Any:
    """Authlib's AsyncOAuth2Client, without its warning about the httpx module's name."""
    with warnings.catch_warnings():
        try:
            # authlib.deprecate installs an "always" filter when imported: import it
            # first, so that the "ignore" below comes before it.
            importlib.import_module("authlib.deprecate")
            warnings.simplefilter("ignore", DeprecationWarning)
            module = importlib.import_module("authlib.integrations.httpx_client")
        except ImportError as exc:
            raise BenchmarkSkipped(
                f"Authlib (with httpx) is missing: pip install -e '.[bench]' ({exc})"
            ) from None
    return module.AsyncOAuth2Client


def _new_client(credentials: Any, **options: Any) -> Any:
    return _authlib_client_class()(
        credentials.client_id,
        credentials.client_secret,
        token_endpoint_auth_method="client_secret_basic",
        **options,
    )


async def _fetch(client: Any, token_url: str, account_id: str) -> Any:
    return await client.fetch_token(
        token_url, grant_type="account_credentials", account_id=account_id
    )


class _AuthlibSubject:
    def __init__(self, spec: _subjects.Spec, client: Any, *, guarded: bool) -> None:
        self.fetched: dict[str, float] = {}
        self._spec = spec
        self._client = client
        self._guarded = guarded
        self._lock = asyncio.Lock()

    async def _fetch(self) -> None:
        token = await _fetch(self._client, self._spec.token_url, self._spec.credentials.account_id)
        self.fetched[token["access_token"]] = time.time()

    async def get_token(self) -> str:
        if self._client.token is None:
            if self._guarded:
                async with self._lock:
                    if self._client.token is None:
                        await self._fetch()
            else:
                await self._fetch()
        await self._client.ensure_active_token(self._client.token)
        return str(self._client.token["access_token"])


@contextlib.asynccontextmanager
async def _authlib(spec: _subjects.Spec, *, guarded: bool) -> AsyncIterator[_AuthlibSubject]:
    async with _new_client(spec.credentials) as client:
        yield _AuthlibSubject(spec, client, guarded=guarded)


def authlib_guarded(spec: _subjects.Spec) -> Any:
    """Authlib, one client per process, first fetch behind an asyncio.Lock."""
    return _authlib(spec, guarded=True)


def authlib_unguarded(spec: _subjects.Spec) -> Any:
    """Authlib, one client per process, every caller without a token fetches."""
    return _authlib(spec, guarded=False)


async def _checks_and_hot_path(ctx: RunContext) -> tuple[dict[str, Any], Rounds]:
    checks: dict[str, Any] = {}
    calls, rounds = ctx.size((50_000, 7), (200_000, 15))
    async with FakeZoom(expires_in=3599) as fake:
        creds = fake.credentials
        async with _new_client(creds) as client:
            token = await _fetch(client, fake.token_url, creds.account_id)
            answer = await client.get(f"{fake.api_base_url}/users/me")
            checks["speaks account_credentials"] = (
                token.get("access_token") is not None and answer.status_code == 200
            )
            async with _new_client(creds, leeway=7200) as expiring:  # "expired" at once
                await _fetch(expiring, fake.token_url, creds.account_id)
                try:
                    await expiring.ensure_active_token(expiring.token)
                    checks["renews account_credentials itself"] = True
                except Exception as exc:
                    checks["renews account_credentials itself"] = False
                    checks["renewal error"] = type(exc).__name__

            async def authlib_get_token() -> Any:
                await client.ensure_active_token(client.token)
                return client.token

            async with TokenManager(
                creds, store=MemoryTokenStore(), token_url=fake.token_url
            ) as manager:
                await manager.get_token()
                _CACHE["token"] = (object(), time.time() + 3600)
                measured = await compare_async(
                    {
                        "baseline": baseline_get_token,
                        "zoom-s2s": manager.get_token,
                        "authlib": authlib_get_token,
                    },
                    calls=calls,
                    rounds=rounds,
                    budget_s=ctx.size(0.05, 0.1),
                )
    return checks, measured


def run(ctx: RunContext) -> list[Figure]:
    _authlib_client_class()
    checks, measured = asyncio.run(_checks_and_hot_path(ctx))
    authlib_ns, ours_ns = measured.median("authlib"), measured.median("zoom-s2s")
    figures = [
        figure(
            NAME,
            "authlib: account_credentials fetch + API call work",
            float(checks["speaks account_credentials"]),
            at_least=1,
            note="fetch_token(url, grant_type='account_credentials', account_id=...), "
            "client_secret_basic",
        ),
        figure(
            NAME,
            "authlib: renews the account_credentials grant by itself",
            float(checks["renews account_credentials itself"]),
            note=f"ensure_active_token on an expired token: {checks.get('renewal error', 'ok')}",
        ),
        figure(
            NAME,
            "hot path: authlib ensure_active_token / zoom-s2s get_token",
            measured.ratio("authlib", "zoom-s2s"),
            "x",
            note=f"median {authlib_ns:.0f} vs {ours_ns:.0f} ns/call "
            f"(dict-read baseline {measured.median('baseline'):.0f}); CPU ratio "
            f"{measured.cpu_ratio('authlib', 'zoom-s2s').median:.2f}x",
        ),
    ]
    data: dict[str, Any] = {"checks": checks, "hot_path": measured.summary()}
    if not ctx.has_redis():
        figures.append(figure(NAME, "cold stampede", None, note="skipped: needs redis-server"))
        ctx.data[NAME] = data
        return figures
    processes, coroutines = cold_stampede.configs(ctx)[0]
    shape = f"{processes}x{coroutines}"
    subjects: dict[str, _subjects.SubjectFactory] = {
        "zoom-s2s redis": _subjects.zoom_s2s_redis,
        "authlib guarded": authlib_guarded,
        "authlib unguarded": authlib_unguarded,
    }
    latency = cold_stampede.TOKEN_LATENCY
    with (
        FakeZoom(latency=latency).running_in_thread() as fake,
        Fleet(token_url=fake.token_url, credentials=fake.credentials, timeout=120.0) as fleet,
    ):
        outcomes = cold_stampede.measure(
            ctx,
            fleet,
            fake,
            subjects,
            processes=processes,
            coroutines=coroutines,
            rounds=ctx.size(3, 7),
        )
    ours = outcomes["zoom-s2s redis"]
    for label in ("authlib guarded", "authlib unguarded"):
        other = outcomes[label]
        figures += [
            figure(
                NAME,
                f"stampede {shape}: {label} / zoom-s2s token requests",
                other.requests / max(ours.requests, 1),
                "x",
                note=f"{other.requests} vs {ours.requests} requests (worst round)",
            ),
            figure(
                NAME,
                f"stampede {shape}: {label} / zoom-s2s last token time",
                cold_stampede.per_round(other, ours, "last_ms"),
                "x",
                note=f"{other.last_ms:.1f} vs {ours.last_ms:.1f} ms; fleet CPU "
                f"{other.cpu_ms:.0f} vs {ours.cpu_ms:.0f} ms",
            ),
        ]
    data["stampede"] = {shape: {label: o.summary() for label, o in outcomes.items()}}
    ctx.data[NAME] = data
    return figures
