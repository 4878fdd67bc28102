"""The request pipeline's rules, the same through every face: ZoomClient, ZoomAuthMiddleware,
``zoom_s2s.httpx.ZoomAuth`` (AsyncClient and Client) and ``zoom_s2s.requests.ZoomAuth``.

Tokens come from the fake Zoom (served from a thread); the API is a loopback origin
(tests/unit/_origins.py) that records each request's Authorization header and body
and answers as told; a second origin on 127.0.0.2 plays another host.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import httpx
import pytest
import requests

from zoom_s2s import TokenManager, ZoomClient, ZoomS2SError
from zoom_s2s.aiohttp import ZoomAuthMiddleware
from zoom_s2s.errors import UnauthorizedError, ZoomAPIError
from zoom_s2s.httpx import ZoomAuth as HttpxAuth
from zoom_s2s.requests import ZoomAuth as RequestsAuth
from zoom_s2s.sync import SyncTokenManager
from zoom_s2s.testing import FakeZoom

from ...support import FAST_RETRY
from .. import _origins
from .._origins import INVALID, Origin

api, foreign = _origins.api, _origins.foreign

PAYLOAD = bytes(range(256)) * 39 + b"-" * 16  # 10,000 bytes
LACKS_SCOPE = {
    "code": 4711,
    "message": "Invalid access token, does not contain scopes:[user:write:admin].",
}
OTHER_401 = {"code": 300, "message": "Request failed."}


def chunks() -> Iterator[bytes]:
    for start in range(0, len(PAYLOAD), 1000):
        yield PAYLOAD[start : start + 1000]


async def achunks() -> AsyncIterator[bytes]:
    for chunk in chunks():
        yield chunk


class Face:
    """One way to send a request with the shared token; blocking faces run in a thread."""

    blocking = False

    def __init__(self, zoom: FakeZoom, api: Origin, upload: Path) -> None:
        self.api_url = f"{api.url}/v2"
        self.upload = upload
        kind = SyncTokenManager if self.blocking else TokenManager
        self.tokens = kind(zoom.credentials, token_url=zoom.token_url, retry=FAST_RETRY)
        self.http = self.connect()

    def connect(self) -> Any:
        raise NotImplementedError

    def body(self, kind: str | None) -> Any:
        if kind == "bytes":
            return PAYLOAD
        if kind == "file":
            return self.upload.open("rb")
        if kind == "stream":
            return chunks() if self.blocking else achunks()
        return None

    def invalidations(self) -> int:
        return self.tokens.stats().invalidations

    async def send(
        self, method: str, url: str, body: str | None = None, headers: Any = None
    ) -> int:
        if self.blocking:
            return await asyncio.to_thread(self.call, method, url, self.body(body), headers)
        return await self.acall(method, url, self.body(body), headers)

    def call(self, method: str, url: str, body: Any, headers: Any) -> int:
        raise NotImplementedError

    async def acall(self, method: str, url: str, body: Any, headers: Any) -> int:
        raise NotImplementedError

    async def aclose(self) -> None:
        if self.blocking:
            await asyncio.to_thread(self.http.close)
            await asyncio.to_thread(self.tokens.close)  # type: ignore[union-attr]
        else:
            await (self.http.aclose() if hasattr(self.http, "aclose") else self.http.close())
            await self.tokens.aclose()  # type: ignore[union-attr]


class ClientFace(Face):
    def connect(self) -> Any:
        return ZoomClient(self.tokens, self.api_url, retry=FAST_RETRY)  # type: ignore[arg-type]

    async def acall(self, method: str, url: str, body: Any, headers: Any) -> int:
        assert (body, headers) == (None, None)  # the client sends JSON to its own API
        try:
            await self.http.request(method, url.removeprefix(self.api_url))
        except ZoomAPIError as exc:
            return exc.status
        return 200


class MiddlewareFace(Face):
    def connect(self) -> Any:
        auth = ZoomAuthMiddleware(self.tokens, api_url=self.api_url)  # type: ignore[arg-type]
        return aiohttp.ClientSession(middlewares=(auth,))

    async def acall(self, method: str, url: str, body: Any, headers: Any) -> int:
        async with self.http.request(method, url, data=body, headers=headers) as response:
            await response.read()
            return int(response.status)


class HttpxAsyncFace(Face):
    def connect(self) -> Any:
        auth = HttpxAuth(self.tokens, api_url=self.api_url)
        return httpx.AsyncClient(auth=auth, follow_redirects=True)

    async def acall(self, method: str, url: str, body: Any, headers: Any) -> int:
        response = await self.http.request(method, url, content=body, headers=headers)
        return int(response.status_code)


class HttpxSyncFace(Face):
    blocking = True

    def connect(self) -> Any:
        auth = HttpxAuth(self.tokens, api_url=self.api_url)
        return httpx.Client(auth=auth, follow_redirects=True)

    def call(self, method: str, url: str, body: Any, headers: Any) -> int:
        return int(self.http.request(method, url, content=body, headers=headers).status_code)


class RequestsFace(Face):
    blocking = True

    def connect(self) -> Any:
        session = requests.Session()
        session.auth = RequestsAuth(self.tokens, api_url=self.api_url)  # type: ignore[arg-type]
        return session

    def call(self, method: str, url: str, body: Any, headers: Any) -> int:
        response = self.http.request(method, url, data=body, headers=headers, timeout=10)
        return int(response.status_code)


FACES = {
    "ZoomClient": ClientFace,
    "middleware": MiddlewareFace,
    "httpx.AsyncClient": HttpxAsyncFace,
    "httpx.Client": HttpxSyncFace,
    "requests": RequestsFace,
}
ADAPTERS = [name for name in FACES if name != "ZoomClient"]  # any URL, any body, any header


@pytest.fixture(params=list(FACES))
async def face(
    request: pytest.FixtureRequest, zoom: FakeZoom, api: Origin, tmp_path: Path
) -> AsyncIterator[Face]:
    upload = tmp_path / "upload.bin"
    upload.write_bytes(PAYLOAD)
    one = FACES[request.param](zoom, api, upload)
    yield one
    await one.aclose()


# -- a refused token, through every face ----------------------------------------------------


async def test_a_refused_token_is_replaced_once_and_the_request_sent_again(
    face: Face, zoom: FakeZoom, api: Origin
) -> None:
    api.next_answers.append((401, INVALID))
    assert await face.send("GET", f"{face.api_url}/users/me") == 200
    assert api.authorizations() == [f"Bearer {token}" for token in zoom.issued_tokens]
    assert zoom.tokens_issued == 2
    assert face.invalidations() == 1


async def test_a_second_refusal_is_the_callers_after_one_retry(
    face: Face, zoom: FakeZoom, api: Origin
) -> None:
    api.next_answers += [(401, INVALID)] * 2
    assert await face.send("GET", f"{face.api_url}/users/me") == 401
    assert len(api.seen) == 2
    assert zoom.tokens_issued == 2
    assert face.invalidations() == 1


async def test_a_401_with_another_code_costs_no_token(
    face: Face, zoom: FakeZoom, api: Origin
) -> None:
    api.next_answers.append((401, OTHER_401))
    assert await face.send("GET", f"{face.api_url}/users/me") == 401
    assert len(api.seen) == 1
    assert zoom.tokens_issued == 1
    assert face.invalidations() == 0


async def test_a_scope_granted_since_reaches_the_request_through_one_fresh_token(
    face: Face, zoom: FakeZoom, api: Origin
) -> None:
    url = f"{face.api_url}/users/me"
    assert await face.send("GET", url) == 200
    zoom.scope += " user:write:admin"  # granted in the Marketplace: only new tokens get it
    api.next_answers.append((400, LACKS_SCOPE))
    assert await face.send("GET", url) == 200
    assert zoom.tokens_issued == 2
    assert len(api.seen) == 3
    assert face.invalidations() == 1


async def test_a_scope_error_a_fresh_token_cannot_fix_is_not_sent_again(
    face: Face, zoom: FakeZoom, api: Origin
) -> None:
    url = f"{face.api_url}/users/me"
    api.next_answers += [(400, LACKS_SCOPE)] * 2
    assert await face.send("GET", url) == 400
    assert (zoom.tokens_issued, len(api.seen)) == (2, 1)  # the fresh token lacks it too
    assert await face.send("GET", url) == 400
    assert (zoom.tokens_issued, len(api.seen)) == (2, 2)  # known to lack it: no refetch


async def test_a_401_from_where_a_redirect_led_costs_no_token(
    face: Face, zoom: FakeZoom, api: Origin, foreign: Origin
) -> None:
    api.replies["/v2/moved"] = ("redirect", f"{foreign.url}/deny")
    foreign.replies["/deny"] = ("json", 401, INVALID)
    assert await face.send("GET", f"{face.api_url}/moved") == 401
    assert foreign.authorizations() == [None]
    assert zoom.tokens_issued == 1
    assert face.invalidations() == 0


# -- request bodies and other hosts, through every adapter ------------------------------------


@pytest.mark.parametrize(
    ("face", "kind"),
    [(name, "bytes") for name in ADAPTERS]
    + [(name, "file") for name in ("middleware", "httpx.Client", "requests")],
    indirect=["face"],
)
async def test_a_body_that_can_be_sent_again_is_sent_again_in_full(
    face: Face, zoom: FakeZoom, api: Origin, kind: str
) -> None:
    api.next_answers.append((401, INVALID))
    assert await face.send("POST", f"{face.api_url}/upload", body=kind) == 200
    assert api.bodies == [PAYLOAD, PAYLOAD]
    assert zoom.tokens_issued == 2


@pytest.mark.parametrize("face", ADAPTERS, indirect=True)
async def test_a_streamed_body_is_never_sent_again_short(
    face: Face, zoom: FakeZoom, api: Origin
) -> None:
    api.next_answers.append((401, INVALID))
    with pytest.raises(UnauthorizedError, match="cannot be sent twice") as info:
        await face.send("POST", f"{face.api_url}/upload", body="stream")
    assert isinstance(info.value, ZoomS2SError)
    assert (info.value.status, info.value.code) == (401, 124)
    assert api.bodies == [PAYLOAD]  # sent once, in full
    assert face.invalidations() == 1  # the refused token is replaced all the same
    assert await face.send("GET", f"{face.api_url}/users/me") == 200
    assert api.authorizations()[-1] == f"Bearer {zoom.issued_tokens[1]}"
    assert zoom.tokens_issued == 2


@pytest.mark.parametrize("face", ADAPTERS, indirect=True)
async def test_a_request_to_another_host_goes_out_untouched(
    face: Face, zoom: FakeZoom, foreign: Origin
) -> None:
    own = {"Authorization": "Basic dXNlcjpwYXNzd29yZA=="}
    assert await face.send("GET", f"{foreign.url}/elsewhere", headers=own) == 200
    assert foreign.seen == [("/elsewhere", own["Authorization"])]
    assert zoom.token_requests == 0
