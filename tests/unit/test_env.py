"""TokenManager.from_env() reads the environment exactly as the zoom-s2s command does."""

from __future__ import annotations

from pathlib import Path

import pytest

from zoom_s2s import EncryptedTokenStore, FileTokenStore, MemoryTokenStore, TokenManager
from zoom_s2s.cli import build_parser, manager_from_args
from zoom_s2s.errors import ConfigurationError
from zoom_s2s.sync import SyncTokenManager
from zoom_s2s.testing import FakeZoom


def environment(zoom: FakeZoom, **more: str) -> dict[str, str]:
    creds = zoom.credentials
    return {
        "ZOOM_ACCOUNT_ID": creds.account_id,
        "ZOOM_CLIENT_ID": creds.client_id,
        "ZOOM_CLIENT_SECRET": creds.client_secret,
        "ZOOM_TOKEN_URL": zoom.token_url,
        **more,
    }


async def test_from_env_reads_the_store_and_encrypts_it_with_the_keys(
    fake_zoom: FakeZoom, tmp_path: Path
) -> None:
    env = environment(
        fake_zoom,
        ZOOM_S2S_STORE=(tmp_path / "tokens").as_uri(),
        ZOOM_S2S_ENCRYPTION_KEYS=f" {EncryptedTokenStore.generate_key()} ,",
    )
    async with TokenManager.from_env(env) as tokens:
        token = await tokens.get_token()
        assert isinstance(tokens.store, EncryptedTokenStore)
        assert isinstance(tokens.store.inner, FileTokenStore)
        assert tokens.token_url == fake_zoom.token_url
    assert fake_zoom.token_requests == 1
    written = b"".join(p.read_bytes() for p in (tmp_path / "tokens").rglob("*") if p.is_file())
    assert written
    assert token.access_token.encode() not in written


async def test_arguments_are_defaults_the_environment_overrides(
    fake_zoom: FakeZoom, tmp_path: Path
) -> None:
    default = (tmp_path / "default").as_uri()
    async with TokenManager.from_env(environment(fake_zoom), store=default) as tokens:
        assert tokens.store.name == default
    env = environment(fake_zoom, ZOOM_S2S_STORE="memory://")
    async with TokenManager.from_env(env, store=default, refresh_margin=7) as tokens:
        assert isinstance(tokens.store, MemoryTokenStore)
        assert tokens.refresh_margin == 7


def test_encryption_keys_with_a_store_object_are_refused(fake_zoom: FakeZoom) -> None:
    env = environment(fake_zoom, ZOOM_S2S_ENCRYPTION_KEYS=EncryptedTokenStore.generate_key())
    with pytest.raises(ConfigurationError, match="EncryptedTokenStore yourself"):
        TokenManager.from_env(env, store=MemoryTokenStore())


def test_only_the_given_mapping_is_read(
    fake_zoom: FakeZoom, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ZOOM_TOKEN_URL", "https://elsewhere.example/oauth/token")
    monkeypatch.setenv("ZOOM_S2S_STORE", "file:///nowhere")
    env = environment(fake_zoom)
    del env["ZOOM_TOKEN_URL"]
    tokens = TokenManager.from_env(env)
    assert tokens.token_url == "https://zoom.us/oauth/token"
    assert isinstance(tokens.store, MemoryTokenStore)


def test_missing_credentials_name_every_variable() -> None:
    with pytest.raises(ConfigurationError, match="ZOOM_ACCOUNT_ID, ZOOM_CLIENT_ID"):
        TokenManager.from_env({"ZOOM_CLIENT_SECRET": "x"})


async def test_the_command_builds_the_manager_from_env_builds(
    fake_zoom: FakeZoom, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = environment(
        fake_zoom,
        ZOOM_S2S_STORE=(tmp_path / "t").as_uri(),
        ZOOM_S2S_ENCRYPTION_KEYS=EncryptedTokenStore.generate_key(),
    )
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    async with (
        manager_from_args(build_parser().parse_args(["token"])) as by_command,
        TokenManager.from_env() as by_library,
    ):
        for manager in (by_command, by_library):
            assert manager.store.name == f"{(tmp_path / 't').as_uri()} (encrypted)"
        assert by_command.store_key == by_library.store_key


def test_the_blocking_twin_reads_the_same_variables(
    zoom: FakeZoom, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ZOOM_S2S_STORE", (tmp_path / "tokens").as_uri())
    monkeypatch.setenv("ZOOM_S2S_ENCRYPTION_KEYS", EncryptedTokenStore.generate_key())
    tokens = SyncTokenManager.from_env(refresh_margin=7)
    try:
        token = tokens.get_token()
        assert tokens.stats().fetches == 1
    finally:
        tokens.close()
    written = b"".join(p.read_bytes() for p in (tmp_path / "tokens").rglob("*") if p.is_file())
    assert written
    assert token.access_token.encode() not in written
    assert zoom.token_requests == 1
