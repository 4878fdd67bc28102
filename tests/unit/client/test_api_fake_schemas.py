"""Every answer the fake gives for an operation of Zoom's specs matches that operation's response
schema in specs/zoom/ (types, required fields, nesting; enums stay open to new values)."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest_asyncio

from zoom_s2s import MemoryTokenStore, TokenManager, ZoomClient
from zoom_s2s.testing import FakeZoom
from zoom_s2s.testing._fake_examples import EXAMPLES

from ...support import FAST_RETRY

SPECS = Path(__file__).resolve().parents[3] / "specs" / "zoom"
NEWEST_FIRST = ("users", "team-chat", "accounts", "marketplace", "meetings", "phone")


def _schemas() -> dict[tuple[str, str], dict[str, Any]]:
    """(METHOD, path) -> the schema of its JSON success answer, newest spec first."""
    found: dict[tuple[str, str], dict[str, Any]] = {}
    for name in NEWEST_FIRST:
        for path, item in json.loads((SPECS / f"{name}.json").read_text())["paths"].items():
            for method, op in item.items():
                for status in ("200", "201"):
                    media = op.get("responses", {}).get(status, {}).get("content", {})
                    schema = media.get("application/json", {}).get("schema")
                    if schema and (method.upper(), path) not in found:
                        found[(method.upper(), path)] = schema
    return found


SCHEMAS = _schemas()
TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,), "integer": (int,), "number": (int, float), "boolean": (bool,),
    "array": (list,), "object": (dict,),
}


def _properties(schema: dict[str, Any]) -> dict[str, Any]:
    props: dict[str, Any] = {}
    for sub in schema.get("allOf") or []:
        props.update(_properties(sub))
    props.update(schema.get("properties") or {})
    return props


def problems(value: object, schema: dict[str, Any], where: str = "$") -> list[str]:
    """What in ``value`` the schema does not allow (empty: it matches)."""
    if value is None and schema.get("nullable"):
        return []
    choices = schema.get("oneOf") or schema.get("anyOf")
    if choices:
        rest = {k: v for k, v in schema.items() if k not in ("oneOf", "anyOf")}
        tried = [problems(value, {**rest, **choice, "properties": {
            **rest.get("properties", {}), **_properties(choice)}}, where) for choice in choices]
        return [] if [] in tried else tried[0]
    props = _properties(schema)
    kind = schema.get("type") or ("object" if props else None)
    if kind is None:
        return []
    if not isinstance(value, TYPES[kind]) or (kind != "boolean" and isinstance(value, bool)):
        return [f"{where}: {type(value).__name__}, the schema says {kind}"]
    found = []
    if isinstance(value, dict):
        required = schema.get("required") or []
        found += [f"{where}.{name}: missing" for name in required if name not in value]
        for name, item in value.items():
            if name in props:
                found += problems(item, props[name], f"{where}.{name}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found += problems(item, schema.get("items") or {}, f"{where}[{index}]")
    return found


def test_the_validator_finds_what_a_schema_refuses() -> None:
    schema = {"type": "object", "required": ["id"], "properties": {
        "id": {"type": "integer"}, "tags": {"type": "array", "items": {"type": "string"}}}}
    assert problems({"id": 1, "tags": ["a"], "new_field": {}}, schema) == []
    assert problems({"id": True, "tags": [1]}, schema) == [
        "$.id: bool, the schema says integer", "$.tags[0]: int, the schema says string"]
    assert problems({"tags": []}, schema) == ["$.id: missing"]


@pytest_asyncio.fixture
async def zoom() -> AsyncIterator[tuple[FakeZoom, ZoomClient]]:
    async with FakeZoom() as fake, TokenManager(
        fake.credentials, token_url=fake.token_url, retry=FAST_RETRY, store=MemoryTokenStore()
    ) as tokens, ZoomClient(tokens, fake.api_base_url) as client:
        yield fake, client


async def test_every_answer_of_the_fake_matches_zoom_s_schema(
    zoom: tuple[FakeZoom, ZoomClient],
) -> None:
    fake, client = zoom
    meeting = await client.meetings.create("me", {"topic": "Checked"})
    webinar = await client.webinars.create("me", {"topic": "Checked"})
    ids = {"userId": fake.me_id, "meetingId": str(meeting["id"]),
           "webinarId": str(webinar["id"])}
    checked = 0
    for (method, path), (status, _, key, _, _) in EXAMPLES.items():
        if method not in ("GET", "POST") or status == 204:
            continue
        concrete = re.sub(r"\{([^}]+)\}", lambda m: ids[m.group(1)], path)
        if path.startswith("/chat/"):
            answer = await client.upload(method, concrete, files={"file": ("a.txt", b"a")})
        elif method == "POST":
            answer = await client.request(method, concrete, json={"topic": "t", "email": "e@x.io"})
        else:
            answer = await client.request(method, concrete, params={"page_size": 2})
        assert problems(answer, SCHEMAS[(method, path)]) == [], (method, path)
        if key is not None:
            assert answer[key], (method, path)
        checked += 1
    assert checked >= 15
