"""FileTokenStore: one JSON file per key in a private directory, for processes on one host.

Files, waiting without polling, clocks and what is trusted:
``docs/backends.rst`` ("A local directory").
"""

from __future__ import annotations

import asyncio

# The default executor's module, loaded with the store rather than at its first
# call: a process that drops privileges after start-up may not import any more.
import concurrent.futures.thread  # noqa: F401
import contextlib
import errno
import functools
import json
import logging
import math
import os
import re
import secrets
import stat
import sys
import threading
import time
import urllib.parse
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar, cast

import attrs

from ...errors import ConfigurationError, StoreUnavailableError, UsageError
from ...models import AccessToken
from ..base import (
    BaseTokenStore,
    FailureRecord,
    LockAttempt,
    LockLease,
    StoreState,
    decode_record,
    encode_record,
    new_owner,
)
from .budget import FileRateBudget
from .claims import FileClaims
from .wait import flock_wait, unlock_and_close

if sys.platform != "win32":
    import fcntl

__all__ = ["MAX_FILE_BYTES", "FileTokenStore"]

logger = logging.getLogger("zoom_s2s.stores.file")

_T = TypeVar("_T")

#: The largest file the store reads; a token record is under 4 KiB.
MAX_FILE_BYTES = 64 * 1024

_KEY_PATTERN = r"[A-Za-z0-9_-][A-Za-z0-9_.-]{0,199}"
_KEY = re.compile(_KEY_PATTERN)
_OWNER = re.compile(r"[0-9a-f]{32}")  # new_owner(): also becomes part of file names
# Exactly the temporary files _write_atomic makes; the sweep touches nothing else.
_TEMP = re.compile(rf"\.{_KEY_PATTERN}\.(?:json|failure)\.[0-9a-f]{{16}}\.tmp")
_MUTEX_TIMEOUT = 5.0  # seconds; the mutex is held for one small read-modify-write
_STALE_TEMP_AGE = 60.0  # seconds: no live write takes this long
_MAX_GENERATION = 2**62
_STATE_SIZE = 256  # bytes: a state record (at most ~150) padded with spaces

_O_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_O_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_O_NONBLOCK = getattr(os, "O_NONBLOCK", 0)
_READ_FLAGS = os.O_RDONLY | _O_NOFOLLOW | _O_NONBLOCK | _O_CLOEXEC
_CREATE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | _O_NOFOLLOW | _O_CLOEXEC


def _trusted_owner(uid: int) -> bool:
    return uid in (os.geteuid(), 0)


def _unlink(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)


def write_in_place(path: Path, record: bytes, size: int) -> None:
    """Overwrite ``path`` with ``record`` padded to ``size`` bytes, in one ``pwrite()``.

    Only ever under the key's mutex. A killed process either did or did not
    write: no truncation, so no torn or trailing bytes. Anything at ``path``
    that is not this user's (or root's) regular file (a symlink, a FIFO, a
    planted file) is replaced, never written through.
    """
    data = record.ljust(size)
    flags = os.O_RDWR | os.O_CREAT | _O_NOFOLLOW | _O_CLOEXEC
    try:
        fd = os.open(path, flags, 0o600)
    except OSError as exc:
        if exc.errno != errno.ELOOP:
            raise
        fd = -1  # a symlink: replaced below
    try:
        info = os.fstat(fd) if fd >= 0 else None
        if info is None or not stat.S_ISREG(info.st_mode) or not _trusted_owner(info.st_uid):
            if fd >= 0:
                os.close(fd)
                fd = -1
            _unlink(path)
            fd = os.open(path, flags | os.O_EXCL, 0o600)
            info = None
        if os.pwrite(fd, data, 0) != len(data):
            raise OSError(errno.EIO, "short write", str(path))
        if info is not None and info.st_size > size:
            os.ftruncate(fd, size)
    finally:
        if fd >= 0:
            os.close(fd)


@attrs.define
class _State:
    """``<key>.state``: the fence (highest generation issued and written) and the lease."""

    issued: int = 0
    written: int = 0
    owner: str | None = None
    expires: float = 0.0  # time.monotonic() of the host
    pid: int = 0

    def to_bytes(self) -> bytes:
        return json.dumps(
            {"v": 1, **attrs.asdict(self)}, separators=(",", ":")
        ).encode()

    @classmethod
    def parse(cls, data: bytes) -> _State:
        raw = json.loads(data)
        if not isinstance(raw, dict) or raw.get("v") != 1:
            raise ValueError("not a zoom-s2s state record (version 1)")
        numbers = [raw.get("issued"), raw.get("written"), raw.get("pid")]
        if not all(
            isinstance(n, int) and not isinstance(n, bool) and 0 <= n < _MAX_GENERATION
            for n in numbers
        ):
            raise ValueError("issued, written or pid is not a small non-negative integer")
        owner, expires = raw.get("owner"), raw.get("expires")
        if owner is not None and not (isinstance(owner, str) and _OWNER.fullmatch(owner)):
            raise ValueError("owner is not a lease owner")
        if isinstance(expires, bool) or not isinstance(expires, (int, float)):
            raise ValueError("expires is not a number")
        if not math.isfinite(expires):
            raise ValueError("expires is not finite")
        return cls(raw["issued"], raw["written"], owner, float(expires), raw["pid"])


class _Held:
    """The OS locks of one lease (:attr:`LockLease.handle`).

    ``held`` stays locked until the lease is released (it proves the holder
    is alive); ``wake`` is unlocked at the first write or at release, which
    is what wakes the waiters. Both are only touched by the process that
    took them: after ``fork()`` the child shares the parent's locks, and
    unlocking there would release the parent's.
    """

    def __init__(self, held: tuple[Path, int], wake: tuple[Path, int]) -> None:
        self._held: tuple[Path, int] | None = held
        self._wake: tuple[Path, int] | None = wake
        self._pid = os.getpid()
        self._guard = threading.Lock()

    def _drop(self, which: tuple[Path, int] | None) -> None:
        if which is not None:
            _unlink(which[0])  # first: a new waiter finds no file and returns at once
            unlock_and_close(which[1])

    def wake(self) -> None:
        """Wake the waiters (the lease stays held)."""
        if os.getpid() != self._pid:
            return
        with self._guard:
            wake, self._wake = self._wake, None
        with contextlib.suppress(OSError):
            self._drop(wake)

    def close(self) -> None:
        """Let go of both locks: the lease's holder now looks gone. Idempotent."""
        if os.getpid() != self._pid:
            return
        with self._guard:
            held, wake, self._held, self._wake = self._held, self._wake, None, None
        with contextlib.suppress(OSError):
            self._drop(wake)
        with contextlib.suppress(OSError):
            self._drop(held)


@attrs.frozen
class _Busy:
    """The mutex was taken: ``fd`` is open on it, unlocked, for a blocking wait."""

    fd: int


class FileTokenStore(BaseTokenStore):
    """Shares tokens between the processes of one host through a private directory.

    The directory must belong to this user (or root) and be writable by no
    one else; if it does not exist, the store creates it with mode 0700. The
    store never changes the mode of a directory it did not create: point it
    at a private subdirectory (``/tmp/myapp-zoom`` rather than ``/tmp``).
    Token files are 0600. Writes go to a temporary file that is renamed over
    the old one, so readers never see a torn file, and are fsynced before
    :meth:`write` returns. A corrupt,
    oversized, foreign-owned or non-regular token file is a cache miss
    (logged as a warning) and the next write replaces it.

    The lock is a lease with a TTL in ``<key>.state``. A waiter may take over
    when the TTL has passed, or at once when the holder's process has died
    (the kernel released its OS lock). Waiters sleep on the holder's OS lock
    and wake when it writes, releases or dies: nothing polls.

    Only local filesystems on POSIX systems (Linux, macOS) are supported.
    NFS, SMB and other network filesystems are not: their locks and renames
    do not give the guarantees above, and the store would not notice.

    Args:
        directory: Where to keep the files; created (mode 0700) on first use.

    Raises:
        ConfigurationError: On Windows (no ``flock``); and, from any method,
            when the directory is not this user's or others can write it.
    """

    schemes = ("file",)
    backend_errors = (OSError,)

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        if sys.platform == "win32":
            raise ConfigurationError(
                "FileTokenStore needs a POSIX system (Linux, macOS); use a Redis or memory store"
            )
        self._dir = Path(os.path.abspath(directory))
        self._held: dict[str, _Held] = {}  # owner -> OS locks of leases taken here
        self._closed = False
        self._swept = False  # our stale temp files are removed once per store
        #: The rate budgets of every process of this host, in the directory.
        self.rate_budget = FileRateBudget(self, write_in_place)
        self.webhook_claims = FileClaims(self, write_in_place)

    @classmethod
    def from_url(cls, url: str, **options: Any) -> FileTokenStore:
        """``file:///absolute/directory`` (or ``file://localhost/...``): a local directory.

        Raises:
            ConfigurationError: A host other than localhost, a query or
                fragment, a relative path, or an unknown option.
        """
        from ..url import redact_url

        shown = redact_url(url)
        try:
            parts = urllib.parse.urlsplit(url)
        except ValueError:
            raise ConfigurationError(f"malformed file store URL {shown}") from None
        if parts.netloc not in ("", "localhost"):
            raise ConfigurationError(
                f"file store URL {shown} names a host ({parts.hostname!r}); file stores are "
                "local: use three slashes and an absolute path, e.g. file:///var/lib/myapp/zoom"
            )
        if parts.query or parts.fragment:
            raise ConfigurationError(f"file store URL {shown} cannot have a query or fragment")
        path = urllib.parse.unquote(parts.path)
        if not path.startswith("/"):
            raise ConfigurationError(
                f"file store URL {shown} needs an absolute path, e.g. file:///var/lib/myapp/zoom"
            )
        try:
            return cls(path, **options)
        except TypeError as exc:
            raise ConfigurationError(f"unexpected option for a file store: {exc}") from None

    @property
    def name(self) -> str:
        return f"file://{self._dir}"

    @property
    def directory(self) -> Path:
        """The absolute directory holding the files."""
        return self._dir

    def __repr__(self) -> str:
        return f"FileTokenStore({str(self._dir)!r}, held_locks={len(self._held)})"

    def error_hint(self, exc: BaseException) -> str:
        code = getattr(exc, "errno", None)
        if code in (errno.ENOSPC, errno.EDQUOT):
            return f"free some space (or quota) on the filesystem holding {self._dir}"
        if code == errno.EROFS:
            return f"{self._dir} is on a read-only filesystem; choose a writable directory"
        if code in (errno.ENOLCK, errno.EOPNOTSUPP):
            return "the filesystem does not support flock(); use a directory on a local filesystem"
        if code in (errno.ENOTDIR, errno.EEXIST):
            return (
                "a file is in the way of the directory: remove it, or choose a directory "
                "that can be created and is writable by this user"
            )
        return (
            "make sure the directory exists or can be created, is writable by this user, "
            "and is on a local filesystem"
        )

    # -- the directory and small private files (worker threads only) -----------

    def _path(self, key: str, suffix: str) -> Path:
        if not _KEY.fullmatch(key):
            raise ConfigurationError(
                f"store key {key!r} cannot be a file name; use letters, digits, '_', '-', '.'"
            )
        return self._dir / f"{key}{suffix}"

    def _check_open(self) -> None:
        if self._closed:
            raise UsageError(f"{self.name} store is closed; create a new FileTokenStore")

    def _ensure_dir(self) -> None:
        """Create the directory (0700) if missing; refuse one we must not trust."""
        try:
            info = os.stat(self._dir)
        except FileNotFoundError:
            os.makedirs(self._dir, mode=0o700, exist_ok=True)
            info = os.stat(self._dir)
        if not stat.S_ISDIR(info.st_mode):
            raise NotADirectoryError(errno.ENOTDIR, "not a directory", str(self._dir))
        if not _trusted_owner(info.st_uid):
            raise ConfigurationError(
                f"directory {self._dir} belongs to uid {info.st_uid}, not to this user "
                f"(uid {os.geteuid()}) or root, so its files cannot be trusted; use a "
                "directory of this user's (the store creates a missing one with mode 700)"
            )
        if info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
            raise ConfigurationError(
                f"directory {self._dir} is writable by other users (mode "
                f"{stat.S_IMODE(info.st_mode):o}), who could plant a token or a lease; the "
                "store never changes the mode of a directory it did not create: use a "
                f"private subdirectory instead (e.g. {self._dir / 'zoom-s2s'}, which the "
                "store creates with mode 700) or make this one mode 700 yourself"
            )
        if not os.access(self._dir, os.W_OK | os.X_OK):
            raise PermissionError(errno.EACCES, "not writable by this user", str(self._dir))
        if not self._swept:
            self._swept = True
            self._sweep_temp_files()

    def _sweep_temp_files(self) -> None:
        """Remove our own temp files that a writer killed mid-write left behind."""
        cutoff = time.time() - _STALE_TEMP_AGE
        with contextlib.suppress(OSError), os.scandir(self._dir) as entries:
            for entry in entries:
                if not _TEMP.fullmatch(entry.name):
                    continue
                with contextlib.suppress(OSError):
                    info = entry.stat(follow_symlinks=False)
                    if (
                        stat.S_ISREG(info.st_mode)
                        and info.st_uid == os.geteuid()
                        and info.st_mtime < cutoff
                    ):
                        os.unlink(entry.path)

    def _read_private(self, path: Path) -> bytes | None:
        """A file's bytes, or ``None`` if missing or not to be trusted (with a warning)."""
        try:
            fd = os.open(path, _READ_FLAGS)
        except FileNotFoundError:
            return None
        except OSError as exc:  # ELOOP: a symlink; EACCES, EIO, ...
            logger.warning("ignoring unreadable %s (%s)", path, exc.__class__.__name__)
            return None
        try:
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode):
                logger.warning("ignoring %s: unreadable, not a regular file", path)
                return None
            if not _trusted_owner(info.st_uid):
                logger.warning(
                    "ignoring %s: it belongs to uid %d, not to this user or root "
                    "(the next write replaces it)", path, info.st_uid,
                )
                return None
            data = os.read(fd, MAX_FILE_BYTES + 1)
            if len(data) > MAX_FILE_BYTES:
                logger.warning("ignoring %s: larger than %d bytes", path, MAX_FILE_BYTES)
                return None
            return data
        except OSError as exc:
            logger.warning("ignoring unreadable %s (%s)", path, exc.__class__.__name__)
            return None
        finally:
            os.close(fd)

    def _write_atomic(self, path: Path, data: bytes) -> None:
        """Write ``data`` to a temp file and rename it over ``path`` (not fsynced)."""
        temp = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")
        fd = os.open(temp, _CREATE_FLAGS, 0o600)
        try:
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view) :]
            finally:
                os.close(fd)
            os.replace(temp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temp)
            raise

    def _sync_file(self, path: Path) -> None:
        """Make ``path`` (if it is still there) and its directory entry survive a power loss."""
        with contextlib.suppress(FileNotFoundError):
            fd = os.open(path, _READ_FLAGS)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        self._sync_dir()

    def _sync_dir(self) -> None:
        fd = os.open(self._dir, os.O_RDONLY | _O_CLOEXEC)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def _load_token(self, key: str) -> tuple[AccessToken, int] | None:
        path = self._path(key, ".json")
        data = self._read_private(path)
        if data is None:
            return None
        try:
            return decode_record(data)
        except (ValueError, TypeError) as exc:
            logger.warning(
                "token file %s is corrupt (%s); treating as a miss, the next write replaces it",
                path,
                exc,
            )
            return None

    def _load_state(self, key: str) -> _State:
        path = self._path(key, ".state")
        data = self._read_private(path)
        if data is None:
            return _State()
        try:
            return _State.parse(data)
        except (ValueError, RecursionError) as exc:
            logger.warning("ignoring unreadable %s (%s)", path, exc)
            return _State()

    def _save_state(self, key: str, state: _State) -> None:
        """Overwrite ``<key>.state`` in place (only ever under the mutex).

        The record is padded to a fixed size and written with one
        ``pwrite()``, which a killed process either did or did not do: no
        truncation, so no torn or trailing bytes. Cheaper than a temp file
        and a rename, which on ext4 also starts writeback.
        """
        write_in_place(self._path(key, ".state"), state.to_bytes(), _STATE_SIZE)

    def _fence(self, key: str) -> tuple[_State, tuple[AccessToken, int] | None, int]:
        """The state, the token, and the highest generation written (the token also fences)."""
        state = self._load_state(key)
        loaded = self._load_token(key)
        written = max(state.written, 0 if loaded is None else loaded[1])
        return state, loaded, written

    def _open_lock_file(self, path: Path, flags: int) -> int:
        fd = os.open(path, flags | _O_NOFOLLOW | _O_CLOEXEC, 0o600)
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise StoreUnavailableError(
                    f"{path} is not a regular file; remove it", store=self.name
                )
        except BaseException:
            os.close(fd)
            raise
        return fd

    def _holder_alive(self, key: str, owner: str) -> bool:
        """Probe the holder's ``held`` lock: if a shared lock can be had, the holder is gone."""
        try:
            fd = self._open_lock_file(self._path(key, f".held-{owner}"), os.O_RDONLY)
        except FileNotFoundError:
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        finally:
            unlock_and_close(fd)
        return False

    # -- running work off the event loop --------------------------------------

    async def _run(
        self,
        function: Callable[..., _T],
        *args: Any,
        orphan: Callable[[_T], None] | None = None,
    ) -> _T:
        """Run ``function(*args)`` in a worker thread.

        If the caller is cancelled, the thread still finishes; ``orphan``
        then gets its result (to release what nobody will use).
        """
        self._check_open()
        loop = asyncio.get_running_loop()
        future: asyncio.Future[_T] = loop.run_in_executor(
            None, functools.partial(function, *args)
        )
        try:
            return await asyncio.shield(future)
        except asyncio.CancelledError:
            future.add_done_callback(functools.partial(_after_orphaned, orphan))
            raise

    def _try_locked(
        self, key: str, body: Callable[[], _T], after: Callable[[], None] | None
    ) -> _T | _Busy:
        self._ensure_dir()
        fd = self._open_lock_file(self._path(key, ".mutex"), os.O_RDWR | os.O_CREAT)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return _Busy(fd)
        except BaseException:
            os.close(fd)
            raise
        return self._locked_by(fd, body, after)

    def _locked_by(self, fd: int, body: Callable[[], _T], after: Callable[[], None] | None) -> _T:
        try:
            result = body()
        finally:
            unlock_and_close(fd)
        if after is not None:
            after()
        return result

    async def _locked(
        self,
        key: str,
        body: Callable[[], _T],
        orphan: Callable[[_T], None] | None = None,
        after: Callable[[], None] | None = None,
    ) -> _T:
        """Run ``body`` in a worker thread while holding ``<key>.mutex``, then ``after`` there.

        ``orphan`` gets ``body``'s result if the caller was cancelled meanwhile.
        """

        def orphaned(outcome: _T | _Busy) -> None:
            if isinstance(outcome, _Busy):
                os.close(outcome.fd)
            elif orphan is not None:
                orphan(outcome)

        outcome = await self._run(self._try_locked, key, body, after, orphan=orphaned)
        if not isinstance(outcome, _Busy):
            return cast(_T, outcome)
        # Another process (or store) has the mutex for a moment: let the kernel say when.
        if not await flock_wait(outcome.fd, fcntl.LOCK_EX, _MUTEX_TIMEOUT):
            raise StoreUnavailableError(
                f"{key}.mutex in {self._dir} stayed locked for {_MUTEX_TIMEOUT:g} s; "
                "a process holding it may be stopped (SIGSTOP) or hung",
                store=self.name,
            )
        if self._closed:
            unlock_and_close(outcome.fd)
            self._check_open()
        return await self._run(self._locked_by, outcome.fd, body, after, orphan=orphan)

    # -- tokens ---------------------------------------------------------------

    def _state(self, key: str, loaded: tuple[AccessToken, int] | None) -> StoreState:
        token = None if loaded is None or loaded[0].expires_ts <= time.time() else loaded[0]
        return StoreState(token, self._read_failure(key))

    def _read(self, key: str) -> StoreState:
        self._ensure_dir()
        return self._state(key, self._load_token(key))

    async def read(self, key: str) -> StoreState:
        return await self._run(self._read, key)

    async def write(self, lease: LockLease, token: AccessToken, *, release: bool = False) -> bool:
        key, generation = lease.key, lease.generation
        handle = lease.handle if isinstance(lease.handle, _Held) else None
        record = encode_record(token, generation)
        path = self._path(key, ".json")

        def body() -> bool:
            state, _, written = self._fence(key)
            if generation < written:
                logger.debug(
                    "refused stale write of token %s for %s: generation %d < %d",
                    token.fingerprint, key, generation, written,
                )
                return False
            # The watermark goes first: if we die between the two writes, it still fences.
            state.written = generation
            state.issued = max(state.issued, generation)
            if release and state.owner == lease.owner:
                state.owner = None
            self._save_state(key, state)
            if token.expires_ts > time.time():
                self._write_atomic(path, record)
            else:
                _unlink(path)
            _unlink(self._path(key, ".failure"))
            # The new file is visible now: wake the waiters, then (after the mutex)
            # fsync, which only makes the write survive a power loss.
            if handle is not None:
                handle.wake()
            return True

        def after() -> None:
            if release and handle is not None:
                handle.close()  # after the mutex, as release_lock does
            self._sync_file(path)

        written = await self._locked(key, body, after=after)
        if release:
            self._held.pop(lease.owner, None)
        return written

    async def delete(self, key: str, *, fingerprint: str) -> bool:
        def body() -> bool:
            state, loaded, written = self._fence(key)
            if loaded is None or loaded[0].fingerprint != fingerprint:
                return False
            if state.written < written:  # the token file's generation must keep fencing
                state.written = written
                self._save_state(key, state)
            _unlink(self._path(key, ".json"))
            self._sync_dir()
            return True

        return await self._locked(key, body)

    # -- the lock -------------------------------------------------------------

    async def acquire_lock(self, key: str, *, ttl: float) -> LockAttempt:
        if not (isinstance(ttl, (int, float)) and math.isfinite(ttl) and ttl > 0):
            raise ConfigurationError(f"lock ttl must be a positive number of seconds, got {ttl!r}")
        acquired_at = time.monotonic()

        def body() -> LockAttempt:
            state, loaded, written = self._fence(key)
            if state.owner is not None:
                if time.monotonic() < state.expires and self._holder_alive(key, state.owner):
                    return LockAttempt(None, self._state(key, loaded))
                # Lapsed or dead: its files are litter now (we hold the mutex).
                _unlink(self._path(key, f".held-{state.owner}"))
                _unlink(self._path(key, f".wake-{state.owner}"))
            owner = new_owner()
            handle = self._take_os_locks(key, owner)
            try:
                state.issued = max(state.issued, written) + 1
                state.owner, state.expires, state.pid = owner, acquired_at + ttl, os.getpid()
                self._save_state(key, state)
                found = self._state(key, loaded)
            except BaseException:
                handle.close()
                raise
            lease = LockLease(
                key=key, owner=owner, generation=state.issued, ttl=ttl,
                acquired_at=acquired_at, handle=handle,
            )
            return LockAttempt(lease, found)

        def orphan(attempt: LockAttempt) -> None:
            if attempt.lease is not None and isinstance(attempt.lease.handle, _Held):
                attempt.lease.handle.close()  # looks like a dead holder: taken over at once

        attempt = await self._locked(key, body, orphan)
        if attempt.lease is not None:
            assert isinstance(attempt.lease.handle, _Held)
            self._held[attempt.lease.owner] = attempt.lease.handle
        return attempt

    def _take_os_locks(self, key: str, owner: str) -> _Held:
        taken: list[tuple[Path, int]] = []
        try:
            for suffix in (".held-", ".wake-"):
                path = self._path(key, f"{suffix}{owner}")
                fd = self._open_lock_file(path, _CREATE_FLAGS)
                taken.append((path, fd))
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # a new file: never busy
        except BaseException:
            for path, fd in taken:
                _unlink(path)
                unlock_and_close(fd)
            raise
        return _Held(taken[0], taken[1])

    async def release_lock(self, lease: LockLease) -> bool:
        handle = lease.handle if isinstance(lease.handle, _Held) else None

        def body() -> bool:
            state = self._load_state(lease.key)
            if state.owner != lease.owner:
                return False
            state.owner = None
            self._save_state(lease.key, state)
            return time.monotonic() < state.expires

        # Only after the lease is gone from the state (and the mutex is free again)
        # do the OS locks go: that wakes the waiters.
        after = None if handle is None else handle.close
        try:
            return await self._locked(lease.key, body, after=after)
        finally:
            self._held.pop(lease.owner, None)
            if handle is not None:
                handle.close()  # already done, unless the release failed

    def _wake_lock(self, key: str) -> tuple[int, float] | None:
        """An fd on the holder's ``wake`` file and the lease's time left, if worth waiting."""
        self._ensure_dir()
        state = self._load_state(key)
        left = state.expires - time.monotonic()
        if state.owner is None or left <= 0:
            return None
        try:
            fd = self._open_lock_file(self._path(key, f".wake-{state.owner}"), os.O_RDONLY)
        except FileNotFoundError:
            return None  # already written or released
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return fd, left
        except BaseException:
            os.close(fd)
            raise
        unlock_and_close(fd)  # the holder is gone: no need to wait
        return None

    async def wait_for_change(self, key: str, *, timeout: float) -> StoreState | None:
        def orphan(found: tuple[int, float] | None) -> None:
            if found is not None:
                os.close(found[0])

        found = await self._run(self._wake_lock, key, orphan=orphan)
        if found is None:
            return None
        fd, left = found
        # Never sleep past the lease's end: after it anyone may take over.
        wait = min(timeout, left)
        if wait <= 0:
            os.close(fd)
            return None
        if await flock_wait(fd, fcntl.LOCK_SH, wait):
            unlock_and_close(fd)
        return None

    # -- failures -------------------------------------------------------------

    def _write_failure(self, key: str, failure: FailureRecord, keep_for: float) -> None:
        self._ensure_dir()
        keep = max(keep_for, failure.retry_in)
        data = {
            "v": 1,
            "written_at": time.time(),
            "keep_for": keep,
            "record": failure.to_json(keep_for=keep),
        }
        self._write_atomic(self._path(key, ".failure"), json.dumps(data).encode())

    async def write_failure(
        self, lease: LockLease, failure: FailureRecord, *, keep_for: float
    ) -> None:
        await self._run(self._write_failure, lease.key, failure, keep_for)

    def _read_failure(self, key: str) -> FailureRecord | None:
        path = self._path(key, ".failure")
        data = self._read_private(path)
        if data is None:
            return None
        try:
            raw = json.loads(data)
            if not isinstance(raw, dict) or raw.get("v") != 1:
                raise ValueError("not a zoom-s2s failure file (version 1)")
            written_at, keep_for = _finite(raw, "written_at"), _finite(raw, "keep_for")
            record = raw.get("record")
            if not isinstance(record, str):
                raise ValueError("record is not a string")
            age = max(0.0, time.time() - written_at)  # a clock stepped back ages nothing
            if age >= keep_for:
                return None
            return FailureRecord.from_json(record, age=age)
        except (ValueError, RecursionError) as exc:
            logger.warning("ignoring a corrupt failure record in %s (%s)", path, exc)
            return None


    async def aclose(self) -> None:
        """Release the OS locks of leases still held: their holders look gone at once."""
        held, self._held = self._held, {}
        for handle in held.values():
            handle.close()
        self._closed = True


def _finite(raw: dict[str, Any], name: str) -> float:
    value = raw.get(name)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"{name} is not a finite number")
    return float(value)


def _after_orphaned(
    orphan: Callable[[Any], None] | None, future: asyncio.Future[Any]
) -> None:
    """Done-callback of work whose caller was cancelled: hand its result to ``orphan``."""
    if future.cancelled() or future.exception() is not None:
        return  # retrieved: no "exception was never retrieved" noise
    if orphan is not None:
        with contextlib.suppress(Exception):
            orphan(future.result())
