"""FileTokenStore specifics: damaged and hostile files, permissions, errors, no polling.

Tests with other processes or a second user live in tests/system/test_file_hardening.py.
"""

from __future__ import annotations

import asyncio
import fcntl
import json
import logging
import os
import stat
import threading
import time
from collections.abc import AsyncIterator, Callable, Coroutine
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from zoom_s2s.errors import ConfigurationError, StoreUnavailableError
from zoom_s2s.stores import FailureRecord, FileTokenStore, LockAttempt, LockLease, encode_record
from zoom_s2s.stores.file import MAX_FILE_BYTES
from zoom_s2s.testing.contract import make_token

KEY = "abc123"
LOGGER = "zoom_s2s.stores.file"
AS_ROOT = os.geteuid() == 0
NOBODY = 65534


@pytest_asyncio.fixture
async def store(tmp_path: Path) -> AsyncIterator[FileTokenStore]:
    store = FileTokenStore(tmp_path / "tokens")
    yield store
    await store.aclose()


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


async def locked(store: FileTokenStore, key: str = KEY) -> LockLease:
    lease = (await store.acquire_lock(key, ttl=30)).lease
    assert lease is not None
    return lease


def fake_lease(generation: int, key: str = KEY) -> LockLease:
    """A lease with a chosen generation (write() is fenced by the generation alone)."""
    return LockLease(key=key, owner="0" * 32, generation=generation, ttl=30,
                     acquired_at=time.monotonic())


def run_in_own_loop(make: Callable[[], Coroutine[Any, Any, Any]], seconds: float) -> Any:
    """Run a coroutine on a fresh loop in a thread; fail (not hang) if it blocks longer."""
    outcome: dict[str, Any] = {}

    def target() -> None:
        try:
            outcome["value"] = asyncio.run(make())
        except BaseException as exc:
            outcome["error"] = exc

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(seconds)
    if thread.is_alive():
        return "blocked"
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]


# -- damaged files ---------------------------------------------------------------


@pytest.mark.parametrize(
    "damage",
    [
        pytest.param(lambda good: b"\x00\xff garbage", id="garbage"),
        pytest.param(lambda good: good[: len(good) // 2], id="truncated"),
        pytest.param(lambda good: b"", id="empty"),
        pytest.param(lambda good: b'{"v": 1, "generation": 1, "token": {}}', id="bad-token"),
        pytest.param(lambda good: b"[1, 2, 3]", id="not-a-record"),
        pytest.param(lambda good: b"[" * 100_000, id="deeply-nested"),
        pytest.param(lambda good: good + b" " * MAX_FILE_BYTES, id="oversized"),
    ],
)
async def test_damaged_token_file_is_a_miss_with_warning_then_replaced(
    store: FileTokenStore, caplog: pytest.LogCaptureFixture, damage: Any
) -> None:
    good = encode_record(make_token(), 1)
    store.directory.mkdir(mode=0o700)
    (store.directory / f"{KEY}.json").write_bytes(damage(good))
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        assert (await store.read(KEY)).token is None
    assert any(r.name == LOGGER and r.levelno == logging.WARNING for r in caplog.records)
    token = make_token()
    assert await store.write(await locked(store), token) is True
    got = (await store.read(KEY)).token
    assert got is not None
    assert got.fingerprint == token.fingerprint


async def test_warning_about_a_damaged_file_does_not_contain_the_token(
    store: FileTokenStore, caplog: pytest.LogCaptureFixture
) -> None:
    token = make_token()
    record = encode_record(token, 1).replace(b'"generation":1', b'"generation":"one"')
    store.directory.mkdir(mode=0o700)
    (store.directory / f"{KEY}.json").write_bytes(record)
    with caplog.at_level(logging.DEBUG, logger=LOGGER):
        assert (await store.read(KEY)).token is None
    assert caplog.records
    assert token.access_token not in caplog.text


async def test_unreadable_token_path_is_a_miss(
    store: FileTokenStore, caplog: pytest.LogCaptureFixture
) -> None:
    (store.directory / f"{KEY}.json").mkdir(parents=True)  # a directory: not a regular file
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        assert (await store.read(KEY)).token is None
    assert "unreadable" in caplog.text


async def test_damaged_state_file_still_fences_by_the_token_file(
    store: FileTokenStore, caplog: pytest.LogCaptureFixture
) -> None:
    assert await store.write(fake_lease(7), make_token())
    (store.directory / f"{KEY}.state").write_bytes(b"{broken")
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        assert await store.write(fake_lease(6), make_token()) is False
        assert (await locked(store)).generation == 8
    assert "unreadable" in caplog.text


async def test_a_tampered_lease_owner_cannot_name_other_files(
    store: FileTokenStore, tmp_path: Path
) -> None:
    victim = tmp_path / "victim"
    victim.write_text("keep me")
    store.directory.mkdir(mode=0o700)
    state = b'{"v":1,"issued":1,"written":0,"owner":"../../victim","expires":0,"pid":1}'
    (store.directory / f"{KEY}.state").write_bytes(state)
    lease = await locked(store)  # the bad state is ignored, not followed
    assert victim.read_text() == "keep me"
    await store.release_lock(lease)


@pytest.mark.parametrize("kind", ["symlink", "fifo", "long"])
async def test_the_state_file_is_replaced_not_written_through(
    store: FileTokenStore, tmp_path: Path, kind: str
) -> None:
    victim = tmp_path / "victim"
    victim.write_text("keep me")
    store.directory.mkdir(mode=0o700)
    state = store.directory / f"{KEY}.state"
    if kind == "symlink":
        state.symlink_to(victim)
    elif kind == "fifo":
        os.mkfifo(state, 0o600)
    else:
        state.write_bytes(b" " * 10_000)
    lease, _ = await asyncio.wait_for(store.acquire_lock(KEY, ttl=10), 10)
    assert lease is not None
    assert victim.read_text() == "keep me"
    assert state.is_file()
    assert not state.is_symlink()
    assert state.stat().st_size == 256
    assert await store.release_lock(lease)


# -- hostile files ------------------------------------------------------------------


async def test_a_fifo_at_the_token_path_is_a_miss_not_a_hang(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    directory = tmp_path / "tokens"
    directory.mkdir(mode=0o700)
    fifo = directory / f"{KEY}.json"
    os.mkfifo(fifo, 0o600)

    async def read() -> Any:
        store = FileTokenStore(directory)
        try:
            return (await store.read(KEY)).token
        finally:
            await store.aclose()

    with caplog.at_level(logging.WARNING, logger=LOGGER):
        result = run_in_own_loop(read, 10)
    if result == "blocked":  # a plain open() waits for a writer forever
        os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))  # let the stuck thread go
        pytest.fail("reading a FIFO at the token path blocked")
    assert result is None
    assert "not a regular file" in caplog.text


async def test_a_symlink_at_the_token_path_is_not_followed(
    store: FileTokenStore, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    elsewhere = tmp_path / "planted.json"
    elsewhere.write_bytes(encode_record(make_token(), 1))
    store.directory.mkdir(mode=0o700)
    (store.directory / f"{KEY}.json").symlink_to(elsewhere)
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        assert (await store.read(KEY)).token is None
    assert "unreadable" in caplog.text


@pytest.mark.skipif(not AS_ROOT, reason="needs root to give a file away")
async def test_a_token_file_of_another_user_is_a_miss_then_replaced(
    store: FileTokenStore, caplog: pytest.LogCaptureFixture
) -> None:
    planted = make_token()
    store.directory.mkdir(mode=0o700)
    path = store.directory / f"{KEY}.json"
    path.write_bytes(encode_record(planted, 1))
    os.chown(path, NOBODY, NOBODY)
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        assert (await store.read(KEY)).token is None
    assert f"uid {NOBODY}" in caplog.text
    token = make_token()
    assert await store.write(await locked(store), token)
    got = (await store.read(KEY)).token
    assert got is not None
    assert got.fingerprint == token.fingerprint
    assert path.stat().st_uid == os.geteuid()


@pytest.mark.skipif(not AS_ROOT, reason="needs root to give the directory away")
async def test_a_directory_of_another_user_is_refused(tmp_path: Path) -> None:
    theirs = tmp_path / "theirs"
    theirs.mkdir(mode=0o700)
    (theirs / f"{KEY}.json").write_bytes(encode_record(make_token(), 1))
    os.chown(theirs / f"{KEY}.json", NOBODY, NOBODY)
    os.chown(theirs, NOBODY, NOBODY)
    store = FileTokenStore(theirs)
    with pytest.raises(ConfigurationError, match=f"belongs to uid {NOBODY}"):
        await store.read(KEY)
    with pytest.raises(ConfigurationError, match="directory of this user's"):
        await store.acquire_lock(KEY, ttl=10)
    await store.aclose()


# -- permissions and leftovers ------------------------------------------------------


async def test_files_are_private(store: FileTokenStore) -> None:
    lease = await locked(store)
    await store.write(lease, make_token())
    await store.write_failure(
        lease, FailureRecord(failures=1, retry_in=1, error_type="X", message="m"), keep_for=5
    )
    assert mode(store.directory) == 0o700  # created by the store
    for path in store.directory.iterdir():
        assert mode(path) == 0o600, path.name
    await store.release_lock(lease)


async def test_an_existing_directory_keeps_its_mode(tmp_path: Path) -> None:
    directory = tmp_path / "shared-readable"
    directory.mkdir()
    directory.chmod(0o755)
    store = FileTokenStore(directory)
    await store.write(await locked(store), make_token())
    assert mode(directory) == 0o755  # not the store's to change
    await store.aclose()


@pytest.mark.parametrize("loose", [0o1777, 0o777, 0o770, 0o2775])
async def test_a_directory_others_can_write_is_refused_and_left_alone(
    tmp_path: Path, loose: int
) -> None:
    shared = tmp_path / "like-tmp"
    shared.mkdir()
    shared.chmod(loose)
    store = FileTokenStore(shared)
    for attempt in (store.read(KEY), store.acquire_lock(KEY, ttl=1)):
        with pytest.raises(ConfigurationError, match="writable by other users") as info:
            await attempt
        assert "private subdirectory" in str(info.value)
        assert str(shared / "zoom-s2s") in str(info.value)
    assert mode(shared) == loose  # other users are not locked out
    assert list(shared.iterdir()) == []
    await store.aclose()


async def test_the_suggested_private_subdirectory_works(tmp_path: Path) -> None:
    shared = tmp_path / "like-tmp"
    shared.mkdir()
    shared.chmod(0o1777)
    store = FileTokenStore(shared / "zoom-s2s")
    await store.write(await locked(store), make_token())
    assert (await store.read(KEY)).token is not None
    assert mode(shared / "zoom-s2s") == 0o700
    assert mode(shared) == 0o1777
    await store.aclose()


async def test_the_sweep_removes_only_its_own_stale_temp_files(tmp_path: Path) -> None:
    directory = tmp_path / "tokens"
    directory.mkdir(mode=0o700)
    ours_stale = directory / ".key.json.0123456789abcdef.tmp"
    ours_fresh = directory / ".key.json.fedcba9876543210.tmp"  # maybe a live writer's
    others = [
        directory / ".editor-swap.tmp",
        directory / ".key.json.abc123.tmp",  # not the way the store names them
        directory / ".notes.txt.0123456789abcdef.tmp",
    ]
    for path in [ours_stale, ours_fresh, *others]:
        path.write_bytes(b"{")
    old = time.time() - 3600
    for path in [ours_stale, *others]:
        os.utime(path, (old, old))
    store = FileTokenStore(directory)
    assert (await store.read("key")).token is None
    assert not ours_stale.exists()
    assert ours_fresh.exists()
    for path in others:
        assert path.exists(), path.name
    await store.aclose()


async def test_no_temporary_or_lock_files_are_left_behind(store: FileTokenStore) -> None:
    for _ in range(5):
        lease = await locked(store)
        await store.write(lease, make_token())
        await store.release_lock(lease)
    names = sorted(path.name for path in store.directory.iterdir())
    assert names == [f"{KEY}.json", f"{KEY}.mutex", f"{KEY}.state"]


# -- unusable directory ----------------------------------------------------------


async def test_directory_that_cannot_be_created_is_unavailable(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    store = FileTokenStore(blocker / "tokens")
    for attempt in (
        store.read(KEY),
        store.write(fake_lease(1), make_token()),
        store.acquire_lock(KEY, ttl=1),
        store.wait_for_change(KEY, timeout=1),
    ):
        with pytest.raises(StoreUnavailableError) as info:
            await attempt
        assert info.value.store == store.name
        assert store.name in str(info.value)
        assert "directory" in str(info.value)
        assert "writable" in str(info.value)


async def test_a_file_in_place_of_the_directory_is_unavailable(tmp_path: Path) -> None:
    path = tmp_path / "tokens"
    path.write_text("oops")
    store = FileTokenStore(path)
    with pytest.raises(StoreUnavailableError, match="directory"):
        await store.write(fake_lease(1), make_token())


@pytest.mark.skipif(AS_ROOT, reason="root writes into read-only directories")
async def test_read_only_directory_is_unavailable(tmp_path: Path) -> None:
    directory = tmp_path / "tokens"
    directory.mkdir(mode=0o700)
    directory.chmod(0o500)
    store = FileTokenStore(directory)
    try:
        with pytest.raises(StoreUnavailableError, match="writable"):
            await store.write(fake_lease(1), make_token())
    finally:
        directory.chmod(0o700)


# -- no polling, nothing blocking on the loop --------------------------------------


async def test_a_waiter_does_not_poll_while_the_lock_is_held(
    store: FileTokenStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    peer = FileTokenStore(store.directory)
    lease = await locked(peer)
    touched: list[str] = []
    for name in ("open", "stat", "lstat"):
        real = getattr(os, name)

        def spy(*args: Any, _real: Any = real, _name: str = name, **kwargs: Any) -> Any:
            touched.append(_name)
            return _real(*args, **kwargs)

        monkeypatch.setattr(os, name, spy)
    waiter = asyncio.create_task(store.wait_for_change(KEY, timeout=20))
    await asyncio.sleep(0.1)  # the waiter has looked once and is asleep now
    touched.clear()
    await asyncio.sleep(0.5)  # several poll intervals of any store that polled
    assert not waiter.done()
    assert touched == []  # no polling: nothing looks at the files while it waits
    await peer.release_lock(lease)
    await asyncio.wait_for(waiter, 5)
    await peer.aclose()


async def test_blocking_file_work_never_runs_on_the_event_loop(
    store: FileTokenStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    loop_thread = threading.get_ident()
    on_loop: list[str] = []

    def watch(module: Any, name: str, blocking: Callable[..., bool]) -> None:
        real = getattr(module, name)

        def spy(*args: Any, **kwargs: Any) -> Any:
            if threading.get_ident() == loop_thread and blocking(*args):
                on_loop.append(name)
            return real(*args, **kwargs)

        monkeypatch.setattr(module, name, spy)

    for name in ("open", "read", "write", "fsync", "replace", "unlink", "stat", "makedirs"):
        watch(os, name, lambda *args: True)
    watch(fcntl, "flock", lambda fd, op: not op & (fcntl.LOCK_NB | fcntl.LOCK_UN))

    peer = FileTokenStore(store.directory)
    lease = await locked(store)
    waiter = asyncio.create_task(peer.wait_for_change(KEY, timeout=10))
    await asyncio.sleep(0.1)
    token = make_token()
    assert await store.write(lease, token)
    await asyncio.wait_for(waiter, 5)
    assert (await peer.read(KEY)).token is not None
    failure = FailureRecord(failures=1, retry_in=1, error_type="X", message="m")
    await store.write_failure(lease, failure, keep_for=5)
    assert (await peer.read(KEY)).failure is not None
    assert (await peer.acquire_lock(KEY, ttl=5)).lease is None
    assert await store.release_lock(lease)
    assert await peer.delete(KEY, fingerprint=token.fingerprint)
    await peer.aclose()
    assert on_loop == []


async def test_concurrent_acquirers_in_one_process_get_one_lease(tmp_path: Path) -> None:
    stores = [FileTokenStore(tmp_path / "tokens") for _ in range(4)]
    attempts = await asyncio.gather(*(s.acquire_lock(KEY, ttl=10) for s in stores for _ in range(5)))
    won = [attempt.lease for attempt in attempts if attempt.lease is not None]
    assert len(won) == 1
    for s in stores:
        await s.aclose()


async def test_a_cancelled_acquire_does_not_leave_a_live_lease(store: FileTokenStore) -> None:
    for _ in range(20):  # cancel at various points of the hop to the worker thread
        task = asyncio.create_task(store.acquire_lock(KEY, ttl=60))
        await asyncio.sleep(0)
        task.cancel()
        result = await asyncio.gather(task, return_exceptions=True)
        if isinstance(result[0], LockAttempt) and result[0].lease is not None:
            await store.release_lock(result[0].lease)
    await asyncio.sleep(0.2)  # the orphaned thread finishes and lets go
    lease = (await store.acquire_lock(KEY, ttl=60)).lease  # taken over at once, not after 60 s
    assert lease is not None


# -- failure records -------------------------------------------------------------


async def test_failure_record_is_aged_by_the_writers_wall_time(store: FileTokenStore) -> None:
    lease = await locked(store)
    record = FailureRecord(failures=2, retry_in=30, error_type="TokenEndpointError", message="x")
    await store.write_failure(lease, record, keep_for=60)
    path = store.directory / f"{KEY}.failure"
    stored = json.loads(path.read_text())

    async def read_written(seconds_ago: float) -> FailureRecord | None:
        path.write_text(json.dumps({**stored, "written_at": time.time() - seconds_ago}))
        return (await store.read(KEY)).failure

    got = await read_written(10)
    assert got is not None
    assert 19.5 < got.retry_in <= 20
    got = await read_written(-3600)  # a writer an hour ahead: ages nothing, lengthens nothing
    assert got is not None
    assert got.retry_in <= 30
    assert await read_written(61) is None  # older than keep_for: gone


@pytest.mark.parametrize("written_at", ['"soon"', "1e999", "true", "null"])
async def test_a_corrupt_failure_record_is_none(
    store: FileTokenStore, caplog: pytest.LogCaptureFixture, written_at: str
) -> None:
    lease = await locked(store)
    record = FailureRecord(failures=2, retry_in=30, error_type="TokenEndpointError", message="x")
    await store.write_failure(lease, record, keep_for=60)
    path = store.directory / f"{KEY}.failure"
    stored = json.loads(path.read_text())
    path.write_text(json.dumps(stored).replace(str(stored["written_at"]), written_at))
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        assert (await store.read(KEY)).failure is None
    assert "corrupt" in caplog.text


async def test_a_write_forgets_the_failure_record(store: FileTokenStore) -> None:
    lease = await locked(store)
    record = FailureRecord(failures=2, retry_in=30, error_type="TokenEndpointError", message="x")
    await store.write_failure(lease, record, keep_for=60)
    assert (await store.read(KEY)).failure is not None
    assert await store.write(lease, make_token())
    assert (await store.read(KEY)).failure is None


# -- API edges -------------------------------------------------------------------


@pytest.mark.parametrize("key", ["../escape", "a/b", ".hidden", "", "x" * 300])
async def test_keys_that_are_not_file_names_are_rejected(store: FileTokenStore, key: str) -> None:
    with pytest.raises(ConfigurationError):
        await store.read(key)


def test_name_is_the_absolute_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    store = FileTokenStore("relative/dir")
    assert store.name == f"file://{tmp_path}/relative/dir"
    assert str(tmp_path) in repr(store)


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("file://server/share", "names a host"),
        ("file:///tmp/x?mode=1", "query or fragment"),
        ("file:relative/dir", "absolute path"),
    ],
)
def test_bad_file_urls(url: str, message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        FileTokenStore.from_url(url)


def test_file_url_with_an_unknown_option() -> None:
    with pytest.raises(ConfigurationError, match="unexpected option"):
        FileTokenStore.from_url("file:///var/lib/x", colour="blue")


def test_file_url(tmp_path: Path) -> None:
    store = FileTokenStore.from_url(f"file://localhost{tmp_path}/with%20space")
    assert store.directory == tmp_path / "with space"


async def test_closed_store_refuses_work(tmp_path: Path) -> None:
    store = FileTokenStore(tmp_path)
    await store.aclose()
    with pytest.raises(RuntimeError, match="closed"):
        await store.read(KEY)


async def test_aclose_ends_held_leases_at_once(tmp_path: Path) -> None:
    holder, other = FileTokenStore(tmp_path), FileTokenStore(tmp_path)
    assert (await holder.acquire_lock(KEY, ttl=60)).lease is not None
    assert (await other.acquire_lock(KEY, ttl=60)).lease is None
    await holder.aclose()
    lease = (await other.acquire_lock(KEY, ttl=60)).lease
    assert lease is not None
    assert await other.release_lock(lease)
    await other.aclose()


# -- the mutex -------------------------------------------------------------------


def hold_mutex(store: FileTokenStore) -> int:
    """Take ``<key>.mutex`` as another process would (another open file description)."""
    store.directory.mkdir(mode=0o700, exist_ok=True)
    fd = os.open(store.directory / f"{KEY}.mutex", os.O_RDWR | os.O_CREAT, 0o600)
    fcntl.flock(fd, fcntl.LOCK_EX)
    return fd


async def test_a_busy_mutex_is_waited_for_without_polling(store: FileTokenStore) -> None:
    fd = hold_mutex(store)
    acquiring = asyncio.create_task(store.acquire_lock(KEY, ttl=10))
    await asyncio.sleep(0.3)
    assert not acquiring.done()
    fcntl.flock(fd, fcntl.LOCK_UN)
    os.close(fd)
    lease, _ = await asyncio.wait_for(acquiring, 5)
    assert lease is not None
    assert await store.release_lock(lease)


async def test_a_mutex_held_too_long_is_a_clear_error_and_then_recovers(
    store: FileTokenStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("zoom_s2s.stores.file.store._MUTEX_TIMEOUT", 0.3)
    fd = hold_mutex(store)
    with pytest.raises(StoreUnavailableError, match="stayed locked") as info:
        await store.acquire_lock(KEY, ttl=10)
    assert info.value.store == store.name
    fcntl.flock(fd, fcntl.LOCK_UN)  # the abandoned waiter gets the mutex and lets it go
    os.close(fd)
    lease, _ = await asyncio.wait_for(store.acquire_lock(KEY, ttl=10), 5)
    assert lease is not None
    assert await store.release_lock(lease)
