"""Store faults: what callers see and how the manager recovers, without a restart.

Real components: a dedicated ``redis-server`` per test (stopped, restarted,
paused with ``CLIENT PAUSE``), real directories (made unusable for a child
process that drops privileges to ``nobody``), and real processes SIGKILLed in
the middle of FileTokenStore writes. The documented behaviour under test
(``TokenManager(on_store_error=...)``):

* a valid token in memory is served whatever the store does;
* ``"raise"`` (default): callers without a valid token get a clear
  :class:`StoreUnavailableError` quickly and no token is fetched;
* ``"fetch"``: the process fetches a token for itself while the store is down;
* either way the next refresh after the store is back goes through it again.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import shutil
import stat
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from tests.harness.redis_server import RedisServer
from zoom_s2s import (
    AccessToken,
    FileTokenStore,
    RedisTokenStore,
    RetryPolicy,
    TokenManager,
    ZoomS2SError,
)
from zoom_s2s.errors import StoreUnavailableError
from zoom_s2s.stores.base import decode_record
from zoom_s2s.testing import FakeZoom

from .reliability_worker import Worker, logs, sigkill, workers, write_json

RETRY = RetryPolicy(attempts=3, timeout=10.0, wait_initial=0.05, wait_max=0.1, wait_jitter=0.0)
HANG_GUARD = 15.0  # no single get_token() here may take longer: a hang, not a slow path
QUICK_REDIS = {"socket_timeout": 1, "socket_connect_timeout": 1}


def make_manager(zoom: FakeZoom, store: Any, policy: str) -> TokenManager:
    return TokenManager(zoom.credentials, token_url=zoom.token_url, store=store, retry=RETRY,
                        request_timeout=2.0, hooks=[], on_store_error=policy)


async def get(tokens: TokenManager) -> AccessToken:
    return await asyncio.wait_for(tokens.get_token(), HANG_GUARD)


async def get_eventually(tokens: TokenManager, within: float) -> AccessToken:
    """Call until a token comes (errors are expected while the store comes back)."""
    deadline = time.monotonic() + within
    while True:
        try:
            return await get(tokens)
        except ZoomS2SError:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.1)


async def hammer(
    tokens: TokenManager, seconds: float, lifetime: float, callers: int = 5
) -> tuple[int, list[tuple[bool, BaseException]], int]:
    """``callers`` coroutines calling get_token() for ``seconds``.

    Returns (tokens served, [(held a usable token before the call, error)], expired served).
    A token is usable while more than min_ttl is left; min_ttl is capped at a tenth of
    the ``lifetime`` (the default 30 s is longer than every lifetime here).
    """
    threshold = lifetime / 10 + 0.05
    served, expired = 0, 0
    errors: list[tuple[bool, BaseException]] = []
    end = time.monotonic() + seconds

    async def caller() -> None:
        nonlocal served, expired
        while time.monotonic() < end:
            before = tokens.stats().expires_in
            valid = before is not None and before > threshold
            try:
                token = await get(tokens)
            except ZoomS2SError as exc:
                errors.append((valid, exc))
            else:
                served += 1
                expired += token.remaining(time.time()) <= 0
            await asyncio.sleep(random.uniform(0.01, 0.03))

    await asyncio.gather(*(caller() for _ in range(callers)))
    return served, errors, expired


@pytest.fixture
def own_redis() -> Iterator[RedisServer]:
    """A redis-server of this test's own, to stop, restart and pause."""
    with RedisServer() as server:
        yield server


# -- Redis restarted mid-run ----------------------------------------------------------


@pytest.mark.redis
async def test_redis_restart_with_raise_policy_serves_valid_tokens_then_errors_then_recovers(
    fake_zoom: FakeZoom, own_redis: RedisServer
) -> None:
    fake_zoom.expires_in = 3
    store = RedisTokenStore.from_url(own_redis.url, **QUICK_REDIS)
    try:
        async with make_manager(fake_zoom, store, "raise") as tokens:
            first = await get(tokens)
            own_redis.stop()
            served, errors, expired = await hammer(
                tokens, first.remaining(time.time()) + 0.5, first.lifetime
            )
            print(f"\nRedis down: {served} tokens served, {len(errors)} errors "
                  f"({sum(v for v, _ in errors)} with a valid token)")
            assert served > 0
            assert expired == 0
            assert [e for valid, e in errors if valid] == []  # a valid token is always served
            assert errors, "the outage outlived the token, so callers without one saw errors"
            for _, error in errors:
                assert isinstance(error, StoreUnavailableError), error
                assert f"127.0.0.1:{own_redis.port}" in str(error)
                assert "check that Redis is running" in str(error)
            assert fake_zoom.token_requests == 1  # "raise": no fetch behind the store's back

            own_redis.start()  # empty: no persistence
            token = await get_eventually(tokens, 10)
            assert token.access_token != first.access_token
            stored = (await store.read(tokens.store_key)).token
            assert stored is not None
            assert stored.fingerprint == token.fingerprint  # back to sharing through Redis
            assert fake_zoom.token_requests == 2
    finally:
        await store.aclose()


@pytest.mark.redis
async def test_redis_restart_with_fetch_policy_never_fails_callers_and_returns_to_the_store(
    fake_zoom: FakeZoom, own_redis: RedisServer
) -> None:
    fake_zoom.expires_in = 3
    store = RedisTokenStore.from_url(own_redis.url, **QUICK_REDIS)
    try:
        async with make_manager(fake_zoom, store, "fetch") as tokens:
            first = await get(tokens)
            own_redis.stop()
            served, errors, expired = await hammer(
                tokens, first.remaining(time.time()) + 0.5, first.lifetime
            )
            assert errors == []
            assert served > 0
            assert expired == 0
            # One token for this process while the store is down (a second one only if
            # its refresh moment also fell inside the outage).
            assert 2 <= fake_zoom.token_requests <= 3
            during = await get(tokens)
            assert during.access_token != first.access_token

            own_redis.start()
            deadline = time.monotonic() + 10  # the next refresh is at most 3 s away
            while (stored := (await store.read(tokens.store_key)).token) is None:
                assert time.monotonic() < deadline, "the manager never went back to Redis"
                await get(tokens)
                await asyncio.sleep(0.05)
            assert tokens.stats().token_fingerprint == stored.fingerprint
    finally:
        await store.aclose()


# -- Redis unreachable at start -------------------------------------------------------


@pytest.mark.redis
async def test_redis_unreachable_at_start_raises_quickly_or_falls_back_then_recovers(
    fake_zoom: FakeZoom,
) -> None:
    server = RedisServer()  # a free port, nothing listening yet
    strict_store = RedisTokenStore.from_url(server.url, **QUICK_REDIS)
    lenient_store = RedisTokenStore.from_url(server.url, **QUICK_REDIS)
    try:
        async with make_manager(fake_zoom, strict_store, "raise") as strict, make_manager(
            fake_zoom, lenient_store, "fetch"
        ) as lenient:
            started = time.monotonic()
            with pytest.raises(StoreUnavailableError) as info:
                await get(strict)
            elapsed = time.monotonic() - started
            print(f"\nunreachable Redis reported after {elapsed:.2f} s: {info.value}")
            assert f"127.0.0.1:{server.port}" in str(info.value)
            assert "unreachable" in str(info.value)
            assert fake_zoom.token_requests == 0

            results = await asyncio.wait_for(
                asyncio.gather(*(lenient.get_token() for _ in range(20))), HANG_GUARD
            )
            assert {t.access_token for t in results} == {fake_zoom.issued_tokens[0]}
            assert fake_zoom.token_requests == 1  # single-flight holds in the fallback too

            server.start()
            token = await get_eventually(strict, 10)
            stored = (await strict_store.read(strict.store_key)).token
            assert stored is not None
            assert stored.fingerprint == token.fingerprint
            # Two outcomes are right, and which one happens is a race: the lenient
            # manager writes the token it fetched during the outage once Redis is back
            # ([S11]); if that write lands first the strict manager adopts it and Zoom
            # sees no second request, else the strict manager fetches one of its own.
            if token.access_token == fake_zoom.issued_tokens[0]:
                assert fake_zoom.token_requests == 1
            else:
                assert fake_zoom.token_requests == 2
                assert token.access_token == fake_zoom.issued_tokens[1]
    finally:
        await strict_store.aclose()
        await lenient_store.aclose()
        server.close()


# -- Redis paused (CLIENT PAUSE) longer than the socket timeouts ----------------------

PAUSE_SECONDS = 8.0


@pytest.mark.redis
async def test_redis_paused_longer_than_its_socket_timeouts_gives_errors_not_hangs(
    fake_zoom: FakeZoom, own_redis: RedisServer
) -> None:
    stores = {name: RedisTokenStore.from_url(own_redis.url, **QUICK_REDIS)
              for name in ("holder", "strict", "lenient")}
    admin = redis.Redis(host="127.0.0.1", port=own_redis.port)
    try:
        async with make_manager(fake_zoom, stores["holder"], "raise") as holder, make_manager(
            fake_zoom, stores["strict"], "raise"
        ) as strict, make_manager(fake_zoom, stores["lenient"], "fetch") as lenient:
            held = await get(holder)  # stored in Redis before the pause
            for store in stores.values():  # connections open before the pause
                await store.read("warm-up")
            admin.execute_command("CLIENT", "PAUSE", int(PAUSE_SECONDS * 1000), "ALL")
            paused_at = time.monotonic()

            async def timed(coro: Any) -> tuple[float, Any]:
                try:
                    result = await asyncio.wait_for(coro, HANG_GUARD)
                except ZoomS2SError as exc:
                    result = exc
                return time.monotonic() - paused_at, result

            (t_strict, strict_got), (t_lenient, lenient_got), (t_held, held_got) = (
                await asyncio.gather(timed(strict.get_token()), timed(lenient.get_token()),
                                     timed(holder.get_token()))
            )
            print(f"\nduring a {PAUSE_SECONDS:g} s pause: raise -> {type(strict_got).__name__} "
                  f"after {t_strict:.2f} s, fetch -> {type(lenient_got).__name__} after "
                  f"{t_lenient:.2f} s, holder served after {t_held:.3f} s")
            assert held_got is held  # a valid token in memory needs no store
            assert isinstance(strict_got, StoreUnavailableError), strict_got
            assert "TimeoutError" in str(strict_got)
            assert isinstance(lenient_got, AccessToken), lenient_got
            # The socket timeouts ended the waits, not the end of the pause.
            assert max(t_strict, t_lenient) < PAUSE_SECONDS
            assert fake_zoom.token_requests == 2  # holder's first, lenient's fallback

            await asyncio.sleep(max(0.0, paused_at + PAUSE_SECONDS + 0.2 - time.monotonic()))
            recovered = await get_eventually(strict, 10)
            # Adopted from Redis: the holder's token, or the lenient manager's fallback if
            # its write-later ([S11]) landed first (it expires later, so it may replace it).
            assert recovered.access_token in {held.access_token, lenient_got.access_token}
            assert fake_zoom.token_requests == 2
    finally:
        admin.execute_command("CLIENT", "UNPAUSE")
        admin.close()
        for store in stores.values():
            await store.aclose()


# -- FileTokenStore: unusable directories ---------------------------------------------

NOBODY = 65534


@pytest.mark.skipif(os.geteuid() != 0, reason="drops privileges to nobody, so needs root")
def test_unusable_file_store_directories_give_clear_errors_and_recover_when_fixed() -> None:
    base = Path(tempfile.mkdtemp(prefix="zoom-s2s-perms-"))
    try:
        base.chmod(0o755)  # pytest's tmp_path is 0700: nobody could not even look
        read_only = base / "read-only"
        read_only.mkdir(mode=0o755)  # root's: nobody cannot write in it
        locked = base / "locked"
        locked.mkdir(mode=0o755)
        missing = locked / "tokens"  # does not exist; nobody cannot create it
        blocker = base / "a-file"
        blocker.write_text("not a directory")
        under_a_file = blocker / "tokens"
        ipc = base / "ipc"
        ipc.mkdir()
        ipc.chmod(0o777)
        cases = {"read-only": read_only, "uncreatable": missing, "under-a-file": under_a_file}
        with FakeZoom().running_in_thread() as zoom, workers(ipc) as (_, started):
            creds = zoom.credentials
            worker = Worker(ipc, {
                "mode": "file_perms", "name": "nobody", "go": "go", "timeout": 90,
                "credentials": [creds.account_id, creds.client_id, creds.client_secret],
                "token_url": zoom.token_url,
                "retry": {"attempts": 3, "wait_initial": 0.05, "wait_max": 0.1},
                "cases": {case: str(path) for case, path in cases.items()},
            })
            started.append(worker)
            try:
                worker.wait_for("phase1", 60)
                phase1 = worker.read("phase1")
                # Fix the directories while the process keeps running.
                os.chown(read_only, NOBODY, NOBODY)
                os.chown(locked, NOBODY, NOBODY)
                blocker.unlink()
                blocker.mkdir(mode=0o755)
                os.chown(blocker, NOBODY, NOBODY)
                write_json(ipc / "go", True)
                result = worker.result(60)
            except AssertionError as exc:
                raise AssertionError(f"{exc}\n{logs(started)}") from None
            requests = zoom.token_requests
    finally:
        shutil.rmtree(base, ignore_errors=True)

    assert result["uid"] == NOBODY
    for case, path in cases.items():
        strict, lenient = phase1["phase1"][f"{case}/raise"], phase1["phase1"][f"{case}/fetch"]
        print(f"\n{case}: {strict.get('type')}: {strict.get('message')}")
        assert strict["ok"] is False, (case, strict)
        assert strict["type"] == "StoreUnavailableError", (case, strict)
        assert str(path) in strict["message"], (case, strict)  # names the directory
        assert "writable" in strict["message"], (case, strict)  # and says what to do
        assert strict["store"] == f"file://{path}"
        assert strict["seconds"] < HANG_GUARD
        assert lenient["ok"] is True, (case, lenient)  # "fetch": a token all the same
        recovered = result["phase2"][f"{case}/raise"]
        assert recovered["ok"] is True, (case, recovered)
        assert recovered["stored"] == recovered["fingerprint"], (case, recovered)
    # warm-up + one fallback per "fetch" manager; that token is written into the
    # store once it is fixed (the worker waits for it), and the "raise" manager
    # adopts it: no second fetch.
    assert requests == 1 + len(cases)


async def test_a_file_store_directory_deleted_mid_run_is_recreated(
    fake_zoom: FakeZoom, tmp_path: Path
) -> None:
    fake_zoom.expires_in = 2
    directory = tmp_path / "tokens"
    store = FileTokenStore(directory)
    async with make_manager(fake_zoom, store, "raise") as tokens:
        first = await get(tokens)
        shutil.rmtree(directory)
        served, errors, expired = await hammer(
            tokens, first.remaining(time.time()) + 0.5, first.lifetime
        )
        assert errors == []
        assert expired == 0
        assert served > 0
        stored = (await store.read(tokens.store_key)).token
        current = tokens.stats().token_fingerprint
    assert stored is not None
    assert stored.fingerprint != first.fingerprint
    assert stored.fingerprint == current  # the refresh went through the recreated directory
    assert stat.S_IMODE(directory.stat().st_mode) == 0o700
    # One refresh after the deletion (a second only if its window also came up).
    assert 2 <= fake_zoom.token_requests <= 3


# -- FileTokenStore: SIGKILL in the middle of writes ----------------------------------

KILLS = 20
KEY = "killkey0001"


def test_sigkill_during_file_store_writes_never_leaves_a_torn_or_wrong_token(
    tmp_path: Path,
) -> None:
    directory = tmp_path / "tokens"
    token_file = directory / f"{KEY}.json"
    last_generation = 0
    leftovers: set[str] = set()
    with workers(tmp_path / "ipc") as (ipc, started):
        for kill in range(KILLS):
            worker = Worker(ipc, {"mode": "file_writer", "name": f"writer-{kill}",
                                  "path": str(directory), "key": KEY, "timeout": 60})
            started.append(worker)
            worker.wait_for("ready", 30)
            time.sleep(random.uniform(0.0, 0.1))
            sigkill(worker)

            raw = token_file.read_bytes()
            token, generation = decode_record(raw)  # never torn: always parses
            assert token.access_token.startswith(f"writer-token-{generation}-"), generation
            assert generation >= last_generation  # never rolled back to an older token
            last_generation = generation
            gen_state = json.loads((directory / f"{KEY}.state").read_text())
            assert gen_state["written"] >= generation  # the fence is never behind the token
            read = asyncio.run(FileTokenStore(directory).read(KEY)).token
            assert read is not None
            assert read.access_token == token.access_token  # temp files are never read
            leftovers |= {p.name for p in directory.iterdir() if p.name.endswith(".tmp")}

    async def after() -> tuple[int, bool, AccessToken | None]:
        store = FileTokenStore(directory)
        lease = None
        for _ in range(200):  # the last writer's lease lapses within its TTL
            lease = (await store.acquire_lock(KEY, ttl=30)).lease
            if lease is not None:
                break
            await store.wait_for_change(KEY, timeout=1)
        assert lease is not None
        now = time.time()
        fresh = AccessToken(access_token="after-the-kills", expires_ts=now + 60, issued_ts=now)
        written = await store.write(lease, fresh)
        await store.release_lock(lease)
        return lease.generation, written, (await store.read(KEY)).token

    generation, written, read = asyncio.run(after())
    print(f"\n{KILLS} SIGKILLs: last generation {last_generation}, "
          f"{len(leftovers)} temp files left behind")
    assert generation > last_generation
    assert written
    assert read is not None
    assert read.access_token == "after-the-kills"
