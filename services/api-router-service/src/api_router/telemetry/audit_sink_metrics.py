"""The audit sink's metrics: its counters and lag, read at every scrape and served on
``/metrics`` (a port of its own, like a worker's)."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from api_router.usage.audit_sink import SinkCounts


class AuditSinkCollector(Collector):
    def __init__(self, counts: SinkCounts) -> None:
        self._counts = counts

    def collect(self) -> Iterator[Metric]:
        counts = self._counts
        counters = (
            ("rows_stored", counts.stored, "Audit rows added to PostgreSQL"),
            ("duplicates", counts.duplicates, "Audit records delivered again, stored once"),
            ("unreadable", counts.unreadable, "Audit messages that did not decode (skipped)"),
            ("past_retention", counts.past_retention, "Audit records older than the retention"),
            ("database_errors", counts.database_errors, "Failed audit database calls"),
        )
        for name, value, description in counters:
            yield CounterMetricFamily(f"api_router_audit_sink_{name}", description, value=value)
        yield GaugeMetricFamily(
            "api_router_audit_sink_lag_records",
            "Audit messages in this sink's partitions not yet stored",
            value=counts.lag,
        )
        yield GaugeMetricFamily(
            "api_router_audit_sink_database_up",
            "1 while the audit database takes writes",
            value=int(counts.database_up),
        )


def serve_metrics(counts: SinkCounts, host: str, port: int) -> None:
    """Serve ``/metrics`` from a daemon thread until the process exits."""
    registry = CollectorRegistry(auto_describe=True)
    registry.register(AuditSinkCollector(counts))
    start_http_server(port, host, registry=registry)
