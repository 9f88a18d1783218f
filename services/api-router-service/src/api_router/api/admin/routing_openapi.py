"""The OpenAPI paths of ``/v1/admin/routing`` (scope ``admin``)."""

from __future__ import annotations

from functools import partial

from api_router.api.openapi_operation import Refs, Spec, done_operation, parameter

_BASE = "/v1/admin/routing"
_ERRORS = ("400", "401", "403", "404", "503")


def routing_paths(ref: Refs) -> Spec:
    change = partial(done_operation, error=ref["error"], statuses=_ERRORS)
    override = ref["admin.routing.override"]
    anything: Spec = {"type": "object"}

    def set_override(operation_id: str, summary: str, body: str, target: str) -> Spec:
        return change(
            operation_id,
            summary,
            override,
            status="201",
            body=ref[body],
            parameters=[parameter(target, "path")],
        )

    return {
        _BASE: {
            "get": change(
                "getRouting", "Routing in force: models, overrides, nodes", ref["admin.routing"]
            )
        },
        f"{_BASE}/models/{{model}}/weights": {
            "put": set_override(
                "putRoutingWeights",
                "Set a model's pool weights",
                "admin.routing.weights.request",
                "model",
            )
        },
        f"{_BASE}/models/{{model}}/pin": {
            "put": set_override(
                "putRoutingPin", "Restrict a model to nodes", "admin.routing.pin.request", "model"
            )
        },
        f"{_BASE}/nodes/{{node}}/drain": {
            "post": set_override(
                "drainNode", "Take no new jobs on a node", "admin.routing.drain.request", "node"
            )
        },
        f"{_BASE}/nodes/{{node}}/undrain": {
            "post": change(
                "undrainNode",
                "Remove a node's drain",
                anything,
                parameters=[parameter("node", "path")],
            )
        },
        f"{_BASE}/overrides/{{override_id}}": {
            "delete": change(
                "deleteRoutingOverride",
                "Remove one override",
                anything,
                parameters=[parameter("override_id", "path")],
            )
        },
    }
