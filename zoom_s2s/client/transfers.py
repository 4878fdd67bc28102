"""Files in and out: recording downloads streamed, and multipart uploads (chat files).

Both go through the request pipeline (token, pacing, the one retry after a
refused token); the token goes to Zoom's hosts only and never follows a
redirect to another origin. See docs/client.rst ("Files").
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator, Mapping
from typing import IO, TYPE_CHECKING, Any, NamedTuple

import aiohttp
import yarl
from aiohttp import hdrs

from .._redact import secret_forms
from ..errors import ConfigurationError, ForeignRedirectError, ZoomAPIError
from ..manager import TokenManager
from ..models import AccessToken
from .pipeline import Answer, Pipeline
from .responses import decode_response, error_from_response, read_body
from .urls import DEFAULT_API_URL, Destinations, is_zoom_host, origin_of, quote_path

if TYPE_CHECKING:
    from ..api._base import Upload

__all__ = ["Link", "download", "stream", "upload"]

CHUNK_SIZE = 256 * 1024
_MAX_HOPS = 3  # an upload and up to two redirects
_MAX_ERROR_BODY = 64 * 1024


class Link(NamedTuple):
    """What a transfer uses of a :class:`~zoom_s2s.ZoomClient`."""

    session: aiohttp.ClientSession
    pipeline: Pipeline
    tokens: TokenManager
    base_url: str
    read_timeout: float | None
    max_response_bytes: int


def _pipeline_for(client: Link, base: str, *, paced: bool) -> Pipeline:
    """The client's pipeline, or one like it whose token may go to ``base``'s origin
    (paced by the client's limiter, or not paced: downloads are no API calls)."""
    own = client.pipeline
    limiter = own.limiter if paced else None
    if origin_of(yarl.URL(base)) == own.destinations.origin:
        return own if limiter is own.limiter else Pipeline(client.tokens, own.destinations)
    destinations = Destinations(base, use_token_api_url=False, allow_insecure_http=False)
    return Pipeline(client.tokens, destinations, limiter)


def _token_origin(client: Link, url: yarl.URL) -> str | None:
    """The origin of ``url`` if the token may go there: a Zoom host over https, or the
    client's own origin; else ``None``."""
    if not url.absolute or not url.host:
        return None
    same = origin_of(url) == client.pipeline.destinations.origin
    if same or (url.scheme == "https" and is_zoom_host(url.host)):
        return str(url.origin())
    return None


def _download_base(client: Link, url: yarl.URL) -> str:
    """The origin a download URL may get the token at, or raise."""
    origin = _token_origin(client, url)
    if origin is None:
        raise ConfigurationError(
            f"download URL {str(url.origin()) if url.absolute else str(url)!r} is not on a "
            "Zoom host over https: the token is not sent there (Zoom's recording "
            "download_url is on zoom.us)"
        )
    return origin


async def stream(
    client: Link, url: str, *, chunk_size: int = CHUNK_SIZE
) -> AsyncIterator[bytes]:
    """The body of a download URL (a recording file's ``download_url``), chunk by chunk.

    The token goes to the download URL's Zoom host; Zoom's redirect to its
    storage host is followed without it.
    """
    target = yarl.URL(url)
    pipeline = _pipeline_for(client, _download_base(client, target), paced=False)
    session = client.session
    timeout = _transfer_timeout(client)
    flow = pipeline.flow("GET", target)
    token = await flow.asend(None)
    while True:
        headers = {} if token is None else {hdrs.AUTHORIZATION: "Bearer " + token.access_token}
        response = await session.get(
            target, headers=headers, timeout=timeout, middlewares=(), raise_for_status=False
        )
        try:
            body = None
            if response.status >= 400:
                body = await read_body(response, _MAX_ERROR_BODY, method="GET", path=target.path)
            if token is not None:
                token = await flow.asend(_answer(response, body))
        except BaseException:
            response.release()
            raise
        if token is None:
            break
        response.release()
    async with response:
        if body is not None:
            raise _error(response, body, sent=flow.token, path=target.path)
        async for chunk in response.content.iter_chunked(chunk_size):
            yield chunk


async def download(
    client: Link, url: str, to: str | os.PathLike[str] | IO[bytes]
) -> int:
    """Write the body of a download URL to a file (a path or a binary file); the bytes written.

    A file named by its path is removed again when the download fails.
    """
    written = 0
    if isinstance(to, (str, os.PathLike)):
        try:
            with open(to, "wb") as file:  # noqa: ASYNC230 - chunks are written as they come
                async for chunk in stream(client, url):
                    file.write(chunk)
                    written += len(chunk)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(to)  # no half file left behind
            raise
        return written
    async for chunk in stream(client, url):
        to.write(chunk)
        written += len(chunk)
    return written


async def upload(
    client: Link,
    method: str,
    path: str,
    *,
    files: Mapping[str, Upload],
    params: Mapping[str, str | int | float] | None = None,
    base_url: str | None = None,
    rate_category: str | None = None,
) -> Any:
    """Send ``files`` as multipart/form-data to ``path``; the decoded JSON answer.

    ``base_url`` (Zoom's ``https://file.zoom.us/v2`` for chat files) is used
    when the client talks to Zoom's default API host; a client on another
    base (ZoomGov, a test server) sends to its own base. Zoom may redirect an
    upload to another of its hosts and wants the token there too: a 307 or
    308 to a Zoom host (or the client's own origin) is followed with the
    files sent again; a redirect anywhere else is refused.
    """
    base = base_url if base_url and client.base_url == DEFAULT_API_URL else client.base_url
    quoted = quote_path(path)
    url = yarl.URL(base + quoted, encoded=True)
    pipeline = _pipeline_for(client, base, paced=True)
    for _ in range(_MAX_HOPS):
        response, body, sent = await _send_files(
            client, pipeline, method.upper(), url, quoted, files, params, rate_category
        )
        location = response.headers.get(hdrs.LOCATION)
        if response.status not in (307, 308) or not location:
            break
        url = response.url.join(yarl.URL(location))
        origin = _token_origin(client, url)
        if origin is None or not _rewind(files):
            raise _redirect_error(response, url, path=quoted, sendable=origin is not None)
        pipeline = _pipeline_for(client, origin, paced=False)  # one request: paced once
    if 200 <= response.status < 300:
        return decode_response(response.status, response.headers, body, method=method,
                               path=url.path)
    raise _error(response, body, sent=sent, path=url.path)


async def _send_files(
    client: Link, pipeline: Pipeline, method: str, url: yarl.URL, path: str,
    files: Mapping[str, Upload], params: Mapping[str, str | int | float] | None,
    rate_category: str | None,
) -> tuple[aiohttp.ClientResponse, bytes, AccessToken]:
    """One hop of an upload, with the pipeline's retry after a refused token."""
    flow = pipeline.flow(method, url, path=path, rate_category=rate_category,
                         rewind=lambda: _rewind(files))
    try:
        token = await flow.asend(None)
        assert token is not None  # every hop's origin is a destination of its pipeline
        while True:
            sent = token
            async with client.session.request(
                method, url, params=params, data=_form(files), timeout=_transfer_timeout(client),
                headers={hdrs.AUTHORIZATION: "Bearer " + token.access_token},
                allow_redirects=False, middlewares=(), raise_for_status=False,
            ) as response:
                body = await read_body(response, client.max_response_bytes, method=method,
                                       path=url.path)
            token = await flow.asend(_answer(response, body))
            if token is None:
                return response, body, flow.token or sent
    finally:
        flow.close()


def _redirect_error(
    response: aiohttp.ClientResponse, url: yarl.URL, *, path: str, sendable: bool
) -> ZoomAPIError:
    where = f"{url.scheme}://{url.host}" + ("" if url.port is None else f":{url.port}")
    if sendable:
        return ZoomAPIError(
            status=response.status, code=None, tracking_id=response.headers.get(
                "x-zm-trackingid"), method=response.method, path=path,
            message=f"the upload was redirected to {where} and its file cannot be sent again",
            hint="pass the file as bytes or a seekable file",
        )
    return ForeignRedirectError(
        status=response.status, code=None, tracking_id=response.headers.get("x-zm-trackingid"),
        method=response.method, path=path, location=where,
        message=f"the upload was redirected to {where}, which is not a Zoom host",
        hint="the access token goes only to Zoom's hosts; check the base URL",
    )


def _transfer_timeout(client: Link) -> aiohttp.ClientTimeout:
    """No bound on a whole transfer; ``request_timeout`` between two reads."""
    return aiohttp.ClientTimeout(total=None, sock_connect=30, sock_read=client.read_timeout)


def _answer(response: aiohttp.ClientResponse, body: bytes | None) -> Answer:
    authorization = response.request_info.headers.get(hdrs.AUTHORIZATION)
    return Answer(response.status, response.headers, body, response.url, authorization)


def _error(
    response: aiohttp.ClientResponse, body: bytes, *, sent: AccessToken | None, path: str
) -> ZoomAPIError:
    return error_from_response(
        response.status, response.headers, body, method=response.method, path=path,
        secrets=() if sent is None else secret_forms(sent.access_token),
        scopes=None if sent is None else sent.scopes,
    )


def _parts(value: Upload) -> tuple[str | None, bytes | IO[bytes], str | None]:
    if isinstance(value, tuple):
        name, content, *kind = value
        return name, content, kind[0] if kind else None
    return getattr(value, "name", None), value, None


def _form(files: Mapping[str, Upload]) -> aiohttp.FormData:
    form = aiohttp.FormData()
    for field, value in files.items():
        name, content, kind = _parts(value)
        form.add_field(field, content, filename=os.path.basename(str(name or field)),
                       content_type=kind or "application/octet-stream")
    return form


def _rewind(files: Mapping[str, Upload]) -> bool:
    """Make the files ready to be sent again: whether all could be."""
    for value in files.values():
        _, content, _ = _parts(value)
        if isinstance(content, (bytes, bytearray)):
            continue
        if not content.seekable():
            return False
        content.seek(0)
    return True
