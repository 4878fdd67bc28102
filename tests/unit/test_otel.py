"""The OpenTelemetry adapter records real metrics and spans through the SDK."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from zoom_s2s import RateLimits, TokenManager, ZoomClient
from zoom_s2s.errors import ConfigurationError
from zoom_s2s.sync import SyncTokenManager
from zoom_s2s.testing import FakeZoom, Fault

from ..support import FAST_RETRY

otel_sdk = pytest.importorskip("opentelemetry.sdk", reason="needs the otel extra")

from opentelemetry.sdk.metrics import MeterProvider  # noqa: E402
from opentelemetry.sdk.metrics.export import InMemoryMetricReader  # noqa: E402
from opentelemetry.sdk.trace import TracerProvider  # noqa: E402
from opentelemetry.sdk.trace.export import SimpleSpanProcessor  # noqa: E402
from opentelemetry.sdk.trace.export.in_memory_span_exporter import (  # noqa: E402
    InMemorySpanExporter,
)

from zoom_s2s.otel import instrument  # noqa: E402


def metric_values(reader: InMemoryMetricReader) -> dict[str, float]:
    values: dict[str, float] = {}
    data = reader.get_metrics_data()
    assert data is not None
    for resource in data.resource_metrics:
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                for point in metric.data.data_points:
                    values[metric.name] = getattr(point, "value", None) or getattr(point, "count", 0)
    return values


async def test_fetches_time_left_invalidations_and_failures_are_exported(fake_zoom: FakeZoom) -> None:
    reader = InMemoryMetricReader()
    exporter = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
    async with TokenManager(
        fake_zoom.credentials, token_url=fake_zoom.token_url, retry=FAST_RETRY
    ) as tokens:
        instrument(
            tokens,
            meter_provider=MeterProvider(metric_readers=[reader]),
            tracer_provider=tracer_provider,
        )
        token = await tokens.get_token()
        for _ in range(5):
            await tokens.get_token()
        expires_in = metric_values(reader)["zoom_s2s.token.expires_in"]
        left = tokens.stats().expires_in
        assert left is not None
        assert left - 1 <= expires_in <= left + 1
        await tokens.invalidate(token)
        fake_zoom.fail_next(10, fault=Fault(status=503))
        with pytest.raises(Exception, match="HTTP 503"):
            await tokens.get_token()

    values = metric_values(reader)
    assert values["zoom_s2s.token.fetches"] == 1
    assert "zoom_s2s.token.expires_in" not in values  # closed: no token, no time left
    assert values["zoom_s2s.token.invalidations"] == 1
    assert values["zoom_s2s.token.failures"] == 1
    assert values["zoom_s2s.token.fetch.duration"] == 1  # one histogram sample
    spans = exporter.get_finished_spans()
    assert [s.name for s in spans] == ["zoom_s2s.token.fetch"] * 2
    assert spans[0].attributes is not None
    assert spans[0].attributes["zoom_s2s.token_fp"] == token.fingerprint
    assert spans[0].status.status_code.name == "UNSET"
    assert spans[1].status.status_code.name == "ERROR"
    for span in spans:
        assert token.access_token not in str(span.to_json())


def points(reader: InMemoryMetricReader, name: str) -> dict[tuple[tuple[str, Any], ...], float]:
    """Each data point of metric ``name``: its attributes -> its value (or count)."""
    found: dict[tuple[tuple[str, Any], ...], float] = {}
    data = reader.get_metrics_data()
    assert data is not None
    for resource in data.resource_metrics:
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                if metric.name == name:
                    for point in metric.data.data_points:
                        key = tuple(sorted((point.attributes or {}).items()))
                        found[key] = getattr(point, "value", None) or getattr(point, "count", 0)
    return found


def wait_sum(reader: InMemoryMetricReader) -> float:
    data = reader.get_metrics_data()
    assert data is not None
    return sum(
        point.sum
        for resource in data.resource_metrics
        for scope in resource.scope_metrics
        for metric in scope.metrics
        if metric.name == "zoom_s2s.api.rate_limit.wait"
        for point in metric.data.data_points
    )


def test_the_blocking_manager_is_instrumented_like_the_async_one(zoom: FakeZoom) -> None:
    reader = InMemoryMetricReader()
    tokens = SyncTokenManager(zoom.credentials, token_url=zoom.token_url, retry=FAST_RETRY)
    try:
        instrument(tokens, meter_provider=MeterProvider(metric_readers=[reader]))
        for _ in range(4):
            tokens.get_token()
        values = metric_values(reader)
        key = tokens.stats()
    finally:
        tokens.close()
    assert values["zoom_s2s.token.fetches"] == 1
    assert key.expires_in is not None
    assert key.last_used is not None
    assert key.expires_in - 1 <= values["zoom_s2s.token.expires_in"] <= key.expires_in + 1
    ((attributes, _),) = points(reader, "zoom_s2s.token.fetches").items()
    assert dict(attributes)["zoom_s2s.store"] == "memory://"


async def test_api_calls_and_429s_are_counted_per_category(fake_zoom: FakeZoom) -> None:
    reader = InMemoryMetricReader()
    async with (
        TokenManager(fake_zoom.credentials, token_url=fake_zoom.token_url) as tokens,
        ZoomClient(tokens, fake_zoom.api_base_url, max_rate_limit_wait=0.5) as zoom,
    ):
        instrument(zoom, meter_provider=MeterProvider(metric_readers=[reader]))
        fake_zoom.fail_next(1, route="api", fault=Fault(
            status=429, headers={"X-RateLimit-Type": "QPS", "Retry-After": "0"},
            body={"code": 429, "message": "You have reached the maximum rate limit for this API."},
        ))
        await zoom.get_user("me")  # a 429, then a 200
        await zoom.get_user("me")
    light = ("zoom_s2s.category", "light")
    assert points(reader, "zoom_s2s.api.calls") == {
        (("http.response.status_code", 200), light): 2,
        (("http.response.status_code", 429), light): 1,
    }
    assert points(reader, "zoom_s2s.api.rate_limited") == {(light,): 1}
    # Without rate_limits= only the retry after the 429 waits its turn (pacing learned
    # from Zoom's answer); the other requests go at once and record no wait.
    assert points(reader, "zoom_s2s.api.rate_limit.wait") == {(light,): 1}


async def test_rate_limit_waits_are_recorded_per_category(fake_zoom: FakeZoom) -> None:
    reader = InMemoryMetricReader()
    async with (
        TokenManager(fake_zoom.credentials, token_url=fake_zoom.token_url) as tokens,
        ZoomClient(tokens, fake_zoom.api_base_url, rate_limits=RateLimits(light=10)) as zoom,
    ):
        instrument(zoom, meter_provider=MeterProvider(metric_readers=[reader]))
        await asyncio.gather(*(zoom.get_user("me") for _ in range(3)))
    light = ("zoom_s2s.category", "light")
    assert points(reader, "zoom_s2s.api.calls") == {(("http.response.status_code", 200), light): 3}
    assert points(reader, "zoom_s2s.api.rate_limit.wait") == {(light,): 3}  # one per request
    assert wait_sum(reader) >= 0.15  # at 10/s less headroom, two waited about 0.1 s each


def test_instrument_refuses_what_it_cannot_observe() -> None:
    with pytest.raises(ConfigurationError, match="TokenManager, SyncTokenManager or ZoomClient"):
        instrument(object())  # type: ignore[call-overload]
