"""Workers: each node's worker as it sees itself (jobs, backend calls, stream backlog,
the readings it publishes)."""

from __future__ import annotations

from dashboards.board import Board, Panel, Query, Variable, max_by, quantile, rate_by, series

NODE = 'node=~"$node"'
JOBS = f'{NODE}, model=~"$model"'


def _per_node(title: str, metric: str, unit: str = "short") -> Panel:
    return series(title, unit, Query(max_by("node", metric, NODE), "{{node}}"))


def board() -> Board:
    return (
        Board(
            "api-router / Workers",
            "api-router-workers",
            "The workers' own metrics (worker --metrics-port): jobs, backend latency, time to "
            "first token, errors, stream backlog.",
            (
                Variable("node", "Node", "api_router_worker_jobs_inflight"),
                Variable("model", "Model", "api_router_worker_jobs_accepted_total"),
            ),
        )
        .row(
            "Jobs",
            series(
                "Accepted and completed/s",
                "short",
                Query(
                    rate_by("node", "api_router_worker_jobs_accepted_total", JOBS),
                    "{{node}} accepted",
                ),
                Query(
                    rate_by("node", "api_router_worker_jobs_completed_total", JOBS),
                    "{{node}} completed",
                ),
            ),
            series(
                "Failed/s by reason",
                "short",
                Query(
                    rate_by("node, reason", "api_router_worker_jobs_failed_total", JOBS),
                    "{{node}} {{reason}}",
                ),
            ),
            series(
                "Reclaimed/s",
                "short",
                Query(rate_by("node", "api_router_worker_jobs_reclaimed_total", NODE), "{{node}}"),
                description="Jobs taken over from a worker of the node that stopped renewing them",
            ),
            _per_node("In flight", "api_router_worker_jobs_inflight"),
            series(
                "Pending and lag",
                "short",
                Query(max_by("node", "api_router_worker_stream_pending", NODE), "{{node}} pending"),
                Query(max_by("node", "api_router_worker_stream_lag", NODE), "{{node}} lag"),
                description="pending: delivered, not acknowledged; lag: not yet delivered "
                "(ApiRouterWorkerBacklogHigh above 10 for 5 minutes)",
            ),
        )
        .row(
            "Backend",
            series(
                "Backend latency p50 / p99",
                "s",
                *(
                    Query(
                        quantile(q, "api_router_worker_backend_duration_seconds", "node", JOBS),
                        f"{{{{node}}}} p{int(q * 100)}",
                    )
                    for q in (0.5, 0.99)
                ),
            ),
            series(
                "Backend time to first token p50",
                "s",
                Query(
                    quantile(
                        0.5, "api_router_worker_backend_time_to_first_token_seconds", "node", JOBS
                    ),
                    "{{node}}",
                ),
            ),
            series(
                "Backend errors/s by kind",
                "short",
                Query(
                    rate_by("node, kind, call", "api_router_worker_backend_errors_total", NODE),
                    "{{node}} {{kind}} {{call}}",
                ),
            ),
        )
        .row(
            "Node (as published)",
            _per_node("Temperature", "api_router_worker_node_temperature_celsius", "celsius"),
            _per_node("RAM in use", "api_router_worker_node_ram_percent", "percent"),
            _per_node("CPU in use", "api_router_worker_node_cpu_percent", "percent"),
        )
    )
