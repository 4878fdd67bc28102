"""The fake's meetings, webinars, recordings, reports and chat files, answered as Zoom's specs show.

Meetings and webinars are kept per account (create, get, update, delete, list
by host); the other operations answer with the examples of Zoom's specs
(``_fake_examples.py``, generated), lists in pages of ``list_rows`` rows.
Recording files download from the fake through a redirect to another origin,
as Zoom's do. See docs/testing.rst.
"""

from __future__ import annotations

import copy
import re
import secrets
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from aiohttp import web

from ._fake_examples import EXAMPLES
from ._fake_state import ApiCall

__all__ = ["RECORDING_BYTES", "SpecRoutes"]

Handler = Callable[[ApiCall], Awaitable[web.StreamResponse]]


class _Fake(Protocol):  # what the routes use of FakeZoom
    @property
    def url(self) -> str: ...

    #: Meetings and webinars of every account by id: the rate limits count a host's caps.
    meetings: dict[str, dict[str, Any]]

    def token_is_valid(self, token: str) -> bool: ...

    def _api(
        self, handler: Handler, route: str, category: str
    ) -> Callable[[web.Request], Awaitable[web.StreamResponse]]: ...

RECORDING_BYTES = b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 64
"""The content of every recording file the fake serves."""

_LABELS = {"light": "Light", "medium": "Medium", "heavy": "Heavy",
           "resource_intensive": "Resource-intensive", None: "Light"}
_KINDS = {"meetings": "meeting_id", "webinars": "webinar_id"}


class SpecRoutes:
    """The spec-driven part of a :class:`~zoom_s2s.testing.FakeZoom`.

    Attributes:
        list_rows: Rows of each list the examples answer (report rows repeat
            ids and leave some blank, as Zoom's do).
        storage_authorizations: The ``Authorization`` header (or ``None``) of
            each request the storage host got: a token must never reach it.
        uploads: (user id, file name, bytes) of every chat file uploaded (each
            after a redirect to the same host, as Zoom's file host answers).
    """

    def __init__(self, fake: _Fake) -> None:
        self.fake = fake
        self.list_rows = 5
        self.objects: dict[tuple[str, str], dict[str, dict[str, Any]]] = {}
        self.storage_authorizations: list[str | None] = []
        self.uploads: list[tuple[str, str, bytes]] = []

    def add_routes(self, app: web.Application) -> None:
        """Serve the operations of ``EXAMPLES`` the fake has no route of its own for,
        and the recording download hosts."""
        served = {(route.method, route.resource.canonical)
                  for route in app.router.routes() if route.resource is not None}
        for (method, path), (_, category, _, _, _) in EXAMPLES.items():
            pattern = "/v2" + re.sub(r"\{([^}]+)\}", _snake, path)  # /v2/users/{user_id}
            if (method, pattern) in served:
                continue
            handler = self._handler(method, path)
            app.router.add_route(
                method, pattern, self.fake._api(handler, f"{method} {pattern}", _LABELS[category])
            )
        app.router.add_get("/rec/download/{file}", self._download)
        app.router.add_get("/_fake/storage/{file}", self._storage)

    # -- handlers ---------------------------------------------------------------------

    def _handler(self, method: str, path: str) -> Handler:
        for kind, key in _KINDS.items():
            if path == f"/users/{{userId}}/{kind}":
                if method == "POST":
                    return lambda call: self._create(call, kind, path)
                return lambda call: self._list_objects(call, kind, path)
            if path == f"/{kind}/{{{_camel(key)}}}":
                return lambda call: self._one(call, kind, method, path)
        if path == "/chat/users/{userId}/files":
            return self._upload
        return lambda call: self._example(call, method, path)

    async def _create(self, call: ApiCall, kind: str, path: str) -> web.StreamResponse:
        try:
            body = await call.request.json()
        except ValueError:
            return _error(400, 300, "Request Body should be a valid JSON object.")
        if not isinstance(body, dict):
            return _error(400, 300, "Request Body should be a valid JSON object.")
        host = call.account.find_user(call.request.match_info["user_id"])
        if host is None:
            return _error(404, 1001, "User does not exist.")
        record = dict(_example("POST", path), **body)
        number = secrets.randbelow(9 * 10**10) + 10**10
        record.update(id=number, uuid=secrets.token_urlsafe(16) + "==", host_id=host["id"],
                      host_email=host.get("email", ""))
        self.objects.setdefault((call.account.account_id, kind), {})[str(number)] = record
        self.fake.meetings[str(number)] = record
        return web.json_response(_shaped(record, _example("POST", path)), status=201)

    async def _one(self, call: ApiCall, kind: str, method: str, path: str) -> web.StreamResponse:
        key = call.request.match_info[_KINDS[kind]]
        stored = self.objects.get((call.account.account_id, kind), {})
        record = stored.get(key)
        if record is None:
            noun = kind[:-1].capitalize()
            return _error(404, 3001, f"{noun} does not exist: {key}.")
        if method == "GET":
            return web.json_response(_shaped(record, _example(method, path)))
        if method == "DELETE":
            del stored[key]
            self.fake.meetings.pop(key, None)
            return web.Response(status=204)
        try:
            changes = await call.request.json()
        except ValueError:
            return _error(400, 300, "Request Body should be a valid JSON object.")
        record.update(changes if isinstance(changes, dict) else {})
        return web.Response(status=204)

    async def _list_objects(self, call: ApiCall, kind: str, path: str) -> web.StreamResponse:
        host = call.account.find_user(call.request.match_info["user_id"])
        if host is None:
            return _error(404, 1001, "User does not exist.")
        stored = self.objects.get((call.account.account_id, kind), {})
        _, _, key, _, _ = EXAMPLES[("GET", path)]
        template = _example("GET", path)[str(key)][0]
        rows = [_shaped(record, template) for record in stored.values()
                if record["host_id"] == host["id"]]
        return self._page(call, "GET", path, rows)

    async def _example(self, call: ApiCall, method: str, path: str) -> web.StreamResponse:
        status, _, key, _, body = EXAMPLES[(method, path)]
        if key is not None:
            item = _example(method, path)[key][0]
            report = "participants" in path or path.startswith("/report/")
            rows = [self._row(item, index, report) for index in range(self.list_rows)]
            return self._page(call, method, path, rows)
        if body is None:
            return web.Response(status=status)
        return web.json_response(self._localise(copy.deepcopy(body)), status=status)

    async def _upload(self, call: ApiCall) -> web.StreamResponse:
        if "hop" not in call.request.query:  # Zoom's file host redirects uploads
            raise web.HTTPTemporaryRedirect(str(call.request.rel_url.update_query(hop="1")))
        form = await call.request.post()
        field = form.get("file")
        if not isinstance(field, web.FileField):
            return _error(400, 300, "Validation Failed: no file.")
        content = field.file.read()
        self.uploads.append((call.request.match_info["user_id"], field.filename, content))
        return web.json_response({"id": secrets.token_urlsafe(16)}, status=201)

    async def _download(self, request: web.Request) -> web.StreamResponse:
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not self.fake.token_is_valid(token):
            return _error(401, 124, "Invalid access token.")
        port = request.url.port
        raise web.HTTPFound(f"http://localhost:{port}/_fake/storage/{request.match_info['file']}")

    async def _storage(self, request: web.Request) -> web.StreamResponse:
        self.storage_authorizations.append(request.headers.get("Authorization"))
        return web.Response(body=RECORDING_BYTES, content_type="video/mp4")

    # -- pages and rows ---------------------------------------------------------------

    def _page(
        self, call: ApiCall, method: str, path: str, rows: list[dict[str, Any]]
    ) -> web.StreamResponse:
        _, _, key, largest, _ = EXAMPLES[(method, path)]
        query = call.request.query
        try:
            size = min(int(query.get("page_size", "30")), largest or 300)
            offset = int(query.get("next_page_token", "0-").split("-")[0] or 0)
        except ValueError:
            return _error(400, 300, "The next page token is invalid or expired.")
        page = rows[offset : offset + size]
        following = ""
        if offset + size < len(rows):
            following = f"{offset + size}-{secrets.token_hex(4)}"
        answer = {"page_size": size, "total_records": len(rows), "next_page_token": following,
                  str(key): page}
        return web.json_response(answer)

    def _row(self, item: dict[str, Any], index: int, report: bool) -> dict[str, Any]:
        row: dict[str, Any] = self._localise(copy.deepcopy(item))
        if isinstance(row.get("id"), int):
            row["id"] += index
        elif "id" in row:
            row["id"] = f"row-{index}"
            if report:  # as Zoom's do: someone who rejoined repeats an id; a guest has none
                row["id"] = {2: "row-1", 3: ""}.get(index, row["id"])
        return row

    def _localise(self, body: Any) -> Any:  # the JSON it is given
        """Point recording ``download_url`` fields at the fake."""
        if isinstance(body, dict):
            for key, value in body.items():
                if key == "download_url" and isinstance(value, str):
                    body[key] = f"{self.fake.url}/rec/download/{secrets.token_hex(6)}"
                else:
                    self._localise(value)
        elif isinstance(body, list):
            for item in body:
                self._localise(item)
        return body


def _shaped(record: dict[str, Any], template: dict[str, Any]) -> dict[str, Any]:
    """``record``'s fields that an answer shaped like ``template`` has, of the same types."""
    shaped = copy.deepcopy(template)
    for key, example in template.items():
        value = record.get(key)
        same_bool = isinstance(example, bool) == isinstance(value, bool)
        if isinstance(value, type(example)) and same_bool:
            shaped[key] = copy.deepcopy(value)
    return shaped


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.capitalize() for part in rest)


def _snake(match: re.Match[str]) -> str:
    return "{" + re.sub(r"([a-z])([A-Z])", r"\1_\2", match.group(1)).lower() + "}"


def _example(method: str, path: str) -> dict[str, Any]:
    body = copy.deepcopy(EXAMPLES[(method, path)][4])
    assert isinstance(body, dict)
    return body


def _error(status: int, code: int, message: str) -> web.Response:
    return web.json_response(
        {"code": code, "message": message}, status=status,
        headers={"x-zm-trackingid": "v=2.0;clid=us05;rid=" + secrets.token_hex(8)},
    )
