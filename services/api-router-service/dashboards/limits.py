"""Limits and budgets: what admission refused, queued or let through without Redis, and
how fast each tenant spends its monthly budget."""

from __future__ import annotations

from dashboards.board import Board, Query, Variable, max_by, rate_by, series

TENANT = 'tenant=~"$tenant"'


def _decisions(outcomes: str) -> str:
    selector = f'{TENANT}, outcome=~"{outcomes}"'
    return rate_by("outcome, limit, tenant", "api_router_limit_decisions_total", selector)


def board() -> Board:
    return (
        Board(
            "api-router / Limits and budgets",
            "api-router-limits",
            "Admission decisions other than a plain admit, and monthly budgets, per tenant.",
            (Variable("tenant", "Tenant", "api_router_tenant_requests_total"),),
        )
        .row(
            "Admission",
            series(
                "Denials/s by limit and tenant",
                "reqps",
                Query(
                    _decisions("rate_limited|concurrency_limited|budget_exhausted"),
                    "{{tenant}} {{outcome}} {{limit}}",
                ),
            ),
            series(
                "Queued admissions/s",
                "reqps",
                Query(_decisions("queued"), "{{tenant}} {{limit}}"),
                description="Over a rate, waited for the bucket (queue_max_wait_ms), then admitted",
            ),
            series(
                "Admissions without Redis/s",
                "reqps",
                Query(
                    _decisions("fail_open|limiter_unavailable|budget_unavailable"),
                    "{{tenant}} {{outcome}}",
                ),
                description="fail_open: admitted against a local bucket; the others were refused "
                "(503) because Redis could not be asked",
            ),
            series(
                "Refused requests/s by tenant (402, 429)",
                "reqps",
                Query(
                    rate_by(
                        "tenant, status",
                        "api_router_tenant_requests_total",
                        f'{TENANT}, status=~"402|429"',
                    ),
                    "{{tenant}} {{status}}",
                ),
            ),
        )
        .row(
            "Budgets",
            series(
                "Budget used this month",
                "percentunit",
                Query(
                    f"{max_by('tenant', 'api_router_budget_spent', TENANT)}"
                    f" / {max_by('tenant', 'api_router_budget_limit', TENANT)}",
                    "{{tenant}}",
                ),
            ),
            series(
                "Budget burn per hour",
                "short",
                Query(
                    "max by (tenant, unit) (deriv(api_router_budget_spent{"
                    + TENANT
                    + "}[30m])) * 3600",
                    "{{tenant}} ({{unit}})",
                ),
                description="Spend per hour in the budget's unit (tokens or currency), over 30 min",
            ),
            series(
                "Spend this month",
                "short",
                Query(
                    max_by("tenant, unit", "api_router_budget_spent", TENANT),
                    "{{tenant}} ({{unit}})",
                ),
            ),
        )
    )
