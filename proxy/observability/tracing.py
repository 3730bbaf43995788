"""OpenTelemetry traces: a tracer provider owned by the app, exporting by OTLP/HTTP when configured.

Without an `otlp_endpoint` (the default) and without an exporter injected by a test, there is no provider
at all: the pipeline gets the API's no-op tracer, which records nothing and costs close to nothing.
"""

from __future__ import annotations

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor, SpanExporter
from opentelemetry.trace import NoOpTracer, Tracer

from proxy.serving.usage_log import UsageEvent

__all__ = ["SERVICE_NAME", "record_usage_on_span", "tracer_of", "tracer_provider"]

SERVICE_NAME = "megarouter"
INSTRUMENTATION_NAME = "megarouter"
OTLP_EXPORT_TIMEOUT_S = 10.0


def tracer_provider(
    *, otlp_endpoint: str | None, span_exporter: SpanExporter | None
) -> TracerProvider | None:
    """The app's provider: batched OTLP/HTTP export to `otlp_endpoint` (its /v1/traces), or synchronous
    export to `span_exporter` (tests); None when neither is given."""
    if otlp_endpoint is None and span_exporter is None:
        return None
    provider = TracerProvider(resource=Resource.create({"service.name": SERVICE_NAME}))
    if span_exporter is not None:
        provider.add_span_processor(SimpleSpanProcessor(span_exporter))
    if otlp_endpoint is not None:
        # Imported here: the exporter (and its protobuf stack) loads only where tracing is configured.
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        endpoint = f"{otlp_endpoint.rstrip('/')}/v1/traces"
        provider.add_span_processor(
            BatchSpanProcessor(OTLPSpanExporter(endpoint=endpoint, timeout=OTLP_EXPORT_TIMEOUT_S))
        )
    return provider


def tracer_of(provider: TracerProvider | None) -> Tracer:
    return NoOpTracer() if provider is None else provider.get_tracer(INSTRUMENTATION_NAME)


def record_usage_on_span(event: UsageEvent) -> None:
    """Usage-event observer: the request's span (the current one) gets what served it and what it used."""
    span = trace.get_current_span()
    if not span.is_recording():
        return
    span.set_attribute("megarouter.outcome", event.outcome)
    span.set_attribute("megarouter.cost_nano_usd", event.cost_nano_usd)
    span.set_attribute("megarouter.attempts", len(event.attempts))
    if event.strategy is not None:
        span.set_attribute("megarouter.strategy", event.strategy)
    if event.model_id is None or event.provider is None:
        span.set_attribute("error.type", event.outcome)
        return
    span.set_attribute("gen_ai.response.model", event.model_id)
    span.set_attribute("gen_ai.provider.name", event.provider)
    span.set_attribute("gen_ai.system", event.provider)
    span.set_attribute("gen_ai.usage.input_tokens", event.input_tokens)
    span.set_attribute("gen_ai.usage.output_tokens", event.output_tokens)
