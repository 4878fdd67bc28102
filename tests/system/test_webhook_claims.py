"""Webhook claims on real servers: the ClaimsContract on redis-server (two clients =
two processes, and a Redis Cluster) and on PostgreSQL (two stores), one round trip per
step, and the schema and grants that hold the claims."""

# The schema names in the SQL below are the fixture's own t_<hex>.
# ruff: noqa: S608

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
import pytest_asyncio

from tests.harness.redis_server import RedisServer
from zoom_s2s.stores import PostgresTokenStore, RedisTokenStore, TokenStore, claims_of
from zoom_s2s.stores.postgres import PostgresClaims, grants_sql, schema_sql
from zoom_s2s.stores.redis import RedisClaims
from zoom_s2s.testing.claims_contract import ClaimsContract


@pytest.mark.redis
class TestRedisClaims(ClaimsContract):
    @pytest.fixture(autouse=True)
    def _url(self, redis_url: str) -> None:
        self.url = redis_url

    async def make_store(self) -> TokenStore:
        return RedisTokenStore.from_url(self.url)

    async def make_peer(self, store: TokenStore) -> TokenStore:
        return RedisTokenStore.from_url(self.url)

    async def make_broken_store(self) -> TokenStore:
        return RedisTokenStore.from_url(
            "redis://127.0.0.1:1/0", socket_timeout=0.5, socket_connect_timeout=0.5
        )


@pytest.fixture(scope="module")
def cluster_url() -> Iterator[str]:
    with RedisServer(cluster=True) as server:
        yield server.url


@pytest.mark.redis
class TestRedisClusterClaims(ClaimsContract):
    """A claim and its order mark share the hash tag ``{webhooks}``: one slot."""

    @pytest.fixture(autouse=True)
    def _url(self, cluster_url: str) -> None:
        self.url = cluster_url

    async def make_store(self) -> TokenStore:
        return RedisTokenStore.from_url(self.url, cluster=True)

    async def make_peer(self, store: TokenStore) -> TokenStore:
        return RedisTokenStore.from_url(self.url, cluster=True)


@pytest.mark.redis
async def test_each_step_on_redis_is_one_script_call_on_one_slot(redis_url: str) -> None:
    import redis.asyncio as redis_asyncio

    store = RedisTokenStore.from_url(redis_url)
    claims = claims_of(store)
    assert isinstance(claims, RedisClaims)
    await claims.claim("r.warm", "me", lease=30, keep=60)  # loads the scripts
    await claims.finish("r.warm", "me", 60)
    raw: Any = redis_asyncio.Redis.from_url(redis_url)
    try:
        before = await raw.info("commandstats")
        await claims.claim("r.one", "me", lease=30, keep=60, order="o.obj", event_ts=5)
        await claims.finish("r.one", "me", 60)
        after = await raw.info("commandstats")
        keys = sorted(await raw.keys("*"))
    finally:
        await raw.aclose()
        await store.aclose()

    def calls(stats: dict[str, Any], name: str) -> int:
        return int(stats.get(f"cmdstat_{name}", {}).get("calls", 0))

    assert calls(after, "evalsha") - calls(before, "evalsha") == 2
    assert keys == [
        b"zoom_s2s:{webhooks}:claim:o.obj",
        b"zoom_s2s:{webhooks}:claim:r.one",
        b"zoom_s2s:{webhooks}:claim:r.warm",
    ]


@pytest_asyncio.fixture
async def postgres_store(
    postgres_url: str, postgres_schema: str
) -> AsyncIterator[PostgresTokenStore]:
    store = PostgresTokenStore.from_url(postgres_url, schema=postgres_schema)
    yield store
    await store.aclose()


@pytest.mark.postgres
class TestPostgresClaims(ClaimsContract):
    @pytest.fixture(autouse=True)
    def _database(self, postgres_url: str, postgres_schema: str) -> None:
        self.url, self.schema = postgres_url, postgres_schema

    async def make_store(self) -> TokenStore:
        return PostgresTokenStore.from_url(self.url, schema=self.schema)

    async def make_peer(self, store: TokenStore) -> TokenStore:
        return PostgresTokenStore.from_url(self.url, schema=self.schema)

    async def make_broken_store(self) -> TokenStore:
        return PostgresTokenStore.from_url(
            "postgresql://nobody@127.0.0.1:1/none", connect_timeout=0.5
        )


@pytest.mark.postgres
async def test_each_step_on_postgres_is_one_statement(
    postgres_store: PostgresTokenStore,
) -> None:
    claims = claims_of(postgres_store)
    assert isinstance(claims, PostgresClaims)
    await claims.claim("r.warm", "me", lease=30, keep=60)  # creates the pool and schema
    run = postgres_store._run
    sent: list[str] = []

    async def counted(method: str, query: str, *args: Any, **kwargs: Any) -> Any:
        sent.append(query)  # every statement the store sends
        return await run(method, query, *args, **kwargs)

    postgres_store._run = counted  # type: ignore[method-assign]
    try:
        await claims.claim("r.one", "me", lease=30, keep=60, order="o.obj", event_ts=5)
        await claims.finish("r.one", "me", 60)
    finally:
        del postgres_store._run
    assert len(sent) == 2


def test_the_schema_and_grants_name_the_claims_table() -> None:
    assert 'CREATE TABLE IF NOT EXISTS "zs".claims' in schema_sql("zs")
    assert 'ON "zs".claims TO "app"' in grants_sql("app", "zs")


@pytest.mark.postgres
async def test_an_application_user_with_the_documented_grants_can_claim(
    postgres_url: str, postgres_schema: str
) -> None:
    """The DBA runs schema_sql() and grants_sql(); every claim step (the sweep's DELETE
    included) works for an app user without CREATE."""
    import secrets

    from .test_postgres_store import sql

    user, password = f"app_{secrets.token_hex(4)}", secrets.token_urlsafe(12)
    await sql(postgres_url, schema_sql(postgres_schema))
    await sql(postgres_url, f"CREATE ROLE {user} LOGIN PASSWORD '{password}'")
    for statement in grants_sql(user, postgres_schema).strip().splitlines():
        await sql(postgres_url, statement)
    app_url = postgres_url.replace(
        postgres_url.split("//", 1)[1].split("@", 1)[0], f"{user}:{password}"
    )
    store = PostgresTokenStore.from_url(app_url, schema=postgres_schema)
    claims = claims_of(store)
    assert claims is not None
    try:
        await claims.claim("r.lapsed", "me", lease=0.001, keep=60)
        await sql(postgres_url, f"UPDATE {postgres_schema}.claims "
                                "SET expires = now() - interval '1 hour'")
        answer = await claims.claim("r.k", "me", lease=30, keep=60, order="o.k", event_ts=1)
        assert answer.outcome == "claimed"
        assert await claims.extend("r.k", "me", 30)
        assert await claims.finish("r.k", "me", 60)  # and sweeps r.lapsed
        assert (await claims.claim("r.x", "me", lease=30, keep=60)).outcome == "claimed"
        assert await claims.release("r.x", "me")
    finally:
        await store.aclose()
    left = await sql(postgres_url, f"SELECT key FROM {postgres_schema}.claims ORDER BY key")
    assert [row["key"] for row in left] == ["o.k", "r.k"]
