"""OpenTelemetry metrics and traces for a TokenManager (extra: ``zoom-s2s[otel]``).

::

    from zoom_s2s.otel import instrument
    instrument(tokens)  # uses the global meter and tracer providers

Metrics (all with attributes ``zoom_s2s.store`` and ``zoom_s2s.key``):

* counters ``zoom_s2s.token.fetches``, ``.adoptions``, ``.refreshes``,
  ``.waits``, ``.lock_waits``, ``.invalidations``, ``.failures``;
* an observable counter ``zoom_s2s.token.cache_hits`` (read from
  :meth:`TokenManager.stats`, so the hot path stays free of exporter calls);
* a histogram ``zoom_s2s.token.fetch.duration`` in seconds.

Each token fetch (and each failed refresh) also becomes a span
``zoom_s2s.token.fetch``, placed at the time it ran. Attributes hold
fingerprints only, never a token.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING

from ._version import __version__
from .errors import ConfigurationError
from .events import EventKind, TokenEvent

if TYPE_CHECKING:
    from opentelemetry.metrics import CallbackOptions, MeterProvider, Observation
    from opentelemetry.trace import TracerProvider

    from .manager import TokenManager

__all__ = ["OpenTelemetryHook", "instrument", "webhook_span"]

_COUNTED = {
    EventKind.FETCHED: "fetches",
    EventKind.ADOPTED: "adoptions",
    EventKind.REFRESH_STARTED: "refreshes",
    EventKind.WAITED: "waits",
    EventKind.LOCK_WAITED: "lock_waits",
    EventKind.INVALIDATED: "invalidations",
    EventKind.REFRESH_FAILED: "failures",
}


class OpenTelemetryHook:
    """A :data:`~zoom_s2s.TokenHook` that records events as OpenTelemetry metrics and spans.

    Args:
        manager: The manager to observe (its cache hits are read on collection).
        meter_provider: Defaults to the global one.
        tracer_provider: Defaults to the global one.

    Raises:
        ConfigurationError: ``opentelemetry-api`` is not installed.
    """

    def __init__(
        self,
        manager: TokenManager,
        *,
        meter_provider: MeterProvider | None = None,
        tracer_provider: TracerProvider | None = None,
    ) -> None:
        try:
            from opentelemetry import metrics, trace
        except ImportError:
            raise ConfigurationError(
                "OpenTelemetry support needs opentelemetry-api: pip install 'zoom-s2s[otel]'"
            ) from None
        self._manager = manager
        self._attributes = {"zoom_s2s.store": manager.store.name, "zoom_s2s.key": manager.store_key}
        meter = metrics.get_meter("zoom_s2s", __version__, meter_provider)
        self._counters = {
            kind: meter.create_counter(f"zoom_s2s.token.{name}", unit="{event}")
            for kind, name in _COUNTED.items()
        }
        self._fetch_duration = meter.create_histogram(
            "zoom_s2s.token.fetch.duration", unit="s", description="Token fetch latency"
        )
        meter.create_observable_counter(
            "zoom_s2s.token.cache_hits", callbacks=[self._observe_hits], unit="{call}"
        )
        self._tracer = trace.get_tracer("zoom_s2s", __version__, tracer_provider)
        self._status_error = trace.StatusCode.ERROR

    def _observe_hits(self, _options: CallbackOptions) -> Iterable[Observation]:
        from opentelemetry.metrics import Observation

        yield Observation(self._manager.stats().hits, self._attributes)

    def __call__(self, event: TokenEvent) -> None:
        counter = self._counters.get(event.kind)
        if counter is not None:
            counter.add(1, self._attributes)
        if event.kind not in (EventKind.FETCHED, EventKind.REFRESH_FAILED):
            return
        duration = event.duration or 0.0
        if event.kind is EventKind.FETCHED:
            self._fetch_duration.record(duration, self._attributes)
        end = time.time_ns()
        span = self._tracer.start_span(
            "zoom_s2s.token.fetch",
            start_time=end - int(duration * 1e9),
            attributes={**self._attributes, "zoom_s2s.token_fp": event.token_fingerprint or ""},
        )
        if event.error is not None:
            span.set_status(self._status_error, event.error)
        span.end(end_time=end)


def instrument(
    manager: TokenManager,
    *,
    meter_provider: MeterProvider | None = None,
    tracer_provider: TracerProvider | None = None,
) -> OpenTelemetryHook:
    """Attach an :class:`OpenTelemetryHook` to ``manager`` and return it."""
    hook = OpenTelemetryHook(
        manager, meter_provider=meter_provider, tracer_provider=tracer_provider
    )
    manager.add_hook(hook)
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
