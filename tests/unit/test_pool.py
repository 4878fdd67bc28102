"""TokenManagerPool and SyncTokenManagerPool: many apps on one session and one store.

Against one FakeZoom serving many accounts and apps over loopback; every count
is the fake's, per app. Redis and processes: tests/system/test_pool_fleet.py.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
import pytest_asyncio

from zoom_s2s import Credentials, MemoryTokenStore, TokenManagerPool
from zoom_s2s.errors import ConfigurationError, InvalidCredentialsError, UsageError
from zoom_s2s.sync import SyncTokenManagerPool, SyncZoomClient
from zoom_s2s.testing import FakeZoom
from zoom_s2s.testing._fake_state import FakeApp

from ..support import FAST_RETRY


def add_apps(fake: FakeZoom, count: int) -> list[FakeApp]:
    return [fake.add_app() for _ in range(count)]


@pytest_asyncio.fixture
async def fake() -> AsyncIterator[FakeZoom]:
    async with FakeZoom() as zoom:
        yield zoom


def make_pool(fake: FakeZoom, **kwargs: Any) -> TokenManagerPool:
    kwargs.setdefault("retry", FAST_RETRY)
    return TokenManagerPool(token_url=fake.token_url, base_url=fake.api_base_url, **kwargs)


async def test_each_app_gets_its_manager_once_and_the_same_one_after(fake: FakeZoom) -> None:
    apps = add_apps(fake, 3)
    async with make_pool(fake) as pool:
        managers = [pool.manager(app.credentials) for app in apps]
        assert len({id(manager) for manager in managers}) == 3
        # Equal credentials (a new object) find the same manager.
        again = Credentials(*(getattr(apps[0].credentials, f) for f in ("account_id",
                                                                        "client_id",
                                                                        "client_secret")))
        assert pool.manager(again) is managers[0]
        assert len(pool) == 3
        assert apps[1].credentials in pool
        assert set(pool) == {app.credentials for app in apps}
        for manager, app in zip(managers, apps, strict=True):
            assert manager.credentials == app.credentials


async def test_many_apps_fetch_once_each_on_one_session_and_one_store(fake: FakeZoom) -> None:
    apps = add_apps(fake, 40)
    async with make_pool(fake) as pool:
        # Ten concurrent callers per app, all at once: one fetch per app.
        got = await asyncio.gather(
            *(pool.manager(app.credentials).get_token() for app in apps for _ in range(10))
        )
        assert len({token.fingerprint for token in got}) == 40
        managers = [pool.manager(app.credentials) for app in apps]
        sessions = {id(manager._session.get()) for manager in managers}
        assert len(sessions) == 1
        assert {id(manager.store) for manager in managers} == {id(pool.store)}
    assert [app.tokens_issued for app in apps] == [1] * 40


async def test_each_token_acts_in_its_own_account(fake: FakeZoom) -> None:
    apps = add_apps(fake, 3)
    async with make_pool(fake) as pool:
        for app in apps:
            client = pool.client(app.credentials)
            assert pool.client(app.credentials) is client
            assert client.tokens is pool.manager(app.credentials)
            user = await client.get_user("me")
            assert user.account_id == app.account.account_id


async def test_each_account_is_paced_on_its_own_budget(fake: FakeZoom) -> None:
    from zoom_s2s import RateLimits

    first, second = add_apps(fake, 2)
    store = MemoryTokenStore()
    limits = RateLimits.for_plan("pro")
    async with (
        make_pool(fake, store=store, client_options={"rate_limits": limits}) as pool,
        make_pool(fake, store=store, client_options={"rate_limits": limits}) as other,
    ):
        one, two = pool.client(first.credentials), pool.client(second.credentials)
        assert one.rate_limiter is not None
        assert two.rate_limiter is not None
        assert one.rate_limiter.scope != two.rate_limiter.scope  # a budget per account
        # ... shared by every pool (process) on the store for the same account.
        elsewhere = other.client(first.credentials).rate_limiter
        assert elsewhere is not None
        assert elsewhere.scope == one.rate_limiter.scope
        assert (await one.get_user("me")).account_id == first.account.account_id
        assert (await two.get_user("me")).account_id == second.account.account_id


async def test_idle_apps_run_nothing(zoom: FakeZoom) -> None:
    apps = add_apps(zoom, 50)  # the fake serves from its own thread: its tasks are not counted
    async with make_pool(zoom) as pool:
        before = len(asyncio.all_tasks())
        await asyncio.gather(*(pool.manager(app.credentials).get_token() for app in apps))
        await asyncio.sleep(0)
        # No task or timer per account once its token is in: nothing runs for idle ones.
        assert len(asyncio.all_tasks()) == before
        loop: Any = asyncio.get_running_loop()
        assert len(loop._scheduled) < 50


async def test_a_rotated_secret_replaces_the_manager_and_its_failure_stays_behind(
    fake: FakeZoom,
) -> None:
    app = fake.add_app()
    old = app.credentials
    store = MemoryTokenStore()
    async with make_pool(fake, store=store) as pool:
        first = pool.manager(old)
        await first.get_token()
        # The customer rotates the secret at Zoom; the old one now fails (and is
        # remembered: in this manager and, for the fleet, in the store).
        app.client_secret = "rotated-secret-0123456789"
        await first.invalidate(await first.get_token())
        with pytest.raises(InvalidCredentialsError):
            await first.get_token()
        with pytest.raises(InvalidCredentialsError, match="remembered"):
            await first.get_token()
        old_client = pool.client(old)

        new = app.credentials
        replaced = pool.manager(new)
        assert replaced is not first
        assert old not in pool
        assert new in pool
        assert len(pool) == 1
        token = await replaced.get_token()  # at once: no remembered failure
        assert replaced.stats().failures == 0
        assert pool.client(new) is not old_client
        assert pool.client(new).tokens is replaced
        assert (await pool.client(new).get_user("me")).account_id == app.account.account_id
        assert token.fingerprint == replaced.stats().token_fingerprint
        # The old manager still works for whoever holds it (and fails as Zoom says).
        with pytest.raises(InvalidCredentialsError):
            await first.get_token()
    with pytest.raises(UsageError):
        await first.get_token()  # closed with the pool
    assert app.tokens_issued == 2


async def test_max_idle_forgets_unused_apps_whose_tokens_stay_in_the_store(
    fake: FakeZoom,
) -> None:
    idle, busy, direct = add_apps(fake, 3)
    async with make_pool(fake, max_idle=0.2) as pool:
        held = pool.manager(direct.credentials)
        for app in (idle, busy, direct):
            await pool.manager(app.credentials).get_token()
        assert pool.evict_idle() == 0
        await asyncio.sleep(0.3)
        await held.get_token()  # used directly, not through the pool
        pool.manager(busy.credentials)  # used through the pool; its sweep runs here too
        assert len(pool) == 2
        assert idle.credentials not in pool
        assert busy.credentials in pool
        assert direct.credentials in pool
        assert pool.manager(direct.credentials) is held
        # Back again: a new manager adopts the token from the store, no new fetch.
        again = pool.manager(idle.credentials)
        await again.get_token()
        assert again.stats().adoptions == 1
        assert again.stats().fetches == 0
    assert [app.tokens_issued for app in (idle, busy, direct)] == [1, 1, 1]


async def test_max_managers_forgets_the_least_recently_used_app(fake: FakeZoom) -> None:
    first, second, third, fourth = add_apps(fake, 4)
    async with make_pool(fake, max_managers=2) as pool:
        held = pool.manager(first.credentials)
        pool.manager(second.credentials)
        pool.manager(first.credentials)  # now the most recently used
        pool.manager(third.credentials)  # one too many: the least recently used goes
        assert set(pool) == {first.credentials, third.credentials}
        await held.get_token()  # used directly, not through the pool: a use all the same
        pool.manager(fourth.credentials)
        assert set(pool) == {first.credentials, fourth.credentials}
        assert pool.manager(first.credentials) is held


async def test_without_max_idle_nothing_is_evicted(fake: FakeZoom) -> None:
    app = fake.add_app()
    async with make_pool(fake) as pool:
        pool.manager(app.credentials)
        assert pool.evict_idle() == 0
        assert len(pool) == 1


async def test_discard_forgets_an_app(fake: FakeZoom) -> None:
    app = fake.add_app()
    async with make_pool(fake) as pool:
        manager = pool.manager(app.credentials)
        assert pool.discard(app.credentials)
        assert not pool.discard(app.credentials)
        assert pool.manager(app.credentials) is not manager


async def test_a_store_object_is_shared_and_left_open(fake: FakeZoom) -> None:
    store = MemoryTokenStore()
    closed: list[bool] = []
    store.aclose = lambda: closed.append(True) or asyncio.sleep(0)  # type: ignore[method-assign]
    async with make_pool(fake, store=store) as pool:
        manager = pool.manager(fake.credentials)
        await manager.get_token()
    assert closed == []
    assert (await store.read(manager.store_key)).token is not None  # the token stays for others


async def test_a_store_made_from_a_url_is_closed_with_the_pool(fake: FakeZoom) -> None:
    async with make_pool(fake, store="memory://") as pool:
        store = pool.store
        closed: list[bool] = []
        store.aclose = lambda: closed.append(True) or asyncio.sleep(0)  # type: ignore[method-assign]
        await pool.manager(fake.credentials).get_token()
    assert closed == [True]


async def test_misuse_is_a_clear_error(fake: FakeZoom) -> None:
    with pytest.raises(ConfigurationError, match="max_idle"):
        make_pool(fake, max_idle=0)
    with pytest.raises(ConfigurationError, match="session"):
        make_pool(fake, session=None, client_options={"session": None})
    with pytest.raises(ConfigurationError, match=r"unexpected option.*store_key"):
        make_pool(fake, store_key="x")
    with pytest.raises(ConfigurationError, match=r"unexpected option.*bogus"):
        make_pool(fake, client_options={"bogus": 1})
    with pytest.raises(ConfigurationError, match="refresh_margin"):
        make_pool(fake, refresh_margin=-1)
    with pytest.raises(ConfigurationError, match="max_managers"):
        make_pool(fake, max_managers=0)
    with pytest.raises(ConfigurationError, match="base_url"):
        TokenManagerPool(token_url=fake.token_url, base_url="ftp://x")
    with pytest.raises(ConfigurationError, match="apply only to a store URL"):
        make_pool(fake, store=MemoryTokenStore(), store_options={"prefix": "x"})
    async with make_pool(fake, client_options={"rate_limit_retries": -1}) as pool:
        # Client option values are checked when the first client is made.
        with pytest.raises(ConfigurationError, match="rate_limit_retries"):
            pool.client(fake.credentials)
    pool = make_pool(fake)
    with pytest.raises(ConfigurationError, match="Credentials"):
        pool.manager(("a", "b", "c"))  # type: ignore[arg-type]
    await pool.aclose()
    with pytest.raises(UsageError, match="closed"):
        pool.manager(fake.credentials)


def test_the_pool_must_be_used_inside_an_event_loop(zoom: FakeZoom) -> None:
    pool = TokenManagerPool(token_url=zoom.token_url)
    with pytest.raises(UsageError, match="event loop"):
        pool.manager(zoom.credentials)


async def test_the_repr_shows_no_secret(fake: FakeZoom) -> None:
    async with make_pool(fake) as pool:
        await pool.manager(fake.credentials).get_token()
        assert fake.credentials.client_secret not in repr(pool)
        assert "accounts=1" in repr(pool)


# -- the blocking pool ---------------------------------------------------------------


@pytest.fixture
def threaded() -> Iterator[FakeZoom]:
    fake = FakeZoom(latency=0.05)
    with fake.running_in_thread():
        yield fake


def test_sync_pool_threads_share_one_fetch_per_app(threaded: FakeZoom) -> None:
    apps = add_apps(threaded, 5)
    barrier = threading.Barrier(20)
    errors: list[BaseException] = []

    def worker(index: int) -> None:
        try:
            barrier.wait()
            for app in apps:
                assert accounts.get_token(app.credentials).access_token
            app = apps[index % len(apps)]
            user = accounts.client(app.credentials).get_user("me")
            assert user.account_id == app.account.account_id
        except BaseException as exc:  # reported below
            errors.append(exc)

    with SyncTokenManagerPool(
        token_url=threaded.token_url, base_url=threaded.api_base_url, retry=FAST_RETRY
    ) as accounts:
        threads = [threading.Thread(target=worker, args=(i,)) for i in range(20)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        assert not [thread.name for thread in threads if thread.is_alive()]  # none hung
        assert not errors, errors
        assert len(accounts) == 5
    assert [app.tokens_issued for app in apps] == [1] * 5


def test_sync_pool_managers_invalidate_and_count(threaded: FakeZoom) -> None:
    app = threaded.add_app()
    with SyncTokenManagerPool(token_url=threaded.token_url, retry=FAST_RETRY) as accounts:
        manager = accounts.manager(app.credentials)
        token = manager.get_token()
        assert manager.invalidate(token)
        assert manager.get_token() != token
        stats = manager.stats()
        assert (stats.fetches, stats.invalidations) == (2, 1)
        assert accounts.discard(app.credentials)
    with pytest.raises(UsageError, match="closed"):
        manager.get_token()


def test_sync_pool_clients_paginate_in_their_own_account(threaded: FakeZoom) -> None:
    app = threaded.add_app()
    app.account.add_users(7)
    with SyncTokenManagerPool(
        token_url=threaded.token_url, base_url=threaded.api_base_url, retry=FAST_RETRY
    ) as accounts:
        users = list(accounts.client(app.credentials).paginate("/users", page_size=3))
    assert len(users) == 8  # "me" and the 7 added, over 3 pages
    assert {user["account_id"] for user in users} == {app.account.account_id}


def test_sync_pool_refuses_a_session_and_bad_options_at_once() -> None:
    with pytest.raises(ConfigurationError, match="session"):
        SyncTokenManagerPool(session=object())
    with pytest.raises(ConfigurationError, match=r"unexpected option.*bogus"):
        SyncTokenManagerPool(bogus=1)
    with pytest.raises(ConfigurationError, match="refresh_margin"):
        SyncTokenManagerPool(refresh_margin=-1)


def test_sync_pool_clients_take_the_pools_options(threaded: FakeZoom) -> None:
    app = threaded.add_app()
    with SyncTokenManagerPool(
        token_url=threaded.token_url, base_url=threaded.api_base_url, retry=FAST_RETRY
    ) as accounts:
        manager = accounts.manager(app.credentials)
        with pytest.raises(ConfigurationError, match="pool's base_url"):
            SyncZoomClient(manager, "https://elsewhere.example/v2")
        client = SyncZoomClient(manager)
        assert client.get_user("me").account_id == app.account.account_id
        assert len(accounts) == 1


def test_sync_pool_answers_a_valid_token_on_the_callers_thread(threaded: FakeZoom) -> None:
    blocked, release = threading.Event(), threading.Event()

    def block() -> None:
        blocked.set()
        release.wait(10)

    app = threaded.add_app()
    # The timeout bounds the first fetch too: 0.3 s was too short on a loaded machine.
    with SyncTokenManagerPool(token_url=threaded.token_url, retry=FAST_RETRY, timeout=1.0) as accounts:
        first = accounts.get_token(app.credentials)
        runtime = accounts._holder.runtime
        assert runtime is not None
        runtime.loop.call_soon_threadsafe(block)  # a call that hopped would time out
        assert blocked.wait(5)
        try:
            assert accounts.get_token(app.credentials) is first
            assert accounts.manager(app.credentials).get_token() is first
            with pytest.raises(TimeoutError):
                accounts.get_token(threaded.add_app().credentials)  # not in the pool: the loop
        finally:
            release.set()
    assert app.tokens_issued == 1
