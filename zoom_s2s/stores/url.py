"""store_from_url: pick a token store from a URL (e.g. an environment variable)."""

from __future__ import annotations

import urllib.parse
from collections.abc import Sequence
from typing import Any

from ..errors import ConfigurationError
from .base import TokenStore
from .file import FileTokenStore
from .memory import MemoryTokenStore
from .redis import RedisTokenStore, redact_url

__all__ = ["store_from_url"]

ACCEPTED_FORMS = (
    "memory://, file:///absolute/directory, redis://[user:password@]host[:port][/db], "
    "rediss://... (TLS) or unix:///path/to/redis.sock[?db=N]"
)


def store_from_url(
    url: str, *, encryption_keys: Sequence[str | bytes] | None = None, **options: Any
) -> TokenStore:
    """Create the token store a URL names.

    =========================================  =========================================
    URL                                        store
    =========================================  =========================================
    ``memory://``                              :class:`MemoryTokenStore` (one process)
    ``file:///var/lib/myapp/zoom``             :class:`FileTokenStore` (one host)
    ``redis://user:pass@host:6379/0``          :class:`RedisTokenStore` (``rediss://``: TLS)
    ``unix:///run/redis.sock?db=0``            :class:`RedisTokenStore` over a Unix socket
    =========================================  =========================================

    Args:
        url: The store's URL.
        encryption_keys: Fernet keys: wrap the store in an
            :class:`EncryptedTokenStore` (the first key encrypts).
        **options: Passed to the store: ``poll_interval`` for files;
            ``prefix`` and ``redis.asyncio.Redis.from_url`` options for Redis.

    Returns:
        A new store; close it with ``await store.aclose()``.

    Raises:
        ConfigurationError: Unknown scheme, malformed URL, relative file path,
            unexpected options, or ``redis`` not installed. The message never
            contains a password from the URL.
    """
    if encryption_keys is not None:
        from .encrypted import EncryptedTokenStore, validate_keys

        keys = list(encryption_keys)
        validate_keys(keys)  # before the wrapped store opens anything
        return EncryptedTokenStore(store_from_url(url, **options), keys)
    if not isinstance(url, str) or not url.strip():
        raise ConfigurationError(f"store URL must be a non-empty string; use {ACCEPTED_FORMS}")
    shown = redact_url(url)
    try:
        parts = urllib.parse.urlsplit(url)
        parts.port  # noqa: B018 - validates the port
    except ValueError:
        raise ConfigurationError(f"malformed store URL {shown}; use {ACCEPTED_FORMS}") from None
    scheme = parts.scheme.lower()
    if scheme == "memory":
        if parts.netloc or parts.path or parts.query or options:
            raise ConfigurationError(f"memory:// takes no host, path or options, got {shown}")
        return MemoryTokenStore()
    if scheme == "file":
        return _file_store(parts, shown, options)
    if scheme in ("redis", "rediss", "unix"):
        return RedisTokenStore.from_url(url, **options)
    what = f"scheme {scheme!r}" if scheme else "no scheme"
    raise ConfigurationError(f"store URL {shown} has {what}; use {ACCEPTED_FORMS}")


def _file_store(parts: urllib.parse.SplitResult, shown: str, options: dict[str, Any]) -> TokenStore:
    if parts.netloc not in ("", "localhost"):
        raise ConfigurationError(
            f"file store URL {shown} names a host ({parts.hostname!r}); file stores are "
            "local: use three slashes and an absolute path, e.g. file:///var/lib/myapp/zoom"
        )
    if parts.query or parts.fragment:
        raise ConfigurationError(f"file store URL {shown} cannot have a query or fragment")
    path = urllib.parse.unquote(parts.path)
    if not path.startswith("/"):
        raise ConfigurationError(
            f"file store URL {shown} needs an absolute path, e.g. file:///var/lib/myapp/zoom"
        )
    try:
        return FileTokenStore(path, **options)
    except TypeError as exc:
        raise ConfigurationError(f"unexpected option for a file store: {exc}") from None
