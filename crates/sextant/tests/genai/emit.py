"""Emits OpenTelemetry GenAI metrics with the real Python SDK and OTLP/HTTP exporter, the way
instrumentation libraries do today, in two generations of the conventions.

Usage: emit.py <endpoint, e.g. http://127.0.0.1:9595/v1/metrics> <rounds>

- job "planner-agent" (cumulative temporality): the current conventions -
  gen_ai.client.token.usage histogram with gen_ai.provider.name and token types input/output,
  gen_ai.client.operation.duration for chat calls (one ending in error.type 429) and for
  execute_tool, gen_ai.invoke_agent.duration, gen_ai.client.operation.time_to_first_chunk and
  gen_ai.server.time_to_first_token.
- job "coder-agent" (delta temporality, as many SDKs export to Prometheus-less backends): the
  older form - gen_ai.system "Anthropic" and token types prompt/completion - plus the newer
  counter form (gen_ai.client.inference.usage.cache_read.input_tokens) and an unknown model
  priced nowhere (provider acme, model house-7b).

Every round records the same amounts and exports; the Rust test (crates/sextant/tests/genai.rs)
knows them: per round planner 1000 input / 200 output tokens; coder 3000 prompt / 500
completion / 1200 cache-read tokens; house-7b 50 input tokens.
"""

import math
import sys
import time

from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
from opentelemetry.sdk.metrics import (
    Counter,
    Histogram,
    MeterProvider,
    ObservableCounter,
    ObservableUpDownCounter,
    UpDownCounter,
)
from opentelemetry.sdk.metrics.export import (
    AggregationTemporality,
    PeriodicExportingMetricReader,
)
from opentelemetry.sdk.resources import Resource

endpoint, rounds = sys.argv[1], int(sys.argv[2])

DELTA = {
    k: AggregationTemporality.DELTA
    for k in (Counter, UpDownCounter, Histogram, ObservableCounter, ObservableUpDownCounter)
}
TOKEN_BOUNDS = [1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304]
DURATION_BOUNDS = [0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92]


def provider(name, temporality=None):
    exporter = OTLPMetricExporter(
        endpoint=endpoint, preferred_temporality=temporality or {}, timeout=20
    )
    reader = PeriodicExportingMetricReader(exporter, export_interval_millis=math.inf)
    return MeterProvider(
        resource=Resource.create({"service.name": name, "service.instance.id": name + "-1"}),
        metric_readers=[reader],
    )


planner = provider("planner-agent")
pm = planner.get_meter("opentelemetry.instrumentation.openai_v2", "2.1b0")
tokens = pm.create_histogram(
    "gen_ai.client.token.usage", unit="{token}",
    description="Number of input and output tokens used.",
    explicit_bucket_boundaries_advisory=TOKEN_BOUNDS,
)
op_duration = pm.create_histogram(
    "gen_ai.client.operation.duration", unit="s", description="GenAI operation duration.",
    explicit_bucket_boundaries_advisory=DURATION_BOUNDS,
)
ttfc = pm.create_histogram(
    "gen_ai.client.operation.time_to_first_chunk", unit="s",
    description="Time to receive the first chunk.",
    explicit_bucket_boundaries_advisory=DURATION_BOUNDS,
)
server_ttft = pm.create_histogram(
    "gen_ai.server.time_to_first_token", unit="s", description="Time to generate first token.",
    explicit_bucket_boundaries_advisory=DURATION_BOUNDS,
)
agent_duration = pm.create_histogram(
    "gen_ai.invoke_agent.duration", unit="s", description="Agent invocation duration.",
    explicit_bucket_boundaries_advisory=DURATION_BOUNDS,
)
chat = {
    "gen_ai.operation.name": "chat",
    "gen_ai.provider.name": "openai",
    "gen_ai.request.model": "gpt-4o",
    "gen_ai.response.model": "gpt-4o-2024-08-06",
    "gen_ai.agent.name": "planner",
}

coder = provider("coder-agent", DELTA)
cm = coder.get_meter("opentelemetry.instrumentation.anthropic", "0.40.0")
old_tokens = cm.create_histogram(
    "gen_ai.client.token.usage", unit="{token}", description="Measures number of input and output tokens used",
    explicit_bucket_boundaries_advisory=TOKEN_BOUNDS,
)
old_duration = cm.create_histogram(
    "gen_ai.client.operation.duration", unit="s", description="GenAI operation duration",
    explicit_bucket_boundaries_advisory=DURATION_BOUNDS,
)
cache_read = cm.create_counter(
    "gen_ai.client.inference.usage.cache_read.input_tokens", unit="{token}",
    description="Input tokens read from the provider's prompt cache.",
)
input_counter = cm.create_counter(
    "gen_ai.client.inference.usage.input_tokens", unit="{token}",
    description="Input tokens.",
)
old = {
    "gen_ai.operation.name": "chat",
    "gen_ai.system": "Anthropic",
    "gen_ai.request.model": "claude-3-5-haiku-20241022",
    "gen_ai.response.model": "claude-3-5-haiku-20241022",
    "gen_ai.agent.name": "coder",
}
house = {
    "gen_ai.operation.name": "chat",
    "gen_ai.provider.name": "acme",
    "gen_ai.request.model": "house-7b",
    "gen_ai.agent.name": "coder",
}

for r in range(rounds):
    tokens.record(1000, {**chat, "gen_ai.token.type": "input"})
    tokens.record(200, {**chat, "gen_ai.token.type": "output"})
    op_duration.record(0.8, chat)
    op_duration.record(0.05, {**chat, "error.type": "429"})
    op_duration.record(0.3, {"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "search",
                             "gen_ai.agent.name": "planner"})
    ttfc.record(0.2, chat)
    server_ttft.record(0.1, {"gen_ai.provider.name": "openai", "gen_ai.request.model": "gpt-4o"})
    agent_duration.record(2.0, {"gen_ai.agent.name": "planner", "gen_ai.provider.name": "openai"})

    old_tokens.record(3000, {**old, "gen_ai.token.type": "prompt"})
    old_tokens.record(500, {**old, "gen_ai.token.type": "completion"})
    old_duration.record(1.5, old)
    cache_read.add(1200, old)
    input_counter.add(50, house)

    for p in (planner, coder):
        if not p.force_flush(timeout_millis=20000):
            sys.exit("export did not finish")
    time.sleep(0.5)

planner.shutdown()
coder.shutdown()
