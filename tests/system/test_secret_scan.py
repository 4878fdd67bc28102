"""Secret hygiene, proven over every CLI command and every store at DEBUG log level.

The client secret and every access token the fake issued must be absent from
log records, standard output and error (except ``zoom-s2s token``'s stdout,
whose job is to print one), and from every Redis key name and file name. The
``fake-server`` command prints its *fake* built-in test credentials by design;
it is scanned for real-looking tokens only.
"""

from __future__ import annotations

import logging
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from zoom_s2s import EncryptedTokenStore
from zoom_s2s.cli import main
from zoom_s2s.testing import FakeZoom

from ..support import SECRET

FAKE_TOKEN = re.compile(r"fake\.[A-Za-z0-9_-]{20,}")


STORES = ["memory", "file", "file+encrypted", pytest.param("redis", marks=pytest.mark.redis)]


def store_url(kind: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    if kind == "redis":
        return str(request.getfixturevalue("redis_url"))
    if kind.startswith("file"):
        return f"file://{tmp_path / 'tokens'}"
    return "memory://"


@pytest.mark.parametrize("kind", STORES)
def test_no_command_leaks_the_secret_or_a_token_on_any_store(
    kind: str,
    zoom: FakeZoom,
    tmp_path: Path,
    request: pytest.FixtureRequest,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    url = store_url(kind, tmp_path, request)
    if kind.endswith("encrypted"):
        monkeypatch.setenv("ZOOM_S2S_ENCRYPTION_KEYS", EncryptedTokenStore.generate_key())
    outputs: list[str] = []

    assert main(["token", "--store", url]) == 0
    token_out = capsys.readouterr()
    assert token_out.out.strip() == zoom.issued_tokens[0]  # its job; nothing else leaks
    outputs.append(token_out.err)

    assert main(["user", "--store", url]) == 0
    assert main(["user", "no-such-user@example.com", "--store", url]) == 1
    first = zoom.issued_tokens[0]
    assert main(["account-id", "--access-token", first]) == 0
    assert main(["account-id", "--access-token", "not-a-valid-token-at-all"]) == 1
    zoom.revoke_all()
    assert main(["user", "--store", url]) == 0  # 401, invalidate, refetch, retry
    monkeypatch.setenv("ZOOM_CLIENT_SECRET", SECRET + "-wrong")
    monkeypatch.setenv("ZOOM_S2S_STORE", "memory://")
    assert main(["token"]) == 1
    assert main(["user"]) == 1
    captured = capsys.readouterr()
    outputs += [captured.out, captured.err]
    outputs += [record.getMessage() for record in caplog.records]
    outputs += [str(record.args) for record in caplog.records]

    assert len(zoom.issued_tokens) >= 2
    assert any("token fetched" in line for line in outputs)  # DEBUG logs were captured
    for text in outputs:
        assert SECRET not in text
        for token in zoom.issued_tokens:
            assert token not in text

    names = scan_store_names(kind, tmp_path, request)
    for name in names:
        assert SECRET not in name
        for token in zoom.issued_tokens:
            assert token not in name


def scan_store_names(kind: str, tmp_path: Path, request: pytest.FixtureRequest) -> list[str]:
    """Every Redis key and every file name the store created."""
    if kind == "redis":
        import redis

        client = redis.Redis.from_url(request.getfixturevalue("redis_url"))
        try:
            keys = [key.decode() for key in client.scan_iter("*")]
        finally:
            client.close()
        assert keys, "the Redis store wrote nothing?"
        return keys
    if kind.startswith("file"):
        names = [p.name for p in (tmp_path / "tokens").iterdir()]
        assert names
        return names
    return []


def test_the_demo_prints_no_secret_or_token() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "zoom_s2s", "--log-level", "DEBUG", "demo", "--workers", "2",
         "--coroutines", "5"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    everything = result.stdout + result.stderr
    assert "token fetches:  1" in everything
    assert "zoom_s2s: token fetched" in everything  # the workers logged at DEBUG
    assert not FAKE_TOKEN.search(everything)
    assert FakeZoom().credentials.client_secret not in everything


def test_the_fake_server_prints_no_token() -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "zoom_s2s", "fake-server", "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 20
        lines: list[str] = []
        assert process.stdout is not None
        while time.monotonic() < deadline:
            line = process.stdout.readline()
            lines.append(line)
            if "Ctrl-C" in line:
                break
    finally:
        process.send_signal(signal.SIGINT)
        try:
            _, err = process.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            _, err = process.communicate()
    text = "".join(lines) + err
    assert "token URL" in text
    assert not FAKE_TOKEN.search(text)
    assert "Traceback" not in text
