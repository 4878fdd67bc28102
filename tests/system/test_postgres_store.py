"""PostgresTokenStore against a real PostgreSQL server: the store contract, and what is its own.

The contract (zoom_s2s.testing.contract) runs on a store per test schema
(EncryptedTokenStore passes everything through to the store it wraps: its
contract runs on memory, file and Redis); then the schema's creation and
version, an application user with only the documented grants, the database's
clock deciding lock and token lifetimes, and the errors' hints.
"""

# The schema names in the SQL below are the fixture's own t_<hex>.
# ruff: noqa: S608

from __future__ import annotations

import asyncio
import logging
import secrets
import socket
import time
from collections.abc import AsyncIterator
from typing import Any, cast

import pytest
import pytest_asyncio

from zoom_s2s import _clock, store_from_url
from zoom_s2s.errors import ConfigurationError, StoreError, StoreUnavailableError
from zoom_s2s.stores import EncryptedTokenStore, PostgresTokenStore, TokenStore
from zoom_s2s.stores.postgres import grants_sql, schema_sql
from zoom_s2s.testing.contract import KEY, StoreContract, make_failure, make_token

pytestmark = pytest.mark.postgres

PASSWORD = "hunter2-Postgres"


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def sql(url: str, query: str, *args: Any) -> Any:
    """Run one statement on a connection of its own; return its rows."""
    import asyncpg

    connection = await asyncpg.connect(url)
    try:
        if not args and ";" in query:  # a script: several statements, no rows
            return await connection.execute(query)
        return await connection.fetch(query, *args)
    finally:
        await connection.close()


class QueryCounter:
    """Counts the statements ``store`` had answered (installed over its ``_run``;
    :meth:`restore` puts it back). Lets a test wait until waiters have looked at the
    lock instead of sleeping a fixed time, which a loaded machine outlasts."""

    def __init__(self, store: PostgresTokenStore) -> None:
        self.store, self.count = store, 0
        run = store._run

        async def counted(*args: Any, **kwargs: Any) -> Any:
            result = await run(*args, **kwargs)
            self.count += 1  # once answered: the caller has what it asked
            return result

        store._run = counted  # type: ignore[method-assign]

    async def reach(self, count: int, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while self.count < count:
            assert time.monotonic() < deadline, f"{self.count} statements, not {count}"
            await asyncio.sleep(0.005)

    def restore(self) -> None:
        del self.store._run


class TestPostgresTokenStore(StoreContract):
    store_secrets = (PASSWORD,)

    @pytest.fixture(autouse=True)
    def _server(self, postgres_url: str, postgres_schema: str) -> None:
        self.url = postgres_url
        self.schema = postgres_schema

    async def make_store(self) -> TokenStore:
        return PostgresTokenStore.from_url(self.url, schema=self.schema)

    async def make_peer(self, store: TokenStore) -> TokenStore:
        return PostgresTokenStore.from_url(self.url, schema=self.schema)

    async def make_broken_store(self) -> TokenStore:
        return PostgresTokenStore.from_url(
            f"postgresql://app:{PASSWORD}@127.0.0.1:{closed_port()}/zoom",
            schema=self.schema,
            connect_timeout=1,
        )

    async def plant_failure(
        self, store: TokenStore, key: str, raw: str, *, keep_for: float
    ) -> None:
        postgres = cast(PostgresTokenStore, EncryptedEntries.unwrap(store))
        await postgres.init_schema()
        await sql(
            self.url,
            f"""INSERT INTO {postgres.schema}.entries AS e
                    (key, failure_data, failure_written, failure_expires)
                VALUES ($1, $2, clock_timestamp(), clock_timestamp() + make_interval(secs => $3))
                ON CONFLICT (key) DO UPDATE SET failure_data = EXCLUDED.failure_data,
                    failure_written = EXCLUDED.failure_written,
                    failure_expires = EXCLUDED.failure_expires""",
            key,
            raw.encode("utf-8", "surrogateescape"),
            keep_for,
        )


class EncryptedEntries:
    @staticmethod
    def unwrap(store: TokenStore) -> TokenStore:
        return store.inner if isinstance(store, EncryptedTokenStore) else store


# -- what is PostgreSQL's own -------------------------------------------------------


@pytest_asyncio.fixture
async def store(postgres_url: str, postgres_schema: str) -> AsyncIterator[PostgresTokenStore]:
    store = PostgresTokenStore.from_url(postgres_url, schema=postgres_schema)
    try:
        yield store
    finally:
        await store.aclose()


async def test_store_from_url_serves_both_schemes(postgres_url: str, postgres_schema: str) -> None:
    for url in (postgres_url, postgres_url.replace("postgresql://", "postgres://", 1)):
        store = store_from_url(url, schema=postgres_schema)
        try:
            assert isinstance(store, PostgresTokenStore)
            port = postgres_url.rsplit(":", 1)[1].split("/")[0]
            assert store.name == f"{url.split('://')[0]}://postgres:***@127.0.0.1:{port}/postgres"
            lease = (await store.acquire_lock(KEY, ttl=5)).lease
            assert lease is not None
            assert await store.release_lock(lease)
        finally:
            await store.aclose()


async def test_schema_is_created_once_and_versioned(
    postgres_url: str, postgres_schema: str
) -> None:
    stores = [PostgresTokenStore.from_url(postgres_url, schema=postgres_schema) for _ in range(6)]
    try:
        # Six stores (as six processes) create the schema at the same moment.
        await asyncio.gather(*(s.init_schema() for s in stores))
    finally:
        for s in stores:
            await s.aclose()
    rows = await sql(postgres_url, f"SELECT name, value FROM {postgres_schema}.meta")
    assert [(r["name"], r["value"]) for r in rows] == [("schema_version", "2")]


async def test_a_newer_schema_version_is_refused_with_advice(
    postgres_url: str, postgres_schema: str
) -> None:
    await sql(postgres_url, schema_sql(postgres_schema))
    await sql(postgres_url, f"UPDATE {postgres_schema}.meta SET value = '3'")
    store = PostgresTokenStore.from_url(postgres_url, schema=postgres_schema)
    try:
        with pytest.raises(StoreError, match=r"version '3'.*upgrade zoom-s2s"):
            await store.read(KEY)
    finally:
        await store.aclose()


async def test_an_application_user_with_the_documented_grants_only(
    postgres_url: str, postgres_schema: str
) -> None:
    """The DBA runs schema_sql() and grants_sql(); the app user has no CREATE anywhere."""
    user = f"app_{secrets.token_hex(4)}"
    password = secrets.token_urlsafe(12)
    await sql(postgres_url, schema_sql(postgres_schema))
    await sql(postgres_url, f"CREATE ROLE {user} LOGIN PASSWORD '{password}'")
    await sql(postgres_url, "REVOKE CREATE ON SCHEMA public FROM PUBLIC")
    for statement in grants_sql(user, postgres_schema).strip().splitlines():
        await sql(postgres_url, statement)
    app_url = postgres_url.replace(
        postgres_url.split("//", 1)[1].split("@", 1)[0], f"{user}:{password}"
    )
    store = PostgresTokenStore.from_url(app_url, schema=postgres_schema)
    peer = PostgresTokenStore.from_url(app_url, schema=postgres_schema)
    try:
        lease = (await store.acquire_lock(KEY, ttl=10)).lease
        assert lease is not None
        assert (await peer.read(KEY)).token is None  # the peer's pool, made with these grants
        counter = QueryCounter(peer)
        waiter = asyncio.create_task(peer.wait_for_change(KEY, timeout=10))
        await counter.reach(1)  # LISTENing, and it found the lock held
        counter.restore()
        token = make_token()
        assert await store.write(lease, token)
        await asyncio.wait_for(waiter, 5)  # NOTIFY/LISTEN need no grant
        await store.write_failure(lease, make_failure(), keep_for=60)
        assert (await peer.read(KEY)).failure is not None
        assert await store.release_lock(lease)
        got = (await peer.read(KEY)).token
        assert got is not None
        assert got.fingerprint == token.fingerprint
        assert await peer.delete(KEY, fingerprint=token.fingerprint)
    finally:
        await store.aclose()
        await peer.aclose()
    # Without the grants the error names them, and never the password.
    other = f"t_{secrets.token_hex(6)}"
    bare = PostgresTokenStore.from_url(app_url, schema=other)
    try:
        with pytest.raises(StoreError) as raised:
            await bare.read(KEY)
    finally:
        await bare.aclose()
    assert "CREATE on the database" in str(raised.value)
    assert "schema_sql()" in str(raised.value)
    assert f"zoom-s2s store sql --schema {other} --grant-to USER" in str(raised.value)
    assert password not in str(raised.value)


async def test_lock_and_token_lifetimes_are_the_databases_not_the_hosts(
    store: PostgresTokenStore, postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A host whose clock is an hour ahead neither keeps a lock longer nor extends a token."""
    lease = (await store.acquire_lock(KEY, ttl=5)).lease
    assert lease is not None
    rows = await sql(
        postgres_url,
        f"SELECT EXTRACT(EPOCH FROM lock_expires - clock_timestamp())::float8 AS left_s "
        f"FROM {store.schema}.entries WHERE key = $1",
        KEY,
    )
    assert 4 < rows[0]["left_s"] <= 5
    real_time = time.time
    monkeypatch.setattr(time, "time", lambda: real_time() + 3600)
    monkeypatch.setattr(_clock, "wall", time.time)
    # The writer's clock runs an hour fast: the token claims to expire at +1 h on
    # the real clock, the row lapses in its remaining lifetime (by its clock)...
    token = make_token(lifetime=600)  # made on the fast clock
    assert await store.write(lease, token)
    monkeypatch.setattr(time, "time", real_time)
    monkeypatch.setattr(_clock, "wall", real_time)
    got = (await store.read(KEY)).token
    assert got is not None
    # ... so a reader on the real clock believes at most 600 s, not 4200 s.
    assert got.expires_ts <= real_time() + 600 + 1
    assert got.expires_ts - got.issued_ts == pytest.approx(600, abs=1)
    assert await store.release_lock(lease)


async def test_waiters_are_woken_by_notify_not_by_polling(
    store: PostgresTokenStore, postgres_url: str, postgres_schema: str
) -> None:
    """One LISTEN connection per store wakes its many waiters; nobody polls meanwhile."""
    lease = (await store.acquire_lock(KEY, ttl=30)).lease
    assert lease is not None
    peer = PostgresTokenStore.from_url(postgres_url, schema=postgres_schema)
    counter: QueryCounter | None = None
    try:
        await peer.init_schema()
        counter = QueryCounter(peer)
        waiters = [asyncio.create_task(peer.wait_for_change(KEY, timeout=10)) for _ in range(20)]
        await counter.reach(20)  # each waiter looked at the lock once...
        await asyncio.sleep(1.5)
        assert counter.count == 20, "the waiters polled"  # ... and then slept
        listening = await sql(
            postgres_url,
            "SELECT count(*) AS n FROM pg_stat_activity WHERE application_name = 'zoom-s2s:listen'",
        )
        assert listening[0]["n"] == 1
        assert not any(w.done() for w in waiters)
        assert await store.release_lock(lease)
        await asyncio.wait_for(asyncio.gather(*waiters), 2)
    finally:
        if counter is not None:
            counter.restore()
        await peer.aclose()


async def test_lease_row_is_taken_over_after_its_ttl_even_if_the_holder_lives(
    store: PostgresTokenStore, postgres_url: str, postgres_schema: str
) -> None:
    """A frozen holder keeps its connection (an advisory lock would be held forever)."""
    stale = (await store.acquire_lock(KEY, ttl=0.3)).lease
    assert stale is not None
    await asyncio.sleep(0.5)
    peer = PostgresTokenStore.from_url(postgres_url, schema=postgres_schema)
    try:
        fresh = (await peer.acquire_lock(KEY, ttl=10)).lease
        assert fresh is not None
        assert fresh.generation == stale.generation + 1
        assert not await store.release_lock(stale)
        assert (await peer.acquire_lock(KEY, ttl=10)).lease is None  # the stale release freed nothing
    finally:
        await peer.aclose()


@pytest.mark.parametrize(
    ("url", "options", "match"),
    [
        ("postgresql://u:pw@host:99999/db", {}, "invalid PostgreSQL URL"),
        ("postgresql://u:pw@host/db", {"schema": "Bad-Name"}, "schema must be"),
        ("postgresql://u:pw@host/db", {"schema": "1abc"}, "schema must be"),
        ("postgresql://u:pw@host/db", {"pool_size": 0}, "pool_size"),
        ("postgresql://u:pw@host/db", {"command_timeout": -1}, "command_timeout"),
        ("postgresql://u:pw@host/db", {"nonsense": 1}, "unexpected option.*nonsense"),
    ],
)
def test_bad_configuration_is_a_configuration_error(
    url: str, options: dict[str, Any], match: str
) -> None:
    with pytest.raises(ConfigurationError, match=match) as raised:
        PostgresTokenStore.from_url(url, **options)
    assert "pw" not in str(raised.value).replace("pool_size", "")


async def test_wrong_password_says_so_without_the_password(postgres_server: Any) -> None:
    postgres_server.start()
    url = postgres_server.url.replace(postgres_server.password, PASSWORD)
    store = PostgresTokenStore.from_url(url)
    try:
        with pytest.raises(StoreUnavailableError, match="refused the credentials") as raised:
            await store.read(KEY)
    finally:
        await store.aclose()
    assert PASSWORD not in str(raised.value)
    assert postgres_server.password not in str(raised.value)


async def test_missing_database_says_so(postgres_url: str) -> None:
    store = PostgresTokenStore.from_url(postgres_url.rsplit("/", 1)[0] + "/nosuchdb")
    try:
        with pytest.raises(StoreUnavailableError, match="no such database"):
            await store.read(KEY)
    finally:
        await store.aclose()


async def test_a_closed_store_refuses_work(store: PostgresTokenStore) -> None:
    await store.read(KEY)
    await store.aclose()
    with pytest.raises(Exception, match="closed"):
        await store.read(KEY)


def test_store_init_command_creates_then_finds_the_schema(
    postgres_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from zoom_s2s.cli import main

    # The default schema, in a database of its own.
    database = f"cli_{secrets.token_hex(4)}"
    asyncio.run(sql(postgres_url, f"CREATE DATABASE {database}"))
    url = postgres_url.rsplit("/", 1)[0] + f"/{database}"
    password = url.split("//", 1)[1].split("@", 1)[0].split(":", 1)[1]
    assert main(["store", "init", url]) == 0
    first = capsys.readouterr().out
    assert "created schema 'zoom_s2s' at version 2" in first
    assert main(["store", "init", url]) == 0
    assert "schema 'zoom_s2s' was already at version 2" in capsys.readouterr().out
    rows = asyncio.run(sql(url, "SELECT value FROM zoom_s2s.meta"))
    assert rows[0]["value"] == "2"
    assert password not in first


def test_store_init_command_takes_a_schema(
    postgres_url: str, postgres_schema: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from zoom_s2s.cli import main

    assert main(["store", "init", postgres_url, "--schema", postgres_schema]) == 0
    assert f"created schema {postgres_schema!r} at version 2" in capsys.readouterr().out
    rows = asyncio.run(sql(postgres_url, f"SELECT value FROM {postgres_schema}.meta"))
    assert rows[0]["value"] == "2"


def test_store_sql_command_prints_what_a_dba_runs_for_an_app_user(
    postgres_url: str, postgres_schema: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """The printed DDL and grants, run by the administrator, are all the app user needs."""
    from zoom_s2s.cli import main

    user = f"app_{secrets.token_hex(4)}"
    password = secrets.token_urlsafe(12)
    assert main(["store", "sql", "--schema", postgres_schema, "--grant-to", user]) == 0
    script = capsys.readouterr().out
    asyncio.run(sql(postgres_url, f"CREATE ROLE {user} LOGIN PASSWORD '{password}'"))
    asyncio.run(sql(postgres_url, script))
    app_url = postgres_url.replace(
        postgres_url.split("//", 1)[1].split("@", 1)[0], f"{user}:{password}"
    )

    async def use() -> None:
        store = PostgresTokenStore.from_url(app_url, schema=postgres_schema)
        try:
            lease = (await store.acquire_lock(KEY, ttl=10)).lease
            assert lease is not None
            token = make_token()
            assert await store.write(lease, token)
            got = (await store.read(KEY)).token
            assert got is not None
            assert got.fingerprint == token.fingerprint
        finally:
            await store.aclose()

    asyncio.run(use())


# -- what a URL and a failed init show ------------------------------------------------

SSL_SECRET = "sslKey-Passphrase-42"


async def test_an_sslpassword_in_the_url_is_shown_nowhere(
    postgres_url: str, postgres_schema: str, capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """repr, name, errors, logs, ``store init`` output and the OTel store attribute."""
    from zoom_s2s import TokenManager
    from zoom_s2s.cli import main
    from zoom_s2s.testing import FakeZoom

    caplog.set_level(logging.DEBUG)
    url = f"{postgres_url}?sslmode=disable&sslpassword={SSL_SECRET}"
    broken = (
        f"postgresql://app:{PASSWORD}@127.0.0.1:{closed_port()}/zoom?sslpassword={SSL_SECRET}"
    )
    shown: list[str] = []
    for each in (url, broken):
        store = store_from_url(each, schema=postgres_schema, connect_timeout=1)
        shown += [repr(store), store.name]
        try:
            await store.init_schema()
            async with FakeZoom() as zoom, TokenManager(
                zoom.credentials, store=store, token_url=zoom.token_url
            ) as manager:
                otel = pytest.importorskip("zoom_s2s.otel")
                hook = otel.OpenTelemetryHook(manager)
                shown.append(str(hook._attributes))
        except StoreError as exc:
            shown.append(str(exc))
        finally:
            await store.aclose()
    assert any("refused" in text or "unreachable" in text for text in shown)
    assert await asyncio.to_thread(main, ["store", "init", url, "--schema", postgres_schema]) == 0
    assert await asyncio.to_thread(main, ["store", "init", broken]) != 0
    printed = capsys.readouterr()
    shown += [printed.out, printed.err, caplog.text]
    assert "sslpassword=***" in "".join(shown)
    for text in shown:
        assert SSL_SECRET not in text
        assert PASSWORD not in text


async def test_init_schema_says_what_failed_and_what_to_do(
    postgres_server: Any, postgres_url: str, postgres_schema: str
) -> None:
    """Every failure of ``init_schema()`` is a ZoomS2SError that names the cause."""
    base = postgres_url.rsplit("/", 1)[0]
    user = f"app_{secrets.token_hex(4)}"
    await sql(postgres_url, f"CREATE ROLE {user} LOGIN PASSWORD '{PASSWORD}'")
    await sql(postgres_url, "REVOKE CREATE ON SCHEMA public FROM PUBLIC")
    no_grants = postgres_url.replace(
        postgres_url.split("//", 1)[1].split("@", 1)[0], f"{user}:{PASSWORD}"
    )
    cases: list[tuple[str, type[Exception], str]] = [
        (postgres_url.replace(postgres_server.password, "wrong-" + PASSWORD),
         StoreUnavailableError, "refused the credentials"),
        (f"{base}/nosuchdb", StoreUnavailableError, "no such database"),
        (no_grants, StoreError, "CREATE on the database"),
        (f"{postgres_url}?sslmode=sometimes", ConfigurationError, "sslmode"),
        (f"postgresql://app:{PASSWORD}@127.0.0.1:{closed_port()}/db",
         StoreUnavailableError, "is unreachable while creating the schema"),
    ]
    for url, kind, match in cases:
        store = PostgresTokenStore.from_url(url, schema=postgres_schema, connect_timeout=2)
        try:
            with pytest.raises(kind, match=match) as raised:
                await store.init_schema()
        finally:
            await store.aclose()
        assert PASSWORD not in str(raised.value)
        assert postgres_server.password not in str(raised.value)


async def test_a_schema_in_the_url_is_the_stores_not_a_server_setting(
    postgres_url: str, postgres_schema: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from zoom_s2s.cli import main

    url = f"{postgres_url}?schema={postgres_schema}&sslmode=disable"
    store = store_from_url(url)
    try:
        assert isinstance(store, PostgresTokenStore)
        assert store.schema == postgres_schema
        assert "created schema" in await store.init_schema()
    finally:
        await store.aclose()
    assert await asyncio.to_thread(main, ["store", "init", url]) == 0
    assert f"schema {postgres_schema!r} was already at version 2" in capsys.readouterr().out
    rows = await sql(postgres_url, f"SELECT value FROM {postgres_schema}.meta")
    assert rows[0]["value"] == "2"
    with pytest.raises(ConfigurationError, match="give it once"):
        PostgresTokenStore.from_url(url, schema="another")


# -- the sealed hand-off ------------------------------------------------------------


async def _wait_for_write(
    store: TokenStore, waiter: TokenStore, lease: Any, token: Any
) -> tuple[Any, int]:
    """``waiter`` waits while ``store`` writes ``token`` under ``lease``: (what the
    wait returned, statements the waiter ran)."""
    counter = QueryCounter(cast(PostgresTokenStore, EncryptedEntries.unwrap(waiter)))
    try:
        task = asyncio.create_task(waiter.wait_for_change(KEY, timeout=10))
        await counter.reach(1)  # it looked at the lock (and listens)
        assert await store.write(lease, token, release=True)
        result = await asyncio.wait_for(task, 5)
        return result, counter.count
    finally:
        counter.restore()


async def test_a_waiter_gets_the_written_token_with_the_notification_not_a_read(
    store: PostgresTokenStore, postgres_url: str, postgres_schema: str
) -> None:
    """The holder's write seals the record into its NOTIFY; the waiter opens it and
    asks the database nothing more than its one look at the lock."""
    peer = PostgresTokenStore.from_url(postgres_url, schema=postgres_schema)
    try:
        await peer.init_schema()
        lease = (await store.acquire_lock(KEY, ttl=30)).lease
        assert lease is not None
        token = make_token(600)
        state, statements = await _wait_for_write(store, peer, lease, token)
        assert statements == 1
        assert state is not None
        assert state.token is not None
        assert state.failure is None
        read = (await peer.read(KEY)).token
        assert read is not None
        assert state.token.fingerprint == read.fingerprint == token.fingerprint
        assert state.token.access_token == token.access_token
        assert state.token.expires_ts == pytest.approx(read.expires_ts, abs=1)
    finally:
        await peer.aclose()


async def test_what_a_neighbour_hears_on_the_channel_is_sealed_and_it_cannot_forge_it(
    store: PostgresTokenStore, postgres_url: str, postgres_schema: str
) -> None:
    """Any role that can connect may LISTEN and NOTIFY on the channel: it hears no
    token in any encoding, and what it sends (garbage, a replay of an earlier
    lease's hand-off) only wakes a waiter, who then reads the row."""
    import asyncpg

    from zoom_s2s._redact import secret_forms

    neighbour = await asyncpg.connect(postgres_url)
    heard: list[str] = []
    await neighbour.add_listener(
        f"{postgres_schema}_changed", lambda _c, _p, _ch, payload: heard.append(payload)
    )
    peer = PostgresTokenStore.from_url(postgres_url, schema=postgres_schema)
    try:
        await peer.init_schema()
        first = (await store.acquire_lock(KEY, ttl=30)).lease
        assert first is not None
        token = make_token(600)
        assert (await _wait_for_write(store, peer, first, token))[0] is not None
        for _ in range(100):
            if heard:
                break
            await asyncio.sleep(0.01)
        assert heard
        assert heard[0].endswith(f":{KEY}")
        for form in secret_forms(token.access_token):
            assert form not in heard[0]

        second = (await store.acquire_lock(KEY, ttl=30)).lease
        assert second is not None
        for forged in (heard[0], f"{secrets.token_urlsafe(60)}:{KEY}", f"garbage!:{KEY}"):
            counter = QueryCounter(peer)
            try:
                waiter = asyncio.create_task(peer.wait_for_change(KEY, timeout=10))
                await counter.reach(1)
                await neighbour.execute(f"NOTIFY {postgres_schema}_changed, '{forged}'")
                assert await asyncio.wait_for(waiter, 5) is None  # woken, nothing believed
            finally:
                counter.restore()
        assert _fingerprint((await peer.read(KEY)).token) == token.fingerprint
        assert await store.release_lock(second)
    finally:
        await neighbour.close()
        await peer.aclose()


def _fingerprint(token: Any) -> Any:
    return None if token is None else token.fingerprint


async def test_a_record_too_long_to_seal_or_no_cryptography_still_wakes_the_waiter(
    store: PostgresTokenStore, postgres_url: str, postgres_schema: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """NOTIFY payloads end at 8000 bytes: a token with thousands of scopes goes as a
    bare wake-up, as does every token where cryptography is missing."""
    from zoom_s2s.stores.postgres import handoff

    peer = PostgresTokenStore.from_url(postgres_url, schema=postgres_schema)
    try:
        await peer.init_schema()
        lease = (await store.acquire_lock(KEY, ttl=30)).lease
        assert lease is not None
        many = tuple(f"scope:{n}:read:admin" for n in range(600))
        state, statements = await _wait_for_write(store, peer, lease, make_token(scopes=many))
        assert state is None
        assert statements == 1
        assert (await peer.read(KEY)).token is not None

        monkeypatch.setattr(handoff, "_aesgcm", None)
        monkeypatch.setattr(handoff, "_prepared", True)
        lease = (await store.acquire_lock(KEY, ttl=30)).lease
        assert lease is not None
        token = make_token()
        assert (await _wait_for_write(store, peer, lease, token))[0] is None
        assert _fingerprint((await peer.read(KEY)).token) == token.fingerprint
    finally:
        await peer.aclose()


async def test_an_encrypted_store_opens_the_hand_off_it_is_given(
    postgres_url: str, postgres_schema: str
) -> None:
    key = EncryptedTokenStore.generate_key()
    holder = EncryptedTokenStore(
        PostgresTokenStore.from_url(postgres_url, schema=postgres_schema), [key]
    )
    waiter = EncryptedTokenStore(
        PostgresTokenStore.from_url(postgres_url, schema=postgres_schema), [key]
    )
    try:
        lease = (await holder.acquire_lock(KEY, ttl=30)).lease
        assert lease is not None
        token = make_token()
        state, statements = await _wait_for_write(holder, waiter, lease, token)
        assert statements == 1
        assert state is not None
        assert state.token is not None
        assert state.token.access_token == token.access_token
    finally:
        await holder.aclose()
        await waiter.aclose()


async def test_a_torn_lock_row_makes_the_hand_off_a_plain_wake_up(
    store: PostgresTokenStore, postgres_url: str, postgres_schema: str
) -> None:
    """A lock row with an owner and no generation (written by hand, or a broken
    neighbour) is no key to open anything with: the waiter wakes and reads."""
    peer = PostgresTokenStore.from_url(postgres_url, schema=postgres_schema)
    try:
        await peer.init_schema()
        lease = (await store.acquire_lock(KEY, ttl=30)).lease
        assert lease is not None
        await sql(
            postgres_url,
            f"UPDATE {postgres_schema}.entries SET lock_generation = NULL WHERE key = $1",
            KEY,
        )
        token = make_token()
        state, statements = await _wait_for_write(store, peer, lease, token)
        assert state is None
        assert statements == 1
        assert _fingerprint((await peer.read(KEY)).token) == token.fingerprint
    finally:
        await peer.aclose()
