"""Shared handling of HTTP answers: bounded reads, JSON parsing, summaries, retry notices.

The token request and the REST client read answers the same way: at most a
given number of bytes, JSON failures as one :class:`ValueError`, bodies
summarised without being quoted, stamina's notices kept for our own logs.
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import logging
from collections.abc import Callable, Iterator

import aiohttp

__all__ = [
    "describe_body",
    "looks_like_html",
    "own_retry_notices",
    "parse_json",
    "read_bounded",
]

_CHUNK = 64 * 1024


async def read_bounded(
    response: aiohttp.ClientResponse,
    limit: int,
    what: str,
    *,
    too_big: Callable[[str], Exception] = ValueError,
) -> bytes:
    """Read the body of ``response``, at most ``limit`` bytes.

    A ``Content-Length`` over the limit fails before anything is read; a body
    that streams past the limit fails as soon as the limit is crossed. Either
    way the connection is closed rather than drained.

    Args:
        response: The answer whose body to read.
        limit: Largest body accepted, bytes.
        what: How to name the body in the error, e.g. ``"the token reply"``.
        too_big: Builds the exception to raise from its message.

    Returns:
        The body.

    Raises:
        Exception: ``too_big(message)`` when the body is larger than ``limit``.
    """
    declared = response.content_length
    if declared is not None and declared > limit:
        response.close()
        raise too_big(f"{what} is {declared:,} bytes, more than the {limit:,} accepted")
    chunks: list[bytes] = []
    size = 0
    while True:
        chunk = await response.content.read(min(_CHUNK, limit + 1 - size))
        if not chunk:
            return b"".join(chunks)
        size += len(chunk)
        if size > limit:
            response.close()
            raise too_big(f"{what} is more than the {limit:,} bytes accepted")
        chunks.append(chunk)


def looks_like_html(body: bytes) -> bool:
    """Whether ``body`` looks like an HTML (or XML) page rather than JSON."""
    return body.lstrip(b"\xef\xbb\xbf \t\r\n")[:1] == b"<"


def describe_body(body: bytes) -> str:
    """A one-line summary of a body that is not the JSON we expected (never its content)."""
    if not body.strip():
        return "the body is empty"
    kind = "an HTML page" if looks_like_html(body) else "not JSON"
    return f"the body is {kind} ({len(body)} bytes)"


def parse_json(body: bytes) -> object:
    """Decode ``body`` as JSON.

    Raises:
        ValueError: The body is not JSON: bad syntax, not UTF-8, or nested so
            deeply that the decoder gave up (never :class:`RecursionError`).
    """
    try:
        return json.loads(body)
    except RecursionError:
        raise ValueError("the JSON is nested too deeply") from None
    except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError included
        raise ValueError(f"not JSON: {exc.__class__.__name__}") from None


_OWN_RETRY = contextvars.ContextVar("zoom_s2s_own_retry", default=False)


class _DropOwnRetries(logging.Filter):
    """Drops stamina's log records emitted while zoom-s2s retries (it logs its own)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not _OWN_RETRY.get()


_FILTER = _DropOwnRetries("zoom_s2s")


@contextlib.contextmanager
def own_retry_notices() -> Iterator[None]:
    """Keep stamina's ``stamina.retry_scheduled`` log records quiet inside this block.

    stamina's instrumentation is global: by default it logs every scheduled
    retry at WARNING on the ``stamina`` logger, which Python prints to stderr
    as a bare ``stamina.retry_scheduled`` line in an application that has not
    configured logging. zoom-s2s logs its retries itself, on its own loggers
    and with context, so inside this block the records stamina emits (in this
    task only) are dropped. The user's stamina configuration, hooks and
    stamina's other retries are untouched.
    """
    stamina_logger = logging.getLogger("stamina")
    if _FILTER not in stamina_logger.filters:
        stamina_logger.addFilter(_FILTER)
    reset = _OWN_RETRY.set(True)
    try:
        yield
    finally:
        _OWN_RETRY.reset(reset)
