"""The :class:`User` record returned by ``GET /users/{userId}``.

A user is its id and the JSON object Zoom sent; the named attributes are read
from that object when asked for, so a request that only needs the id (or
never looks at the user) does not pay for parsing dates it never reads.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from functools import cached_property
from typing import Any

import attrs

__all__ = ["CustomAttribute", "User"]


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


def _boolean(value: object) -> bool | None:
    return value if isinstance(value, bool) else None


def _strings(value: object) -> tuple[str, ...]:
    if not isinstance(value, list):
        return ()
    return tuple(item for item in value if isinstance(item, str))


def _timestamp(value: object) -> dt.datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.timezone.utc)


@attrs.frozen
class CustomAttribute:
    """One custom attribute of a user (Zoom: ``{"key", "name", "value"}``)."""

    key: str | None
    name: str | None
    value: str | None


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
    def display_name(self) -> str | None:
        """The name shown to others (may differ from first and last name)."""
        return _text(self.raw.get("display_name"))

    @property
    def type(self) -> int | None:
        """Plan type: 1 basic, 2 licensed, 4 unassigned without Meetings Basic, 99 none."""
        return _integer(self.raw.get("type"))

    @property
    def role_name(self) -> str | None:
        """Role, e.g. ``"Admin"``."""
        return _text(self.raw.get("role_name"))

    @property
    def role_id(self) -> str | None:
        """The id of the user's role."""
        return _text(self.raw.get("role_id"))

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
    def job_title(self) -> str | None:
        """Job title."""
        return _text(self.raw.get("job_title"))

    @property
    def location(self) -> str | None:
        """Location."""
        return _text(self.raw.get("location"))

    @property
    def company(self) -> str | None:
        """Company."""
        return _text(self.raw.get("company"))

    @property
    def employee_unique_id(self) -> str | None:
        """The employee unique id (SSO or SCIM)."""
        return _text(self.raw.get("employee_unique_id"))

    @cached_property
    def created_at(self) -> dt.datetime | None:
        """When the user was created, as Zoom defines it (UTC-aware).

        Zoom's schema: the time the user joined the account (their
        activation). For a pending user Zoom sends the time of the API call
        instead, until the user activates; :attr:`user_created_at` is when
        the user record was created."""
        return _timestamp(self.raw.get("created_at"))

    @cached_property
    def user_created_at(self) -> dt.datetime | None:
        """When the user record was created (UTC-aware)."""
        return _timestamp(self.raw.get("user_created_at"))

    @cached_property
    def last_login_time(self) -> dt.datetime | None:
        """Last sign-in (UTC-aware)."""
        return _timestamp(self.raw.get("last_login_time"))

    @property
    def last_client_version(self) -> str | None:
        """The Zoom client version of the last sign-in."""
        return _text(self.raw.get("last_client_version"))

    @property
    def pmi(self) -> int | None:
        """Personal meeting id."""
        return _integer(self.raw.get("pmi"))

    @property
    def use_pmi(self) -> bool | None:
        """Whether instant meetings use the personal meeting id."""
        return _boolean(self.raw.get("use_pmi"))

    @property
    def personal_meeting_url(self) -> str | None:
        """The personal meeting room's URL."""
        return _text(self.raw.get("personal_meeting_url"))

    @property
    def verified(self) -> int | None:
        """1 if the user is verified, 0 if not."""
        return _integer(self.raw.get("verified"))

    @property
    def pic_url(self) -> str | None:
        """The profile picture's URL."""
        return _text(self.raw.get("pic_url"))

    @property
    def phone_number(self) -> str | None:
        """Phone number."""
        return _text(self.raw.get("phone_number"))

    @property
    def language(self) -> str | None:
        """Language, e.g. ``"en-US"``."""
        return _text(self.raw.get("language"))

    @property
    def cluster(self) -> str | None:
        """The user's cluster, e.g. ``"us04"``."""
        return _text(self.raw.get("cluster"))

    @property
    def jid(self) -> str | None:
        """The user's chat id (XMPP JID)."""
        return _text(self.raw.get("jid"))

    @property
    def group_ids(self) -> tuple[str, ...]:
        """Ids of the groups the user belongs to (empty if none or not sent)."""
        return _strings(self.raw.get("group_ids"))

    @property
    def im_group_ids(self) -> tuple[str, ...]:
        """Ids of the chat (IM) groups the user belongs to."""
        return _strings(self.raw.get("im_group_ids"))

    @property
    def login_types(self) -> tuple[int, ...]:
        """The user's login methods (e.g. 100 Zoom, 101 SSO, 1 Google)."""
        value = self.raw.get("login_types")
        if not isinstance(value, list):
            return ()
        return tuple(n for n in (_integer(v) for v in value) if n is not None)

    @cached_property
    def custom_attributes(self) -> tuple[CustomAttribute, ...]:
        """The user's custom attributes.

        Zoom's schema has a list of ``{"key", "name", "value"}`` objects; a
        single object (as some answers carry) is accepted too.
        """
        value = self.raw.get("custom_attributes")
        items = [value] if isinstance(value, dict) else value
        if not isinstance(items, list):
            return ()
        return tuple(
            CustomAttribute(
                key=_text(item.get("key")),
                name=_text(item.get("name")),
                value=_text(item.get("value")),
            )
            for item in items
            if isinstance(item, dict)
        )

    @property
    def is_pending(self) -> bool:
        """Whether Zoom described a pending user: nothing but ``id`` and ``created_at``.

        Zoom answers ``GET /users/{userId}`` for a user who has not activated
        their account with those two fields only; every other attribute is
        then ``None`` (or empty).
        """
        return self.status == "pending" or set(self.raw) <= {"id", "created_at"}

    def __repr__(self) -> str:
        return (
            f"User(id={self.id!r}, email={self.email!r}, account_id={self.account_id!r}, "
            f"type={self.type!r}, status={self.status!r}, raw=<{len(self.raw)} fields>)"
        )
