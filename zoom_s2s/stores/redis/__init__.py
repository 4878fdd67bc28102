"""The Redis backend: token store, Lua scripts, pub/sub listener and rate budget.

``redis`` is imported only when a store is created (``zoom-s2s[redis]``).
``docs/stores.rst`` describes the key layout and the ACL.
"""

from .budget import RATE_COMMANDS, RedisRateBudget
from .claims import RedisClaims
from .store import CLUSTER_COMMANDS, REDIS_COMMANDS, RedisTokenStore, acl_rules

__all__ = [
    "CLUSTER_COMMANDS",
    "RATE_COMMANDS",
    "REDIS_COMMANDS",
    "RedisClaims",
    "RedisRateBudget",
    "RedisTokenStore",
    "acl_rules",
]
