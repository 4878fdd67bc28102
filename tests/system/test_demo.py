"""`zoom-s2s demo`: processes x coroutines on a fake Zoom, one token fetch for the whole run."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from zoom_s2s.demo import _report

from ..harness.postgres_server import PostgresServer
from ..unit.test_cli import one_error_line


def run_demo(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "zoom_s2s", "demo", *args],
        capture_output=True,
        text=True,
        timeout=120,
    )


def reported(stdout: str, label: str) -> str:
    match = re.search(rf"^\s*{label}:\s+(.+)$", stdout, re.M)
    assert match, stdout
    return match.group(1)


@pytest.mark.slow
def test_the_demo_reports_exactly_one_token_fetch_and_exits_0() -> None:
    done = run_demo()
    assert done.returncode == 0, done.stderr
    assert reported(done.stdout, "token fetches").startswith("1 ")
    assert reported(done.stdout, "API calls") == "300 (answered by the fake Zoom: 300)"
    assert reported(done.stdout, "account id") == "fake-account-id"
    assert "4 worker processes x 25 coroutines" in done.stdout
    progress = [line for line in done.stderr.splitlines() if line.startswith("worker ")]
    assert len(progress) == 4
    assert "Traceback" not in done.stderr


def test_the_demo_refuses_a_memory_store_up_front_and_says_why() -> None:
    done = run_demo("--store", "memory://", "--workers", "2")
    assert done.returncode == 1
    assert done.stdout == ""  # no worker was started
    line = one_error_line(done.stderr)
    assert "memory:// is one process's memory" in line
    assert "leave --store out" in line


def test_the_demo_fails_when_processes_do_not_share_the_token(
    capsys: pytest.CaptureFixture[str],
) -> None:
    figures = {"api_calls": 1, "fetches": 1, "account_ids": ["fake-account-id"]}
    status = _report(
        [(0, figures, None), (1, figures, None)],
        workers=2, coroutines=1, calls=1, store="x://", token_requests=2, api_requests=2,
        expected_account_id="fake-account-id", elapsed=0.1,
    )
    assert status == 1
    assert "FAILED: 2 token fetches, expected exactly 1" in capsys.readouterr().err


@pytest.mark.slow
@pytest.mark.postgres
def test_the_demo_never_prints_the_store_password(postgres_server: PostgresServer) -> None:
    postgres_server.start()
    password = postgres_server.password
    done = run_demo("--store", postgres_server.url, "--workers", "2", "--coroutines", "2")
    assert done.returncode == 0, done.stderr
    assert reported(done.stdout, "store") == postgres_server.url.replace(password, "***")
    wrong = postgres_server.url.replace(password, "wrong-Pa55word")
    failed = run_demo("--store", wrong, "--workers", "2", "--coroutines", "1", "--calls", "1")
    assert failed.returncode == 1
    assert "refused the credentials" in failed.stderr
    for output in (done.stdout, done.stderr, failed.stdout, failed.stderr):
        assert password not in output
        assert "wrong-Pa55word" not in output


@pytest.mark.slow
@pytest.mark.redis
def test_the_demo_shares_the_token_through_redis(redis_url: str) -> None:
    done = run_demo("--store", redis_url, "--workers", "3", "--coroutines", "10")
    assert done.returncode == 0, done.stderr
    assert reported(done.stdout, "token fetches").startswith("1 ")


def test_the_demo_runs_in_process_through_main(capsys: pytest.CaptureFixture[str]) -> None:
    from zoom_s2s.cli import main

    assert main(["demo", "--workers", "2", "--coroutines", "3", "--calls", "2"]) == 0
    out = capsys.readouterr().out
    assert reported(out, "token fetches").startswith("1 ")
    assert reported(out, "API calls").startswith("12 ")
