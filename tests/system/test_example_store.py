"""The worked example of docs/stores.rst passes the store contract, as the page promises."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import pytest

from zoom_s2s.stores import TokenStore, store_from_url
from zoom_s2s.testing.contract import StoreContract

EXAMPLE = Path(__file__).resolve().parents[2] / "docs" / "examples" / "example_store.py"
_spec = importlib.util.spec_from_file_location("example_store", EXAMPLE)
assert _spec is not None
assert _spec.loader is not None
example_store = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(example_store)
DictTokenStore: Any = example_store.DictTokenStore


class TestDictTokenStore(StoreContract):
    async def make_store(self) -> TokenStore:
        store: TokenStore = DictTokenStore()
        return store

    async def plant_failure(
        self, store: TokenStore, key: str, raw: str, *, keep_for: float
    ) -> None:
        example: Any = store
        example._set(f"{key}:failure", raw.encode("utf-8", "surrogateescape"), keep_for)


async def test_store_from_url_finds_the_example_by_its_scheme() -> None:
    store = store_from_url("dict://")
    assert isinstance(store, DictTokenStore)
    await store.aclose()


async def test_the_example_turns_backend_failures_into_store_errors(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from zoom_s2s.errors import StoreUnavailableError

    store = DictTokenStore()

    def down(name: str) -> None:
        raise ConnectionRefusedError("backend down")

    monkeypatch.setattr(store, "_get", down)
    with pytest.raises(StoreUnavailableError, match="dict:// failed while reading the token"):
        await store.read("k")
