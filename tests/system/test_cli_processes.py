"""The zoom-s2s command as its own process (python -m zoom_s2s).

It starts processes, so these are system tests; the in-process ones are in
tests/unit/test_cli.py. A process shows what a user sees: logging configured
by the command itself, one line per failure on stderr.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from zoom_s2s.testing import FakeZoom

from ..harness.postgres_server import PostgresServer
from ..support import SECRET
from ..unit.test_cli import one_error_line


def zoom_s2s(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "zoom_s2s", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_python_dash_m_runs_the_command_and_errors_have_no_traceback(zoom: FakeZoom) -> None:
    done = zoom_s2s("user", "nobody@example.com")
    assert done.returncode == 1
    one_error_line(done.stderr)
    assert SECRET not in done.stderr


def test_a_refused_token_is_one_line_without_log_lines(
    zoom: FakeZoom, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ZOOM_CLIENT_SECRET", SECRET + "-wrong")
    done = zoom_s2s("token")
    assert done.returncode == 1
    assert "invalid_client" in one_error_line(done.stderr)


def test_an_unreachable_store_is_one_line_naming_the_store(
    zoom: FakeZoom, monkeypatch: pytest.MonkeyPatch
) -> None:
    done = zoom_s2s("token", "--store", f"redis://:pw-Hidden-1@127.0.0.1:{closed_port()}/1")
    assert done.returncode == 1
    line = one_error_line(done.stderr)
    assert "Redis at redis://:***@127.0.0.1" in line
    assert "pw-Hidden-1" not in done.stderr


@pytest.mark.parametrize(
    ("flags", "said"),
    [
        (["--port", "99999"], "--port: must be a port from 0 to 65535, got 99999"),
        (["--port", "-1"], "--port: must be a port from 0 to 65535, got -1"),
        (["--expires-in", "nan"], "--expires-in: must be a number of seconds above 0, got nan"),
        (["--expires-in", "inf"], "--expires-in: must be a number of seconds above 0, got inf"),
        (["--expires-in", "0"], "--expires-in: must be a number of seconds above 0, got 0"),
    ],
)
def test_fake_server_refuses_a_bad_port_or_lifetime_in_one_line(
    flags: list[str], said: str
) -> None:
    done = zoom_s2s("fake-server", *flags)
    assert done.returncode == 2
    assert done.stdout == ""
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert said in lines[0]
    assert "unexpected" not in done.stderr


def test_the_fake_refuses_a_lifetime_json_cannot_carry() -> None:
    for lifetime in (float("nan"), float("inf"), -1.0):
        with pytest.raises(ValueError, match="expires_in"):
            FakeZoom(expires_in=lifetime)


def ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as probe:
            probe.bind(("::1", 0))
    except OSError:
        return False
    return True


@pytest.mark.skipif(not ipv6_loopback(), reason="no IPv6 loopback on this host")
def test_fake_server_on_ipv6_exports_urls_the_token_command_accepts(tmp_path: Path) -> None:
    out = tmp_path / "fake.env"
    with out.open("w") as stdout:
        server = subprocess.Popen(
            [sys.executable, "-m", "zoom_s2s", "fake-server", "--host", "::1", "--port", "0"],
            stdout=stdout,
            stderr=subprocess.DEVNULL,
        )
    try:
        deadline = time.monotonic() + 30
        while "press Ctrl-C" not in out.read_text():
            assert time.monotonic() < deadline, out.read_text()
            assert server.poll() is None, out.read_text()
            time.sleep(0.05)
        env = dict(os.environ)
        for line in out.read_text().splitlines():
            if line.startswith("export "):
                name, value = line.removeprefix("export ").split("=", 1)
                env[name] = value.strip("'")
        assert env["ZOOM_TOKEN_URL"].startswith("http://[::1]:")
        done = zoom_s2s("token", env=env)
        assert done.returncode == 0, done.stderr
        assert done.stdout.startswith("fake.")
    finally:
        server.terminate()
        server.wait(10)


def test_store_sql_with_a_role_it_cannot_quote_prints_no_ddl() -> None:
    done = zoom_s2s("store", "sql", "--grant-to", "App-User")
    assert done.returncode == 1
    assert done.stdout == ""
    assert "role name 'App-User'" in one_error_line(done.stderr)


def test_a_path_without_a_scheme_is_answered_with_the_file_url(tmp_path: Path) -> None:
    done = zoom_s2s("store", "init", str(tmp_path))
    assert done.returncode == 1
    assert f"write {tmp_path.as_uri()}" in one_error_line(done.stderr)


async def run_sql(url: str, *statements: str) -> None:
    import asyncpg

    connection = await asyncpg.connect(url)
    try:
        for statement in statements:
            await connection.execute(statement)
    finally:
        await connection.close()


@pytest.mark.postgres
def test_store_init_says_what_postgresql_refused_in_one_line(
    postgres_server: PostgresServer,
) -> None:
    postgres_server.start()
    url, password = postgres_server.url, postgres_server.password
    role, role_password = f"weak_{secrets.token_hex(4)}", secrets.token_urlsafe(12)
    asyncio.run(run_sql(
        url,
        f"CREATE ROLE {role} LOGIN PASSWORD '{role_password}'",
        f"REVOKE CREATE ON DATABASE postgres FROM {role}",
    ))
    host = f"127.0.0.1:{postgres_server.port}"
    cases = {
        url.replace(password, "wrong-Pa55word"): "refused the credentials",
        url.removesuffix("/postgres") + "/no_such_db": "has no such database",
        f"postgresql://{role}:{role_password}@{host}/postgres": "refused an operation",
        url + "?sslmode=bogus": "asyncpg refused the PostgreSQL URL",
        url + "?sslmode=require": "is unreachable",
        url.replace(host, f"127.0.0.1:{closed_port()}"): "is unreachable",
    }
    for store_url, said in cases.items():
        done = zoom_s2s("store", "init", store_url)
        assert done.returncode == 1, store_url
        line = one_error_line(done.stderr)
        assert said in line, line
        assert "Zoom" not in line, line
        assert "unexpected" not in line, line
        for secret in (password, role_password, "wrong-Pa55word"):
            assert secret not in done.stdout + done.stderr


@pytest.mark.postgres
def test_store_init_takes_the_schema_from_the_url_and_several_hosts(
    postgres_server: PostgresServer,
) -> None:
    postgres_server.start()
    schema = f"t_{secrets.token_hex(6)}"
    host = f"127.0.0.1:{postgres_server.port}"
    hosts = f"127.0.0.1:{closed_port()},{host}"  # the first is down: the second answers
    url = postgres_server.url.replace(host, hosts) + f"?schema={schema}"
    done = zoom_s2s("store", "init", url)
    assert done.returncode == 0, done.stderr
    assert f"created schema '{schema}'" in done.stdout
    assert postgres_server.password not in done.stdout


def test_an_application_without_logging_configuration_hears_nothing() -> None:
    done = subprocess.run(
        [sys.executable, "-c",
         "import logging, zoom_s2s\n"
         "logging.getLogger('zoom_s2s.stores.file').warning('ignoring a corrupt record')"],
        capture_output=True, text=True, timeout=30,
    )
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
