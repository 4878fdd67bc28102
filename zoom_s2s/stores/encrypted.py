"""EncryptedTokenStore: encryption at rest for any TokenStore (extra: ``zoom-s2s[encryption]``).

Wraps another store so that the access token it keeps is encrypted and
authenticated with Fernet (AES-128-CBC + HMAC-SHA256, from ``cryptography``)::

    store = EncryptedTokenStore(RedisTokenStore.from_url(url), keys=[os.environ["ZOOM_S2S_KEY"]])

Key rotation: pass several keys; the first encrypts, any of them decrypts.
Put a new key first, deploy everywhere, and drop the old key after one token
lifetime. A stored token that no key decrypts (wrong key, tampered data) is a
miss with a warning, never an error and never used: the next refresh replaces
it. Make a key with :func:`EncryptedTokenStore.generate_key`.

What stays readable in the store: the expiry, scopes and ``api_url`` (the
manager needs them to decide, and they grant nothing). Compare-and-delete
still works because the manager's fingerprint is checked against the
decrypted token before the wrapped store deletes its ciphertext.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING

import attrs

from ..errors import ConfigurationError
from ..models import AccessToken
from .base import FailureRecord, LockLease, TokenStore

if TYPE_CHECKING:
    from cryptography.fernet import MultiFernet

__all__ = ["EncryptedTokenStore", "validate_keys"]

logger = logging.getLogger("zoom_s2s.stores.encrypted")

_INSTALL_HINT = "EncryptedTokenStore needs cryptography: install zoom-s2s[encryption]"


def validate_keys(keys: Sequence[str | bytes]) -> None:
    """Raise :class:`ConfigurationError` unless ``keys`` are usable Fernet keys."""
    _multi_fernet(keys)


def _multi_fernet(keys: Sequence[str | bytes]) -> MultiFernet:
    try:
        from cryptography.fernet import Fernet, MultiFernet
    except ImportError:
        raise ConfigurationError(_INSTALL_HINT) from None
    if isinstance(keys, (str, bytes)) or not keys:
        raise ConfigurationError(
            "keys must be a non-empty list of Fernet keys (the first encrypts); make one "
            "with EncryptedTokenStore.generate_key()"
        )
    fernets = []
    for position, key in enumerate(keys, 1):
        try:
            fernets.append(Fernet(key))
        except (ValueError, TypeError):
            # Never echo the key: say which one is wrong, not what it is.
            raise ConfigurationError(
                f"encryption key #{position} is not a Fernet key (32 url-safe base64-encoded "
                "bytes); make one with EncryptedTokenStore.generate_key()"
            ) from None
    return MultiFernet(fernets)


class EncryptedTokenStore:
    """A :class:`~zoom_s2s.TokenStore` that encrypts tokens before another store keeps them.

    Args:
        store: The store that keeps the (encrypted) tokens; closed with this one.
        keys: Fernet keys; the first encrypts, every one may decrypt.

    Raises:
        ConfigurationError: No keys, a malformed key, or ``cryptography`` missing.
    """

    def __init__(self, store: TokenStore, keys: Sequence[str | bytes]) -> None:
        self._fernet = _multi_fernet(keys)
        self._inner = store

    @staticmethod
    def generate_key() -> str:
        """A new random Fernet key, as text for an environment variable or secret store."""
        try:
            from cryptography.fernet import Fernet
        except ImportError:
            raise ConfigurationError(_INSTALL_HINT) from None
        return Fernet.generate_key().decode("ascii")

    @property
    def name(self) -> str:
        return f"{self._inner.name} (encrypted)"

    @property
    def inner(self) -> TokenStore:
        """The wrapped store."""
        return self._inner

    def __repr__(self) -> str:
        return f"EncryptedTokenStore({self._inner!r})"

    def _decrypt(self, key: str, stored: AccessToken) -> AccessToken | None:
        from cryptography.fernet import InvalidToken

        try:
            plain = self._fernet.decrypt(stored.access_token.encode("ascii"))
        except (InvalidToken, UnicodeEncodeError):
            logger.warning(
                "stored token for %s in %s does not decrypt with any configured key (key "
                "rotated away, or the data was changed); treating it as a miss",
                key,
                self._inner.name,
            )
            return None
        return attrs.evolve(stored, access_token=plain.decode("utf-8"))

    async def read(self, key: str) -> AccessToken | None:
        stored = await self._inner.read(key)
        return None if stored is None else self._decrypt(key, stored)

    async def write(self, key: str, token: AccessToken, *, generation: int) -> bool:
        sealed = self._fernet.encrypt(token.access_token.encode("utf-8")).decode("ascii")
        return await self._inner.write(
            key, attrs.evolve(token, access_token=sealed), generation=generation
        )

    async def delete(self, key: str, *, fingerprint: str) -> bool:
        stored = await self._inner.read(key)
        if stored is None:
            return False
        plain = self._decrypt(key, stored)
        if plain is None or plain.fingerprint != fingerprint:
            return False
        # The ciphertext's own fingerprint makes the wrapped delete a compare-and-delete
        # of exactly what was read: a token written meanwhile is left alone.
        return await self._inner.delete(key, fingerprint=stored.fingerprint)

    async def next_generation(self, key: str) -> int:
        return await self._inner.next_generation(key)

    async def acquire_lock(self, key: str, *, ttl: float) -> LockLease | None:
        return await self._inner.acquire_lock(key, ttl=ttl)

    async def release_lock(self, lease: LockLease) -> bool:
        return await self._inner.release_lock(lease)

    async def wait_for_change(self, key: str, *, timeout: float) -> None:
        await self._inner.wait_for_change(key, timeout=timeout)

    async def read_failure(self, key: str) -> FailureRecord | None:
        return await self._inner.read_failure(key)

    async def write_failure(self, key: str, failure: FailureRecord | None) -> None:
        await self._inner.write_failure(key, failure)

    async def aclose(self) -> None:
        await self._inner.aclose()
