"""Zoom's quotas as Zoom counts them: which budget, cap and block a request belongs to.

:func:`rule_of` gives a request's category, product (Phone and Contact Center
have budgets of their own) and daily cap (per endpoint, user or host);
:func:`daily_scope` says which scope a daily 429 blocks. ``docs/rate-limits.rst``
("Quotas") cites Zoom's rules.
"""

from __future__ import annotations

import re
from typing import Literal, cast

import attrs

from .limits import Category
from .operations import operation_of

__all__ = ["Cap", "Rule", "daily_scope", "names_category", "product_of", "rule_of"]

CapScope = Literal["account", "user", "host", "registrant"]
Limit = int | tuple[tuple[str, int], ...]


@attrs.frozen
class Cap:
    """A request's daily (or per-minute) cap.

    Attributes:
        scope: What Zoom counts it per: the account, a user, a host (a meeting
            or webinar's), a registrant.
        name: The cap's name, shared by the endpoints Zoom counts together.
        limits: The limit, or the limit per plan.
        period: Seconds of a window (86400: the UTC day).
        subject: The path's id the cap is counted per (a user id, or the
            meeting or webinar whose host counts), if any.
        kind: ``"meetings"`` or ``"webinars"`` when ``subject`` is one whose host counts.
    """

    scope: CapScope
    name: str
    limits: Limit
    period: int
    subject: str | None = None
    kind: str | None = None

    def limit(self, plan: str | None) -> int | None:
        """The limit on ``plan`` (``None``: it depends on the plan and the plan is unknown)."""
        if isinstance(self.limits, int):
            return self.limits
        return dict(self.limits).get(plan or "")


@attrs.frozen
class Rule:
    """What the quota ledger needs of one request.

    Attributes:
        category: The rate-limit category (``None``: nobody knows it).
        product: ``""`` (the Meetings, Users, Chat ... APIs), ``"phone"`` or
            ``"contact_center"``: each product has budgets of its own.
        cap: Its cap, if it has one.
    """

    category: Category | None
    product: str
    cap: Cap | None


def product_of(path: str) -> str:
    """The product whose budgets ``path`` (below ``/v2``) spends."""
    if path.startswith("/phone/"):
        return "phone"
    if path.startswith("/contact_center/"):
        return "contact_center"
    return ""


def rule_of(method: str, path: str) -> Rule:
    """The category, product and cap of a request: the one lookup the ledger makes.

    Both come from Zoom's specs (:func:`~zoom_s2s.ratelimit.operation_of`).

    Args:
        method: The HTTP method, upper case.
        path: The path below the API base (``/v2`` is dropped), without query.
    """
    if path.startswith("/v2/"):
        path = path[3:]
    operation = operation_of(method, path)
    if operation is None:
        return Rule(None, product_of(path), None)
    cap = None
    if operation.cap is not None:
        ids = {
            name[1:-1]: segment
            for name, segment in zip(
                operation.path.strip("/").split("/"), path.strip("/").split("/"), strict=False
            )
            if name.startswith("{")
        }
        subject = ids.get("userId") or ids.get("meetingId") or ids.get("webinarId")
        kind = None
        if operation.cap.scope == "host" and "userId" not in ids:
            kind = "meetings" if "meetingId" in ids else "webinars"
        found = operation.cap
        limits: Limit = found.limit if found.limit is not None else found.plans
        scope = cast(CapScope, found.scope)
        cap = Cap(scope, found.shared_by, limits, found.period, subject, kind)
    return Rule(operation.category, product_of(path), cap)


_CATEGORY_WORDS = re.compile(
    r"\b(light|medium|heavy|resource[- ]intensive)\b[^.]{0,20}\bapi requests\b", re.I
)


def names_category(message: str | None) -> bool:
    """Whether a daily 429's message counts a whole category ("... of Light API requests ...")."""
    return bool(message) and _CATEGORY_WORDS.search(message or "") is not None


Scope = Literal["category", "cap", "user", "endpoint", "none"]


def daily_scope(
    category: Category,
    cap: Cap | None,
    *,
    plan: str | None,
    message: str | None,
    per_user: bool,
    header_only: bool = False,
) -> Scope:
    """Which scope a daily limit that was reached belongs to.

    Args:
        category: The request's category.
        cap: The request's cap, if any.
        plan: The account's plan, if known.
        message: Zoom's message (the header-less form names the scope).
        per_user: The message says "for this particular user".
        header_only: Only ``X-RateLimit-Remaining: 0`` of a daily limit was
            seen (no 429 yet).

    Returns:
        ``"category"`` (the category's daily budget: Heavy and
        Resource-intensive share one on paid plans), ``"cap"`` (the
        request's own cap), ``"user"`` (this user and endpoint), ``"endpoint"``
        (the endpoint's shape: a daily limit nobody documents) or ``"none"``
        (one registrant of one meeting: nothing the next request shares).
    """
    account_wide = plan == "free" or category in ("heavy", "resource_intensive")
    if names_category(message) or (header_only and cap is None):
        return "category"  # the headers describe the category's daily budget
    if cap is not None:
        return "none" if cap.scope == "registrant" else "cap"
    if per_user:
        return "user"
    if account_wide and not message:
        return "category"
    return "endpoint"
