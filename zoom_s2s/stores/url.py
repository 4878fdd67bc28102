"""store_from_url: pick a token store from a URL (e.g. an environment variable).

The scheme decides the store through the registry (:mod:`zoom_s2s.stores.registry`):
built-in stores declare their schemes, third-party stores register theirs
(:func:`~zoom_s2s.stores.register_store`). No if-chain here.
"""

from __future__ import annotations

import pathlib
import urllib.parse
from collections.abc import Sequence
from typing import Any, cast

from .._redact import is_secret_parameter
from ..errors import ConfigurationError
from .base import TokenStore
from .registry import find_store, registered_schemes

__all__ = ["SHARED_MAX_CONNECTIONS", "redact_url", "resolve_store", "store_from_url"]

SHARED_MAX_CONNECTIONS = 16
"""Connections (pub/sub included) a Redis store made for a pool keeps at most."""
_BOUNDED_SCHEMES = ("redis", "rediss", "unix")  # a connection per concurrent command

ACCEPTED_FORMS = (
    "memory://, file:///absolute/directory, redis://[user:password@]host[:port][/db], "
    "rediss://... (TLS), unix:///path/to/redis.sock[?db=N] or "
    "postgresql://[user:password@]host[:port]/database"
)


def redact_url(url: str) -> str:
    """Return ``url`` without its secrets: the password in the user part, and the
    value of every secret query parameter (``password``, ``sslpassword``, ...:
    :func:`~zoom_s2s._redact.is_secret_parameter`).

    A password holding an unescaped ``/``, ``?`` or ``#`` ends the host part
    early, so the ``@`` lands after it and the password would stay in what is
    shown (``redis://user:pa/ss@host/0``): then no more than the scheme is shown.
    """
    try:
        parts = urllib.parse.urlsplit(url)
        if "@" not in parts.netloc and "@" in url:
            return f"{parts.scheme}://<hidden: '@' after the host part>"
        netloc = parts.netloc
        if "@" in netloc:
            user_info, host = netloc.rsplit("@", 1)
            user = user_info.split(":", 1)[0]
            netloc = f"{user}:***@{host}" if ":" in user_info else f"{user}@{host}"
        query = urllib.parse.urlencode(
            [
                (name, "***" if is_secret_parameter(name) else value)
                for name, value in urllib.parse.parse_qsl(parts.query, keep_blank_values=True)
            ],
            safe="*",
        )
        rest = url[len(parts.scheme) + 1 :] if parts.scheme else url
        head = (f"{parts.scheme}:" if parts.scheme else "") + (
            "//" if rest.startswith("//") else ""
        )
        return f"{head}{netloc}{parts.path}" + (f"?{query}" if query else "")
    except ValueError:
        return "<unparsable URL>"


def check_ports(parts: urllib.parse.SplitResult) -> None:
    """Raise ValueError unless every port is a number from 0 to 65535.

    A libpq URL may name several hosts (``host1:5432,host2:5432``): each is checked.
    """
    for host in parts.netloc.rpartition("@")[2].split(","):
        urllib.parse.urlsplit(f"//{host}").port  # noqa: B018 - validates the port


def url_secrets(url: str) -> tuple[str, ...]:
    """The secrets of ``url`` (as :func:`redact_url` hides them), as written and unquoted."""
    try:
        parts = urllib.parse.urlsplit(url)
        found = [parts.password or ""]
        found += [
            value for name, value in urllib.parse.parse_qsl(parts.query)
            if is_secret_parameter(name)
        ]
    except ValueError:
        return ()
    found += [urllib.parse.unquote(secret) for secret in found]
    return tuple(sorted({secret for secret in found if secret}, key=len, reverse=True))


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
    ``postgresql://user:pass@host/db``         :class:`PostgresTokenStore` (``postgres://`` too)
    ``<scheme>://...``                         a store registered for that scheme (plugins)
    =========================================  =========================================

    Args:
        url: The store's URL.
        encryption_keys: Fernet keys: wrap the store in an
            :class:`EncryptedTokenStore` (the first key encrypts).
        **options: Passed to the store's ``from_url``: e.g. ``prefix`` and
            ``redis.asyncio.Redis.from_url`` options for Redis.

    Returns:
        A new store; close it with ``await store.aclose()``.

    Raises:
        ConfigurationError: Unknown scheme, malformed URL, relative file path,
            unexpected options, or a missing extra. The message never
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
        check_ports(parts)
    except ValueError:
        raise ConfigurationError(f"malformed store URL {shown}; use {ACCEPTED_FORMS}") from None
    scheme = parts.scheme.lower()
    factory = find_store(scheme) if scheme else None
    if factory is None:
        if not scheme and url.startswith("/"):
            raise ConfigurationError(
                f"store URL {shown!r} has no scheme; for a directory write "
                f"{pathlib.PurePosixPath(url).as_uri()}"
            )
        what = f"scheme {scheme!r}" if scheme else "no scheme"
        known = ", ".join(f"{name}://" for name in registered_schemes())
        raise ConfigurationError(
            f"store URL {shown} has {what}; use {ACCEPTED_FORMS} (registered schemes: {known}; "
            "a store from another package is registered with "
            "zoom_s2s.stores.register_store(scheme, StoreClass) before use)"
        )
    try:
        store = factory.from_url(url, **options)
    except TypeError as exc:
        raise ConfigurationError(f"unexpected option for a {scheme}:// store: {exc}") from None
    return cast(TokenStore, store)


def resolve_store(
    spec: TokenStore | str | None, *, shared: bool = False, **options: Any
) -> tuple[TokenStore, bool]:
    """The store a ``store=`` argument names, and whether its user owns (closes) it.

    ``spec`` is a store (used as is, not owned), a URL (made by
    :func:`store_from_url` with ``options``) or ``None`` (a new
    :class:`MemoryTokenStore`). With ``shared`` (a pool: many managers on one
    store) a Redis URL keeps at most :data:`SHARED_MAX_CONNECTIONS`
    connections unless ``options`` say otherwise.

    Raises:
        ConfigurationError: As :func:`store_from_url`, or ``options`` without a URL.
    """
    if isinstance(spec, str):
        scheme = spec.partition(":")[0].strip().lower()
        if shared and scheme in _BOUNDED_SCHEMES and not options.get("cluster"):
            options.setdefault("max_connections", SHARED_MAX_CONNECTIONS)
        return store_from_url(spec, **options), True
    if options:
        raise ConfigurationError(
            f"store options ({', '.join(sorted(options))}) apply only to a store URL"
        )
    if spec is None:
        from .memory import MemoryTokenStore

        return MemoryTokenStore(), True
    return spec, False
