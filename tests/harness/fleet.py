"""Run a fleet of worker processes against one token store, for the system tests and benchmarks.

A *workload* is a module-level ``async def workload(worker: WorkerContext) -> Any``.
:class:`Fleet` starts worker processes (``python -c`` running :func:`_worker_main`),
sends each a job (the workload's dotted name and its options, as JSON), and
talks to them in JSON lines: commands on the worker's stdin, messages on a
pipe of their own. The worker's stdout and stderr go to a log file, whose tail
is quoted whenever a worker fails, so a chatty workload can never block on a
full pipe.

Example, ``N`` processes x ``C`` coroutines sharing one Redis store::

    async def one_fetch_each(worker: WorkerContext) -> int:
        async with TokenManager(worker.credentials, store=worker.store,
                                token_url=worker.token_url) as tokens:
            await worker.gate()                      # everybody starts together
            await worker.gather(lambda i: tokens.get_token())
            return tokens.stats().fetches

    with FakeZoom().running_in_thread() as zoom, Fleet(
        token_url=zoom.token_url, credentials=zoom.credentials,
        store="redis://127.0.0.1:6379/0", coroutines=C,
    ) as fleet:
        fetches = fleet.run(one_fetch_each, [{}] * N)
    assert sum(fetches) == zoom.token_requests == 1

Messages a worker sends (each a JSON object with an ``event`` field):

==========  ===========================================================================
``gate``    :meth:`WorkerContext.gate`: waiting for the parent's ``go`` (see
            :meth:`Fleet.start`); the worker then sleeps until the common instant.
``result``  the workload returned; ``value`` is its (JSON) return value.
``error``   the workload raised; ``error`` is ``"Type: message"``, ``type`` the class.
``log``     :meth:`WorkerContext.log`: a line for the parent (kept in ``FleetWorker.seen``).
(any)       :meth:`WorkerContext.send`: the workload's own events, e.g. ``ready``.
==========  ===========================================================================

Nothing hangs and nothing is left behind: every wait of the parent has a
deadline, a worker arms :mod:`faulthandler` as its own hang guard (it dumps
its stacks into its log and exits), on Linux the kernel kills a worker whose
parent dies (``PR_SET_PDEATHSIG``), and leaving the ``with`` block kills every
worker still running, stopped ones included.
"""

from __future__ import annotations

import asyncio
import contextlib
import faulthandler
import importlib
import json
import os
import queue
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import IO, Any, Literal, TypeVar, overload

import attrs

from tests.harness.forkserver import ForkedProcess, fork_server, preload
from zoom_s2s import Credentials, store_from_url
from zoom_s2s._lifecycle import ClosedOnExit, die_with_parent

__all__ = [
    "Fleet",
    "FleetError",
    "FleetWorker",
    "Outcome",
    "WorkerContext",
    "Workload",
]

T = TypeVar("T")
Workload = Callable[["WorkerContext"], Awaitable[Any]]
DEFAULT_TIMEOUT = 60.0  # seconds any single wait may take, parent or worker
_FD_ENV = "ZOOM_S2S_FLEET_FD"
_PATH_ENV = "ZOOM_S2S_FLEET_PATH"
_PARENT_ENV = "ZOOM_S2S_FLEET_PARENT"
# The parent's sys.path comes first, so the worker finds this module from any cwd.
_WORKER_COMMAND = (
    f"import json, os, sys; sys.path[:0] = json.loads(os.environ[{_PATH_ENV!r}]); "
    f"from {__name__} import _worker_main; _worker_main()"
)
_real_time = time.time  # the real clock, even if a workload skews time.time


class FleetError(AssertionError):
    """A worker failed, died, sent something unexpected or did not answer in time.

    It is an :class:`AssertionError`, so pytest shows it as a test failure; the
    message carries the worker's messages so far and the tail of its log.
    """


def _reference(workload: Workload | str) -> str:
    """``"module:qualname"`` of a module-level function (or the string itself)."""
    if isinstance(workload, str):
        return workload
    module = workload.__module__
    if module == "__main__":
        spec = getattr(sys.modules["__main__"], "__spec__", None)
        if spec is None:
            raise ValueError("a workload defined in a script cannot be found by a worker")
        module = spec.name
    if "<" in workload.__qualname__:
        raise ValueError(f"workload {workload.__qualname__!r} must be a module-level function")
    return f"{module}:{workload.__qualname__}"


def _resolve(reference: str) -> Any:
    module, _, name = reference.partition(":")
    target: Any = importlib.import_module(module)
    for part in name.split("."):
        target = getattr(target, part)
    return target


# -- the worker side ------------------------------------------------------------------


class _Channel:
    """The worker's end of the protocol: messages out on a pipe, commands in on stdin."""

    def __init__(self, fd: int) -> None:
        self._fd = fd
        self._lock = threading.Lock()
        self.jobs: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self.gates: queue.Queue[float | None] = queue.Queue()
        threading.Thread(target=self._read, name="fleet-commands", daemon=True).start()

    def _read(self) -> None:
        for line in sys.stdin:
            command = json.loads(line)
            if command["op"] == "go":
                self.gates.put(float(command["at"]))
            elif command["op"] == "run":
                self.jobs.put(command)
            else:  # "exit"
                break
        self.jobs.put(None)
        self.gates.put(None)

    def send(self, message: Mapping[str, Any]) -> None:
        data = (json.dumps(message, default=str) + "\n").encode()
        with self._lock:
            while data:
                data = data[os.write(self._fd, data) :]


@attrs.define(eq=False)
class WorkerContext:
    """What a workload gets in its worker process.

    Attributes:
        index: The worker's number in its fleet (0, 1, ...).
        name: The worker's name (``worker-<index>`` unless given).
        token_url: The token endpoint every worker uses.
        credentials: The credentials every worker uses (``None`` if not given).
        store: The shared store's URL (``memory://``, ``file:///...``, ``redis://...``).
        store_options: Keyword arguments for :func:`~zoom_s2s.store_from_url`.
        api_base_url: The API's base URL, if given.
        coroutines: How many coroutines each worker should run (see :meth:`gather`).
        options: The job's own options (JSON).
        timeout: Seconds the job may take.
    """

    index: int
    name: str
    token_url: str
    credentials: Credentials | None
    store: str
    store_options: dict[str, Any]
    api_base_url: str | None
    coroutines: int
    options: dict[str, Any]
    timeout: float
    _channel: _Channel = attrs.field(repr=False)

    def open_store(self) -> Any:
        """A new :class:`~zoom_s2s.TokenStore` for :attr:`store`; close it after use."""
        return store_from_url(self.store, **self.store_options)

    def send(self, event: str, **fields: Any) -> None:
        """Send the parent a message (``fields`` must be JSON-serialisable)."""
        self._channel.send({"event": event, **fields})

    def log(self, message: str) -> None:
        """Send the parent a line of text (kept with the worker's messages)."""
        self.send("log", message=message)

    async def gate(self, **fields: Any) -> float:
        """Report ``gate`` and wait for the parent's ``go``; return the start instant.

        The parent opens the gates of a whole fleet with one wall-clock instant
        (:meth:`Fleet.start`), and every worker sleeps until then on the real
        clock, so they all start together.

        Raises:
            FleetError: No ``go`` within :attr:`timeout`, or the parent went away.
        """
        self.send("gate", **fields)
        try:
            at = await asyncio.to_thread(self._channel.gates.get, True, self.timeout)
        except queue.Empty:
            raise FleetError(
                f"{self.name}: the parent did not say go within {self.timeout} s"
            ) from None
        if at is None:
            raise FleetError(f"{self.name}: the parent closed the channel at a gate")
        await asyncio.sleep(max(0.0, at - _real_time()))
        return at

    @overload
    async def gather(
        self, fn: Callable[[int], Awaitable[T]], *, return_exceptions: Literal[False] = False
    ) -> list[T]: ...

    @overload
    async def gather(
        self, fn: Callable[[int], Awaitable[T]], *, return_exceptions: bool
    ) -> list[T | BaseException]: ...

    async def gather(
        self, fn: Callable[[int], Awaitable[T]], *, return_exceptions: bool = False
    ) -> list[T] | list[T | BaseException]:
        """Run ``fn(0)`` ... ``fn(coroutines - 1)`` concurrently; their results in order.

        With ``return_exceptions``, an exception takes its coroutine's place
        instead of being raised (as in :func:`asyncio.gather`).
        """
        calls = [fn(i) for i in range(self.coroutines)]
        if return_exceptions:
            return list(await asyncio.gather(*calls, return_exceptions=True))
        return list(await asyncio.gather(*calls))


def _run_job(channel: _Channel, job: dict[str, Any]) -> None:
    spec = job["spec"]
    creds = spec.get("credentials")
    timeout = float(spec["timeout"])
    context = WorkerContext(
        index=int(spec["index"]),
        name=str(spec["name"]),
        token_url=str(spec.get("token_url", "")),
        credentials=None if creds is None else Credentials(*creds),
        store=str(spec.get("store", "memory://")),
        store_options=dict(spec.get("store_options", {})),
        api_base_url=spec.get("api_base_url"),
        coroutines=int(spec.get("coroutines", 1)),
        options=dict(spec.get("options", {})),
        timeout=timeout,
        channel=channel,
    )
    # The hang guard: dump every thread's stack into the log and exit.
    faulthandler.dump_traceback_later(timeout + 5, exit=True)
    try:
        workload = _resolve(job["workload"])

        async def bounded() -> Any:
            return await asyncio.wait_for(workload(context), timeout)

        value = asyncio.run(bounded())
    except Exception as exc:  # reported; the parent decides what it means
        import traceback

        traceback.print_exc()
        sys.stderr.flush()
        channel.send(
            {"event": "error", "error": f"{type(exc).__name__}: {exc}", "type": type(exc).__name__}
        )
    else:
        channel.send({"event": "result", "value": value})
    finally:
        faulthandler.cancel_dump_traceback_later()


def _worker_main() -> None:
    """A worker process's main function (:class:`Fleet` starts ``python -c`` with it)."""
    die_with_parent()
    if os.getppid() != int(os.environ.get(_PARENT_ENV, os.getppid())):
        sys.exit(1)  # the parent died before the kernel could be asked to tell us
    # Ctrl-C reaches the whole process group; the parent does the cleaning up.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    channel = _Channel(int(os.environ[_FD_ENV]))
    while True:
        job = channel.jobs.get()
        if job is None:
            return
        _run_job(channel, job)
        if job.get("exit"):
            return


# -- the parent side ------------------------------------------------------------------


@attrs.frozen
class Outcome:
    """How one worker's job ended: :attr:`value` if it returned, else :attr:`error`."""

    worker: FleetWorker
    value: Any = None
    error: str | None = None

    def unwrap(self) -> Any:
        """The value.

        Raises:
            FleetError: The job failed; the message says how.
        """
        if self.error is not None:
            raise self.worker.failure(self.error)
        return self.value


class FleetWorker:
    """One worker process and its messages (made by :meth:`Fleet.spawn`).

    Attributes:
        name: The worker's name.
        index: Its number in the fleet.
        process: The :class:`subprocess.Popen`.
        seen: Every message taken from it so far, in order.
    """

    def __init__(
        self,
        fleet: Fleet,
        index: int,
        name: str,
        log_path: Path | None,
        env: Mapping[str, str],
        cwd: str | os.PathLike[str] | None,
    ) -> None:
        self.fleet = fleet
        self.index = index
        self.name = name
        self.seen: list[dict[str, Any]] = []
        self._messages: queue.Queue[dict[str, Any] | None] = queue.Queue()
        # Both closed in kill().
        self._log: IO[bytes] = (
            open(log_path, "wb")  # noqa: SIM115
            if log_path is not None
            else tempfile.TemporaryFile(prefix=f"zoom-s2s-{name}-")  # noqa: SIM115
        )
        self.log_path = log_path
        read_end, write_end = os.pipe()
        extra_env = {_PATH_ENV: json.dumps([p for p in sys.path if p]), "PYTHONUNBUFFERED": "1"}
        try:
            server = fork_server(env)
            self.process: subprocess.Popen[bytes] | ForkedProcess
            if server is not None:  # milliseconds instead of a new interpreter's imports
                self.process = server.spawn(
                    f"{__name__}:_worker_main",
                    stdout=self._log.fileno(),
                    channel=write_end,
                    fd_env=_FD_ENV,
                    env={**env, **extra_env, _PARENT_ENV: str(server.process.pid)},
                    cwd=cwd,
                )
            else:
                self.process = subprocess.Popen(
                    [sys.executable, "-c", _WORKER_COMMAND],
                    stdin=subprocess.PIPE,
                    stdout=self._log,
                    stderr=subprocess.STDOUT,
                    pass_fds=(write_end,),
                    cwd=cwd,
                    env={
                        **env,
                        **extra_env,
                        _FD_ENV: str(write_end),
                        _PARENT_ENV: str(os.getpid()),
                    },
                )
        except BaseException:
            os.close(read_end)
            self._log.close()
            raise
        finally:
            os.close(write_end)
        self.pid = self.process.pid
        self._reader = threading.Thread(
            target=self._read, args=(read_end,), name=f"fleet-{name}", daemon=True
        )
        self._reader.start()

    def _read(self, fd: int) -> None:
        with open(fd, "rb") as messages:
            for raw in messages:
                try:
                    message = json.loads(raw)
                except ValueError:
                    message = {"event": "garbage", "line": raw.decode(errors="replace")}
                self._messages.put(message)
        self._messages.put(None)

    # -- talking to it

    def _command(self, **command: Any) -> None:
        assert self.process.stdin is not None
        try:
            self.process.stdin.write((json.dumps(command) + "\n").encode())
            self.process.stdin.flush()
        except (BrokenPipeError, ValueError):
            code = self.process.poll()
            raise self.failure(f"is gone (exit {code}); cannot send it work") from None

    def submit(
        self,
        workload: Workload | str,
        options: Mapping[str, Any] | None = None,
        *,
        exit_after: bool = False,
        timeout: float | None = None,
    ) -> None:
        """Start a job: ``workload`` with ``options``; exit afterwards if ``exit_after``."""
        reference = _reference(workload)
        preload([reference.partition(":")[0]])  # the next workers are forked with it imported
        self._command(
            op="run",
            workload=reference,
            exit=exit_after,
            spec=self.fleet._spec(self, options, timeout),
        )

    def go(self, at: float) -> None:
        """Open the worker's current gate: it proceeds at wall-clock time ``at``."""
        self._command(op="go", at=at)

    def next_message(self, timeout: float | None = None) -> dict[str, Any]:
        """The worker's next message (``log`` messages too).

        Raises:
            FleetError: Nothing within ``timeout``, or the worker is gone.
        """
        timeout = self.fleet.timeout if timeout is None else timeout
        try:
            message = self._messages.get(timeout=timeout)
        except queue.Empty:
            raise self.failure(f"sent nothing within {timeout} s") from None
        if message is None:
            self._messages.put(None)  # stays gone
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(5)
            raise self.failure(f"exited ({self.process.returncode})")
        self.seen.append(message)
        return message

    def expect(self, event: str, timeout: float | None = None) -> dict[str, Any]:
        """The worker's next message, which must be ``event`` (``log`` lines are skipped).

        Raises:
            FleetError: Another event came, nothing came in time, or the worker is gone.
        """
        deadline = time.monotonic() + (self.fleet.timeout if timeout is None else timeout)
        while True:
            remaining = max(0.0, deadline - time.monotonic())
            try:
                message = self.next_message(remaining)
            except FleetError as exc:
                raise self.failure(f"no {event!r}: {exc.args[0].splitlines()[0]}") from None
            if message["event"] == "log":
                continue
            if message["event"] != event:
                if message["event"] == "error":  # let it finish writing its traceback
                    with contextlib.suppress(subprocess.TimeoutExpired):
                        self.process.wait(2)
                raise self.failure(f"sent {message['event']!r} while {event!r} was expected")
            return message

    def result(self, timeout: float | None = None) -> Any:
        """The value of the current job (wait for ``result``; fail on ``error``)."""
        return self.expect("result", timeout)["value"]

    def poll(self) -> Outcome | None:
        """How the current job ended, or ``None`` while it runs (never blocks)."""
        while True:
            try:
                message = self._messages.get_nowait()
            except queue.Empty:
                return None
            if message is None:
                self._messages.put(None)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    self.process.wait(5)
                return Outcome(self, error=f"exited ({self.process.returncode}) without a result")
            self.seen.append(message)
            if message["event"] == "result":
                return Outcome(self, message["value"])
            if message["event"] == "error":
                return Outcome(self, error=str(message["error"]))

    def finish(self, timeout: float | None = None) -> Any:
        """The value of the job, then a clean exit (for a job submitted with ``exit_after``)."""
        timeout = self.fleet.timeout if timeout is None else timeout
        value = self.result(timeout)
        try:
            code = self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            raise self.failure(f"did not exit within {timeout} s after its result") from None
        if code != 0:
            raise self.failure(f"exited with {code}")
        return value

    # -- its process

    def log(self, limit: int = 4000) -> str:
        """The tail of what the worker wrote to stdout and stderr."""
        try:
            if self.log_path is not None:
                return self.log_path.read_text(errors="replace")[-limit:]
            self._log.seek(0)
            return self._log.read().decode(errors="replace")[-limit:]
        except (OSError, ValueError):
            return ""

    def failure(self, why: str) -> FleetError:
        """A :class:`FleetError` saying ``why``, with the worker's messages and log."""
        return FleetError(
            f"{self.name} (pid {self.pid}) {why}\nmessages: {self.seen[-20:]}\nlog:\n{self.log()}"
        )

    def alive(self) -> bool:
        """Whether the process has not exited (stopped counts as alive)."""
        return self.process.poll() is None

    def state(self) -> str:
        """The process state letter from ``/proc`` (``T``: stopped), or ``X`` if gone."""
        try:
            stat = Path(f"/proc/{self.pid}/stat").read_text()
        except OSError:
            return "X"
        return stat.rsplit(")", 1)[1].split()[0]

    def signal(self, signum: int) -> None:
        """Send ``signum`` (if the process is still there)."""
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signum)

    def stop(self, timeout: float | None = None) -> None:
        """SIGSTOP the worker and wait until it is stopped."""
        self.signal(signal.SIGSTOP)
        self.wait_stopped(timeout)

    def cont(self) -> None:
        """SIGCONT a stopped worker."""
        self.signal(signal.SIGCONT)

    def wait_stopped(self, timeout: float | None = None) -> None:
        """Wait until the process is stopped by a signal (Linux ``/proc``)."""
        timeout = self.fleet.timeout if timeout is None else timeout
        deadline = time.monotonic() + timeout
        while self.state() not in ("T", "t"):
            if time.monotonic() > deadline or self.process.poll() is not None:
                raise self.failure(f"not stopped within {timeout} s (state {self.state()})")
            time.sleep(0.01)

    def sigkill(self) -> None:
        """SIGKILL now (stopped workers too) and reap."""
        self.signal(signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(10)

    def kill(self) -> None:
        """SIGKILL (if still running), reap, close the pipes and the log. Idempotent."""
        self.sigkill()
        if self.process.stdin is not None:
            with contextlib.suppress(OSError):
                self.process.stdin.close()
        self._reader.join(5)
        self._log.close()

    def close(self, timeout: float = 5.0) -> None:
        """Ask an idle worker to exit; SIGKILL it if it does not within ``timeout``."""
        if self.process.poll() is None:
            with contextlib.suppress(FleetError):
                self._command(op="exit")
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout)
        self.kill()


class Fleet(ClosedOnExit):
    """Worker processes that share a token URL, credentials and a store.

    Use it as a context manager: leaving the block kills every worker.

    Args:
        token_url: The token endpoint the workers use.
        credentials: The credentials the workers use (sent over a pipe, never
            on a command line).
        store: The shared store's URL.
        store_options: Keyword arguments for :func:`~zoom_s2s.store_from_url`.
        api_base_url: The API's base URL, for workloads that call the API.
        coroutines: Coroutines per worker (:meth:`WorkerContext.gather`).
        options: Options every job gets (a job's own options are merged over them).
        timeout: Seconds any single wait may take (and a job, unless given).
        log_dir: Where ``<name>.log`` files go (default: temporary files).
        env: The workers' environment (default: this process's).
        cwd: The workers' working directory.
    """

    def __init__(
        self,
        *,
        token_url: str = "",
        credentials: Credentials | None = None,
        store: str = "memory://",
        store_options: Mapping[str, Any] | None = None,
        api_base_url: str | None = None,
        coroutines: int = 1,
        options: Mapping[str, Any] | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        log_dir: Path | None = None,
        env: Mapping[str, str] | None = None,
        cwd: str | os.PathLike[str] | None = None,
    ) -> None:
        self.token_url = token_url
        self.credentials = credentials
        self.store = store
        self.store_options = dict(store_options or {})
        self.api_base_url = api_base_url
        self.coroutines = coroutines
        self.options = dict(options or {})
        self.timeout = timeout
        self.log_dir = log_dir
        self.env = dict(os.environ if env is None else env)
        self.cwd = cwd
        self.workers: list[FleetWorker] = []

    def _spec(
        self, worker: FleetWorker, options: Mapping[str, Any] | None, timeout: float | None
    ) -> dict[str, Any]:
        creds = self.credentials
        return {
            "index": worker.index,
            "name": worker.name,
            "token_url": self.token_url,
            "credentials": None
            if creds is None
            else [creds.account_id, creds.client_id, creds.client_secret],
            "store": self.store,
            "store_options": self.store_options,
            "api_base_url": self.api_base_url,
            "coroutines": self.coroutines,
            "options": {**self.options, **(options or {})},
            "timeout": self.timeout if timeout is None else timeout,
        }

    def spawn(
        self,
        workload: Workload | str | None = None,
        options: Mapping[str, Any] | None = None,
        *,
        name: str | None = None,
        timeout: float | None = None,
    ) -> FleetWorker:
        """Start a worker; with a ``workload``, give it that job (it exits afterwards).

        Without one the worker idles until :meth:`run` (or
        :meth:`FleetWorker.submit`) gives it jobs, so one process can serve many.
        """
        index = len(self.workers)
        name = name or f"worker-{index}"
        log_path = None if self.log_dir is None else self.log_dir / f"{name}.log"
        worker = FleetWorker(self, index, name, log_path, self.env, self.cwd)
        self.workers.append(worker)
        if workload is not None:
            worker.submit(workload, options, exit_after=True, timeout=timeout)
        return worker

    def go(self, workers: Sequence[FleetWorker] | None = None, delay: float = 0.1) -> float:
        """Open the gate of ``workers`` (default: all): they proceed ``delay`` s from now."""
        at = _real_time() + delay
        for worker in self.workers if workers is None else workers:
            worker.go(at)
        return at

    def start(
        self,
        workers: Sequence[FleetWorker] | None = None,
        *,
        delay: float = 0.1,
        timeout: float | None = None,
    ) -> float:
        """The barrier: wait until every worker of ``workers`` is at a gate, then open all.

        Returns:
            The wall-clock instant they start at.
        """
        chosen = self.workers if workers is None else workers
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        for worker in chosen:
            worker.expect("gate", max(0.0, deadline - time.monotonic()))
        return self.go(chosen, delay)

    def outcomes(
        self, workers: Sequence[FleetWorker] | None = None, timeout: float | None = None
    ) -> Iterator[Outcome]:
        """Each worker's :class:`Outcome`, in the order they finish; never raises for one."""
        pending = list(self.workers if workers is None else workers)
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        while pending:
            for worker in list(pending):
                outcome = worker.poll()
                if outcome is not None:
                    pending.remove(worker)
                    yield outcome
            if pending and time.monotonic() > deadline:
                for worker in pending:
                    yield Outcome(worker, error=f"no result within {timeout} s")
                return
            if pending:
                time.sleep(0.01)

    def results(
        self, workers: Sequence[FleetWorker] | None = None, timeout: float | None = None
    ) -> list[Any]:
        """The values of ``workers``' current jobs, in worker order.

        Raises:
            FleetError: A job failed, a worker died, or the deadline passed.
        """
        chosen = self.workers if workers is None else workers
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        return [worker.result(max(0.0, deadline - time.monotonic())) for worker in chosen]

    def run(
        self,
        workload: Workload | str,
        jobs: Sequence[Mapping[str, Any]],
        *,
        timeout: float | None = None,
        delay: float = 0.1,
    ) -> list[Any]:
        """Run ``workload`` once per job on the first ``len(jobs)`` workers, all started together.

        Idle workers are reused (more are spawned if needed); the workload must
        call :meth:`WorkerContext.gate` once. On any failure every worker is
        killed, so a broken fleet is never reused.

        Returns:
            The workers' return values, in job order.
        """
        while len(self.workers) < len(jobs):
            self.spawn()
        chosen = self.workers[: len(jobs)]
        try:
            for worker, options in zip(chosen, jobs, strict=True):
                worker.submit(workload, options, timeout=timeout)
            self.start(chosen, delay=delay, timeout=timeout)
            return self.results(chosen, timeout)
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        """Kill every worker (SIGKILL, stopped ones too), reap them, close the logs."""
        for worker in self.workers:
            worker.signal(signal.SIGKILL)
        for worker in self.workers:
            worker.kill()
        self.workers = []

