"""The OpenTelemetry adapter records real metrics and spans through the SDK."""

from __future__ import annotations

import pytest

from zoom_s2s import TokenManager
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


async def test_fetches_hits_invalidations_and_failures_are_exported(fake_zoom: FakeZoom) -> None:
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
        await tokens.invalidate(token)
        fake_zoom.fail_next(10, fault=Fault(status=503))
        with pytest.raises(Exception, match="HTTP 503"):
            await tokens.get_token()

    values = metric_values(reader)
    assert values["zoom_s2s.token.fetches"] == 1
    assert values["zoom_s2s.token.cache_hits"] == 5
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
