"""A fleet of spawned worker processes that start a job at one instant.

The parent sends each worker a job (a module-level function and keyword
arguments). A job prepares (stores, sessions, connections), then calls the
``gate`` it is given: that reports "ready" and blocks on one shared
``multiprocessing.Event``. When every worker of the job is ready the parent
sets the event, so all of them start together; their results come back over
their pipes.

Everything is bounded: jobs have a deadline, the parent terminates (then
kills) workers that overrun it or when anything fails or Ctrl-C arrives, and a
worker exits when its parent's pipe closes or (Linux) its parent dies.
"""

from __future__ import annotations

import contextlib
import ctypes
import multiprocessing
import multiprocessing.connection
import os
import signal
import sys
import time
import traceback
from collections.abc import Callable
from multiprocessing.synchronize import Event
from types import TracebackType
from typing import Any

__all__ = ["Fleet", "FleetError", "Gate"]

Gate = Callable[[], None]
_START_TIMEOUT = 60.0  # seconds a ready worker waits for the others


class FleetError(RuntimeError):
    """A worker failed, died or overran its deadline."""


def _die_with_parent() -> None:
    """Ask Linux to SIGTERM this process when its parent dies (no-op elsewhere)."""
    if not sys.platform.startswith("linux"):
        return
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        pr_set_pdeathsig = 1
        libc.prctl(pr_set_pdeathsig, signal.SIGTERM)


def _worker_main(conn: multiprocessing.connection.Connection, start: Event, index: int) -> None:
    _die_with_parent()
    # Ctrl-C reaches the whole process group; the parent does the cleaning up.
    signal.signal(signal.SIGINT, signal.SIG_IGN)

    def gate() -> None:
        conn.send(("ready", None))
        if not start.wait(_START_TIMEOUT):
            raise FleetError(f"worker {index}: the start signal did not come")

    while True:
        try:
            job = conn.recv()
        except (EOFError, OSError):
            return
        if job is None:
            return
        fn, kwargs = job
        try:
            result = fn(gate=gate, index=index, **kwargs)
        except BaseException:
            conn.send(("error", traceback.format_exc()))
        else:
            conn.send(("result", result))


class Fleet:
    """``size`` spawned worker processes, reused across jobs.

    Args:
        size: Number of workers.
    """

    def __init__(self, size: int) -> None:
        context = multiprocessing.get_context("spawn")
        self._start = context.Event()
        self._conns: list[multiprocessing.connection.Connection] = []
        self._procs: list[multiprocessing.process.BaseProcess] = []
        try:
            for index in range(size):
                parent_end, child_end = context.Pipe()
                proc = context.Process(
                    target=_worker_main,
                    args=(child_end, self._start, index),
                    name=f"bench-worker-{index}",
                    daemon=True,
                )
                proc.start()
                child_end.close()
                self._conns.append(parent_end)
                self._procs.append(proc)
        except BaseException:
            self.close()
            raise

    @property
    def size(self) -> int:
        """Number of workers."""
        return len(self._procs)

    def run(self, fn: Callable[..., Any], jobs: list[dict[str, Any]], timeout: float) -> list[Any]:
        """Run ``fn(gate=..., index=i, **jobs[i])`` on the first ``len(jobs)`` workers.

        Every worker must call its ``gate()`` once; all start together. Returns
        their results in worker order.

        Raises:
            FleetError: A worker raised, died, or the job overran ``timeout`` seconds.
        """
        if len(jobs) > self.size:
            raise ValueError(f"{len(jobs)} jobs for a fleet of {self.size}")
        conns = self._conns[: len(jobs)]
        deadline = time.monotonic() + timeout
        self._start.clear()
        for conn, kwargs in zip(conns, jobs, strict=True):
            conn.send((fn, kwargs))
        try:
            waiting = set(range(len(conns)))
            for phase in ("ready", "result"):
                pending, answers = set(waiting), dict[int, Any]()
                while pending:
                    self._receive(conns, pending, answers, phase, deadline)
                if phase == "ready":
                    self._start.set()
                else:
                    return [answers[i] for i in range(len(conns))]
        except BaseException:
            self.close()
            raise
        finally:
            self._start.clear()
        raise AssertionError("unreachable")  # pragma: no cover

    def _receive(
        self,
        conns: list[multiprocessing.connection.Connection],
        pending: set[int],
        answers: dict[int, Any],
        phase: str,
        deadline: float,
    ) -> None:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise FleetError(f"workers {sorted(pending)} overran the job's deadline ({phase})")
        ready = multiprocessing.connection.wait([conns[i] for i in pending], min(remaining, 1.0))
        for conn in ready:
            assert isinstance(conn, multiprocessing.connection.Connection)
            index = conns.index(conn)
            try:
                kind, payload = conn.recv()
            except (EOFError, OSError):
                raise FleetError(f"worker {index} died") from None
            if kind == "error":
                raise FleetError(f"worker {index} failed:\n{payload}")
            if kind != phase:
                raise FleetError(f"worker {index} sent {kind!r} while {phase!r} was expected")
            answers[index] = payload
            pending.discard(index)
        for index in list(pending):
            if not self._procs[index].is_alive():
                raise FleetError(f"worker {index} died (exit code {self._procs[index].exitcode})")

    def close(self) -> None:
        """Stop every worker: ask, then terminate, then kill. Idempotent."""
        for conn in self._conns:
            with contextlib.suppress(OSError, ValueError):
                conn.send(None)
        deadline = time.monotonic() + 2.0
        for proc in self._procs:
            proc.join(max(0.0, deadline - time.monotonic()))
        for proc in self._procs:
            if proc.is_alive():
                proc.terminate()
                proc.join(2.0)
            if proc.is_alive() and proc.pid is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(proc.pid, signal.SIGKILL)
                proc.join(2.0)
        for conn in self._conns:
            conn.close()
        self._conns, self._procs = [], []

    def __enter__(self) -> Fleet:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
