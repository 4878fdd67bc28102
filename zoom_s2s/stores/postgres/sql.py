"""The SQL of :class:`~zoom_s2s.stores.postgres.PostgresTokenStore`.

Every store key is one row of ``<schema>.entries``; each operation is one
statement on that row, so it is atomic by itself (``INSERT ... ON CONFLICT
DO UPDATE`` locks the row, and under READ COMMITTED a concurrent statement
re-checks its ``WHERE`` against the row as the first one left it). Times
are the database's: ``clock_timestamp()`` is the server's clock at the moment
the statement runs, and durations travel as seconds, never as a client's
timestamp. ``pg_notify`` in a ``RETURNING`` list wakes waiters when (and only
when) the statement changed the row; PostgreSQL delivers the notification
when the statement's transaction commits. A write's notification carries the
record sealed for the lock's waiters (``zoom_s2s.stores.postgres.handoff``).

Schema version 2::

    <schema>.meta     (name text PRIMARY KEY, value text)      schema_version = '2'
    <schema>.entries  one row per store key:
        key               text PRIMARY KEY
        counter           generations handed out (taken with the lock)
        fence             highest generation written (survives a deleted token)
        lock_owner        random owner of the lock, or NULL
        lock_generation   the generation taken with the lock
        lock_expires      when the lock lapses (database clock)
        token_fp          fingerprint of the stored token (compare-and-delete)
        token_data        encode_record(token, generation), bytea
        token_expires     when the row's token lapses (database clock)
        failure_data      FailureRecord JSON, bytea
        failure_written   when it was written (database clock: its age)
        failure_expires   when it is forgotten (database clock)
    <schema>.rates    one row per rate-limit bucket (``zoom_s2s.stores.postgres.budget``)
    <schema>.claims   one row per webhook claim (``zoom_s2s.stores.postgres.claims``)
"""

# Every statement names its schema through quote_schema(), which admits only
# [a-z_][a-z0-9_]*: the f-strings below cannot inject; values are $n parameters.
# ruff: noqa: S608

from __future__ import annotations

import re

__all__ = ["SCHEMA_VERSION", "Statements", "quote_schema", "schema_sql"]

SCHEMA_VERSION = 2
"""The layout this code reads and writes; a database with a newer one is refused."""

_IDENTIFIER = re.compile(r"[a-z_][a-z0-9_]{0,47}\Z")


def quote_schema(schema: str) -> str:
    """``schema`` as a quoted SQL identifier.

    Raises:
        ValueError: Not lower-case letters, digits and ``_`` (at most 48, not
            starting with a digit).
    """
    if not isinstance(schema, str) or not _IDENTIFIER.match(schema):
        raise ValueError(
            f"schema must be 1-48 lower-case letters, digits or '_', not starting "
            f"with a digit: {schema!r}"
        )
    return f'"{schema}"'


def schema_sql(schema: str = "zoom_s2s") -> str:
    """The DDL that creates ``schema`` (idempotent), for a DBA to run or review.

    Raises:
        ValueError: ``schema`` is not a valid name (see :func:`quote_schema`).
    """
    s = quote_schema(schema)
    return f"""CREATE SCHEMA IF NOT EXISTS {s};
CREATE TABLE IF NOT EXISTS {s}.meta (
    name text PRIMARY KEY,
    value text NOT NULL
);
CREATE TABLE IF NOT EXISTS {s}.entries (
    key text PRIMARY KEY,
    counter bigint NOT NULL DEFAULT 0,
    fence bigint NOT NULL DEFAULT 0,
    lock_owner text,
    lock_generation bigint,
    lock_expires timestamptz,
    token_fp text,
    token_data bytea,
    token_expires timestamptz,
    failure_data bytea,
    failure_written timestamptz,
    failure_expires timestamptz
);
CREATE TABLE IF NOT EXISTS {s}.rates (
    key text PRIMARY KEY,
    tat timestamptz NOT NULL DEFAULT '-infinity',
    paused_until timestamptz NOT NULL DEFAULT '-infinity',
    daily boolean NOT NULL DEFAULT false,
    shift float8 NOT NULL DEFAULT 0,
    seen timestamptz NOT NULL DEFAULT clock_timestamp(),
    last_wait float8 NOT NULL DEFAULT 0,
    last_granted boolean NOT NULL DEFAULT false
);
CREATE TABLE IF NOT EXISTS {s}.claims (
    key text PRIMARY KEY,
    owner text,
    done boolean NOT NULL DEFAULT false,
    newest bigint NOT NULL DEFAULT 0,
    prior bigint,
    expires timestamptz NOT NULL
);
CREATE INDEX IF NOT EXISTS claims_expires ON {s}.claims (expires);
INSERT INTO {s}.meta (name, value)
    VALUES ('schema_version', '{SCHEMA_VERSION}')
    ON CONFLICT (name) DO NOTHING;
"""


class Statements:
    """The statements for one schema (``$n`` parameters, asyncpg style)."""

    def __init__(self, schema: str) -> None:
        s = quote_schema(schema)
        self.channel = f"{schema}_changed"
        self.version = f"SELECT value FROM {s}.meta WHERE name = 'schema_version'"

        # The state of a row (alias e): the unexpired token with the seconds it
        # still lives, and the unexpired failure record with its age, by the
        # database's clock.
        state = """
    CASE WHEN e.token_expires > clock_timestamp() THEN e.token_data END AS token_data,
    EXTRACT(EPOCH FROM e.token_expires - clock_timestamp())::float8 AS left_s,
    CASE WHEN e.failure_expires > clock_timestamp() AND e.failure_written IS NOT NULL
        THEN e.failure_data END AS failure_data,
    EXTRACT(EPOCH FROM clock_timestamp() - e.failure_written)::float8 AS age"""

        # $1 key. The state (see above); no row if the key was never used.
        self.read = f"SELECT {state} FROM {s}.entries AS e WHERE e.key = $1"

        # $1 key, $2 owner, $3 lock TTL (seconds). One row: the lease's generation
        # (above every generation handed out or written before; NULL if another
        # owner holds an unexpired lock) and the state, read with the lock taken
        # (RETURNING sees the row as the statement left it). The state columns
        # are NULL if the key was never used.
        self.acquire = f"""
WITH taken AS (
    INSERT INTO {s}.entries AS e (key, counter, lock_owner, lock_generation, lock_expires)
    VALUES ($1, 1, $2, 1, clock_timestamp() + make_interval(secs => $3))
    ON CONFLICT (key) DO UPDATE SET
        counter = GREATEST(e.counter, e.fence) + 1,
        lock_owner = EXCLUDED.lock_owner,
        lock_generation = GREATEST(e.counter, e.fence) + 1,
        lock_expires = EXCLUDED.lock_expires
    WHERE e.lock_owner IS NULL OR e.lock_expires IS NULL
        OR e.lock_expires <= clock_timestamp()
    RETURNING e.lock_generation AS generation, {state}
)
SELECT * FROM taken
UNION ALL
SELECT NULL::bigint, {state} FROM {s}.entries AS e
WHERE e.key = $1 AND NOT EXISTS (SELECT FROM taken)"""

        # $1 key, $2 generation, $3 fingerprint (NULL: store no token), $4 record,
        # $5 TTL (seconds), $6 channel, $7 the lease's owner to release its lock
        # (NULL: keep it), $8 the notification (the record sealed for waiters,
        # handoff.payload). A row if written (the failure record is forgotten, the
        # lock released if asked and still the lease's, waiters woken); none if
        # a higher generation was written (the lock is then a successor's).
        ours = "e.lock_owner = $7 AND e.lock_generation = $2"
        self.write = f"""
INSERT INTO {s}.entries AS e (key, counter, fence, token_fp, token_data, token_expires)
VALUES ($1, $2, $2, $3, $4, clock_timestamp() + make_interval(secs => $5))
ON CONFLICT (key) DO UPDATE SET
    fence = EXCLUDED.fence,
    token_fp = EXCLUDED.token_fp,
    token_data = EXCLUDED.token_data,
    token_expires = EXCLUDED.token_expires,
    failure_data = NULL,
    failure_written = NULL,
    failure_expires = NULL,
    lock_owner = CASE WHEN {ours} THEN NULL ELSE e.lock_owner END,
    lock_generation = CASE WHEN {ours} THEN NULL ELSE e.lock_generation END,
    lock_expires = CASE WHEN {ours} THEN NULL ELSE e.lock_expires END
WHERE e.fence <= EXCLUDED.fence
RETURNING e.fence, pg_notify($6, $8)"""

        # $1 key, $2 generation, $3 FailureRecord JSON, $4 keep for (seconds).
        # A row if stored, none if a later generation's token was written.
        self.write_failure = f"""
INSERT INTO {s}.entries AS e (key, failure_data, failure_written, failure_expires)
VALUES ($1, $3, clock_timestamp(), clock_timestamp() + make_interval(secs => $4))
ON CONFLICT (key) DO UPDATE SET
    failure_data = EXCLUDED.failure_data,
    failure_written = EXCLUDED.failure_written,
    failure_expires = EXCLUDED.failure_expires
WHERE e.fence <= $2
RETURNING e.fence"""

        # $1 key, $2 fingerprint, $3 channel. A row if that (unexpired) token was deleted.
        self.delete = f"""
UPDATE {s}.entries
SET token_fp = NULL, token_data = NULL, token_expires = NULL
WHERE key = $1 AND token_fp = $2 AND token_data IS NOT NULL
    AND token_expires > clock_timestamp()
RETURNING fence, pg_notify($3, ':' || $1)"""

        # $1 key, $2 owner, $3 generation, $4 channel. A row if the lease held the
        # (unexpired) lock and released it.
        self.release = f"""
UPDATE {s}.entries
SET lock_owner = NULL, lock_generation = NULL, lock_expires = NULL
WHERE key = $1 AND lock_owner = $2 AND lock_generation = $3
    AND lock_expires > clock_timestamp()
RETURNING fence, pg_notify($4, ':' || $1)"""

        # $1 key. Seconds the lock still lives by the database's clock, and its
        # holder's owner and generation (to open a sealed hand-off); no row if free.
        self.lock_left = f"""
SELECT EXTRACT(EPOCH FROM lock_expires - clock_timestamp())::float8 AS left_s,
    lock_owner, lock_generation
FROM {s}.entries
WHERE key = $1 AND lock_owner IS NOT NULL AND lock_expires > clock_timestamp()"""
