"""The zoom-s2s command: token, user and account-id against the fake Zoom, and its errors."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from zoom_s2s.cli import main
from zoom_s2s.testing import FakeZoom

from ..support import SECRET


def one_error_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("zoom-s2s: error: ")
    assert "Traceback" not in err
    return lines[0]


def test_token_prints_a_token_the_fake_issued(
    zoom: FakeZoom, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["token"]) == 0
    assert capsys.readouterr().out.strip() == zoom.issued_tokens[0]


def test_user_prints_the_users_raw_json(zoom: FakeZoom, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["user"]) == 0
    out = capsys.readouterr().out
    data = json.loads(out)
    assert data["id"] == zoom.me_id
    assert data["account_id"] == zoom.credentials.account_id
    assert data["zoom_one_type"] == 4  # raw: unknown fields too
    assert out.startswith('{\n  "')  # indent 2
    for token in zoom.issued_tokens:
        assert token not in out


def test_user_takes_an_id_or_email_and_an_api_url_flag(
    zoom: FakeZoom, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    zoom.add_user({"id": "u7", "email": "ann/dev@example.com"})
    monkeypatch.setenv("ZOOM_API_URL", "http://127.0.0.1:9/v2")  # the flag wins
    assert main(["user", "ann/dev@example.com", "--api-url", zoom.api_base_url]) == 0
    assert json.loads(capsys.readouterr().out)["id"] == "u7"


def test_an_unknown_user_prints_one_error_line_and_exits_1(
    zoom: FakeZoom, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["user", "nobody@example.com"]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    line = one_error_line(captured.err)
    assert "HTTP 404" in line
    assert "1001" in line


def test_account_id_prints_the_account_behind_an_access_token(
    zoom: FakeZoom, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    assert main(["token"]) == 0
    token = capsys.readouterr().out.strip()
    assert main(["account-id", "--access-token", token]) == 0
    assert capsys.readouterr().out.strip() == zoom.credentials.account_id
    monkeypatch.setenv("ZOOM_ACCESS_TOKEN", token)
    assert main(["account-id"]) == 0
    assert capsys.readouterr().out.strip() == zoom.credentials.account_id


def test_account_id_with_a_bad_token_says_it_is_invalid_without_echoing_it(
    zoom: FakeZoom, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = "bad-token-0123456789-abcdef"
    assert main(["account-id", "--access-token", bad]) == 1
    captured = capsys.readouterr()
    line = one_error_line(captured.err)
    assert "invalid" in line
    assert bad not in captured.err + captured.out


def test_account_id_without_a_token_says_how_to_give_one(
    zoom: FakeZoom, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["account-id"]) == 1
    assert "ZOOM_ACCESS_TOKEN" in one_error_line(capsys.readouterr().err)


def test_wrong_credentials_print_one_line_without_the_secret(
    zoom: FakeZoom, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ZOOM_CLIENT_SECRET", SECRET + "-wrong")
    for command in (["token"], ["user"]):
        assert main(command) == 1
        captured = capsys.readouterr()
        assert "invalid_client" in one_error_line(captured.err)
        assert SECRET not in captured.err + captured.out
    assert zoom.tokens_issued == 0


def test_an_unreachable_api_prints_one_line(
    zoom: FakeZoom, capsys: pytest.CaptureFixture[str]
) -> None:
    assert (
        main(["account-id", "--access-token", "x" * 20, "--api-url", "http://127.0.0.1:9/v2"]) == 1
    )
    assert "could not reach the Zoom API" in one_error_line(capsys.readouterr().err)


def test_a_bad_api_url_is_a_configuration_error(
    zoom: FakeZoom, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["user", "--api-url", "ftp://api.zoom.us/v2"]) == 1
    assert "base_url" in one_error_line(capsys.readouterr().err)


def test_python_dash_m_runs_the_command_and_errors_have_no_traceback(zoom: FakeZoom) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "zoom_s2s", "user", "nobody@example.com"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 1
    one_error_line(done.stderr)
    assert SECRET not in done.stderr
