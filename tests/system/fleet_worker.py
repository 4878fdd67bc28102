"""One process of a test fleet, and the parent's handle on such processes.

The child half runs as ``python -m tests.system.fleet_worker '<json config>'``: it builds a
:class:`~zoom_s2s.TokenManager` on the configured store, says ``ready`` and then
runs its ``steps``, talking JSON lines on stdout (one object per line, with an
``event`` field) and taking ``go <unix time>`` lines on stdin at every ``gate``.
Its clock may be skewed (``skew``: seconds added to :func:`time.time`) and it may
freeze itself with SIGSTOP right after its fetch from Zoom (``stop_after_fetch``).

The parent half, :class:`Fleet` and :class:`Child`, starts such processes with a
deadline on every wait and kills whatever is still running when the test ends,
passed or failed. Counting happens at the :class:`~zoom_s2s.testing.FakeZoom` the
test serves from a thread; the children report fingerprints (never tokens).

Steps:

``gate``        report ``gate``; wait for ``go <t>``; sleep until wall time ``t``
                (the real clock, not the skewed one), so a fleet starts at one instant.
``get``         ``coroutines`` concurrent ``get_token()`` calls; report ``got``.
``invalidate``  ``invalidate()`` the token of the first ``get`` (as after a 401 with it);
                report ``invalidated``.
``api``         ``GET {api_base_url}/users/me`` with the last token; report ``api``.

At the end it reports ``done`` with its manager's stats and event counts.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import faulthandler
import json
import os
import queue
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

ROOT = Path(__file__).resolve().parents[2]
_real_time = time.time

DEFAULT_TIMEOUT = 30.0  # seconds any single wait of the parent may take (a hang guard)


# -- stores (used by both halves) ---------------------------------------------------


def open_store(spec: dict[str, Any]) -> Any:
    """Build the store ``spec`` describes: ``{"kind": "file", "path": ...}`` or
    ``{"kind": "redis", "url": ..., "cluster": bool, "prefix": ...}``."""
    from zoom_s2s import FileTokenStore, RedisTokenStore

    if spec["kind"] == "file":
        return FileTokenStore(spec["path"])
    if spec["kind"] == "redis":
        options: dict[str, Any] = {"cluster": spec.get("cluster", False)}
        if "prefix" in spec:
            options["prefix"] = spec["prefix"]
        return RedisTokenStore.from_url(spec["url"], **options)
    raise ValueError(f"unknown store kind {spec['kind']!r}")


async def read_store(spec: dict[str, Any], key: str) -> str | None:
    """The fingerprint of the token ``spec``'s store holds under ``key``, if any."""
    store = open_store(spec)
    try:
        token = await store.read(key)
    finally:
        await store.aclose()
    return None if token is None else str(token.fingerprint)


# -- the child ----------------------------------------------------------------------


def _emit(event: str, **fields: Any) -> None:
    print(json.dumps({"event": event, **fields}), flush=True)


class _Gates:
    """``go <t>`` lines from stdin, read by a daemon thread (it never blocks exit)."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._lines: asyncio.Queue[str] = asyncio.Queue()
        self._loop = loop
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in sys.stdin:
            self._loop.call_soon_threadsafe(self._lines.put_nowait, line)
        self._loop.call_soon_threadsafe(self._lines.put_nowait, "")

    async def wait(self) -> None:
        line = await self._lines.get()
        if not line.startswith("go "):
            raise RuntimeError(f"expected 'go <time>' on stdin, got {line!r}")
        await asyncio.sleep(max(0.0, float(line.split()[1]) - _real_time()))


async def _child(config: dict[str, Any]) -> None:
    import aiohttp

    from zoom_s2s import Credentials, EventKind, RetryPolicy, TokenEvent, TokenManager

    counts: collections.Counter[str] = collections.Counter()

    def hook(event: TokenEvent) -> None:
        counts[event.kind.value] += 1
        if event.kind is EventKind.FETCHED and config.get("stop_after_fetch"):
            # Freeze between the fetch and the fenced write, holding the lock:
            # the parent lets the lock's TTL lapse before it sends SIGCONT.
            _emit("stopping", fingerprint=event.token_fingerprint)
            os.kill(os.getpid(), signal.SIGSTOP)
            _emit("continued")

    retry = RetryPolicy(**config.get("retry", {"wait_initial": 0.01, "wait_max": 0.02,
                                               "wait_jitter": 0, "timeout": 10.0}))
    store = open_store(config["store"])
    gates = _Gates(asyncio.get_running_loop())
    first = last = None
    try:
        async with TokenManager(
            Credentials(*config["credentials"]),
            store=store,
            token_url=config["token_url"],
            retry=retry,
            hooks=[hook],
            **config.get("manager", {}),
        ) as tokens:
            _emit("ready", pid=os.getpid(), store_key=tokens.store_key)
            for step in config["steps"]:
                if step == "gate":
                    _emit("gate")
                    await gates.wait()
                elif step == "get":
                    got = await asyncio.gather(
                        *(tokens.get_token() for _ in range(config.get("coroutines", 1)))
                    )
                    last = got[0]
                    first = first or last
                    _emit("got", fingerprints=[t.fingerprint for t in got])
                elif step == "invalidate":
                    assert first is not None, "invalidate needs a 'get' first"
                    deleted = await tokens.invalidate(first)
                    _emit("invalidated", fingerprint=first.fingerprint, deleted=deleted)
                elif step == "api":
                    assert last is not None, "api needs a 'get' first"
                    async with aiohttp.ClientSession() as session, session.get(
                        f"{config['api_base_url']}/users/me",
                        headers={"Authorization": f"Bearer {last.access_token}"},
                    ) as response:
                        await response.read()
                        _emit("api", status=response.status)
                else:
                    raise ValueError(f"unknown step {step!r}")
            stats = tokens.stats()
            skew = config.get("skew", 0.0)
            _emit(
                "done",
                stats={"fetches": stats.fetches, "adoptions": stats.adoptions,
                       "lock_waits": stats.lock_waits, "expires_in": stats.expires_in},
                events=dict(counts),
                # The expiry this process believes in, on the real clock.
                real_expires_at=None if last is None else last.expires_at - skew,
            )
    finally:
        await store.aclose()


def main() -> None:
    config = json.loads(sys.argv[1])
    skew = float(config.get("skew", 0.0))
    if skew:
        # Before zoom_s2s is used: every wall-clock read of this process is off by `skew`.
        time.time = lambda: _real_time() + skew
    # The child's own hang guard: dump every thread's stack to stderr and exit.
    faulthandler.dump_traceback_later(config.get("timeout", DEFAULT_TIMEOUT + 10), exit=True)
    try:
        asyncio.run(_child(config))
    except BaseException as exc:
        _emit("error", error=f"{type(exc).__name__}: {exc}", type=type(exc).__name__)
        raise


# -- the parent ---------------------------------------------------------------------


class Child:
    """One ``python -m tests.system.fleet_worker`` process and its stdout messages."""

    def __init__(self, config: dict[str, Any]) -> None:
        self.name: str = config.get("name", "child")
        self._stderr: IO[bytes] = tempfile.TemporaryFile()  # noqa: SIM115 - closed by kill()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tests.system.fleet_worker", json.dumps(config)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            cwd=ROOT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        self.pid = self.process.pid
        self._messages: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self.seen: list[dict[str, Any]] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for raw in self.process.stdout:
            try:
                message = json.loads(raw)
            except ValueError:
                message = {"event": "garbage", "line": raw.decode(errors="replace")}
            self._messages.put(message)
        self._messages.put(None)

    def stderr(self) -> str:
        self._stderr.seek(0)
        return self._stderr.read().decode(errors="replace")[-4000:]

    def _fail(self, why: str) -> AssertionError:
        return AssertionError(
            f"{self.name} (pid {self.pid}): {why}\nmessages: {self.seen}\nstderr:\n{self.stderr()}"
        )

    def expect(self, event: str, timeout: float = DEFAULT_TIMEOUT) -> dict[str, Any]:
        """The child's next message, which must be ``event``; fail on anything else."""
        try:
            message = self._messages.get(timeout=timeout)
        except queue.Empty:
            raise self._fail(f"no {event!r} within {timeout} s") from None
        if message is None:
            self.process.wait(5)
            raise self._fail(f"exited ({self.process.returncode}) before {event!r}")
        self.seen.append(message)
        if message["event"] != event:
            if message["event"] == "error":  # let it finish writing its traceback
                with contextlib.suppress(subprocess.TimeoutExpired):
                    self.process.wait(5)
            raise self._fail(f"sent {message['event']!r} while {event!r} was expected")
        return message

    def go(self, start_at: float) -> None:
        """Open the child's current gate; it proceeds at wall time ``start_at``."""
        assert self.process.stdin is not None
        self.process.stdin.write(f"go {start_at}\n".encode())
        self.process.stdin.flush()

    def finish(self, timeout: float = DEFAULT_TIMEOUT) -> dict[str, Any]:
        """Wait for ``done`` and a clean exit; return the ``done`` message."""
        done = self.expect("done", timeout)
        try:
            returncode = self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            raise self._fail(f"did not exit within {timeout} s after 'done'") from None
        if returncode != 0:
            raise self._fail(f"exited with {returncode}")
        return done

    def state(self) -> str:
        """The process state letter from ``/proc`` (``T``: stopped), or ``X`` if gone."""
        try:
            stat = Path(f"/proc/{self.pid}/stat").read_text()
        except OSError:
            return "X"
        return stat.rsplit(")", 1)[1].split()[0]

    def wait_stopped(self, timeout: float = DEFAULT_TIMEOUT) -> None:
        """Wait until the process is stopped by a signal (SIGSTOP)."""
        deadline = time.monotonic() + timeout
        while self.state() not in ("T", "t"):
            if time.monotonic() > deadline or self.process.poll() is not None:
                raise self._fail(f"not stopped within {timeout} s (state {self.state()})")
            time.sleep(0.01)

    def signal(self, signum: int) -> None:
        self.process.send_signal(signum)

    def kill(self) -> None:
        """SIGKILL (works on stopped processes too) and reap."""
        if self.process.poll() is None:
            self.process.kill()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(10)
        for pipe in (self.process.stdin, self.process.stdout):
            if pipe is not None:
                with contextlib.suppress(OSError):
                    pipe.close()
        self._stderr.close()


class Fleet:
    """Starts children; every one still running is killed when the ``with`` block ends."""

    def __init__(self, base: dict[str, Any]) -> None:
        self.base = base
        self.children: list[Child] = []

    def spawn(self, name: str, **overrides: Any) -> Child:
        child = Child({**self.base, "name": name, **overrides})
        self.children.append(child)
        return child

    def go(self, children: list[Child], delay: float = 0.3) -> None:
        """Open the gate of every child in ``children``: they all proceed at one instant."""
        start_at = _real_time() + delay
        for child in children:
            child.go(start_at)

    def kill_all(self) -> None:
        for child in self.children:
            child.kill()


@contextlib.contextmanager
def fleet(base: dict[str, Any]) -> Iterator[Fleet]:
    """A :class:`Fleet` whose children never outlive the block."""
    running = Fleet(base)
    try:
        yield running
    finally:
        running.kill_all()


def base_config(zoom: Any, store: dict[str, Any], **extra: Any) -> dict[str, Any]:
    """Config shared by a fleet's children: the fake's URLs and credentials, and a store."""
    creds = zoom.credentials
    return {
        "token_url": zoom.token_url,
        "api_base_url": zoom.api_base_url,
        "credentials": [creds.account_id, creds.client_id, creds.client_secret],
        "store": store,
        **extra,
    }


if __name__ == "__main__":
    main()
