"""Token stores: where processes and hosts share one token, one backend per technology.

:class:`MemoryTokenStore`, :class:`FileTokenStore`, :class:`RedisTokenStore`,
:class:`PostgresTokenStore` (the last two import their driver only when made),
:class:`EncryptedTokenStore` around any of them, and :func:`store_from_url`.
Each backend also provides its :class:`RateBudget` (``store.rate_budget``) and
its :class:`WebhookClaims` (``store.webhook_claims``). Writing a store, a rate
budget or claims: ``docs/stores.rst``.
"""

from .base import (
    BaseTokenStore,
    FailureRecord,
    LockAttempt,
    LockLease,
    StoreState,
    TokenStore,
    decode_record,
    encode_record,
)
from .budget import Pause, Permit, RateBudget, rate_budget_of
from .claims import ClaimAnswer, WebhookClaims, claims_of
from .encrypted import EncryptedTokenStore
from .file import FileTokenStore
from .memory import MemoryTokenStore
from .postgres import PostgresTokenStore
from .redis import RedisTokenStore
from .registry import register_store
from .url import store_from_url

__all__ = [
    "BaseTokenStore",
    "ClaimAnswer",
    "EncryptedTokenStore",
    "FailureRecord",
    "FileTokenStore",
    "LockAttempt",
    "LockLease",
    "MemoryTokenStore",
    "Pause",
    "Permit",
    "PostgresTokenStore",
    "RateBudget",
    "RedisTokenStore",
    "StoreState",
    "TokenStore",
    "WebhookClaims",
    "claims_of",
    "decode_record",
    "encode_record",
    "rate_budget_of",
    "register_store",
    "store_from_url",
]
