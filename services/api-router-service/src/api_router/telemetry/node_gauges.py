"""Gauges of the nodes as this replica sees them: the health snapshot (what each worker
last reported, judged by this replica) and this replica's circuit breakers. Read at every
scrape; nothing here reads Redis."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable

from opentelemetry.metrics import CallbackOptions, Meter, Observation

from api_router.routing.breaker import BreakerState
from api_router.routing.node_health import NodeHealth
from api_router.routing.override_set import OverrideSet
from api_router.routing.snapshot import NodeState, RoutingSnapshot

NODE_STATES: tuple[NodeState, ...] = (
    "healthy",
    "stale",
    "unavailable",
    "too_hot",
    "memory_pressure",
)
BREAKER_VALUES: dict[BreakerState, int] = {"closed": 0, "open": 1, "half_open": 2}

Snapshot = Callable[[], RoutingSnapshot]
Read = Callable[[NodeHealth], float | None]


def observe_nodes(meter: Meter, snapshot: Snapshot) -> None:
    def per_state(_options: CallbackOptions) -> Iterable[Observation]:
        counts = snapshot().state_counts()
        return [Observation(counts.get(state, 0), {"state": state}) for state in NODE_STATES]

    def node_state(_options: CallbackOptions) -> Iterable[Observation]:
        current = snapshot()
        return [
            Observation(
                int(current.states.get(node.node_id) == state), {**_labels(node), "state": state}
            )
            for node in current.nodes
            for state in NODE_STATES
        ]

    def healthy_per_model(_options: CallbackOptions) -> Iterable[Observation]:
        current = snapshot()
        return [
            Observation(len(current.ranked.get(model, ())), {"model": model})
            for model in sorted(current.known_models)
        ]

    meter.create_observable_gauge(
        "api_router.nodes", [per_state], unit="1", description="Nodes in the registry by state"
    )
    meter.create_observable_gauge(
        "api_router.node.state",
        [node_state],
        unit="1",
        description="1 for the state each node is in (healthy, stale, unavailable, too_hot, "
        "memory_pressure), 0 for the others",
    )
    meter.create_observable_gauge(
        "api_router.model.healthy_nodes",
        [healthy_per_model],
        unit="1",
        description="Healthy nodes serving each model any registered node lists",
    )
    readings: tuple[tuple[str, str, str, Read], ...] = (
        ("temperature", "Cel", "Hottest thermal zone the node reported", lambda n: n.temp_celsius),
        ("ram", "%", "Memory in use the node reported", lambda n: n.ram_percent),
        ("cpu", "%", "CPU in use the node reported", lambda n: n.cpu_percent),
        ("inflight", "1", "Jobs the node reported running", lambda n: n.inflight),
        ("capacity", "1", "Jobs the node runs at once at most", lambda n: n.max_concurrency),
        (
            "report_age",
            "s",
            "Seconds since the node last reported",
            lambda n: time.time() - n.last_seen,
        ),
    )
    for name, unit, description, read in readings:
        meter.create_observable_gauge(
            f"api_router.node.{name}",
            [_per_node(snapshot, read)],
            unit=unit,
            description=description,
        )


def observe_breakers(
    meter: Meter, snapshot: Snapshot, states: Callable[[], dict[str, BreakerState]]
) -> None:
    """Every node in the snapshot or with a breaker: 0 closed, 1 open, 2 half-open."""

    def observe(_options: CallbackOptions) -> Iterable[Observation]:
        closed: BreakerState = "closed"
        current = {node.node_id: closed for node in snapshot().nodes} | states()
        return [
            Observation(BREAKER_VALUES[state], {"node": node}) for node, state in current.items()
        ]

    meter.create_observable_gauge(
        "api_router.routing.breaker_state",
        [observe],
        unit="1",
        description="Circuit breaker of a node on this replica: 0 closed, 1 open, 2 half-open",
    )


def observe_drains(meter: Meter, overrides: Callable[[], OverrideSet]) -> None:
    """1 for each node an admin drained (``api-router routing drain``); absent otherwise,
    so alerts about a node can leave out the nodes already taken out of service."""

    def observe(_options: CallbackOptions) -> Iterable[Observation]:
        return [Observation(1, {"node": node}) for node in sorted(overrides().drained)]

    meter.create_observable_gauge(
        "api_router.node.drained", [observe], unit="1", description="Nodes drained by an admin"
    )


def _per_node(snapshot: Snapshot, read: Read) -> Callable[[CallbackOptions], Iterable[Observation]]:
    def observe(_options: CallbackOptions) -> Iterable[Observation]:
        found = ((node, read(node)) for node in snapshot().nodes)
        return [Observation(value, _labels(node)) for node, value in found if value is not None]

    return observe


def _labels(node: NodeHealth) -> dict[str, str]:
    return {"node": node.node_id, "pool": node.pool}
