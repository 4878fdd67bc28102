"""The TokenStore protocol: what a place that shares tokens between processes must offer.

A store holds, per *key*, at most one token, a fencing generation, a lock and
a failure record. The protocol is as coarse as the manager's algorithm allows:
a read returns the token and the fleet's failure record together
(:class:`StoreState`), and taking the lock returns them too, so a cold fetch
is read, lock, write, release. ``docs/stores.rst`` walks a store author
through it; ``docs/architecture.rst`` says why each rule exists.
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import math
import secrets
import warnings
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, ClassVar, NamedTuple, Protocol, TypeVar, runtime_checkable

import attrs

from .. import _clock
from .._redact import scrub as _scrub
from ..errors import ConfigurationError, StoreError, StoreUnavailableError, ZoomS2SError
from ..models import MAX_TOKEN_LIFETIME, AccessToken

__all__ = [
    "BaseTokenStore",
    "Capability",
    "FailureRecord",
    "LockAttempt",
    "LockLease",
    "StoreState",
    "TokenStore",
    "bounded_token",
    "decode_record",
    "encode_record",
    "new_owner",
    "seconds_to_keep",
]

# Bounds on what a failure record read from a store may say: a neighbour's
# record can make the fleet wait, so it is validated like any input.
MAX_FAILURES = 1_000_000
MAX_MESSAGE = 500
MAX_ERROR_TYPE = 64


def new_owner() -> str:
    """A random owner value for one lock acquisition (never shared between coroutines)."""
    return secrets.token_hex(16)


@attrs.frozen
class LockLease:
    """Proof of one lock acquisition: the only thing that lets a process write.

    Attributes:
        key: The store key the lock guards.
        owner: Random value identifying this acquisition.
        generation: The fencing number taken with the lock: higher than any
            generation handed out or written before for ``key``. A write with
            a lower generation than one already written is refused.
        ttl: Seconds the lock lives unless released.
        acquired_at: ``_clock.monotonic()`` just *before* the acquiring request
            was sent, so :meth:`remaining` errs early, never late.
        handle: Store-private state (an OS lock object, ...); opaque to callers.
    """

    key: str
    owner: str
    generation: int
    ttl: float
    acquired_at: float
    handle: object = attrs.field(default=None, eq=False, repr=False)

    def remaining(self, now: float | None = None) -> float:
        """Seconds until the lock lapses (negative after), on this process's monotonic clock."""
        return self.acquired_at + self.ttl - (_clock.monotonic() if now is None else now)

    def held(self, now: float | None = None) -> bool:
        """Whether the lock is certainly still ours (it has not lapsed)."""
        return self.remaining(now) > 0


def _bounded_float(value: object, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{name} is not a number")
    number = float(value)
    if not math.isfinite(number) or number < 0:
        raise ValueError(f"{name} is not a finite, non-negative number")
    return number


@attrs.frozen
class FailureRecord:
    """A failed token fetch, remembered in the store so that the fleet backs off together.

    Times are *relative*: a record says how long the fleet should still wait,
    never an absolute moment on some host's clock. A store measures the time
    since the record was written with its own clock (Redis: the key's TTL; a
    file: one host's clock; memory: the monotonic clock) and returns the record
    with :attr:`retry_in` reduced accordingly, so a writer whose clock is an
    hour fast cannot make anyone wait an hour.

    Attributes:
        failures: Consecutive failed fetches across the fleet.
        retry_in: Seconds from now before which no process should ask Zoom again.
        error_type: Class name of the error (``"TokenEndpointError"``, ...).
        message: The error's message (scrubbed of secrets before it is stored).
    """

    failures: int
    retry_in: float
    error_type: str
    message: str

    def aged(self, elapsed: float) -> FailureRecord:
        """This record as seen ``elapsed`` seconds after it was written (never longer)."""
        left = min(self.retry_in, max(0.0, self.retry_in - max(0.0, elapsed)))
        return attrs.evolve(self, retry_in=left)

    def to_json(self, *, keep_for: float) -> str:
        """Serialise for a byte-oriented store that keeps the record ``keep_for`` seconds."""
        return json.dumps(
            {
                "v": 2,
                "failures": self.failures,
                "retry_in": self.retry_in,
                "keep_for": keep_for,
                "error_type": self.error_type,
                "message": self.message,
            },
            separators=(",", ":"),
        )

    @classmethod
    def from_json(
        cls, data: bytes | str, *, ttl_left: float | None = None, age: float | None = None
    ) -> FailureRecord:
        """Read back :meth:`to_json`'s output, aged by the store's own measure of time.

        Args:
            data: What :meth:`to_json` returned.
            ttl_left: Seconds the store will still keep the record (a Redis
                ``PTTL``): the record's age is then ``keep_for - ttl_left``.
            age: Seconds since the record was written, if the store knows it directly.

        Raises:
            ValueError: Not such a record, or values out of bounds (treat as no record).
        """
        try:
            raw = json.loads(data)
        except (ValueError, UnicodeDecodeError, RecursionError) as exc:
            raise ValueError(f"not valid JSON ({exc.__class__.__name__})") from None
        if not isinstance(raw, dict) or raw.get("v") != 2:
            raise ValueError("not a zoom-s2s failure record (version 2)")
        failures = raw.get("failures")
        if isinstance(failures, bool) or not isinstance(failures, int):
            raise ValueError("failures is not an integer")
        if not 1 <= failures <= MAX_FAILURES:
            raise ValueError("failures out of range")
        retry_in = _bounded_float(raw.get("retry_in"), "retry_in")
        keep_for = _bounded_float(raw.get("keep_for"), "keep_for")
        error_type, message = raw.get("error_type"), raw.get("message")
        if not isinstance(error_type, str) or not error_type.isidentifier():
            raise ValueError("error_type is not a class name")
        if not isinstance(message, str):
            raise ValueError("message is not a string")
        record = cls(
            failures=failures,
            retry_in=retry_in,
            error_type=error_type[:MAX_ERROR_TYPE],
            message="".join(ch if ch.isprintable() else " " for ch in message[:MAX_MESSAGE]),
        )
        if age is None and ttl_left is not None:
            age = keep_for - ttl_left
        return record if age is None else record.aged(age)


@attrs.frozen
class StoreState:
    """What a store holds for a key: its token and the fleet's failure record.

    Attributes:
        token: The stored token, or ``None`` when absent, expired, corrupt or
            undecryptable. Its ``expires_at`` may be *earlier* than the one
            written (the store may shorten it by its own TTL), never later.
        failure: The fleet's last failed fetch, aged by the store's clock
            (see :class:`FailureRecord`), or ``None``.
    """

    token: AccessToken | None = None
    failure: FailureRecord | None = None


class LockAttempt(NamedTuple):
    """What :meth:`TokenStore.acquire_lock` returns: ``lease, state = await ...``.

    Attributes:
        lease: The lease on success; ``None`` if another owner holds an unexpired lock.
        state: The key's token and failure record as seen by the attempt (with
            the lock taken, if ``lease`` is set: the double-checked read).
    """

    lease: LockLease | None
    state: StoreState


@runtime_checkable
class TokenStore(Protocol):
    """What the :class:`~zoom_s2s.TokenManager` needs from a shared token store."""

    @property
    def name(self) -> str:
        """A short description for logs and errors (``redis://host:6379/0``); no password."""
        ...

    async def read(self, key: str) -> StoreState:
        """Return the stored token and failure record for ``key``, read together.

        Corrupt or undecryptable data is a miss (``None`` in its field, logged
        as a warning), never an exception. Backend failures raise
        :class:`~zoom_s2s.errors.StoreError`.
        """
        ...

    async def acquire_lock(self, key: str, *, ttl: float) -> LockAttempt:
        """Try once, without waiting, to take the lock and a fencing generation for ``key``.

        Returns:
            The lease (``None`` if another owner holds an unexpired lock) and
            the key's state, read in the same step as the attempt.
        """
        ...

    async def write(self, lease: LockLease, token: AccessToken, *, release: bool = False) -> bool:
        """Store ``token`` (TTL: its remaining lifetime) unless ``lease.generation`` is stale.

        A successful write also forgets the failure record and wakes waiters;
        with ``release``, it also releases the lease's lock (if the lease
        still holds it) in the same step, as :meth:`release_lock` would.

        Returns:
            ``True`` if written; ``False`` if a write with a higher generation
            already happened (nothing changed).
        """
        ...

    async def write_failure(
        self, lease: LockLease, failure: FailureRecord, *, keep_for: float
    ) -> None:
        """Remember ``failure`` for ``keep_for`` seconds (at least ``failure.retry_in``)."""
        ...

    async def release_lock(self, lease: LockLease) -> bool:
        """Release the lock if ``lease`` still owns it, and wake waiters.

        Returns:
            ``False`` if the lock had expired or was taken over (nothing released).
        """
        ...

    async def delete(self, key: str, *, fingerprint: str) -> bool:
        """Delete the stored token only if its fingerprint is ``fingerprint``.

        Returns:
            ``True`` if a token was deleted.
        """
        ...

    async def wait_for_change(self, key: str, *, timeout: float) -> StoreState | None:
        """Sleep until the lock for ``key`` is released or a token written, or ``timeout``.

        Returns at once if the lock is not held, and no later than the lock's
        own expiry. Spurious wake-ups are allowed.

        Returns:
            ``None``: the caller reads the store. A store whose wake-up carries
            what the lock's holder wrote may return that state instead, once
            it has authenticated it as the holder's (PostgreSQL does); it must
            be what :meth:`read` would return.
        """
        ...

    async def aclose(self) -> None:
        """Release the store's connections and files. Idempotent."""
        ...


_StoreT = TypeVar("_StoreT", bound="BaseTokenStore")

# Protocol methods whose backend errors BaseTokenStore translates, and what
# they were doing (for the message).
_ACTIONS = {
    "read": "reading the token",
    "acquire_lock": "taking the lock",
    "write": "writing the token",
    "write_failure": "remembering a failed fetch",
    "release_lock": "releasing the lock",
    "delete": "deleting the token",
    "wait_for_change": "waiting for the lock",
}


def _translating(
    method: Callable[..., Awaitable[Any]], action: str
) -> Callable[..., Awaitable[Any]]:
    @functools.wraps(method)
    async def translated(self: BaseTokenStore, *args: Any, **kwargs: Any) -> Any:
        try:
            return await method(self, *args, **kwargs)
        except ZoomS2SError:
            raise
        except self.backend_errors as exc:
            raise self.translate_error(exc, action) from exc

    translated.__zoom_s2s_translated__ = True  # type: ignore[attr-defined]
    return translated


class BaseTokenStore:
    """Base class for token stores: one home for backend errors and URL schemes.

    A subclass sets :attr:`backend_errors` (the exceptions its backend raises
    when it fails: connection refused, timeouts, ...) and, to be reachable
    from :func:`~zoom_s2s.store_from_url`, :attr:`schemes` and
    :meth:`from_url`. Every protocol method it defines is wrapped so that a
    backend error becomes :class:`~zoom_s2s.errors.StoreUnavailableError` (via
    :meth:`translate_error`) with the store's password-free name: stores never
    write that ``try``/``except`` by hand.
    """

    #: URL schemes this store serves in :func:`~zoom_s2s.store_from_url`.
    schemes: ClassVar[tuple[str, ...]] = ()
    #: Backend exceptions that mean "the store failed" (translated to StoreError).
    backend_errors: tuple[type[BaseException], ...] = (OSError,)

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        for method_name, action in _ACTIONS.items():
            method = cls.__dict__.get(method_name)
            if method is not None and not getattr(method, "__zoom_s2s_translated__", False):
                setattr(cls, method_name, _translating(method, action))
        own_schemes = cls.__dict__.get("schemes", ())  # not a parent's: a subclass is no alias
        if own_schemes:
            from .registry import register_store

            for scheme in own_schemes:
                register_store(scheme, cls)

    @property
    def name(self) -> str:
        """A short, password-free description for logs and errors."""
        return type(self).__name__

    @classmethod
    def from_url(cls: type[_StoreT], url: str, **options: Any) -> _StoreT:
        """Create a store from a URL of one of :attr:`schemes`.

        Raises:
            ConfigurationError: The store cannot be made from a URL, or the URL is invalid.
        """
        raise ConfigurationError(f"{cls.__name__} cannot be created from a URL")

    #: Every encoding of this store's secrets (a URL's password, ...), from
    #: ``zoom_s2s._redact.secret_forms``; :meth:`scrub` removes them from messages.
    _secret_forms: tuple[str, ...] = ()

    def scrub(self, text: str) -> str:
        """``text`` without this store's secrets (:attr:`_secret_forms`), in any encoding."""
        return _scrub(text, self._secret_forms) if self._secret_forms else text

    def needs_closing(self) -> bool:
        """Whether this store holds connections that ``aclose()`` must release.

        A store dropped while this is true warns (``ResourceWarning``), as an
        unclosed aiohttp session does. Stores with connections override it.
        """
        return False

    def __del__(self) -> None:
        with contextlib.suppress(Exception):  # half-built objects, interpreter exit
            if self.needs_closing():
                warnings.warn(
                    f"{self!r} was not closed; call 'await store.aclose()'",
                    ResourceWarning,
                    stacklevel=1,
                )

    def error_hint(self, exc: BaseException) -> str:
        """What to do about ``exc``: appended to the translated error's message."""
        return "check that the store is reachable from this host and its address is right"

    def translate_error(self, exc: BaseException, action: str) -> StoreError:
        """The :class:`~zoom_s2s.errors.StoreError` for backend error ``exc`` during ``action``."""
        detail = self.scrub(str(exc)) or "no detail"
        return StoreUnavailableError(
            f"token store {self.name} failed while {action} "
            f"({exc.__class__.__name__}: {detail}); {self.error_hint(exc)}",
            store=self.name,
        )


def encode_record(token: AccessToken, generation: int) -> bytes:
    """Serialise a token and its fencing generation for a byte-oriented store."""
    record = {"v": 1, "generation": generation, "token": token.to_dict()}
    return json.dumps(record, separators=(",", ":")).encode()


def decode_record(data: bytes | str) -> tuple[AccessToken, int]:
    """Read back :func:`encode_record`'s output.

    Raises:
        ValueError: The data is not such a record (treat as a miss).
    """
    try:
        record = json.loads(data)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise ValueError(f"not valid JSON ({exc.__class__.__name__})") from None
    if not isinstance(record, dict) or record.get("v") != 1:
        raise ValueError("not a zoom-s2s token record (version 1)")
    generation = record.get("generation")
    if isinstance(generation, bool) or not isinstance(generation, int):
        raise ValueError("generation missing or not an integer")
    return AccessToken.from_dict(record.get("token")), generation


def seconds_to_keep(token: AccessToken, store: str) -> float:
    """The TTL a store gives ``token``: its remaining lifetime (<= 0: already expired).

    Raises:
        StoreError: ``token`` claims to live longer than
            :data:`~zoom_s2s.models.MAX_TOKEN_LIFETIME` (or forever); write nothing.
    """
    left = token.expires_ts - _clock.wall()
    if not math.isfinite(left) or left > MAX_TOKEN_LIFETIME:
        raise StoreError(
            f"refused to store token {token.fingerprint} in {store}: it claims to "
            f"expire in {left:.0f} s, and a token lives at most {MAX_TOKEN_LIFETIME:.0f} s "
            "(Zoom issues 3600 s tokens); check the token endpoint's expires_in",
            store=store,
        )
    return left


def bounded_token(
    data: bytes | str, left: float, *, store: str, where: str, log: logging.Logger
) -> AccessToken | None:
    """Decode a stored record and bound it by the store's own measure of its life.

    ``left`` is how long the store will still keep the record (a Redis PTTL, a
    row's expiry by the database clock). The token's expiry becomes the earlier
    of the one its fetcher recorded and ``now + left`` (its lifetime kept):
    the store may shorten a token's life, never lengthen it. A corrupt record,
    or one claiming to live more than a day, is a miss with a warning.
    """
    try:
        token, _generation = decode_record(data)
    except ValueError as exc:
        log.warning("token in %s at %s is corrupt (%s); treating as a miss", store, where, exc)
        return None
    now = _clock.wall()
    if token.expires_ts > now + MAX_TOKEN_LIFETIME:
        log.warning("token in %s at %s claims to live %.0f s more (at most %.0f s is "
                    "believed); treating as a miss", store, where, token.expires_ts - now,
                    MAX_TOKEN_LIFETIME)
        return None
    by_store = now + left
    if by_store < token.expires_ts:
        # The store lets it lapse first (the writer's clock ran fast): believe the
        # earlier moment, and keep the token's lifetime. Never the later one.
        shift = by_store - token.expires_ts
        token = attrs.evolve(token, expires_ts=by_store, issued_ts=token.issued_ts + shift)
    return token if token.expires_ts > now else None


class _Translator(Protocol):
    """What turns backend exceptions into :class:`~zoom_s2s.errors.StoreError`: its token store."""

    @property
    def backend_errors(self) -> tuple[type[BaseException], ...]: ...

    def translate_error(self, exc: BaseException, action: str) -> StoreError: ...


_CapabilityT = TypeVar("_CapabilityT", bound="Capability")


class Capability:
    """Base of a backend's optional capability (its rate budget, its webhook claims).

    A store offers it as its attribute :attr:`attribute`; :meth:`of` finds it,
    through wrappers (a store's ``inner``). An exception of the store's
    ``backend_errors`` raised inside :meth:`_translated` becomes the store's
    :class:`~zoom_s2s.errors.StoreError`, as for tokens.

    Args:
        store: The token store whose backend keeps it (``None``: in memory).
    """

    #: The store attribute that holds the capability.
    attribute: ClassVar[str]

    def __init__(self, store: _Translator | None = None) -> None:
        self._store = store

    @classmethod
    def of(cls: type[_CapabilityT], store: object) -> _CapabilityT | None:
        """The capability ``store`` provides, or a wrapped store's; ``None`` if none does."""
        while store is not None:
            found = getattr(store, cls.attribute, None)
            if isinstance(found, cls):
                return found
            store = getattr(store, "inner", None)
        return None

    @contextlib.contextmanager
    def _translated(self, action: str) -> Iterator[None]:
        try:
            yield
        except ZoomS2SError:
            raise
        except Exception as exc:
            if self._store is None or not isinstance(exc, self._store.backend_errors):
                raise
            raise self._store.translate_error(exc, action) from exc
