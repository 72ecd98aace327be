"""Exports metrics with the real OpenTelemetry Python SDK and OTLP/HTTP exporter to Sextant.

Usage: export.py <endpoint, e.g. http://127.0.0.1:9595/v1/metrics> <json-out-path>

Two meter providers export the same instruments, one with cumulative and one (gzip-compressed)
with delta temporality, in two rounds, so the receiver has to add the delta rounds up. A third
provider's data is encoded with the SDK's own OTLP encoder and written as OTLP/JSON (proto3 JSON
mapping: lowerCamelCase keys, integer enums, 64-bit integers as strings) for the Rust test to
post. The expected values are asserted by crates/sextant/tests/otlp.rs.
"""

import math
import sys

from google.protobuf.json_format import MessageToJson
from opentelemetry.exporter.otlp.proto.common.metrics_encoder import encode_metrics
from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
from opentelemetry.metrics import CallbackOptions, Observation
from opentelemetry.sdk.metrics import (
    Counter,
    Histogram,
    MeterProvider,
    ObservableCounter,
    ObservableGauge,
    ObservableUpDownCounter,
    UpDownCounter,
)
from opentelemetry.sdk.metrics.export import (
    AggregationTemporality,
    InMemoryMetricReader,
    PeriodicExportingMetricReader,
)
from opentelemetry.sdk.metrics.view import ExponentialBucketHistogramAggregation, View
from opentelemetry.sdk.resources import Resource

endpoint, json_out = sys.argv[1], sys.argv[2]

DELTA = {
    k: AggregationTemporality.DELTA
    for k in (Counter, UpDownCounter, Histogram, ObservableCounter, ObservableUpDownCounter)
}
EXP_VIEWS = [
    View(instrument_name="e2e.size", aggregation=ExponentialBucketHistogramAggregation()),
    View(instrument_name="e2e.fine", aggregation=ExponentialBucketHistogramAggregation()),
]


def provider(attrs, temporality, compression):
    exporter = OTLPMetricExporter(
        endpoint=endpoint,
        compression=compression,
        preferred_temporality=temporality,
        timeout=20,
    )
    reader = PeriodicExportingMetricReader(exporter, export_interval_millis=math.inf)
    return MeterProvider(
        resource=Resource.create(attrs), metric_readers=[reader], views=EXP_VIEWS
    )


def gauge_cb(value):
    def cb(_options: CallbackOptions):
        return [Observation(value, {"sensor": "s1"})]

    return cb


def run(mp):
    m = mp.get_meter("sextant.e2e", "0.1")
    requests = m.create_counter("e2e.requests", unit="{request}", description="Requests served")
    queue = m.create_up_down_counter("e2e.queue.depth", unit="{item}")
    m.create_observable_gauge("e2e.temperature", callbacks=[gauge_cb(21.5)], unit="Cel")
    m.create_observable_gauge("e2e.cpu.utilization", callbacks=[gauge_cb(0.5)], unit="1")
    latency = m.create_histogram(
        "e2e.latency", unit="s", explicit_bucket_boundaries_advisory=[0.3, 1.0, 10.0]
    )
    size = m.create_histogram("e2e.size", unit="By")
    fine = m.create_histogram("e2e.fine", unit="s")
    attrs = {"route": "/a"}

    # Round 1.
    requests.add(3, attrs)
    queue.add(5, attrs)
    latency.record(0.25, attrs)
    latency.record(0.5, attrs)
    size.record(1, attrs)
    size.record(2, attrs)
    fine.record(1.5, attrs)
    if not mp.force_flush(30_000):
        sys.exit("round 1 export failed")
    # Round 2.
    requests.add(4, attrs)
    queue.add(-2, attrs)
    latency.record(0.5, attrs)
    latency.record(4.0, attrs)
    latency.record(64.0, attrs)
    size.record(4, attrs)
    size.record(1024, attrs)
    size.record(0, attrs)
    fine.record(1.5, attrs)
    fine.record(1.5, attrs)
    if not mp.force_flush(30_000):
        sys.exit("round 2 export failed")
    mp.shutdown()


run(
    provider(
        {
            "service.name": "otlp-cum",
            "service.namespace": "e2e",
            "service.instance.id": "inst-1",
            "deployment.environment": "test",
        },
        None,
        Compression.NoCompression,
    )
)
run(
    provider(
        {"service.name": "otlp-delta", "service.instance.id": "inst-2"},
        DELTA,
        Compression.Gzip,
    )
)

# OTLP/JSON from the SDK's own encoder.
reader = InMemoryMetricReader()
mp = MeterProvider(
    resource=Resource.create({"service.name": "otlp-json", "service.instance.id": "inst-3"}),
    metric_readers=[reader],
)
c = mp.get_meter("sextant.e2e.json").create_counter("e2e.json.events", unit="{event}")
c.add(11, {"kind": "x"})
data = reader.get_metrics_data()
pb = encode_metrics(data)
with open(json_out, "w") as f:
    f.write(MessageToJson(pb, use_integers_for_enums=True))
mp.shutdown()
print("ok")
