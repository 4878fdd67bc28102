"""zoom_s2s.httpx.ZoomAuth against the fake Zoom over loopback, with httpx.Client and AsyncClient.

Foreign origins are real servers too (tests/unit/_origins.py): one on
127.0.0.1 plays the API and redirects, one on 127.0.0.2 records what a
redirect would hand it.
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import pytest

from zoom_s2s import TokenManager
from zoom_s2s.errors import UsageError
from zoom_s2s.sync import SyncTokenManager
from zoom_s2s.testing import FakeZoom

from ..support import FAST_RETRY
from . import _origins
from ._origins import Origin

# The fixtures shared with the other adapter module, registered here by name.
tokens, api, foreign = _origins.tokens, _origins.api, _origins.foreign

httpx = pytest.importorskip("httpx")
from zoom_s2s.httpx import ZoomAuth  # noqa: E402 - after the skip


def test_the_module_does_not_hide_the_httpx_package() -> None:
    module = importlib.import_module("zoom_s2s.httpx")
    assert module.httpx is sys.modules["httpx"]
    assert Path(sys.modules["httpx"].__file__ or "").parent.name == "httpx"
    assert issubclass(module.ZoomAuth, httpx.Auth)


def test_sync_client_signs_requests_with_one_shared_token(
    zoom: FakeZoom, tokens: SyncTokenManager
) -> None:
    auth = ZoomAuth(tokens, api_url=zoom.api_base_url)
    with httpx.Client(auth=auth, base_url=zoom.api_base_url) as client:
        for _ in range(3):
            response = client.get("/users/me")
            assert response.status_code == 200
            assert response.json()["id"] == zoom.me_id
    assert zoom.tokens_issued == 1
    assert dict(zoom.api_requests_by_token) == {zoom.issued_tokens[0]: 3}


def test_sync_client_after_revocation_invalidates_and_refetches_once(
    zoom: FakeZoom, tokens: SyncTokenManager
) -> None:
    with httpx.Client(auth=ZoomAuth(tokens, api_url=zoom.api_base_url)) as client:
        assert client.get(f"{zoom.api_base_url}/users/me").status_code == 200
        zoom.revoke_all()
        response = client.get(f"{zoom.api_base_url}/users/me")
        assert response.status_code == 200
        assert [r.status_code for r in response.history] == [401]
    assert zoom.tokens_issued == 2
    assert zoom.api_unauthorized == 1
    assert tokens.stats().invalidations == 1


def test_two_managers_on_one_store_refetch_once_after_revocation(
    zoom: FakeZoom, tmp_path: Path
) -> None:
    """Two processes' worth of clients see the 401 in turn; compare-and-delete: one fetch."""
    store = (tmp_path / "tokens").as_uri()
    kwargs = {"token_url": zoom.token_url, "retry": FAST_RETRY, "store": store}
    with (
        SyncTokenManager(zoom.credentials, **kwargs) as first,
        SyncTokenManager(zoom.credentials, **kwargs) as second,
        httpx.Client(auth=ZoomAuth(first, api_url=zoom.api_base_url)) as one,
        httpx.Client(auth=ZoomAuth(second, api_url=zoom.api_base_url)) as two,
    ):
        url = f"{zoom.api_base_url}/users/me"
        assert one.get(url).status_code == two.get(url).status_code == 200
        assert zoom.tokens_issued == 1
        zoom.revoke_all()
        assert one.get(url).status_code == 200
        assert two.get(url).status_code == 200
    assert zoom.tokens_issued == 2
    assert zoom.api_unauthorized == 2


def test_the_token_goes_to_the_api_origin_only_and_never_through_a_foreign_redirect(
    zoom: FakeZoom, tokens: SyncTokenManager, api: Origin, foreign: Origin
) -> None:
    api.replies["/v2/moved"] = ("redirect", f"{foreign.url}/landing")
    auth = ZoomAuth(tokens, api_url=f"{api.url}/v2")
    with httpx.Client(auth=auth, follow_redirects=True) as client:
        response = client.get(f"{api.url}/v2/moved")
        assert response.status_code == 200
        assert response.json()["path"] == "/landing"
        assert client.get(f"{foreign.url}/direct").status_code == 200
        # A header set by the caller for another origin is not the token: left alone,
        # but the adapter never adds one there.
    token = tokens.get_token().access_token
    assert api.seen == [("/v2/moved", f"Bearer {token}")]
    assert foreign.seen == [("/landing", None), ("/direct", None)]


async def test_async_client_with_a_token_manager_refetches_once_after_revocation(
    zoom: FakeZoom,
) -> None:
    async with (
        TokenManager(zoom.credentials, token_url=zoom.token_url, retry=FAST_RETRY) as manager,
        httpx.AsyncClient(
            auth=ZoomAuth(manager, api_url=zoom.api_base_url), base_url=zoom.api_base_url
        ) as client,
    ):
        assert (await client.get("/users/me")).status_code == 200
        zoom.revoke_all()
        response = await client.get("/users/me")
        assert response.status_code == 200
        assert [r.status_code for r in response.history] == [401]
        assert (await client.get("/users/me")).status_code == 200
        assert manager.stats().invalidations == 1
    assert zoom.tokens_issued == 2


async def test_async_client_with_a_blocking_manager_runs_it_in_a_thread(
    zoom: FakeZoom, tokens: SyncTokenManager
) -> None:
    async with httpx.AsyncClient(auth=ZoomAuth(tokens, api_url=zoom.api_base_url)) as client:
        assert (await client.get(f"{zoom.api_base_url}/users/me")).status_code == 200
        zoom.revoke_all()
        assert (await client.get(f"{zoom.api_base_url}/users/me")).status_code == 200
    assert zoom.tokens_issued == 2
    assert tokens.stats().invalidations == 1


async def test_a_sync_client_with_an_async_manager_is_a_usage_error(zoom: FakeZoom) -> None:
    async with TokenManager(zoom.credentials, token_url=zoom.token_url) as manager:
        with (
            httpx.Client(auth=ZoomAuth(manager, api_url=zoom.api_base_url)) as client,
            pytest.raises(UsageError, match="SyncTokenManager"),
        ):
            client.get(f"{zoom.api_base_url}/users/me")
    assert zoom.token_requests == 0


def test_the_repr_names_no_token(zoom: FakeZoom, tokens: SyncTokenManager) -> None:
    token = tokens.get_token().access_token
    auth = ZoomAuth(tokens, api_url=zoom.api_base_url)
    assert token not in repr(auth)
    assert zoom.credentials.client_secret not in repr(auth)
