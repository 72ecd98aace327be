"""Records a counter and an explicit-bucket histogram inside a sampled span with the real
OpenTelemetry Python SDK, so the SDK attaches exemplars (trace-based filter, its default), and
exports them once with the OTLP/HTTP exporter.

Usage: otel_exemplars.py <endpoint, e.g. http://127.0.0.1:9595/v1/metrics>

Prints {"trace_id": hex, "span_id": hex} of the span on stdout for the Rust test
(crates/sextant/tests/exemplars.rs) to look for in /api/v1/query_exemplars.
"""

import json
import sys

from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
from opentelemetry.sdk.metrics.view import ExplicitBucketHistogramAggregation, View
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider

endpoint = sys.argv[1]
resource = Resource.create({"service.name": "exemplar-test"})
reader = PeriodicExportingMetricReader(
    OTLPMetricExporter(endpoint=endpoint), export_interval_millis=3_600_000
)
meters = MeterProvider(
    resource=resource,
    metric_readers=[reader],
    views=[
        View(
            instrument_name="tool.latency",
            aggregation=ExplicitBucketHistogramAggregation(boundaries=[5.0, 10.0, 100.0]),
        )
    ],
)
tracer = TracerProvider(resource=resource).get_tracer("exemplar-test")
meter = meters.get_meter("exemplar-test")
calls = meter.create_counter("tool.calls")
latency = meter.create_histogram("tool.latency", unit="s")

with tracer.start_as_current_span("call") as span:
    ctx = span.get_span_context()
    calls.add(3)
    latency.record(7.0)

meters.shutdown()
print(json.dumps({"trace_id": format(ctx.trace_id, "032x"), "span_id": format(ctx.span_id, "016x")}))
