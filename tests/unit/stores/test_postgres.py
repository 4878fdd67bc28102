"""PostgresTokenStore without a server: lazy import, configuration, the DDL and grants.

Everything that talks to PostgreSQL is in tests/system/test_postgres_*.py.
"""

from __future__ import annotations

import sys
from typing import Any

import pytest

from zoom_s2s import store_from_url
from zoom_s2s.errors import ConfigurationError, StoreUnavailableError
from zoom_s2s.stores import PostgresTokenStore
from zoom_s2s.stores.postgres import grants_sql, schema_sql


def test_importing_zoom_s2s_does_not_import_asyncpg() -> None:
    import zoom_s2s.stores.postgres.store as module

    assert "asyncpg" not in module.__dict__
    assert not any(name == "asyncpg" for name in vars(module))


def test_without_asyncpg_creating_a_store_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "asyncpg", None)  # import asyncpg -> ImportError
    with pytest.raises(ConfigurationError, match=r"zoom-s2s\[postgres\]"):
        store_from_url("postgresql://app:pw@db/zoom")


def test_both_schemes_are_registered() -> None:
    pytest.importorskip("asyncpg")
    for url in ("postgresql://app:pw@db/zoom", "postgres://app:pw@db/zoom"):
        store = store_from_url(url)
        assert isinstance(store, PostgresTokenStore)
        assert "pw" not in repr(store)
        assert store.name.endswith("://app:***@db/zoom")


def test_schema_sql_and_grants_quote_a_validated_name() -> None:
    ddl = schema_sql("myapp_tokens")
    assert 'CREATE SCHEMA IF NOT EXISTS "myapp_tokens";' in ddl
    assert "schema_version', '2'" in ddl
    assert 'CREATE TABLE IF NOT EXISTS "myapp_tokens".rates' in ddl
    assert grants_sql("app", "myapp_tokens").splitlines() == [
        'GRANT USAGE ON SCHEMA "myapp_tokens" TO "app";',
        'GRANT SELECT ON "myapp_tokens".meta TO "app";',
        'GRANT SELECT, INSERT, UPDATE ON "myapp_tokens".entries TO "app";',
        'GRANT SELECT, INSERT, UPDATE, DELETE ON "myapp_tokens".rates TO "app";',
        'GRANT SELECT, INSERT, UPDATE, DELETE ON "myapp_tokens".claims TO "app";',
    ]
    for bad in ('x"; DROP TABLE users; --', "Upper", "", "9lives", "a" * 49):
        with pytest.raises(ConfigurationError, match="schema must be"):
            schema_sql(bad)
        with pytest.raises(ConfigurationError):
            grants_sql(bad)


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://app:s3cr/et@db/zoom",  # '/' ends the host part: "s3cr" was the "port"
        "postgresql://app:s3cr?et@db/zoom",
        "postgresql://app:s3cr#et@db/zoom",
        "postgresql://app:[s3cret]@db/zoom",  # the parser quoted the "[host]"
        "postgresql://app:5432/s3cret@db/zoom",  # parses: host "app", port 5432
    ],
)
def test_a_password_with_an_unescaped_delimiter_reaches_no_message_or_repr(url: str) -> None:
    pytest.importorskip("asyncpg")
    try:
        shown = repr(PostgresTokenStore(url))
    except ConfigurationError as exc:
        shown = str(exc)
        assert "percent-encode" in shown
    assert "s3cr" not in shown


def test_a_connection_left_mid_exchange_by_a_dead_server_is_unavailable() -> None:
    """asyncpg reports a pooled connection whose server died mid-exchange as an
    InternalClientError (seen when the postmaster is SIGKILLed: test_postgres_fleet.py);
    that is an unreachable store, not a failure of the store's own statements."""
    asyncpg_exceptions = pytest.importorskip("asyncpg.exceptions")
    store = store_from_url("postgresql://app:pw-123@db/zoom")
    exc = asyncpg_exceptions.InternalClientError(
        "cannot switch to state 11; another operation (2) is in progress"
    )
    error = store.translate_error(exc, "reading the token")  # type: ignore[attr-defined]
    assert isinstance(error, StoreUnavailableError)
    assert "is unreachable while reading the token" in str(error)
    assert "pw-123" not in str(error)


# -- the sealed hand-off (zoom_s2s.stores.postgres.handoff) --------------------------


def _sealed(record: bytes = b'{"v":1}', *, key: str = "acct:1", left: float = 3500.0) -> str:
    from zoom_s2s.stores.postgres import handoff

    text = handoff.payload(key, owner="a" * 32, generation=7, record=record, left=left)
    parsed_key, sealed = handoff.parse(text)
    assert parsed_key == key
    return sealed


def test_a_sealed_hand_off_opens_only_under_its_own_lease_and_key() -> None:
    pytest.importorskip("cryptography")
    from zoom_s2s.stores.postgres import handoff

    record = b'{"v":1,"generation":7,"token":{"access_token":"secret-token-value"}}'
    sealed = _sealed(record, key="acct:1:with:colons")
    assert handoff.open_sealed(
        sealed, key="acct:1:with:colons", owner="a" * 32, generation=7
    ) == (record, 3500.0)
    assert b"secret-token-value" not in sealed.encode()
    for wrong in (
        {"key": "acct:1:with:colons", "owner": "b" * 32, "generation": 7},  # another lease
        {"key": "acct:1:with:colons", "owner": "a" * 32, "generation": 8},  # another generation
        {"key": "acct:2", "owner": "a" * 32, "generation": 7},  # another key
    ):
        assert handoff.open_sealed(sealed, **wrong) is None  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "tamper",
    [
        lambda s: s[:-2] + ("A" if s[-2] != "A" else "B") + s[-1],  # a flipped ciphertext bit
        lambda s: s[:20],  # cut short
        lambda s: "not base64 at all!",
        lambda s: "é" + s,
        lambda s: "",
    ],
)
def test_a_tampered_or_forged_hand_off_opens_to_nothing(tamper: Any) -> None:
    pytest.importorskip("cryptography")
    from zoom_s2s.stores.postgres import handoff

    assert handoff.open_sealed(tamper(_sealed()), key="acct:1", owner="a" * 32, generation=7) is None


def test_a_hand_off_claiming_a_non_finite_or_negative_life_is_refused() -> None:
    pytest.importorskip("cryptography")
    from zoom_s2s.stores.postgres import handoff

    for left in (float("inf"), float("nan"), -1.0):
        sealed = _sealed(left=left)
        assert handoff.open_sealed(sealed, key="acct:1", owner="a" * 32, generation=7) is None


def test_a_record_too_long_for_a_notification_is_sent_as_a_bare_wake_up() -> None:
    from zoom_s2s.stores.postgres import handoff

    text = handoff.payload("k", owner="a" * 32, generation=1, record=b"x" * 6000, left=1.0)
    assert text == ":k"
    assert len(handoff.payload("k", owner="a" * 32, generation=1, record=b"x" * 5000,
                               left=1.0).encode()) <= handoff.MAX_PAYLOAD


def test_without_cryptography_nothing_is_sealed_and_nothing_opens(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    pytest.importorskip("cryptography")
    from zoom_s2s.stores.postgres import handoff

    sealed = _sealed()
    monkeypatch.setattr(handoff, "_aesgcm", None)
    monkeypatch.setattr(handoff, "_prepared", True)
    assert not handoff.prepare()
    assert handoff.payload("k", owner="a" * 32, generation=1, record=b"{}", left=1.0) == ":k"
    assert handoff.open_sealed(sealed, key="acct:1", owner="a" * 32, generation=7) is None
