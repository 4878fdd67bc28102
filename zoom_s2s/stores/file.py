"""FileTokenStore: one JSON file per key in a directory, for processes on one host.

Files per key (all mode 0600, in a 0700 directory)::

    <key>.json              the token: encode_record(token, generation)
    <key>.gen               {"issued": n, "written": m}: counter and fence watermark
    <key>.lease             {"owner", "expires_at" (wall clock), "pid"}: the store lock
    <key>.mutex             OS lock guarding every read-modify-write of the above
    <key>.owner-<owner>     OS lock the lease holder keeps while its lease lives

Locking uses the ``filelock`` library: it is well kept, and its native Unix
lock is ``flock(2)``, which the kernel drops when the holding process dies, so
a crashed holder can never wedge the others. The mutex is only ever *tried*
(``timeout=0``) and retried with ``asyncio.sleep``: the event loop never blocks
on another process. The lease itself is a file, not an OS lock, because it must
outlive the coroutine that took it and expire after its TTL even when the
holder is alive but stuck.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import json
import logging
import os
import re
import stat
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import attrs
import filelock

from ..errors import ConfigurationError, StoreError, StoreUnavailableError
from ..models import AccessToken
from .base import FailureRecord, LockLease, decode_record, encode_record, new_owner

__all__ = ["FileTokenStore"]

logger = logging.getLogger("zoom_s2s.stores.file")

_T = TypeVar("_T")
_KEY = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9_.-]{0,199}")
_MUTEX_TIMEOUT = 5.0  # seconds; the mutex is held for one small read-modify-write
_MAX_POLL = 0.25  # seconds; wait_for_change's back-off ceiling
_STALE_TEMP_AGE = 60.0  # seconds: no live write takes this long


# filelock >= 4 would fall back to a soft (file-exists) lock where flock(2) is
# missing; such locks outlive dead holders, so fail instead (filelock 3 does).
_NO_SOFT_LOCKS: dict[str, Any] = (
    {"fallback_to_soft": False}
    if "fallback_to_soft" in inspect.signature(filelock.FileLock.__init__).parameters
    else {}
)


def _os_lock(path: Path) -> filelock.BaseFileLock:
    # A fresh object per use: filelock objects must not cross fork(), and two
    # objects on one path conflict like two processes, which the probes need.
    return filelock.FileLock(path, mode=0o600, **_NO_SOFT_LOCKS)


def _try_os_lock(lock: filelock.BaseFileLock) -> bool:
    try:
        lock.acquire(timeout=0)
    except filelock.Timeout:
        return False
    return True


class FileTokenStore:
    """Shares tokens between the processes of one host through a directory.

    The directory is created with mode 0700 (and tightened to 0700 if it
    exists and belongs to this user); token files are 0600. Writes go to a
    temporary file that is fsynced and renamed over the old one, so readers
    never see a torn file. A corrupt or unreadable token file is a cache miss
    (logged as a warning) and the next write replaces it.

    The lock is a lease file with a TTL. A waiter may take over when the TTL
    has passed, or at once when the holder's process has died (its OS lock
    on ``<key>.owner-<owner>`` is gone). Expiry is judged by the wall clock,
    which all processes of one host share.

    Only local filesystems on POSIX systems (Linux, macOS) are supported.
    NFS, SMB and other network filesystems are not: their locks and renames
    do not give the guarantees above, and the store would not notice.

    Args:
        directory: Where to keep the files; created on first use.
        poll_interval: First delay of :meth:`wait_for_change`'s polling; it
            grows to 0.25 s.
    """

    def __init__(self, directory: str | os.PathLike[str], *, poll_interval: float = 0.05) -> None:
        if poll_interval <= 0:
            raise ConfigurationError(f"poll_interval must be positive, got {poll_interval!r}")
        self._dir = Path(os.path.abspath(directory))
        self._poll_interval = poll_interval
        # owner -> (key, OS lock kept while that lease lives)
        self._held: dict[str, tuple[str, filelock.BaseFileLock]] = {}
        self._pid = os.getpid()
        self._closed = False
        self._swept = False  # stale temp files removed once per store

    @property
    def name(self) -> str:
        return f"file://{self._dir}"

    @property
    def directory(self) -> Path:
        """The absolute directory holding the files."""
        return self._dir

    def __repr__(self) -> str:
        return f"FileTokenStore({str(self._dir)!r}, held_locks={len(self._held)})"

    # -- paths, errors, small files -------------------------------------------

    def _path(self, key: str, suffix: str) -> Path:
        if not _KEY.fullmatch(key):
            raise ConfigurationError(
                f"store key {key!r} cannot be a file name; use letters, digits, '_', '-', '.'"
            )
        return self._dir / f"{key}{suffix}"

    def _unavailable(self, action: str, exc: OSError) -> StoreUnavailableError:
        reason = exc.strerror or exc.__class__.__name__
        return StoreUnavailableError(
            f"cannot {action} in {self._dir} ({reason}); make sure the directory exists or "
            "can be created, is writable by this user, and is on a local filesystem",
            store=self.name,
        )

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError(f"{self.name} store is closed; create a new FileTokenStore")

    def _ensure_dir(self) -> None:
        self._check_open()
        try:
            self._dir.mkdir(mode=0o700, parents=True, exist_ok=True)
            info = self._dir.stat()
            if info.st_uid == os.geteuid() and stat.S_IMODE(info.st_mode) != 0o700:
                self._dir.chmod(0o700)
                info = self._dir.stat()
        except FileExistsError as exc:  # a file is in the way
            raise self._unavailable("create the directory", exc) from exc
        except OSError as exc:
            raise self._unavailable("use the directory", exc) from exc
        if info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
            # Another user could plant a token (or a lease) here: refuse.
            raise StoreUnavailableError(
                f"directory {self._dir} is writable by other users and not ours to fix "
                f"(mode {stat.S_IMODE(info.st_mode):o}); make it owned by this user with "
                "mode 700, or choose another directory",
                store=self.name,
            )
        if not os.access(self._dir, os.W_OK | os.X_OK):
            raise StoreUnavailableError(
                f"directory {self._dir} is not writable by this user; fix its owner "
                "or permissions, or choose another directory",
                store=self.name,
            )
        if not self._swept:
            self._swept = True
            self._remove_stale_temp_files()

    def _remove_stale_temp_files(self) -> None:
        """Remove temp files a writer killed mid-write left behind (never read as tokens)."""
        cutoff = time.time() - _STALE_TEMP_AGE
        for temp in self._dir.glob(".*.tmp"):
            with contextlib.suppress(OSError):
                if temp.stat().st_mtime < cutoff:
                    temp.unlink()

    def _write_atomic(self, path: Path, data: bytes, *, durable: bool) -> None:
        fd, temp = tempfile.mkstemp(dir=self._dir, prefix=f".{path.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as file:
                file.write(data)
                if durable:
                    file.flush()
                    os.fsync(file.fileno())
            os.replace(temp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temp)
            raise
        if durable:
            self._sync_dir()

    def _sync_dir(self) -> None:
        fd = os.open(self._dir, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def _read_json(self, path: Path) -> dict[str, Any] | None:
        """A small JSON object file, or ``None`` if missing or corrupt (with a warning)."""
        try:
            data = json.loads(path.read_bytes())
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            logger.warning("ignoring unreadable %s (%s)", path, exc.__class__.__name__)
            return None
        if not isinstance(data, dict):
            logger.warning("ignoring %s: not a JSON object", path)
            return None
        return data

    def _load_token(self, key: str) -> tuple[AccessToken, int] | None:
        path = self._path(key, ".json")
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            logger.warning("token file %s is unreadable (%s); treating as a miss", path, exc)
            return None
        try:
            return decode_record(data)
        except ValueError as exc:
            logger.warning(
                "token file %s is corrupt (%s); treating as a miss, the next write replaces it",
                path,
                exc,
            )
            return None

    def _generations(self, key: str) -> tuple[int, int]:
        """Return ``(issued, written)``; the token file's generation also fences."""
        state = self._read_json(self._path(key, ".gen")) or {}
        issued, written = state.get("issued", 0), state.get("written", 0)
        issued = issued if isinstance(issued, int) else 0
        written = written if isinstance(written, int) else 0
        loaded = self._load_token(key)
        if loaded is not None:
            written = max(written, loaded[1])
        return max(issued, written), written

    def _save_generations(self, key: str, issued: int, written: int) -> None:
        data = json.dumps({"issued": issued, "written": written}).encode()
        self._write_atomic(self._path(key, ".gen"), data, durable=True)

    async def _locked(self, key: str, action: str, body: Callable[[], _T]) -> _T:
        """Run ``body`` (synchronous, quick) while holding ``<key>.mutex``."""
        self._ensure_dir()
        mutex = _os_lock(self._path(key, ".mutex"))
        loop = asyncio.get_running_loop()
        deadline = loop.time() + _MUTEX_TIMEOUT
        delay = 0.001
        while True:
            try:
                if _try_os_lock(mutex):
                    break
            except OSError as exc:
                raise self._unavailable(f"lock {key}.mutex", exc) from exc
            if loop.time() >= deadline:
                raise StoreError(
                    f"{key}.mutex in {self._dir} stayed locked for {_MUTEX_TIMEOUT} s; "
                    "a process holding it may be stopped (SIGSTOP) or hung",
                    store=self.name,
                )
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.02)
        try:
            return body()
        except OSError as exc:
            raise self._unavailable(action, exc) from exc
        finally:
            mutex.release()

    # -- tokens ---------------------------------------------------------------

    async def read(self, key: str) -> AccessToken | None:
        self._ensure_dir()
        loaded = self._load_token(key)
        if loaded is None or loaded[0].expires_at <= time.time():
            return None
        return loaded[0]

    async def write(self, key: str, token: AccessToken, *, generation: int) -> bool:
        record = encode_record(token, generation)
        path = self._path(key, ".json")

        def body() -> bool:
            issued, written = self._generations(key)
            if generation < written:
                logger.debug(
                    "refused stale write of token %s for %s: generation %d < %d",
                    token.fingerprint, key, generation, written,
                )
                return False
            # The watermark goes first: if we die between the two writes, it still fences.
            self._save_generations(key, max(issued, generation), generation)
            if token.expires_at > time.time():
                self._write_atomic(path, record, durable=True)
            else:
                path.unlink(missing_ok=True)
            return True

        return await self._locked(key, "write the token", body)

    async def delete(self, key: str, *, fingerprint: str) -> bool:
        def body() -> bool:
            loaded = self._load_token(key)
            if loaded is None or loaded[0].fingerprint != fingerprint:
                return False
            self._path(key, ".json").unlink(missing_ok=True)
            self._sync_dir()
            return True

        return await self._locked(key, "delete the token", body)

    async def next_generation(self, key: str) -> int:
        def body() -> int:
            issued, written = self._generations(key)
            self._save_generations(key, issued + 1, written)
            return issued + 1

        return await self._locked(key, "update the generation", body)

    # -- the lock -------------------------------------------------------------

    def _read_lease(self, key: str) -> tuple[str, float] | None:
        lease = self._read_json(self._path(key, ".lease"))
        if lease is None:
            return None
        owner, expires_at = lease.get("owner"), lease.get("expires_at")
        if not isinstance(owner, str) or not isinstance(expires_at, (int, float)):
            logger.warning("ignoring malformed lease file for %s", key)
            return None
        return owner, float(expires_at)

    def _holder_alive(self, key: str, owner: str, *, clean: bool) -> bool:
        """Probe the holder's OS lock: if we can take it, the holder is gone."""
        if owner in self._held:
            return True
        path = self._path(key, f".owner-{owner}")
        if not path.exists():
            return False
        probe = _os_lock(path)
        if not _try_os_lock(probe):
            return True
        try:
            if clean:  # only under the mutex: then no other prober has it open
                path.unlink(missing_ok=True)
        finally:
            probe.release()
        return False

    async def acquire_lock(self, key: str, *, ttl: float) -> LockLease | None:
        def body() -> LockLease | None:
            current = self._read_lease(key)
            if current is not None:
                alive = self._holder_alive(key, current[0], clean=True)
                if alive and current[1] > time.time():
                    return None
            owner = new_owner()
            owner_lock = _os_lock(self._path(key, f".owner-{owner}"))
            if not _try_os_lock(owner_lock):  # a fresh random name: cannot be taken
                raise StoreError(f"could not lock a new owner file for {key}", store=self.name)
            try:
                lease = {"owner": owner, "expires_at": time.time() + ttl, "pid": os.getpid()}
                self._write_atomic(
                    self._path(key, ".lease"), json.dumps(lease).encode(), durable=False
                )
            except BaseException:
                self._drop_owner_lock(key, owner, owner_lock)
                raise
            self._held[owner] = (key, owner_lock)
            return LockLease(key=key, owner=owner, ttl=ttl, handle=owner_lock)

        return await self._locked(key, "take the lock", body)

    def _drop_owner_lock(self, key: str, owner: str, lock: filelock.BaseFileLock) -> None:
        if os.getpid() != self._pid:
            return  # inherited through fork(): the parent still holds this lease
        with contextlib.suppress(OSError):
            self._path(key, f".owner-{owner}").unlink(missing_ok=True)
        lock.release()

    async def release_lock(self, lease: LockLease) -> bool:
        def body() -> bool:
            current = self._read_lease(lease.key)
            if current is None or current[0] != lease.owner:
                return False
            self._path(lease.key, ".lease").unlink(missing_ok=True)
            return current[1] > time.time()

        try:
            return await self._locked(lease.key, "release the lock", body)
        finally:
            # Only after the lease is gone: a live OS lock proves the lease's holder is alive.
            held = self._held.pop(lease.owner, None)
            if held is not None:
                self._drop_owner_lock(lease.key, lease.owner, held[1])

    async def wait_for_change(self, key: str, *, timeout: float) -> None:
        self._ensure_dir()
        lease = self._read_lease(key)
        if lease is None or lease[1] <= time.time():
            return
        owner = lease[0]
        if not self._holder_alive(key, owner, clean=False):
            return
        token_path = self._path(key, ".json")
        before = _signature(token_path)
        loop = asyncio.get_running_loop()
        # Never sleep past the lease's end: after it anyone may take over.
        deadline = loop.time() + min(timeout, lease[1] - time.time())
        delay = self._poll_interval
        while (remaining := deadline - loop.time()) > 0:
            await asyncio.sleep(min(delay, remaining))
            delay = min(delay * 1.5, _MAX_POLL)
            now = self._read_lease(key)
            if now is None or now[0] != owner or now[1] <= time.time():
                return
            if _signature(token_path) != before:
                return
            if not self._holder_alive(key, owner, clean=False):
                return

    async def read_failure(self, key: str) -> FailureRecord | None:
        self._ensure_dir()
        data = self._read_json(self._path(key, ".failure"))
        if data is None or not isinstance(data.get("keep_until"), (int, float)):
            return None
        if data["keep_until"] <= time.time():
            return None
        try:
            return FailureRecord.from_json(json.dumps(data.get("record")))
        except ValueError:
            logger.warning("ignoring a corrupt failure record for %s", key)
            return None

    async def write_failure(self, key: str, failure: FailureRecord | None) -> None:
        self._ensure_dir()
        path = self._path(key, ".failure")
        try:
            if failure is None:
                path.unlink(missing_ok=True)
                return
            now = time.time()
            data = {"keep_until": now + failure.keep_for(now), "record": attrs.asdict(failure)}
            self._write_atomic(path, json.dumps(data).encode(), durable=False)
        except OSError as exc:
            raise self._unavailable("remember a failed fetch", exc) from exc

    async def aclose(self) -> None:
        """Release the OS locks of leases still held; their leases end at once."""
        held, self._held = self._held, {}
        for owner, (key, lock) in held.items():
            self._drop_owner_lock(key, owner, lock)
        self._closed = True


def _signature(path: Path) -> tuple[int, int, int] | None:
    try:
        info = path.stat()
    except OSError:
        return None
    return info.st_ino, info.st_mtime_ns, info.st_size
