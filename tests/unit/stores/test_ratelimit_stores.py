"""The RateLimitStore capability of the memory, file and encrypted stores (and the
per-process LocalRateLimitStore): the checks of tests/ratelimit_checks.py, plus what
each store must do with bad shared state."""

from __future__ import annotations

import json
import os
import secrets
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

from zoom_s2s import EncryptedTokenStore, FileTokenStore, MemoryTokenStore
from zoom_s2s.errors import ConfigurationError
from zoom_s2s.ratelimit import LocalRateLimitStore, RateLimitStore, supports_rate_limits

from ...ratelimit_checks import CHECKS

KINDS = ["memory", "local", "file", "encrypted"]


@pytest_asyncio.fixture(params=KINDS)
async def pair(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[tuple[RateLimitStore, RateLimitStore]]:
    kind = request.param
    if kind == "memory":
        store = MemoryTokenStore()
        yield store, store
        await store.aclose()
    elif kind == "local":
        local = LocalRateLimitStore()
        yield local, local
    elif kind == "file":
        a, b = FileTokenStore(tmp_path / "s"), FileTokenStore(tmp_path / "s")
        yield a, b
        await a.aclose()
        await b.aclose()
    else:
        pytest.importorskip("cryptography")
        key = EncryptedTokenStore.generate_key()
        inner_a, inner_b = FileTokenStore(tmp_path / "e"), FileTokenStore(tmp_path / "e")
        yield EncryptedTokenStore(inner_a, [key]), EncryptedTokenStore(inner_b, [key])
        await inner_a.aclose()
        await inner_b.aclose()


@pytest.mark.parametrize("name", sorted(CHECKS))
async def test_rate_limit_store(pair: tuple[RateLimitStore, RateLimitStore], name: str) -> None:
    scope = "rate-" + secrets.token_hex(6)
    await CHECKS[name](pair[0], pair[1], scope)


def test_which_stores_share_rate_limits(tmp_path: Path) -> None:
    assert supports_rate_limits(MemoryTokenStore())
    assert supports_rate_limits(FileTokenStore(tmp_path))
    assert not supports_rate_limits(object())


async def test_an_encrypted_store_over_a_store_without_rate_limits_says_so() -> None:
    pytest.importorskip("cryptography")

    class Plain(MemoryTokenStore):
        acquire_permit = None  # type: ignore[assignment]

    store = EncryptedTokenStore(Plain(), [EncryptedTokenStore.generate_key()])
    assert not supports_rate_limits(store)
    with pytest.raises(ConfigurationError, match="does not share rate limits"):
        await store.paused("rate-x.light")


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
async def test_file_store_ignores_corrupt_or_far_ahead_rate_state(
    tmp_path: Path, content: bytes
) -> None:
    store = FileTokenStore(tmp_path / "s")
    store.directory.mkdir(mode=0o700)
    (store.directory / "rate-x.light.rate").write_bytes(content)
    permit = await store.acquire_permit("rate-x.light", interval=1, burst=1, max_wait=0)
    assert permit.granted
    assert permit.wait == 0
    assert not (await store.paused("rate-x.light")).daily


async def test_file_store_keeps_rate_state_in_one_private_fixed_size_file(tmp_path: Path) -> None:
    store = FileTokenStore(tmp_path / "s")
    await store.pause("rate-x.light", 5)
    path = store.directory / "rate-x.light.rate"
    assert path.stat().st_mode & 0o777 == 0o600
    record = json.loads(path.read_bytes())
    assert record["until"] == pytest.approx(time.monotonic() + 5, abs=1)
    size = path.stat().st_size
    await store.acquire_permit("rate-x.light", interval=1, burst=1, max_wait=60)
    assert path.stat().st_size == size


async def test_file_store_replaces_a_symlink_instead_of_writing_through_it(
    tmp_path: Path,
) -> None:
    store = FileTokenStore(tmp_path / "s")
    store.directory.mkdir(mode=0o700)
    target = tmp_path / "victim"
    target.write_text("keep")
    os.symlink(target, store.directory / "rate-x.light.rate")
    await store.pause("rate-x.light", 1)
    assert target.read_text() == "keep"
    assert not (store.directory / "rate-x.light.rate").is_symlink()
