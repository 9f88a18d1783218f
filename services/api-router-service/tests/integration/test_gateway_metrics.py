"""The gateway's GenAI, cost, tenant, budget, node and Redis metrics, read from /metrics
after real requests through real workers."""

from __future__ import annotations

from tests.support.limits import write_policies
from tests.support.metrics_text import sample
from tests.support.servers import eventually, free_port
from tests.support.sse import parse_sse
from tests.support.stack import Stack, bearer, chat

POLICIES = {
    "plans": {"p": {"budget": {"per_month": 10.0, "unit": "cost"}}},
    "tenants": {"acme": {"plan": "p"}, "globex": {"plan": "p"}},
    "models": {"llama3.2": {"prompt_price_per_1k": 1.0, "completion_price_per_1k": 2.0}},
}
GENAI = {"gen_ai_operation_name": "chat", "gen_ai_request_model": "llama3.2", "node": "node-a"}


async def test_inference_requests_are_measured_in_genai_terms_with_cost_and_tenant(
    stack: Stack,
) -> None:
    policies = write_policies(stack.tmp / "policies.yaml", POLICIES)
    stack.worker("node-a")
    acme, globex = await stack.create_key("acme"), await stack.create_key("globex")
    limits = {"policies_file": str(policies)}
    telemetry = {"max_tenants": 1, "budget_refresh_s": 0.1}
    async with stack.gateway(limits=limits, telemetry=telemetry) as gw:
        await gw.wait_for_model("llama3.2")
        whole = await gw.client.post("/v1/inference", json=chat(), headers=bearer(acme))
        streamed = await gw.client.post(
            "/v1/inference", json=chat(stream=True), headers=bearer(acme)
        )
        other = await gw.client.post("/v1/inference", json=chat(), headers=bearer(globex))
        render = gw.services.telemetry.metrics.render

        def budget_read() -> bool:
            text = render().decode()
            spent = sample(text, "api_router_budget_spent", {"tenant": "acme"})
            return round(spent, 4) == round(_acme_cost(text), 4) > 0

        await eventually(budget_read, 5, "the settled spend read back")
        metrics = (await gw.client.get("/metrics")).text
    assert (whole.status_code, streamed.status_code, other.status_code) == (200, 200, 200)
    usage = whole.json()["usage"]
    done = parse_sse(streamed.text)[0][-1].json()
    prompt = usage["prompt_tokens"] * 2 + done["usage"]["prompt_tokens"]
    completion = usage["completion_tokens"] * 2 + done["usage"]["completion_tokens"]

    duration = "gen_ai_server_request_duration_seconds_count"
    assert sample(metrics, duration, GENAI) == 3
    tokens = "gen_ai_client_token_usage_sum"
    assert sample(metrics, tokens, {**GENAI, "gen_ai_token_type": "input"}) == prompt
    assert sample(metrics, tokens, {**GENAI, "gen_ai_token_type": "output"}) == completion
    # Only the stream has a first token of its own and tokens after it.
    assert sample(metrics, "gen_ai_server_time_to_first_token_seconds_count", GENAI) == 1
    assert sample(metrics, "gen_ai_server_time_per_output_token_seconds_count", GENAI) == 1
    cost = (prompt * 1.0 + completion * 2.0) / 1000
    assert round(sample(metrics, "api_router_cost_total", {"model": "llama3.2"}), 9) == cost
    # max_tenants 1: the second tenant is counted, under `_other`.
    requests = "api_router_tenant_requests_total"
    assert sample(metrics, requests, {"tenant": "acme", "status": "200"}) == 2
    assert sample(metrics, requests, {"tenant": "_other", "status": "200"}) == 1
    assert (
        sample(metrics, "api_router_tenant_tokens_total", {"tenant": "_other"})
        == (other.json()["usage"]["total_tokens"])
    )
    spent = sample(metrics, "api_router_budget_spent", {"tenant": "acme", "unit": "cost"})
    assert round(spent, 4) == round(_acme_cost(metrics), 4) > 0
    assert sample(metrics, "api_router_budget_limit", {"tenant": "acme"}) == 10.0
    node = {"node": "node-a", "pool": "edge"}
    assert sample(metrics, "api_router_node_state", {**node, "state": "healthy"}) == 1
    assert sample(metrics, "api_router_node_state", {**node, "state": "stale"}) == 0
    assert sample(metrics, "api_router_node_capacity", node) == 2
    assert sample(metrics, "api_router_model_healthy_nodes", {"model": "llama3.2"}) == 1
    assert sample(metrics, "api_router_routing_breaker_state", {"node": "node-a"}) == 0
    assert "python_gc_collections_total" in metrics


async def test_redis_errors_are_counted_by_command(stack: Stack) -> None:
    nowhere = f"redis://127.0.0.1:{free_port()}/0"
    async with stack.gateway(redis={"url": nowhere, "key_prefix": stack.prefix}) as gw:
        render = gw.services.telemetry.metrics.render
        errors = "api_router_redis_errors_total"
        await eventually(
            lambda: sample(render().decode(), errors, {"command": "HGETALL"}) >= 2,
            5,
            "failed health registry reads counted",
        )


def _acme_cost(metrics: str) -> float:
    return sample(metrics, "api_router_tenant_cost_total", {"tenant": "acme"})
