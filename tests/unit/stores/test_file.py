"""FileTokenStore specifics: damaged files, permissions, errors, other processes."""

from __future__ import annotations

import asyncio
import logging
import os
import stat
import sys
import textwrap
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

from zoom_s2s.errors import ConfigurationError, StoreUnavailableError
from zoom_s2s.stores import FileTokenStore, encode_record
from zoom_s2s.testing.contract import make_token

KEY = "abc123"
REPO = Path(__file__).resolve().parents[3]
LOGGER = "zoom_s2s.stores.file"
AS_ROOT = hasattr(os, "geteuid") and os.geteuid() == 0


@pytest_asyncio.fixture
async def store(tmp_path: Path) -> AsyncIterator[FileTokenStore]:
    store = FileTokenStore(tmp_path / "tokens")
    yield store
    await store.aclose()


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


# -- damaged files ---------------------------------------------------------------


@pytest.mark.parametrize(
    "damage",
    [
        pytest.param(lambda good: b"\x00\xff garbage", id="garbage"),
        pytest.param(lambda good: good[: len(good) // 2], id="truncated"),
        pytest.param(lambda good: b"", id="empty"),
        pytest.param(lambda good: b'{"v": 1, "generation": 1, "token": {}}', id="bad-token"),
        pytest.param(lambda good: b"[1, 2, 3]", id="not-a-record"),
    ],
)
async def test_damaged_token_file_is_a_miss_with_warning_then_replaced(
    store: FileTokenStore, caplog: pytest.LogCaptureFixture, damage: object
) -> None:
    good = encode_record(make_token(), 1)
    store.directory.mkdir(mode=0o700)
    (store.directory / f"{KEY}.json").write_bytes(damage(good))  # type: ignore[operator]
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        assert await store.read(KEY) is None
    assert any(r.name == LOGGER and r.levelno == logging.WARNING for r in caplog.records)
    token = make_token()
    assert await store.write(KEY, token, generation=1) is True
    got = await store.read(KEY)
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
        assert await store.read(KEY) is None
    assert caplog.records
    assert token.access_token not in caplog.text


async def test_unreadable_token_path_is_a_miss(
    store: FileTokenStore, caplog: pytest.LogCaptureFixture
) -> None:
    (store.directory / f"{KEY}.json").mkdir(parents=True)  # reading it fails with EISDIR
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        assert await store.read(KEY) is None
    assert "unreadable" in caplog.text


async def test_damaged_generation_file_still_fences_by_the_token_file(
    store: FileTokenStore, caplog: pytest.LogCaptureFixture
) -> None:
    assert await store.write(KEY, make_token(), generation=7)
    (store.directory / f"{KEY}.gen").write_bytes(b"{broken")
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        assert await store.write(KEY, make_token(), generation=6) is False
        assert await store.next_generation(KEY) == 8
    assert "unreadable" in caplog.text


# -- permissions and leftovers ---------------------------------------------------


async def test_files_are_private(store: FileTokenStore) -> None:
    await store.write(KEY, make_token(), generation=await store.next_generation(KEY))
    lease = await store.acquire_lock(KEY, ttl=10)
    assert lease is not None
    assert mode(store.directory) == 0o700
    for path in store.directory.iterdir():
        assert mode(path) == 0o600, path.name
    await store.release_lock(lease)


async def test_existing_directory_is_tightened_to_0700(tmp_path: Path) -> None:
    directory = tmp_path / "open"
    directory.mkdir()
    directory.chmod(0o755)
    store = FileTokenStore(directory)
    await store.write(KEY, make_token(), generation=1)
    assert mode(directory) == 0o700
    await store.aclose()


async def test_no_temporary_or_lock_files_are_left_behind(store: FileTokenStore) -> None:
    for _ in range(5):
        lease = await store.acquire_lock(KEY, ttl=10)
        assert lease is not None
        generation = await store.next_generation(KEY)
        await store.write(KEY, make_token(), generation=generation)
        await store.release_lock(lease)
    names = sorted(path.name for path in store.directory.iterdir())
    assert names == [f"{KEY}.gen", f"{KEY}.json", f"{KEY}.mutex"]


# -- unusable directory ----------------------------------------------------------


async def test_directory_that_cannot_be_created_is_unavailable(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    store = FileTokenStore(blocker / "tokens")
    for attempt in (
        store.read(KEY),
        store.write(KEY, make_token(), generation=1),
        store.acquire_lock(KEY, ttl=1),
        store.next_generation(KEY),
    ):
        with pytest.raises(StoreUnavailableError) as info:
            await attempt
        assert info.value.store == store.name
        assert "directory" in str(info.value)


async def test_a_file_in_place_of_the_directory_is_unavailable(tmp_path: Path) -> None:
    path = tmp_path / "tokens"
    path.write_text("oops")
    store = FileTokenStore(path)
    with pytest.raises(StoreUnavailableError, match="directory"):
        await store.write(KEY, make_token(), generation=1)


@pytest.mark.skipif(AS_ROOT, reason="root writes into read-only directories")
async def test_read_only_directory_is_unavailable(tmp_path: Path) -> None:
    directory = tmp_path / "tokens"
    directory.mkdir(mode=0o700)
    directory.chmod(0o500)
    store = FileTokenStore(directory)
    try:
        with pytest.raises(StoreUnavailableError, match="writable"):
            await store.write(KEY, make_token(), generation=1)
    finally:
        directory.chmod(0o700)


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


def test_poll_interval_must_be_positive(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError):
        FileTokenStore(tmp_path, poll_interval=0)


async def test_closed_store_refuses_work(tmp_path: Path) -> None:
    store = FileTokenStore(tmp_path)
    await store.aclose()
    with pytest.raises(RuntimeError, match="closed"):
        await store.read(KEY)


async def test_aclose_ends_held_leases_at_once(tmp_path: Path) -> None:
    holder, other = FileTokenStore(tmp_path), FileTokenStore(tmp_path)
    assert await holder.acquire_lock(KEY, ttl=60) is not None
    assert await other.acquire_lock(KEY, ttl=60) is None
    await holder.aclose()
    lease = await other.acquire_lock(KEY, ttl=60)
    assert lease is not None
    assert await other.release_lock(lease)
    await other.aclose()


# -- other processes -------------------------------------------------------------

CHILD = textwrap.dedent(
    """
    import asyncio, os, sys
    from zoom_s2s.stores import FileTokenStore

    async def main(directory, command):
        store = FileTokenStore(directory)
        if command == "generations":
            numbers = [await store.next_generation("abc123") for _ in range(25)]
            print(" ".join(map(str, numbers)), flush=True)
            return
        lease = await store.acquire_lock("abc123", ttl=60)
        print("locked" if lease else "busy", flush=True)
        if command == "hold-then-die":
            await asyncio.sleep(0.5)
        elif command == "hold":
            sys.stdin.readline()
            await store.release_lock(lease)
            print("released", flush=True)
            return
        os._exit(0)  # dies holding the lock: no release, no cleanup

    asyncio.run(main(sys.argv[1], sys.argv[2]))
    """
)


async def spawn(directory: Path, command: str) -> asyncio.subprocess.Process:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return await asyncio.create_subprocess_exec(
        sys.executable, "-c", CHILD, str(directory), command,
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, env=env,
    )


async def line(process: asyncio.subprocess.Process) -> str:
    assert process.stdout is not None
    return (await asyncio.wait_for(process.stdout.readline(), 30)).decode().strip()


async def test_lock_of_a_live_process_is_respected(store: FileTokenStore) -> None:
    child = await spawn(store.directory, "hold")
    assert await line(child) == "locked"
    assert await store.acquire_lock(KEY, ttl=60) is None
    waiter = asyncio.create_task(store.wait_for_change(KEY, timeout=20))
    await asyncio.sleep(0.3)
    assert not waiter.done()
    assert child.stdin is not None
    child.stdin.write(b"go\n")
    assert await line(child) == "released"
    await asyncio.wait_for(waiter, 10)
    assert await child.wait() == 0
    lease = await store.acquire_lock(KEY, ttl=60)
    assert lease is not None
    await store.release_lock(lease)


async def test_lock_of_a_dead_process_is_taken_over_before_its_ttl(store: FileTokenStore) -> None:
    child = await spawn(store.directory, "die")
    assert await line(child) == "locked"
    await child.wait()
    lease = await store.acquire_lock(KEY, ttl=60)  # the child's lease had 60 s left
    assert lease is not None
    assert await store.release_lock(lease) is True
    assert not list(store.directory.glob("*.owner-*"))


async def test_waiter_returns_when_the_holder_dies(store: FileTokenStore) -> None:
    child = await spawn(store.directory, "hold-then-die")
    assert await line(child) == "locked"
    loop = asyncio.get_running_loop()
    started = loop.time()
    await store.wait_for_change(KEY, timeout=20)
    assert loop.time() - started < 10, "waited for the timeout, not for the holder's death"
    await child.wait()
    assert await store.acquire_lock(KEY, ttl=60) is not None


async def test_generations_are_unique_across_processes(store: FileTokenStore) -> None:
    children = [await spawn(store.directory, "generations") for _ in range(4)]
    numbers = [int(n) for child in children for n in (await line(child)).split()]
    for child in children:
        await child.wait()
    assert len(numbers) == 100
    assert len(set(numbers)) == 100


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to give the directory away")
async def test_a_directory_other_users_can_write_is_refused(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir(mode=0o777)
    shared.chmod(0o777)
    os.chown(shared, 65534, 65534)  # someone else's, so the store cannot tighten it
    store = FileTokenStore(shared)
    with pytest.raises(StoreUnavailableError, match="writable by other users"):
        await store.read("key")
    await store.aclose()


async def test_our_own_loose_directory_is_tightened_to_0700(tmp_path: Path) -> None:
    mine = tmp_path / "mine"
    mine.mkdir()
    mine.chmod(0o777)
    store = FileTokenStore(mine)
    assert await store.read("key") is None
    assert stat.S_IMODE(mine.stat().st_mode) == 0o700
    await store.aclose()


async def test_temp_files_of_a_killed_writer_are_removed_when_the_store_opens(
    tmp_path: Path,
) -> None:
    directory = tmp_path / "tokens"
    directory.mkdir(mode=0o700)
    stale = directory / ".key.json.abc123.tmp"
    stale.write_bytes(b'{"v": 1, "trunc')
    old = stale.stat().st_mtime - 3600
    os.utime(stale, (old, old))
    fresh = directory / ".key.json.def456.tmp"  # maybe a live writer's: left alone
    fresh.write_bytes(b"{")
    store = FileTokenStore(directory)
    assert await store.read("key") is None
    assert not stale.exists()
    assert fresh.exists()
    await store.aclose()
