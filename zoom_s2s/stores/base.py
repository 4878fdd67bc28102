"""The TokenStore protocol: what a place that shares tokens between processes must offer.

A store holds, per *key*, at most one token, a generation counter and a lock.
The key is derived by the manager from (token URL, account id, client id) and
is a short hash: it never contains the secret. Everything here is async.

The manager's algorithm (see DESIGN.md) relies on exactly these operations:

* :meth:`~TokenStore.read` the current token (``None`` when absent, expired,
  corrupt or undecryptable; never raise for bad data).
* :meth:`~TokenStore.next_generation` hands out a strictly increasing number,
  taken under the lock, that fences the write that follows.
* :meth:`~TokenStore.write` stores a token with its remaining lifetime as
  TTL, *unless* a write with a higher generation already happened: a slow
  holder whose lock lapsed can never clobber its successor's token.
* :meth:`~TokenStore.delete` removes the token only if it is still the one
  with the given fingerprint (compare-and-delete), so a burst of 401s across a
  fleet removes a bad token once, not a good one that replaced it.
* :meth:`~TokenStore.acquire_lock` / :meth:`~TokenStore.release_lock`: a lock
  with a TTL; every acquisition gets its own random owner value and only that
  owner can release it. After the TTL anyone may take it over.
* :meth:`~TokenStore.wait_for_change` lets a process that found the lock taken
  sleep until the holder writes or releases (or the timeout passes), instead
  of polling in a tight loop.
* :meth:`~TokenStore.read_failure` / :meth:`~TokenStore.write_failure` keep
  the last failed fetch (a :class:`FailureRecord`), so that while Zoom is
  failing the whole fleet backs off together instead of every process asking
  on its own (negative caching).

Third-party stores implement these methods and run the contract suite,
:class:`zoom_s2s.testing.StoreContract`, against themselves.
"""

from __future__ import annotations

import json
import secrets
from typing import Protocol, runtime_checkable

import attrs

from ..models import AccessToken

__all__ = [
    "FailureRecord",
    "LockLease",
    "TokenStore",
    "decode_record",
    "encode_record",
    "new_owner",
]

# How long a failure record outlives its retry moment: long enough that the
# next failure still finds the count and backs off further.
FAILURE_MEMORY = 300.0


def new_owner() -> str:
    """A random owner value for one lock acquisition (never shared between coroutines)."""
    return secrets.token_hex(16)


@attrs.frozen
class LockLease:
    """Proof of one lock acquisition, handed back to :meth:`TokenStore.release_lock`.

    Attributes:
        key: The store key the lock guards.
        owner: Random value identifying this acquisition.
        ttl: Seconds the lock lives unless released.
        handle: Store-private state (an OS lock object, ...); opaque to callers.
    """

    key: str
    owner: str
    ttl: float
    handle: object = attrs.field(default=None, eq=False, repr=False)


@attrs.frozen
class FailureRecord:
    """A failed token fetch, remembered in the store so that the fleet backs off together.

    Attributes:
        failures: Consecutive failed fetches across the fleet.
        retry_at: Unix time before which no process should ask Zoom again.
        error_type: Class name of the error (``"TokenEndpointError"``, ...).
        message: The error's message (never holds a secret).
    """

    failures: int
    retry_at: float
    error_type: str
    message: str

    def keep_for(self, now: float) -> float:
        """Seconds a store should keep this record (its TTL) at Unix time ``now``."""
        return max(0.0, self.retry_at - now) + FAILURE_MEMORY

    def to_json(self) -> str:
        """Serialise for a byte-oriented store."""
        return json.dumps(attrs.asdict(self), separators=(",", ":"))

    @classmethod
    def from_json(cls, data: bytes | str) -> FailureRecord:
        """Read back :meth:`to_json`'s output.

        Raises:
            ValueError: Not such a record (treat as no record).
        """
        try:
            raw = json.loads(data)
            record = cls(
                failures=int(raw["failures"]),
                retry_at=float(raw["retry_at"]),
                error_type=str(raw["error_type"]),
                message=str(raw["message"]),
            )
        except (ValueError, TypeError, KeyError, UnicodeDecodeError) as exc:
            raise ValueError(f"not a failure record ({exc.__class__.__name__})") from None
        return record


@runtime_checkable
class TokenStore(Protocol):
    """What the :class:`~zoom_s2s.TokenManager` needs from a shared token store."""

    @property
    def name(self) -> str:
        """A short description for logs and errors (``redis://host:6379/0``); no password."""
        ...

    async def read(self, key: str) -> AccessToken | None:
        """Return the stored token, or ``None`` if there is none usable.

        Corrupt or undecryptable data is a miss (logged as a warning), never an
        exception. Backend failures raise :class:`~zoom_s2s.StoreError`.
        """
        ...

    async def write(self, key: str, token: AccessToken, *, generation: int) -> bool:
        """Store ``token`` (TTL: its remaining lifetime) if ``generation`` is not stale.

        Returns:
            ``True`` if written; ``False`` if a write with a higher generation
            already happened (the token was not stored).
        """
        ...

    async def delete(self, key: str, *, fingerprint: str) -> bool:
        """Delete the stored token only if its fingerprint is ``fingerprint``.

        Returns:
            ``True`` if a token was deleted.
        """
        ...

    async def next_generation(self, key: str) -> int:
        """Return a number greater than any this store returned before for ``key``."""
        ...

    async def acquire_lock(self, key: str, *, ttl: float) -> LockLease | None:
        """Try once, without waiting, to take the lock for ``key`` for ``ttl`` seconds.

        Returns:
            A lease on success, ``None`` if another owner holds an unexpired lock.
        """
        ...

    async def release_lock(self, lease: LockLease) -> bool:
        """Release the lock if ``lease`` still owns it, and wake waiters.

        Returns:
            ``False`` if the lock had expired or was taken over (nothing released).
        """
        ...

    async def wait_for_change(self, key: str, *, timeout: float) -> None:
        """Sleep until the lock for ``key`` is released or a token written, or ``timeout``.

        Returns at once if the lock is not held. Spurious wake-ups are allowed:
        callers re-read the store afterwards.
        """
        ...

    async def read_failure(self, key: str) -> FailureRecord | None:
        """Return the remembered failure for ``key``, or ``None`` (also for bad data)."""
        ...

    async def write_failure(self, key: str, failure: FailureRecord | None) -> None:
        """Remember ``failure`` for ``failure.keep_for(now)`` seconds; ``None`` forgets it."""
        ...

    async def aclose(self) -> None:
        """Release the store's connections and files. Idempotent."""
        ...


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
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"not valid JSON ({exc.__class__.__name__})") from None
    if not isinstance(record, dict) or record.get("v") != 1:
        raise ValueError("not a zoom-s2s token record (version 1)")
    generation = record.get("generation")
    if isinstance(generation, bool) or not isinstance(generation, int):
        raise ValueError("generation missing or not an integer")
    return AccessToken.from_dict(record.get("token")), generation
