"""The :class:`User` record returned by ``GET /users/{userId}``."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

import attrs

__all__ = ["User"]


def _text(value: object) -> str | None:
    return value if isinstance(value, str) else None


def _integer(value: object) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value)
    return None


def _timestamp(value: object) -> dt.datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.timezone.utc)


@attrs.frozen(repr=False)
class User:
    """A Zoom user, as ``GET /users/{userId}`` describes it.

    Only ``id`` is required. A field Zoom left out, or sent with an unexpected
    type, is ``None`` here; the answer as Zoom sent it, unknown fields
    included, is always in :attr:`raw`.

    Attributes:
        id: The user's id.
        email: The user's email address.
        first_name: First name.
        last_name: Last name.
        type: 1 basic, 2 licensed, 4 unassigned without Meetings Basic, 99 none.
        role_name: Role, e.g. ``"Admin"``.
        account_id: The account the user belongs to (the S2S grant's ``account_id``).
        account_number: The account's number.
        status: ``"active"``, ``"inactive"`` or ``"pending"``.
        timezone: IANA time zone, e.g. ``"Europe/Paris"``.
        dept: Department.
        created_at: When the user was created (UTC-aware).
        last_login_time: Last sign-in (UTC-aware).
        pmi: Personal meeting id.
        language: Language, e.g. ``"en-US"``.
        cluster: The user's cluster, e.g. ``"us04"``.
        raw: The complete JSON object Zoom returned (not shown in ``repr()``).
    """

    id: str
    email: str | None = None
    first_name: str | None = None
    last_name: str | None = None
    type: int | None = None
    role_name: str | None = None
    account_id: str | None = None
    account_number: int | None = None
    status: str | None = None
    timezone: str | None = None
    dept: str | None = None
    created_at: dt.datetime | None = None
    last_login_time: dt.datetime | None = None
    pmi: int | None = None
    language: str | None = None
    cluster: str | None = None
    raw: Mapping[str, Any] = attrs.field(factory=dict, eq=False, hash=False)

    @classmethod
    def from_api(cls, data: object) -> User:
        """Build a user from the decoded JSON of ``GET /users/{userId}``.

        Args:
            data: The decoded response body.

        Returns:
            The user; ``raw`` holds ``data`` as given.

        Raises:
            ValueError: ``data`` is not a JSON object with a non-empty ``id``.
        """
        if not isinstance(data, dict):
            raise ValueError(f"expected a JSON object, got {type(data).__name__}")
        user_id = data.get("id")
        if isinstance(user_id, int) and not isinstance(user_id, bool):
            user_id = str(user_id)
        if not isinstance(user_id, str) or not user_id:
            raise ValueError("the user object has no 'id'")
        return cls(
            id=user_id,
            email=_text(data.get("email")),
            first_name=_text(data.get("first_name")),
            last_name=_text(data.get("last_name")),
            type=_integer(data.get("type")),
            role_name=_text(data.get("role_name")),
            account_id=_text(data.get("account_id")),
            account_number=_integer(data.get("account_number")),
            status=_text(data.get("status")),
            timezone=_text(data.get("timezone")),
            dept=_text(data.get("dept")),
            created_at=_timestamp(data.get("created_at")),
            last_login_time=_timestamp(data.get("last_login_time")),
            pmi=_integer(data.get("pmi")),
            language=_text(data.get("language")),
            cluster=_text(data.get("cluster")),
            raw=data,
        )

    def __repr__(self) -> str:
        return (
            f"User(id={self.id!r}, email={self.email!r}, account_id={self.account_id!r}, "
            f"type={self.type!r}, status={self.status!r}, raw=<{len(self.raw)} fields>)"
        )
