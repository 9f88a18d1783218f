"""Routing and nodes: each node as the gateways see it (state, readings, load, breaker,
drains) and what routing did (decisions, failovers, retries, refusals)."""

from __future__ import annotations

from dashboards.board import Board, Query, Variable, max_by, rate_by, series

NODE = 'node=~"$node"'
MODEL = 'model=~"$model"'


def board() -> Board:
    return (
        Board(
            "api-router / Routing and nodes",
            "api-router-routing",
            "The nodes as the gateways see them, and the routing decisions made over them.",
            (
                Variable("node", "Node", "api_router_node_state"),
                Variable("model", "Model", "api_router_model_healthy_nodes"),
            ),
        )
        .row(
            "Nodes",
            series(
                "Node state",
                "short",
                Query(
                    f"{max_by('node, state', 'api_router_node_state', NODE)} == 1",
                    "{{node}} {{state}}",
                ),
                description="healthy, stale (stopped reporting), unavailable (draining, backend "
                "down), too_hot, memory_pressure",
            ),
            series(
                "Healthy nodes per model",
                "short",
                Query(max_by("model", "api_router_model_healthy_nodes", MODEL), "{{model}}"),
            ),
            series(
                "Breaker (0 closed, 1 open, 2 half-open)",
                "short",
                Query(max_by("node", "api_router_routing_breaker_state", NODE), "{{node}}"),
                description="The worst state across gateway replicas",
            ),
            series(
                "Temperature",
                "celsius",
                Query(max_by("node", "api_router_node_temperature_celsius", NODE), "{{node}}"),
            ),
            series(
                "RAM in use",
                "percent",
                Query(max_by("node", "api_router_node_ram_percent", NODE), "{{node}}"),
            ),
            series(
                "In flight / capacity",
                "percentunit",
                Query(
                    f"{max_by('node', 'api_router_node_inflight', NODE)}"
                    f" / {max_by('node', 'api_router_node_capacity', NODE)}",
                    "{{node}}",
                ),
            ),
            series(
                "Seconds since last report",
                "s",
                Query(max_by("node", "api_router_node_report_age_seconds", NODE), "{{node}}"),
            ),
            series(
                "Drained nodes",
                "short",
                Query(max_by("node", "api_router_node_drained", NODE), "{{node}}"),
                description="Nodes an admin drained (api-router routing drain)",
            ),
        )
        .row(
            "Routing",
            series(
                "Decisions/s by reason",
                "reqps",
                Query(
                    rate_by("reason, pool", "api_router_routing_decisions_total", MODEL),
                    "{{reason}} {{pool}}",
                ),
                description="Per request, for its first candidate: sticky, least_loaded, affinity, "
                "failover (the first tier had no eligible node)",
            ),
            series(
                "Failed attempts/s by node",
                "reqps",
                Query(
                    rate_by(
                        "node, outcome",
                        "api_router_dispatch_duration_seconds_count",
                        f'{NODE}, outcome!="done"',
                    ),
                    "{{node}} {{outcome}}",
                ),
                description="Attempts on a node that ended in an error code (not accepted in "
                "time, worker errors); each counts against its breaker",
            ),
            series(
                "Retries/s (failovers)",
                "reqps",
                Query(rate_by("model", "api_router_routing_retries_total", MODEL), "{{model}}"),
            ),
            series(
                "Retry-budget refusals/s",
                "reqps",
                Query(
                    rate_by("model", "api_router_routing_retry_budget_rejections_total", MODEL),
                    "{{model}}",
                ),
                description="Failures answered without a retry because the replica's retry "
                "budget was spent",
            ),
        )
    )
