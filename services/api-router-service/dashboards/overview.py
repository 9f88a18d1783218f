"""Overview: what clients get (requests, errors, latency, first tokens) and what it
uses (tokens, cost), by model and tenant."""

from __future__ import annotations

from dashboards.board import Board, Query, Variable, quantile, rate_by, series, stat

MODEL = 'gen_ai_request_model=~"$model"'
OWN_MODEL = 'model=~"$model"'
INFERENCE = f'route=~"/v1/(inference|chat/completions)", {OWN_MODEL}'
FAILED = f'{INFERENCE}, status=~"5.."'
PER_TENANT = f'tenant=~"$tenant", {OWN_MODEL}'


def _quantiles(histogram: str) -> tuple[Query, ...]:
    return tuple(
        Query(
            quantile(q, histogram, "gen_ai_request_model", MODEL),
            f"p{int(q * 100)} {{{{gen_ai_request_model}}}}",
        )
        for q in (0.5, 0.99)
    )


def board() -> Board:
    return (
        Board(
            "api-router / Overview",
            "api-router-overview",
            "Requests, errors, latency, time to first token, tokens and cost, by model and "
            "tenant. Runbooks: docs/runbooks.md.",
            (
                Variable("model", "Model", "api_router_requests_total"),
                Variable("tenant", "Tenant", "api_router_tenant_requests_total"),
            ),
        )
        .row(
            "Traffic",
            stat(
                "Requests/s",
                "reqps",
                Query(f"sum({rate_by('route', 'api_router_requests_total', INFERENCE)})"),
            ),
            stat(
                "5xx ratio",
                "percentunit",
                Query(
                    f"sum({rate_by('route', 'api_router_requests_total', FAILED)})"
                    f" / sum({rate_by('route', 'api_router_requests_total', INFERENCE)})"
                ),
                description="Inference requests answered 5xx (ApiRouterErrorRatioHigh above 5%)",
            ),
            stat(
                "Cost per hour",
                "short",
                Query(f"sum({rate_by('model', 'api_router_cost_total', OWN_MODEL)}) * 3600"),
                description="At the model prices of the policies file, in the budget currency",
            ),
            stat(
                "Healthy nodes",
                "short",
                Query('max(sum by (instance) (api_router_nodes{state="healthy"}))'),
            ),
            series(
                "Requests/s by route and status",
                "reqps",
                Query(
                    rate_by("route, status", "api_router_requests_total", OWN_MODEL),
                    "{{route}} {{status}}",
                ),
                width=12,
            ),
            series(
                "Inference errors/s by code",
                "reqps",
                Query(
                    rate_by(
                        "error_type",
                        "gen_ai_server_request_duration_seconds_count",
                        f'{MODEL}, error_type!=""',
                    ),
                    "{{error_type}}",
                ),
                description="Failed inference requests (streams that ended in an error included) "
                "by error code of the catalog",
                width=12,
            ),
        )
        .row(
            "Latency",
            series(
                "Request duration p50 / p99",
                "s",
                *_quantiles("gen_ai_server_request_duration_seconds"),
                description="Inference requests from arrival to the last byte",
            ),
            series(
                "Time to first token p50 / p99",
                "s",
                *_quantiles("gen_ai_server_time_to_first_token_seconds"),
                description="Streamed answers; the latency SLO is 99% within 2.5 s",
            ),
            series(
                "Time per output token p50 / p99",
                "s",
                *_quantiles("gen_ai_server_time_per_output_token_seconds"),
            ),
            series(
                "Slow first tokens (SLO burn)",
                "percentunit",
                Query("api_router:ttft_slow:ratio_rate5m", "5m"),
                Query("api_router:ttft_slow:ratio_rate1h", "1h"),
                Query("api_router:ttft_slow:ratio_rate6h", "6h"),
                description="Share of streamed answers over 2.5 s to the first token, per window "
                "(recording rules of deployments/prometheus); budget 1%",
            ),
            series(
                "Gateway time p99 by route",
                "s",
                Query(
                    quantile(0.99, "api_router_request_duration_seconds", "route", OWN_MODEL),
                    "{{route}}",
                ),
            ),
        )
        .row(
            "Tokens and cost",
            series(
                "Tokens/s by model",
                "short",
                Query(
                    rate_by(
                        "gen_ai_request_model, gen_ai_token_type",
                        "gen_ai_client_token_usage_sum",
                        MODEL,
                    ),
                    "{{gen_ai_request_model}} {{gen_ai_token_type}}",
                ),
            ),
            series(
                "Cost per hour by model",
                "short",
                Query(
                    f"{rate_by('model', 'api_router_cost_total', OWN_MODEL)} * 3600", "{{model}}"
                ),
            ),
            series(
                "Cost per hour by tenant",
                "short",
                Query(
                    f"{rate_by('tenant', 'api_router_tenant_cost_total', PER_TENANT)} * 3600",
                    "{{tenant}}",
                ),
            ),
            series(
                "Requests/s by tenant",
                "reqps",
                Query(
                    rate_by("tenant, status", "api_router_tenant_requests_total", PER_TENANT),
                    "{{tenant}} {{status}}",
                ),
            ),
            series(
                "Tokens/s by tenant",
                "short",
                Query(
                    rate_by("tenant, type", "api_router_tenant_tokens_total", PER_TENANT),
                    "{{tenant}} {{type}}",
                ),
            ),
        )
    )
