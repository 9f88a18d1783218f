"""A meter exported in Prometheus text format, with its own registry (no process-wide
globals: several apps in one process do not collide) holding prometheus_client's standard
process_*, python_gc_* and python_info series too.

Counters and histograms recorded per request or job are ``request_instruments`` (plain
dicts, read at scrape time); the observable instruments are OpenTelemetry's (``meter``)."""

from __future__ import annotations

from collections.abc import Sequence

from opentelemetry.exporter.prometheus import PrometheusMetricReader
from opentelemetry.metrics import Meter
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.resources import Resource
from prometheus_client import (
    GC_COLLECTOR,
    PLATFORM_COLLECTOR,
    PROCESS_COLLECTOR,
    CollectorRegistry,
    generate_latest,
)

from api_router.telemetry.request_instruments import Counter, Histogram, InstrumentsCollector


class PrometheusMeter:
    def __init__(self, service_name: str, scope: str) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        for collector in (PROCESS_COLLECTOR, PLATFORM_COLLECTOR, GC_COLLECTOR):
            self.registry.register(collector)
        reader = PrometheusMetricReader(
            registry=self.registry, disable_target_info=True, scope_info_enabled=False
        )
        self._provider = MeterProvider(
            metric_readers=[reader], resource=Resource.create({"service.name": service_name})
        )
        self.meter: Meter = self._provider.get_meter(scope)
        self._instruments = InstrumentsCollector()
        self.registry.register(self._instruments)

    def counter(self, name: str, unit: str, description: str) -> Counter:
        return self._instruments.counter(name, unit, description)

    def histogram(
        self, name: str, unit: str, description: str, buckets: Sequence[float]
    ) -> Histogram:
        return self._instruments.histogram(name, unit, description, buckets)

    def render(self) -> bytes:
        return generate_latest(self.registry)

    def shutdown(self) -> None:
        self._provider.shutdown()
