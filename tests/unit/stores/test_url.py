"""store_from_url: which URL gives which store, and clear errors for the rest.

The scheme picks the store through the registry (stores/registry.py, tested in
test_registry.py): ``memory://`` is built by ``MemoryTokenStore.from_url``,
``file://`` by ``FileTokenStore.from_url``, the Redis schemes by
``RedisTokenStore.from_url``.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from zoom_s2s.errors import ConfigurationError
from zoom_s2s.stores import (
    EncryptedTokenStore,
    FileTokenStore,
    MemoryTokenStore,
    RedisTokenStore,
    registry,
    store_from_url,
)
from zoom_s2s.stores.url import redact_url, url_secrets

SECRET = "hunter2-Secret"


async def test_memory_url() -> None:
    store = store_from_url("memory://")
    assert isinstance(store, MemoryTokenStore)
    await store.aclose()


@pytest.mark.parametrize("form", ["file://{path}", "file://localhost{path}", "file:{path}"])
async def test_file_urls(tmp_path: Path, form: str) -> None:
    directory = tmp_path / "with space"
    store = store_from_url(form.format(path=str(directory).replace(" ", "%20")))
    assert isinstance(store, FileTokenStore)
    assert store.directory == directory
    assert store.name == f"file://{directory}"
    await store.aclose()


@pytest.mark.parametrize(
    ("url", "store_class"),
    [("memory://", MemoryTokenStore), ("file:///var/lib/zoom", FileTokenStore)],
)
def test_each_scheme_is_served_by_its_store_class(url: str, store_class: type) -> None:
    scheme = url.split(":", 1)[0]
    assert scheme in store_class.schemes
    assert registry.find_store(scheme) is store_class


def test_redis_schemes_are_served_by_the_redis_store() -> None:
    for scheme in ("redis", "rediss", "unix"):
        assert registry.find_store(scheme) is RedisTokenStore


async def test_encryption_keys_wrap_the_store_the_url_names(tmp_path: Path) -> None:
    pytest.importorskip("cryptography")
    key = EncryptedTokenStore.generate_key()
    store = store_from_url(f"file://{tmp_path}", encryption_keys=[key])
    assert isinstance(store, EncryptedTokenStore)
    assert isinstance(store.inner, FileTokenStore)
    assert key not in repr(store)
    await store.aclose()


@pytest.mark.parametrize(
    ("url", "name", "tls"),
    [
        ("redis://localhost:6379/0", "redis://localhost:6379/0", False),
        ("REDIS://cache.internal/3", "redis://cache.internal/3", False),
        (f"rediss://app:{SECRET}@cache:6380/1", "rediss://app:***@cache:6380/1", True),
        ("unix:///run/redis/redis.sock?db=2", "unix:///run/redis/redis.sock?db=2", False),
    ],
)
async def test_redis_urls(url: str, name: str, tls: bool) -> None:
    pytest.importorskip("redis")
    store = store_from_url(url, prefix="myapp")
    try:
        assert isinstance(store, RedisTokenStore)
        assert store.name == name
        assert SECRET not in repr(store)
        assert "myapp" in repr(store)
        connection_class = store._client.connection_pool.connection_class
        assert (connection_class.__name__ == "SSLConnection") is tls
    finally:
        await store.aclose()


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("", "non-empty"),
        ("   ", "non-empty"),
        (f"memcached://u:{SECRET}@cache:11211", "scheme 'memcached'"),
        (f"mongodb://u:{SECRET}@h/db", "use memory://"),
        ("/var/lib/zoom", "no scheme"),
        ("memory://somewhere", "takes no host"),
        ("memory:///path", "takes no host"),
        (f"redis://u:{SECRET}@cache/abc", "must be a database number"),
        ("file://relative/dir", "names a host"),
        ("file:relative/dir", "absolute path"),
        ("file:///var/lib/zoom?mode=x", "query"),
        (f"redis://u:{SECRET}@cache:port/0", "malformed"),
        (f"redis://u:{SECRET}@cache/0?socket_timeout=soon", "invalid Redis URL"),
        (f"redis://u:{SECRET}@[::1/0", "malformed"),
    ],
)
def test_bad_urls_name_the_problem_and_hide_passwords(url: str, expected: str) -> None:
    if url.startswith("redis"):
        pytest.importorskip("redis")
    with pytest.raises(ConfigurationError, match=expected.replace("?", r"\?")) as info:
        store_from_url(url)
    assert SECRET not in str(info.value)


def test_unknown_scheme_error_lists_the_accepted_forms_and_registered_schemes() -> None:
    with pytest.raises(ConfigurationError) as info:
        store_from_url("sqlite:///tokens.db")
    for form in ("memory://", "file:///", "redis://", "rediss://", "unix://"):
        assert form in str(info.value)
    assert "registered schemes: " in str(info.value)
    assert "zoom_s2s.stores" in str(info.value)


@pytest.mark.parametrize("url", [None, 42, b"memory://"])
def test_a_url_that_is_not_a_string_is_a_configuration_error(url: object) -> None:
    with pytest.raises(ConfigurationError, match="non-empty string"):
        store_from_url(url)  # type: ignore[arg-type]


def test_memory_url_takes_no_options() -> None:
    with pytest.raises(ConfigurationError, match="takes no options"):
        store_from_url("memory://", prefix="myapp")


def test_unknown_file_option_is_a_configuration_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="option"):
        store_from_url(f"file://{tmp_path}", colour="blue")


@pytest.mark.parametrize(
    "url",
    [
        "redis://app:s3cr/et@cache/0",
        "redis://app:s3cr?et@cache/0",
        "redis://app:s3cr#et@cache/0",
        "rediss://app:6380/s3cret@cache/0",
    ],
)
async def test_a_password_with_an_unescaped_delimiter_reaches_no_name_or_message(
    url: str,
) -> None:
    pytest.importorskip("redis")
    secret_parts = ("s3cr", "et@", "s3cret")
    try:
        store = store_from_url(url)
    except ConfigurationError as exc:
        shown = str(exc)
    else:
        shown = f"{store.name} {store!r}"
        await store.aclose()
    assert not any(part in shown for part in secret_parts), shown


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://app@db/zoom?sslmode=verify-full&sslpassword=S3cret-Key",
        "postgresql://app@db/zoom?PassWord=S3cret-Key",
        "rediss://db:6380/0?ssl_password=S3cret-Key",
        "redis://db/0?client_secret=S3cret-Key&token=S3cret-Key",
        "postgresql://app@db/zoom?sslpassword=S3cret%2FKey",
    ],
)
def test_every_secret_query_parameter_is_hidden_wherever_a_url_is_shown(url: str) -> None:
    shown = redact_url(url)
    assert "S3cret" not in shown
    assert "=***" in shown
    assert {"S3cret-Key", "S3cret/Key"} & set(url_secrets(url))
