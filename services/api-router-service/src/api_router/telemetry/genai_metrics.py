"""What one inference request did, in OpenTelemetry's GenAI semantic conventions, plus
its cost and the per-tenant counters.

``GenAiMetrics.record`` reads a finished request's ``UsageFacts`` (the same facts its
usage record is built from), so the metrics and the records cannot disagree.
"""

from __future__ import annotations

from api_router.telemetry.prometheus_meter import PrometheusMeter
from api_router.telemetry.tenant_labels import TenantLabels
from api_router.usage.record import UsageFacts

# Bucket boundaries the GenAI semantic conventions prescribe for each histogram.
TOKEN_BUCKETS = tuple(4**n for n in range(14))  # 1, 4, 16, ... 67108864
DURATION_BUCKETS = (
    0.01,
    0.02,
    0.04,
    0.08,
    0.16,
    0.32,
    0.64,
    1.28,
    2.56,
    5.12,
    10.24,
    20.48,
    40.96,
    81.92,
)
TTFT_BUCKETS = (
    0.001,
    0.005,
    0.01,
    0.02,
    0.04,
    0.06,
    0.08,
    0.1,
    0.25,
    0.5,
    0.75,
    1.0,
    2.5,
    5.0,
    7.5,
    10.0,
)
TPOT_BUCKETS = (0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5)


class GenAiMetrics:
    def __init__(self, meter: PrometheusMeter, tenants: TenantLabels) -> None:
        self._tenants = tenants
        self.token_usage = meter.histogram(
            "gen_ai.client.token.usage",
            unit="{token}",
            description="Input and output tokens per request, as the backend counted them",
            buckets=TOKEN_BUCKETS,
        )
        self.request_duration = meter.histogram(
            "gen_ai.server.request.duration",
            unit="s",
            description="Inference requests from arrival to the last byte of the answer",
            buckets=DURATION_BUCKETS,
        )
        self.time_to_first_token = meter.histogram(
            "gen_ai.server.time_to_first_token",
            unit="s",
            description="Streamed answers: from arrival to the first text sent",
            buckets=TTFT_BUCKETS,
        )
        self.time_per_output_token = meter.histogram(
            "gen_ai.server.time_per_output_token",
            unit="s",
            description="Streamed answers: time per output token after the first",
            buckets=TPOT_BUCKETS,
        )
        self.cost = meter.counter(
            "api_router.cost",
            unit="1",
            description="Cost of the tokens used, at the model prices (budget currency)",
        )
        self.tenant_requests = meter.counter(
            "api_router.tenant.requests", unit="1", description="Inference requests per tenant"
        )
        self.tenant_tokens = meter.counter(
            "api_router.tenant.tokens", unit="1", description="Tokens used per tenant"
        )
        self.tenant_cost = meter.counter(
            "api_router.tenant.cost", unit="1", description="Cost per tenant (budget currency)"
        )

    def record(
        self, facts: UsageFacts, model: str, status: int, error: str | None, elapsed_s: float
    ) -> None:
        """One finished inference request; ``model`` is its bounded label."""
        # "chat" (both chat APIs) or "embeddings" (both embeddings routes)
        genai = {"gen_ai.operation.name": facts.operation, "gen_ai.request.model": model}
        at_node = {**genai, "node": facts.node_id}
        succeeded = facts.status == "ok" or (facts.status is None and status < 400)
        if succeeded:
            self.request_duration.record(elapsed_s, at_node)
        else:
            failure = error or facts.status or str(status)
            self.request_duration.record(elapsed_s, {**at_node, "error.type": failure})
        for kind, tokens in (("input", facts.prompt_tokens), ("output", facts.completion_tokens)):
            if tokens:
                self.token_usage.record(tokens, {**at_node, "gen_ai.token.type": kind})
        if succeeded and facts.ttft_ms is not None:
            ttft_s = facts.ttft_ms / 1000
            self.time_to_first_token.record(ttft_s, at_node)
            if facts.completion_tokens > 1:
                per_token = max(elapsed_s - ttft_s, 0.0) / (facts.completion_tokens - 1)
                self.time_per_output_token.record(per_token, at_node)
        if facts.cost:
            self.cost.add(facts.cost, {"model": model})
        self._per_tenant(facts, model, status)

    def _per_tenant(self, facts: UsageFacts, model: str, status: int) -> None:
        if not facts.tenant:
            return
        tenant = self._tenants.label(facts.tenant)
        labels = {"tenant": tenant, "model": model}
        self.tenant_requests.add(1, {**labels, "status": str(status)})
        for kind, tokens in (("input", facts.prompt_tokens), ("output", facts.completion_tokens)):
            if tokens:
                self.tenant_tokens.add(tokens, {**labels, "type": kind})
        if facts.cost:
            self.tenant_cost.add(facts.cost, labels)
