"""RedisTokenStore: tokens shared by every host that reaches one Redis (or Redis Cluster).

Key layout, what is trusted and the ACL: ``docs/backends.rst`` ("Redis").
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import logging
import math
import urllib.parse
from types import ModuleType
from typing import TYPE_CHECKING, Any

import attrs

from ... import _clock
from ..._redact import scrub, secret_forms
from ...errors import ConfigurationError, StoreError, StoreUnavailableError, UsageError
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
from ..url import redact_url, url_secrets
from .budget import RATE_COMMANDS, RedisRateBudget
from .claims import RedisClaims
from .listener import ChangeListener
from .scripts import (
    ACQUIRE_SCRIPT,
    COMMANDS,
    DELETE_SCRIPT,
    MAX_TTL_MS,
    READ_SCRIPT,
    RELEASE_SCRIPT,
    WRITE_FAILURE_SCRIPT,
    WRITE_SCRIPT,
)

if TYPE_CHECKING:
    from redis.asyncio import Redis
    from redis.asyncio.cluster import RedisCluster

__all__ = [
    "CLUSTER_COMMANDS",
    "MAX_TOKEN_LIFETIME",
    "REDIS_COMMANDS",
    "RedisTokenStore",
    "acl_rules",
    "redact_url",
]

logger = logging.getLogger("zoom_s2s.stores.redis")

_INSTALL_HINT = "RedisTokenStore needs the redis package: install zoom-s2s[redis]"
_POLL_MIN, _POLL_MAX = 0.05, 0.25  # wait_for_change's polling without pub/sub

assert MAX_TOKEN_LIFETIME * 1000 == MAX_TTL_MS  # the scripts check the same bound

REDIS_COMMANDS: tuple[str, ...] = (
    "EVALSHA",
    "SCRIPT|LOAD",
    *COMMANDS,
    "SUBSCRIBE",
)
"""Every command the store issues, directly or inside its scripts (ACL names).

``EVALSHA`` runs the scripts, ``SCRIPT|LOAD`` loads one the server does not
know yet, the scripts call ``TYPE GET SET INCR DEL HGET HSET PEXPIRE PTTL
PUBLISH``, and waiters send ``PTTL``, ``HGET`` and ``SUBSCRIBE``. ``PUBLISH``
and ``SUBSCRIBE`` are optional (waiters then poll).
"""


CLUSTER_COMMANDS: tuple[str, ...] = ("CLUSTER|SLOTS", "COMMAND")
"""What a ``RedisCluster`` client also sends: redis-py's discovery of slots and key positions."""


def acl_rules(prefix: str = "zoom_s2s", *, cluster: bool = False) -> str:
    """The ``ACL SETUSER`` rules that allow exactly what a store with ``prefix`` does.

    Args:
        prefix: The store's key prefix.
        cluster: Add what a ``RedisCluster`` client needs (:data:`CLUSTER_COMMANDS`).

    Example::

        ACL SETUSER zoom on >password <acl_rules()>
    """
    commands = (*REDIS_COMMANDS, *RATE_COMMANDS, *(CLUSTER_COMMANDS if cluster else ()))
    return f"~{prefix}:* &{prefix}:* " + " ".join(f"+{command.lower()}" for command in commands)


def _import_redis() -> ModuleType:
    try:
        return importlib.import_module("redis.asyncio")
    except ImportError as exc:
        raise ConfigurationError(_INSTALL_HINT) from exc


def _check_db(url: str, name: str) -> None:
    """Refuse a ``redis://host/<db>`` path that is not a database number.

    redis-py reads ``redis://host/abc`` as database 0 without a word.
    """
    try:
        parts = urllib.parse.urlsplit(url)
    except ValueError:
        return  # redis-py's from_url reports it
    if parts.scheme.lower() not in ("redis", "rediss"):
        return  # unix://: the path is the socket; db comes from the query
    db = urllib.parse.unquote(parts.path).strip("/")
    if db and not (db.isascii() and db.isdigit()):
        raise ConfigurationError(
            # The path is not echoed: with an unescaped '/' in a password, it holds
            # the rest of the password.
            f"Redis URL {name} names a database that is not a number: the path must "
            "be a database number, as in redis://host:6379/0 (percent-encode '/', '?', "
            "'#' and '@' in the password)"
        )


@attrs.frozen
class _Keys:
    token: str
    fence: str
    gen: str
    lock: str
    channel: str
    failure: str


def _client_name(client: Any) -> str:
    """A password-free name for a client someone else built."""
    startup = getattr(getattr(client, "nodes_manager", None), "startup_nodes", None)
    if startup is not None:  # RedisCluster
        first = next(iter(startup.values()), None)
        return f"redis-cluster://{first.host}:{first.port}" if first else "redis-cluster://"
    pool = getattr(client, "connection_pool", None)
    kwargs = getattr(pool, "connection_kwargs", {})
    service = getattr(pool, "service_name", None)
    if isinstance(service, str):  # Sentinel.master_for(service)
        return f"redis-sentinel://{service}/{kwargs.get('db', 0)}"
    if kwargs.get("path"):
        return f"unix://{kwargs['path']}?db={kwargs.get('db', 0)}"
    connection_class = getattr(pool, "connection_class", None)
    scheme = "rediss" if getattr(connection_class, "__name__", "") == "SSLConnection" else "redis"
    host, port = kwargs.get("host", "localhost"), kwargs.get("port", 6379)
    return f"{scheme}://{host}:{port}/{kwargs.get('db', 0)}"


def _client_password(client: Any) -> str | None:
    """The password a caller's client authenticates with, to scrub from messages."""
    kwargs = getattr(getattr(client, "connection_pool", None), "connection_kwargs", {})
    password = kwargs.get("password") if isinstance(kwargs, dict) else None
    return password if isinstance(password, str) and password else None


class RedisTokenStore(BaseTokenStore):
    """Shares tokens between hosts through Redis or Redis Cluster.

    Taking the lock with its fencing generation, writes, compare-and-delete
    and lock release are Lua scripts, so each is atomic and one round trip;
    all keys of one store key share a hash tag, so the scripts also run on
    Redis Cluster. Token keys expire with the token. A reader takes the
    earlier of the recorded expiry and the key's remaining TTL, so a host
    whose clock runs fast cannot stretch a token's life, and neither can the
    TTL (see the module docstring).

    Waiters in :meth:`wait_for_change` are woken by pub/sub: one subscription
    connection per store, created on first use. With a client that has no
    ``pubsub()`` (redis-py 5's ``RedisCluster``) or a user without channel
    rights they poll every 0.05-0.25 s.

    Args:
        client: A ``redis.asyncio.Redis`` or ``redis.asyncio.cluster.RedisCluster``.
        prefix: First part of every key.
        owns_client: Close ``client`` in :meth:`aclose`.

    Raises:
        ConfigurationError: ``redis`` is not installed, or ``prefix`` is invalid.
    """

    schemes = ("redis", "rediss", "unix")

    def __init__(
        self,
        client: Redis | RedisCluster,
        *,
        prefix: str = "zoom_s2s",
        owns_client: bool = False,
    ) -> None:
        self._closed = True  # until fully built, for __del__
        self._owns_client = owns_client
        _import_redis()
        if not prefix or "{" in prefix or "}" in prefix:
            raise ConfigurationError(f"prefix must be non-empty, without braces: {prefix!r}")
        self._exceptions = importlib.import_module("redis.exceptions")
        # A client of valkey-py (redis-py's fork) raises the same errors as its own classes.
        self._exception_modules = [self._exceptions]
        if type(client).__module__.partition(".")[0] == "valkey":
            self._exception_modules.append(importlib.import_module("valkey.exceptions"))
        # Instance attribute: redis is imported only once a store is made.
        self.backend_errors = (
            *self._errors("RedisError"),
            *self._errors("RedisClusterException"),  # not a RedisError: "no reachable node"
            OSError,
            asyncio.TimeoutError,
        )
        self._client = client
        self._prefix = prefix
        self._name = _client_name(client)
        self._secret_forms = secret_forms(_client_password(client))
        self._acquire_script = client.register_script(ACQUIRE_SCRIPT)
        self._read_script = client.register_script(READ_SCRIPT)
        self._write_script = client.register_script(WRITE_SCRIPT)
        self._write_failure_script = client.register_script(WRITE_FAILURE_SCRIPT)
        self._delete_script = client.register_script(DELETE_SCRIPT)
        self._release_script = client.register_script(RELEASE_SCRIPT)
        #: The fleet's rate budgets, kept in Redis beside the tokens.
        self.rate_budget = RedisRateBudget(self, client, prefix, self._ready)
        self.webhook_claims = RedisClaims(self, client, prefix, self._ready)
        self._use_pubsub = callable(getattr(client, "pubsub", None))
        self._listener: ChangeListener | None = None  # created on the first wait
        # A RedisCluster client must learn the slot map once before commands run
        # concurrently (redis-py loses replies otherwise); plain clients need nothing.
        self._cluster = getattr(client, "nodes_manager", None) is not None
        self._initialized = not self._cluster
        self._init_lock: asyncio.Lock | None = None
        self._closed = False

    @classmethod
    def from_url(
        cls,
        url: str,
        *,
        prefix: str = "zoom_s2s",
        cluster: bool = False,
        max_connections: int | None = None,
        **options: Any,
    ) -> RedisTokenStore:
        """Create a store with its own client for ``url``; :meth:`aclose` closes it.

        Args:
            url: ``redis://[user:password@]host[:port][/db]``, ``rediss://...``
                (TLS) or ``unix:///path/redis.sock?db=0``.
            prefix: First part of every key.
            cluster: Connect with ``RedisCluster`` (``url`` names one node).
            max_connections: At most this many connections to Redis (pub/sub
                included); a command waits for a free one (redis-py's
                ``BlockingConnectionPool``). Default: one per concurrent command.
                Not for Cluster.
            **options: Passed to the client's ``from_url``; defaults
                ``socket_timeout=5``, ``socket_connect_timeout=5`` and (not for
                Cluster) two quick retries, so an outage is reported within
                seconds (about three socket timeouts at most).

        Raises:
            ConfigurationError: ``redis`` is not installed, or the URL is
                invalid (including a database path that is not a number).
        """
        redis_asyncio = _import_redis()
        name, forms = redact_url(url), secret_forms(*url_secrets(url))
        _check_db(url, name)
        options.setdefault("socket_timeout", 5.0)
        options.setdefault("socket_connect_timeout", 5.0)
        if not cluster:
            retry = importlib.import_module("redis.asyncio.retry")
            backoff = importlib.import_module("redis.backoff")
            options.setdefault("retry", retry.Retry(backoff.ExponentialBackoff(0.5, 0.05), 2))
        if max_connections is not None and cluster:
            raise ConfigurationError("max_connections is not supported with cluster=True")
        factory = redis_asyncio.RedisCluster if cluster else redis_asyncio.Redis
        try:
            if max_connections is not None:
                pool = redis_asyncio.BlockingConnectionPool.from_url(
                    url, max_connections=max_connections, **options
                )
                client = redis_asyncio.Redis.from_pool(pool)
            else:
                client = factory.from_url(url, **options)
        except (ValueError, TypeError, importlib.import_module("redis").RedisError) as exc:
            raise ConfigurationError(
                f"invalid Redis URL {name} ({scrub(str(exc), forms)}); expected "
                "redis://[user:password@]host[:port][/db], rediss://... or unix:///path?db=0"
            ) from None
        store = cls(client, prefix=prefix, owns_client=True)
        store._name = name
        store._secret_forms = tuple(sorted({*forms, *store._secret_forms}, key=len, reverse=True))
        return store

    @property
    def name(self) -> str:
        return self._name

    def __repr__(self) -> str:
        return f"RedisTokenStore({self._name!r}, prefix={self._prefix!r})"

    def needs_closing(self) -> bool:
        return not getattr(self, "_closed", True) and self._owns_client

    # -- errors -----------------------------------------------------------------

    def error_hint(self, exc: BaseException) -> str:
        return (
            "check that it is a writable primary running Redis >= 6 with Lua scripting, "
            f"and that the ACL allows: {acl_rules(self._prefix, cluster=self._cluster)}"
        )

    def _errors(self, name: str) -> tuple[type[BaseException], ...]:
        """redis-py's exception class ``name``, and valkey-py's if the client is one."""
        found = [getattr(self._exception_modules[0], name)]
        for module in self._exception_modules[1:]:
            found.append(getattr(module, name.replace("Redis", "Valkey")))
        return tuple(found)

    def translate_error(self, exc: BaseException, action: str) -> StoreError:
        """Credentials refused, unreachable, or failed (with the ACL hint), by exception."""
        detail = self.scrub(str(exc)) or "no detail"
        kind = exc.__class__.__name__
        if isinstance(exc, self._errors("AuthenticationError")):
            return StoreUnavailableError(
                f"Redis at {self._name} refused the credentials while {action} "
                f"({detail}); check the user and password in the Redis URL",
                store=self._name,
            )
        cluster_errors = (*self._errors("RedisClusterException"), *self._errors("ClusterError"))
        if isinstance(exc, cluster_errors):
            # Also what redis-py says when the ACL refuses its cluster discovery.
            return StoreUnavailableError(
                f"Redis Cluster at {self._name} is unreachable while {action} ({kind}: "
                f"{detail}); check that the cluster is up and reachable from this host, "
                f"and that the ACL allows: {acl_rules(self._prefix, cluster=True)}",
                store=self._name,
            )
        if isinstance(exc, (*self._errors("ConnectionError"), *self._errors("TimeoutError"),
                            OSError, asyncio.TimeoutError)):
            return StoreUnavailableError(
                f"Redis at {self._name} is unreachable while {action} ({kind}: {detail}); "
                "check that Redis is running and reachable from this host, and the "
                "URL's host, port and TLS",
                store=self._name,
            )
        return StoreError(
            f"Redis at {self._name} failed while {action} ({kind}: {detail}); "
            f"{self.error_hint(exc)}",
            store=self._name,
        )

    # -- plumbing ---------------------------------------------------------------

    def _keys(self, key: str) -> _Keys:
        if "{" in key or "}" in key:
            raise ConfigurationError(f"store key {key!r} must not contain braces")
        base = f"{self._prefix}:{{{key}}}"
        return _Keys(f"{base}:token", f"{base}:fence", f"{base}:gen", f"{base}:lock",
                     f"{base}:changed", f"{base}:failure")

    async def _ready(self) -> None:
        if self._closed:
            raise UsageError(f"{self!r} is closed; create a new store")
        if self._initialized:
            return
        if self._init_lock is None:
            self._init_lock = asyncio.Lock()
        async with self._init_lock:
            if not self._initialized:
                await self._client.initialize()
                self._initialized = True

    # -- tokens ---------------------------------------------------------------

    def _state(self, keys: _Keys, reply: list[Any]) -> StoreState:
        """The :class:`StoreState` of a script's ``data, pttl, failure, failure_pttl``."""
        data, pttl, failure_data, failure_pttl = reply[0], int(reply[1]), reply[2], int(reply[3])
        token = None
        if data is None:
            if pttl == -3 or pttl >= -1:
                logger.warning("%s in %s is not a token record; treating as a miss",
                               keys.token, self._name)
        elif pttl == -1:
            logger.warning("token at %s in %s has no TTL (not written by zoom-s2s?); "
                           "treating as a miss", keys.token, self._name)
        elif pttl >= 0:
            token = bounded_token(
                data, pttl / 1000, store=self._name, where=keys.token, log=logger
            )
        return StoreState(token, self._failure(keys, failure_data, failure_pttl))

    def _failure(self, keys: _Keys, data: Any, pttl: int) -> FailureRecord | None:
        if data is None:
            if pttl == -3:
                logger.warning("%s in %s is not a failure record; ignoring it",
                               keys.failure, self._name)
            return None
        if pttl < 0:
            logger.warning("failure record at %s in %s has no TTL (not written by "
                           "zoom-s2s?); ignoring it", keys.failure, self._name)
            return None
        try:
            return FailureRecord.from_json(data, ttl_left=pttl / 1000)
        except ValueError as exc:
            logger.warning("ignoring a corrupt failure record at %s in %s (%s)",
                           keys.failure, self._name, exc)
            return None

    async def read(self, key: str) -> StoreState:
        """The token and the failure record, in one script."""
        keys = self._keys(key)
        await self._ready()
        return self._state(keys, await self._read_script(keys=[keys.token, keys.failure]))

    async def write(self, lease: LockLease, token: AccessToken, *, release: bool = False) -> bool:
        """Store ``token`` under ``lease``'s generation, and release if asked (one script).

        Raises:
            StoreError: ``token`` claims to live longer than
                :data:`MAX_TOKEN_LIFETIME` (or forever); nothing is written.
        """
        keys = self._keys(lease.key)
        left = seconds_to_keep(token, self._name)
        ttl_ms = max(0, int(left * 1000))
        record = encode_record(token, lease.generation)
        await self._ready()
        written = await self._write_script(
            keys=[keys.token, keys.fence, keys.failure, keys.lock],
            args=[lease.generation, record, token.fingerprint, ttl_ms, keys.channel,
                  f"{lease.owner}:{lease.generation}" if release else ""],
        )
        if not written:
            logger.debug("refused stale write of token %s for %s (generation %d)",
                         token.fingerprint, lease.key, lease.generation)
        return bool(written)

    async def delete(self, key: str, *, fingerprint: str) -> bool:
        keys = self._keys(key)
        await self._ready()
        deleted = await self._delete_script(keys=[keys.token], args=[fingerprint, keys.channel])
        return bool(deleted)

    # -- the lock -------------------------------------------------------------

    async def acquire_lock(self, key: str, *, ttl: float) -> LockAttempt:
        """Take the lock and a fencing generation, and read the state, in one script.

        Raises:
            ConfigurationError: ``ttl`` is not a positive number of at most a day.
        """
        keys = self._keys(key)
        if (
            isinstance(ttl, bool)
            or not isinstance(ttl, (int, float))
            or not 0 < ttl <= MAX_TTL_MS / 1000
        ):
            raise ConfigurationError(f"lock ttl must be > 0 and <= 86400 seconds, got {ttl!r}")
        ttl_ms = max(1, math.ceil(ttl * 1000))  # never shorter in Redis than in the lease
        owner = new_owner()  # one per acquisition, never shared between coroutines
        await self._ready()
        acquired_at = _clock.monotonic()
        reply = await self._acquire_script(
            keys=[keys.lock, keys.gen, keys.fence, keys.token, keys.failure],
            args=[owner, ttl_ms],
        )
        generation, state = int(reply[0]), self._state(keys, reply[1:])
        if generation <= 0:
            return LockAttempt(None, state)
        lease = LockLease(
            key=key, owner=owner, generation=generation, ttl=ttl, acquired_at=acquired_at
        )
        return LockAttempt(lease, state)

    async def release_lock(self, lease: LockLease) -> bool:
        keys = self._keys(lease.key)
        await self._ready()
        released = await self._release_script(
            keys=[keys.lock], args=[f"{lease.owner}:{lease.generation}", keys.channel]
        )
        return bool(released)

    async def wait_for_change(self, key: str, *, timeout: float) -> StoreState | None:
        keys = self._keys(key)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        await self._ready()
        event: asyncio.Event | None = None
        if self._use_pubsub and timeout > 0:
            if self._listener is None:
                self._listener = ChangeListener(self._client, name=self._name)
            # Unconfirmed (refused by an ACL, connection lost): poll this time.
            if await self._listener.subscribe(keys.channel, timeout):
                # Registered before looking at the lock, so a release that
                # happens after the look cannot be missed.
                event = self._listener.event(keys.channel)
        pttl = int(await self._client.pttl(keys.lock))
        if pttl == -2:
            return None
        if pttl >= 0:  # after the lock's TTL waiters may take over
            deadline = min(deadline, loop.time() + pttl / 1000)
        if event is not None:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(event.wait(), max(0.0, deadline - loop.time()))
            return None
        # No pub/sub (refused by an ACL, or a client without it such as
        # redis-py 5's RedisCluster): poll for a release or a new token.
        written = await self._client.hget(keys.token, "fp")
        delay = _POLL_MIN
        while (remaining := deadline - loop.time()) > 0:
            await asyncio.sleep(min(delay, remaining))
            delay = min(delay * 1.5, _POLL_MAX)
            if int(await self._client.pttl(keys.lock)) == -2:
                return None
            if await self._client.hget(keys.token, "fp") != written:
                return None
        return None

    # -- failures ---------------------------------------------------------------

    async def write_failure(
        self, lease: LockLease, failure: FailureRecord, *, keep_for: float
    ) -> None:
        """Remember ``failure`` for ``keep_for`` seconds (at least its ``retry_in``, at most a day).

        Ignored (with a debug line) if a token of a later generation was already written.
        """
        keys = self._keys(lease.key)
        keep = max(keep_for, failure.retry_in)
        if not math.isfinite(keep):
            raise ConfigurationError(f"keep_for must be a finite number of seconds: {keep_for!r}")
        keep_ms = min(MAX_TTL_MS, max(1, math.ceil(keep * 1000)))
        await self._ready()
        stored = await self._write_failure_script(
            keys=[keys.failure, keys.fence],
            args=[lease.generation, failure.to_json(keep_for=keep_ms / 1000), keep_ms],
        )
        if not stored:
            logger.debug("ignored a stale failure record for %s (generation %d)",
                         lease.key, lease.generation)


    async def aclose(self) -> None:
        """Stop the pub/sub reader, close its connection and, if owned, the client."""
        if self._closed:
            return
        self._closed = True
        listener, self._listener = self._listener, None
        if listener is not None:
            await listener.aclose()
        if self._owns_client:
            with contextlib.suppress(Exception):
                await self._client.aclose()
