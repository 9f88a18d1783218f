"""The gateway's metrics: OpenTelemetry instruments, exported in Prometheus text format.

Each app owns its meter and registry (``PrometheusMeter``), so several apps in one process
(tests) do not collide. Names are as the Prometheus exporter renders them
(``api_router.request.duration`` in seconds is ``api_router_request_duration_seconds``);
``docs/architecture.md`` lists them all.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from opentelemetry.metrics import CallbackOptions, Observation

from api_router.config.settings import TelemetrySettings
from api_router.limiter.budget_usage import BudgetUsage
from api_router.redis_store import StoreErrors
from api_router.routing.breaker import BreakerState
from api_router.routing.override_set import OverrideSet
from api_router.routing.snapshot import RoutingSnapshot
from api_router.telemetry import node_gauges
from api_router.telemetry.genai_metrics import GenAiMetrics
from api_router.telemetry.prometheus_meter import PrometheusMeter
from api_router.telemetry.tenant_labels import TenantLabels
from api_router.telemetry.usage_gauges import observe_usage_export
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


class GatewayMetrics:
    def __init__(
        self, settings: TelemetrySettings, snapshot: Callable[[], RoutingSnapshot]
    ) -> None:
        self._snapshot = snapshot
        self._exported = PrometheusMeter(settings.service_name, "api_router")
        meter = self._meter = self._exported.meter
        self.tenants = TenantLabels(settings.tenant_label, settings.max_tenants)
        self.genai = GenAiMetrics(self._exported, self.tenants)
        self.requests = self._exported.counter(
            "api_router.requests", unit="1", description="HTTP requests answered"
        )
        self.request_duration = self._exported.histogram(
            "api_router.request.duration",
            unit="s",
            description="Time from request arrival to the end of the response",
            buckets=LATENCY_BUCKETS,
        )
        self.dispatch_duration = self._exported.histogram(
            "api_router.dispatch.duration",
            unit="s",
            description="Time from a job on the node's stream to its last event",
            buckets=LATENCY_BUCKETS,
        )
        self.limit_decisions = self._exported.counter(
            "api_router.limit_decisions",
            unit="1",
            description="Admission decisions other than a plain admit, by outcome, limit, tenant",
        )
        self.routing_decisions = self._exported.counter(
            "api_router.routing.decisions",
            unit="1",
            description="Routing decisions by model, pool and reason of the first choice",
        )
        self.retries = self._exported.counter(
            "api_router.routing.retries", unit="1", description="Attempts retried on another node"
        )
        self.retry_budget_rejections = self._exported.counter(
            "api_router.routing.retry_budget_rejections",
            unit="1",
            description="Failures answered unretried because the retry budget was spent",
        )
        node_gauges.observe_nodes(meter, snapshot)

    def observe_usage_export(self, exporter: UsageExporter) -> None:
        """Read the exporter's counters and backlog at every scrape."""
        observe_usage_export(self._meter, exporter)

    def observe_breakers(self, states: Callable[[], dict[str, BreakerState]]) -> None:
        node_gauges.observe_breakers(self._meter, self._snapshot, states)

    def observe_drains(self, overrides: Callable[[], OverrideSet]) -> None:
        node_gauges.observe_drains(self._meter, overrides)

    def observe_store_errors(self, errors: StoreErrors) -> None:
        def observe(_options: CallbackOptions) -> Iterable[Observation]:
            return [Observation(n, {"command": c}) for c, n in sorted(errors.by_command.items())]

        self._meter.create_observable_counter(
            "api_router.redis.errors",
            [observe],
            unit="1",
            description="Redis commands that failed because Redis was unavailable",
        )

    def observe_budgets(self, budgets: BudgetUsage) -> None:
        """This month's spend and the monthly budget of each budgeted tenant (own label)."""

        def spend(_options: CallbackOptions) -> Iterable[Observation]:
            return [
                Observation(s.spent, {"tenant": t, "month": s.month, "unit": s.unit})
                for t, s in budgets.current.items()
                if self.tenants.label(t) == t
            ]

        def limit(_options: CallbackOptions) -> Iterable[Observation]:
            return [
                Observation(s.limit, {"tenant": t, "unit": s.unit})
                for t, s in budgets.current.items()
                if self.tenants.label(t) == t
            ]

        if not self.tenants.enabled:
            return  # a budget is a tenant's: without the label it means nothing
        self._meter.create_observable_gauge(
            "api_router.budget.spent", [spend], unit="1", description="Spend this month"
        )
        self._meter.create_observable_gauge(
            "api_router.budget.limit", [limit], unit="1", description="Budget per month"
        )

    def render(self) -> bytes:
        return self._exported.render()

    def shutdown(self) -> None:
        self._exported.shutdown()
