"""PostgresClaims: the webhook claims of :class:`~zoom_s2s.stores.postgres.PostgresTokenStore`.

A claim or order mark is one row of ``<schema>.claims``
(``zoom_s2s.stores.postgres.sql``)::

    key      text PRIMARY KEY
    owner    the running claim's owner, or NULL
    done     whether the delivery was handled
    newest   an order mark's newest event_ts; prior: the one before the last claim
    expires  when the row lapses (database clock)

Each step is one statement. A claim is ``INSERT ... ON CONFLICT DO UPDATE``
that always locks the row and takes it only if it lapsed, so ``RETURNING``
says what the row holds (claimed, done or busy); with an order mark, a
data-modifying ``WITH`` raises the mark in the same statement and the claim
is inserted only if the event is not stale (or stale events are kept).
Finishing also deletes up to 20 lapsed rows of other keys. Times are the
database's (``statement_timestamp()``): the clocks of the hosts never matter.
"""

# Every statement names its schema through quote_schema(), which admits only
# [a-z_][a-z0-9_]*: the f-strings below cannot inject; values are $n parameters.
# ruff: noqa: S608

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from ..base import BaseTokenStore
from ..claims import ClaimAnswer, WebhookClaims
from .sql import quote_schema

__all__ = ["PostgresClaims"]

_NOW = "statement_timestamp()"


class PostgresClaims(WebhookClaims):
    """The statements for one schema, run on the store's pool.

    Args:
        store: The PostgreSQL store (its errors).
        schema: Its schema.
        pool: Returns the store's connection pool (created on first use).
    """

    def __init__(
        self, store: BaseTokenStore, schema: str, pool: Callable[[], Awaitable[Any]]
    ) -> None:
        super().__init__(store)
        self._pool = pool
        s = quote_schema(schema)
        # $1 key, $2 owner, $3 lease (s). The row after the statement: taken by $2, done or busy.
        upsert = f"""
INSERT INTO {s}.claims AS c (key, owner, done, expires)
SELECT $1::text, $2::text, false, {_NOW} + make_interval(secs => $3::float8) {{source}}
ON CONFLICT (key) DO UPDATE SET
    owner = CASE WHEN c.expires <= {_NOW} THEN EXCLUDED.owner ELSE c.owner END,
    done = c.done AND c.expires > {_NOW},
    expires = CASE WHEN c.expires <= {_NOW} THEN EXCLUDED.expires ELSE c.expires END
RETURNING c.owner IS NOT DISTINCT FROM $2::text AND NOT c.done AS claimed, c.done"""
        self.claim_sql = upsert.format(source="") + ", false AS stale"
        # Also $4 order key, $5 event_ts, $6 drop stale, $7 keep (s). No row: dropped.
        self.claim_ordered_sql = (
            f"""
WITH mark AS (
    INSERT INTO {s}.claims AS c (key, newest, prior, expires)
    VALUES ($4::text, $5::bigint, NULL, {_NOW} + make_interval(secs => $7::float8))
    ON CONFLICT (key) DO UPDATE SET
        prior = CASE WHEN c.expires > {_NOW} THEN c.newest END,
        newest = CASE WHEN c.expires > {_NOW} AND c.newest > $5::bigint
            THEN c.newest ELSE $5::bigint END,
        expires = CASE WHEN c.expires > {_NOW} AND c.newest > $5::bigint
            THEN c.expires ELSE EXCLUDED.expires END
    RETURNING COALESCE(c.prior > $5::bigint, false) AS stale
)"""
            + upsert.format(source="FROM mark WHERE NOT (mark.stale AND $6::boolean)")
            + ", (SELECT stale FROM mark) AS stale"
        )
        owned = f"key = $1::text AND owner = $2::text AND NOT done AND expires > {_NOW}"
        # $1 key, $2 owner, $3 lease (s). A row if the owner held it.
        self.extend_sql = f"""
UPDATE {s}.claims SET expires = {_NOW} + make_interval(secs => $3::float8)
WHERE {owned} RETURNING true"""
        # $1 key, $2 owner, $3 keep (s). A row if the owner held it. Sweeps lapsed rows.
        self.finish_sql = f"""
WITH swept AS (
    DELETE FROM {s}.claims WHERE key IN (
        SELECT key FROM {s}.claims
        WHERE expires < {_NOW} - interval '1 minute' AND key <> $1::text
        LIMIT 20 FOR UPDATE SKIP LOCKED)
)
UPDATE {s}.claims SET done = true, owner = NULL,
    expires = {_NOW} + make_interval(secs => $3::float8)
WHERE {owned} RETURNING true"""
        # $1 key, $2 owner. A row if the owner held it.
        self.release_sql = f"DELETE FROM {s}.claims WHERE {owned} RETURNING true"

    async def _claim(
        self, key: str, owner: str, lease: float, keep: float, order: str | None,
        event_ts: int, drop_stale: bool,
    ) -> ClaimAnswer:
        pool = await self._pool()
        if order is None:
            row = await pool.fetchrow(self.claim_sql, key, owner, lease)
        else:
            row = await pool.fetchrow(
                self.claim_ordered_sql, key, owner, lease, order, event_ts, drop_stale, keep
            )
        if row is None:
            return ClaimAnswer("dropped", True)
        stale = bool(row["stale"])
        if row["claimed"]:
            return ClaimAnswer("claimed", stale)
        return ClaimAnswer("done" if row["done"] else "busy")

    async def _extend(self, key: str, owner: str, lease: float) -> bool:
        return await (await self._pool()).fetchval(self.extend_sql, key, owner, lease) is True

    async def _finish(self, key: str, owner: str, keep: float) -> bool:
        return await (await self._pool()).fetchval(self.finish_sql, key, owner, keep) is True

    async def _release(self, key: str, owner: str) -> bool:
        return await (await self._pool()).fetchval(self.release_sql, key, owner) is True
