"""A worker's metrics: its jobs, its backend calls, its node's stream backlog and the
readings it publishes, exported in Prometheus text format like the gateway's.

Every series carries ``node`` (one worker serves one node), so one Prometheus can scrape
many workers and a dashboard can put them side by side.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from opentelemetry.metrics import CallbackOptions, Observation

from api_router.dispatch.protocol import Event, ProtocolError
from api_router.redis_store import StoreErrors
from api_router.routing.node_health import NodeHealth
from api_router.telemetry.genai_metrics import DURATION_BUCKETS, TTFT_BUCKETS
from api_router.telemetry.prometheus_meter import PrometheusMeter

Observe = Callable[[CallbackOptions], Iterable[Observation]]


class WorkerMetrics:
    def __init__(self, node_id: str, service_name: str) -> None:
        self.node = node_id
        self._exported = PrometheusMeter(service_name, "api_router.worker")
        self._meter = self._exported.meter
        self._accepted = self._exported.counter(
            "api_router.worker.jobs.accepted", unit="1", description="Jobs accepted"
        )
        self._completed = self._exported.counter(
            "api_router.worker.jobs.completed", unit="1", description="Jobs answered `done`"
        )
        self._failed = self._exported.counter(
            "api_router.worker.jobs.failed",
            unit="1",
            description="Jobs answered `error`, by reason",
        )
        self._dropped = self._exported.counter(
            "api_router.worker.jobs.dropped",
            unit="1",
            description="Jobs stopped unanswered: cancelled by their gateway, or it was gone",
        )
        self._reclaimed = self._exported.counter(
            "api_router.worker.jobs.reclaimed",
            unit="1",
            description="Jobs taken over from a worker of this node that stopped renewing them",
        )
        self._reclaimed.add(0, self._labels())  # a rate of 0, rather than no series, until then
        self.backend_duration = self._exported.histogram(
            "api_router.worker.backend.duration",
            unit="s",
            description="Backend calls from request to the whole answer (or failure)",
            buckets=DURATION_BUCKETS,
        )
        self.backend_ttft = self._exported.histogram(
            "api_router.worker.backend.time_to_first_token",
            unit="s",
            description="Streamed backend calls: from request to the first text",
            buckets=TTFT_BUCKETS,
        )
        self.backend_errors = self._exported.counter(
            "api_router.worker.backend.errors",
            unit="1",
            description="Failed backend calls by kind (the error reason) and call",
        )
        self._backlog = {"pending": 0, "lag": 0}
        self._health: NodeHealth | None = None
        self._observe_node()

    # -- what the agent tells --------------------------------------------------------

    def accepted(self, model: str) -> None:
        self._accepted.add(1, self._labels(model=model))

    def answered(self, model: str, event: Event) -> None:
        """The job's last event went to its gateway."""
        if event.type == "done":
            self._completed.add(1, self._labels(model=model))
        elif event.type == "error":
            try:
                reason: str = event.error().reason
            except ProtocolError:
                reason = "unknown"
            self._failed.add(1, self._labels(model=model, reason=reason))

    def dropped(self, model: str, why: str) -> None:
        self._dropped.add(1, self._labels(model=model, reason=why))

    def reclaimed(self, jobs: int) -> None:
        if jobs:
            self._reclaimed.add(jobs, self._labels())

    def published(self, health: NodeHealth) -> None:
        """The node's entry as last written to the health registry."""
        self._health = health

    def backlog(self, pending: int, lag: int) -> None:
        """The consumer group's pending (delivered, not acknowledged) and lag (not yet
        delivered) jobs."""
        self._backlog = {"pending": pending, "lag": lag}

    def observe_inflight(self, read: Callable[[], int]) -> None:
        self._meter.create_observable_gauge(
            "api_router.worker.jobs.inflight",
            [lambda _options: [Observation(read(), self._labels())]],
            unit="1",
            description="Jobs running now",
        )

    def observe_store_errors(self, errors: StoreErrors) -> None:
        def observe(_options: CallbackOptions) -> Iterable[Observation]:
            counts = sorted(errors.by_command.items())
            return [Observation(n, self._labels(command=c)) for c, n in counts]

        self._meter.create_observable_counter(
            "api_router.worker.redis.errors",
            [observe],
            unit="1",
            description="Redis commands that failed because Redis was unavailable",
        )

    def render(self) -> bytes:
        return self._exported.render()

    def shutdown(self) -> None:
        self._exported.shutdown()

    # -- internals ---------------------------------------------------------------------

    def _labels(self, **labels: str) -> dict[str, str]:
        return {"node": self.node, **labels}

    def _observe_node(self) -> None:
        for name in ("pending", "lag"):
            self._meter.create_observable_gauge(
                f"api_router.worker.stream.{name}",
                [self._backlog_reading(name)],
                unit="1",
                description=f"Jobs of this node's stream: {name} in the consumer group",
            )
        readings: tuple[tuple[str, str, Callable[[NodeHealth], float | None]], ...] = (
            ("temperature", "Cel", lambda h: h.temp_celsius),
            ("ram", "%", lambda h: h.ram_percent),
            ("cpu", "%", lambda h: h.cpu_percent),
        )
        for name, unit, read in readings:
            self._meter.create_observable_gauge(
                f"api_router.worker.node.{name}",
                [self._health_reading(read)],
                unit=unit,
                description=f"The node's {name} as last published to the health registry",
            )

    def _backlog_reading(self, name: str) -> Observe:
        return lambda _options: [Observation(self._backlog[name], self._labels())]

    def _health_reading(self, read: Callable[[NodeHealth], float | None]) -> Observe:
        def observe(_options: CallbackOptions) -> Iterable[Observation]:
            value = read(self._health) if self._health is not None else None
            return [] if value is None else [Observation(value, self._labels())]

        return observe
