"""Which rate-limit category a request belongs to.

Zoom labels every endpoint with a category ("Rate Limit Label" in its API
reference; ``docs/zoom.rst``). :data:`BUILTIN` holds the labels of the common
user, meeting, webinar, recording, report and dashboard endpoints;
:class:`CategoryTable` answers from it, from what answers said
(``X-RateLimit-Category``) about paths it did not know, and otherwise gives a
conservative default.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from .limits import Category

__all__ = ["BUILTIN", "CategoryTable", "path_shape"]

# (method, path pattern below /v2, category). {name} is one path segment.
BUILTIN: tuple[tuple[str, str, Category], ...] = (
    # Users
    ("GET", "/users", "medium"),
    ("POST", "/users", "light"),
    ("GET", "/users/{userId}", "light"),
    ("PATCH", "/users/{userId}", "light"),
    ("DELETE", "/users/{userId}", "light"),
    ("GET", "/users/{userId}/settings", "medium"),
    ("PATCH", "/users/{userId}/settings", "medium"),
    ("PUT", "/users/{userId}/status", "medium"),
    ("GET", "/users/{userId}/token", "light"),
    ("GET", "/users/{userId}/permissions", "light"),
    ("GET", "/users/{userId}/assistants", "medium"),
    ("POST", "/users/{userId}/assistants", "medium"),
    # Meetings
    ("GET", "/users/{userId}/meetings", "medium"),
    ("POST", "/users/{userId}/meetings", "medium"),
    ("GET", "/meetings/{meetingId}", "light"),
    ("PATCH", "/meetings/{meetingId}", "light"),
    ("DELETE", "/meetings/{meetingId}", "light"),
    ("PUT", "/meetings/{meetingId}/status", "light"),
    ("GET", "/meetings/{meetingId}/registrants", "medium"),
    ("POST", "/meetings/{meetingId}/registrants", "light"),
    ("GET", "/meetings/{meetingId}/invitation", "light"),
    ("GET", "/past_meetings/{meetingId}", "light"),
    ("GET", "/past_meetings/{meetingId}/participants", "medium"),
    ("GET", "/past_meetings/{meetingId}/instances", "medium"),
    # Webinars
    ("GET", "/users/{userId}/webinars", "medium"),
    ("POST", "/users/{userId}/webinars", "medium"),
    ("GET", "/webinars/{webinarId}", "light"),
    ("PATCH", "/webinars/{webinarId}", "light"),
    ("DELETE", "/webinars/{webinarId}", "light"),
    ("GET", "/webinars/{webinarId}/registrants", "medium"),
    ("POST", "/webinars/{webinarId}/registrants", "light"),
    ("GET", "/past_webinars/{webinarId}/participants", "medium"),
    # Cloud recordings
    ("GET", "/users/{userId}/recordings", "medium"),
    ("GET", "/meetings/{meetingId}/recordings", "light"),
    ("DELETE", "/meetings/{meetingId}/recordings", "light"),
    ("DELETE", "/meetings/{meetingId}/recordings/{recordingId}", "light"),
    ("GET", "/accounts/{accountId}/recordings", "medium"),
    # Reports: all Heavy
    ("GET", "/report/*", "heavy"),
    # Dashboards: most are Heavy; these four are Resource-intensive
    ("GET", "/metrics/meetings", "resource_intensive"),
    ("GET", "/metrics/webinars", "resource_intensive"),
    ("GET", "/metrics/zoomrooms", "resource_intensive"),
    ("GET", "/metrics/im", "resource_intensive"),
    ("GET", "/metrics/*", "heavy"),
)

_SEGMENT = "[^/]+"


def _compile(pattern: str) -> re.Pattern[str]:
    parts = []
    for segment in pattern.strip("/").split("/"):
        if segment == "*":
            parts.append(".*")
        elif segment.startswith("{") and segment.endswith("}"):
            parts.append(_SEGMENT)
        else:
            parts.append(re.escape(segment))
    return re.compile("/" + "/".join(parts) + "/?")


def path_shape(path: str) -> str:
    """``path`` with its ids replaced by ``*``: what answers are learned for.

    A segment is an id if it has a digit, ``@``, ``%`` or ``=`` in it, or is
    longer than 20 characters (user ids, meeting ids, emails, UUIDs).
    """
    segments = []
    for segment in path.split("?", 1)[0].strip("/").split("/"):
        if len(segment) > 20 or any(ch.isdigit() or ch in "@%=" for ch in segment):
            segments.append("*")
        else:
            segments.append(segment)
    return "/" + "/".join(segments)


def _below_v2(path: str) -> str:
    """The API path without a ``/v2`` (or other version) prefix."""
    if path.startswith("/v2/"):
        return path[3:]
    return path


class CategoryTable:
    """Maps (method, path) to a category: built-in table, then learned, then the default.

    Args:
        default: The category of paths nobody has named.
        table: Entries that replace :data:`BUILTIN` (tests, or Zoom changing labels).
    """

    _MAX_LEARNED = 4096

    def __init__(
        self,
        default: Category = "heavy",
        table: Iterable[tuple[str, str, Category]] | None = None,
    ) -> None:
        self.default: Category = default
        self._table = [
            (method.upper(), _compile(pattern), category)
            for method, pattern, category in (BUILTIN if table is None else table)
        ]
        self._learned: dict[tuple[str, str], Category] = {}
        self._cache: dict[tuple[str, str], Category] = {}

    def lookup(self, method: str, path: str) -> Category | None:
        """The category the table or an earlier answer gives, or ``None``."""
        path = _below_v2(path.split("?", 1)[0])
        key = (method, path)
        cached = self._cache.get(key)
        if cached is not None:
            return cached
        found = self._learned.get((method, path_shape(path)))
        if found is None:
            for entry_method, pattern, category in self._table:
                if entry_method == method and pattern.fullmatch(path):
                    found = category
                    break
        if found is not None:
            if len(self._cache) >= self._MAX_LEARNED:
                self._cache.clear()
            self._cache[key] = found
        return found

    def category(self, method: str, path: str) -> Category:
        """The category of a request (the default if nobody knows)."""
        return self.lookup(method, path) or self.default

    def learn(self, method: str, path: str, category: Category) -> bool:
        """Remember what an answer said about a path's category.

        Returns:
            Whether it was new (the built-in table and earlier answers win: a
            header cannot move a known path to another category's budget).
        """
        path = _below_v2(path.split("?", 1)[0])
        if self.lookup(method, path) is not None:
            return False
        if len(self._learned) >= self._MAX_LEARNED:
            return False
        self._learned[(method, path_shape(path))] = category
        self._cache.clear()
        return True
