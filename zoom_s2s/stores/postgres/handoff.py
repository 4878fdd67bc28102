"""Sealed hand-offs: the written token rides in the ``NOTIFY`` that wakes its waiters.

PostgreSQL lets any role that can connect ``LISTEN`` and ``NOTIFY`` on any
channel, so a payload can carry the token only sealed, and a waiter may use
only a payload it can authenticate. The seal is AES-GCM under a key derived
from the lock's random owner value, which only roles that can read the lock's
row ever see: the holder seals with its own lease, a waiter opens with the
owner it read when it looked at the lock. The lease's generation and the store
key are authenticated with it. A payload that does not open (written under
another lease, forged, too long to seal, or ``cryptography`` missing) only
wakes: the waiter reads the row, as it always did. ``docs/backends.rst``
("PostgreSQL", "Waking waiters").

Payload: ``<sealed>:<key>`` (``<sealed>`` is URL-safe Base64, never a
``:``; empty when nothing is sealed).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import math
import os
import struct
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

__all__ = ["open_sealed", "parse", "payload", "prepare", "wake_up"]

MAX_PAYLOAD = 7999
"""Bytes PostgreSQL accepts in a ``NOTIFY`` payload (it refuses 8000 or more)."""

_INFO = b"zoom-s2s postgres hand-off v1"
_NONCE = 12
_LEFT = struct.Struct("!d")  # the seconds the token still lives, as its writer measured


_aesgcm: type[AESGCM] | None = None
_prepared = False


def prepare() -> bool:
    """Import and start cryptography's AES-GCM now (about 12 ms, once per process).

    The store calls this when it opens its pool, so that the first hand-off,
    which is the moment a stampede waits on, does not pay for it. Returns
    whether sealing is possible here.
    """
    global _aesgcm, _prepared
    if not _prepared:
        _prepared = True
        try:
            from cryptography.hazmat.primitives.ciphers.aead import AESGCM
        except ImportError:
            return False
        AESGCM(bytes(32))  # the first instance loads the OpenSSL backend (about 1 ms)
        _aesgcm = AESGCM
    return _aesgcm is not None


def _cipher(owner: str) -> AESGCM | None:
    """AES-GCM keyed by ``owner`` (HMAC-SHA256 of a label), or ``None`` without cryptography."""
    if not prepare():
        return None
    assert _aesgcm is not None
    return _aesgcm(hmac.new(owner.encode(), _INFO, hashlib.sha256).digest())


def _associated(key: str, generation: int) -> bytes:
    return f"{generation}:{key}".encode()


def payload(key: str, *, owner: str, generation: int, record: bytes, left: float) -> str:
    """The notification of a write under the lease ``owner``/``generation``: the record sealed.

    Just ``:<key>`` (a wake-up) when it cannot be sealed or would not fit.
    """
    plain = f":{key}"
    cipher = _cipher(owner)
    if cipher is None:
        return plain
    nonce = os.urandom(_NONCE)
    sealed = cipher.encrypt(nonce, _LEFT.pack(left) + record, _associated(key, generation))
    text = base64.urlsafe_b64encode(nonce + sealed).decode("ascii") + plain
    return text if len(text.encode()) <= MAX_PAYLOAD else plain


def wake_up(key: str) -> str:
    """The notification of a change that carries nothing (a release, a delete)."""
    return f":{key}"


def parse(text: str) -> tuple[str, str]:
    """``(key, sealed)`` of a notification; ``sealed`` is ``""`` when it carries nothing."""
    sealed, _, key = text.partition(":")
    return key, sealed


def open_sealed(
    sealed: str, *, key: str, owner: str, generation: int
) -> tuple[bytes, float] | None:
    """The record and its seconds left, if ``sealed`` was sealed under that lease for ``key``.

    ``None`` for anything else: another lease's, a forgery, garbage, no cryptography.
    """
    if not sealed:
        return None
    cipher = _cipher(owner)
    if cipher is None:
        return None
    from cryptography.exceptions import InvalidTag

    try:
        raw = base64.urlsafe_b64decode(sealed.encode("ascii"))
        plain = cipher.decrypt(raw[:_NONCE], raw[_NONCE:], _associated(key, generation))
    except (InvalidTag, ValueError):  # binascii.Error, a short nonce, non-ASCII text
        return None
    if len(plain) < _LEFT.size:
        return None
    (left,) = _LEFT.unpack_from(plain)
    if not math.isfinite(left) or left < 0:
        return None
    return plain[_LEFT.size :], left
