"""zoom_s2s.requests.ZoomAuth against the fake Zoom over loopback, with real requests sessions.

Foreign origins are real servers too (tests/unit/_origins.py): one on
127.0.0.1 plays the API and redirects, one on 127.0.0.2 records what a
redirect would hand it.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Iterator
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

requests = pytest.importorskip("requests")
from zoom_s2s.requests import ZoomAuth  # noqa: E402 - after the skip


@pytest.fixture
def session(zoom: FakeZoom, tokens: SyncTokenManager) -> Iterator[requests.Session]:
    with requests.Session() as http:
        http.auth = ZoomAuth(tokens, api_url=zoom.api_base_url)
        yield http


def test_the_module_does_not_hide_the_requests_package() -> None:
    module = importlib.import_module("zoom_s2s.requests")
    assert module.requests is sys.modules["requests"]
    assert Path(sys.modules["requests"].__file__ or "").parent.name == "requests"
    assert issubclass(module.ZoomAuth, requests.auth.AuthBase)


def test_a_session_signs_requests_with_one_shared_token(
    zoom: FakeZoom, session: requests.Session
) -> None:
    for _ in range(3):
        response = session.get(f"{zoom.api_base_url}/users/me")
        assert response.status_code == 200
        assert response.json()["id"] == zoom.me_id
    assert zoom.tokens_issued == 1
    assert dict(zoom.api_requests_by_token) == {zoom.issued_tokens[0]: 3}


def test_per_request_auth_works_too(zoom: FakeZoom, tokens: SyncTokenManager) -> None:
    auth = ZoomAuth(tokens, api_url=zoom.api_base_url)
    response = requests.get(f"{zoom.api_base_url}/users/me", auth=auth, timeout=10)
    assert response.status_code == 200
    assert zoom.tokens_issued == 1


def test_after_revocation_the_hook_invalidates_and_refetches_once(
    zoom: FakeZoom, session: requests.Session, tokens: SyncTokenManager
) -> None:
    assert session.get(f"{zoom.api_base_url}/users/me").status_code == 200
    zoom.revoke_all()
    response = session.get(f"{zoom.api_base_url}/users/me")
    assert response.status_code == 200
    assert [r.status_code for r in response.history] == [401]
    assert session.get(f"{zoom.api_base_url}/users/me").status_code == 200
    assert zoom.tokens_issued == 2
    assert zoom.api_unauthorized == 1
    assert tokens.stats().invalidations == 1


def test_a_post_body_is_sent_again_on_the_retry(
    zoom: FakeZoom, session: requests.Session
) -> None:
    assert session.get(f"{zoom.api_base_url}/users/me").status_code == 200
    zoom.revoke_all()
    body = {"action": "create", "user_info": {"email": "new@example.com", "type": 1}}
    response = session.post(f"{zoom.api_base_url}/users", json=body)
    assert response.status_code == 201, response.text
    assert response.json()["email"] == "new@example.com"
    assert zoom.tokens_issued == 2


def test_two_managers_on_one_store_refetch_once_after_revocation(
    zoom: FakeZoom, tmp_path: Path
) -> None:
    store = (tmp_path / "tokens").as_uri()
    kwargs = {"token_url": zoom.token_url, "retry": FAST_RETRY, "store": store}
    url = f"{zoom.api_base_url}/users/me"
    with (
        SyncTokenManager(zoom.credentials, **kwargs) as first,
        SyncTokenManager(zoom.credentials, **kwargs) as second,
    ):
        one = ZoomAuth(first, api_url=zoom.api_base_url)
        two = ZoomAuth(second, api_url=zoom.api_base_url)
        assert requests.get(url, auth=one, timeout=10).status_code == 200
        assert requests.get(url, auth=two, timeout=10).status_code == 200
        zoom.revoke_all()
        assert requests.get(url, auth=one, timeout=10).status_code == 200
        assert requests.get(url, auth=two, timeout=10).status_code == 200
    assert zoom.tokens_issued == 2
    assert zoom.api_unauthorized == 2


def test_the_token_goes_to_the_api_origin_only_and_never_through_a_foreign_redirect(
    tokens: SyncTokenManager, api: Origin, foreign: Origin
) -> None:
    api.replies["/v2/moved"] = ("redirect", f"{foreign.url}/landing")
    auth = ZoomAuth(tokens, api_url=f"{api.url}/v2")
    response = requests.get(f"{api.url}/v2/moved", auth=auth, timeout=10)
    assert response.status_code == 200
    assert response.json()["path"] == "/landing"
    assert requests.get(f"{foreign.url}/direct", auth=auth, timeout=10).status_code == 200
    token = tokens.get_token().access_token
    assert api.seen == [("/v2/moved", f"Bearer {token}")]
    assert foreign.seen == [("/landing", None), ("/direct", None)]


async def test_an_async_manager_is_refused_at_once(zoom: FakeZoom) -> None:
    async with TokenManager(zoom.credentials, token_url=zoom.token_url) as manager:
        with pytest.raises(UsageError, match="SyncTokenManager"):
            ZoomAuth(manager)  # type: ignore[arg-type]


def test_the_repr_names_no_token(zoom: FakeZoom, tokens: SyncTokenManager) -> None:
    token = tokens.get_token().access_token
    auth = ZoomAuth(tokens, api_url=zoom.api_base_url)
    assert token not in repr(auth)
    assert zoom.credentials.client_secret not in repr(auth)
