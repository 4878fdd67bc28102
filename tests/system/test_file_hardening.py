"""FileTokenStore with real processes: lock hand-off, dead holders, and a second user.

The second user is ``nobody`` (uid/gid 65534): a child process starts as root,
imports what it needs, drops its privileges and then acts as a neighbour
would. Those tests need root (CI containers run as root).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from zoom_s2s import AccessToken, TokenManager
from zoom_s2s.errors import ConfigurationError
from zoom_s2s.stores import FileTokenStore, store_from_url
from zoom_s2s.testing import FakeZoom

from ..support import skip_or_fail

KEY = "abc123"
REPO = Path(__file__).resolve().parents[2]
NOBODY = 65534
AS_ROOT = os.geteuid() == 0


@pytest.fixture
def _require_root() -> None:
    """Skip the test unless it runs as root (it drops privileges to nobody); fail it in CI."""
    if AS_ROOT:
        return
    skip_or_fail("drops privileges to nobody, so needs root", "CI runs as root")


needs_root = pytest.mark.usefixtures("_require_root")

# -- other processes of the same user -------------------------------------------------

CHILD = textwrap.dedent(
    """
    import asyncio, os, sys
    from zoom_s2s.stores import FileTokenStore

    async def main(directory, command):
        store = FileTokenStore(directory)
        if command == "generations":
            numbers = []
            for _ in range(25):
                while (lease := (await store.acquire_lock("abc123", ttl=60)).lease) is None:
                    await store.wait_for_change("abc123", timeout=5)
                numbers.append(lease.generation)
                await store.release_lock(lease)
            print(" ".join(map(str, numbers)), flush=True)
            return
        lease = (await store.acquire_lock("abc123", ttl=1 if command == "hold-1s" else 60)).lease
        print("locked" if lease else "busy", flush=True)
        if command == "hold-then-die":
            await asyncio.sleep(0.5)
        elif command in ("hold", "hold-1s"):
            sys.stdin.readline()
            print("released" if await store.release_lock(lease) else "lapsed", flush=True)
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


async def test_lock_of_a_live_process_is_respected_and_its_release_wakes_the_waiter(
    tmp_path: Path,
) -> None:
    store = FileTokenStore(tmp_path / "tokens")
    child = await spawn(store.directory, "hold")
    assert await line(child) == "locked"
    assert (await store.acquire_lock(KEY, ttl=60)).lease is None
    waiter = asyncio.create_task(store.wait_for_change(KEY, timeout=20))
    await asyncio.sleep(0.3)
    assert not waiter.done()
    assert child.stdin is not None
    child.stdin.write(b"go\n")
    assert await line(child) == "released"
    await asyncio.wait_for(waiter, 10)
    assert await child.wait() == 0
    lease = (await store.acquire_lock(KEY, ttl=60)).lease
    assert lease is not None
    await store.release_lock(lease)
    await store.aclose()


async def test_a_stopped_holder_is_waited_for_until_its_ttl_then_taken_over(
    tmp_path: Path,
) -> None:
    store = FileTokenStore(tmp_path / "tokens")
    child = await spawn(store.directory, "hold-1s")
    assert await line(child) == "locked"
    os.kill(child.pid, signal.SIGSTOP)  # alive, holding its OS locks, doing nothing
    try:
        assert (await store.acquire_lock(KEY, ttl=60)).lease is None
        loop = asyncio.get_running_loop()
        started = loop.time()
        await store.wait_for_change(KEY, timeout=20)
        assert loop.time() - started < 10, "slept past the lease's TTL"
        lease = (await store.acquire_lock(KEY, ttl=60)).lease  # lapsed: taken over, holder alive
        assert lease is not None
        assert lease.generation == 2
    finally:
        os.kill(child.pid, signal.SIGCONT)
    assert child.stdin is not None
    child.stdin.write(b"go\n")
    assert await line(child) == "lapsed"  # its late release frees nothing
    assert await child.wait() == 0
    assert (await store.acquire_lock(KEY, ttl=60)).lease is None  # still ours
    assert await store.release_lock(lease)
    await store.aclose()


async def test_lock_of_a_dead_process_is_taken_over_before_its_ttl(tmp_path: Path) -> None:
    store = FileTokenStore(tmp_path / "tokens")
    child = await spawn(store.directory, "die")
    assert await line(child) == "locked"
    await child.wait()
    lease = (await store.acquire_lock(KEY, ttl=60)).lease  # the child's lease had 60 s left
    assert lease is not None
    assert lease.generation == 2
    assert await store.release_lock(lease) is True
    assert not list(store.directory.glob("*-*"))  # the dead holder's lock files are gone
    await store.aclose()


async def test_waiter_returns_when_the_holder_dies(tmp_path: Path) -> None:
    store = FileTokenStore(tmp_path / "tokens")
    child = await spawn(store.directory, "hold-then-die")
    assert await line(child) == "locked"
    loop = asyncio.get_running_loop()
    started = loop.time()
    await store.wait_for_change(KEY, timeout=20)
    assert loop.time() - started < 10, "waited for the timeout, not for the holder's death"
    await child.wait()
    assert (await store.acquire_lock(KEY, ttl=60)).lease is not None
    await store.aclose()


async def test_generations_are_unique_across_processes(tmp_path: Path) -> None:
    directory = tmp_path / "tokens"
    children = [await spawn(directory, "generations") for _ in range(4)]
    numbers = [int(n) for child in children for n in (await line(child)).split()]
    for child in children:
        assert await child.wait() == 0
    assert len(numbers) == 100
    assert sorted(numbers) == list(range(1, 101))  # unique, and none skipped or reused


# -- a second user: nobody ------------------------------------------------------------

# Runs as root until it has imported everything, then becomes nobody. Python itself
# may live under /root (mode 0700): nothing may be imported after the switch.
AS_NOBODY = textwrap.dedent(
    """
    import asyncio, concurrent.futures.thread, json, os, sys, time
    from zoom_s2s import AccessToken
    from zoom_s2s.stores import FileTokenStore
    from zoom_s2s.stores.base import LockLease

    command, target = sys.argv[1], sys.argv[2]
    os.setgroups([])
    os.setgid(65534)
    os.setuid(65534)

    if command == "plant":  # nobody's own store, with a token pointing at nobody's server
        async def plant():
            store = FileTokenStore(target)
            lease = (await store.acquire_lock("abc123", ttl=10)).lease
            now = time.time()
            token = AccessToken(access_token="planted-token", expires_ts=now + 3600,
                                issued_ts=now, api_url="https://attacker.example")
            assert await store.write(lease, token)
            await store.release_lock(lease)
            await store.aclose()
        asyncio.run(plant())
    elif command == "touch":  # an ordinary file of nobody's, last changed an hour ago
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        os.close(fd)
        old = time.time() - 3600
        os.utime(target, (old, old))
    print("ok", os.getuid(), flush=True)
    """
)


def as_nobody(command: str, target: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run(
        [sys.executable, "-c", AS_NOBODY, command, str(target)],
        capture_output=True, text=True, env=env, cwd="/", timeout=60, check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["ok", str(NOBODY)]


@pytest.fixture
def shared_base() -> Iterator[Path]:
    """A directory nobody can reach (pytest's tmp_path is inside a 0700 directory)."""
    base = Path(tempfile.mkdtemp(prefix="zoom-s2s-hardening-"))
    base.chmod(0o755)
    try:
        yield base
    finally:
        shutil.rmtree(base, ignore_errors=True)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@needs_root
async def test_root_refuses_a_directory_and_token_another_user_planted(
    shared_base: Path,
) -> None:
    theirs = shared_base / "theirs"
    theirs.mkdir(mode=0o755)
    os.chown(theirs, NOBODY, NOBODY)
    as_nobody("plant", theirs)  # nobody's own store, nobody's token file
    assert (theirs / f"{KEY}.json").stat().st_uid == NOBODY

    store = FileTokenStore(theirs)
    with pytest.raises(ConfigurationError, match=f"belongs to uid {NOBODY}"):
        await store.read(KEY)
    with pytest.raises(ConfigurationError, match=f"belongs to uid {NOBODY}"):
        await store.acquire_lock(KEY, ttl=10)
    await store.aclose()

    # Through the manager too: the planted token (and its api_url) is never handed out.
    with FakeZoom().running_in_thread() as zoom:
        tokens = TokenManager(zoom.credentials, token_url=zoom.token_url,
                              store=store_from_url(f"file://{theirs}"), hooks=[])
        try:
            with pytest.raises(ConfigurationError):
                await asyncio.wait_for(tokens.get_token(), 30)
        finally:
            await tokens.aclose()
        assert zoom.token_requests == 0


@needs_root
async def test_a_sticky_shared_directory_is_left_to_its_users(shared_base: Path) -> None:
    like_tmp = shared_base / "like-tmp"
    like_tmp.mkdir()
    like_tmp.chmod(0o1777)
    theirs = like_tmp / ".their-program.json.0123456789abcdef.tmp"
    as_nobody("touch", theirs)  # older than a minute, named like a temp file

    store = FileTokenStore(like_tmp)
    with pytest.raises(ConfigurationError, match="private subdirectory"):
        await store.read(KEY)
    await store.aclose()
    private = FileTokenStore(like_tmp / "zoom-s2s")  # what the message suggests
    lease = (await private.acquire_lock(KEY, ttl=10)).lease
    assert lease is not None
    now = time.time()
    assert await private.write(lease, AccessToken("t" * 20, expires_ts=now + 60, issued_ts=now))
    await private.release_lock(lease)
    await private.aclose()

    assert mode(like_tmp) == 0o1777
    assert theirs.exists()  # another program's file is not the store's to sweep
    as_nobody("touch", like_tmp / "still-mine")  # nobody is not locked out
    assert stat.S_IMODE((like_tmp / "zoom-s2s").stat().st_mode) == 0o700
