"""A throw-away PostgreSQL server for tests: ``initdb`` + ``postgres`` on a free loopback port.

Example::

    with PostgresServer() as server:
        store = PostgresTokenStore.from_url(server.url)
        ...
        server.stop()    # simulate an outage (fast shutdown; the data is kept)
        server.start()   # same port, same data
        server.kill()    # SIGKILL the postmaster: a crash, not a shutdown

PostgreSQL refuses to run as root, so when this process is root the cluster
belongs to an unprivileged user (``nobody`` unless ``user`` says otherwise):
its data directory is chowned to that user and ``initdb`` and ``postgres``
run under it. The server listens on 127.0.0.1 only (no Unix socket), with
``fsync`` off and the superuser ``postgres`` authenticating with a random
password (``scram-sha-256``), so the tests see password handling as in
production. The postmaster is started directly (not through ``pg_ctl``), so
on Linux the kernel stops it when this process dies.
"""

from __future__ import annotations

import contextlib
import ctypes
import glob
import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import weakref
from pathlib import Path
from typing import Any

from .redis_server import ServerContext, server_env

__all__ = [
    "PostgresServer",
    "PostgresServerError",
    "find_postgres_binaries",
    "postgres_server_available",
]

_INSTALL_HINT = "install PostgreSQL (e.g. apt-get install postgresql)"


class PostgresServerError(RuntimeError):
    """PostgreSQL's binaries are missing, or the server did not start or answer in time."""


def find_postgres_binaries() -> Path | None:
    """The directory holding ``initdb`` and ``postgres``, or ``None``.

    ``PATH`` first, then Debian's ``/usr/lib/postgresql/<version>/bin`` (newest
    version first), where ``apt-get install postgresql`` puts them off ``PATH``.
    """
    initdb = shutil.which("initdb")
    if initdb is not None and shutil.which("postgres") is not None:
        return Path(initdb).parent
    candidates = sorted(
        glob.glob("/usr/lib/postgresql/*/bin"),
        key=lambda path: int(Path(path).parent.name) if Path(path).parent.name.isdigit() else 0,
        reverse=True,
    )
    for candidate in candidates:
        if (Path(candidate) / "initdb").exists() and (Path(candidate) / "postgres").exists():
            return Path(candidate)
    return None


def postgres_server_available() -> bool:
    """Whether :class:`PostgresServer` can find ``initdb`` and ``postgres``."""
    return find_postgres_binaries() is not None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _accepts(port: int, timeout: float) -> bool:
    """Whether the server serves clients on ``port`` (it asks a new one to authenticate).

    A TCP connection alone is not enough: the postmaster accepts connections
    while it starts up or recovers from a crash, and answers a client's
    startup message with an error ("the database system is starting up").
    Once it serves clients, it answers with an authentication request (``R``).
    """
    body = b"".join(
        [(196608).to_bytes(4, "big"), b"user\0postgres\0database\0postgres\0\0"]
    )
    startup = (len(body) + 4).to_bytes(4, "big") + body
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
            sock.sendall(startup)
            return sock.recv(1) == b"R"
    except OSError:
        return False


def _nothing() -> None:
    pass


def _quit_with_parent() -> Any:
    """A ``preexec_fn`` asking Linux to SIGQUIT the child when its parent dies.

    SIGQUIT is PostgreSQL's immediate shutdown (SIGTERM would wait for the
    clients). libc is loaded here, in the parent: the child has already
    dropped root and may not be able to read this Python's files.
    """
    if not sys.platform.startswith("linux"):
        return None
    libc = ctypes.CDLL(None, use_errno=True)
    pr_set_pdeathsig = 1

    def preexec() -> None:
        libc.prctl(pr_set_pdeathsig, int(signal.SIGQUIT), 0, 0, 0)

    return preexec


def _stop(process: subprocess.Popen[bytes], signum: int) -> None:
    if process.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        process.send_signal(signum)
        process.send_signal(signal.SIGCONT)  # a paused server shuts down only once continued
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=5)


class PostgresServer(ServerContext):
    """Runs a private PostgreSQL cluster as a child process on a free loopback port.

    Args:
        port: The port; a free one is picked when ``None``. Kept across
            :meth:`stop` / :meth:`start` so clients can reconnect.
        user: The OS user that owns and runs the cluster when this process is
            root (PostgreSQL refuses root); ignored otherwise.
        startup_timeout: Seconds to wait for the server to accept clients.
        settings: More ``postgres -c name=value`` settings.

    Raises:
        PostgresServerError: The binaries are missing (on creation).
    """

    def __init__(
        self,
        *,
        port: int | None = None,
        user: str = "nobody",
        startup_timeout: float = 30.0,
        settings: dict[str, str] | None = None,
    ) -> None:
        binaries = find_postgres_binaries()
        if binaries is None:
            raise PostgresServerError(f"initdb and postgres not found; {_INSTALL_HINT}")
        self._bin = binaries
        self.port = port if port is not None else _free_port()
        self.password = secrets.token_urlsafe(16)
        self._user = user if os.geteuid() == 0 else None
        self._startup_timeout = startup_timeout
        self._settings = dict(settings or {})
        self._process: subprocess.Popen[bytes] | None = None
        self._directory: str | None = None
        self._stop_server: weakref.finalize[..., Any] = weakref.finalize(self, _nothing)
        self._remove_directory: weakref.finalize[..., Any] = self._stop_server

    @property
    def url(self) -> str:
        """``postgresql://postgres:<password>@127.0.0.1:<port>/postgres``."""
        return f"postgresql://postgres:{self.password}@127.0.0.1:{self.port}/postgres"

    @property
    def running(self) -> bool:
        """Whether the postmaster is alive."""
        return self._process is not None and self._process.poll() is None

    def __repr__(self) -> str:  # no password
        return f"PostgresServer(port={self.port}, running={self.running})"

    def _run_as(self) -> dict[str, Any]:
        if self._user is None:
            return {"env": server_env()}
        entry = pwd.getpwnam(self._user)
        return {
            "user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": [], "env": server_env()
        }

    def _initdb(self, directory: str) -> None:
        data = os.path.join(directory, "data")
        pwfile = os.path.join(directory, "pwfile")
        with open(pwfile, "w", encoding="utf-8") as file:
            file.write(self.password + "\n")
        if self._user is not None:
            entry = pwd.getpwnam(self._user)
            for path in (directory, pwfile):
                os.chown(path, entry.pw_uid, entry.pw_gid)
        result = subprocess.run(
            [
                str(self._bin / "initdb"),
                "-D", data,
                "-U", "postgres",
                "-E", "UTF8",
                "--locale=C",
                "--auth-local=trust",
                "--auth-host=scram-sha-256",
                f"--pwfile={pwfile}",
                "--no-sync",
            ],
            cwd=directory,
            capture_output=True,
            stdin=subprocess.DEVNULL,
            timeout=120,
            check=False,
            **self._run_as(),
        )
        os.unlink(pwfile)
        if result.returncode != 0:
            raise PostgresServerError(
                f"initdb failed with status {result.returncode}: "
                f"{result.stderr.decode(errors='replace')[-2000:]}"
            )

    def start(self) -> None:
        """Start the server (no-op if running) and wait until it accepts clients.

        The first start creates the cluster (``initdb``); later ones reuse it.

        Raises:
            PostgresServerError: ``initdb`` failed, or the server exited or did not
                accept clients within ``startup_timeout``.
        """
        if self.running:
            return
        if self._directory is None:
            directory = tempfile.mkdtemp(prefix="zoom-s2s-postgres-")
            # Removed by close(), or when this object is collected or Python exits.
            self._remove_directory = weakref.finalize(
                self, shutil.rmtree, directory, ignore_errors=True
            )
            self._directory = directory
            self._initdb(directory)
        settings = {
            "listen_addresses": "127.0.0.1",
            "port": str(self.port),
            "unix_socket_directories": "",
            "fsync": "off",
            "synchronous_commit": "off",
            "full_page_writes": "off",
            "shared_buffers": "16MB",
            "max_connections": "200",
            "log_min_messages": "warning",
            **self._settings,
        }
        log_path = os.path.join(self._directory, "postgres.log")
        log = open(log_path, "ab")  # noqa: SIM115
        with log:
            self._process = subprocess.Popen(
                [
                    str(self._bin / "postgres"),
                    "-D", os.path.join(self._directory, "data"),
                    *(arg for name, value in settings.items() for arg in ("-c", f"{name}={value}")),
                ],
                cwd=self._directory,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                # Runs after the change of user (which would clear it).
                preexec_fn=_quit_with_parent(),
                **self._run_as(),
            )
        self._stop_server = weakref.finalize(self, _stop, self._process, signal.SIGQUIT)
        deadline = time.monotonic() + self._startup_timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise PostgresServerError(
                    f"postgres exited with status {self._process.returncode}; see {log_path} "
                    f"(is port {self.port} taken?)"
                )
            if _accepts(self.port, timeout=0.5):
                return
            time.sleep(0.02)
        self.stop()
        raise PostgresServerError(
            f"postgres did not accept clients on port {self.port} within "
            f"{self._startup_timeout} s; see {log_path}"
        )

    def stop(self) -> None:
        """Stop the server (fast shutdown: clients are disconnected); no-op if stopped.

        The data is kept: :meth:`start` brings it back on the same port.
        """
        process, self._process = self._process, None
        self._stop_server.detach()
        if process is not None:
            _stop(process, signal.SIGINT)

    def kill(self) -> None:
        """SIGKILL the postmaster, as a crash would; :meth:`start` recovers the data."""
        process, self._process = self._process, None
        self._stop_server.detach()
        if process is not None and process.poll() is None:
            process.kill()
            process.wait(timeout=5)
            # The backends notice the postmaster's death and exit; wait for the
            # port and the shared memory to be free before a restart.
            deadline = time.monotonic() + 10
            pid_file = os.path.join(self._directory or "", "data", "postmaster.pid")
            while _accepts(self.port, 0.2) and time.monotonic() < deadline:
                time.sleep(0.05)
            with contextlib.suppress(FileNotFoundError):
                os.unlink(pid_file)

    def pause(self) -> None:
        """Freeze the postmaster and its backends (``SIGSTOP``): connections hang."""
        self._signal_all(signal.SIGSTOP)

    def resume(self) -> None:
        """Continue a server frozen by :meth:`pause`."""
        self._signal_all(signal.SIGCONT)

    def _signal_all(self, signum: int) -> None:
        if self._process is None or self._process.poll() is not None:
            raise PostgresServerError(f"postgres on port {self.port} is not running")
        pids = [self._process.pid]
        with contextlib.suppress(OSError):
            children = Path(f"/proc/{self._process.pid}/task/{self._process.pid}/children")
            pids += [int(pid) for pid in children.read_text().split()]
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signum)

    def close(self) -> None:
        """Stop the server and remove its directory."""
        self.stop()
        self._directory = None
        self._remove_directory()
