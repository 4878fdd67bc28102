"""PostgresTokenStore when PostgreSQL hangs, its listener dies or cannot connect, and
what its connections cost.

A frozen server is a real one stopped with SIGSTOP (the postmaster and its
backends, or the listener's backend alone, as after a NAT or firewall drop).
"""


from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import signal
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from tests.harness.postgres_server import PostgresServer
from zoom_s2s.errors import StoreUnavailableError
from zoom_s2s.stores import PostgresTokenStore
from zoom_s2s.stores.postgres import grants_sql, schema_sql
from zoom_s2s.stores.postgres.listener import CHECK_EVERY
from zoom_s2s.stores.postgres.store import POLL_INTERVAL
from zoom_s2s.testing.contract import KEY

from .conftest import require_asyncpg, require_postgres_server
from .test_postgres_store import QueryCounter, sql

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

BOUND = 1.0  # command_timeout of the stores below
SLACK = 1.0  # a loaded 2-core machine


@pytest.fixture
def own_server() -> Iterator[PostgresServer]:
    """A server of the test's own, to freeze."""
    require_postgres_server()
    require_asyncpg()
    with PostgresServer() as server:
        try:
            yield server
        finally:
            with contextlib.suppress(Exception):
                server.resume()


@contextlib.asynccontextmanager
async def opened(url: str, **options: Any) -> AsyncIterator[PostgresTokenStore]:
    store = PostgresTokenStore.from_url(url, **options)
    try:
        yield store
    finally:
        await store.aclose()


async def timed(call: Any) -> tuple[float, BaseException | None]:
    started = time.monotonic()
    try:
        await call
    except Exception as exc:
        return time.monotonic() - started, exc
    return time.monotonic() - started, None


async def test_a_frozen_server_answers_every_caller_within_the_command_timeout(
    own_server: PostgresServer,
) -> None:
    """200 concurrent reads on a pool of 5: none waits in the queue for a connection
    past the bound, whether the pool was warm or the store never connected."""
    async with opened(own_server.url, command_timeout=BOUND, pool_size=5) as warm, \
            opened(own_server.url, command_timeout=BOUND, connect_timeout=BOUND) as cold:
        await asyncio.gather(*(warm.read(KEY) for _ in range(20)))  # connections open
        own_server.pause()
        outcomes = await asyncio.wait_for(
            asyncio.gather(*(timed(warm.read(KEY)) for _ in range(200)),
                           *(timed(cold.read(KEY)) for _ in range(20))),
            30,
        )
        waits = sorted(seconds for seconds, _ in outcomes)
        assert waits[-1] < BOUND + SLACK, f"waited up to {waits[-1]:.1f} s"
        for _, error in outcomes:
            assert isinstance(error, StoreUnavailableError)
            assert f"did not answer within {BOUND:g} s while reading the token" in str(error)
            assert own_server.password not in str(error)
        own_server.resume()
        deadline = time.monotonic() + 15
        while True:  # the abandoned statements finish; the pools serve again
            try:
                await warm.read(KEY)
                await cold.read(KEY)
                break
            except StoreUnavailableError:
                assert time.monotonic() < deadline, "the store did not recover after the thaw"
                await asyncio.sleep(0.2)


async def test_a_frozen_server_bounds_every_operation_and_the_schema_creation(
    own_server: PostgresServer,
) -> None:
    async with opened(own_server.url, command_timeout=BOUND) as store, \
            opened(own_server.url, command_timeout=BOUND) as fresh:
        attempt = await store.acquire_lock(KEY, ttl=30)
        assert attempt.lease is not None
        own_server.pause()
        calls = [
            store.read(KEY),
            store.acquire_lock("other", ttl=5),
            store.release_lock(attempt.lease),
            store.delete(KEY, fingerprint="x"),
            store.wait_for_change(KEY, timeout=10),
            fresh.init_schema(),
        ]
        for seconds, error in await asyncio.wait_for(
            asyncio.gather(*(timed(call) for call in calls)), 30
        ):
            assert isinstance(error, StoreUnavailableError), error
            assert seconds < BOUND + SLACK


def listener_pid(rows: list[Any]) -> int:
    assert len(rows) == 1, rows
    return int(rows[0]["pid"])


async def test_a_listener_that_stopped_answering_is_dropped_and_waiters_re_read(
    postgres_url: str, postgres_schema: str, caplog: pytest.LogCaptureFixture
) -> None:
    """The listener's backend stops (as after a NAT drop): NOTIFY never arrives, and
    nothing says so. The ping notices; the hand-off takes seconds, not the lock's TTL."""
    name = f"t{secrets.token_hex(4)}"
    async with opened(postgres_url, schema=postgres_schema) as holder, opened(
        postgres_url, schema=postgres_schema, server_settings={"application_name": name}
    ) as waiter:
        lease = (await holder.acquire_lock(KEY, ttl=30)).lease
        assert lease is not None
        await waiter.read(KEY)
        counter = QueryCounter(waiter)
        first = asyncio.create_task(waiter.wait_for_change(KEY, timeout=30))
        await counter.reach(1)  # listening, and it found the lock held
        counter.restore()
        pid = listener_pid(await sql(
            postgres_url, "SELECT pid FROM pg_stat_activity WHERE application_name = $1",
            f"{name}:listen",
        ))
        os.kill(pid, signal.SIGSTOP)
        try:
            assert await holder.release_lock(lease)
            seconds, error = await timed(asyncio.wait_for(first, 20))
            assert error is None
            assert seconds < 2 * CHECK_EVERY + SLACK, f"the hand-off took {seconds:.1f} s"
            assert "did not answer" in caplog.text

            # Until it listens again, waits re-read the row.
            lease = (await holder.acquire_lock(KEY, ttl=30)).lease
            assert lease is not None
            second = asyncio.create_task(waiter.wait_for_change(KEY, timeout=30))
            await asyncio.sleep(0.3)
            assert not second.done()
            assert await holder.release_lock(lease)
            seconds, error = await timed(asyncio.wait_for(second, 20))
            assert error is None
            assert seconds < POLL_INTERVAL + SLACK
        finally:
            os.kill(pid, signal.SIGCONT)


async def test_a_listener_that_cannot_connect_leaves_waiters_to_re_read(
    postgres_url: str, postgres_schema: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A role at its CONNECTION LIMIT: the pool's connection works, the listener's is
    refused; waiters wait by re-reading the row instead of failing."""
    user = f"app_{secrets.token_hex(4)}"
    password = secrets.token_urlsafe(12)
    await sql(postgres_url, schema_sql(postgres_schema))
    await sql(postgres_url, f"CREATE ROLE {user} LOGIN CONNECTION LIMIT 1 PASSWORD '{password}'")
    for statement in grants_sql(user, postgres_schema).strip().splitlines():
        await sql(postgres_url, statement)
    app_url = postgres_url.replace(
        postgres_url.split("//", 1)[1].split("@", 1)[0], f"{user}:{password}"
    )
    async with opened(postgres_url, schema=postgres_schema) as holder, \
            opened(app_url, schema=postgres_schema, pool_size=1) as waiter:
        lease = (await holder.acquire_lock(KEY, ttl=30)).lease
        assert lease is not None
        await waiter.read(KEY)  # the pool holds the role's one connection
        caplog.set_level(logging.WARNING, "zoom_s2s.stores.postgres")
        task = asyncio.create_task(waiter.wait_for_change(KEY, timeout=20))
        await asyncio.sleep(0.5)
        assert not task.done()
        assert await holder.release_lock(lease)
        seconds, error = await timed(asyncio.wait_for(task, 20))
        assert error is None
        assert seconds < POLL_INTERVAL + SLACK
        assert "cannot LISTEN" in caplog.text
        assert "TooManyConnectionsError" in caplog.text
        assert password not in caplog.text


async def test_a_statement_is_one_round_trip_without_a_reset_on_release(
    postgres_url: str, postgres_schema: str
) -> None:
    """The pooled connection's last statement is the store's own: no reset query
    (pg_advisory_unlock_all(); CLOSE ALL; UNLISTEN *; RESET ALL) follows it."""
    name = f"t{secrets.token_hex(4)}"
    async with opened(
        postgres_url, schema=postgres_schema, pool_size=1,
        server_settings={"application_name": name},
    ) as store:
        await store.read(KEY)
        await store.read(KEY)
        rows = await sql(
            postgres_url,
            "SELECT query FROM pg_stat_activity WHERE application_name = $1", name,
        )
    assert len(rows) == 1
    assert "entries AS e WHERE e.key = $1" in rows[0]["query"]
