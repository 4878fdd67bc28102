"""Every store runs the public store contract (zoom_s2s.testing.contract).

Memory, file and Redis (a real redis-server, a caller's client, Redis Cluster,
fakeredis), each also wrapped in EncryptedTokenStore. Where a store keeps
failure records as bytes, the contract plants hostile ones; where it can be
pointed at a backend that fails, it checks the errors are StoreErrors that
hide the password.
"""

from __future__ import annotations

import importlib.util
import json
import os
import secrets
import socket
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any, ClassVar, cast

import pytest
import pytest_asyncio

from tests.harness.redis_server import RedisServer
from zoom_s2s.stores import (
    EncryptedTokenStore,
    FileTokenStore,
    MemoryTokenStore,
    RedisTokenStore,
    TokenStore,
)
from zoom_s2s.testing.contract import StoreContract

PASSWORD = "hunter2-Contract"
HAS_CRYPTOGRAPHY = importlib.util.find_spec("cryptography") is not None
needs_cryptography = pytest.mark.skipif(not HAS_CRYPTOGRAPHY, reason="needs the encryption extra")


def closed_port() -> int:
    """A loopback port nothing listens on."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class Encrypted:
    """Mixin: wrap whatever the store class makes in an EncryptedTokenStore."""

    fernet_key: ClassVar[str] = ""

    def encrypt(self, store: TokenStore) -> TokenStore:
        if not type(self).fernet_key:
            type(self).fernet_key = EncryptedTokenStore.generate_key()
        return EncryptedTokenStore(store, [type(self).fernet_key])

    @staticmethod
    def unwrap(store: TokenStore) -> TokenStore:
        return store.inner if isinstance(store, EncryptedTokenStore) else store


# -- memory ---------------------------------------------------------------------------


class InProcess(StoreContract):
    async def plant_failure(
        self, store: TokenStore, key: str, raw: str, *, keep_for: float
    ) -> None:
        pytest.skip(
            "MemoryTokenStore keeps FailureRecord objects inside this process: no other "
            "process can write it, there is no serialized record to tamper with"
        )

    async def make_broken_store(self) -> TokenStore | None:
        pytest.skip("MemoryTokenStore has no backend that can fail")


class TestMemoryTokenStore(InProcess):
    async def make_store(self) -> TokenStore:
        return MemoryTokenStore()


@needs_cryptography
class TestEncryptedMemoryTokenStore(Encrypted, InProcess):
    async def make_store(self) -> TokenStore:
        return self.encrypt(MemoryTokenStore())


# -- file -----------------------------------------------------------------------------


class TestFileTokenStore(StoreContract):
    @pytest.fixture(autouse=True)
    def _directory(self, tmp_path: Path) -> None:
        self.directory = tmp_path / "tokens"
        self.not_a_directory = tmp_path / "a-file"

    async def make_store(self) -> TokenStore:
        return FileTokenStore(self.directory)

    async def make_peer(self, store: TokenStore) -> TokenStore:
        return FileTokenStore(self.directory)

    async def make_broken_store(self) -> TokenStore:
        self.not_a_directory.write_text("in the way")
        return FileTokenStore(self.not_a_directory / "tokens")

    async def plant_failure(
        self, store: TokenStore, key: str, raw: str, *, keep_for: float
    ) -> None:
        await store.read(key)  # the store creates its private directory
        record = {"v": 1, "written_at": time.time(), "keep_for": keep_for, "record": raw}
        path = self.directory / f"{key}.failure"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8", errors="surrogateescape") as file:
            json.dump(record, file)


@needs_cryptography
class TestEncryptedFileTokenStore(Encrypted, TestFileTokenStore):
    async def make_store(self) -> TokenStore:
        return self.encrypt(await super().make_store())

    async def make_peer(self, store: TokenStore) -> TokenStore:
        return self.encrypt(await super().make_peer(store))

    async def make_broken_store(self) -> TokenStore:
        return self.encrypt(await super().make_broken_store())


# -- Redis ----------------------------------------------------------------------------


class RedisContract(StoreContract):
    """Plants failure records with a raw client, where the store keeps them."""

    store_secrets = (PASSWORD,)
    raw_url = ""

    async def make_broken_store(self) -> TokenStore:
        return RedisTokenStore.from_url(
            f"redis://app:{PASSWORD}@127.0.0.1:{closed_port()}/0", socket_connect_timeout=1
        )

    async def plant_failure(
        self, store: TokenStore, key: str, raw: str, *, keep_for: float
    ) -> None:
        import redis.asyncio

        redis_store = cast(RedisTokenStore, Encrypted.unwrap(store))
        client = redis.asyncio.Redis.from_url(self.raw_url)
        try:
            name = redis_store._keys(key).failure
            await client.set(name, raw.encode("utf-8", "surrogateescape"), px=int(keep_for * 1000))
        finally:
            await client.aclose()


class PlantThroughStoreClient(StoreContract):
    """Plants failure records through the client the store itself uses (a client the
    caller owns, a cluster client, fakeredis), where the store keeps them."""

    async def plant_failure(
        self, store: TokenStore, key: str, raw: str, *, keep_for: float
    ) -> None:
        redis_store = cast(RedisTokenStore, Encrypted.unwrap(store))
        client: Any = redis_store._client
        name = redis_store._keys(key).failure
        await client.set(name, raw.encode("utf-8", "surrogateescape"), px=int(keep_for * 1000))


@pytest.mark.redis
class TestRedisTokenStore(RedisContract):
    @pytest.fixture(autouse=True)
    def _url(self, redis_url: str) -> None:
        self.url = self.raw_url = redis_url

    async def make_store(self) -> TokenStore:
        return RedisTokenStore.from_url(self.url)

    async def make_peer(self, store: TokenStore) -> TokenStore:
        return RedisTokenStore.from_url(self.url)


@needs_cryptography
@pytest.mark.redis
class TestEncryptedRedisTokenStore(Encrypted, TestRedisTokenStore):
    async def make_store(self) -> TokenStore:
        return self.encrypt(await super().make_store())

    async def make_peer(self, store: TokenStore) -> TokenStore:
        return self.encrypt(await super().make_peer(store))

    async def make_broken_store(self) -> TokenStore:
        return self.encrypt(await super().make_broken_store())


@pytest.mark.redis
class TestRedisTokenStoreOnCallersClient(PlantThroughStoreClient):
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

    async def make_broken_store(self) -> TokenStore:
        import redis.asyncio

        url = f"redis://app:{PASSWORD}@127.0.0.1:{closed_port()}/0"
        client = redis.asyncio.Redis.from_url(url, decode_responses=True, socket_connect_timeout=1)
        self.clients.append(client)
        return RedisTokenStore(client, prefix="myapp:tokens")


@pytest.fixture(scope="module")
def redis_cluster_url() -> Iterator[str]:
    """A one-node Redis Cluster (all slots on one node) for RedisCluster clients."""
    with RedisServer(cluster=True) as server:
        yield server.url


@pytest.mark.redis
class TestRedisTokenStoreOnCluster(PlantThroughStoreClient):
    """``RedisCluster`` client: scripts need the hash tag, pub/sub goes through ClusterPubSub."""

    @pytest.fixture(autouse=True)
    def _url(self, redis_cluster_url: str) -> None:
        self.url = redis_cluster_url
        self.prefix = f"test{secrets.token_hex(4)}"  # a fresh key space per test, no FLUSHALL

    async def make_store(self) -> TokenStore:
        return RedisTokenStore.from_url(self.url, cluster=True, prefix=self.prefix)

    async def make_peer(self, store: TokenStore) -> TokenStore:
        return await self.make_store()

    async def make_broken_store(self) -> TokenStore:
        # A cluster client whose only known node is gone.
        return RedisTokenStore.from_url(
            f"redis://127.0.0.1:{closed_port()}/0", cluster=True, socket_connect_timeout=1,
            socket_timeout=1,
        )


@pytest.mark.skipif(
    importlib.util.find_spec("lupa") is None and not os.environ.get("CI"),
    reason="fakeredis runs Lua scripts only with lupa installed (pip install fakeredis[lua])",
)
class TestRedisTokenStoreOnFakeRedis(PlantThroughStoreClient):
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

    async def make_broken_store(self) -> TokenStore:
        down = self.fake.FakeServer()
        down.connected = False  # every command raises ConnectionError, as a dead server
        return RedisTokenStore(self.fake.FakeAsyncRedis(server=down), owns_client=True)
