from __future__ import annotations

import datetime as dt

import pytest

from zoom_s2s import AccessToken, Credentials
from zoom_s2s.errors import ConfigurationError


def test_credentials_hide_the_secret_from_repr() -> None:
    creds = Credentials("acct", "client", "the-secret-value")
    assert "the-secret-value" not in repr(creds)
    assert "acct" in repr(creds)
    assert "client" in repr(creds)


@pytest.mark.parametrize(
    ("kwargs", "named"),
    [
        ({"account_id": "", "client_id": "c", "client_secret": "s"}, "account_id is empty"),
        ({"account_id": "a", "client_id": "   ", "client_secret": "s"}, "client_id is empty"),
        ({"account_id": "a", "client_id": "c", "client_secret": ""}, "client_secret is empty"),
        ({"account_id": 42, "client_id": "c", "client_secret": "s"}, "account_id must be a string"),
        ({"account_id": "a", "client_id": None, "client_secret": "s"}, "client_id must be a string"),
        ({"account_id": "a", "client_id": "c", "client_secret": b"s"}, "client_secret must be a"),
        ({"account_id": " a", "client_id": "c", "client_secret": "s"}, "white space"),
        ({"account_id": "a", "client_id": "c", "client_secret": "s\n"}, "white space"),
    ],
)
def test_bad_credentials_are_a_clear_configuration_error(kwargs: dict[str, object], named: str) -> None:
    with pytest.raises(ConfigurationError, match=named) as info:
        Credentials(**kwargs)  # type: ignore[arg-type]
    assert "Marketplace" in str(info.value) or "white space" in str(info.value)


def test_white_space_error_does_not_echo_the_secret() -> None:
    with pytest.raises(ConfigurationError) as info:
        Credentials("a", "c", "  hidden-secret  ")
    assert "hidden-secret" not in str(info.value)


def test_from_env_reads_the_three_variables() -> None:
    env = {"ZOOM_ACCOUNT_ID": "acct", "ZOOM_CLIENT_ID": "cid", "ZOOM_CLIENT_SECRET": "sec"}
    assert Credentials.from_env(env) == Credentials("acct", "cid", "sec")


def test_from_env_names_every_missing_variable() -> None:
    with pytest.raises(ConfigurationError) as info:
        Credentials.from_env({"ZOOM_CLIENT_ID": "cid", "ZOOM_CLIENT_SECRET": " "})
    message = str(info.value)
    assert "ZOOM_ACCOUNT_ID" in message
    assert "ZOOM_CLIENT_SECRET" in message
    assert "ZOOM_CLIENT_ID" not in message.replace("ZOOM_CLIENT_SECRET", "")


def test_credentials_fingerprint_ignores_the_secret() -> None:
    one = Credentials("a", "c", "secret-1")
    two = Credentials("a", "c", "secret-2")
    assert one.fingerprint == two.fingerprint
    assert one.fingerprint != Credentials("a", "other", "secret-1").fingerprint


def token(**overrides: object) -> AccessToken:
    fields: dict[str, object] = {
        "access_token": "tok-abcdef",
        "expires_ts": 2_000.0,
        "issued_ts": 1_000.0,
        "scopes": "user:read:admin meeting:write:admin",
        "api_url": "https://eu01api.zoom.us",
    }
    fields.update(overrides)
    return AccessToken(**fields)  # type: ignore[arg-type]


def test_access_token_round_trips_through_a_json_dict() -> None:
    original = token()
    assert original.scopes == ("user:read:admin", "meeting:write:admin")
    assert AccessToken.from_dict(original.to_dict()) == original


def test_access_token_repr_shows_a_fingerprint_not_the_token() -> None:
    text = repr(token(access_token="very-secret-token"))
    assert "very-secret-token" not in text
    assert token(access_token="very-secret-token").fingerprint in text


def test_access_token_lifetime_and_remaining() -> None:
    tok = token()
    assert tok.lifetime == 1_000.0
    assert tok.remaining(1_900.0) == 100.0


def test_access_token_times_are_aware_utc_datetimes_beside_the_epoch_floats() -> None:
    tok = token()
    assert tok.expires_at == dt.datetime(1970, 1, 1, 0, 33, 20, tzinfo=dt.timezone.utc)
    assert tok.issued_at == dt.datetime(1970, 1, 1, 0, 16, 40, tzinfo=dt.timezone.utc)
    assert tok.expires_at.timestamp() == tok.expires_ts
    assert "expires_at=1970-01-01T00:33:20+00:00" in repr(tok)


@pytest.mark.parametrize(
    "data",
    [
        None,
        [],
        {},
        {"access_token": "", "expires_at": 1, "issued_at": 0},
        {"access_token": "t", "expires_at": "soon", "issued_at": 0},
        {"access_token": "t", "expires_at": 1, "issued_at": True},
        {"access_token": "t", "expires_at": float("nan"), "issued_at": 0},
    ],
)
def test_from_dict_rejects_anything_but_a_token_record(data: object) -> None:
    with pytest.raises(ValueError, match=r"."):
        AccessToken.from_dict(data)
