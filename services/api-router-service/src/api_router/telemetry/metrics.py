"""The gateway's metrics: OpenTelemetry instruments, exported in Prometheus text format.

Each app owns its registry and meter provider (no process-wide globals), so several apps
in one process (tests) do not collide.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from opentelemetry.exporter.prometheus import PrometheusMetricReader
from opentelemetry.metrics import CallbackOptions, Observation
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.resources import Resource
from prometheus_client import CollectorRegistry, generate_latest

from api_router.routing.breaker import BreakerState
from api_router.routing.snapshot import NodeState, RoutingSnapshot
from api_router.usage.exporter import UsageExporter

# Seconds; from sub-millisecond gateway work up to the longest generations.
LATENCY_BUCKETS = (
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
    60.0,
    120.0,
)
NODE_STATES: tuple[NodeState, ...] = (
    "healthy",
    "stale",
    "unavailable",
    "too_hot",
    "memory_pressure",
)


class GatewayMetrics:
    def __init__(self, service_name: str, snapshot: Callable[[], RoutingSnapshot]) -> None:
        self._snapshot = snapshot
        self.registry = CollectorRegistry(auto_describe=True)
        reader = PrometheusMetricReader(
            registry=self.registry, disable_target_info=True, scope_info_enabled=False
        )
        self._provider = MeterProvider(
            metric_readers=[reader], resource=Resource.create({"service.name": service_name})
        )
        meter = self._meter = self._provider.get_meter("api_router")
        self.requests = meter.create_counter(
            "api_router.requests", unit="1", description="HTTP requests answered"
        )
        self.request_duration = meter.create_histogram(
            "api_router.request.duration",
            unit="s",
            description="Time from request arrival to the end of the response",
            explicit_bucket_boundaries_advisory=LATENCY_BUCKETS,
        )
        self.dispatch_duration = meter.create_histogram(
            "api_router.dispatch.duration",
            unit="s",
            description="Time from a job on the node's stream to its last event",
            explicit_bucket_boundaries_advisory=LATENCY_BUCKETS,
        )
        self.limit_decisions = meter.create_counter(
            "api_router.limit_decisions",
            unit="1",
            description="Admission decisions other than a plain admit, by outcome and limit",
        )
        self.routing_decisions = meter.create_counter(
            "api_router.routing.decisions",
            unit="1",
            description="Routing decisions by model, pool and reason of the first choice",
        )
        self.retries = meter.create_counter(
            "api_router.routing.retries", unit="1", description="Attempts retried on another node"
        )
        self.retry_budget_rejections = meter.create_counter(
            "api_router.routing.retry_budget_rejections",
            unit="1",
            description="Failures answered unretried because the retry budget was spent",
        )
        meter.create_observable_gauge(
            "api_router.nodes",
            callbacks=[self._observe_nodes],
            unit="1",
            description="Nodes in the health registry by state",
        )

    def observe_usage_export(self, exporter: UsageExporter) -> None:
        """Read the exporter's counters and backlog at every scrape."""
        counts = exporter.counts
        meter = self._meter
        for name, read, description in (
            ("produced", lambda: counts.produced, "Usage records acknowledged by Kafka"),
            ("spooled", lambda: counts.spooled, "Usage records committed to the disk spool"),
            ("dropped", lambda: counts.dropped, "Usage records dropped (queue or spool full)"),
        ):
            meter.create_observable_counter(
                f"api_router.usage.records.{name}",
                callbacks=[_observe(read)],
                unit="1",
                description=description,
            )
        meter.create_observable_counter(
            "api_router.usage.spool.errors",
            callbacks=[_observe(lambda: counts.spool_errors)],
            unit="1",
            description="Failed reads or writes of the usage spool",
        )
        meter.create_observable_gauge(
            "api_router.usage.spool.depth",
            callbacks=[_observe(lambda: exporter.depth)],
            unit="1",
            description="Usage records not yet acknowledged by Kafka",
        )
        meter.create_observable_gauge(
            "api_router.usage.spool.oldest_age",
            callbacks=[_observe(exporter.oldest_age_s)],
            unit="s",
            description="Age of the oldest usage record not yet acknowledged by Kafka",
        )

    def observe_breakers(self, states: Callable[[], dict[str, BreakerState]]) -> None:
        """Per node with a breaker that is not closed: 1 open, 2 half-open (absent: closed)."""
        values = {"closed": 0, "open": 1, "half_open": 2}

        def observe(_options: CallbackOptions) -> Iterable[Observation]:
            return [Observation(values[state], {"node": node}) for node, state in states().items()]

        self._meter.create_observable_gauge(
            "api_router.routing.breaker_state",
            callbacks=[observe],
            unit="1",
            description="Circuit breaker of a node on this replica: 0 closed, 1 open, 2 half-open",
        )

    def render(self) -> bytes:
        return generate_latest(self.registry)

    def shutdown(self) -> None:
        self._provider.shutdown()

    def _observe_nodes(self, _options: CallbackOptions) -> Iterable[Observation]:
        counts = self._snapshot().state_counts()
        return [Observation(counts.get(state, 0), {"state": state}) for state in NODE_STATES]


def _observe(read: Callable[[], float]) -> Callable[[CallbackOptions], Iterable[Observation]]:
    return lambda _options: [Observation(read())]
