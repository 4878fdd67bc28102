"""Many accounts across real processes: TokenManagerPool on Redis, SyncTokenManagerPool after fork.

Counts are the FakeZoom's (served from this process's thread), per app;
Redis connections are counted with ``CLIENT LIST`` while every pool is open.
"""

from __future__ import annotations

import multiprocessing
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from tests.harness.fleet import Fleet, WorkerContext
from zoom_s2s import Credentials, TokenManagerPool
from zoom_s2s.stores.url import SHARED_MAX_CONNECTIONS
from zoom_s2s.sync import SyncTokenManagerPool
from zoom_s2s.testing import FakeZoom

from ..support import FAST_RETRY

pytestmark = pytest.mark.slow


async def fetch_every_account(worker: WorkerContext) -> dict[str, Any]:
    """The workload: a pool, every account's token at once, then wait while the parent looks."""
    import asyncio

    apps = [Credentials(*triple) for triple in worker.options["apps"]]
    async with TokenManagerPool(
        store=worker.store,
        store_options={"client_name": worker.name},  # CLIENT LIST tells processes apart
        token_url=worker.token_url,
        retry=FAST_RETRY,
    ) as pool:
        await worker.gate()
        tokens = await asyncio.gather(*(pool.manager(app).get_token() for app in apps))
        await worker.gate()  # the parent counts connections now
        return {
            "fingerprints": [token.fingerprint for token in tokens],
            "fetches": sum(pool.manager(app).stats().fetches for app in apps),
            "accounts": len(pool),
        }


def redis_connections(redis_url: str) -> list[dict[str, Any]]:
    import redis

    with redis.Redis.from_url(redis_url) as client:
        return list(client.client_list())


@pytest.mark.redis
@pytest.mark.parametrize("accounts", [20, 200])
def test_accounts_x_3_processes_on_redis_fetch_once_each_on_a_few_connections(
    zoom: FakeZoom, redis_url: str, accounts: int
) -> None:
    zoom.latency = 0.02  # fetches stay in flight while the other processes pile up
    apps = [zoom.add_app() for _ in range(accounts)]
    triples = [[a.account.account_id, a.client_id, a.client_secret] for a in apps]
    with Fleet(token_url=zoom.token_url, store=redis_url, timeout=60) as fleet:
        workers = [fleet.spawn(name=f"pool-{i}") for i in range(3)]
        for worker in workers:
            worker.submit(fetch_every_account, {"apps": triples})
        fleet.start(workers)  # all at once
        for worker in workers:
            worker.expect("gate")  # every token is in; each pool still open
        connections = redis_connections(redis_url)
        fleet.go(workers)
        results = fleet.results(workers)

    assert [app.tokens_issued for app in apps] == [1] * accounts
    assert sum(result["fetches"] for result in results) == accounts
    assert [result["accounts"] for result in results] == [accounts] * 3
    by_worker = [result["fingerprints"] for result in results]
    assert by_worker[0] == by_worker[1] == by_worker[2]  # one token per account, everywhere
    assert len(set(by_worker[0])) == accounts

    per_process = Counter(c["name"] for c in connections if c["name"].startswith("pool-"))
    subscribers = Counter(
        c["name"] for c in connections if c["name"].startswith("pool-") and int(c["sub"]) > 0
    )
    # However many accounts: at most the pool's bound per process, one of them pub/sub.
    assert set(per_process) == {"pool-0", "pool-1", "pool-2"}
    assert max(per_process.values()) <= SHARED_MAX_CONNECTIONS, per_process
    assert max(subscribers.values(), default=0) <= 1, subscribers


def _child(accounts: SyncTokenManagerPool, apps: list[Credentials], results: Any) -> None:
    fingerprints = [accounts.get_token(app).fingerprint for app in apps]
    users = [accounts.client(app).get_user("me").account_id for app in apps]
    results.put((fingerprints, users))


@pytest.mark.filterwarnings("ignore:.*fork.*:DeprecationWarning")
def test_sync_pool_used_before_fork_serves_forked_children_with_one_fetch_per_app(
    zoom: FakeZoom, tmp_path: Path
) -> None:
    if "fork" not in multiprocessing.get_all_start_methods():
        pytest.skip("no fork() here")
    apps = [zoom.add_app() for _ in range(4)]
    creds = [app.credentials for app in apps]
    with SyncTokenManagerPool(
        store=(tmp_path / "tokens").as_uri(),
        token_url=zoom.token_url,
        base_url=zoom.api_base_url,
        retry=FAST_RETRY,
    ) as accounts:
        parent = [accounts.get_token(cred).fingerprint for cred in creds[:2]]
        context = multiprocessing.get_context("fork")
        results = context.Queue()
        children = [context.Process(target=_child, args=(accounts, creds, results)) for _ in range(2)]
        for child in children:
            child.start()
        got = [results.get(timeout=30) for _ in children]
        for child in children:
            child.join(10)
            assert child.exitcode == 0
        assert [accounts.get_token(cred).fingerprint for cred in creds[:2]] == parent
    assert [app.tokens_issued for app in apps] == [1] * 4
    accounts_of = [app.account.account_id for app in apps]
    for fingerprints, users in got:
        assert fingerprints[:2] == parent
        assert users == accounts_of
    assert got[0][0] == got[1][0]
