"""Throw-away Redis topologies for tests: a multi-master Cluster and a Sentinel.

Example::

    with RedisClusterServer(masters=3) as cluster:      # 3 masters, slots split evenly
        store = RedisTokenStore.from_url(cluster.url, cluster=True)
        ...

    with RedisServer() as master, SentinelServer(master.port) as sentinel:
        sentinel.master_name                            # "mymaster", at sentinel.port
        ...

Every server binds to 127.0.0.1 only, keeps nothing on disk and runs in a
private temporary directory; all of them are stopped and their directories
removed by ``close()``, on leaving the ``with`` block, when the object is
collected, or when Python exits, whatever happened before.
"""

from __future__ import annotations

import functools
import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import weakref
from collections.abc import Callable, Sequence
from typing import Any

from .redis_server import RedisServerError, ServerContext, die_with_parent, server_env, terminate

__all__ = ["RedisClusterServer", "SentinelServer"]


def _find(executable: str) -> str:
    path = shutil.which(executable)
    if path is None:
        raise RedisServerError(
            f"{executable} not found on PATH; install Redis (e.g. apt-get install redis-server)"
        )
    return path


def _port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def _free_ports(count: int, *, bus: bool, taken: Sequence[int] = ()) -> list[int]:
    """``count`` free loopback ports (with ``bus``: port + 10000 free too, for Cluster)."""
    ports: list[int] = []
    for _ in range(1000):
        port = random.randint(20000, 55535)
        wanted = (port, port + 10000) if bus else (port,)
        used = {*taken, *ports, *(p + 10000 for p in ports)}
        if all(p not in used and _port_is_free(p) for p in wanted):
            ports.append(port)
            if len(ports) == count:
                return ports
    raise RedisServerError(f"found no {count} free loopback ports")


def _ask(port: int, *command: str) -> Any:
    """Send one command to the server at ``127.0.0.1:port``; answers are decoded."""
    import redis

    with redis.Redis(
        host="127.0.0.1", port=port, socket_timeout=2, socket_connect_timeout=2,
        decode_responses=True,
    ) as client:
        return client.execute_command(*command)


def _answers_ping(port: int) -> bool:
    return bool(_ask(port, "PING"))


def _poll(what: str, check: Callable[[], bool], timeout: float) -> None:
    """Call ``check`` until it is true; Redis errors (not up yet) count as "not yet"."""
    import redis

    deadline = time.monotonic() + timeout
    while True:
        try:
            if check():
                return
        except (OSError, redis.RedisError):
            pass
        if time.monotonic() > deadline:
            raise RedisServerError(f"{what} within {timeout} s")
        time.sleep(0.05)


class _Processes:
    """Servers started in one temporary directory; stopped and removed together."""

    def __init__(self, owner: object, prefix: str) -> None:
        self.directory = tempfile.mkdtemp(prefix=prefix)
        self.processes: list[subprocess.Popen[bytes]] = []
        self._finalizer = weakref.finalize(owner, _stop_all, self.processes, self.directory)

    def start(self, name: str, args: Sequence[str]) -> subprocess.Popen[bytes]:
        with open(os.path.join(self.directory, f"{name}.log"), "ab") as log:
            process = subprocess.Popen(
                list(args), stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                cwd=self.directory,
                env=server_env(),
                preexec_fn=die_with_parent if sys.platform == "linux" else None,
            )
        self.processes.append(process)
        return process

    def check_alive(self) -> None:
        for process in self.processes:
            if process.poll() is not None:
                raise RedisServerError(
                    f"{process.args!r} exited with status {process.returncode}; "
                    f"see the logs in {self.directory}"
                )

    def close(self) -> None:
        self._finalizer()


def _stop_all(processes: list[subprocess.Popen[bytes]], directory: str) -> None:
    for process in processes:
        terminate(process)
    shutil.rmtree(directory, ignore_errors=True)


class RedisClusterServer(ServerContext):
    """A Redis Cluster of ``masters`` masters (no replicas) on loopback.

    Started with ``redis-cli --cluster create``, which splits the 16384 slots
    evenly; :meth:`start` returns once every node reports ``cluster_state:ok``
    and knows every other node.

    Args:
        masters: Number of master nodes (at least 3, as ``redis-cli`` requires).
        executable: The server binary.
        cli: The ``redis-cli`` binary.
        startup_timeout: Seconds to wait for the cluster to become ready.
    """

    def __init__(
        self,
        masters: int = 3,
        *,
        executable: str = "redis-server",
        cli: str = "redis-cli",
        startup_timeout: float = 30.0,
    ) -> None:
        if masters < 3:
            raise ValueError("redis-cli --cluster create needs at least 3 masters")
        self._executable = _find(executable)
        self._cli = _find(cli)
        self._startup_timeout = startup_timeout
        self.ports = _free_ports(masters, bus=True)
        self._servers: _Processes | None = None

    @property
    def url(self) -> str:
        """``redis://127.0.0.1:<port>/0`` of the first node (a cluster client finds the rest)."""
        return f"redis://127.0.0.1:{self.ports[0]}/0"

    @property
    def urls(self) -> list[str]:
        """One URL per node."""
        return [f"redis://127.0.0.1:{port}/0" for port in self.ports]

    def __repr__(self) -> str:
        return f"RedisClusterServer(ports={self.ports}, running={self._servers is not None})"

    def start(self) -> None:
        """Start the nodes, create the cluster and wait until it is ready.

        Raises:
            RedisServerError: A node exited, or the cluster was not ready in time.
        """
        if self._servers is not None:
            return
        servers = self._servers = _Processes(self, "zoom-s2s-redis-cluster-")
        deadline = time.monotonic() + self._startup_timeout
        for port in self.ports:
            servers.start(f"node-{port}", [
                self._executable,
                "--port", str(port),
                "--bind", "127.0.0.1",
                "--save", "",
                "--appendonly", "no",
                "--dir", servers.directory,
                "--cluster-enabled", "yes",
                "--cluster-config-file", f"nodes-{port}.conf",
                "--cluster-node-timeout", "5000",
            ])
        for port in self.ports:
            servers.check_alive()
            _poll(f"node {port} did not answer PING", functools.partial(_answers_ping, port),
                  max(0.1, deadline - time.monotonic()))
        create = subprocess.run(
            [self._cli, "--cluster", "create", *(f"127.0.0.1:{p}" for p in self.ports),
             "--cluster-replicas", "0", "--cluster-yes"],
            capture_output=True, timeout=max(1.0, deadline - time.monotonic()), check=False,
        )
        if create.returncode != 0:
            raise RedisServerError(
                f"redis-cli --cluster create failed ({create.returncode}): "
                f"{create.stdout.decode(errors='replace')[-2000:]}"
                f"{create.stderr.decode(errors='replace')[-2000:]}"
            )
        for port in self.ports:
            _poll(f"node {port} did not report cluster_state:ok",
                  functools.partial(self._ready, port), max(0.1, deadline - time.monotonic()))

    def _ready(self, port: int) -> bool:
        text = str(_ask(port, "CLUSTER", "INFO"))
        return (
            "cluster_state:ok" in text
            and f"cluster_known_nodes:{len(self.ports)}" in text
            and "cluster_slots_ok:16384" in text
        )

    def close(self) -> None:
        """Stop every node and remove their directory. Idempotent."""
        servers, self._servers = self._servers, None
        if servers is not None:
            servers.close()



class SentinelServer(ServerContext):
    """One ``redis-server --sentinel`` monitoring the master at ``127.0.0.1:<master_port>``.

    Quorum 1, so this sentinel alone decides. :meth:`start` returns once the
    sentinel has connected to the master and reports it as a healthy master.

    Args:
        master_port: Port of the (already running) master on 127.0.0.1.
        master_name: The name clients ask for (``Sentinel.master_for(name)``).
        executable: The server binary.
        startup_timeout: Seconds to wait for the sentinel to see the master.
    """

    def __init__(
        self,
        master_port: int,
        *,
        master_name: str = "mymaster",
        executable: str = "redis-server",
        startup_timeout: float = 20.0,
    ) -> None:
        self._executable = _find(executable)
        self.master_port = master_port
        self.master_name = master_name
        self._startup_timeout = startup_timeout
        self.port = _free_ports(1, bus=False, taken=[master_port])[0]
        self._servers: _Processes | None = None

    @property
    def address(self) -> tuple[str, int]:
        """``("127.0.0.1", port)``, as ``redis.asyncio.sentinel.Sentinel`` takes it."""
        return ("127.0.0.1", self.port)

    def __repr__(self) -> str:
        return (
            f"SentinelServer(port={self.port}, master_port={self.master_port}, "
            f"running={self._servers is not None})"
        )

    def start(self) -> None:
        """Write the sentinel's config, start it and wait until it sees the master.

        Raises:
            RedisServerError: It exited or did not see the master in time.
        """
        if self._servers is not None:
            return
        servers = self._servers = _Processes(self, "zoom-s2s-redis-sentinel-")
        config = os.path.join(servers.directory, "sentinel.conf")
        with open(config, "w") as file:  # sentinel rewrites its config: it must be a file
            file.write(
                f"port {self.port}\n"
                "bind 127.0.0.1\n"
                f"dir {servers.directory}\n"
                f"sentinel monitor {self.master_name} 127.0.0.1 {self.master_port} 1\n"
                f"sentinel down-after-milliseconds {self.master_name} 5000\n"
            )
        servers.start("sentinel", [self._executable, config, "--sentinel"])

        def sees_master() -> bool:
            servers.check_alive()
            state = _ask(self.port, "SENTINEL", "MASTER", self.master_name)
            if isinstance(state, list):  # RESP2: a flat list of names and values
                state = dict(zip(state[::2], state[1::2], strict=True))
            return bool(state.get("flags") == "master")

        _poll(f"sentinel on port {self.port} did not see its master", sees_master,
              self._startup_timeout)

    def close(self) -> None:
        """Stop the sentinel and remove its directory. Idempotent."""
        servers, self._servers = self._servers, None
        if servers is not None:
            servers.close()

