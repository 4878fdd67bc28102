"""PostgresTokenStore: tokens shared by every host that reaches one PostgreSQL database.

One row per key, one statement per operation, leases and times on the
database's clock, ``LISTEN/NOTIFY`` wake-ups, every wait bounded:
``docs/backends.rst`` ("PostgreSQL"); schema, grants, bounds and PgBouncer:
``docs/postgres.rst``.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import importlib
import inspect
import logging
import math
import urllib.parse
from collections.abc import Coroutine
from types import ModuleType
from typing import Any

import attrs

from ... import _clock
from ..._redact import is_secret_parameter, secret_forms
from ...errors import (
    ConfigurationError,
    StoreError,
    StoreUnavailableError,
    UsageError,
    ZoomS2SError,
)
from ...models import MAX_TOKEN_LIFETIME, AccessToken
from ..base import (
    BaseTokenStore,
    FailureRecord,
    LockAttempt,
    LockLease,
    StoreState,
    bounded_token,
    encode_record,
    new_owner,
    seconds_to_keep,
)
from ..url import check_ports, redact_url, url_secrets
from . import handoff
from .budget import PostgresRateBudget
from .claims import PostgresClaims
from .listener import Change, ChangeListener
from .sql import SCHEMA_VERSION, Statements, quote_schema
from .sql import schema_sql as _schema_sql

__all__ = ["MAX_TOKEN_LIFETIME", "PostgresTokenStore", "grants_sql", "schema_sql"]

logger = logging.getLogger("zoom_s2s.stores.postgres")

_INSTALL_HINT = "PostgresTokenStore needs the asyncpg package: install zoom-s2s[postgres]"
_URL_FORMS = "postgresql://[user[:password]@]host[:port]/database[?sslmode=...]"
MAX_KEY_LENGTH = 256
_MAX_LOCK_TTL = 86_400.0
POLL_INTERVAL = 0.2
"""Seconds between re-reads of a held lock's row while the store cannot listen."""


def schema_sql(schema: str = "zoom_s2s") -> str:
    """The DDL the store runs on first use (idempotent), for a DBA to run in advance.

    Raises:
        ConfigurationError: ``schema`` is not a valid schema name.
    """
    try:
        return _schema_sql(schema)
    except ValueError as exc:
        raise ConfigurationError(str(exc)) from None


def grants_sql(user: str, schema: str = "zoom_s2s") -> str:
    """The minimal grants for ``user`` once the schema exists (see :func:`schema_sql`).

    The application user then needs no ``CREATE`` right anywhere: it reads
    and writes the store's tables, nothing else (``DELETE`` only on
    ``rates``, whose idle rows it forgets).

    Raises:
        ConfigurationError: ``schema`` or ``user`` is not a plain lower-case name.
    """
    try:
        s = quote_schema(schema)
    except ValueError as exc:
        raise ConfigurationError(str(exc)) from None
    try:
        u = quote_schema(user)
    except ValueError:
        raise ConfigurationError(
            f"role name {user!r:.80} is not 1-48 lower-case letters, digits or '_' (not "
            "starting with a digit); grant to such a role by hand, or use a plain-named role"
        ) from None
    return (
        f"GRANT USAGE ON SCHEMA {s} TO {u};\n"
        f"GRANT SELECT ON {s}.meta TO {u};\n"
        f"GRANT SELECT, INSERT, UPDATE ON {s}.entries TO {u};\n"
        f"GRANT SELECT, INSERT, UPDATE, DELETE ON {s}.rates TO {u};\n"
        f"GRANT SELECT, INSERT, UPDATE, DELETE ON {s}.claims TO {u};\n"
    )


def _import_asyncpg() -> ModuleType:
    try:
        return importlib.import_module("asyncpg")
    except ImportError as exc:
        raise ConfigurationError(_INSTALL_HINT) from exc


def _check_url(url: str, name: str) -> None:
    # The parser's messages quote parts of the URL (a "port" or a "[host]" that
    # may be the password): say what is wrong in words of our own.
    expected = (
        f"expected {_URL_FORMS} (percent-encode '/', '?', '#', '@', '[' and ']' in the "
        "user name and password)"
    )
    try:
        parts = urllib.parse.urlsplit(url)
    except ValueError:
        raise ConfigurationError(
            f"invalid PostgreSQL URL {name} (unparsable); {expected}"
        ) from None
    try:
        check_ports(parts)
    except ValueError:
        raise ConfigurationError(
            f"invalid PostgreSQL URL {name} (the port is not a number from 0 to 65535); "
            f"{expected}"
        ) from None
    if parts.scheme.lower() not in ("postgresql", "postgres"):
        raise ConfigurationError(f"PostgreSQL URL {name} must start with postgresql://")


def _take_schema(dsn: str) -> tuple[str, str | None]:
    """``dsn`` without its ``schema`` query parameter, and that parameter's value.

    ``schema`` is the store's option: asyncpg would send an unknown query
    parameter to the server as a setting, which refuses it.
    """
    parts = urllib.parse.urlsplit(dsn)
    pairs = urllib.parse.parse_qsl(parts.query, keep_blank_values=True)
    found = {value for name, value in pairs if name == "schema"}
    if not found:
        return dsn, None
    if len(found) > 1:
        raise ConfigurationError("the PostgreSQL URL names several schemas; give it once")
    query = urllib.parse.urlencode([(name, value) for name, value in pairs if name != "schema"])
    return urllib.parse.urlunsplit(parts._replace(query=query)), found.pop()


async def _keep_session(connection: Any) -> None:
    """The pool's reset on release: nothing to undo, so no statement.

    asyncpg's default sends ``pg_advisory_unlock_all(); CLOSE ALL; UNLISTEN *;
    RESET ALL`` on every release, a second round trip per statement. The
    store's pooled connections never hold session state: each statement
    stands alone (no ``SET``, no cursor, no ``LISTEN``, which has its own
    connection, no session advisory lock, only the schema creation's
    transaction-level one), and asyncpg itself rolls back a transaction left
    open before calling this.
    """


class _Unanswered(TimeoutError):
    """PostgreSQL did not answer a call within the store's bound."""

    def __init__(self, seconds: float) -> None:
        super().__init__(f"no answer within {seconds:g} s")
        self.seconds = seconds


_STATEMENT_METHODS = frozenset({"execute", "executemany", "fetch", "fetchrow", "fetchval"})


class _BoundedPool:
    """The pool as the rate budget uses it: its statement methods bounded like the
    store's calls; anything else (``acquire``, ...) is the pool's own."""

    def __init__(self, store: PostgresTokenStore) -> None:
        self._store = store

    def __getattr__(self, name: str) -> Any:
        if name in _STATEMENT_METHODS:
            return functools.partial(self._store._run, name)
        return getattr(self._store._pool, name)


@attrs.frozen
class _Timeouts:
    connect: float
    command: float


class PostgresTokenStore(BaseTokenStore):
    """Shares tokens between hosts through a PostgreSQL database (9.6 or later; tested on 15).

    See the module docstring for how the lock, fencing and wake-ups work.

    Args:
        dsn: ``postgresql://[user[:password]@]host[:port]/database[?options]``
            (libpq's URL form, as asyncpg reads it; ``PG*`` environment
            variables and ``~/.pgpass`` fill in what is missing). A
            ``schema`` query parameter is the store's, as ``schema=``.
        schema: The schema holding the store's tables (created on first use;
            default ``zoom_s2s``).
        pool_size: Most connections the command pool opens (plus one for ``LISTEN``).
        connect_timeout: Seconds to open a connection.
        command_timeout: Seconds a call waits for PostgreSQL in all (a free
            connection, connecting and the statement included).
        **connect_options: More ``asyncpg.connect`` arguments (``ssl=``,
            ``server_settings=``, ...).

    Raises:
        ConfigurationError: ``asyncpg`` is not installed, or an argument is invalid.
    """

    schemes = ("postgresql", "postgres")

    def __init__(
        self,
        dsn: str,
        *,
        schema: str | None = None,
        pool_size: int = 10,
        connect_timeout: float = 5.0,
        command_timeout: float = 5.0,
        **connect_options: Any,
    ) -> None:
        self._closed = True  # until fully built, for __del__
        self._asyncpg = _import_asyncpg()
        self._name = redact_url(dsn) if isinstance(dsn, str) else "<invalid>"
        if not isinstance(dsn, str):
            raise ConfigurationError(f"dsn must be a PostgreSQL URL string, not {type(dsn)}")
        _check_url(dsn, self._name)
        dsn, url_schema = _take_schema(dsn)
        if schema is not None and url_schema is not None and schema != url_schema:
            raise ConfigurationError(
                f"PostgreSQL URL {self._name} names schema {url_schema!r} but schema= says "
                f"{schema!r}; give it once"
            )
        schema = schema or url_schema or "zoom_s2s"
        try:
            quote_schema(schema)
        except ValueError as exc:
            raise ConfigurationError(str(exc)) from None
        if isinstance(pool_size, bool) or not isinstance(pool_size, int) or pool_size < 1:
            raise ConfigurationError(f"pool_size must be a positive integer, got {pool_size!r}")
        for label, value in (("connect_timeout", connect_timeout),
                             ("command_timeout", command_timeout)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not (
                0 < value < math.inf
            ):
                raise ConfigurationError(f"{label} must be a positive number, got {value!r}")
        accepted = inspect.signature(self._asyncpg.connect).parameters
        unknown = sorted(set(connect_options) - set(accepted) - {"dsn", "loop", "timeout"})
        if unknown or {"dsn", "loop", "timeout", "command_timeout"} & set(connect_options):
            bad = unknown or sorted({"dsn", "loop", "timeout"} & set(connect_options))
            raise ConfigurationError(
                f"unexpected option(s) for PostgresTokenStore: {', '.join(bad)} "
                "(use connect_timeout= and command_timeout= for the timeouts)"
            )
        self._secret_forms = secret_forms(
            *url_secrets(dsn),
            *(value for name, value in connect_options.items()
              if is_secret_parameter(name) and isinstance(value, str)),
        )
        errors: ModuleType = importlib.import_module("asyncpg.exceptions")
        self._exc = errors
        # Instance attribute: asyncpg is imported only once a store is made.
        self.backend_errors = (
            errors.PostgresError,
            errors.InterfaceError,
            errors.InternalClientError,
            OSError,
            asyncio.TimeoutError,
        )
        self._dsn = dsn
        self._schema = schema
        self._sql = Statements(schema)
        #: The fleet's rate budgets, one row per bucket in ``<schema>.rates``.
        self.rate_budget = PostgresRateBudget(self, schema, self._bounded_pool)
        self.webhook_claims = PostgresClaims(self, schema, self._bounded_pool)
        self._pool_size = pool_size
        self._timeouts = _Timeouts(float(connect_timeout), float(command_timeout))
        settings = dict(connect_options.pop("server_settings", None) or {})
        settings.setdefault("application_name", "zoom-s2s")
        self._connect_options = {**connect_options, "server_settings": settings}
        self._pool: Any = None
        self._init_lock: asyncio.Lock | None = None
        self._listener: ChangeListener | None = None
        self._statements = _BoundedPool(self)
        self._abandoned: set[asyncio.Future[Any]] = set()
        self._schema_done = f"schema {schema!r} was already at version {SCHEMA_VERSION}"
        self._closed = False

    @classmethod
    def from_url(cls, url: str, **options: Any) -> PostgresTokenStore:
        """Create a store for ``url`` (``postgresql://`` or ``postgres://``); see the class.

        Raises:
            ConfigurationError: ``asyncpg`` is not installed, or the URL or an option is invalid.
        """
        return cls(url, **options)

    @property
    def name(self) -> str:
        return self._name

    @property
    def schema(self) -> str:
        """The schema holding the store's tables."""
        return self._schema

    def __repr__(self) -> str:
        return f"PostgresTokenStore({self._name!r}, schema={self._schema!r})"

    def needs_closing(self) -> bool:
        return not getattr(self, "_closed", True) and getattr(self, "_pool", None) is not None

    # -- errors -----------------------------------------------------------------

    def error_hint(self, exc: BaseException) -> str:
        return (
            "check that PostgreSQL is running and reachable from this host, and that the "
            f"user may read and write the tables of schema {self._schema!r} "
            "(docs: PostgreSQL store, minimal grants)"
        )

    def translate_error(self, exc: BaseException, action: str) -> StoreError:
        """Credentials refused, grants missing, unreachable, or failed, by exception."""
        errors = self._exc
        detail = self.scrub(str(exc)) or "no detail"
        kind = exc.__class__.__name__
        where = f"PostgreSQL at {self._name}"
        if isinstance(exc, _Unanswered):
            return StoreUnavailableError(
                f"{where} did not answer within {exc.seconds:g} s while {action}; check that "
                "PostgreSQL is running, not overloaded, and reachable from this host "
                "(command_timeout= sets how long a call waits)",
                store=self._name,
            )
        if isinstance(exc, errors.TooManyConnectionsError):
            return StoreUnavailableError(
                f"{where} refused a connection while {action} ({kind}: {detail}); the "
                "server's max_connections or the user's CONNECTION LIMIT is reached: lower "
                f"pool_size (each process opens up to {self._pool_size} + 1 connections) or "
                "raise the limit",
                store=self._name,
            )
        if isinstance(exc, errors.InvalidAuthorizationSpecificationError):
            return StoreUnavailableError(
                f"{where} refused the credentials while {action} ({kind}: {detail}); "
                "check the user and password in the URL (or PGPASSWORD, ~/.pgpass) and "
                "pg_hba.conf",
                store=self._name,
            )
        if isinstance(exc, errors.InsufficientPrivilegeError):
            return StoreError(
                f"{where} refused an operation while {action} ({kind}: {detail}); the user "
                f"needs USAGE on schema {self._schema!r}, SELECT on its table meta and "
                "SELECT, INSERT, UPDATE on its table entries (and DELETE on rates), and "
                "CREATE on the database "
                "if the schema does not exist yet (have an administrator run the SQL "
                f"that 'zoom-s2s store sql --schema {self._schema} --grant-to USER' "
                "prints, or zoom_s2s.stores.postgres.schema_sql() and grants_sql())",
                store=self._name,
            )
        if isinstance(exc, errors.ClientConfigurationError):
            return StoreError(
                f"the URL of {where} has an invalid option ({detail}); fix it in the URL "
                "(libpq's URL form, e.g. ?sslmode=require)",
                store=self._name,
            )
        if isinstance(exc, errors.InvalidCatalogNameError):
            return StoreUnavailableError(
                f"{where} has no such database ({detail}) while {action}; check the "
                "database name in the URL",
                store=self._name,
            )
        if isinstance(
            exc,
            (OSError, asyncio.TimeoutError, errors.InterfaceError,
             errors.PostgresConnectionError, errors.OperatorInterventionError,
             errors.InsufficientResourcesError,
             # A pooled connection whose server died mid-exchange can surface as
             # "cannot switch to state N; another operation is in progress": only
             # the pool uses these connections, one operation at a time.
             errors.InternalClientError),
        ):
            return StoreUnavailableError(
                f"{where} is unreachable while {action} ({kind}: {detail}); check that "
                "PostgreSQL is running and reachable from this host (host, port, "
                "sslmode, pg_hba.conf, max_connections)",
                store=self._name,
            )
        return StoreError(
            f"{where} failed while {action} ({kind}: {detail}); {self.error_hint(exc)}",
            store=self._name,
        )

    # -- plumbing ---------------------------------------------------------------

    def _check_key(self, key: str) -> None:
        if not isinstance(key, str) or not key or len(key) > MAX_KEY_LENGTH:
            raise ConfigurationError(
                f"store key must be a non-empty string of at most {MAX_KEY_LENGTH} "
                f"characters, got {key!r:.80}"
            )

    def _check_open(self) -> None:
        if self._closed:
            raise UsageError(f"{self!r} is closed; create a new store")

    async def _connect_listener(self) -> Any:
        """A connection of its own for ``LISTEN``, named ``<application_name>:listen``."""
        settings = self._connect_options["server_settings"]
        return await self._asyncpg.connect(
            self._dsn,
            timeout=self._timeouts.connect,
            command_timeout=self._timeouts.command,
            **{
                **self._connect_options,
                "server_settings": {
                    **settings, "application_name": f"{settings['application_name']}:listen"
                },
            },
        )

    async def _run(self, method: str, query: str, *args: Any, until: float | None = None) -> Any:
        """``connection.<method>(query, *args)`` on a pooled connection, waited for at
        most ``command_timeout`` in all (or until the loop time ``until``).

        asyncpg's timeouts bound the statement, and the wait for a free
        connection with ``acquire(timeout=)``; but releasing a connection whose
        statement timed out waits for the server to confirm the cancel, which a
        frozen server never does: that release goes on in the background.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._timeouts.command if until is None else until
        try:
            pool = self._pool
            if pool is None:
                pool = await self._bounded(self._ready(), until=deadline)
            connection = await pool.acquire(timeout=max(0.0, deadline - loop.time()))
        except _Unanswered:
            raise
        except asyncio.TimeoutError:
            raise _Unanswered(self._timeouts.command) from None
        try:
            result = await getattr(connection, method)(
                query, *args, timeout=max(0.001, deadline - loop.time())
            )
        except BaseException as exc:
            self._keep(asyncio.ensure_future(pool.release(connection)))
            if isinstance(exc, asyncio.TimeoutError):
                raise _Unanswered(self._timeouts.command) from None
            raise
        await pool.release(connection)
        return result

    async def _bounded_pool(self) -> _BoundedPool:
        if self._pool is None:
            await self._bounded(self._ready())
        return self._statements

    async def _bounded(self, work: Coroutine[Any, Any, Any], *, until: float | None = None) -> Any:
        """``work``'s result, or :class:`_Unanswered` after ``command_timeout`` seconds
        (or at the loop time ``until``); abandoned, ``work`` is cancelled."""
        task = asyncio.ensure_future(work)
        timeout = self._timeouts.command
        if until is not None:
            timeout = max(0.0, until - asyncio.get_running_loop().time())
        try:
            done, _ = await asyncio.wait((task,), timeout=timeout)
        except BaseException:
            task.cancel()
            raise
        if done:
            return task.result()
        task.cancel()
        self._keep(task)
        raise _Unanswered(self._timeouts.command)

    def _keep(self, task: asyncio.Future[Any]) -> None:
        """Hold ``task`` (left to finish in the background) until it is done."""
        self._abandoned.add(task)
        task.add_done_callback(self._forget_abandoned)

    def _forget_abandoned(self, task: asyncio.Future[Any]) -> None:
        self._abandoned.discard(task)
        if not task.cancelled():
            task.exception()  # retrieved: the caller was told already

    async def _ready(self) -> Any:
        """The command pool, created (and the schema checked) on first use."""
        self._check_open()
        if self._pool is not None:
            return self._pool
        if self._init_lock is None:
            self._init_lock = asyncio.Lock()
        async with self._init_lock:
            if self._pool is None:
                pool = self._asyncpg.create_pool(
                    self._dsn,
                    min_size=0,
                    max_size=self._pool_size,
                    max_inactive_connection_lifetime=60.0,
                    reset=_keep_session,
                    timeout=self._timeouts.connect,
                    command_timeout=self._timeouts.command,
                    **self._connect_options,
                )
                await pool
                try:
                    await self._check_schema(pool)
                except self._exc.ClientConfigurationError as exc:
                    await pool.close()
                    raise ConfigurationError(
                        f"asyncpg refused the PostgreSQL URL {self._name}: "
                        f"{self.scrub(str(exc))}; fix it in the URL (or the PG* variables)"
                    ) from None
                except BaseException:
                    with contextlib.suppress(Exception):
                        await asyncio.wait_for(pool.close(), self._timeouts.command)
                    raise
                handoff.prepare()  # here, not in the first hand-off
                self._pool = pool
        return self._pool

    async def _check_schema(self, pool: Any) -> None:
        errors = self._exc
        try:
            version = await pool.fetchval(self._sql.version)
        except (errors.UndefinedTableError, errors.InvalidSchemaNameError):
            version = None
        if version is None:
            await self._create_schema(pool)
            self._schema_done = f"created schema {self._schema!r} at version {SCHEMA_VERSION}"
            version = await pool.fetchval(self._sql.version)
        if str(version) != str(SCHEMA_VERSION):
            raise StoreError(
                f"PostgreSQL at {self._name} holds schema {self._schema!r} at version "
                f"{str(version)[:20]!r}; this zoom-s2s reads version {SCHEMA_VERSION}: "
                "upgrade zoom-s2s, or use another schema=",
                store=self._name,
            )

    async def _create_schema(self, pool: Any) -> None:
        """Create the schema (``schema_sql()``)."""
        logger.info("creating schema %s in %s", self._schema, self._name)
        async with pool.acquire() as connection, connection.transaction():
            # Processes starting together would race on CREATE ... IF NOT EXISTS.
            await connection.execute(
                "SELECT pg_advisory_xact_lock(hashtext($1))", f"zoom_s2s:{self._schema}"
            )
            await connection.execute(schema_sql(self._schema))

    async def init_schema(self) -> str:
        """Create the schema now (if missing) and check its version; done on first use anyway.

        Returns:
            What was done, e.g. ``"created schema 'zoom_s2s' at version 2"``
            (the ``zoom-s2s store init`` command prints it). Another process
            may have created it at the same moment: then it was already there.

        Raises:
            StoreUnavailableError: PostgreSQL cannot be reached, refused the
                credentials, or has no such database.
            StoreError: The user may not create it, or its version is newer than this code.
            ConfigurationError: asyncpg refused the URL (``sslmode``, ...).
        """
        try:
            await self._bounded(self._ready())
        except ZoomS2SError:
            raise
        except self.backend_errors as exc:
            raise self.translate_error(exc, "creating the schema") from exc
        return self._schema_done

    # -- tokens ---------------------------------------------------------------

    def _state(self, key: str, row: Any) -> StoreState:
        """The :class:`StoreState` of a row of the ``read`` or ``acquire`` statement."""
        if row is None:
            return StoreState()
        token = failure = None
        if row["token_data"] is not None:
            token = bounded_token(
                bytes(row["token_data"]), float(row["left_s"]), store=self._name,
                where=f"key {key}", log=logger,
            )
        if row["failure_data"] is not None:
            try:
                failure = FailureRecord.from_json(
                    bytes(row["failure_data"]), age=float(row["age"])
                )
            except ValueError as exc:
                logger.warning("ignoring a corrupt failure record for key %s in %s (%s)",
                               key, self._name, exc)
        return StoreState(token, failure)

    async def read(self, key: str) -> StoreState:
        """The token and the failure record, in one statement."""
        self._check_key(key)
        return self._state(key, await self._run("fetchrow", self._sql.read, key))

    async def write(self, lease: LockLease, token: AccessToken, *, release: bool = False) -> bool:
        """Store ``token`` under ``lease``'s generation, and release if asked (one statement).

        Raises:
            StoreError: ``token`` claims to live longer than
                :data:`MAX_TOKEN_LIFETIME` (or forever); nothing is written.
        """
        self._check_key(lease.key)
        left = seconds_to_keep(token, self._name)
        alive = left > 0
        record = encode_record(token, lease.generation) if alive else None
        row = await self._run(
            "fetchrow",
            self._sql.write,
            lease.key,
            lease.generation,
            token.fingerprint if alive else None,
            record,
            max(0.0, left),
            self._sql.channel,
            lease.owner if release else None,
            handoff.wake_up(lease.key) if record is None else handoff.payload(
                lease.key, owner=lease.owner, generation=lease.generation, record=record,
                left=left,
            ),
        )
        if row is None:
            logger.debug("refused stale write of token %s for %s (generation %d)",
                         token.fingerprint, lease.key, lease.generation)
        return row is not None

    async def delete(self, key: str, *, fingerprint: str) -> bool:
        self._check_key(key)
        row = await self._run("fetchrow", self._sql.delete, key, fingerprint, self._sql.channel)
        return row is not None

    # -- the lock -------------------------------------------------------------

    async def acquire_lock(self, key: str, *, ttl: float) -> LockAttempt:
        """Take the lock and a fencing generation, and read the state, in one statement.

        Raises:
            ConfigurationError: ``ttl`` is not a positive number of at most a day.
        """
        self._check_key(key)
        if (
            isinstance(ttl, bool)
            or not isinstance(ttl, (int, float))
            or not 0 < ttl <= _MAX_LOCK_TTL
        ):
            raise ConfigurationError(f"lock ttl must be > 0 and <= 86400 seconds, got {ttl!r}")
        owner = new_owner()  # one per acquisition, never shared between coroutines
        acquired_at = _clock.monotonic()
        row = await self._run("fetchrow", self._sql.acquire, key, owner, float(ttl))
        state = self._state(key, row)
        if row is None or row["generation"] is None:
            return LockAttempt(None, state)
        lease = LockLease(
            key=key, owner=owner, generation=int(row["generation"]), ttl=ttl,
            acquired_at=acquired_at,
        )
        return LockAttempt(lease, state)

    async def release_lock(self, lease: LockLease) -> bool:
        self._check_key(lease.key)
        row = await self._run(
            "fetchrow",
            self._sql.release, lease.key, lease.owner, lease.generation, self._sql.channel,
        )
        return row is not None

    async def wait_for_change(self, key: str, *, timeout: float) -> StoreState | None:
        """Until ``key``'s lock is released, its token changes, or ``timeout`` (or its TTL).

        Woken by ``NOTIFY``; while the store cannot listen (the connection
        cannot be opened, or stopped answering) it re-reads the lock's row
        every :data:`POLL_INTERVAL` seconds instead.

        Returns:
            The state the lock's holder wrote, when its notification carried
            it sealed under the lease this wait looked at (see
            :mod:`~zoom_s2s.stores.postgres.handoff`); else ``None``: read it.
        """
        self._check_key(key)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        self._check_open()
        answer_by = loop.time() + self._timeouts.command  # listening and the look, together
        change: Change | None = None
        if timeout > 0:
            if self._listener is None:
                self._listener = ChangeListener(
                    self._connect_listener, channel=self._sql.channel, name=self._name,
                    scrub=self.scrub,
                )
            # Registered before looking at the lock, so a release that happens
            # after the look cannot be missed.
            change = await self._listener.change(
                key, timeout=min(deadline, answer_by) - loop.time()
            )
        lock = await self._run("fetchrow", self._sql.lock_left, key, until=answer_by)
        if lock is None or timeout <= 0:
            return None
        # After its TTL, waiters take over.
        deadline = min(deadline, loop.time() + float(lock["left_s"]))
        if change is not None:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(change.event.wait(), max(0.0, deadline - loop.time()))
            return self._handed_off(key, lock, change.sealed)
        while (wait := deadline - loop.time()) > 0:
            await asyncio.sleep(min(POLL_INTERVAL, wait))
            if await self._run("fetchval", self._sql.lock_left, key) is None:
                return None
        return None

    def _handed_off(self, key: str, lock: Any, sealed: str) -> StoreState | None:
        """The state in a notification sealed under the lease of ``lock`` (a row), or ``None``."""
        owner, generation = lock["lock_owner"], lock["lock_generation"]
        if not sealed or owner is None or generation is None:  # a bare wake-up, or a torn row
            return None
        opened = handoff.open_sealed(sealed, key=key, owner=owner, generation=int(generation))
        if opened is None:
            return None
        record, left = opened
        token = bounded_token(record, left, store=self._name, where=f"key {key} (hand-off)",
                              log=logger)
        return None if token is None else StoreState(token)

    # -- failures ---------------------------------------------------------------

    async def write_failure(
        self, lease: LockLease, failure: FailureRecord, *, keep_for: float
    ) -> None:
        """Remember ``failure`` for ``keep_for`` seconds (at least its ``retry_in``, at most a day).

        Ignored (with a debug line) if a token of a later generation was already written.
        """
        self._check_key(lease.key)
        keep = max(keep_for, failure.retry_in)
        if not math.isfinite(keep):
            raise ConfigurationError(f"keep_for must be a finite number of seconds: {keep_for!r}")
        keep = min(MAX_TOKEN_LIFETIME, max(0.001, keep))
        row = await self._run(
            "fetchrow",
            self._sql.write_failure,
            lease.key,
            lease.generation,
            failure.to_json(keep_for=keep).encode(),
            keep,
        )
        if row is None:
            logger.debug("ignored a stale failure record for %s (generation %d)",
                         lease.key, lease.generation)


    async def aclose(self) -> None:
        """Close the listening connection and the pool. Idempotent."""
        if self._closed:
            return
        self._closed = True
        listener, self._listener = self._listener, None
        if listener is not None:
            await listener.aclose()
        pool, self._pool = self._pool, None
        if pool is not None:
            try:
                await asyncio.wait_for(pool.close(), self._timeouts.command)
            except Exception:
                pool.terminate()
