"""stores/registry.py: store URLs by registration, from code and from entry points."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from zoom_s2s.errors import ConfigurationError
from zoom_s2s.stores import MemoryTokenStore, register_store, registry, store_from_url


@pytest.fixture(autouse=True)
def _private_registry(monkeypatch: pytest.MonkeyPatch) -> None:
    # Registrations and loaded plugins stay inside the test.
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))


class AcmeStore(MemoryTokenStore):
    """A third-party store: not a BaseTokenStore subclass with schemes, just from_url."""

    schemes = ()

    def __init__(self, url: str, options: dict[str, Any]) -> None:
        super().__init__()
        self.url = url
        self.options = options

    @classmethod
    def from_url(cls, url: str, **options: Any) -> AcmeStore:
        return cls(url, options)


def test_built_in_schemes_are_registered() -> None:
    assert {"memory", "file", "redis", "rediss", "unix"} <= set(registry.registered_schemes())


async def test_a_registered_store_serves_its_scheme_with_the_options() -> None:
    register_store("acme", AcmeStore)
    store = store_from_url("acme://tokens.example/db?x=1", region="eu")
    assert isinstance(store, AcmeStore)
    assert store.url == "acme://tokens.example/db?x=1"
    assert store.options == {"region": "eu"}
    await store.aclose()


def test_schemes_are_case_insensitive() -> None:
    register_store("AcMe", AcmeStore)
    assert isinstance(store_from_url("ACME://x"), AcmeStore)


def test_a_later_registration_replaces_the_earlier() -> None:
    class Other(AcmeStore):
        pass

    register_store("acme", AcmeStore)
    register_store("acme", Other)
    assert type(store_from_url("acme://x")) is Other


@pytest.mark.parametrize("scheme", ["", "1abc", "ac me", "acme://", "ac/me"])
def test_invalid_schemes_are_refused(scheme: str) -> None:
    with pytest.raises(ConfigurationError, match="not a URL scheme"):
        register_store(scheme, AcmeStore)


def test_encryption_wraps_a_registered_store() -> None:
    pytest.importorskip("cryptography")
    from zoom_s2s.stores import EncryptedTokenStore

    register_store("acme", AcmeStore)
    store = store_from_url("acme://x", encryption_keys=[EncryptedTokenStore.generate_key()])
    assert isinstance(store, EncryptedTokenStore)
    assert isinstance(store.inner, AcmeStore)


def test_an_unexpected_option_is_a_configuration_error() -> None:
    class Strict:
        @classmethod
        def from_url(cls, url: str) -> MemoryTokenStore:
            return MemoryTokenStore()

    register_store("strict", Strict)
    with pytest.raises(ConfigurationError, match="unexpected option for a strict:// store"):
        store_from_url("strict://x", colour="blue")


def test_an_unknown_scheme_lists_the_registered_ones() -> None:
    register_store("acme", AcmeStore)
    with pytest.raises(ConfigurationError) as info:
        store_from_url("dynamodb://u:hunter2@db/tokens")
    message = str(info.value)
    assert "scheme 'dynamodb'" in message
    for scheme in ("acme://", "memory://", "file://", "redis://"):
        assert scheme in message
    assert "zoom_s2s.stores" in message  # how a plugin would register
    assert "hunter2" not in message


# -- entry points --------------------------------------------------------------------


def install_plugin(
    site: Path, monkeypatch: pytest.MonkeyPatch, module: str, source: str, entry_points: str
) -> None:
    """A real distribution on sys.path: a module and its .dist-info with entry_points.txt."""
    (site / f"{module}.py").write_text(textwrap.dedent(source))
    info = site / f"{module}-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(
        f"Metadata-Version: 2.1\nName: {module.replace('_', '-')}\nVersion: 1.0\n"
    )
    (info / "entry_points.txt").write_text(textwrap.dedent(entry_points))
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.delitem(sys.modules, module, raising=False)


PLUGIN = """
    from zoom_s2s.stores import MemoryTokenStore

    LOADED = []

    class DynamoTokenStore(MemoryTokenStore):
        schemes = ()

        @classmethod
        def from_url(cls, url, **options):
            LOADED.append((url, options))
            return cls()
"""


async def test_a_store_is_found_through_its_entry_point(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    install_plugin(
        tmp_path,
        monkeypatch,
        "zs2s_pg_plugin",
        PLUGIN,
        """
        [zoom_s2s.stores]
        dynamodb = zs2s_pg_plugin:DynamoTokenStore
        """,
    )
    assert "zs2s_pg_plugin" not in sys.modules  # nothing imported before it is asked for
    store = store_from_url("dynamodb://db.internal/tokens", pool_size=3)
    plugin = sys.modules["zs2s_pg_plugin"]
    assert type(store) is plugin.DynamoTokenStore
    assert plugin.LOADED == [("dynamodb://db.internal/tokens", {"pool_size": 3})]
    assert "dynamodb" in registry.registered_schemes()  # loaded once, then registered
    await store.aclose()


def test_other_groups_and_names_are_ignored(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    install_plugin(
        tmp_path,
        monkeypatch,
        "zs2s_other_plugin",
        PLUGIN,
        """
        [some.other.group]
        dynamodb = zs2s_other_plugin:DynamoTokenStore
        [zoom_s2s.stores]
        mysql = zs2s_other_plugin:DynamoTokenStore
        """,
    )
    with pytest.raises(ConfigurationError, match="scheme 'dynamodb'"):
        store_from_url("dynamodb://db/tokens")
    assert "zs2s_other_plugin" not in sys.modules


def test_a_plugin_that_fails_to_import_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    install_plugin(
        tmp_path,
        monkeypatch,
        "zs2s_broken_plugin",
        "import a_module_that_does_not_exist\n",
        """
        [zoom_s2s.stores]
        dynamodb = zs2s_broken_plugin:DynamoTokenStore
        """,
    )
    with pytest.raises(ConfigurationError) as info:
        store_from_url("dynamodb://u:hunter2@db/tokens")
    message = str(info.value)
    assert "zs2s_broken_plugin:DynamoTokenStore" in message
    assert "failed to import" in message
    assert "ModuleNotFoundError" in message
    assert "hunter2" not in message


def test_a_plugin_without_from_url_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    install_plugin(
        tmp_path,
        monkeypatch,
        "zs2s_odd_plugin",
        "class NotAStore:\n    pass\n",
        """
        [zoom_s2s.stores]
        dynamodb = zs2s_odd_plugin:NotAStore
        """,
    )
    with pytest.raises(ConfigurationError, match="has no from_url"):
        store_from_url("dynamodb://db/tokens")


def test_a_registered_scheme_wins_over_an_entry_point(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    install_plugin(
        tmp_path,
        monkeypatch,
        "zs2s_shadowed_plugin",
        PLUGIN,
        """
        [zoom_s2s.stores]
        acme = zs2s_shadowed_plugin:DynamoTokenStore
        """,
    )
    register_store("acme", AcmeStore)
    assert isinstance(store_from_url("acme://x"), AcmeStore)
    assert "zs2s_shadowed_plugin" not in sys.modules
