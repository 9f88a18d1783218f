"""The OpenAPI paths of ``/v1/admin/routing`` (scope ``admin``)."""

from __future__ import annotations

from functools import partial

from api_router.api.admin.key_openapi import BODY_ERRORS, CALLER_ERRORS
from api_router.api.openapi_operation import Refs, Spec, done_operation, link, parameter

_BASE = "/v1/admin/routing"
# 409: the override names pools or nodes nobody has registered (see override_rules).
_CHANGE_ERRORS = (*BODY_ERRORS, "409", *CALLER_ERRORS)


def routing_paths(ref: Refs) -> Spec:
    change = partial(done_operation, error=ref["error"])
    override = ref["admin.routing.override"]
    anything: Spec = {"type": "object"}

    def set_override(
        operation_id: str, summary: str, body: str, target: str, links: Spec | None = None
    ) -> Spec:
        delete = link("deleteRoutingOverride", override_id="$response.body#/id")
        return change(
            operation_id,
            summary,
            override,
            status="201",
            body=ref[body],
            parameters=[parameter(target, "path")],
            statuses=_CHANGE_ERRORS,
            links={"DeleteOverride": delete, **(links or {})},
        )

    def remove(operation_id: str, summary: str, target: str) -> Spec:
        return change(
            operation_id,
            summary,
            anything,
            parameters=[parameter(target, "path")],
            statuses=("404", *CALLER_ERRORS),
        )

    return {
        _BASE: {
            "get": change(
                "getRouting",
                "Routing in force: models, overrides, nodes",
                ref["admin.routing"],
                statuses=CALLER_ERRORS,
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
                "drainNode",
                "Take no new jobs on a node",
                "admin.routing.drain.request",
                "node",
                {"UndrainNode": link("undrainNode", node="$request.path.node")},
            )
        },
        f"{_BASE}/nodes/{{node}}/undrain": {
            "post": remove("undrainNode", "Remove a node's drain (404: not drained)", "node")
        },
        f"{_BASE}/overrides/{{override_id}}": {
            "delete": remove("deleteRoutingOverride", "Remove one override", "override_id")
        },
    }
