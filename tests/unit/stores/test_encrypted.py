"""EncryptedTokenStore: the whole record is sealed; what is outside the seal is never believed.

These run over a MemoryTokenStore standing in for a store that someone without
the key can write. tests/system/test_encryption.py does the same against a
real redis-server and the file store with raw clients.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

import attrs
import pytest
import pytest_asyncio

from zoom_s2s.errors import ConfigurationError
from zoom_s2s.models import AccessToken
from zoom_s2s.stores import EncryptedTokenStore, MemoryTokenStore
from zoom_s2s.testing.contract import make_failure, make_token

pytest.importorskip("cryptography", reason="needs the encryption extra")

from cryptography.fernet import Fernet

KEY = "enc-key"
LOGGER = "zoom_s2s.stores.encrypted"


@pytest_asyncio.fixture
async def inner() -> AsyncIterator[MemoryTokenStore]:
    store = MemoryTokenStore()
    yield store
    await store.aclose()


@pytest.fixture
def key() -> str:
    return EncryptedTokenStore.generate_key()


@pytest.fixture
def store(inner: MemoryTokenStore, key: str) -> EncryptedTokenStore:
    return EncryptedTokenStore(inner, [key])


async def put(store: MemoryTokenStore | EncryptedTokenStore, token: AccessToken) -> None:
    lease = (await store.acquire_lock(KEY, ttl=10)).lease
    assert lease is not None
    assert await store.write(lease, token)
    await store.release_lock(lease)


async def raw(inner: MemoryTokenStore) -> AccessToken:
    stored = (await inner.read(KEY)).token
    assert stored is not None
    return stored


async def test_the_wrapped_store_sees_only_ciphertext_and_times(
    store: EncryptedTokenStore, inner: MemoryTokenStore
) -> None:
    token = make_token(scopes=("user:read:admin", "meeting:write:admin"))
    await put(store, token)
    stored = await raw(inner)
    assert token.access_token not in stored.access_token
    assert (stored.scopes, stored.api_url) == ((), None)
    assert (stored.expires_ts, stored.issued_ts) == (token.expires_ts, token.issued_ts)
    assert (await store.read(KEY)).token == token


async def test_every_field_is_sealed(
    store: EncryptedTokenStore, inner: MemoryTokenStore, key: str
) -> None:
    token = make_token(scopes=("a:b", "c:d"))
    await put(store, token)
    sealed = json.loads(Fernet(key).decrypt((await raw(inner)).access_token.encode()))
    assert sealed == {"v": 2, "key": KEY, "token": token.to_dict()}


@pytest.mark.parametrize(
    "tamper",
    [
        pytest.param({"api_url": "https://evil.example"}, id="api_url"),
        pytest.param({"scopes": ("user:write:admin",)}, id="scopes"),
    ],
)
async def test_plaintext_metadata_beside_the_seal_is_a_miss_with_a_warning(
    store: EncryptedTokenStore,
    inner: MemoryTokenStore,
    tamper: dict[str, Any],
    caplog: pytest.LogCaptureFixture,
) -> None:
    token = make_token()
    await put(store, token)
    await put(inner, attrs.evolve(await raw(inner), **tamper))  # no key needed
    with caplog.at_level(logging.WARNING, LOGGER):
        assert (await store.read(KEY)).token is None
    assert "tampered" in caplog.text
    assert token.access_token not in caplog.text
    # compare-and-delete cannot match a record that does not verify
    assert await store.delete(KEY, fingerprint=token.fingerprint) is False


async def test_a_later_expiry_beside_the_seal_is_not_believed(
    store: EncryptedTokenStore, inner: MemoryTokenStore
) -> None:
    token = make_token(lifetime=600.0)
    await put(store, token)
    await put(inner, attrs.evolve(await raw(inner), expires_ts=token.expires_ts + 86_000))
    got = (await store.read(KEY)).token
    assert got is not None
    assert got.expires_ts == token.expires_ts


async def test_an_earlier_expiry_from_the_wrapped_store_shortens_the_token(
    store: EncryptedTokenStore, inner: MemoryTokenStore
) -> None:
    token = make_token(lifetime=600.0)
    await put(store, token)
    await put(inner, attrs.evolve(await raw(inner), expires_ts=token.expires_ts - 300))
    got = (await store.read(KEY)).token
    assert got is not None
    assert got.expires_ts == token.expires_ts - 300
    assert (got.access_token, got.scopes, got.api_url) == (
        token.access_token, token.scopes, token.api_url,
    )


async def test_a_record_moved_from_another_key_is_a_miss(
    store: EncryptedTokenStore, inner: MemoryTokenStore, caplog: pytest.LogCaptureFixture
) -> None:
    lease = (await store.acquire_lock("other-account", ttl=10)).lease
    assert lease is not None
    await store.write(lease, make_token())
    moved = (await inner.read("other-account")).token
    assert moved is not None
    await put(inner, moved)
    with caplog.at_level(logging.WARNING, LOGGER):
        assert (await store.read(KEY)).token is None
    assert "another store key" in caplog.text


async def test_a_record_sealed_the_old_way_is_a_miss(
    store: EncryptedTokenStore, inner: MemoryTokenStore, key: str, caplog: pytest.LogCaptureFixture
) -> None:
    # Earlier releases sealed only the token string and kept the rest in clear.
    token = make_token()
    old = Fernet(key).encrypt(token.access_token.encode()).decode()
    await put(inner, attrs.evolve(token, access_token=old))
    with caplog.at_level(logging.WARNING, LOGGER):
        assert (await store.read(KEY)).token is None
    assert "does not decode" in caplog.text
    assert token.access_token not in caplog.text


@pytest.mark.parametrize(
    "payload",
    [
        b"not json",
        b"[]",
        b'{"v": 2, "key": "enc-key", "token": {"access_token": "x"}}',
        b'{"v": 3, "key": "enc-key", "token": {}}',
        b"[" * 50_000 + b"]" * 50_000,
    ],
)
async def test_sealed_data_that_does_not_decode_is_a_miss(
    store: EncryptedTokenStore, inner: MemoryTokenStore, key: str, payload: bytes
) -> None:
    sealed = Fernet(key).encrypt(payload).decode()
    await put(inner, attrs.evolve(make_token(), access_token=sealed, scopes=(), api_url=None))
    assert (await store.read(KEY)).token is None


async def test_a_token_no_key_decrypts_is_a_miss_with_a_warning(
    store: EncryptedTokenStore, inner: MemoryTokenStore, caplog: pytest.LogCaptureFixture
) -> None:
    token = make_token()
    await put(store, token)
    other = EncryptedTokenStore(inner, [EncryptedTokenStore.generate_key()])
    with caplog.at_level(logging.WARNING, LOGGER):
        assert (await other.read(KEY)).token is None
    assert "does not decrypt" in caplog.text
    assert await other.delete(KEY, fingerprint=token.fingerprint) is False
    assert (await store.read(KEY)).token == token


async def test_key_rotation_reads_old_records_and_writes_with_the_new_key(
    inner: MemoryTokenStore,
) -> None:
    old, new = EncryptedTokenStore.generate_key(), EncryptedTokenStore.generate_key()
    token = make_token()
    await put(EncryptedTokenStore(inner, [old]), token)
    rotated = EncryptedTokenStore(inner, [new, old])
    assert (await rotated.read(KEY)).token == token
    fresh = make_token()
    await put(rotated, fresh)
    assert (await EncryptedTokenStore(inner, [new]).read(KEY)).token == fresh
    assert (await EncryptedTokenStore(inner, [old]).read(KEY)).token is None


async def test_compare_and_delete_uses_the_decrypted_fingerprint(
    store: EncryptedTokenStore, inner: MemoryTokenStore
) -> None:
    token = make_token()
    await put(store, token)
    stored = await raw(inner)
    assert await store.delete(KEY, fingerprint=stored.fingerprint) is False  # the ciphertext's
    assert await store.delete(KEY, fingerprint=make_token().fingerprint) is False
    assert await store.delete(KEY, fingerprint=token.fingerprint) is True
    assert (await inner.read(KEY)).token is None


async def test_locks_and_failure_records_pass_through(
    store: EncryptedTokenStore, inner: MemoryTokenStore
) -> None:
    lease = (await store.acquire_lock(KEY, ttl=10)).lease
    assert lease is not None
    assert (await inner.acquire_lock(KEY, ttl=10)).lease is None
    await store.write_failure(lease, make_failure(30.0), keep_for=60.0)
    got = (await store.read(KEY)).failure
    assert got is not None
    assert (got.failures, got.message) == (3, make_failure().message)
    assert await store.release_lock(lease)


def test_name_and_repr_say_encrypted_and_hold_no_key(
    store: EncryptedTokenStore, key: str
) -> None:
    assert store.name == "memory:// (encrypted)"
    assert key not in repr(store)
    assert key not in store.name


@pytest.mark.parametrize("keys", [[], "a-single-string", ["not-a-fernet-key"], [b"short"]])
def test_bad_keys_are_configuration_errors_that_do_not_echo_the_key(keys: object) -> None:
    with pytest.raises(ConfigurationError, match="generate_key") as info:
        EncryptedTokenStore(MemoryTokenStore(), keys)  # type: ignore[arg-type]
    assert "not-a-fernet-key" not in str(info.value)


async def test_a_sealed_zoom_sized_token_stays_a_valid_bearer_token(
    store: EncryptedTokenStore, inner: MemoryTokenStore
) -> None:
    # Zoom's tokens are JWTs of about 1 KB; the sealed form must still pass the
    # wrapped store's checks on what a token may contain.
    now = time.time()
    token = AccessToken(
        access_token="eyJ" + "a" * 1200 + ".eyJ" + "b" * 300 + ".sig-_",
        expires_ts=now + 3600,
        issued_ts=now,
        scopes=tuple(f"scope{i}:read:admin" for i in range(40)),
        api_url="https://api.zoom.us",
    )
    await put(store, token)
    assert AccessToken.from_dict((await raw(inner)).to_dict()) == await raw(inner)
    assert (await store.read(KEY)).token == token
