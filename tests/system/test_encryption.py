"""Encryption at rest: EncryptedTokenStore around the real file and Redis stores."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

from zoom_s2s import (
    ConfigurationError,
    EncryptedTokenStore,
    FileTokenStore,
    MemoryTokenStore,
    TokenManager,
    TokenStore,
    store_from_url,
)
from zoom_s2s.testing import FakeZoom
from zoom_s2s.testing.contract import StoreContract, make_token

pytest.importorskip("cryptography", reason="needs the encryption extra")

KEY = "enc-key"


class TestEncryptedFileStore(StoreContract):
    """The wrapper keeps the whole store contract."""

    @pytest.fixture(autouse=True)
    def _dir(self, tmp_path: Path) -> None:
        self.path = tmp_path / "tokens"
        self.key = EncryptedTokenStore.generate_key()

    async def make_store(self) -> TokenStore:
        return EncryptedTokenStore(FileTokenStore(self.path), [self.key])

    async def make_peer(self, store: TokenStore) -> TokenStore:
        return EncryptedTokenStore(FileTokenStore(self.path), [self.key])


@pytest.mark.redis
class TestEncryptedRedisStore(StoreContract):
    @pytest.fixture(autouse=True)
    def _url(self, redis_url: str) -> None:
        self.url = redis_url
        self.key = EncryptedTokenStore.generate_key()

    async def make_store(self) -> TokenStore:
        return store_from_url(self.url, encryption_keys=[self.key])

    async def make_peer(self, store: TokenStore) -> TokenStore:
        return store_from_url(self.url, encryption_keys=[self.key])


@pytest_asyncio.fixture
async def file_store(tmp_path: Path) -> AsyncIterator[FileTokenStore]:
    store = FileTokenStore(tmp_path / "tokens")
    yield store
    await store.aclose()


async def test_the_token_never_reaches_the_disk_in_clear(file_store: FileTokenStore) -> None:
    token = make_token()
    store = EncryptedTokenStore(file_store, [EncryptedTokenStore.generate_key()])
    assert await store.write(KEY, token, generation=1)
    on_disk = b"".join(p.read_bytes() for p in file_store.directory.iterdir() if p.is_file())
    assert token.access_token.encode() not in on_disk
    assert (await store.read(KEY)) == token
    raw = await file_store.read(KEY)
    assert raw is not None
    assert raw.access_token != token.access_token


@pytest.mark.redis
async def test_the_token_never_reaches_redis_in_clear(redis_url: str) -> None:
    import redis.asyncio as redis

    token = make_token()
    store = store_from_url(redis_url, encryption_keys=[EncryptedTokenStore.generate_key()])
    try:
        assert await store.write(KEY, token, generation=1)
        client = redis.Redis.from_url(redis_url)
        try:
            everything = b""
            async for name in client.scan_iter("*"):
                everything += name
                if await client.type(name) == b"hash":
                    everything += b"".join((await client.hgetall(name)).values())
                elif await client.type(name) == b"string":
                    everything += await client.get(name) or b""
        finally:
            await client.aclose()
        assert token.access_token.encode() not in everything
        read = await store.read(KEY)
        assert read is not None
        assert read.access_token == token.access_token  # expiry re-derived from the TTL
    finally:
        await store.aclose()


async def test_key_rotation_reads_old_tokens_and_writes_with_the_new_key(
    file_store: FileTokenStore,
) -> None:
    old, new = EncryptedTokenStore.generate_key(), EncryptedTokenStore.generate_key()
    token = make_token()
    await EncryptedTokenStore(file_store, [old]).write(KEY, token, generation=1)
    rotated = EncryptedTokenStore(file_store, [new, old])
    assert await rotated.read(KEY) == token
    fresh = make_token()
    await rotated.write(KEY, fresh, generation=2)
    assert await EncryptedTokenStore(file_store, [new]).read(KEY) == fresh


async def test_a_token_no_key_decrypts_is_a_miss_with_a_warning_never_used(
    file_store: FileTokenStore, caplog: pytest.LogCaptureFixture
) -> None:
    token = make_token()
    await EncryptedTokenStore(file_store, [EncryptedTokenStore.generate_key()]).write(
        KEY, token, generation=1
    )
    other = EncryptedTokenStore(file_store, [EncryptedTokenStore.generate_key()])
    with caplog.at_level(logging.WARNING, "zoom_s2s.stores.encrypted"):
        assert await other.read(KEY) is None
    assert "does not decrypt" in caplog.text
    assert token.access_token not in caplog.text
    # compare-and-delete cannot match what it cannot read
    assert await other.delete(KEY, fingerprint=token.fingerprint) is False


async def test_a_manager_replaces_an_undecryptable_token(
    fake_zoom: FakeZoom, file_store: FileTokenStore
) -> None:
    await EncryptedTokenStore(file_store, [EncryptedTokenStore.generate_key()]).write(
        "ignored", make_token(), generation=1
    )
    store = EncryptedTokenStore(file_store, [EncryptedTokenStore.generate_key()])
    async with TokenManager(fake_zoom.credentials, store=store, token_url=fake_zoom.token_url) as m:
        await store.inner.write(m.store_key, make_token(), generation=1)  # written in clear: bad
        token = await m.get_token()
        assert token.access_token == fake_zoom.issued_tokens[0]
        assert await store.read(m.store_key) == token
    assert fake_zoom.token_requests == 1


@pytest.mark.parametrize("keys", [[], "a-single-string", ["not-a-fernet-key"]])
def test_bad_keys_are_configuration_errors_that_do_not_echo_the_key(keys: object) -> None:
    with pytest.raises(ConfigurationError, match="generate_key") as info:
        EncryptedTokenStore(MemoryTokenStore(), keys)  # type: ignore[arg-type]
    assert "not-a-fernet-key" not in str(info.value)


def test_store_from_url_checks_keys_before_opening_the_store(tmp_path: Path) -> None:
    target = tmp_path / "never-created"
    with pytest.raises(ConfigurationError, match="#1"):
        store_from_url(f"file://{target}", encryption_keys=["nope"])
    assert not target.exists()
    assert isinstance(
        store_from_url("memory://", encryption_keys=[EncryptedTokenStore.generate_key()]),
        EncryptedTokenStore,
    )
