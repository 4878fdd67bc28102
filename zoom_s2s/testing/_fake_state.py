"""What a :class:`~zoom_s2s.testing.FakeZoom` knows: accounts, apps, tokens, cursors, API calls.

Kept apart from the HTTP layer so that the routes stay short and a later layer
(per-account rate limits) can read the same state.
"""

from __future__ import annotations

import copy
import datetime as dt
import secrets
from collections import Counter
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any, Literal

import attrs

from ..models import Credentials

if TYPE_CHECKING:
    from aiohttp import web

__all__ = [
    "SAMPLE_USER",
    "ApiCall",
    "AppKind",
    "FakeAccount",
    "FakeApp",
    "FakeStats",
    "Issued",
    "PageCursor",
    "iso_time",
]

AppKind = Literal["s2s", "oauth", "meeting_sdk", "zoom_apps"]
"""The Marketplace app types; only ``"s2s"`` may use the ``account_credentials`` grant."""

APP_KINDS: tuple[str, ...] = ("s2s", "oauth", "meeting_sdk", "zoom_apps")

# Zoom's example user of GET /users/{userId} (docs/zoom.rst, [get-user]): the list
# form of custom_attributes is the schema's.
SAMPLE_USER: dict[str, Any] = {
    "id": "zJKyaiAyTNC-MWjiWC18KQ",
    "created_at": "2018-10-31T04:32:37Z",
    "dept": "Developers",
    "email": "jchill@example.com",
    "first_name": "Jill",
    "last_name": "Chill",
    "display_name": "Jill Chill",
    "last_client_version": "5.9.6.4993(mac)",
    "last_login_time": "2021-05-05T20:40:30Z",
    "pmi": 3542471135,
    "role_name": "Admin",
    "role_id": "0",
    "timezone": "Asia/Shanghai",
    "type": 1,
    "use_pmi": False,
    "account_number": 10009239,
    "language": "en-US",
    "status": "active",
    "verified": 1,
    "cluster": "us04",
    "zoom_one_type": 4,
    "custom_attributes": [{"key": "cbf_cywdkexrtqc73f97gd4w6g", "name": "A1", "value": "1"}],
    "group_ids": ["RSMaSp8sTEGK0_oamiA2_w"],
    "im_group_ids": ["t-_-d56CSWG-7BF15LLrOw"],
    "jid": "jchill@xmpp.zoom.us",
    "login_types": [100],
    "personal_meeting_url": "https://example.zoom.us/j/3542471135",
    "phone_number": "+1 800000000",
    "pic_url": "https://example.com/photo.jpg",
    "job_title": "Developer",
    "location": "Paris",
    "company": "Example",
    "employee_unique_id": "HqDyI037Qjili1kNsSIrIg",
    "user_created_at": "2018-10-31T04:32:37Z",
}


def iso_time(moment: float) -> str:
    """Zoom's timestamp form: ``2018-10-31T04:32:37Z`` (UTC, seconds)."""
    return dt.datetime.fromtimestamp(moment, tz=dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


@attrs.define(eq=False)
class FakeAccount:
    """One Zoom account of the fake: its id and its users.

    Attributes:
        account_id: The account id (the S2S grant's ``account_id``).
        users: Users by id, in creation order (the order ``GET /users`` lists them).
        me_id: The id ``me`` stands for (the app's creating user).
        report_participants: Participant report rows by meeting id.
    """

    account_id: str
    users: dict[str, dict[str, Any]] = attrs.field(factory=dict, repr=False)
    me_id: str = ""
    #: Rows of ``GET /report/meetings/{meetingId}/participants`` by meeting id, as
    #: Zoom sends them: a rejoining participant repeats an ``id``, a guest has none.
    report_participants: dict[str, list[dict[str, Any]]] = attrs.field(
        factory=dict, repr=False
    )

    def add_user(self, user: Mapping[str, Any]) -> dict[str, Any]:
        """Add (or replace) a user; returns the stored record."""
        record = dict(user)
        record.setdefault("account_id", self.account_id)
        self.users[str(record["id"])] = record
        return record

    def add_users(
        self, count: int, *, status: str = "active", prefix: str = "user"
    ) -> list[dict[str, Any]]:
        """Add ``count`` generated users (``{prefix}-00001@example.com`` ...); returns them."""
        start = len(self.users)
        added = []
        for number in range(start + 1, start + count + 1):
            added.append(
                self.add_user(
                    {
                        "id": f"{prefix}-{number:05d}-{secrets.token_hex(4)}",
                        "email": f"{prefix}-{number:05d}@example.com",
                        "first_name": "User",
                        "last_name": f"{number:05d}",
                        "display_name": f"User {number:05d}",
                        "type": 1,
                        "status": status,
                        "created_at": "2024-01-01T00:00:00Z",
                        "user_created_at": "2024-01-01T00:00:00Z",
                    }
                )
            )
        return added

    def find_user(self, user_id: str) -> dict[str, Any] | None:
        """The user with this id or email (``"me"``: the app's creating user), if any."""
        if user_id == "me":
            user_id = self.me_id
        found = self.users.get(user_id)
        if found is not None:
            return found
        wanted = user_id.lower()
        return next(
            (u for u in self.users.values() if str(u.get("email", "")).lower() == wanted), None
        )


@attrs.define(eq=False)
class FakeApp:
    """One Marketplace app of the fake, with its credentials and counters.

    Attributes:
        account: The account the app belongs to (its tokens act there).
        client_id: The app's client id.
        client_secret: The app's client secret (not in ``repr``).
        kind: ``"s2s"``, or another app type whose credentials Zoom refuses
            for the ``account_credentials`` grant (``unsupported_grant_type``).
        scope: Space-separated scopes its tokens get; ``None``: the fake's ``scope``.
        expires_in: Lifetime of its tokens; ``None``: the fake's ``expires_in``.
        token_requests: Token requests that named this app's client id.
        tokens_issued: Tokens issued to it.
    """

    account: FakeAccount
    client_id: str
    client_secret: str = attrs.field(repr=False)
    kind: AppKind = "s2s"
    scope: str | None = None
    expires_in: float | None = None
    token_requests: int = 0
    tokens_issued: int = 0

    @property
    def credentials(self) -> Credentials:
        """The app's credentials, for a :class:`~zoom_s2s.TokenManager`."""
        return Credentials(self.account.account_id, self.client_id, self.client_secret)


@attrs.define
class Issued:
    """One token handed out: whose, until when, with which scopes."""

    app: FakeApp
    expires_at: float
    scopes: frozenset[str] = frozenset()
    revoked: bool = False


@attrs.define
class PageCursor:
    """What a ``next_page_token`` stands for: which listing, and how far it got."""

    account_id: str
    listing: str
    page_size: int
    offset: int
    issued_at: float


@attrs.define
class FakeStats:
    """Counters of one fake, as ``GET /_fake/stats`` reports them.

    Attributes:
        requests: Answers by route and status, e.g. ``{("GET /v2/users", 200): 3}``.
        rate_limited: Answers with HTTP 429.
    """

    requests: Counter[tuple[str, int]] = attrs.field(factory=Counter)
    rate_limited: int = 0

    def count(self, route: str, status: int) -> None:
        self.requests[(route, status)] += 1
        if status == 429:
            self.rate_limited += 1

    def by_route(self) -> dict[str, dict[str, int]]:
        """``{"GET /v2/users": {"200": 3, "401": 1}}``."""
        table: dict[str, dict[str, int]] = {}
        for (route, status), count in sorted(self.requests.items()):
            table.setdefault(route, {})[str(status)] = count
        return table


def public_copy(users: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Deep copies, so that a caller changing an answer does not change the fake."""
    return [copy.deepcopy(dict(user)) for user in users]


@attrs.define
class ApiCall:
    """One authenticated ``/v2`` request, as the hooks in :attr:`FakeZoom.api_hooks` see it.

    Attributes:
        request: The aiohttp request.
        route: ``"GET /v2/users/{user_id}"``: method and route pattern.
        category: Zoom's rate-limit category of the route (``"Light"``, ...).
        app: The app whose token was sent.
        account: The account the call acts in.
        headers: Headers to add to the answer (a hook may add its own).
    """

    request: web.Request
    route: str
    category: str
    app: FakeApp
    account: FakeAccount
    headers: dict[str, str] = attrs.field(factory=dict)
