"""Shared answer handling (zoom_s2s._http) against a real aiohttp server on loopback."""

from __future__ import annotations

import asyncio
import io
import json
import logging
from collections.abc import AsyncIterator

import aiohttp
import pytest
import pytest_asyncio
import stamina
from aiohttp import web
from aiohttp.test_utils import TestServer

from zoom_s2s._http import (
    describe_body,
    looks_like_html,
    own_retry_notices,
    parse_json,
    read_bounded,
)

LIMIT = 1000
TOTAL = 32 * 1024 * 1024


class TooBig(Exception):
    pass


@pytest_asyncio.fixture
async def server() -> AsyncIterator[TestServer]:
    async def sized(request: web.Request) -> web.StreamResponse:
        return web.Response(body=b"x" * int(request.query["n"]))

    async def declared(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Length": str(10**9)})
        await response.prepare(request)
        await response.write(b"x" * 10)
        return response

    async def endless(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse()  # chunked: no length to refuse up front
        await response.prepare(request)
        sent = 0
        try:
            while sent < TOTAL:
                await response.write(b"x" * 65536)
                sent += 65536
        except ConnectionError:
            pass
        return response

    app = web.Application()
    app.router.add_get("/sized", sized)
    app.router.add_get("/declared", declared)
    app.router.add_get("/endless", endless)
    test_server = TestServer(app)
    await test_server.start_server()
    try:
        yield test_server
    finally:
        await test_server.close()


@pytest_asyncio.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as http:
        yield http


@pytest.mark.parametrize("size", [0, 1, LIMIT])
async def test_a_body_up_to_the_limit_is_read_whole(
    server: TestServer, session: aiohttp.ClientSession, size: int
) -> None:
    async with session.get(server.make_url("/sized"), params={"n": str(size)}) as response:
        assert await read_bounded(response, LIMIT, "the body") == b"x" * size


async def test_one_byte_over_the_limit_fails_with_the_callers_error(
    server: TestServer, session: aiohttp.ClientSession
) -> None:
    async with session.get(server.make_url("/sized"), params={"n": str(LIMIT + 1)}) as response:
        with pytest.raises(TooBig, match="the reply is 1,001 bytes, more than the 1,000 accepted"):
            await read_bounded(response, LIMIT, "the reply", too_big=TooBig)


async def test_a_declared_length_over_the_limit_fails_before_reading(
    server: TestServer, session: aiohttp.ClientSession
) -> None:
    async with session.get(server.make_url("/declared")) as response:
        with pytest.raises(ValueError, match="1,000,000,000 bytes"):
            await read_bounded(response, LIMIT, "the reply")
        assert response.content.total_bytes <= 10  # nothing more was taken in


async def test_an_endless_stream_fails_once_past_the_limit_without_being_buffered(
    server: TestServer, session: aiohttp.ClientSession
) -> None:
    async with session.get(server.make_url("/endless")) as response:
        with pytest.raises(TooBig, match="more than the 1,000 bytes accepted"):
            await read_bounded(response, LIMIT, "the reply", too_big=TooBig)
        # aiohttp's flow control stops reading the socket at a few 64 KiB chunks.
        assert response.content.total_bytes < 1024 * 1024
        assert response.closed


@pytest.mark.parametrize(
    ("body", "html"),
    [
        (b"<!DOCTYPE html><html>", True),
        (b"  \n<html><body>502</body>", True),
        (b"\xef\xbb\xbf<html>", True),
        (b'{"a": 1}', False),
        (b"[1]", False),
        (b"", False),
        (b"Bad Gateway", False),
    ],
)
def test_looks_like_html(body: bytes, html: bool) -> None:
    assert looks_like_html(body) is html


@pytest.mark.parametrize(
    ("body", "summary"),
    [
        (b"", "the body is empty"),
        (b"  \r\n", "the body is empty"),
        (b"<html>proxy error</html>", "the body is an HTML page (24 bytes)"),
        (b"Bad Gateway", "the body is not JSON (11 bytes)"),
    ],
)
def test_describe_body_summarises_without_quoting(body: bytes, summary: str) -> None:
    assert describe_body(body) == summary


def test_parse_json_decodes_json() -> None:
    assert parse_json(b'{"a": [1, 2]}') == {"a": [1, 2]}


@pytest.mark.parametrize(
    "body",
    [
        b"[" * 100_000 + b"]" * 100_000,
        b'{"a":' * 100_000,
        b"\xff\xfe\x00not utf",
        b"\x80abc",
        b"not json",
        b"",
    ],
    ids=["deep-list", "deep-object", "bad-utf16", "bad-utf8", "text", "empty"],
)
def test_every_parse_failure_is_one_value_error(body: bytes) -> None:
    with pytest.raises(ValueError, match=r"nested too deeply|not JSON") as info:
        parse_json(body)
    assert not isinstance(info.value, RecursionError)
    assert type(info.value) is ValueError


def test_deep_nesting_is_named() -> None:
    with pytest.raises(ValueError, match="nested too deeply"):
        parse_json(json.dumps([[[[]]]]).encode().replace(b"[", b"[" * 20_000, 1))


async def test_stamina_records_are_dropped_only_inside_own_retry_notices() -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    stamina_logger = logging.getLogger("stamina")
    stamina_logger.addHandler(handler)
    stamina_logger.setLevel(logging.DEBUG)

    async def retry_once() -> None:
        async for attempt in stamina.retry_context(
            on=KeyError, attempts=2, wait_initial=0, wait_jitter=0
        ):
            with attempt:
                if attempt.num == 1:
                    raise KeyError("again")

    try:
        with own_retry_notices():
            await retry_once()
        assert stream.getvalue() == ""
        await retry_once()  # the user's own retries are still instrumented
        assert "stamina.retry_scheduled" in stream.getvalue()
    finally:
        stamina_logger.removeHandler(handler)
        stamina_logger.setLevel(logging.NOTSET)


async def test_own_retry_notices_is_per_task() -> None:
    inside = asyncio.Event()
    release = asyncio.Event()
    seen: list[bool] = []

    async def quiet() -> None:
        with own_retry_notices():
            inside.set()
            await release.wait()

    async def other() -> None:
        await inside.wait()
        record = logging.LogRecord("stamina", logging.WARNING, "", 0, "x", None, None)
        seen.append(logging.getLogger("stamina").filter(record) is not False)
        release.set()

    await asyncio.gather(quiet(), other())
    assert seen == [True]
