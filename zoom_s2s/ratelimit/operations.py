"""Every operation of Zoom's REST API as Zoom's specs describe it, found by method and path.

The table (``_operations.py``) is generated from ``specs/zoom/`` by
``tools/generate_api.py`` and read on first use. See docs/rate-limits.rst.
"""

from __future__ import annotations

from functools import lru_cache

import attrs

from .limits import Category

__all__ = ["Cap", "Operation", "category_of", "operation_of", "page_size_max"]

IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "PUT", "DELETE"})


@attrs.frozen
class Cap:
    """A cap Zoom sets on an operation beside the account's per-second rate.

    Attributes:
        scope: Whose calls count together: ``"host"`` (the meeting's or webinar's
            host), ``"user"``, ``"registrant"`` (per registrant and meeting) or
            ``"account"``.
        limit: Calls per ``period``; ``plans`` when it depends on the plan.
        period: Seconds (86400: a day, reset at 00:00 UTC).
        shared_by: Operations with the same name count against one cap
            (meeting and webinar creates and updates share ``"meeting_webinar_write"``).
        plans: (plan, limit) pairs, where the limit depends on the plan.
    """

    scope: str
    limit: int | None
    period: int
    shared_by: str
    plans: tuple[tuple[str, int], ...] = ()


@attrs.frozen
class Operation:
    """One operation of Zoom's API.

    Attributes:
        method: The HTTP method.
        path: The path template below ``/v2``, e.g. ``/meetings/{meetingId}``.
        product: The spec it comes from: ``meetings``, ``users``, ``chat``,
            ``accounts``, ``marketplace`` or ``phone``.
        operation_id: Zoom's ``operationId``.
        category: Zoom's rate-limit label, ``None`` where Zoom gives none.
        page_size_max: The largest ``page_size`` of a list operation, else ``None``.
        idempotent: Whether sending it twice is safe (GET, HEAD, PUT, DELETE).
        cap: A per-user, per-host or per-endpoint cap Zoom documents, if any.
        base_url: The base it is sent to when not the API's (chat file uploads).
    """

    method: str
    path: str
    product: str
    operation_id: str
    category: Category | None
    page_size_max: int | None
    idempotent: bool
    cap: Cap | None = None
    base_url: str | None = None


class _Node:
    __slots__ = ("operations", "param", "static")

    def __init__(self) -> None:
        self.static: dict[str, _Node] = {}
        self.param: _Node | None = None
        self.operations: dict[str, Operation] = {}


@lru_cache(maxsize=1)
def _tree() -> _Node:
    from ._operations import CAPS, HOSTS, OPERATIONS

    root = _Node()
    for method, path, product, operation_id, category, page_size in OPERATIONS:
        cap = CAPS.get((method, path))
        node = root
        for segment in path.strip("/").split("/"):
            if segment.startswith("{"):
                node.param = node.param or _Node()
                node = node.param
            else:
                node = node.static.setdefault(segment, _Node())
        node.operations[method] = Operation(
            method, path, product, operation_id, category,
            page_size, method in IDEMPOTENT_METHODS, None if cap is None else _cap(*cap),
            HOSTS.get((method, path)),
        )
    return root


def _cap(
    scope: str, limit: int | tuple[tuple[str, int], ...], period: int, shared_by: str
) -> Cap:
    if isinstance(limit, int):
        return Cap(scope, limit, period, shared_by)
    return Cap(scope, None, period, shared_by, limit)


def _find(node: _Node, segments: list[str], method: str) -> Operation | None:
    if not segments:
        return node.operations.get(method)
    head, rest = segments[0], segments[1:]
    child = node.static.get(head)
    if child is not None:
        found = _find(child, rest, method)
        if found is not None:
            return found
    if node.param is not None and head:
        return _find(node.param, rest, method)
    return None


@lru_cache(maxsize=2048)
def operation_of(method: str, path: str) -> Operation | None:
    """The operation a request is, by its method and path, or ``None`` if Zoom's specs lack it.

    Args:
        method: The HTTP method (any case).
        path: The path below the API base (``/users/abc123/meetings``), with
            or without ``/v2`` and a query string; a named segment
            (``/users/summary``) wins over a parameter (``/users/{userId}``).
    """
    path = path.split("?", 1)[0]
    if path.startswith("/v2/"):
        path = path[3:]
    return _find(_tree(), path.strip("/").split("/"), method.upper())


def category_of(method: str, path: str) -> Category | None:
    """Zoom's rate-limit category of a request (``"light"``, ..., ``"resource_intensive"``).

    ``None`` when Zoom's specs give the operation no label or do not have it.
    """
    operation = operation_of(method, path)
    return None if operation is None else operation.category


def page_size_max(method: str, path: str) -> int | None:
    """The largest ``page_size`` Zoom allows on a list operation; ``None`` for other requests."""
    operation = operation_of(method, path)
    return None if operation is None else operation.page_size_max
