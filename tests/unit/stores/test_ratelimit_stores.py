"""The rate budgets of the memory and file stores, and an encrypted store's (its inner
store's): the RateBudgetContract, plus what the file budget does with bad shared state."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from zoom_s2s import EncryptedTokenStore, FileTokenStore, MemoryTokenStore, TokenStore
from zoom_s2s.stores import rate_budget_of
from zoom_s2s.stores.file import FileRateBudget
from zoom_s2s.stores.memory import MemoryRateBudget
from zoom_s2s.testing.budget_contract import RateBudgetContract


class TestMemoryBudget(RateBudgetContract):
    async def make_store(self) -> TokenStore:
        return MemoryTokenStore()


class TestFileBudget(RateBudgetContract):
    @pytest.fixture(autouse=True)
    def _directory(self, tmp_path: Path) -> None:
        self.path = tmp_path

    async def make_store(self) -> TokenStore:
        return FileTokenStore(self.path / "s")

    async def make_peer(self, store: TokenStore) -> TokenStore:
        return FileTokenStore(self.path / "s")

    async def make_broken_store(self) -> TokenStore:
        (self.path / "in-the-way").write_text("a file where the directory should be")
        return FileTokenStore(self.path / "in-the-way" / "s")


class TestEncryptedBudget(TestFileBudget):
    """Budgets carry no secret: an encrypted store offers its inner store's."""

    @pytest.fixture(autouse=True)
    def _key(self) -> None:
        pytest.importorskip("cryptography")
        self.key = EncryptedTokenStore.generate_key()

    async def make_store(self) -> TokenStore:
        return EncryptedTokenStore(await super().make_store(), [self.key])

    async def make_peer(self, store: TokenStore) -> TokenStore:
        return EncryptedTokenStore(await super().make_peer(store), [self.key])

    async def make_broken_store(self) -> TokenStore:
        return EncryptedTokenStore(await super().make_broken_store(), [self.key])


def test_a_store_offers_its_budget_and_a_wrapper_its_inner_stores(tmp_path: Path) -> None:
    assert isinstance(rate_budget_of(MemoryTokenStore()), MemoryRateBudget)
    assert isinstance(rate_budget_of(FileTokenStore(tmp_path)), FileRateBudget)
    assert rate_budget_of(object()) is None


def test_an_encrypted_store_over_a_store_without_a_budget_has_none() -> None:
    pytest.importorskip("cryptography")

    plain = MemoryTokenStore()
    plain.rate_budget = None  # type: ignore[assignment]
    store = EncryptedTokenStore(plain, [EncryptedTokenStore.generate_key()])
    assert rate_budget_of(store) is None
    assert not hasattr(store, "acquire_permit")


@pytest.mark.parametrize(
    "content",
    [
        b"not json",
        b'{"v": 1, "tat": 1e300, "until": 0, "daily": false, "shift": 0}',
        b'{"v": 1, "tat": 0, "until": 1e300, "daily": true, "shift": 0}',
        b'{"v": 2}',
        b"[" * 100_000,
    ],
)
async def test_the_file_budget_ignores_corrupt_or_far_ahead_state(
    tmp_path: Path, content: bytes
) -> None:
    store = FileTokenStore(tmp_path / "s")
    store.directory.mkdir(mode=0o700)
    (store.directory / "rate-x.light.rate").write_bytes(content)
    permit = await store.rate_budget.acquire_permit(
        "rate-x.light", interval=1, burst=1, max_wait=0
    )
    assert permit.granted
    assert permit.wait == 0
    assert not (await store.rate_budget.paused("rate-x.light")).daily


async def test_the_file_budget_keeps_a_bucket_in_one_private_fixed_size_file(
    tmp_path: Path,
) -> None:
    store = FileTokenStore(tmp_path / "s")
    await store.rate_budget.pause("rate-x.light", 5)
    path = store.directory / "rate-x.light.rate"
    assert path.stat().st_mode & 0o777 == 0o600
    record = json.loads(path.read_bytes())
    assert record["until"] == pytest.approx(time.monotonic() + 5, abs=1)
    size = path.stat().st_size
    await store.rate_budget.acquire_permit("rate-x.light", interval=1, burst=1, max_wait=60)
    assert path.stat().st_size == size


async def test_the_file_budget_replaces_a_symlink_instead_of_writing_through_it(
    tmp_path: Path,
) -> None:
    store = FileTokenStore(tmp_path / "s")
    store.directory.mkdir(mode=0o700)
    target = tmp_path / "victim"
    target.write_text("keep")
    os.symlink(target, store.directory / "rate-x.light.rate")
    await store.rate_budget.pause("rate-x.light", 1)
    assert target.read_text() == "keep"
    assert not (store.directory / "rate-x.light.rate").is_symlink()
