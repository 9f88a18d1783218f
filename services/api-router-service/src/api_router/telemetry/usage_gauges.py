"""The usage pipeline as the metrics see it: the exporter's counters and backlog, read at
every scrape."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from opentelemetry.metrics import CallbackOptions, Meter, Observation

from api_router.usage.exporter import UsageExporter


def observe_usage_export(meter: Meter, exporter: UsageExporter) -> None:
    counts = exporter.counts
    counters: tuple[tuple[str, Callable[[], float], str], ...] = (
        ("records.produced", lambda: counts.produced, "Usage records acknowledged by Kafka"),
        ("records.spooled", lambda: counts.spooled, "Usage records committed to the disk spool"),
        ("records.dropped", lambda: counts.dropped, "Usage records dropped (queue or spool full)"),
        ("spool.errors", lambda: counts.spool_errors, "Failed reads or writes of the usage spool"),
        ("export.errors", lambda: counts.export_errors, "Failed or timed-out sends to Kafka"),
    )
    for name, read, description in counters:
        meter.create_observable_counter(
            f"api_router.usage.{name}", [_observe(read)], unit="1", description=description
        )
    gauges: tuple[tuple[str, str, Callable[[], float], str], ...] = (
        ("spool.depth", "1", lambda: exporter.depth, "Usage records not yet acknowledged by Kafka"),
        (
            "spool.oldest_age",
            "s",
            exporter.oldest_age_s,
            "Age of the oldest usage record not yet acknowledged by Kafka",
        ),
        ("export.up", "1", lambda: int(exporter.kafka_up), "1 while Kafka takes usage records"),
    )
    for name, unit, read, description in gauges:
        meter.create_observable_gauge(
            f"api_router.usage.{name}", [_observe(read)], unit=unit, description=description
        )


def _observe(read: Callable[[], float]) -> Callable[[CallbackOptions], Iterable[Observation]]:
    return lambda _options: [Observation(read())]
