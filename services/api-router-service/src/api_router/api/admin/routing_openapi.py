"""The OpenAPI paths of ``/v1/admin/routing`` (scope ``admin``)."""

from __future__ import annotations

from api_router.api.openapi_operation import Refs, Spec, answer, errors, operation, parameter

_BASE = "/v1/admin/routing"
_ERRORS = ("400", "401", "403", "404", "503")


def routing_paths(ref: Refs) -> Spec:
    def change(
        operation_id: str,
        summary: str,
        done: Spec,
        status: str = "200",
        body: str | None = None,
        target: str | None = None,
    ) -> Spec:
        responses = {status: answer("Done", done), **errors(ref["error"], _ERRORS)}
        request = None if body is None else ref[body]
        parameters = [] if target is None else [parameter(target, "path")]
        return operation(operation_id, summary, responses, body=request, parameters=parameters)

    override = ref["admin.routing.override"]
    anything: Spec = {"type": "object"}
    return {
        _BASE: {
            "get": change(
                "getRouting", "Routing in force: models, overrides, nodes", ref["admin.routing"]
            )
        },
        f"{_BASE}/models/{{model}}/weights": {
            "put": change(
                "putRoutingWeights",
                "Set a model's pool weights",
                override,
                "201",
                "admin.routing.weights.request",
                "model",
            )
        },
        f"{_BASE}/models/{{model}}/pin": {
            "put": change(
                "putRoutingPin",
                "Restrict a model to nodes",
                override,
                "201",
                "admin.routing.pin.request",
                "model",
            )
        },
        f"{_BASE}/nodes/{{node}}/drain": {
            "post": change(
                "drainNode",
                "Take no new jobs on a node",
                override,
                "201",
                "admin.routing.drain.request",
                "node",
            )
        },
        f"{_BASE}/nodes/{{node}}/undrain": {
            "post": change("undrainNode", "Remove a node's drain", anything, target="node")
        },
        f"{_BASE}/overrides/{{override_id}}": {
            "delete": change(
                "deleteRoutingOverride", "Remove one override", anything, target="override_id"
            )
        },
    }
