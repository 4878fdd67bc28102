"""Every store runs the public store contract (zoom_s2s.testing.contract)."""

from __future__ import annotations

import importlib.util
import os
import secrets
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from zoom_s2s.stores import FileTokenStore, MemoryTokenStore, RedisTokenStore, TokenStore
from zoom_s2s.testing.contract import StoreContract
from zoom_s2s.testing.redis_server import RedisServer


class TestMemoryTokenStore(StoreContract):
    async def make_store(self) -> TokenStore:
        return MemoryTokenStore()


class TestFileTokenStore(StoreContract):
    @pytest.fixture(autouse=True)
    def _directory(self, tmp_path: Path) -> None:
        self.directory = tmp_path / "tokens"

    async def make_store(self) -> TokenStore:
        return FileTokenStore(self.directory)

    async def make_peer(self, store: TokenStore) -> TokenStore:
        return FileTokenStore(self.directory)


@pytest.mark.redis
class TestRedisTokenStore(StoreContract):
    @pytest.fixture(autouse=True)
    def _url(self, redis_url: str) -> None:
        self.url = redis_url

    async def make_store(self) -> TokenStore:
        return RedisTokenStore.from_url(self.url)

    async def make_peer(self, store: TokenStore) -> TokenStore:
        return RedisTokenStore.from_url(self.url)


@pytest.mark.redis
class TestRedisTokenStoreOnCallersClient(StoreContract):
    """A client the caller owns, with ``decode_responses=True`` and another prefix."""

    @pytest_asyncio.fixture(autouse=True)
    async def _clients(self, redis_url: str) -> AsyncIterator[None]:
        import redis.asyncio

        self.clients: list[Any] = []
        self.new_client = lambda: redis.asyncio.Redis.from_url(redis_url, decode_responses=True)
        yield
        for client in self.clients:
            await client.aclose()

    async def make_store(self) -> TokenStore:
        client = self.new_client()
        self.clients.append(client)
        return RedisTokenStore(client, prefix="myapp:tokens")

    async def make_peer(self, store: TokenStore) -> TokenStore:
        return await self.make_store()


@pytest.fixture(scope="module")
def redis_cluster_url() -> Iterator[str]:
    """A one-node Redis Cluster (all slots on one node) for RedisCluster clients."""
    with RedisServer(cluster=True) as server:
        yield server.url


@pytest.mark.redis
class TestRedisTokenStoreOnCluster(StoreContract):
    """``RedisCluster`` client: scripts need the hash tag, pub/sub goes through ClusterPubSub."""

    @pytest.fixture(autouse=True)
    def _url(self, redis_cluster_url: str) -> None:
        self.url = redis_cluster_url
        self.prefix = f"test{secrets.token_hex(4)}"  # a fresh key space per test, no FLUSHALL

    async def make_store(self) -> TokenStore:
        return RedisTokenStore.from_url(self.url, cluster=True, prefix=self.prefix)

    async def make_peer(self, store: TokenStore) -> TokenStore:
        return await self.make_store()


@pytest.mark.skipif(
    importlib.util.find_spec("lupa") is None and not os.environ.get("CI"),
    reason="fakeredis runs Lua scripts only with lupa installed (pip install fakeredis[lua])",
)
class TestRedisTokenStoreOnFakeRedis(StoreContract):
    @pytest.fixture(autouse=True)
    def _server(self) -> None:
        import fakeredis

        self.server = fakeredis.FakeServer()
        self.fake = fakeredis

    async def make_store(self) -> TokenStore:
        client = self.fake.FakeAsyncRedis(server=self.server)
        return RedisTokenStore(client, owns_client=True)

    async def make_peer(self, store: TokenStore) -> TokenStore:
        return await self.make_store()
