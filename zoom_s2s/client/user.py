"""The :class:`User` record returned by ``GET /users/{userId}``.

A user is its id and the JSON object Zoom sent; the named attributes are read
from that object when asked for, so a request that only needs the id (or
never looks at the user) does not pay for parsing dates it never reads.
"""

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

    Only ``id`` is required. The other attributes are read from :attr:`raw`
    when asked for (building a user costs well under a microsecond): a field
    Zoom left out, or sent with an unexpected type, is ``None``. :attr:`raw`
    is the answer as Zoom sent it, unknown fields included. Two users are
    equal when Zoom described them identically.

    Attributes:
        id: The user's id.
        raw: The complete JSON object Zoom returned (not shown in ``repr()``).
    """

    id: str
    raw: Mapping[str, Any] = attrs.field(factory=dict, hash=False)

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
        if type(user_id) is not str:
            if isinstance(user_id, int) and not isinstance(user_id, bool):
                user_id = str(user_id)
            elif not isinstance(user_id, str):
                raise ValueError("the user object has no 'id'")
        if not user_id:
            raise ValueError("the user object has no 'id'")
        return cls(user_id, data)

    @property
    def email(self) -> str | None:
        """The user's email address."""
        return _text(self.raw.get("email"))

    @property
    def first_name(self) -> str | None:
        """First name."""
        return _text(self.raw.get("first_name"))

    @property
    def last_name(self) -> str | None:
        """Last name."""
        return _text(self.raw.get("last_name"))

    @property
    def type(self) -> int | None:
        """1 basic, 2 licensed, 4 unassigned without Meetings Basic, 99 none."""
        return _integer(self.raw.get("type"))

    @property
    def role_name(self) -> str | None:
        """Role, e.g. ``"Admin"``."""
        return _text(self.raw.get("role_name"))

    @property
    def account_id(self) -> str | None:
        """The account the user belongs to (the S2S grant's ``account_id``)."""
        return _text(self.raw.get("account_id"))

    @property
    def account_number(self) -> int | None:
        """The account's number."""
        return _integer(self.raw.get("account_number"))

    @property
    def status(self) -> str | None:
        """``"active"``, ``"inactive"`` or ``"pending"``."""
        return _text(self.raw.get("status"))

    @property
    def timezone(self) -> str | None:
        """IANA time zone, e.g. ``"Europe/Paris"``."""
        return _text(self.raw.get("timezone"))

    @property
    def dept(self) -> str | None:
        """Department."""
        return _text(self.raw.get("dept"))

    @property
    def created_at(self) -> dt.datetime | None:
        """When the user was created (UTC-aware)."""
        return _timestamp(self.raw.get("created_at"))

    @property
    def last_login_time(self) -> dt.datetime | None:
        """Last sign-in (UTC-aware)."""
        return _timestamp(self.raw.get("last_login_time"))

    @property
    def pmi(self) -> int | None:
        """Personal meeting id."""
        return _integer(self.raw.get("pmi"))

    @property
    def language(self) -> str | None:
        """Language, e.g. ``"en-US"``."""
        return _text(self.raw.get("language"))

    @property
    def cluster(self) -> str | None:
        """The user's cluster, e.g. ``"us04"``."""
        return _text(self.raw.get("cluster"))

    def __repr__(self) -> str:
        return (
            f"User(id={self.id!r}, email={self.email!r}, account_id={self.account_id!r}, "
            f"type={self.type!r}, status={self.status!r}, raw=<{len(self.raw)} fields>)"
        )
