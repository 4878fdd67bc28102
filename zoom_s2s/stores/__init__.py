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

Writing a store: implement :class:`TokenStore` (most easily by subclassing
:class:`BaseTokenStore`) with :class:`StoreState`, :class:`LockAttempt`,
:class:`LockLease` and :class:`FailureRecord`,
and check it with :class:`zoom_s2s.testing.StoreContract`; ``docs/stores.rst``
walks through it.
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
    "PostgresTokenStore",
    "RedisTokenStore",
    "StoreState",
    "TokenStore",
    "decode_record",
    "encode_record",
    "register_store",
    "store_from_url",
]
