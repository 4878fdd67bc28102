"""RedisTokenStore on a real 3-master Redis Cluster and on a Sentinel-managed master.

The servers are started once per module (tests.harness.redis_cluster) and
stopped whatever happens; tests isolate themselves with a fresh key prefix.
"""

from __future__ import annotations

import asyncio
import math
import secrets
import socket
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
import pytest_asyncio

from tests.harness.redis_cluster import RedisClusterServer, SentinelServer
from tests.harness.redis_server import RedisServer
from zoom_s2s import TokenManager
from zoom_s2s.errors import StoreError
from zoom_s2s.models import fingerprint
from zoom_s2s.stores import FailureRecord, LockAttempt, LockLease, RedisTokenStore, TokenStore
from zoom_s2s.stores.redis import acl_rules
from zoom_s2s.testing import FakeZoom
from zoom_s2s.testing.contract import StoreContract, make_token

from ..support import FAST_RETRY
from .fleet_worker import base_config, fleet

pytestmark = pytest.mark.redis


@pytest.fixture(scope="module")
def cluster() -> Iterator[RedisClusterServer]:
    """Three masters on loopback, the 16384 slots split between them."""
    with RedisClusterServer(masters=3) as servers:
        yield servers


def _prefix() -> str:
    return f"t{secrets.token_hex(4)}"


@pytest_asyncio.fixture
async def raw(cluster: RedisClusterServer) -> AsyncIterator[Any]:
    """A plain cluster client, to look at keys and slots behind the store's back."""
    from redis.asyncio.cluster import RedisCluster

    client = RedisCluster.from_url(cluster.url, decode_responses=True)
    await client.initialize()  # learn the nodes now: get_primaries() needs them
    try:
        yield client
    finally:
        await client.aclose()


async def _keys_by_node(raw: Any, pattern: str) -> dict[str, list[str]]:
    """Every key matching ``pattern``, by the node ("host:port") that holds it."""
    found: dict[str, list[str]] = {}
    for node in raw.get_primaries():
        keys = await raw.keys(pattern, target_nodes=node)
        if keys:
            found[node.name] = sorted(keys)
    return found


async def _slot_owner(raw: Any, slot: int) -> str:
    """The "host:port" of the master serving ``slot``, as the cluster reports it."""
    for (start, end), serving in (await raw.execute_command("CLUSTER SLOTS")).items():
        if start <= slot <= end:
            host, port = serving["primary"]
            return f"{host}:{port}"
    raise AssertionError(f"no node serves slot {slot}")


async def _cluster_store(url: str, prefix: str) -> RedisTokenStore:
    """A store on a caller's ``RedisCluster`` client that already knows the cluster.

    ``initialize()`` first: redis-py's async ``RedisCluster`` (8.1) can fail
    concurrent first commands on a multi-master cluster; see
    test_concurrent_first_commands_on_a_fresh_cluster_store.
    """
    from redis.asyncio.cluster import RedisCluster

    client = RedisCluster.from_url(url)
    await client.initialize()
    return RedisTokenStore(client, prefix=prefix, owns_client=True)


class TestRedisTokenStoreOnThreeMasterCluster(StoreContract):
    """The public store contract on a real multi-master cluster."""

    @pytest.fixture(autouse=True)
    def _cluster(self, cluster: RedisClusterServer) -> None:
        self.url, self.peer_url = cluster.urls[0], cluster.urls[1]
        self.prefix = _prefix()  # a fresh key space per test, no FLUSHALL

    async def make_store(self) -> TokenStore:
        return await _cluster_store(self.url, self.prefix)

    async def make_peer(self, store: TokenStore) -> TokenStore:
        # Another process's client, entering the cluster through another node.
        return await _cluster_store(self.peer_url, self.prefix)

    async def make_broken_store(self) -> TokenStore:
        # A cluster client whose only known node is gone.
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        return RedisTokenStore.from_url(
            f"redis://127.0.0.1:{port}/0", cluster=True, socket_connect_timeout=1,
            socket_timeout=1,
        )

    async def plant_failure(self, store: TokenStore, key: str, raw: str, *, keep_for: float) -> None:
        assert isinstance(store, RedisTokenStore)
        client: Any = store._client
        await client.set(f"{self.prefix}:{{{key}}}:failure", raw, px=math.ceil(keep_for * 1000))


async def test_concurrent_first_commands_on_a_fresh_cluster_store(
    cluster: RedisClusterServer,
) -> None:
    """A store made by ``from_url(cluster=True)`` works when first used by many coroutines.

    10 coroutines try the free lock of a fresh store at once: exactly one must
    get it, and none may fail. Tried on 40 fresh stores.
    """
    lost = "no coroutine got the free lock"
    failures: list[str] = []
    for _ in range(40):
        store = RedisTokenStore.from_url(cluster.url, cluster=True, prefix=_prefix())
        try:
            attempts = await asyncio.gather(
                *(store.acquire_lock("fresh", ttl=10) for _ in range(10)), return_exceptions=True
            )
            leases = [a.lease if isinstance(a, LockAttempt) else a for a in attempts]
        finally:
            await store.aclose()
        errors = [lease for lease in leases if isinstance(lease, BaseException)]
        winners = [lease for lease in leases if isinstance(lease, LockLease)]
        assert len(winners) <= 1, "two coroutines hold one lock"
        if errors:
            failures.append(f"{type(errors[0]).__name__}: {errors[0]}")
        elif not winners:
            failures.append(lost)
    # redis-py's async RedisCluster (8.1) races when a fresh client's first
    # commands run concurrently on a multi-master cluster (an AttributeError, or
    # a lost SET NX reply whose retry answers "taken"); the store initialises
    # the client once before its first command and recognises its own lock.
    assert not failures, failures


async def test_every_key_of_one_credential_is_in_one_slot(
    cluster: RedisClusterServer, raw: Any
) -> None:
    prefix = _prefix()
    store = RedisTokenStore.from_url(cluster.url, cluster=True, prefix=prefix)
    try:
        key = "one-credential"
        lease = (await store.acquire_lock(key, ttl=30)).lease
        assert lease is not None
        assert await store.write(lease, make_token())
        await store.write_failure(  # written after the token: it stays, as a key
            lease, FailureRecord(1, 5.0, "TokenEndpointError", "test"), keep_for=30
        )
        await store.wait_for_change(key, timeout=0.05)  # opens the pub/sub side too

        by_node = await _keys_by_node(raw, f"{prefix}:*")
        names = [name for keys in by_node.values() for name in keys]
        assert len(names) == 5, names  # token, fence, generation counter, lock, failure
        assert len(by_node) == 1, by_node  # ... all on one master
        slots = {await raw.execute_command("CLUSTER KEYSLOT", name) for name in names}
        assert len(slots) == 1, slots  # ... in one slot
        assert await _slot_owner(raw, slots.pop()) == next(iter(by_node))
        assert await store.release_lock(lease)
    finally:
        await store.aclose()


async def test_credentials_on_different_masters_each_get_their_own_token(
    cluster: RedisClusterServer, raw: Any
) -> None:
    prefix = _prefix()
    store = RedisTokenStore.from_url(cluster.url, cluster=True, prefix=prefix)
    apps: list[tuple[FakeZoom, TokenManager]] = []
    owners: set[str] = set()
    try:
        # Two apps (credentials) whose store keys hash to slots on different masters.
        for attempt in range(30):
            zoom = FakeZoom(client_id=f"app-{attempt}")
            await zoom.start()
            manager = TokenManager(
                zoom.credentials, store=store, token_url=zoom.token_url, retry=FAST_RETRY
            )
            apps.append((zoom, manager))
            slot = await raw.execute_command("CLUSTER KEYSLOT", f"{{{manager.store_key}}}")
            owner = await _slot_owner(raw, slot)
            if owner not in owners and owners:
                break
            owners.add(owner)
        else:
            pytest.fail("found no two credentials on different masters")
        (zoom_a, first), (zoom_b, second) = apps[0], apps[-1]

        token_a = await first.get_token()
        token_b = await second.get_token()
        assert token_a.access_token == zoom_a.issued_tokens[0]
        assert token_b.access_token == zoom_b.issued_tokens[0]
        for manager, token in ((first, token_a), (second, token_b)):
            stored = (await store.read(manager.store_key)).token
            assert stored is not None
            assert stored.fingerprint == token.fingerprint

        by_node = await _keys_by_node(raw, f"{prefix}:*")
        assert len(by_node) == 2, by_node  # each credential's keys on its own master

        assert await first.invalidate(token_a)
        assert ((await store.read(first.store_key)).token) is None
        stored_b = (await store.read(second.store_key)).token
        assert stored_b is not None  # the other credential's token is untouched
        assert stored_b.fingerprint == token_b.fingerprint
    finally:
        for zoom, manager in apps:
            await manager.aclose()
            await zoom.close()
        await store.aclose()


@pytest.mark.slow
def test_fleet_of_3_processes_x_20_coroutines_fetches_once_on_the_cluster(
    cluster: RedisClusterServer,
) -> None:
    spec = {"kind": "redis", "url": cluster.url, "cluster": True, "prefix": _prefix()}
    with FakeZoom(latency=0.2).running_in_thread() as zoom:
        config = base_config(zoom, spec, coroutines=20, steps=["gate", "get"])
        with fleet(config) as processes:
            children = [processes.spawn(f"p{i}") for i in range(3)]
            for child in children:
                child.expect("ready")
                child.expect("gate")
            processes.go(children)
            got = {fp for child in children for fp in child.expect("got")["fingerprints"]}
            for child in children:
                child.finish()
        assert zoom.token_requests == 1
        assert got == {fingerprint(zoom.issued_tokens[0])}


@pytest.fixture(scope="module")
def sentinel() -> Iterator[SentinelServer]:
    """A plain master and one sentinel monitoring it as "mymaster" (quorum 1)."""
    with RedisServer() as master, SentinelServer(master.port) as watcher:
        yield watcher


@pytest_asyncio.fixture
async def sentinel_client(sentinel: SentinelServer) -> AsyncIterator[Any]:
    """A master client from ``Sentinel(...).master_for("mymaster")``."""
    from redis.asyncio.sentinel import Sentinel

    finder = Sentinel([sentinel.address], socket_timeout=5)
    client = finder.master_for(sentinel.master_name, socket_timeout=5)
    try:
        yield client
    finally:
        await client.aclose()
        for sentinel_connection in finder.sentinels:
            await sentinel_connection.aclose()


async def test_sentinel_managed_client_round_trips_a_token(sentinel_client: Any) -> None:
    store = RedisTokenStore(sentinel_client, prefix=_prefix())
    try:
        token = make_token()
        lease = (await store.acquire_lock("sentinel-key", ttl=30)).lease
        assert lease is not None
        assert await store.write(lease, token)
        assert await store.release_lock(lease)
        stored = (await store.read("sentinel-key")).token
        assert stored is not None
        assert stored.fingerprint == token.fingerprint
        assert await store.delete("sentinel-key", fingerprint=token.fingerprint)
        assert (await store.read("sentinel-key")).token is None
    finally:
        await store.aclose()


async def test_token_manager_gets_a_token_through_a_sentinel_managed_client(
    sentinel_client: Any,
) -> None:
    store = RedisTokenStore(sentinel_client, prefix=_prefix())
    try:
        async with FakeZoom() as zoom, TokenManager(
            zoom.credentials, store=store, token_url=zoom.token_url, retry=FAST_RETRY
        ) as manager:
            token = await manager.get_token()
            assert token.access_token == zoom.issued_tokens[0]
            stored = (await store.read(manager.store_key)).token
            assert stored is not None
            assert stored.fingerprint == token.fingerprint
            assert zoom.token_requests == 1
    finally:
        await store.aclose()


async def test_a_sentinel_managed_store_is_named_after_its_service(sentinel_client: Any) -> None:
    store = RedisTokenStore(sentinel_client, prefix=_prefix())
    assert store.name.startswith("redis-sentinel://")
    assert "localhost:6379" not in store.name
    await store.aclose()


@pytest.mark.parametrize("missing", ["", "+command", "+cluster|slots"])
async def test_cluster_acl_hint_is_exactly_what_a_cluster_client_needs(missing: str) -> None:
    """``acl_rules(cluster=True)`` suffices on a cluster; without a part, errors name them all."""
    import redis.asyncio

    full = acl_rules(cluster=True)
    rules = full.replace(f" {missing}", "") if missing else full
    with RedisServer(cluster=True) as server:
        admin = redis.asyncio.Redis(port=server.port)
        await admin.execute_command(
            "ACL", "SETUSER", "zoom", "on", ">pw", "resetkeys", "resetchannels", "-@all",
            *rules.split(),
        )
        await admin.aclose()
        store = RedisTokenStore.from_url(f"redis://zoom:pw@127.0.0.1:{server.port}/0", cluster=True)
        try:
            if missing:
                with pytest.raises(StoreError) as info:
                    await store.acquire_lock("acl", ttl=10)
                assert full in str(info.value)
                assert "pw" not in str(info.value).replace(full, "")
                return
            lease = (await store.acquire_lock("acl", ttl=10)).lease
            assert lease is not None
            token = make_token()
            assert await store.write(lease, token)
            assert _fingerprint((await store.read("acl")).token) == token.fingerprint
            await store.wait_for_change("acl", timeout=0.2)
            assert await store.release_lock(lease)
            assert await store.delete("acl", fingerprint=token.fingerprint)
        finally:
            await store.aclose()


def _fingerprint(token: Any) -> str | None:
    return None if token is None else token.fingerprint
