"""PostgresTokenStore without a server: lazy import, configuration, the DDL and grants.

Everything that talks to PostgreSQL is in tests/system/test_postgres_*.py.
"""

from __future__ import annotations

import sys

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
