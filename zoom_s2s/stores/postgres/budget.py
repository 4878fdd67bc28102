"""PostgresRateBudget: the rate budget of :class:`~zoom_s2s.stores.postgres.PostgresTokenStore`.

A bucket key ``<scope>.<name>`` (``zoom_s2s.stores.budget``) is one row of
``<schema>.rates`` (``zoom_s2s.stores.postgres.sql``)::

    key           text PRIMARY KEY, the bucket key
    tat           theoretical arrival time (database clock)
    paused_until  end of the pause (database clock)
    daily         whether that pause is a daily limit
    shift         cumulative pause shift, seconds
    seen          the database clock when the row was last written
    last_wait     the answer of the last permit: seconds to its slot ...
    last_granted  ... and whether it was reserved

Each permit or lease is *one* statement, ``INSERT ... ON CONFLICT DO UPDATE ...
RETURNING``: it locks the bucket's row (or creates it), computes GCRA from
the row as it was and the database's clock (``clock_timestamp()``, read once
per statement), and writes the new state together with its answer, which
``RETURNING`` reads back (``RETURNING`` sees only the new row before
PostgreSQL 18, hence ``last_wait`` and ``last_granted``). The clocks of the
hosts never matter.

State read back is bounded as on Redis: a ``tat`` or pause further ahead than
:data:`~zoom_s2s.stores.budget.MAX_AHEAD` (``infinity`` included) and a
``shift`` that is negative, ``NaN`` or absurd are ignored, so a planted row
cannot stall the fleet for longer than a day. A pause (rare: a 429) also
deletes, in the same statement, up to 100 rows of other keys idle for an hour,
so per-user counters and blocks do not pile up (Redis lets them expire).

A counter of the quota ledger is a row too: ``tat`` is the end of its window,
``shift`` its count (one ``INSERT ... ON CONFLICT`` per use). ``notices()``
reads the scope's paused rows in one ``SELECT``. A daily pause without
``Retry-After`` ends at the next 00:00 UTC by the database's clock.
"""

# Every statement names its schema through quote_schema(), which admits only
# [a-z_][a-z0-9_]*: the f-strings below cannot inject; values are $n parameters.
# ruff: noqa: S608

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from ..base import BaseTokenStore
from ..budget import DAY, MAX_AHEAD, Pause, Permit, RateBudget, Tally
from .sql import quote_schema

__all__ = ["PostgresRateBudget"]

_MAX_SHIFT = 1e9  # seconds: a larger cumulative shift is corrupt
_EMPTY = "'-infinity'::timestamptz, '-infinity'::timestamptz, false, 0::float8"
_ROW = "e.tat, e.paused_until, e.daily, e.shift"


def _clean(old: str) -> str:
    """A one-row query of the bucket's state ``old`` made sane, with ``now`` (read once).

    A time in the past means the same as ``now`` (no reservation, no pause), so
    times are clamped to ``now``: nothing is ever subtracted from an infinite
    timestamp (an error since PostgreSQL 16), and corrupt ones become ``now``.
    """
    return f"""SELECT r.now,
        CASE WHEN r.tat > r.now + make_interval(secs => {MAX_AHEAD})
            THEN r.now ELSE GREATEST(r.tat, r.now) END AS tat,
        CASE WHEN r.paused_until > r.now + make_interval(secs => {MAX_AHEAD})
            THEN r.now ELSE GREATEST(r.paused_until, r.now) END AS paused_until,
        r.daily AND r.paused_until <= r.now + make_interval(secs => {MAX_AHEAD}) AS daily,
        CASE WHEN r.shift >= 0 AND r.shift <= {_MAX_SHIFT} THEN r.shift ELSE 0 END AS shift
    FROM (SELECT clock_timestamp() AS now, {old} OFFSET 0)
        AS r (now, tat, paused_until, daily, shift)"""


def _permit(old: str) -> str:
    """GCRA over ``old``: the new row's values (tat .. last_granted), one row.

    $2 interval (s), $3 burst, $4 max_wait (s), $5 cells.
    """
    return f"""SELECT
        CASE WHEN y.ok THEN GREATEST(y.tat, y.allow)
            + $5::int * make_interval(secs => $2::float8) ELSE y.tat END,
        y.paused_until, y.daily, y.shift, y.now,
        EXTRACT(EPOCH FROM (CASE WHEN y.daily AND y.paused_until > y.now THEN y.paused_until
            ELSE y.allow END) - y.now)::float8,
        y.ok
    FROM (SELECT x.*, NOT ((x.daily AND x.paused_until > x.now)
                OR x.allow > x.now + make_interval(secs => $4::float8)) AS ok
        FROM (SELECT c.*, GREATEST(c.now,
                    c.tat - ($3::int - 1) * make_interval(secs => $2::float8),
                    c.paused_until) AS allow
            FROM ({_clean(old)}) AS c) AS x) AS y"""


def _pause(old: str) -> str:
    """A pause over ``old``: the new row's values (tat .. seen), one row.

    $2 seconds or NULL, $3 daily, $4 the end (Unix time) or NULL; neither: the next
    00:00 UTC. A daily pause ends by the next 00:00 UTC (+ 60 s). Only ever extends;
    a non-daily pause shifts reservations.
    """
    stop = """CASE WHEN $4::float8 IS NOT NULL THEN to_timestamp($4::float8)
            WHEN $2::float8 IS NOT NULL THEN c.now + make_interval(secs => $2::float8)
            ELSE date_trunc('day', c.now, 'UTC') + interval '1 day' END"""
    stop = f"""CASE WHEN $3::boolean THEN LEAST({stop},
                date_trunc('day', c.now, 'UTC') + interval '1 day 60 seconds')
            ELSE {stop} END"""
    return f"""SELECT
        CASE WHEN NOT y.longer OR $3::boolean THEN y.tat
            ELSE GREATEST(y.tat, y.now) + (y.stop - GREATEST(y.paused_until, y.now)) END,
        CASE WHEN y.longer THEN y.stop ELSE y.paused_until END,
        CASE WHEN y.longer THEN $3::boolean ELSE y.daily END,
        CASE WHEN NOT y.longer OR $3::boolean THEN y.shift
            ELSE y.shift + EXTRACT(EPOCH FROM y.stop - GREATEST(y.paused_until, y.now))::float8
            END,
        y.now
    FROM (SELECT z.*, z.stop > z.paused_until AS longer
        FROM (SELECT c.*, {stop} AS stop FROM ({_clean(old)}) AS c) AS z) AS y"""


def _count(old: str) -> str:
    """One use of a counter over ``old``: the new row's values (tat .. last_granted).

    $2 limit, $3 period (s; 86400: until the next 00:00 UTC).
    """
    return f"""SELECT y.wend, y.paused_until, y.daily,
        CASE WHEN y.ok THEN y.used + 1 ELSE y.used END, y.now,
        EXTRACT(EPOCH FROM (CASE WHEN y.blocked THEN y.paused_until ELSE y.wend END)
            - y.now)::float8,
        y.ok
    FROM (SELECT x.*, NOT x.blocked AND x.used + 1 <= $2::int AS ok
        FROM (SELECT c.now, c.paused_until, c.daily,
                c.daily AND c.paused_until > c.now AS blocked,
                CASE WHEN c.tat > c.now THEN c.tat WHEN $3::float8 >= {DAY}
                    THEN date_trunc('day', c.now, 'UTC') + interval '1 day'
                    ELSE c.now + make_interval(secs => $3::float8) END AS wend,
                CASE WHEN c.tat > c.now THEN c.shift ELSE 0 END AS used
            FROM ({_clean(old)}) AS c) AS x) AS y"""


class PostgresRateBudget(RateBudget):
    """The five statements for one schema, run on the store's pool.

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
        columns = "tat, paused_until, daily, shift, seen, last_wait, last_granted"
        # $1 key, $2 interval (s), $3 burst, $4 max_wait (s), $5 cells.
        self.permit_sql = f"""
INSERT INTO {s}.rates AS e (key, {columns})
SELECT $1::text, n.* FROM ({_permit(_EMPTY)}) AS n
ON CONFLICT (key) DO UPDATE SET ({columns}) = ({_permit(_ROW)})
RETURNING e.last_wait, e.last_granted, e.shift, EXTRACT(EPOCH FROM e.tat - e.seen)::float8"""

        # $1 key, $2 limit, $3 period (s).
        self.count_sql = f"""
INSERT INTO {s}.rates AS e (key, {columns})
SELECT $1::text, n.* FROM ({_count(_EMPTY)}) AS n
ON CONFLICT (key) DO UPDATE SET ({columns}) = ({_count(_ROW)})
RETURNING e.last_granted, e.last_wait, e.shift"""

        # $1 scope.
        self.notices_sql = f"""
SELECT substr(e.key, length($1::text) + 2) AS name,
    EXTRACT(EPOCH FROM c.paused_until - c.now)::float8 AS left_s, c.daily
FROM {s}.rates e, LATERAL ({_clean(_ROW)}) AS c
WHERE left(e.key, length($1::text) + 1) = $1::text || '.' AND c.paused_until > c.now"""

        pause_columns = "tat, paused_until, daily, shift, seen"
        # $1 key, $2 seconds, $3 daily, $4 until. Also forgets rows of other keys idle
        # for an hour.
        self.pause_sql = f"""
WITH swept AS (
    DELETE FROM {s}.rates WHERE key IN (
        SELECT key FROM {s}.rates
        WHERE key <> $1::text AND tat < clock_timestamp() - interval '1 hour'
            AND paused_until < clock_timestamp() - interval '1 hour'
        LIMIT 100)
)
INSERT INTO {s}.rates AS e (key, {pause_columns})
SELECT $1::text, n.* FROM ({_pause(_EMPTY)}) AS n
ON CONFLICT (key) DO UPDATE SET ({pause_columns}) = ({_pause(_ROW)})
RETURNING EXTRACT(EPOCH FROM e.paused_until - e.seen)::float8, e.daily"""

        # $1 key. No row: no state (not paused).
        self.paused_sql = f"""
SELECT GREATEST(0, EXTRACT(EPOCH FROM c.paused_until - c.now))::float8 AS left_s,
    c.daily AND c.paused_until > c.now AS daily, c.shift
FROM {s}.rates e, LATERAL ({_clean(_ROW)}) AS c
WHERE e.key = $1::text"""

    async def _acquire(
        self, key: str, interval: float, burst: int, max_wait: float, cells: int
    ) -> Permit:
        """One statement: GCRA on the database's clock (see the module docstring)."""
        row = await (await self._pool()).fetchrow(
            self.permit_sql, key, float(interval), burst, float(max_wait), cells
        )
        granted = bool(row[1])
        ahead = max(0.0, float(row[3]) - cells * interval) if granted else 0.0
        return Permit(max(0.0, float(row[0])), granted, float(row[2]), ahead)

    async def _pause(
        self, key: str, seconds: float | None, daily: bool, until: float | None
    ) -> Pause:
        """One statement: pause ``key`` (only ever extends)."""
        row = await (await self._pool()).fetchrow(
            self.pause_sql, key, seconds, daily, None if until is None else float(until)
        )
        left = max(0.0, float(row[0]))
        return Pause(left, bool(row[1]) and left > 0)

    async def _count(self, key: str, limit: int, period: float) -> Tally:
        """One statement: count a use of ``key`` unless its window is full or it is blocked."""
        row = await (await self._pool()).fetchrow(self.count_sql, key, limit, period)
        return Tally(bool(row[0]), max(0.0, float(row[1])), max(0, limit - int(row[2])))

    async def _notices(self, scope: str) -> dict[str, Pause]:
        """One statement: the scope's paused rows."""
        rows = await (await self._pool()).fetch(self.notices_sql, scope)
        return {
            row["name"]: Pause(float(row["left_s"]), bool(row["daily"])) for row in rows
        }

    async def _paused(self, key: str) -> Pause:
        """One statement: whether ``key`` is paused, for how long, and its shift."""
        row = await (await self._pool()).fetchrow(self.paused_sql, key)
        if row is None:
            return Pause()
        return Pause(float(row["left_s"]), bool(row["daily"]), float(row["shift"]))
