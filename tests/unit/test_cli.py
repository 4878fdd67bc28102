"""The zoom-s2s command: token, user and account-id against the fake Zoom, and its errors."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest

from zoom_s2s.cli import build_parser, main, manager_from_args
from zoom_s2s.client import DEFAULT_API_URL
from zoom_s2s.oauth import DEFAULT_TOKEN_URL
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


# -- hardening: no traceback, no password, the right reason --------------------------------


def test_a_secret_file_that_is_not_utf8_is_one_clear_line(
    zoom: FakeZoom, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    secret_file = tmp_path / "secret"
    secret_file.write_bytes(b"s3cr3t-\xff\xfe-latin1-\xe9")
    assert main(["token", "--client-secret-file", str(secret_file)]) == 1
    captured = capsys.readouterr()
    line = one_error_line(captured.err)
    assert "is not UTF-8 text" in line
    assert "s3cr3t" not in captured.err + captured.out
    assert zoom.token_requests == 0


def test_a_missing_secret_file_is_one_clear_line(
    zoom: FakeZoom, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    assert main(["token", "--client-secret-file", str(tmp_path / "nope")]) == 1
    assert "cannot read --client-secret-file" in one_error_line(capsys.readouterr().err)


@pytest.mark.parametrize("how", ["flag", "environment"])
def test_a_token_url_with_a_password_is_refused_without_printing_it(
    zoom: FakeZoom, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, how: str
) -> None:
    url = zoom.token_url.replace("http://", "http://user:pa55-never-printed@")
    if how == "flag":
        assert main(["token", "--token-url", url]) == 1
    else:
        monkeypatch.setenv("ZOOM_TOKEN_URL", url)
        assert main(["token"]) == 1
    captured = capsys.readouterr()
    line = one_error_line(captured.err)
    assert "must not carry a user name or password" in line
    assert "pa55-never-printed" not in captured.err + captured.out
    assert zoom.token_requests == 0


def test_plain_http_to_another_host_is_refused_and_the_flag_is_named(
    zoom: FakeZoom, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["token", "--token-url", "http://192.0.2.1/oauth/token"]) == 1
    line = one_error_line(capsys.readouterr().err)
    assert "clear text" in line
    assert "--allow-insecure-http" in line


def test_allow_insecure_http_is_passed_on(zoom: FakeZoom) -> None:
    args = build_parser().parse_args(["token", "--allow-insecure-http"])
    assert manager_from_args(args).allow_insecure_http is True
    args = build_parser().parse_args(["token"])
    assert manager_from_args(args).allow_insecure_http is False


@pytest.mark.parametrize("blank", ["", "   "])
def test_a_blank_environment_variable_means_the_default(
    monkeypatch: pytest.MonkeyPatch, blank: str
) -> None:
    for name in ("ZOOM_TOKEN_URL", "ZOOM_API_URL", "ZOOM_S2S_STORE", "ZOOM_S2S_LOG_LEVEL"):
        monkeypatch.setenv(name, blank)
    token = build_parser().parse_args(["token"])
    assert token.token_url == DEFAULT_TOKEN_URL
    assert token.store == "memory://"
    assert token.log_level == "WARNING"
    assert build_parser().parse_args(["user"]).api_url == DEFAULT_API_URL


def test_a_bad_log_level_variable_is_a_usage_error(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("ZOOM_S2S_LOG_LEVEL", "chatty")
    with pytest.raises(SystemExit) as info:
        main(["token"])
    assert info.value.code == 2
    assert "ZOOM_S2S_LOG_LEVEL must be one of" in capsys.readouterr().err
    monkeypatch.setenv("ZOOM_S2S_LOG_LEVEL", "debug")  # any case
    assert build_parser().parse_args(["token"]).log_level == "DEBUG"


def test_fake_server_on_a_taken_port_says_the_port_cannot_be_bound(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert main(["fake-server", "--port", str(port)]) == 1
    line = one_error_line(capsys.readouterr().err)
    assert f"cannot bind the fake Zoom to 127.0.0.1:{port}" in line
    assert "--port" in line
    assert "cannot reach Zoom" not in line


@pytest.mark.parametrize("url", ["memory://", "file://{tmp}/store"])
def test_store_init_on_a_store_without_a_schema_has_nothing_to_do(
    url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["store", "init", url.format(tmp=tmp_path)]) == 0
    assert "no schema to create; nothing to do" in capsys.readouterr().out


def test_store_init_refuses_a_schema_for_a_store_without_one(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["store", "init", (tmp_path / "s").as_uri(), "--schema", "app"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("zoom-s2s: error: --schema is for PostgreSQL stores")
    assert not (tmp_path / "s").exists()  # refused before any store was made


def test_store_sql_prints_the_ddl_and_grants_without_connecting(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["store", "sql", "--schema", "app_tokens", "--grant-to", "app_user"]) == 0
    out = capsys.readouterr().out
    assert 'CREATE SCHEMA IF NOT EXISTS "app_tokens"' in out
    assert 'GRANT USAGE ON SCHEMA "app_tokens" TO "app_user";' in out
    assert main(["store", "sql"]) == 0
    out = capsys.readouterr().out
    assert '"zoom_s2s".entries' in out
    assert "GRANT" not in out


def test_store_sql_refuses_a_schema_name_that_is_not_plain(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["store", "sql", "--schema", 'x"; DROP TABLE users; --']) == 1
    err = capsys.readouterr().err
    assert err.startswith("zoom-s2s: error: schema must be")


def test_store_init_with_a_bad_url_prints_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["store", "init", "nosuch://x:pw-1234@host/"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("zoom-s2s: error:")
    assert "pw-1234" not in err
