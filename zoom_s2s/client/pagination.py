"""Walking Zoom's paginated list APIs: ``next_page_token``, and a restart when it expires.

Zoom's pages: ``docs/zoom.rst`` ("Pagination"). A page token expires after 15
minutes; a walk that outlives it starts again and skips the rows it yielded.
"""

from __future__ import annotations

import collections
import json
from collections.abc import AsyncGenerator, AsyncIterator, Mapping
from typing import Any, Protocol

from ..errors import ConfigurationError, ZoomAPIError
from ..ratelimit.operations import page_size_max

__all__ = ["MAX_PAGE_SIZE", "MAX_RESTARTS", "Pages", "Params", "page_token_expired"]

MAX_PAGE_SIZE = 300
MAX_RESTARTS = 3

Params = Mapping[str, str | int | float] | None
"""Query parameters of a request."""


class _Requester(Protocol):  # what a walk needs of ZoomClient
    async def request(self, method: str, path: str, *, params: Params = None) -> Any: ...


def page_token_expired(error: ZoomAPIError) -> bool:
    """Whether an error answer says the ``next_page_token`` is invalid or expired.

    The wording of Zoom's answer is not documented (the fake answers 400 code
    300 "The next page token is invalid or expired."), so any 4xx whose
    message names the page token and says it is invalid or expired counts.
    """
    text = (error.message or "").lower().replace("_", " ")
    return (
        400 <= error.status < 500
        and "page token" in text
        and ("expire" in text or "invalid" in text)
    )


class Pages:
    """One walk over a list API; :meth:`pages` yields lists of new items, :meth:`items` items."""

    def __init__(
        self,
        client: _Requester,
        path: str,
        *,
        params: Params,
        key: str | None,
        page_size: int,
    ) -> None:
        largest = page_size_max("GET", path) or MAX_PAGE_SIZE
        if (
            isinstance(page_size, bool)
            or not isinstance(page_size, int)
            or not 1 <= page_size <= max(largest, MAX_PAGE_SIZE)
        ):
            raise ConfigurationError(
                f"page_size={page_size!r} must be an int from 1 to {max(largest, MAX_PAGE_SIZE)} "
                f"(Zoom's largest page on {path} is {largest})"
            )
        if key is not None and (not isinstance(key, str) or not key):
            raise ConfigurationError(f"key={key!r} must be the name of the answer's list")
        self.client = client
        self.path = path
        self.key = key
        query: dict[str, str | int | float] = dict(params or {})
        query.pop("next_page_token", None)
        query["page_size"] = min(page_size, largest)  # Zoom's smaller maximum, where it has one
        self.query = query
        self.restarts = 0

    async def items(self) -> AsyncIterator[Any]:
        """Every item of every page."""
        async for page in self.pages():
            for item in page:
                yield item

    async def pages(self) -> AsyncGenerator[list[Any], None]:
        """The items of each page, every row as Zoom sends it.

        Rows are never de-duplicated within a walk: report rows repeat an
        ``id`` (someone rejoined) or have none (guests). Only after a restart
        (the page token expired) are the rows the first walk already yielded
        skipped again, each as many times as it was yielded.
        """
        yielded: collections.Counter[str] = collections.Counter()
        skip: collections.Counter[str] = collections.Counter()
        token = ""
        tokens: set[str] = set()
        while True:
            query = self.query if not token else {**self.query, "next_page_token": token}
            try:
                body = await self.client.request("GET", self.path, params=query)
            except ZoomAPIError as exc:
                if not token or self.restarts >= MAX_RESTARTS or not page_token_expired(exc):
                    raise
                self.restarts += 1
                token, tokens, skip = "", set(), collections.Counter(yielded)
                continue
            items, following = self._page(body)
            fresh = []
            for item in items:
                row = _row_key(item)
                if skip[row]:
                    skip[row] -= 1
                    continue
                yielded[row] += 1
                fresh.append(item)
            if fresh:
                yield fresh
            if not following:
                return
            if following in tokens:
                raise self._error("the API sent the same next_page_token twice; stopping")
            tokens.add(following)
            token = following

    def _page(self, body: object) -> tuple[list[Any], str]:
        """(items, next_page_token) of one answer; the key is found on the first page."""
        if not isinstance(body, Mapping):
            raise self._error(f"the answer is a JSON {type(body).__name__}, not a page object")
        if self.key is None:
            lists = [name for name, value in body.items() if isinstance(value, list)]
            if len(lists) != 1:
                what = "no list" if not lists else f"several lists ({', '.join(sorted(lists))})"
                raise self._error(
                    f"the answer has {what} of items", hint="pass key= to name the list"
                )
            self.key = str(lists[0])
        items = body.get(self.key, [])
        if not isinstance(items, list):
            raise self._error(f"the answer's {self.key!r} is not a list")
        following = body.get("next_page_token")
        return items, following if isinstance(following, str) else ""

    def _error(self, message: str, hint: str | None = None) -> ZoomAPIError:
        return ZoomAPIError(
            status=200,
            code=None,
            message=message,
            tracking_id=None,
            method="GET",
            path=self.path,
            hint=hint or "check the path: paginate() walks Zoom's list APIs",
        )


def _row_key(item: object) -> str:
    """A row's identity for skipping it after a restart: all of its fields, not just ``id``."""
    return json.dumps(item, sort_keys=True, separators=(",", ":"), default=str)
