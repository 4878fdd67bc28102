"""Start fleet workers by forking a preloaded Python instead of starting a new one.

A fresh interpreter that imports zoom-s2s, aiohttp and redis-py costs about
0.4 s of CPU; the system tests start about 170 workers, which was over a
quarter of the suite's CPU. A :class:`ForkServer` is one such interpreter, started once per
test process with those imports done; each worker is a ``fork()`` of it
(milliseconds) that then runs like a worker started with ``python -c``: its
own stdin, stdout/stderr to its log, the message pipe, environment and working
directory, and a normal interpreter exit (atexit handlers run).

The test process talks to the server over a ``SOCK_SEQPACKET`` Unix socket:
a request is one packet (JSON, with the worker's descriptors attached); the
server answers ``{"spawned": pid}`` and, when it reaps a worker,
``{"exited": pid, "code": c}`` (``-N`` for signal N, as :mod:`subprocess`
reports). :class:`ForkedProcess` has the part of :class:`subprocess.Popen`
that the harness uses. Nothing outlives the test process: the server dies
with it (``PR_SET_PDEATHSIG``) and the workers die with the server.

Only what cannot change after an interpreter has started must match the test
process for a worker to be forked (``PYTHON*``, ``LD_*``, ``FAKETIME*``,
locale and ``TZ``, ``sys.path``); any other worker (a skewed-clock worker
under libfaketime) is started with :class:`subprocess.Popen` as before, and so
is every worker when ``ZOOM_S2S_FORK_SERVER=0``.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import select
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Mapping, Sequence
from typing import IO

__all__ = ["ForkServer", "ForkedProcess", "fork_server", "preload"]

# Imported once in the server, so no worker pays for them.
PRELOAD = (
    "zoom_s2s",
    "zoom_s2s.testing",
    "zoom_s2s.stores.file",
    "zoom_s2s.stores.redis",
    "zoom_s2s.stores.postgres",
    "redis.asyncio",
    "asyncpg",
    "pytest",
)
_STARTUP_PREFIXES = ("PYTHON", "LD_", "FAKETIME", "LC_", "LANG", "TZ", "MALLOC")
_SERVER_COMMAND = (
    "import json, os, sys; sys.path[:0] = json.loads(os.environ['ZOOM_S2S_FORK_PATH']); "
    "from tests.harness.forkserver import _serve; _serve()"
)


def _startup(env: Mapping[str, str]) -> dict[str, str]:
    return {k: v for k, v in env.items() if k.startswith(_STARTUP_PREFIXES)}


# -- the server ---------------------------------------------------------------------


def _serve() -> None:
    """The fork server's main function; in each forked child it returns into the worker."""
    from zoom_s2s._lifecycle import die_with_parent

    die_with_parent()
    if os.getppid() != int(os.environ["ZOOM_S2S_FORK_PARENT"]):
        sys.exit(1)  # the test process died before the kernel could be asked to tell us
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    sock = socket.socket(fileno=int(os.environ["ZOOM_S2S_FORK_FD"]))
    for name in PRELOAD:
        with contextlib.suppress(ImportError):
            importlib.import_module(name)
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_w, False)
    signal.set_wakeup_fd(wake_w)
    signal.signal(signal.SIGCHLD, lambda *_: None)
    children: set[int] = set()
    child = None
    while child is None:
        ready, _, _ = select.select([sock, wake_r], [], [])
        if wake_r in ready:
            os.read(wake_r, 4096)
            _reap(sock, children)
        if sock in ready:
            try:
                data, fds, _, _ = socket.recv_fds(sock, 1 << 20, 8)
            except OSError:
                data, fds = b"", []
            if not data:  # the test process closed its end: the workers die with us
                os._exit(0)
            request = json.loads(data)
            if request["op"] == "preload":
                with contextlib.suppress(BaseException):  # pytest.skip() at import, too
                    importlib.import_module(request["module"])
                continue
            pid = os.fork()
            if pid == 0:
                child = (request, fds)
                break
            for fd in fds:
                os.close(fd)
            children.add(pid)
            sock.send(json.dumps({"spawned": pid}).encode())
    signal.set_wakeup_fd(-1)
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.default_int_handler)  # as in a new interpreter
    sock.close()
    os.close(wake_r)
    os.close(wake_w)
    request, (stdin, log, channel) = child
    os.dup2(stdin, 0)
    os.dup2(log, 1)
    os.dup2(log, 2)
    os.close(stdin)
    os.close(log)
    if request["cwd"] is not None:
        os.chdir(request["cwd"])
    os.environ.clear()
    os.environ.update(request["env"])
    os.environ[request["fd_env"]] = str(channel)
    target_module, _, target_name = request["target"].partition(":")
    getattr(importlib.import_module(target_module), target_name)()


def _reap(sock: socket.socket, children: set[int]) -> None:
    for pid in list(children):
        try:
            done, status = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            done, status = pid, 0
        if done:
            children.discard(pid)
            code = os.waitstatus_to_exitcode(status)
            with contextlib.suppress(OSError):
                sock.send(json.dumps({"exited": pid, "code": code}).encode())


# -- the test process's side ----------------------------------------------------------


class ForkedProcess:
    """A worker forked by the server: the part of :class:`subprocess.Popen` the harness uses."""

    def __init__(self, server: ForkServer, pid: int, stdin: IO[bytes]) -> None:
        self._server = server
        self.pid = pid
        self.stdin: IO[bytes] | None = stdin
        self.args = ["fork", str(pid)]

    @property
    def returncode(self) -> int | None:
        return self._server.exit_code(self.pid)

    def poll(self) -> int | None:
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        code = self._server.wait(self.pid, timeout)
        if code is None:
            raise subprocess.TimeoutExpired(self.args, timeout or 0.0)
        return code


class ForkServer:
    """A preloaded interpreter that forks workers for this process (see the module)."""

    def __init__(self, env: Mapping[str, str]) -> None:
        self._env = dict(env)
        self._path = [p for p in sys.path if p]
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self._sock = ours
        try:
            self.process = subprocess.Popen(
                [sys.executable, "-c", _SERVER_COMMAND],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                pass_fds=(theirs.fileno(),),
                env={
                    **self._env,
                    "ZOOM_S2S_FORK_FD": str(theirs.fileno()),
                    "ZOOM_S2S_FORK_PATH": json.dumps(self._path),
                    "ZOOM_S2S_FORK_PARENT": str(os.getpid()),
                    "PYTHONUNBUFFERED": "1",
                },
            )
        finally:
            theirs.close()
        self._lock = threading.Lock()  # one request at a time
        self._changed = threading.Condition()
        self._spawned: list[int] = []
        self._exited: dict[int, int] = {}
        self._preloaded: set[str] = set()
        self._gone = False
        self._reader = threading.Thread(target=self._read, name="fork-server", daemon=True)
        self._reader.start()

    def _read(self) -> None:
        while True:
            try:
                data = self._sock.recv(4096)
            except OSError:
                data = b""
            with self._changed:
                if not data:
                    self._gone = True
                    self._changed.notify_all()
                    return
                message = json.loads(data)
                if "spawned" in message:
                    self._spawned.append(message["spawned"])
                else:
                    self._exited[message["exited"]] = message["code"]
                self._changed.notify_all()

    def fits(self, env: Mapping[str, str]) -> bool:
        """Whether a worker with ``env`` can be forked from this server."""
        return (
            not self._gone
            and _startup(env) == _startup(self._env)
            and [p for p in sys.path if p] == self._path
        )

    def preload(self, module: str) -> None:
        """Import ``module`` in the server, so workers forked from now on have it."""
        if module in self._preloaded or module == "__main__":
            return
        self._preloaded.add(module)
        with self._lock, contextlib.suppress(OSError):
            self._sock.send(json.dumps({"op": "preload", "module": module}).encode())

    def spawn(
        self,
        target: str,
        *,
        stdout: int,
        channel: int,
        fd_env: str,
        env: Mapping[str, str],
        cwd: str | os.PathLike[str] | None,
    ) -> ForkedProcess:
        """Fork a worker running ``target`` (``"module:function"``).

        Raises:
            OSError: The server is gone.
        """
        read_end, write_end = os.pipe()
        request = {
            "op": "spawn",
            "target": target,
            "env": dict(env),
            "cwd": os.fspath(cwd) if cwd is not None else os.getcwd(),
            "fd_env": fd_env,
        }
        try:
            with self._lock:
                socket.send_fds(
                    self._sock, [json.dumps(request).encode()], [read_end, stdout, channel]
                )
                with self._changed:
                    if not self._changed.wait_for(lambda: self._spawned or self._gone, 30):
                        self._gone = True  # a late answer would be taken for the next one
                        raise OSError("the fork server did not answer within 30 s")
                    if not self._spawned:
                        raise OSError("the fork server is gone")
                    pid = self._spawned.pop(0)
        except BaseException:
            os.close(write_end)
            raise
        finally:
            os.close(read_end)
        return ForkedProcess(self, pid, open(write_end, "wb"))

    def exit_code(self, pid: int) -> int | None:
        with self._changed:
            if self._gone:  # its workers died with it (SIGKILL)
                return self._exited.get(pid, -signal.SIGKILL)
            return self._exited.get(pid)

    def wait(self, pid: int, timeout: float | None) -> int | None:
        with self._changed:
            self._changed.wait_for(lambda: pid in self._exited or self._gone, timeout)
        return self.exit_code(pid)

    def close(self) -> None:
        """End the server (its workers die with it)."""
        with contextlib.suppress(OSError):
            self._sock.shutdown(socket.SHUT_RDWR)  # wakes the reader; the server sees EOF
        self._sock.close()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(10)
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


_servers: dict[int, ForkServer] = {}
_servers_lock = threading.Lock()


def fork_server(env: Mapping[str, str]) -> ForkServer | None:
    """This process's fork server if a worker with ``env`` can be forked from it, else ``None``.

    The server is started on first use, from the main thread only: a child
    dies with the *thread* that started it (``PR_SET_PDEATHSIG``), and the
    server must live as long as the process.
    """
    if os.environ.get("ZOOM_S2S_FORK_SERVER", "1") == "0" or not hasattr(socket, "send_fds"):
        return None
    with _servers_lock:
        server = _servers.get(os.getpid())
        if server is None:
            if threading.current_thread() is not threading.main_thread():
                return None
            server = _servers[os.getpid()] = ForkServer(os.environ)
            import atexit

            atexit.register(server.close)
    return server if server.fits(env) else None


def preload(modules: Sequence[str]) -> None:
    """Import ``modules`` in this process's fork server, if it runs."""
    server = _servers.get(os.getpid())
    if server is not None:
        for module in modules:
            server.preload(module)
