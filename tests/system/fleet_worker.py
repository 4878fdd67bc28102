"""One process of a test fleet, and the parent's handle on such processes.

Both halves run on :mod:`tests.harness.fleet`. The child is the workload
:func:`child`: it builds a :class:`~zoom_s2s.TokenManager` on the configured
store, says ``ready`` and then runs its ``steps``, sending JSON messages (an
``event`` field each) and waiting for the parent's ``go`` at every ``gate``.
Its clock may be skewed (``skew``: seconds added to :func:`time.time`) and it may
freeze itself with SIGSTOP right after its fetch from Zoom (``stop_after_fetch``).

The parent half, :func:`fleet` and :class:`Child`, starts such processes with a
deadline on every wait and kills whatever is still running when the test ends,
passed or failed. Counting happens at the :class:`~zoom_s2s.testing.FakeZoom` the
test serves from a thread; the children report fingerprints (never tokens).

Steps:

``gate``        report ``gate``; wait for ``go``; sleep until that wall-clock instant
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
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tests.harness.fleet import Fleet as _Harness
from tests.harness.fleet import FleetWorker, WorkerContext

__all__ = ["Child", "Fleet", "base_config", "child", "fleet", "open_store", "read_store"]

ROOT = Path(__file__).resolve().parents[2]
_real_time = time.time

DEFAULT_TIMEOUT = 30.0  # seconds any single wait of the parent may take (a hang guard)


# -- stores (used by both halves) ---------------------------------------------------


def store_url(spec: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """The store URL and :func:`~zoom_s2s.store_from_url` options ``spec`` describes:
    ``{"kind": "file", "path": ...}`` or
    ``{"kind": "redis", "url": ..., "cluster": bool, "prefix": ...}``."""
    if spec["kind"] == "file":
        return Path(spec["path"]).as_uri(), {}
    if spec["kind"] == "redis":
        options = {k: v for k, v in spec.items() if k in ("cluster", "prefix")}
        return spec["url"], options
    if spec["kind"] == "postgres":  # {"kind": "postgres", "url": ..., "schema": ...}
        return spec["url"], {k: v for k, v in spec.items() if k == "schema"}
    raise ValueError(f"unknown store kind {spec['kind']!r}")


def open_store(spec: dict[str, Any]) -> Any:
    """Build the store ``spec`` describes (see :func:`store_url`)."""
    from zoom_s2s import store_from_url

    url, options = store_url(spec)
    return store_from_url(url, **options)


async def read_store(spec: dict[str, Any], key: str) -> str | None:
    """The fingerprint of the token ``spec``'s store holds under ``key``, if any."""
    store = open_store(spec)
    try:
        token = (await store.read(key)).token
    finally:
        await store.aclose()
    return None if token is None else str(token.fingerprint)


# -- the child ----------------------------------------------------------------------


async def child(worker: WorkerContext) -> None:
    """The workload: the steps of ``worker.options`` (the test's config)."""
    config = worker.options
    skew = float(config.get("skew", 0.0))
    if skew:
        # This host's wall clock is off by `skew`, for zoom_s2s (its clock seam) and the rest.
        from zoom_s2s import _clock

        time.time = _clock.wall = lambda: _real_time() + skew
    import aiohttp

    from zoom_s2s import RetryPolicy, TokenEvent, TokenManager
    from zoom_s2s.events import EventKind

    counts: collections.Counter[str] = collections.Counter()

    def hook(event: TokenEvent) -> None:
        counts[event.kind.value] += 1
        if event.kind is EventKind.FETCHED and config.get("stop_after_fetch"):
            # Freeze between the fetch and the fenced write, holding the lock:
            # the parent lets the lock's TTL lapse before it sends SIGCONT.
            worker.send("stopping", fingerprint=event.token_fingerprint)
            os.kill(os.getpid(), signal.SIGSTOP)
            worker.send("continued")

    retry = RetryPolicy(
        **config.get(
            "retry", {"wait_initial": 0.01, "wait_max": 0.02, "wait_jitter": 0, "timeout": 10.0}
        )
    )
    store = worker.open_store()
    first = last = None
    assert worker.credentials is not None
    try:
        async with TokenManager(
            worker.credentials,
            store=store,
            token_url=worker.token_url,
            retry=retry,
            hooks=[hook],
            **config.get("manager", {}),
        ) as tokens:
            worker.send("ready", pid=os.getpid(), store_key=tokens.store_key)
            for step in config["steps"]:
                if step == "gate":
                    await worker.gate()
                elif step == "get":
                    got = await asyncio.gather(
                        *(tokens.get_token() for _ in range(config.get("coroutines", 1)))
                    )
                    last = got[0]
                    first = first or last
                    worker.send("got", fingerprints=[t.fingerprint for t in got])
                elif step == "invalidate":
                    assert first is not None, "invalidate needs a 'get' first"
                    deleted = await tokens.invalidate(first)
                    worker.send("invalidated", fingerprint=first.fingerprint, deleted=deleted)
                elif step == "api":
                    assert last is not None, "api needs a 'get' first"
                    async with (
                        aiohttp.ClientSession() as session,
                        session.get(
                            f"{worker.api_base_url}/users/me",
                            headers={"Authorization": f"Bearer {last.access_token}"},
                        ) as response,
                    ):
                        await response.read()
                        worker.send("api", status=response.status)
                else:
                    raise ValueError(f"unknown step {step!r}")
            stats = tokens.stats()
            worker.send(
                "done",
                stats={
                    "fetches": stats.fetches,
                    "adoptions": stats.adoptions,
                    "lock_waits": stats.lock_waits,
                    "expires_in": stats.expires_in,
                },
                events=dict(counts),
                # The expiry this process believes in, on the real clock.
                real_expires_at=None if last is None else last.expires_ts - skew,
            )
    finally:
        await store.aclose()


# -- the parent ---------------------------------------------------------------------


class Child:
    """One child process of a :class:`Fleet` and its messages (over the harness's worker)."""

    def __init__(self, worker: FleetWorker) -> None:
        self.worker = worker
        self.name = worker.name
        self.pid = worker.pid
        self.process = worker.process
        self.seen = worker.seen

    def stderr(self) -> str:
        return self.worker.log()

    def expect(self, event: str, timeout: float = DEFAULT_TIMEOUT) -> dict[str, Any]:
        """The child's next message, which must be ``event``; fail on anything else."""
        return self.worker.expect(event, timeout)

    def go(self, start_at: float) -> None:
        """Open the child's current gate; it proceeds at wall time ``start_at``."""
        self.worker.go(start_at)

    def finish(self, timeout: float = DEFAULT_TIMEOUT) -> dict[str, Any]:
        """Wait for ``done`` and a clean exit; return the ``done`` message."""
        done = self.expect("done", timeout)
        self.worker.finish(timeout)
        return done

    def state(self) -> str:
        """The process state letter from ``/proc`` (``T``: stopped), or ``X`` if gone."""
        return self.worker.state()

    def wait_stopped(self, timeout: float = DEFAULT_TIMEOUT) -> None:
        """Wait until the process is stopped by a signal (SIGSTOP)."""
        self.worker.wait_stopped(timeout)

    def signal(self, signum: int) -> None:
        self.worker.signal(signum)

    def kill(self) -> None:
        """SIGKILL (works on stopped processes too) and reap."""
        self.worker.kill()


class Fleet:
    """Starts children; every one still running is killed when the ``with`` block ends."""

    def __init__(self, base: dict[str, Any]) -> None:
        self.base = base
        self.children: list[Child] = []
        url, options = store_url(base["store"])
        self._harness = _Harness(
            token_url=base["token_url"],
            credentials=base["credentials"],
            api_base_url=base.get("api_base_url"),
            store=url,
            store_options=options,
            timeout=DEFAULT_TIMEOUT + 10,
        )

    def spawn(self, name: str, **overrides: Any) -> Child:
        config = {k: v for k, v in self.base.items() if k != "credentials"}
        config.update(name=name, **overrides)
        child_ = Child(self._harness.spawn(child, config, name=name))
        self.children.append(child_)
        return child_

    def go(self, children: list[Child], delay: float = 0.3) -> None:
        """Open the gate of every child in ``children``: they all proceed at one instant."""
        self._harness.go([c.worker for c in children], delay)

    def kill_all(self) -> None:
        self._harness.close()


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
    return {
        "token_url": zoom.token_url,
        "api_base_url": zoom.api_base_url,
        "credentials": zoom.credentials,
        "store": store,
        **extra,
    }
