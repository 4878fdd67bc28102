"""Encryption at rest: EncryptedTokenStore around the real file store and a real redis-server.

The whole record is sealed: someone who can write the store
but holds no key rewrites ``api_url``, ``scopes`` or ``expires_at`` with a raw
client; the read is a miss with a warning (or, for the expiry copy the wrapped
store keeps for its TTL, the expiry only ever gets shorter), and the token
never reaches a foreign host. The store contract for the encrypted stores runs
in test_store_contract.py.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import attrs
import pytest
import pytest_asyncio

from zoom_s2s import TokenManager, ZoomClient
from zoom_s2s.errors import ConfigurationError
from zoom_s2s.models import AccessToken
from zoom_s2s.stores import (
    EncryptedTokenStore,
    FileTokenStore,
    MemoryTokenStore,
    RedisTokenStore,
    TokenStore,
    store_from_url,
)
from zoom_s2s.testing import FakeZoom
from zoom_s2s.testing.contract import make_token

pytest.importorskip("cryptography", reason="needs the encryption extra")

KEY = "enc-key"
LOGGER = "zoom_s2s.stores.encrypted"

# A raw record editor: rewrites the stored token dict of ``key`` with no key, as an
# attacker with write access to the backend would.
Tamper = Callable[[str, Callable[[dict[str, Any]], None]], Awaitable[None]]


@attrs.define
class Backend:
    """One real backend: the inner store, a raw editor for its records, its raw bytes."""

    inner: TokenStore
    tamper: Tamper
    everything: Callable[[], Awaitable[bytes]]


def file_backend(directory: Path) -> Backend:
    inner = FileTokenStore(directory)

    def rewrite(key: str, change: Callable[[dict[str, Any]], None]) -> None:
        path = directory / f"{key}.json"
        record = json.loads(path.read_bytes())
        change(record["token"])
        fd = os.open(path, os.O_WRONLY | os.O_TRUNC)
        with os.fdopen(fd, "w") as file:
            json.dump(record, file)

    def read_all() -> bytes:
        return b"".join(p.read_bytes() for p in directory.iterdir() if p.is_file())

    async def tamper(key: str, change: Callable[[dict[str, Any]], None]) -> None:
        await asyncio.to_thread(rewrite, key, change)

    async def everything() -> bytes:
        return await asyncio.to_thread(read_all)

    return Backend(inner, tamper, everything)


def redis_backend(url: str) -> Backend:
    import redis.asyncio

    inner = RedisTokenStore.from_url(url)

    async def tamper(key: str, change: Callable[[dict[str, Any]], None]) -> None:
        client = redis.asyncio.Redis.from_url(url)
        try:
            name = inner._keys(key).token
            record = json.loads(await client.hget(name, "data"))
            change(record["token"])
            await client.hset(name, "data", json.dumps(record))  # keeps the key's TTL
        finally:
            await client.aclose()

    async def everything() -> bytes:
        client = redis.asyncio.Redis.from_url(url)
        found = b""
        try:
            async for name in client.scan_iter("*"):
                found += name
                kind = await client.type(name)
                if kind == b"hash":
                    found += b"".join((await client.hgetall(name)).values())
                elif kind == b"string":
                    found += await client.get(name) or b""
        finally:
            await client.aclose()
        return found

    return Backend(inner, tamper, everything)


@pytest_asyncio.fixture(params=["file", pytest.param("redis", marks=pytest.mark.redis)])
async def backend(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Backend]:
    if request.param == "file":
        made = file_backend(tmp_path / "tokens")
    else:
        made = redis_backend(request.getfixturevalue("redis_url"))
    yield made
    await made.inner.aclose()


@pytest.fixture
def key() -> str:
    return EncryptedTokenStore.generate_key()


def assert_same_token(got: AccessToken | None, token: AccessToken) -> None:
    """``got`` is ``token``, its expiry perhaps shortened by the backend's TTL rounding."""
    assert got is not None
    assert token.expires_ts - 0.1 < got.expires_ts <= token.expires_ts
    assert attrs.evolve(got, expires_ts=token.expires_ts, issued_ts=token.issued_ts) == token


async def put(store: TokenStore, token: AccessToken, key: str = KEY) -> None:
    lease = (await store.acquire_lock(key, ttl=10)).lease
    assert lease is not None
    assert await store.write(lease, token)
    await store.release_lock(lease)


async def test_nothing_about_the_token_reaches_the_backend_in_clear(
    backend: Backend, key: str
) -> None:
    token = attrs.evolve(
        make_token(scopes=("meeting:write:admin",)), api_url="https://eu01api.zoom.us"
    )
    store = EncryptedTokenStore(backend.inner, [key])
    await put(store, token)
    stored = await backend.everything()
    for secret_or_metadata in (token.access_token, "eu01api", "meeting:write:admin"):
        assert secret_or_metadata.encode() not in stored
    assert_same_token((await store.read(KEY)).token, token)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("api_url", "http://127.0.0.1:9/attacker"),
        ("scopes", ["user:write:admin", "account:write:admin"]),
        ("token_type", "mac"),
    ],
)
async def test_metadata_rewritten_without_the_key_is_a_miss_with_a_warning(
    backend: Backend, key: str, field: str, value: object, caplog: pytest.LogCaptureFixture
) -> None:
    store = EncryptedTokenStore(backend.inner, [key])
    token = make_token()
    await put(store, token)
    await backend.tamper(KEY, lambda record: record.__setitem__(field, value))
    with caplog.at_level(logging.WARNING, LOGGER):
        got = (await store.read(KEY)).token
    if field == "token_type":
        # Not sealed beside the ciphertext: ignored, the sealed one is used.
        assert_same_token(got, token)
        return
    assert got is None
    assert "tampered" in caplog.text
    assert token.access_token not in caplog.text
    assert await store.delete(KEY, fingerprint=token.fingerprint) is False


async def test_a_later_expiry_written_without_the_key_is_not_believed(
    backend: Backend, key: str
) -> None:
    store = EncryptedTokenStore(backend.inner, [key])
    token = make_token(lifetime=600.0)
    await put(store, token)

    def extend(record: dict[str, Any]) -> None:
        record["expires_at"] += 40_000
        record["issued_at"] += 40_000  # a plausible lifetime, so the wrapped store keeps it

    await backend.tamper(KEY, extend)
    got = (await store.read(KEY)).token
    assert got is not None
    assert got.expires_ts <= token.expires_ts


async def test_an_earlier_expiry_in_the_wrapped_store_shortens_the_token(
    backend: Backend, key: str
) -> None:
    store = EncryptedTokenStore(backend.inner, [key])
    token = make_token(lifetime=600.0)
    await put(store, token)

    def shorten(record: dict[str, Any]) -> None:
        record["expires_at"] -= 300
        record["issued_at"] -= 300

    await backend.tamper(KEY, shorten)
    got = (await store.read(KEY)).token
    assert got is not None
    assert got.expires_ts == pytest.approx(token.expires_ts - 300, abs=1e-3)
    assert (got.access_token, got.api_url, got.scopes) == (
        token.access_token, token.api_url, token.scopes,
    )


async def test_a_sealed_record_swapped_in_from_another_key_is_a_miss(
    backend: Backend, key: str, caplog: pytest.LogCaptureFixture
) -> None:
    store = EncryptedTokenStore(backend.inner, [key])
    other_account = make_token()
    await put(store, other_account, key="other-account")
    sealed = (await backend.inner.read("other-account")).token
    assert sealed is not None
    await put(store, make_token())
    await backend.tamper(KEY, lambda record: record.__setitem__("access_token", sealed.access_token))
    with caplog.at_level(logging.WARNING, LOGGER):
        assert (await store.read(KEY)).token is None
    assert "another store key" in caplog.text


async def test_the_token_never_reaches_a_foreign_host(
    backend: Backend, key: str, fake_zoom: FakeZoom, caplog: pytest.LogCaptureFixture
) -> None:
    """A worker with use_token_api_url=True reads a record whose api_url was rewritten."""
    async with FakeZoom() as foreign:
        store = EncryptedTokenStore(backend.inner, [key])
        async with TokenManager(
            fake_zoom.credentials, store=store, token_url=fake_zoom.token_url
        ) as first:
            await first.get_token()
            store_key = first.store_key
        await backend.tamper(store_key, lambda record: record.__setitem__("api_url", foreign.url))

        with caplog.at_level(logging.WARNING, LOGGER):
            async with TokenManager(
                fake_zoom.credentials, store=store, token_url=fake_zoom.token_url
            ) as worker, ZoomClient(
                worker, fake_zoom.api_base_url, use_token_api_url=True
            ) as client:
                user = await client.get_user("me")
        assert user.id == fake_zoom.me_id
        assert foreign.api_requests == 0
        assert foreign.token_requests == 0
        assert fake_zoom.api_requests == 1
        assert fake_zoom.token_requests == 2  # the tampered record was a miss: fetched anew
        assert "tampered" in caplog.text


async def test_key_rotation_on_a_real_backend(backend: Backend) -> None:
    old, new = EncryptedTokenStore.generate_key(), EncryptedTokenStore.generate_key()
    token = make_token()
    await put(EncryptedTokenStore(backend.inner, [old]), token)
    rotated = EncryptedTokenStore(backend.inner, [new, old])
    assert_same_token((await rotated.read(KEY)).token, token)
    fresh = make_token()
    await put(rotated, fresh)
    assert_same_token((await EncryptedTokenStore(backend.inner, [new]).read(KEY)).token, fresh)
    assert (await EncryptedTokenStore(backend.inner, [old]).read(KEY)).token is None


async def test_a_manager_replaces_an_undecryptable_token(
    fake_zoom: FakeZoom, backend: Backend, key: str
) -> None:
    store = EncryptedTokenStore(backend.inner, [key])
    async with TokenManager(
        fake_zoom.credentials, store=store, token_url=fake_zoom.token_url
    ) as manager:
        await put(backend.inner, make_token(), key=manager.store_key)  # written in clear: bad
        token = await manager.get_token()
        assert token.access_token == fake_zoom.issued_tokens[0]
        assert_same_token((await store.read(manager.store_key)).token, token)
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
