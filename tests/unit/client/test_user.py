"""User covers Zoom's schema of GET /users/{userId}; unknown fields stay in raw."""

from __future__ import annotations

import datetime as dt

import pytest

from zoom_s2s import User
from zoom_s2s.client.user import CustomAttribute
from zoom_s2s.testing._fake_state import SAMPLE_USER


def test_every_documented_field_is_read() -> None:
    user = User.from_api(dict(SAMPLE_USER, account_id="acct", brand_new_field={"x": 1}))
    expected = {
        "id": "zJKyaiAyTNC-MWjiWC18KQ",
        "email": "jchill@example.com",
        "first_name": "Jill",
        "last_name": "Chill",
        "display_name": "Jill Chill",
        "type": 1,
        "role_name": "Admin",
        "role_id": "0",
        "account_id": "acct",
        "account_number": 10009239,
        "status": "active",
        "timezone": "Asia/Shanghai",
        "dept": "Developers",
        "job_title": "Developer",
        "location": "Paris",
        "company": "Example",
        "employee_unique_id": "HqDyI037Qjili1kNsSIrIg",
        "last_client_version": "5.9.6.4993(mac)",
        "pmi": 3542471135,
        "use_pmi": False,
        "personal_meeting_url": "https://example.zoom.us/j/3542471135",
        "verified": 1,
        "pic_url": "https://example.com/photo.jpg",
        "phone_number": "+1 800000000",
        "language": "en-US",
        "cluster": "us04",
        "jid": "jchill@xmpp.zoom.us",
        "group_ids": ("RSMaSp8sTEGK0_oamiA2_w",),
        "im_group_ids": ("t-_-d56CSWG-7BF15LLrOw",),
        "login_types": (100,),
        "custom_attributes": (CustomAttribute("cbf_cywdkexrtqc73f97gd4w6g", "A1", "1"),),
    }
    assert {name: getattr(user, name) for name in expected} == expected
    utc = dt.timezone.utc
    assert user.created_at == dt.datetime(2018, 10, 31, 4, 32, 37, tzinfo=utc)
    assert user.user_created_at == dt.datetime(2018, 10, 31, 4, 32, 37, tzinfo=utc)
    assert user.last_login_time == dt.datetime(2021, 5, 5, 20, 40, 30, tzinfo=utc)
    assert user.raw["brand_new_field"] == {"x": 1}  # unknown fields are kept
    assert not user.is_pending


def test_custom_attributes_in_the_object_form_are_accepted() -> None:
    one = {"key": "k1", "name": "Country", "value": "Nepal"}
    assert User.from_api({"id": "u", "custom_attributes": one}).custom_attributes == (
        CustomAttribute("k1", "Country", "Nepal"),
    )
    assert User.from_api({"id": "u", "custom_attributes": [one, "junk", {}]}).custom_attributes == (
        CustomAttribute("k1", "Country", "Nepal"),
        CustomAttribute(None, None, None),
    )
    assert User.from_api({"id": "u", "custom_attributes": "junk"}).custom_attributes == ()


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("use_pmi", "false"),
        ("verified", True),
        ("group_ids", "abc"),
        ("login_types", {"a": 1}),
        ("display_name", 7),
        ("user_created_at", "yesterday"),
    ],
)
def test_a_field_of_an_unexpected_type_is_empty_not_an_error(field: str, value: object) -> None:
    got = getattr(User.from_api({"id": "u", field: value}), field)
    assert got in (None, ())


def test_a_pending_user_parses() -> None:
    user = User.from_api({"id": "p1", "created_at": "2026-01-01T00:00:00Z"})
    assert user.is_pending
    assert user.created_at == dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)
    assert (user.email, user.display_name, user.custom_attributes) == (None, None, ())


def test_users_stay_equal_and_hashable_with_cached_fields() -> None:
    first = User.from_api(dict(SAMPLE_USER))
    second = User.from_api(dict(SAMPLE_USER))
    assert first.created_at == second.created_at
    assert first.custom_attributes == second.custom_attributes
    assert first == second
    assert hash(first) == hash(second)
