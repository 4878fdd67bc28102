"""Which rate-limit category a request belongs to.

:class:`CategoryTable` answers with Zoom's own label ("Rate Limit Label" in
Zoom's specs: :func:`~zoom_s2s.ratelimit.category_of`), then with what
answers said (``X-RateLimit-Category``) about paths the specs lack, and
otherwise with a conservative default.
"""

from __future__ import annotations

from .limits import Category
from .operations import category_of

__all__ = ["CategoryTable", "path_shape"]

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
    """Maps (method, path) to a category: Zoom's label, then what answers said, then the default.

    Args:
        default: The category of paths nobody has named.
    """

    _MAX_LEARNED = 4096

    def __init__(self, default: Category = "heavy") -> None:
        self.default: Category = default
        self._learned: dict[tuple[str, str], Category] = {}

    def lookup(self, method: str, path: str) -> Category | None:
        """The category Zoom's specs or an earlier answer give, or ``None``."""
        path = _below_v2(path.split("?", 1)[0])
        return category_of(method, path) or self._learned.get((method, path_shape(path)))

    def category(self, method: str, path: str) -> Category:
        """The category of a request (the default if nobody knows)."""
        return self.lookup(method, path) or self.default

    def learn(self, method: str, path: str, category: Category) -> bool:
        """Remember what an answer said about a path's category.

        Returns:
            Whether it was new (Zoom's labels and earlier answers win: a header
            cannot move a known path to another category's budget).
        """
        path = _below_v2(path.split("?", 1)[0])
        if self.lookup(method, path) is not None or len(self._learned) >= self._MAX_LEARNED:
            return False
        self._learned[(method, path_shape(path))] = category
        return True
