"""`zoom-s2s demo`: processes x coroutines on a fake Zoom, one token fetch for the whole run."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest


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


@pytest.mark.slow
def test_the_demo_fails_when_processes_do_not_share_the_token() -> None:
    # memory:// is private to each process: two workers fetch two tokens.
    done = run_demo("--store", "memory://", "--workers", "2", "--coroutines", "2", "--calls", "1")
    assert done.returncode == 1
    assert reported(done.stdout, "token fetches").startswith("2 ")
    assert "FAILED: 2 token fetches, expected exactly 1" in done.stderr


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
