"""Shared fixtures. The Redis ones start a real ``redis-server`` once per session.

Tests marked ``redis`` need ``redis-server`` on PATH: without it they are
skipped on a developer's machine but *fail* when ``CI`` is set, because CI
installs Redis and a silent skip there would hide a broken setup.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from zoom_s2s.testing.redis_server import RedisServer, redis_server_available


def _in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def _require_redis_server() -> None:
    if redis_server_available():
        return
    message = "redis-server is not on PATH (install it, e.g. apt-get install redis-server)"
    if _in_ci():
        pytest.fail(f"{message}; CI must install it", pytrace=False)
    pytest.skip(message)


def pytest_runtest_setup(item: pytest.Item) -> None:
    if item.get_closest_marker("redis") is not None:
        _require_redis_server()


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    """One real ``redis-server`` on a free loopback port for the whole session."""
    _require_redis_server()
    with RedisServer() as server:
        yield server


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    """The session server's URL, with an empty database (restarted if a test stopped it)."""
    redis_server.start()
    redis_server.flush()
    return redis_server.url
