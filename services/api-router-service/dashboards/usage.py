"""Usage pipeline: records from the request path through the disk spool to Kafka."""

from __future__ import annotations

from dashboards.board import Board, Query, Variable, max_by, rate_by, series

INSTANCE = 'instance=~"$instance"'


def _rate(metric: str) -> Query:
    return Query(rate_by("instance", metric, INSTANCE), "{{instance}}")


def _worst(metric: str) -> Query:
    return Query(max_by("instance", metric, INSTANCE), "{{instance}}")


def board() -> Board:
    return (
        Board(
            "api-router / Usage pipeline",
            "api-router-usage",
            "Usage records: produced to Kafka, spooled on disk, dropped; the spool's depth and "
            "age; failed sends.",
            (Variable("instance", "Gateway", "api_router_usage_spool_depth"),),
        )
        .row(
            "Records",
            series(
                "Produced/s (acknowledged by Kafka)",
                "short",
                _rate("api_router_usage_records_produced_total"),
            ),
            series("Spooled/s", "short", _rate("api_router_usage_records_spooled_total")),
            series(
                "Dropped (10 min)",
                "short",
                Query(
                    "sum by (instance) (increase(api_router_usage_records_dropped_total{"
                    + INSTANCE
                    + "}[10m]))",
                    "{{instance}}",
                ),
                description="Records lost for good: the queue or the spool was full "
                "(ApiRouterUsageRecordsDropped)",
            ),
        )
        .row(
            "Spool and export",
            series(
                "Spool depth",
                "short",
                Query(
                    f"max by (instance) (api_router_usage_spool_depth{{{INSTANCE}}})",
                    "{{instance}}",
                ),
                description="Records not yet acknowledged by Kafka",
            ),
            series(
                "Oldest record waiting",
                "s",
                _worst("api_router_usage_spool_oldest_age_seconds"),
                description="ApiRouterUsageExportStalled fires above 60 s for 2 minutes",
            ),
            series(
                "Kafka up",
                "short",
                Query(
                    f"max by (instance) (api_router_usage_export_up{{{INSTANCE}}})", "{{instance}}"
                ),
            ),
            series("Export errors/s", "short", _rate("api_router_usage_export_errors_total")),
            series("Spool errors/s", "short", _rate("api_router_usage_spool_errors_total")),
        )
    )
