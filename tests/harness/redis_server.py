"""A throw-away ``redis-server`` for tests: free loopback port, no persistence.

Example::

    with RedisServer() as server:
        store = RedisTokenStore.from_url(server.url)
        ...
        server.stop()    # simulate an outage
        server.start()   # same port, empty data set
        server.pause()   # SIGSTOP: connections open, nothing answers
        server.resume()  # SIGCONT: answers again, data kept

The server runs in a private temporary directory, binds to 127.0.0.1 only and
keeps nothing on disk (``--save "" --appendonly no``).
"""

from __future__ import annotations

import contextlib
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import weakref
from collections.abc import Sequence
from typing import Any, TypeVar

from zoom_s2s._lifecycle import ClosedOnExit
from zoom_s2s._lifecycle import die_with_parent as _die_with_parent

__all__ = ["RedisServer", "RedisServerError", "redis_server_available"]


class RedisServerError(RuntimeError):
    """``redis-server`` is missing, did not start, or did not answer in time."""


def redis_server_available(executable: str = "redis-server") -> bool:
    """Return whether ``executable`` is on ``PATH``."""
    return shutil.which(executable) is not None


def _port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def _free_port(*, cluster: bool) -> int:
    if not cluster:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind(("127.0.0.1", 0))
            port: int = sock.getsockname()[1]
            return port
    # A cluster node also listens on port + 10000 (its bus), so stay at or below 55535.
    for _ in range(100):
        port = random.randint(20000, 55535)
        if _port_is_free(port) and _port_is_free(port + 10000):
            return port
    raise RedisServerError("found no free port pair for a cluster node")


def _command(port: int, command: str, timeout: float = 5.0) -> bytes:
    """Send one inline command and return the start of the raw answer.

    Raises:
        OSError: No connection.
    """
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(command.encode() + b"\r\n")
        return sock.recv(4096)


def _ping(port: int, timeout: float) -> bool:
    try:
        return _command(port, "PING", timeout).startswith(b"+PONG")
    except OSError:
        return False


def _nothing() -> None:
    pass


def die_with_parent() -> None:
    """In the child, before exec: ask Linux to SIGTERM it when its parent dies."""
    _die_with_parent(signal.SIGTERM)


def server_env() -> dict[str, str]:
    """This environment without libfaketime's variables: servers keep the host's clock.

    So the suite can run at a chosen time of day (docs/architecture.rst) while the
    servers it starts, which libfaketime breaks, run on the real one.
    """
    return {
        name: value
        for name, value in os.environ.items()
        if name != "LD_PRELOAD" and not name.startswith("FAKETIME")
    }


def terminate(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is not None:
        return
    process.terminate()
    with contextlib.suppress(ProcessLookupError):
        process.send_signal(signal.SIGCONT)  # a paused (SIGSTOP) server exits only once continued
    try:
        process.wait(timeout=5)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=5)


_S = TypeVar("_S", bound="ServerContext")


class ServerContext(ClosedOnExit):
    """``with server:`` starts it (closing it again if the start fails) and closes it after."""

    def start(self) -> None:
        raise NotImplementedError

    def __enter__(self: _S) -> _S:
        try:
            self.start()
        except BaseException:
            self.close()
            raise
        return self


class RedisServer(ServerContext):
    """Runs ``redis-server`` as a child process on a free loopback port.

    Args:
        executable: The server binary; found on ``PATH``.
        port: The port; a free one is picked when ``None``. Kept across
            :meth:`stop` / :meth:`start` so clients can reconnect.
        startup_timeout: Seconds to wait for the first ``PONG``.
        cluster: Run as a one-node Redis Cluster owning all 16384 slots (for
            ``redis.asyncio.cluster.RedisCluster`` clients).
        args: More ``redis-server`` arguments, e.g. ``["--user", "alice", "on", ">pw", ...]``.
    """

    def __init__(
        self,
        executable: str = "redis-server",
        *,
        port: int | None = None,
        startup_timeout: float = 10.0,
        cluster: bool = False,
        args: Sequence[str] = (),
    ) -> None:
        path = shutil.which(executable)
        if path is None:
            raise RedisServerError(
                f"{executable} not found on PATH; install Redis (e.g. apt-get install redis-server)"
            )
        self._executable = path
        self.port = port if port is not None else _free_port(cluster=cluster)
        self._startup_timeout = startup_timeout
        self.cluster = cluster
        self._args = list(args)
        self._process: subprocess.Popen[bytes] | None = None
        self._directory: str | None = None
        self._terminate: weakref.finalize[..., Any] = weakref.finalize(self, _nothing)
        self._remove_directory: weakref.finalize[..., Any] = self._terminate

    @property
    def url(self) -> str:
        """``redis://127.0.0.1:<port>/0``."""
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def running(self) -> bool:
        """Whether the server process is alive."""
        return self._process is not None and self._process.poll() is None

    def __repr__(self) -> str:
        return f"RedisServer(port={self.port}, cluster={self.cluster}, running={self.running})"

    def start(self) -> None:
        """Start the server (no-op if running) and wait until it answers ``PING``.

        Raises:
            RedisServerError: It exited or did not answer within ``startup_timeout``.
        """
        if self.running:
            return
        if self._directory is None:
            self._directory = tempfile.mkdtemp(prefix="zoom-s2s-redis-")
            # Removed by close(), or when this object is collected or Python exits.
            self._remove_directory = weakref.finalize(
                self, shutil.rmtree, self._directory, ignore_errors=True
            )
        log = open(os.path.join(self._directory, "redis.log"), "ab")  # noqa: SIM115
        with log:
            self._process = subprocess.Popen(
                [
                    self._executable,
                    "--port", str(self.port),
                    "--bind", "127.0.0.1",
                    "--save", "",
                    "--appendonly", "no",
                    "--dir", self._directory,
                    *(["--cluster-enabled", "yes"] if self.cluster else []),
                    *self._args,
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=server_env(),
                preexec_fn=die_with_parent if sys.platform == "linux" else None,
            )
        # Stopped by stop(), or when this object is collected or Python exits; on
        # Linux the kernel also stops it if this process is killed outright.
        self._terminate = weakref.finalize(self, terminate, self._process)
        deadline = time.monotonic() + self._startup_timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RedisServerError(
                    f"redis-server exited with status {self._process.returncode}; "
                    f"see {self._directory}/redis.log (is port {self.port} taken?)"
                )
            if _ping(self.port, timeout=0.5) and self._cluster_ready():
                return
            time.sleep(0.02)
        self.stop()
        raise RedisServerError(
            f"redis-server did not answer PING on port {self.port} "
            f"within {self._startup_timeout} s"
        )

    def _cluster_ready(self) -> bool:
        if not self.cluster:
            return True
        info = _command(self.port, "CLUSTER INFO")
        if b"cluster_slots_assigned:0" in info:
            _command(self.port, "CLUSTER ADDSLOTSRANGE 0 16383")
        return b"cluster_state:ok" in info

    def flush(self) -> None:
        """Delete every key (``FLUSHALL``).

        Raises:
            RedisServerError: The server did not answer ``+OK``.
        """
        try:
            answer = _command(self.port, "FLUSHALL")
        except OSError as exc:
            raise RedisServerError(f"FLUSHALL on port {self.port} failed: {exc}") from exc
        if not answer.startswith(b"+OK"):
            raise RedisServerError(f"FLUSHALL on port {self.port} answered {answer!r}")

    def pause(self) -> None:
        """Freeze the server (``SIGSTOP``): it accepts connections but answers nothing.

        This is what a stalled host looks like to clients (requests time out,
        nothing is refused). :meth:`resume` continues it with its data; a
        paused server is resumed before it is stopped.

        Raises:
            RedisServerError: The server is not running.
        """
        self._signal(signal.SIGSTOP)

    def resume(self) -> None:
        """Continue a server frozen by :meth:`pause` (``SIGCONT``); no-op if not paused.

        Raises:
            RedisServerError: The server is not running.
        """
        self._signal(signal.SIGCONT)

    def _signal(self, signum: signal.Signals) -> None:
        if self._process is None or self._process.poll() is not None:
            raise RedisServerError(f"redis-server on port {self.port} is not running")
        self._process.send_signal(signum)

    def stop(self) -> None:
        """Stop the server (no-op if stopped), paused or not; its data is lost."""
        self._process = None
        self._terminate()

    def close(self) -> None:
        """Stop the server and remove its directory."""
        self.stop()
        self._directory = None
        self._remove_directory()

