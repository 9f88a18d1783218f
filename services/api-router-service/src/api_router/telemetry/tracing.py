"""Tracing: a tracer provider per process, and W3C ``traceparent`` in and out."""

from __future__ import annotations

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    ConsoleSpanExporter,
    SpanExporter,
)
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF, ParentBased
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from api_router.config.settings import TelemetrySettings

_propagator = TraceContextTextMapPropagator()


def build_tracer_provider(settings: TelemetrySettings, service_name: str) -> TracerProvider:
    resource = Resource.create({"service.name": service_name})
    exporter = _exporter(settings)
    if exporter is None:
        # Spans that go nowhere are not recorded (recording one cost ~3 % of a request's
        # CPU): new traces are not sampled, and a client's sampled trace is still
        # recorded and passed on, so a worker that exports continues it.
        return TracerProvider(resource=resource, sampler=ParentBased(ALWAYS_OFF))
    provider = TracerProvider(resource=resource)
    provider.add_span_processor(BatchSpanProcessor(exporter))
    return provider


def _exporter(settings: TelemetrySettings) -> SpanExporter | None:
    if settings.traces_exporter == "console":
        return ConsoleSpanExporter()
    if settings.traces_exporter == "otlp":
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        return OTLPSpanExporter(endpoint=settings.otlp_endpoint)
    return None


def parent_context(traceparent: str | None) -> otel_context.Context | None:
    """The remote parent named by a ``traceparent`` value, if it is valid."""
    if not traceparent:
        return None
    return _propagator.extract({"traceparent": traceparent})


def traceparent_of(span: trace.Span) -> str:
    carrier: dict[str, str] = {}
    _propagator.inject(carrier, context=trace.set_span_in_context(span))
    return carrier.get("traceparent", "")
