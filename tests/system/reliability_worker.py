"""Worker processes for the reliability, store-fault and soak tests, and the parent's handle.

Both halves run on :mod:`tests.harness.fleet`: the child is the workload
:func:`run_mode`, which gets the test's config as its options (credentials
travel over a pipe, never through a file or the command line) and returns its
result to the parent over the harness's channel. Besides that it talks through
files in the worker directory: it creates ``<name>.ready`` when it is ready,
rewrites ``<name>.progress`` (JSON) every 0.2 s, and waits for ``go`` / ``stop``
marker files the parent creates. Its stdout and stderr go to ``<name>.log``.
The harness arms :mod:`faulthandler` as the child's hang guard (``timeout``
seconds), so a stuck child dumps its stacks into the log and exits.

Modes (``config["mode"]``):

``callers``     ``coroutines`` coroutines call ``get_token()`` in a loop (errors
                caught, small random sleeps), optionally followed by
                ``GET {api_base_url}/users/me`` with the token. Before each call
                a coroutine notes whether the manager still held a *usable*
                token (``stats().expires_in`` above ``valid_threshold``): an
                error raised then is counted in ``errors_with_valid_token``,
                which must stay 0. It also samples its own RSS every second.
``file_writer`` take a fencing generation + ``FileTokenStore.write()`` in a tight
                loop (the parent SIGKILLs it at random moments); token number *n*
                is written with generation *n*.
``file_perms``  warms up, drops privileges to ``nobody`` (uid/gid 65534), then
                runs a manager on each configured FileTokenStore directory:
                phase 1 reports what callers see; after ``go`` (the parent fixed
                the directories) phase 2 calls the *same* managers again.

The parent half, :class:`Worker` and :func:`workers`, starts such processes,
waits with deadlines, and kills whatever still runs when the test ends.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import os
import random
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tests.harness.fleet import Fleet, FleetError, FleetWorker, WorkerContext

ROOT = Path(__file__).resolve().parents[2]
BUCKET = 0.5  # seconds per bucket of the callers' timeline


# -- small shared helpers ------------------------------------------------------------


def write_json(path: Path, data: Any) -> None:
    """Write ``data`` atomically (temp file + rename), so a reader never sees half of it."""
    temp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temp.write_text(json.dumps(data))
    os.replace(temp, path)


def rss_kib() -> int:
    """This process's resident set size in KiB (Linux ``/proc``)."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS in /proc/self/status")


def open_store(spec: dict[str, Any]) -> Any:
    """``{"kind": "file", "path": ...}``, ``{"kind": "redis", "url": ..., **options}``
    or ``{"kind": "memory"}``."""
    from zoom_s2s import FileTokenStore, MemoryTokenStore, RedisTokenStore

    kind = spec["kind"]
    if kind == "file":
        return FileTokenStore(spec["path"])
    if kind == "redis":
        options = {k: v for k, v in spec.items() if k not in ("kind", "url")}
        return RedisTokenStore.from_url(spec["url"], **options)
    if kind == "memory":
        return MemoryTokenStore()
    raise ValueError(f"unknown store kind {kind!r}")


# -- the child: callers --------------------------------------------------------------


async def _callers(config: dict[str, Any], out: Path) -> dict[str, Any]:
    import aiohttp

    from zoom_s2s import Credentials, RetryPolicy, TokenManager, ZoomS2SError

    name = config["name"]
    stop_file = out / config.get("stop", "stop")
    go_file = out / config["go"] if config.get("go") else None
    threshold = float(config["valid_threshold"])
    pause_lo, pause_hi = config.get("pause", (0.02, 0.08))
    hang_guard = float(config.get("hang_guard", 60.0))
    api = config.get("api_base_url")

    counts: collections.Counter[str] = collections.Counter()
    error_classes: collections.Counter[str] = collections.Counter()
    api_status: collections.Counter[str] = collections.Counter()
    samples: list[dict[str, Any]] = []  # first errors seen with a valid token (details)
    timeline: dict[int, collections.Counter[str]] = collections.defaultdict(collections.Counter)
    rss: list[tuple[float, int]] = []
    state: dict[str, Any] = {"last_ok_at": None, "last_error_at": None, "last_fp": None}
    stopping = asyncio.Event()

    store = open_store(config["store"])
    tokens = TokenManager(
        Credentials(*config["credentials"]),
        store=store,
        token_url=config["token_url"],
        retry=RetryPolicy(**config.get("retry", {})),
        hooks=[],
        **config.get("manager", {}),
    )
    session = aiohttp.ClientSession() if api else None

    async def call_api(token: Any) -> None:
        assert session is not None
        try:
            async with session.get(
                f"{api}/users/me",
                headers={"Authorization": f"Bearer {token.access_token}"},
                timeout=aiohttp.ClientTimeout(total=10),
            ) as response:
                await response.read()
                api_status[str(response.status)] += 1
        except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
            api_status[type(exc).__name__] += 1

    async def caller() -> None:
        while not stopping.is_set():
            before = tokens.stats().expires_in
            valid = before is not None and before > threshold
            started = time.time()
            bucket = int((started - t0) / BUCKET)
            try:
                token = await asyncio.wait_for(tokens.get_token(), hang_guard)
            except ZoomS2SError as exc:
                counts["errors"] += 1
                error_classes[type(exc).__name__] += 1
                timeline[bucket]["err"] += 1
                state["last_error_at"] = time.time()
                if valid:
                    counts["errors_with_valid_token"] += 1
                    timeline[bucket]["err_valid"] += 1
                    if len(samples) < 10:
                        samples.append({"at": started, "expires_in_before": before,
                                        "error": f"{type(exc).__name__}: {exc}"})
            except asyncio.TimeoutError:
                counts["hangs"] += 1
            else:
                now = time.time()
                counts["ok"] += 1
                timeline[bucket]["ok"] += 1
                if token.remaining(now) <= 0:
                    counts["expired_served"] += 1
                state["last_ok_at"] = now
                state["last_fp"] = token.fingerprint
                if api:
                    await call_api(token)
            await asyncio.sleep(random.uniform(pause_lo, pause_hi))

    async def watcher() -> None:
        next_rss = time.time()
        while not stop_file.exists():
            now = time.time()
            if now >= next_rss:
                rss.append((now - t0, rss_kib()))
                next_rss = now + 1.0
            write_json(out / f"{name}.progress", {**state, "ok": counts["ok"],
                                                    "errors": counts["errors"]})
            await asyncio.sleep(0.2)
        stopping.set()

    try:
        (out / f"{name}.ready").touch()
        t0 = time.time()
        if go_file is not None:
            while not go_file.exists():  # noqa: ASYNC110 - a file the parent creates
                await asyncio.sleep(0.01)
            t0 = float(json.loads(go_file.read_text()))  # the parent's "go" moment
        rss.append((time.time() - t0, rss_kib()))
        await asyncio.gather(watcher(), *(caller() for _ in range(config["coroutines"])))
        rss.append((time.time() - t0, rss_kib()))
        stats = tokens.stats()
    finally:
        await tokens.aclose()
        if session is not None:
            await session.close()
        await store.aclose()
    return {
        "name": name,
        "pid": os.getpid(),
        "counts": dict(counts),
        "error_classes": dict(error_classes),
        "api_status": dict(api_status),
        "samples": samples,
        "timeline": {str(k): dict(v) for k, v in sorted(timeline.items())},
        "rss": rss,
        "stats": {"fetches": stats.fetches, "adoptions": stats.adoptions,
                  "failures": stats.failures, "waits": stats.waits,
                  "lock_waits": stats.lock_waits, "expires_in": stats.expires_in},
        **state,
    }


# -- the child: a file writer to be killed -------------------------------------------


async def _file_writer(config: dict[str, Any], out: Path) -> dict[str, Any]:
    from zoom_s2s import AccessToken, FileTokenStore

    store = FileTokenStore(config["path"])
    key = config["key"]
    name = config["name"]
    written = 0
    try:
        while True:
            lease = None
            if hasattr(store, "next_generation"):  # the store protocol before the lease
                generation = await store.next_generation(key)
            else:
                lease = (await store.acquire_lock(key, ttl=30.0)).lease
                if lease is None:
                    raise AssertionError("the lock is held by nobody else, yet was refused")
                generation = lease.generation
            now = time.time()
            token = AccessToken(
                access_token=f"writer-token-{generation}-" + "x" * 200,
                expires_ts=now + 3600,
                issued_ts=now,
            )
            if lease is None:
                ok = await store.write(key, token, generation=generation)
            else:
                ok = await store.write(lease, token)
                await store.release_lock(lease)
            if not ok:
                raise AssertionError(f"write of generation {generation} was refused")
            written += 1
            if written == 1:
                (out / f"{name}.ready").touch()
    finally:
        await store.aclose()


# -- the child: FileTokenStore run as nobody -----------------------------------------


async def _file_perms(config: dict[str, Any], out: Path) -> dict[str, Any]:
    from zoom_s2s import (
        Credentials,
        FileTokenStore,
        MemoryTokenStore,
        RetryPolicy,
        TokenManager,
        ZoomS2SError,
    )

    creds = Credentials(*config["credentials"])
    retry = RetryPolicy(**config.get("retry", {}))

    def manager(store: Any, policy: str) -> TokenManager:
        return TokenManager(creds, store=store, token_url=config["token_url"], retry=retry,
                            hooks=[], on_store_error=policy)

    # Warm up as root: everything the run needs is imported before /root (0700, where
    # Python lives) becomes unreadable.
    async with manager(MemoryTokenStore(), "raise") as warm:
        await warm.get_token()
    os.setgroups([])
    os.setgid(65534)
    os.setuid(65534)

    async def attempt(tokens: TokenManager) -> dict[str, Any]:
        started = time.monotonic()
        try:
            token = await asyncio.wait_for(tokens.get_token(), 30)
        except ZoomS2SError as exc:
            return {"ok": False, "type": type(exc).__name__, "message": str(exc),
                    "store": getattr(exc, "store", None),
                    "seconds": time.monotonic() - started}
        stored = (await tokens.store.read(tokens.store_key)).token if tokens.on_store_error == "raise" \
            else None
        return {"ok": True, "fingerprint": token.fingerprint,
                "stored": None if stored is None else stored.fingerprint,
                "seconds": time.monotonic() - started}

    managers = {
        (case, policy): manager(FileTokenStore(path), policy)
        for case, path in config["cases"].items()
        for policy in ("raise", "fetch")
    }
    result: dict[str, Any] = {"uid": os.getuid(), "phase1": {}, "phase2": {}}
    try:
        for (case, policy), tokens in managers.items():
            result["phase1"][f"{case}/{policy}"] = await attempt(tokens)
        write_json(out / f"{config['name']}.phase1", result)
        go = out / config["go"]
        deadline = time.monotonic() + 30
        while not go.exists():
            if time.monotonic() > deadline:
                raise TimeoutError("the parent never said go")
            await asyncio.sleep(0.02)
        # [S11] Each "fetch" manager writes the token it fetched during the outage once
        # the directory is usable again (its retries back off: up to a few seconds).
        saved_by = time.monotonic() + 30
        for (case, policy), tokens in managers.items():
            if policy == "fetch":
                while (await tokens.store.read(tokens.store_key)).token is None:
                    if time.monotonic() > saved_by:
                        raise TimeoutError(f"{case}: the kept token never reached the store")
                    await asyncio.sleep(0.05)
        # Store errors are backed off like failed fetches: at most 1 s after the first.
        await asyncio.sleep(1.05)
        for (case, policy), tokens in managers.items():
            if policy == "raise":  # the fetch ones hold a valid token and would not look
                result["phase2"][f"{case}/{policy}"] = await attempt(tokens)
    finally:
        for tokens in managers.values():
            await tokens.aclose()
    return result


_MODES = {"callers": _callers, "file_writer": _file_writer, "file_perms": _file_perms}


async def run_mode(worker: WorkerContext) -> dict[str, Any]:
    """The workload: run ``worker.options["mode"]`` with the test's config."""
    config = worker.options
    result: dict[str, Any] = await _MODES[config["mode"]](config, Path(config["dir"]))
    return result


# -- the parent ----------------------------------------------------------------------


class WorkerError(FleetError):
    """A worker failed, died early or did not answer in time."""


class Worker:
    """One worker process (a one-worker :class:`~tests.harness.fleet.Fleet`)."""

    def __init__(self, directory: Path, config: dict[str, Any]) -> None:
        self.name: str = config["name"]
        self.dir = directory
        timeout = float(config.get("timeout", 120))
        self._fleet = Fleet(timeout=timeout, log_dir=directory)
        self.worker: FleetWorker = self._fleet.spawn(
            run_mode, {**config, "dir": str(directory)}, name=self.name, timeout=timeout
        )
        self.process = self.worker.process

    def path(self, suffix: str) -> Path:
        return self.dir / f"{self.name}.{suffix}"

    def log(self) -> str:
        return self.worker.log()

    def _fail(self, why: str) -> WorkerError:
        return WorkerError(f"worker {self.name} (pid {self.process.pid}) {why}\n{self.log()}")

    def wait_for(self, suffix: str, timeout: float = 60.0) -> None:
        """Wait until ``<name>.<suffix>`` exists."""
        deadline = time.monotonic() + timeout
        while not self.path(suffix).exists():
            if self.process.poll() is not None and not self.path(suffix).exists():
                raise self._fail(f"exited with {self.process.returncode} before {suffix}")
            if time.monotonic() > deadline:
                raise self._fail(f"did not write {suffix} within {timeout} s")
            time.sleep(0.01)

    def read(self, suffix: str) -> Any:
        return json.loads(self.path(suffix).read_text())

    def progress(self) -> dict[str, Any]:
        try:
            data: dict[str, Any] = self.read("progress")
        except (OSError, ValueError):
            return {}
        return data

    def result(self, timeout: float = 60.0) -> dict[str, Any]:
        """The child's result, after it exited cleanly."""
        try:
            data: dict[str, Any] = self.worker.finish(timeout)
        except FleetError as exc:
            raise WorkerError(str(exc)) from None
        return data

    def kill(self) -> None:
        self._fleet.close()


@contextlib.contextmanager
def workers(directory: Path | None = None) -> Iterator[tuple[Path, list[Worker]]]:
    """A directory for worker files and a list to put workers in; all are killed at exit."""
    cleanup = None
    if directory is None:
        cleanup = tempfile.TemporaryDirectory(prefix="zoom-s2s-rel-")
        directory = Path(cleanup.name)
    directory.mkdir(parents=True, exist_ok=True)
    started: list[Worker] = []
    try:
        yield directory, started
    finally:
        for worker in started:
            worker.kill()
        if cleanup is not None:
            cleanup.cleanup()


def logs(started: list[Worker]) -> str:
    """The tail of every worker's log, for failure messages."""
    return "\n".join(f"--- {w.name} (exit {w.process.poll()}):\n{w.log()}" for w in started)


def sigkill(worker: Worker) -> None:
    """SIGKILL ``worker`` now (by its pid) and reap it."""
    worker.worker.sigkill()
