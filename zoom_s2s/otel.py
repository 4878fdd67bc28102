"""OpenTelemetry metrics and traces (extra: ``zoom-s2s[otel]``).

``instrument(tokens)`` records a TokenManager's or SyncTokenManager's token
events, ``instrument(zoom)`` a ZoomClient's API calls, 429s and rate-limit
waits per category. The metrics are listed in ``docs/configuration.rst``
("Events, stats and OpenTelemetry").
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any, Protocol, overload

from ._version import __version__
from .errors import ConfigurationError, ZoomS2SError
from .events import EventKind, TokenEvent, TokenHook, TokenStats

if TYPE_CHECKING:
    from opentelemetry.metrics import CallbackOptions, MeterProvider, Observation
    from opentelemetry.trace import TracerProvider

    from .client import ZoomClient

__all__ = ["ApiMetrics", "OpenTelemetryHook", "instrument", "webhook_span"]

_COUNTED = {
    EventKind.FETCHED: "fetches",
    EventKind.ADOPTED: "adoptions",
    EventKind.REFRESH_STARTED: "refreshes",
    EventKind.WAITED: "waits",
    EventKind.LOCK_WAITED: "lock_waits",
    EventKind.INVALIDATED: "invalidations",
    EventKind.REFRESH_FAILED: "failures",
}


class _Manager(Protocol):
    """What instrumenting needs of a manager: TokenManager and SyncTokenManager have it."""

    def stats(self) -> TokenStats: ...

    def add_hook(self, hook: TokenHook) -> None: ...


def _import_otel() -> Any:
    try:
        from opentelemetry import metrics, trace
    except ImportError:
        raise ConfigurationError(
            "OpenTelemetry support needs opentelemetry-api: pip install 'zoom-s2s[otel]'"
        ) from None
    return metrics, trace


class OpenTelemetryHook:
    """A :data:`~zoom_s2s.events.TokenHook` that records events as OpenTelemetry metrics and spans.

    Args:
        manager: The manager to observe (its token's time left is read on collection,
            once it has sent an event): a ``TokenManager`` or ``SyncTokenManager``.
        meter_provider: Defaults to the global one.
        tracer_provider: Defaults to the global one.

    Raises:
        ConfigurationError: ``opentelemetry-api`` is not installed.
    """

    def __init__(
        self,
        manager: _Manager,
        *,
        meter_provider: MeterProvider | None = None,
        tracer_provider: TracerProvider | None = None,
    ) -> None:
        metrics, trace = _import_otel()
        self._manager = manager
        self._attributes: dict[str, str] | None = None  # from the first event
        meter = metrics.get_meter("zoom_s2s", __version__, meter_provider)
        self._counters = {
            kind: meter.create_counter(f"zoom_s2s.token.{name}", unit="{event}")
            for kind, name in _COUNTED.items()
        }
        self._fetch_duration = meter.create_histogram(
            "zoom_s2s.token.fetch.duration", unit="s", description="Token fetch latency"
        )
        meter.create_observable_gauge(
            "zoom_s2s.token.expires_in", callbacks=[self._observe_expires_in], unit="s"
        )
        self._tracer = trace.get_tracer("zoom_s2s", __version__, tracer_provider)
        self._status_error = trace.StatusCode.ERROR

    def _observe_expires_in(self, _options: CallbackOptions) -> Iterable[Observation]:
        from opentelemetry.metrics import Observation

        attributes = self._attributes
        if attributes is None:  # no event yet: the manager may not exist in this process
            return
        with contextlib.suppress(ZoomS2SError):  # closed meanwhile
            expires_in = self._manager.stats().expires_in
            if expires_in is not None:
                yield Observation(expires_in, attributes)

    def __call__(self, event: TokenEvent) -> None:
        attributes = self._attributes
        if attributes is None:
            attributes = {"zoom_s2s.store": event.store, "zoom_s2s.key": event.store_key}
            self._attributes = attributes
        counter = self._counters.get(event.kind)
        if counter is not None:
            counter.add(1, attributes)
        if event.kind not in (EventKind.FETCHED, EventKind.REFRESH_FAILED):
            return
        duration = event.duration or 0.0
        if event.kind is EventKind.FETCHED:
            self._fetch_duration.record(duration, attributes)
        end = time.time_ns()
        span = self._tracer.start_span(
            "zoom_s2s.token.fetch",
            start_time=end - int(duration * 1e9),
            attributes={**attributes, "zoom_s2s.token_fp": event.token_fingerprint or ""},
        )
        if event.error is not None:
            span.set_status(self._status_error, event.error)
        span.end(end_time=end)


class ApiMetrics:
    """Records a :class:`~zoom_s2s.ZoomClient`'s API calls, 429s and rate-limit waits.

    Args:
        meter_provider: Defaults to the global one.

    Raises:
        ConfigurationError: ``opentelemetry-api`` is not installed.
    """

    def __init__(self, *, meter_provider: MeterProvider | None = None) -> None:
        from .ratelimit.categories import CategoryTable

        metrics, _trace = _import_otel()
        meter = metrics.get_meter("zoom_s2s", __version__, meter_provider)
        self._calls = meter.create_counter("zoom_s2s.api.calls", unit="{call}")
        self._limited = meter.create_counter("zoom_s2s.api.rate_limited", unit="{answer}")
        self._wait = meter.create_histogram(
            "zoom_s2s.api.rate_limit.wait", unit="s",
            description="Time the rate limiter took to let a request go",
        )
        self._categories = CategoryTable()  # for clients without a rate limiter

    def __call__(
        self, method: str, path: str, category: str | None, status: int, waited: float | None
    ) -> None:
        if category is None:
            category = self._categories.category(method, path)
        attributes = {"zoom_s2s.category": category}
        self._calls.add(1, {**attributes, "http.response.status_code": status})
        if status == 429:
            self._limited.add(1, attributes)
        if waited is not None:
            self._wait.record(waited, attributes)


@overload
def instrument(
    target: ZoomClient,
    *,
    meter_provider: MeterProvider | None = None,
    tracer_provider: TracerProvider | None = None,
) -> ApiMetrics: ...


@overload
def instrument(
    target: _Manager,
    *,
    meter_provider: MeterProvider | None = None,
    tracer_provider: TracerProvider | None = None,
) -> OpenTelemetryHook: ...


def instrument(
    target: ZoomClient | _Manager,
    *,
    meter_provider: MeterProvider | None = None,
    tracer_provider: TracerProvider | None = None,
) -> ApiMetrics | OpenTelemetryHook:
    """Record ``target``'s work as OpenTelemetry metrics (and token fetches as spans).

    Args:
        target: A ``TokenManager`` or ``SyncTokenManager`` (token events), or
            a ``ZoomClient`` (its API calls).
        meter_provider: Defaults to the global one.
        tracer_provider: Defaults to the global one.

    Returns:
        The hook or observer now attached.

    Raises:
        ConfigurationError: ``opentelemetry-api`` is not installed, or ``target``
            is none of those.
    """
    from .client import ZoomClient

    if isinstance(target, ZoomClient):
        observer = ApiMetrics(meter_provider=meter_provider)
        target._pipeline.observer = observer
        return observer
    if not callable(getattr(target, "add_hook", None)):
        raise ConfigurationError(
            f"instrument() takes a TokenManager, SyncTokenManager or ZoomClient, not "
            f"{type(target).__name__}"
        )
    hook = OpenTelemetryHook(
        target, meter_provider=meter_provider, tracer_provider=tracer_provider
    )
    target.add_hook(hook)
    return hook


def webhook_span(
    event: str, traceparent: str | None, attributes: Mapping[str, str]
) -> contextlib.AbstractContextManager[object]:
    """The current span while a webhook ``event`` is handled, a child of Zoom's ``traceparent``."""
    from opentelemetry import trace
    from opentelemetry.propagate import extract

    context = extract({"traceparent": traceparent}) if traceparent else None
    return trace.get_tracer("zoom_s2s", __version__).start_as_current_span(
        f"zoom_s2s.webhook {event}", context=context, kind=trace.SpanKind.CONSUMER,
        attributes=dict(attributes),
    )
