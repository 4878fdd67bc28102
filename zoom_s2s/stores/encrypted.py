"""EncryptedTokenStore: encryption at rest for any TokenStore (extra: ``zoom-s2s[encryption]``).

What is sealed, key rotation and what passes through unsealed:
``docs/backends.rst`` ("Encryption at rest").
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING

import attrs

from ..errors import ConfigurationError
from ..models import AccessToken
from .base import BaseTokenStore, FailureRecord, LockAttempt, LockLease, StoreState, TokenStore

if TYPE_CHECKING:
    from cryptography.fernet import MultiFernet

__all__ = ["EncryptedTokenStore", "validate_keys"]

logger = logging.getLogger("zoom_s2s.stores.encrypted")

_INSTALL_HINT = "EncryptedTokenStore needs cryptography: install zoom-s2s[encryption]"

# Version of the sealed payload. Records of earlier releases sealed only the
# token string: they fail to decode (a miss) and the next refresh replaces them.
_SEALED_VERSION = 2


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


class EncryptedTokenStore(BaseTokenStore):
    """A :class:`~zoom_s2s.TokenStore` that seals tokens before another store keeps them.

    Args:
        store: The store that keeps the sealed tokens; closed with this one.
        keys: Fernet keys; the first encrypts, every one may decrypt.

    Raises:
        ConfigurationError: No keys, a malformed key, or ``cryptography`` missing.
    """

    # The wrapped store translates its own backend errors; decryption failures are misses.
    backend_errors = ()

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

    # -- sealing ------------------------------------------------------------------

    def _seal(self, key: str, token: AccessToken) -> AccessToken:
        """The token the wrapped store keeps: ciphertext of everything, times for its TTL."""
        payload = {"v": _SEALED_VERSION, "key": key, "token": token.to_dict()}
        sealed = self._fernet.encrypt(json.dumps(payload, separators=(",", ":")).encode())
        return AccessToken(
            access_token=sealed.decode("ascii"),
            expires_ts=token.expires_ts,
            issued_ts=token.issued_ts,
        )

    def _miss(self, key: str, why: str) -> None:
        logger.warning(
            "stored token for %s in %s %s; treating it as a miss (the next refresh replaces it)",
            key,
            self._inner.name,
            why,
        )

    def _open(self, key: str, stored: AccessToken) -> AccessToken | None:
        """The token sealed in ``stored``, or ``None`` (with a warning) if it does not verify."""
        from cryptography.fernet import InvalidToken

        try:
            plain = self._fernet.decrypt(stored.access_token.encode("ascii"))
        except (InvalidToken, UnicodeEncodeError):
            self._miss(
                key,
                "does not decrypt with any configured key (key rotated away, or the data "
                "was changed by someone without the key)",
            )
            return None
        try:
            payload = json.loads(plain)
            if not isinstance(payload, dict) or payload.get("v") != _SEALED_VERSION:
                raise ValueError("not a sealed zoom-s2s token record (version 2)")
            if payload.get("key") != key:
                raise ValueError("sealed for another store key")
            token = AccessToken.from_dict(payload.get("token"))
        except (ValueError, TypeError, RecursionError) as exc:
            detail = str(exc) if not isinstance(exc, json.JSONDecodeError) else "not JSON"
            self._miss(key, f"has sealed data that does not decode ({detail})")
            return None
        if stored.scopes or stored.api_url is not None:
            # Written beside the ciphertext by someone without the key: a warning sign
            # even though nothing unsealed would be used.
            self._miss(key, "has plaintext metadata next to the sealed record (tampered)")
            return None
        # The wrapped store may shorten the token's life (its TTL), never extend it.
        expires_at = min(token.expires_ts, stored.expires_ts)
        if expires_at == token.expires_ts:
            return token
        return attrs.evolve(token, expires_ts=expires_at)

    # -- the protocol -------------------------------------------------------------

    def _opened(self, key: str, state: StoreState) -> StoreState:
        if state.token is None:
            return state
        return attrs.evolve(state, token=self._open(key, state.token))

    async def read(self, key: str) -> StoreState:
        return self._opened(key, await self._inner.read(key))

    async def acquire_lock(self, key: str, *, ttl: float) -> LockAttempt:
        lease, state = await self._inner.acquire_lock(key, ttl=ttl)
        return LockAttempt(lease, self._opened(key, state))

    async def write(self, lease: LockLease, token: AccessToken, *, release: bool = False) -> bool:
        return await self._inner.write(lease, self._seal(lease.key, token), release=release)

    async def write_failure(
        self, lease: LockLease, failure: FailureRecord, *, keep_for: float
    ) -> None:
        await self._inner.write_failure(lease, failure, keep_for=keep_for)

    async def release_lock(self, lease: LockLease) -> bool:
        return await self._inner.release_lock(lease)

    async def delete(self, key: str, *, fingerprint: str) -> bool:
        stored = (await self._inner.read(key)).token
        if stored is None:
            return False
        plain = self._open(key, stored)
        if plain is None or plain.fingerprint != fingerprint:
            return False
        # The ciphertext's own fingerprint makes the wrapped delete a compare-and-delete
        # of exactly what was read: a token written meanwhile is left alone.
        return await self._inner.delete(key, fingerprint=stored.fingerprint)

    async def wait_for_change(self, key: str, *, timeout: float) -> StoreState | None:
        state = await self._inner.wait_for_change(key, timeout=timeout)
        return None if state is None else self._opened(key, state)


    async def aclose(self) -> None:
        await self._inner.aclose()
