"""What the generated API modules share: the callers they drive, path segments, query strings.

See docs/api/index.rst.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from typing import IO, Any, Protocol
from urllib.parse import quote

__all__ = ["Caller", "JSONObject", "SyncCaller", "Upload", "encode_uuid", "query", "seg",
           "uuid"]

JSONObject = dict[str, object]
"""A JSON object whose fields the specs leave open (or nest deeper than the types go)."""
Upload = bytes | IO[bytes] | tuple[str, bytes | IO[bytes]] | tuple[str, bytes | IO[bytes], str]
"""A file to upload: its content, or (file name, content[, content type])."""
Query = Mapping[str, str | int | float]


class Caller(Protocol):
    """What an API group drives: :class:`~zoom_s2s.ZoomClient` is one."""

    async def request(
        self, method: str, path: str, *, params: Query | None = None, json: Any = None,
        rate_category: str | None = None,
    ) -> Any:
        """One call; the decoded JSON answer."""
        ...  # pragma: no cover

    def paginate(
        self, path: str, *, params: Query | None = None, key: str | None = None,
        page_size: int = ...,
    ) -> AsyncIterator[Any]:
        """Every item of every page."""
        ...  # pragma: no cover

    async def upload(
        self, method: str, path: str, *, files: Mapping[str, Upload], params: Query | None = None,
        base_url: str | None = None, rate_category: str | None = None,
    ) -> Any:
        """A multipart/form-data call; the decoded JSON answer."""
        ...  # pragma: no cover


class SyncCaller(Protocol):
    """What a blocking API group drives: :class:`~zoom_s2s.SyncZoomClient` is one."""

    def request(
        self, method: str, path: str, *, params: Query | None = None, json: Any = None,
        rate_category: str | None = None,
    ) -> Any:
        """One call; the decoded JSON answer."""
        ...  # pragma: no cover

    def paginate(
        self, path: str, *, params: Query | None = None, key: str | None = None,
        page_size: int = ...,
    ) -> Iterator[Any]:
        """Every item of every page."""
        ...  # pragma: no cover

    def upload(
        self, method: str, path: str, *, files: Mapping[str, Upload], params: Query | None = None,
        base_url: str | None = None, rate_category: str | None = None,
    ) -> Any:
        """A multipart/form-data call; the decoded JSON answer."""
        ...  # pragma: no cover


def encode_uuid(uuid: str) -> str:
    """A meeting or webinar UUID as one path segment, double-encoded where Zoom needs it.

    Zoom decodes a path twice when a UUID starts with ``/`` or contains ``//``;
    such a UUID must be percent-encoded twice (``/ab//c==`` ->
    ``%252Fab%252F%252Fc%253D%253D``). Any other value is encoded once.
    """
    once = quote(str(uuid), safe="")
    if uuid.startswith("/") or "//" in uuid:
        return quote(once, safe="")
    return once


def seg(value: str | int) -> str:
    """A path parameter, percent-encoded as one segment."""
    return quote(str(value), safe="")


def uuid(value: str | int) -> str:
    """A meeting or webinar id or UUID as a path segment (see :func:`encode_uuid`)."""
    return encode_uuid(str(value))


def query(
    **params: str | int | float | bool | Sequence[str] | None,
) -> dict[str, str | int | float]:
    """The query string of the arguments given: booleans as ``true``/``false``, lists joined."""
    found: dict[str, str | int | float] = {}
    for name, value in params.items():
        if value is None:
            continue
        if isinstance(value, bool):
            found[name] = "true" if value else "false"
        elif isinstance(value, (str, int, float)):
            found[name] = value
        else:
            found[name] = ",".join(str(item) for item in value)
    return found
