"""The webhook claims of the memory and file stores, and an encrypted store's (its inner
store's): the ClaimsContract, plus what the file claims do with bad shared state."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import pytest

from zoom_s2s import EncryptedTokenStore, FileTokenStore, MemoryTokenStore, TokenStore
from zoom_s2s.stores import claims_of
from zoom_s2s.stores.file import FileClaims
from zoom_s2s.testing import FakeClock
from zoom_s2s.testing.claims_contract import ClaimsContract


class TestMemoryClaims(ClaimsContract):
    @pytest.fixture(autouse=True)
    def _virtual_time(self, fake_clock: FakeClock) -> None:
        """Leases and keeps lapse in virtual time: the contract sleeps on the clock seam."""

    async def make_store(self) -> TokenStore:
        return MemoryTokenStore()


class TestFileClaims(ClaimsContract):
    @pytest.fixture(autouse=True)
    def _directory(self, tmp_path: Path, fake_clock: FakeClock) -> None:
        self.path = tmp_path  # and leases lapse in virtual time, as for memory

    async def make_store(self) -> TokenStore:
        return FileTokenStore(self.path / "s")

    async def make_peer(self, store: TokenStore) -> TokenStore:
        return FileTokenStore(self.path / "s")

    async def make_broken_store(self) -> TokenStore:
        (self.path / "in-the-way").write_text("a file where the directory should be")
        return FileTokenStore(self.path / "in-the-way" / "s")


@pytest.mark.skipif(importlib.util.find_spec("cryptography") is None, reason="encryption extra")
def test_an_encrypted_store_offers_its_inner_stores_claims(tmp_path: Path) -> None:
    inner = FileTokenStore(tmp_path)
    store = EncryptedTokenStore(inner, [EncryptedTokenStore.generate_key()])
    assert claims_of(store) is inner.webhook_claims
    assert isinstance(claims_of(store), FileClaims)


@pytest.mark.parametrize(
    "planted",
    [b"{not json", b'{"v": 1, "until": 1e300, "owner": "x", "done": true, "newest": 0}',
     b'{"v": 2}', b"[]"],
)
async def test_an_unreadable_or_planted_claim_file_counts_as_free(
    tmp_path: Path, planted: bytes
) -> None:
    store = FileTokenStore(tmp_path / "s")
    claims = claims_of(store)
    assert claims is not None
    assert (await claims.claim("r.k", "me", lease=30, keep=60)).outcome == "claimed"
    path = tmp_path / "s" / "wh.r.k.claim"
    assert path.exists()
    fd = os.open(path, os.O_WRONLY | os.O_TRUNC)
    os.write(fd, planted)
    os.close(fd)
    assert (await claims.claim("r.k", "you", lease=30, keep=60)).outcome == "claimed"
    await store.aclose()


async def test_lapsed_claim_files_are_swept(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fake_clock: FakeClock
) -> None:
    monkeypatch.setattr("zoom_s2s.stores.file.claims._SWEEP_EVERY", 4)
    store = FileTokenStore(tmp_path / "s")
    claims = claims_of(store)
    assert claims is not None
    for i in range(3):
        await claims.claim(f"r.{i}", "me", lease=1, keep=60)
    assert len(list((tmp_path / "s").glob("wh.*.claim"))) == 3
    fake_clock.advance(1.5)  # their leases lapse: the next sweep takes them
    await claims.claim("r.last", "me", lease=30, keep=60)
    assert [p.name for p in (tmp_path / "s").glob("wh.*.claim")] == ["wh.r.last.claim"]
    await store.aclose()
