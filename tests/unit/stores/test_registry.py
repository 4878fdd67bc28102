"""stores/registry.py: store URLs by registration."""

from __future__ import annotations

from typing import Any

import pytest

from zoom_s2s.errors import ConfigurationError
from zoom_s2s.stores import MemoryTokenStore, register_store, registry, store_from_url


@pytest.fixture(autouse=True)
def _private_registry(monkeypatch: pytest.MonkeyPatch) -> None:
    # Registrations stay inside the test.
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
