"""Token stores: where processes and hosts share one token.

* :class:`MemoryTokenStore`: one process (the default).
* :class:`FileTokenStore`: processes on one host, through a local directory.
* :class:`RedisTokenStore`: hosts, through Redis or Redis Cluster (needs the
  ``zoom-s2s[redis]`` extra, imported only when a Redis store is created).
* :class:`PostgresTokenStore`: hosts, through PostgreSQL (needs the
  ``zoom-s2s[postgres]`` extra, imported only when a store is created).
* :class:`EncryptedTokenStore`: encryption at rest around any of them (needs
  the ``zoom-s2s[encryption]`` extra).
* :func:`store_from_url`: one of the above from ``memory://``, ``file:///dir``,
  ``redis://...``, ``rediss://...``, ``unix://...`` or ``postgresql://...``, or a third-party store
  registered for its scheme (:func:`register_store`).

Each backend is one module or package (``memory``, ``file/``, ``redis/``,
``postgres/``) holding its token store and its :class:`RateBudget` (a store's
``rate_budget``: the fleet's shared rate limits).

Writing a store: implement :class:`TokenStore` (most easily by subclassing
:class:`BaseTokenStore`) with :class:`StoreState`, :class:`LockAttempt`,
:class:`LockLease` and :class:`FailureRecord`, and check it with
:class:`zoom_s2s.testing.StoreContract`; a rate budget subclasses
:class:`RateBudget` and is checked with :class:`zoom_s2s.testing.RateBudgetContract`.
``docs/stores.rst`` walks through it.
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
from .encrypted import EncryptedTokenStore
from .file import FileTokenStore
from .memory import MemoryTokenStore
from .postgres import PostgresTokenStore
from .redis import RedisTokenStore
from .registry import register_store
from .url import store_from_url

__all__ = [
    "BaseTokenStore",
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
    "decode_record",
    "encode_record",
    "rate_budget_of",
    "register_store",
    "store_from_url",
]
