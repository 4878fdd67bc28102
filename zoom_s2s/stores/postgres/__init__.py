"""The PostgreSQL backend: token store, SQL, ``LISTEN`` listener and rate budget.

``asyncpg`` is imported only when a store is created (``zoom-s2s[postgres]``).
``docs/postgres.rst`` describes the schema and the grants.
"""

from .budget import PostgresRateBudget
from .claims import PostgresClaims
from .store import PostgresTokenStore, grants_sql, schema_sql

__all__ = ["PostgresClaims", "PostgresRateBudget", "PostgresTokenStore", "grants_sql", "schema_sql"]
