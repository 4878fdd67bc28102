"""The request pipeline: where the token may go, pacing, and the one retry after a refused token.

:class:`ZoomClient`, :class:`ZoomAuthMiddleware` and the httpx and requests
``ZoomAuth`` adapters are faces over :class:`Pipeline`: a sans-IO generator
decides, the face sends and reports each answer back. See
``docs/architecture.rst`` ("The client").
"""

from __future__ import annotations

import logging
import sys
from collections import deque
from collections.abc import Callable, Generator, Mapping
from functools import partial
from operator import methodcaller
from typing import Any, NamedTuple, Protocol

import yarl

from .._redact import secret_forms
from ..errors import ConfigurationError
from ..models import AccessToken
from .responses import (
    INVALID_TOKEN_CODE,
    NO_SECRETS,
    error_from_response,
    is_scope_error,
    scopes_named,
    zoom_fields,
)
from .urls import Destinations

__all__ = [
    "Answer",
    "ApiObserver",
    "Flow",
    "Pacer",
    "Pipeline",
    "SyncTokens",
    "blocking_pacer",
    "wants_body",
]

logger = logging.getLogger("zoom_s2s.client")

_GET_TOKEN = methodcaller("get_token")

_MAX_READ_BODY = 64 * 1024  # the largest declared body an adapter reads for Zoom's code

# Statuses whose body can say the token is refused (124, 4700, 4711) or a daily limit.
_JUDGED = frozenset({400, 401, 403, 429})
_SCOPE_MEMORY = 32  # fingerprints of tokens known to lack a scope, per pipeline

REPLAY_HINT = (
    "the token was refused and has been replaced, but the request body is a stream that "
    "cannot be sent twice: send the request again (a body of bytes, str or a seekable file "
    "is sent again by itself)"
)

Step = AccessToken | partial[Any] | None
"""What a flow yields: a token to send the request with, a call to make, or None (done)."""

ApiObserver = Callable[[str, str, "str | None", int, "float | None"], None]
"""Told of each answer: method, path below the API base, the pacing category
(``None`` without a limiter), the HTTP status, and the seconds the rate limiter
made it wait (``None`` when it let it go at once)."""


class SyncTokens(Protocol):
    """A blocking token source: :class:`~zoom_s2s.sync.SyncTokenManager` or a pool's manager."""

    def get_token(self) -> AccessToken:
        """A valid access token."""
        ...  # pragma: no cover

    def invalidate(self, token: AccessToken) -> bool:
        """Forget ``token`` here and in the store (compare-and-delete)."""
        ...  # pragma: no cover


class Pacer(Protocol):
    """What paces a pipeline's requests: a :class:`~zoom_s2s.ratelimit.RateLimiter`
    for async faces (``acquire`` and ``observe`` return awaitables), or
    :class:`~zoom_s2s.sync.BlockingPacer` for blocking ones (they return results)."""

    def ticket(self, method: str, path: str, override: str | None = None) -> Any:
        """The request as the pacer sees it, handed back to every other call."""
        ...  # pragma: no cover

    def take_now(self, ticket: Any) -> bool:
        """Take a slot without waiting if one is free; ``False``: call :meth:`acquire`."""
        ...  # pragma: no cover

    def acquire(self, ticket: Any) -> Any:
        """Wait for the request's slot (raises if it is held back)."""
        ...  # pragma: no cover

    def routine(
        self, ticket: Any, status: int, headers: Mapping[str, str], body: bytes | None
    ) -> bool:
        """Note an answer that teaches nothing new; ``False``: call :meth:`observe`."""
        ...  # pragma: no cover

    def observe(
        self, ticket: Any, *, status: int, headers: Mapping[str, str],
        message: str | None = None, body: bytes | None = None,
    ) -> Any:
        """Learn from an answer (its rate, a 429's block)."""
        ...  # pragma: no cover

    def unanswered(self, ticket: Any) -> None:
        """The request ended before any answer."""
        ...  # pragma: no cover


def blocking_pacer(tokens: object, rate_limits: object, face: str) -> Pacer | None:
    """The pacer of a blocking face on ``tokens``: a
    :class:`~zoom_s2s.sync.BlockingPacer` for a manager of :mod:`zoom_s2s.sync`
    (Zoom's blocks are kept even without ``rate_limits``), else ``None``.

    Raises:
        ConfigurationError: ``rate_limits`` with any other token source.
    """
    sync = sys.modules.get("zoom_s2s.sync")  # a manager of it means it is imported
    if sync is not None and isinstance(tokens, (sync.SyncTokenManager, sync.SyncPooledManager)):
        pacer: Pacer = sync.BlockingPacer(tokens, rate_limits)
        return pacer
    if rate_limits is not None:
        raise ConfigurationError(
            f"{face} paces (rate_limits=) a zoom_s2s.sync.SyncTokenManager or "
            f"SyncTokenManagerPool.manager(...); {type(tokens).__name__} cannot be paced"
        )
    return None


def wants_body(status: int, declared_length: str | int | None) -> bool:
    """Whether an adapter reads an answer's body before reporting it (the caller still can).

    Only an error status that can carry Zoom's code, with a small declared length.
    """
    if status not in _JUDGED or declared_length is None:
        return False
    try:
        return 0 <= int(declared_length) <= _MAX_READ_BODY
    except ValueError:
        return False


def _absolute(url: str | yarl.URL) -> yarl.URL | None:
    if isinstance(url, str):
        try:
            url = yarl.URL(url, encoded=True)
        except (TypeError, ValueError):
            return None
    return url if url.absolute and url.host else None


class Answer(NamedTuple):
    """What a face saw of one answer."""

    status: int
    headers: Mapping[str, str]
    body: bytes | None
    """The body, if read (adapters: see :func:`wants_body`)."""
    url: str | yarl.URL
    """The URL that answered: the last hop of a redirect chain."""
    authorization: str | bytes | None
    """The ``Authorization`` header of the request it answers."""


class Flow:
    """One request's way through the pipeline, driven by :meth:`send` or :meth:`asend`.

    Each returns the token to send the request with next, or ``None``: done (the
    last answer stands; before any send: the request goes out untouched). They
    raise what the calls raise, and ``UnauthorizedError`` (or ``MissingScopesError``)
    when a refused token needs a retry a streamed body cannot take.

    Attributes:
        token: The token last fetched for this request.
    """

    __slots__ = ("_steps", "token")

    _steps: Generator[Step, Any, None]
    token: AccessToken | None

    def send(self, answer: Answer | None) -> AccessToken | None:
        """Blocking faces: make the flow's calls, up to its next send."""
        step = self._steps.send(answer)
        while type(step) is partial:
            step = self._steps.send(step())
        return step  # type: ignore[return-value]

    async def asend(self, answer: Answer | None) -> AccessToken | None:
        """Async faces: await the flow's calls, up to its next send."""
        step = self._steps.send(answer)
        while type(step) is partial:
            step = self._steps.send(await step())
        return step  # type: ignore[return-value]

    def close(self) -> None:
        """The request failed before the flow was done (no answer, or an error): end it now."""
        self._steps.close()


class Pipeline:
    """Where the token may go, pacing, and the retry once after a refused token.

    Args:
        tokens: A :class:`~zoom_s2s.TokenManager` (or anything with its async
            ``get_token``/``invalidate``), or a :class:`SyncTokens` for
            blocking faces.
        destinations: Where the token may go.
        limiter: Paces every request sent with the token (a
            :class:`~zoom_s2s.ratelimit.RateLimiter`; for blocking faces a
            :class:`~zoom_s2s.sync.BlockingPacer`); ``None``: no pacing.
    """

    __slots__ = (
        "_get_token", "_lacking", "_tokens", "base_path", "destinations", "limiter", "observer",
    )

    def __init__(
        self, tokens: Any, destinations: Destinations, limiter: Pacer | None = None
    ) -> None:
        self._tokens = tokens
        # Looked up on each call: a blocking manager swaps in its thread-side fast
        # path once its manager exists (bound now, every call would wait on its loop).
        self._get_token = partial(_GET_TOKEN, tokens)
        self.destinations = destinations
        self.limiter = limiter
        # Told of every answer (zoom_s2s.otel); None: no cost beyond this check.
        self.observer: ApiObserver | None = None
        self.base_path = yarl.URL(destinations.base_url).path.rstrip("/")
        # Tokens Zoom refused for a missing scope after a refetch: no second refetch.
        self._lacking: deque[str] = deque(maxlen=_SCOPE_MEMORY)

    def flow(
        self,
        method: str,
        url: str | yarl.URL | None = None,
        *,
        path: str | None = None,
        rate_category: str | None = None,
        rewind: Callable[[], bool] | None = None,
    ) -> Flow:
        """Start one request.

        Args:
            method: The HTTP method.
            url: Where the request goes, as sent; ``None`` when the face builds
                its URL from the token (ZoomClient: always a destination).
            path: The path below the API base, for pacing; default from ``url``.
            rate_category: A category chosen by the caller, for pacing.
            rewind: Makes the body ready to be sent again; returns whether it
                could. ``None``: the body can always be sent again.
        """
        flow = Flow()
        flow.token = None
        flow._steps = self._steps(flow, method, url, path, rate_category, rewind)
        return flow

    def _steps(
        self, flow: Flow, method: str, url: str | yarl.URL | None, path: str | None,
        rate_category: str | None, rewind: Callable[[], bool] | None,
    ) -> Generator[Step, Any, None]:
        destinations = self.destinations
        where = None
        if url is not None:
            where = _absolute(url)
            if where is None or not destinations.may_allow(where):
                yield None  # another origin: the request goes out untouched
                return
        limiter = self.limiter
        if limiter is not None:
            ticket = limiter.ticket(
                method, self._below_base(where) if path is None else path, rate_category
            )
        token: AccessToken = yield self._get_token
        if where is not None and not destinations.allows(where, token.api_url):
            yield None
            return
        retried = False
        answered = False
        try:
            while True:
                flow.token = token
                waited: float | None = None  # the limiter let it go at once, or there is none
                if limiter is not None and not limiter.take_now(ticket):
                    waited = yield partial(limiter.acquire, ticket)
                answer: Answer = yield token
                answered = True
                observer = self.observer
                if observer is not None:
                    if limiter is None:
                        observer(method, self._below_base(where) if path is None else path, None,
                                 answer.status, None)
                    else:
                        observer(method, ticket.path, ticket.category, answer.status, waited)
                code = message = None
                if answer.status in _JUDGED and answer.body is not None:
                    code, message, _ = zoom_fields(answer.body, NO_SECRETS)
                if limiter is not None and not limiter.routine(
                    ticket, answer.status, answer.headers, answer.body
                ):
                    yield partial(
                        limiter.observe, ticket, status=answer.status, headers=answer.headers,
                        message=message, body=answer.body,
                    )
                required = self._refused(answer, code, message, token, retried)
                if required is None:
                    break
                logger.debug(
                    "%s %s: HTTP %d code %s with token_fp=%s; invalidating it and retrying once",
                    method, path if where is None else where.path, answer.status, code,
                    token.fingerprint,
                )
                yield partial(self._tokens.invalidate, token)
                if rewind is not None and not rewind():
                    raise error_from_response(
                        answer.status, answer.headers, answer.body or b"", method=method,
                        path="" if where is None else where.path, hint=REPLAY_HINT,
                        secrets=secret_forms(token.access_token),
                    )
                fresh: AccessToken = yield self._get_token
                flow.token = fresh
                if required and set(required).isdisjoint(fresh.scopes):
                    self._lack(fresh)  # Zoom named what it wants and the fresh token lacks it too
                    break
                if where is not None and not destinations.allows(where, fresh.api_url):
                    break
                token, retried = fresh, True
            yield None
        finally:
            if not answered and limiter is not None:
                limiter.unanswered(ticket)  # an error before any answer: nobody waits for it

    def _refused(
        self, answer: Answer, code: int | None, message: str | None, token: AccessToken,
        retried: bool,
    ) -> tuple[str, ...] | None:
        """Whether a fresh token may help: ``None`` if not, else the scopes Zoom asks for.

        Only an answer to a request that carried ``token`` to a destination
        counts: a 401 from a host a redirect led to says nothing of it.
        """
        scope = is_scope_error(code, message)
        if not scope and not (answer.status == 401 and code == INVALID_TOKEN_CODE):
            return None
        if answer.authorization != "Bearer " + token.access_token:
            return None
        where = _absolute(answer.url)
        if where is None or not self.destinations.allows(where, token.api_url):
            return None
        if scope and (retried or token.fingerprint in self._lacking):
            self._lack(token)  # this token lacks the scope: no refetch for it again
            return None
        if retried:
            return None
        # Scopes granted in the Marketplace reach only tokens issued afterwards.
        return scopes_named(message) if scope else ()

    def _lack(self, token: AccessToken) -> None:
        if token.fingerprint not in self._lacking:
            self._lacking.append(token.fingerprint)

    def _below_base(self, where: yarl.URL | None) -> str:
        path = "/" if where is None else where.raw_path
        base = self.base_path
        return path[len(base):] if base and path.startswith(base + "/") else path
