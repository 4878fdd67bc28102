"""RedisTokenStore: tokens shared by every host that reaches one Redis (or Redis Cluster).

Keys for a store key ``k`` share the hash tag ``{k}``, so every script touches
one Cluster slot::

    <prefix>:{k}:token    HASH {fp: token fingerprint, gen: generation, data: encode_record}
                          with PEXPIRE = the token's remaining lifetime
    <prefix>:{k}:fence    highest generation written (no TTL: a deleted token still fences)
    <prefix>:{k}:gen      generation counter (INCR)
    <prefix>:{k}:lock     lock owner, SET NX PX
    <prefix>:{k}:changed  pub/sub channel: "written", "deleted" or "released"
    <prefix>:{k}:failure  the last failed fetch (FailureRecord JSON), PX = its keep_for()

The fingerprint sits beside the record so compare-and-delete works in Lua
even when the record itself is opaque (e.g. encrypted).

``redis`` is imported only when a store is created: ``import zoom_s2s`` works
without it, and creating a store without it raises
:class:`~zoom_s2s.ConfigurationError`.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import logging
import time
import urllib.parse
import warnings
from collections.abc import Iterator
from types import ModuleType
from typing import TYPE_CHECKING, Any

import attrs

from ..errors import ConfigurationError, StoreError, StoreUnavailableError
from ..models import AccessToken
from ._redis_listener import ChangeListener
from ._redis_scripts import (
    DELETE_SCRIPT,
    NEXT_GENERATION_SCRIPT,
    READ_SCRIPT,
    RELEASE_SCRIPT,
    WRITE_SCRIPT,
)
from .base import FailureRecord, LockLease, decode_record, encode_record, new_owner

if TYPE_CHECKING:
    from redis.asyncio import Redis
    from redis.asyncio.cluster import RedisCluster

__all__ = ["RedisTokenStore", "redact_url"]

logger = logging.getLogger("zoom_s2s.stores.redis")

_INSTALL_HINT = "RedisTokenStore needs the redis package: install zoom-s2s[redis]"
_POLL_MIN, _POLL_MAX = 0.05, 0.25  # wait_for_change's polling without pub/sub


def _import_redis() -> ModuleType:
    try:
        return importlib.import_module("redis.asyncio")
    except ImportError as exc:
        raise ConfigurationError(_INSTALL_HINT) from exc


def redact_url(url: str) -> str:
    """Return ``url`` without its password (in the user part or a ``password`` query)."""
    try:
        parts = urllib.parse.urlsplit(url)
        netloc = parts.netloc
        if "@" in netloc:
            user_info, host = netloc.rsplit("@", 1)
            user = user_info.split(":", 1)[0]
            netloc = f"{user}:***@{host}" if ":" in user_info else f"{user}@{host}"
        query = urllib.parse.urlencode(
            [
                (name, "***" if name.lower() == "password" else value)
                for name, value in urllib.parse.parse_qsl(parts.query, keep_blank_values=True)
            ],
            safe="*",
        )
        return f"{parts.scheme}://{netloc}{parts.path}" + (f"?{query}" if query else "")
    except ValueError:
        return "<unparsable URL>"


def _url_secrets(url: str) -> tuple[str, ...]:
    """The password of ``url`` as written and unquoted, to scrub from messages."""
    try:
        parts = urllib.parse.urlsplit(url)
        found = [parts.password or ""]
        found += [v for k, v in urllib.parse.parse_qsl(parts.query) if k.lower() == "password"]
    except ValueError:
        return ()
    found += [urllib.parse.unquote(secret) for secret in found]
    return tuple(sorted({secret for secret in found if secret}, key=len, reverse=True))


def _scrub(text: str, secrets: tuple[str, ...]) -> str:
    for secret in secrets:
        text = text.replace(secret, "***")
    return text


@attrs.frozen
class _Keys:
    token: str
    fence: str
    gen: str
    lock: str
    channel: str
    failure: str


def _describe(client: Any) -> str:
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


class RedisTokenStore:
    """Shares tokens between hosts through Redis or Redis Cluster.

    Writes, compare-and-delete and lock release are Lua scripts, so each is
    atomic; all keys of one store key share a hash tag, so the scripts also
    run on Redis Cluster. Token keys expire with the token. A reader
    recomputes ``expires_at`` from the key's remaining TTL, so hosts whose
    clocks disagree still agree on when the token expires.

    Waiters in :meth:`wait_for_change` are woken by pub/sub: one subscription
    connection per store, created on first use. With a client that has no
    ``pubsub()`` (old redis-py ``RedisCluster``) they poll every 0.05-0.25 s.

    Args:
        client: A ``redis.asyncio.Redis`` or ``redis.asyncio.cluster.RedisCluster``.
        prefix: First part of every key.
        owns_client: Close ``client`` in :meth:`aclose`.

    Raises:
        ConfigurationError: ``redis`` is not installed, or ``prefix`` is invalid.
    """

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
        self._client = client
        self._prefix = prefix
        self._name = _describe(client)
        self._secrets: tuple[str, ...] = ()  # the URL's password, scrubbed from messages
        self._read_script = client.register_script(READ_SCRIPT)
        self._write_script = client.register_script(WRITE_SCRIPT)
        self._delete_script = client.register_script(DELETE_SCRIPT)
        self._release_script = client.register_script(RELEASE_SCRIPT)
        self._next_generation_script = client.register_script(NEXT_GENERATION_SCRIPT)
        self._use_pubsub = callable(getattr(client, "pubsub", None))
        self._listener: ChangeListener | None = None  # created on the first wait
        # A RedisCluster client must learn the slot map once before commands run
        # concurrently (redis-py loses replies otherwise); plain clients need nothing.
        self._initialized = getattr(client, "nodes_manager", None) is None
        self._init_lock: asyncio.Lock | None = None
        self._closed = False

    @classmethod
    def from_url(
        cls, url: str, *, prefix: str = "zoom_s2s", cluster: bool = False, **options: Any
    ) -> RedisTokenStore:
        """Create a store with its own client for ``url``; :meth:`aclose` closes it.

        Args:
            url: ``redis://[user:password@]host[:port][/db]``, ``rediss://...``
                (TLS) or ``unix:///path/redis.sock?db=0``.
            prefix: First part of every key.
            cluster: Connect with ``RedisCluster`` (``url`` names one node).
            **options: Passed to the client's ``from_url``; defaults
                ``socket_timeout=5``, ``socket_connect_timeout=5`` and (not for
                Cluster) two quick retries, so an outage is reported within seconds.

        Raises:
            ConfigurationError: ``redis`` is not installed, or the URL is invalid.
        """
        redis_asyncio = _import_redis()
        options.setdefault("socket_timeout", 5.0)
        options.setdefault("socket_connect_timeout", 5.0)
        if not cluster:
            retry = importlib.import_module("redis.asyncio.retry")
            backoff = importlib.import_module("redis.backoff")
            options.setdefault("retry", retry.Retry(backoff.ExponentialBackoff(0.5, 0.05), 2))
        name, secrets_in_url = redact_url(url), _url_secrets(url)
        factory = redis_asyncio.RedisCluster if cluster else redis_asyncio.Redis
        try:
            client = factory.from_url(url, **options)
        except (ValueError, TypeError, importlib.import_module("redis").RedisError) as exc:
            raise ConfigurationError(
                f"invalid Redis URL {name} ({_scrub(str(exc), secrets_in_url)}); expected "
                "redis://[user:password@]host[:port][/db], rediss://... or unix:///path?db=0"
            ) from None
        store = cls(client, prefix=prefix, owns_client=True)
        store._name = name
        store._secrets = secrets_in_url
        return store

    @property
    def name(self) -> str:
        return self._name

    def __repr__(self) -> str:
        return f"RedisTokenStore({self._name!r}, prefix={self._prefix!r})"

    def __del__(self) -> None:
        if not getattr(self, "_closed", True) and self._owns_client:
            warnings.warn(
                f"{self!r} was not closed; call 'await store.aclose()'",
                ResourceWarning,
                stacklevel=1,
            )

    def _keys(self, key: str) -> _Keys:
        if "{" in key or "}" in key:
            raise ConfigurationError(f"store key {key!r} must not contain braces")
        base = f"{self._prefix}:{{{key}}}"
        return _Keys(f"{base}:token", f"{base}:fence", f"{base}:gen", f"{base}:lock",
                     f"{base}:changed", f"{base}:failure")

    async def _ready(self) -> None:
        if self._initialized:
            return
        if self._init_lock is None:
            self._init_lock = asyncio.Lock()
        async with self._init_lock:
            if not self._initialized:
                await self._client.initialize()
                self._initialized = True

    @contextlib.contextmanager
    def _errors(self, action: str) -> Iterator[None]:
        """The one place where Redis exceptions become store errors."""
        if self._closed:
            raise RuntimeError(f"{self!r} is closed; create a new store")
        errors = self._exceptions
        try:
            yield
        except errors.AuthenticationError as exc:
            raise StoreUnavailableError(
                f"Redis at {self._name} refused the credentials while {action} "
                f"({self._scrub(exc)}); check the user and password in the Redis URL",
                store=self._name,
            ) from exc
        except (errors.ConnectionError, errors.TimeoutError, OSError) as exc:
            raise StoreUnavailableError(
                f"Redis at {self._name} is unreachable while {action} "
                f"({exc.__class__.__name__}: {self._scrub(exc)}); check that Redis is "
                "running and reachable from this host, and the URL's host, port and TLS",
                store=self._name,
            ) from exc
        except errors.RedisError as exc:
            raise StoreError(
                f"Redis at {self._name} failed while {action} "
                f"({exc.__class__.__name__}: {self._scrub(exc)}); check that it is a writable "
                "primary, runs Redis >= 6 with Lua scripting, and that the ACL allows "
                "EVALSHA, SET, PTTL, PUBLISH and SUBSCRIBE",
                store=self._name,
            ) from exc

    def _scrub(self, exc: BaseException) -> str:
        return _scrub(str(exc), self._secrets)

    # -- tokens ---------------------------------------------------------------

    async def read(self, key: str) -> AccessToken | None:
        keys = self._keys(key)
        with self._errors("reading the token"):
            await self._ready()
            data, pttl = await self._read_script(keys=[keys.token])
        if data is None:
            if pttl == -3 or pttl >= -1:
                logger.warning("%s in %s is not a token record; treating as a miss",
                               keys.token, self._name)
            return None
        try:
            token, _generation = decode_record(data)
        except ValueError as exc:
            logger.warning("token in %s at %s is corrupt (%s); treating as a miss",
                           self._name, keys.token, exc)
            return None
        now = time.time()
        if pttl >= 0:
            # Trust Redis's clock over the writer's: shift both times by the skew.
            shift = (now + pttl / 1000) - token.expires_at
            token = attrs.evolve(token, expires_at=token.expires_at + shift,
                                 issued_at=token.issued_at + shift)
        return token if token.expires_at > now else None

    async def write(self, key: str, token: AccessToken, *, generation: int) -> bool:
        keys = self._keys(key)
        ttl_ms = max(0, int((token.expires_at - time.time()) * 1000))
        record = encode_record(token, generation)
        with self._errors("writing the token"):
            await self._ready()
            written = await self._write_script(
                keys=[keys.token, keys.fence],
                args=[generation, record, token.fingerprint, ttl_ms, keys.channel],
            )
        if not written:
            logger.debug("refused stale write of token %s for %s (generation %d)",
                         token.fingerprint, key, generation)
        return bool(written)

    async def delete(self, key: str, *, fingerprint: str) -> bool:
        keys = self._keys(key)
        with self._errors("deleting the token"):
            await self._ready()
            deleted = await self._delete_script(keys=[keys.token], args=[fingerprint, keys.channel])
        return bool(deleted)

    async def next_generation(self, key: str) -> int:
        keys = self._keys(key)
        with self._errors("taking a generation number"):
            await self._ready()
            generation = await self._next_generation_script(keys=[keys.gen, keys.fence])
        return int(generation)

    # -- the lock -------------------------------------------------------------

    async def acquire_lock(self, key: str, *, ttl: float) -> LockLease | None:
        keys = self._keys(key)
        owner = new_owner()  # one per acquisition, never shared between coroutines
        with self._errors("taking the lock"):
            await self._ready()
            taken = await self._client.set(keys.lock, owner, nx=True, px=max(1, int(ttl * 1000)))
            if not taken:
                # The client may have retried a SET whose reply was lost: then the
                # first SET was ours and the retry saw our own lock.
                taken = await self._client.get(keys.lock) in (owner, owner.encode())
        return LockLease(key=key, owner=owner, ttl=ttl) if taken else None

    async def release_lock(self, lease: LockLease) -> bool:
        keys = self._keys(lease.key)
        with self._errors("releasing the lock"):
            await self._ready()
            released = await self._release_script(
                keys=[keys.lock], args=[lease.owner, keys.channel]
            )
        return bool(released)

    async def wait_for_change(self, key: str, *, timeout: float) -> None:
        keys = self._keys(key)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        with self._errors("waiting for the lock"):
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
                return
            if pttl >= 0:  # after the lock's TTL waiters may take over
                deadline = min(deadline, loop.time() + pttl / 1000)
            if event is not None:
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(event.wait(), max(0.0, deadline - loop.time()))
                return
            # No pub/sub (refused by an ACL, or a client without it such as
            # redis-py 5's RedisCluster): poll for a release or a new token.
            written = await self._client.hget(keys.token, "fp")
            delay = _POLL_MIN
            while (remaining := deadline - loop.time()) > 0:
                await asyncio.sleep(min(delay, remaining))
                delay = min(delay * 1.5, _POLL_MAX)
                if not await self._client.exists(keys.lock):
                    return
                if await self._client.hget(keys.token, "fp") != written:
                    return

    async def read_failure(self, key: str) -> FailureRecord | None:
        keys = self._keys(key)
        with self._errors("reading the failure record"):
            await self._ready()
            data = await self._client.get(keys.failure)
        if data is None:
            return None
        try:
            return FailureRecord.from_json(data)
        except ValueError:
            logger.warning("ignoring a corrupt failure record at %s", keys.failure)
            return None

    async def write_failure(self, key: str, failure: FailureRecord | None) -> None:
        keys = self._keys(key)
        with self._errors("remembering a failed fetch"):
            await self._ready()
            if failure is None:
                await self._client.delete(keys.failure)
            else:
                ttl_ms = max(1, int(failure.keep_for(time.time()) * 1000))
                await self._client.set(keys.failure, failure.to_json(), px=ttl_ms)

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
