"""Telemetry of one request, with lifecycle verbs, so handlers never touch OpenTelemetry.

``Telemetry.start_request`` opens the server span; handlers call ``set_model``,
``set_principal``, ``limit_decision``, ``dispatched``; the request-context middleware calls
``finish``, which records the metrics (the GenAI ones from the request's usage facts), ends
the span and writes the access log line.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from opentelemetry import trace
from opentelemetry.trace import SpanKind, Status, StatusCode

from api_router.config.settings import TelemetrySettings
from api_router.routing.snapshot import RoutingSnapshot
from api_router.telemetry.metrics import GatewayMetrics
from api_router.telemetry.tracing import build_tracer_provider, parent_context, traceparent_of
from api_router.usage.record import UsageFacts

access_log = logging.getLogger("api_router.access")


class Telemetry:
    """The factory: one per app, owning the meter and tracer providers."""

    def __init__(
        self, settings: TelemetrySettings, snapshot: Callable[[], RoutingSnapshot]
    ) -> None:
        self.metrics = GatewayMetrics(settings, snapshot)
        self._tracer_provider = build_tracer_provider(settings, settings.service_name)
        self._tracer = self._tracer_provider.get_tracer("api_router")

    def start_request(self, method: str, path: str, traceparent: str | None) -> RequestTelemetry:
        span = self._tracer.start_span(
            f"{method} {path}",
            context=parent_context(traceparent),
            kind=SpanKind.SERVER,
            attributes={"http.request.method": method, "url.path": path},
        )
        return RequestTelemetry(self.metrics, span, method, path)

    def shutdown(self) -> None:
        self._tracer_provider.shutdown()
        self.metrics.shutdown()


class RequestTelemetry:
    __slots__ = (
        "_metrics",
        "_span",
        "started",
        "method",
        "path",
        "route",
        "model",
        "node_id",
        "tenant",
        "key_id",
    )

    def __init__(self, metrics: GatewayMetrics, span: trace.Span, method: str, path: str) -> None:
        self._metrics = metrics
        self._span = span
        self.started = time.perf_counter()
        self.method = method
        self.path = path
        self.route = "unmatched"
        self.model = ""
        self.node_id = ""
        self.tenant = ""
        self.key_id = ""

    @property
    def traceparent(self) -> str:
        return traceparent_of(self._span)

    def set_model(self, model: str, known: bool) -> None:
        """Unknown names are labelled ``other``: clients must not mint metric series."""
        self.model = model if known else "other"
        self._span.set_attribute("gen_ai.request.model", model)

    def set_principal(self, tenant: str, key_id: str) -> None:
        self.tenant = tenant
        self.key_id = key_id
        self._span.set_attribute("api_router.tenant", tenant)

    def limit_decision(self, outcome: str, limit: str) -> None:
        """Admission queued, denied or admitted this request without its store."""
        tenant = self._metrics.tenants.label(self.tenant)
        self._metrics.limit_decisions.add(1, {"outcome": outcome, "limit": limit, "tenant": tenant})
        self._span.add_event("limit_decision", {"outcome": outcome, "limit": limit})

    def dispatched(self, node_id: str, outcome: str, seconds: float) -> None:
        """A job left this replica for ``node_id`` and ended with ``outcome``."""
        self.node_id = node_id
        self._span.set_attribute("api_router.node_id", node_id)
        self._metrics.dispatch_duration.record(seconds, {"node": node_id, "outcome": outcome})

    def routed(self, pool: str, reason: str) -> None:
        """The routing engine chose a first node in ``pool`` for ``reason``."""
        self._metrics.routing_decisions.add(
            1, {"model": self.model, "pool": pool, "reason": reason}
        )
        self._span.set_attribute("api_router.route_reason", reason)

    def failover(self, retries: int, budget_refused: bool) -> None:
        """The request was retried ``retries`` times; a retry was refused by the budget."""
        if retries:
            self._metrics.retries.add(retries, {"model": self.model})
        if budget_refused:
            self._metrics.retry_budget_rejections.add(1, {"model": self.model})

    def finish(
        self,
        status: int,
        route: str | None,
        error_code: str | None = None,
        facts: UsageFacts | None = None,
    ) -> None:
        """The request is answered; ``facts``: what an inference request did (tokens,
        node, time to first token), recorded as the GenAI metrics once it named a model."""
        elapsed = time.perf_counter() - self.started
        if route:
            self.route = route
        labels = {
            "route": self.route,
            "method": self.method,
            "status": str(status),
            "model": self.model,
        }
        self._metrics.requests.add(1, labels)
        self._metrics.request_duration.record(elapsed, labels)
        if facts is not None and facts.model:
            self._metrics.genai.record(facts, self.model, status, error_code, elapsed)
        self._span.set_attribute("http.response.status_code", status)
        if status >= 500:
            self._span.set_status(Status(StatusCode.ERROR, error_code))
        self._span.end()
        access_log.info(
            "request",
            extra={
                "method": self.method,
                "path": self.path,
                "route": self.route,
                "status": status,
                "error_code": error_code,
                "duration_ms": round(elapsed * 1000, 3),
                "tenant": self.tenant or None,
                "key_id": self.key_id or None,
                "model": self.model or None,
                "node_id": self.node_id or None,
            },
        )
