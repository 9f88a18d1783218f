"""The OpenAPI paths of the operational endpoints, which need no key: liveness, readiness
and metrics."""

from __future__ import annotations

from api_router.api.openapi_operation import Refs, Spec, answer, operation


def status_paths(ref: Refs) -> Spec:
    report = ref["status.report"]

    def status(operation_id: str, summary: str) -> Spec:
        responses = {
            "200": answer("Up", report),
            "503": answer("Down; the components say why", report),
        }
        return {"get": operation(operation_id, summary, responses, secured=False)}

    metrics = {
        "description": "Prometheus text exposition",
        "content": {"text/plain": {"schema": {"type": "string"}}},
    }
    return {
        "/v1/status/healthz": status("getHealth", "Liveness: the process is up"),
        "/v1/status/readyz": status("getReadiness", "Readiness: Redis, config, workers"),
        "/metrics": {
            "get": operation("getMetrics", "Prometheus metrics", {"200": metrics}, secured=False)
        },
    }
