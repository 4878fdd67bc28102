"""Token stores: where processes and hosts share one token.

* :class:`MemoryTokenStore`: one process (the default).
* :class:`FileTokenStore`: processes on one host, through a local directory.
* :class:`RedisTokenStore`: hosts, through Redis or Redis Cluster (needs the
  ``zoom-s2s[redis]`` extra, imported only when a Redis store is created).
* :class:`EncryptedTokenStore`: encryption at rest around any of them (needs
  the ``zoom-s2s[encryption]`` extra).
* :func:`store_from_url`: one of the above from ``memory://``, ``file:///dir``,
  ``redis://...``, ``rediss://...`` or ``unix://...``.

Third-party stores implement :class:`TokenStore` and check themselves with
:class:`zoom_s2s.testing.contract.StoreContract`.
"""

from .base import FailureRecord, LockLease, TokenStore, decode_record, encode_record
from .encrypted import EncryptedTokenStore
from .file import FileTokenStore
from .memory import MemoryTokenStore
from .redis import RedisTokenStore
from .url import store_from_url

__all__ = [
    "EncryptedTokenStore",
    "FailureRecord",
    "FileTokenStore",
    "LockLease",
    "MemoryTokenStore",
    "RedisTokenStore",
    "TokenStore",
    "decode_record",
    "encode_record",
    "store_from_url",
]
