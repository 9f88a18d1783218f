"""The OpenAPI paths of ``/v1/admin/routing`` (scope ``admin``), from the structs the
handlers decode and answer with; merged into the document by ``api/openapi.py``."""

from __future__ import annotations

from typing import Any

import msgspec

from api_router.api.admin.routing_contract import DrainRequest, PinRequest, WeightsRequest
from api_router.routing.override_set import Override
from api_router.routing.routing_view import RoutingView

_SECURITY: list[dict[str, list[str]]] = [{"bearerAuth": []}, {"apiKeyHeader": []}]
_BASE = "/v1/admin/routing"


def routing_paths(
    ref_template: str, error: dict[str, Any]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """``(paths, component schemas)`` of the admin routing API."""
    (view, weights, pin, drain, override), schemas = msgspec.json.schema_components(
        [RoutingView, WeightsRequest, PinRequest, DrainRequest, Override],
        ref_template=ref_template,
    )

    def operation(
        operation_id: str, summary: str, answer: dict[str, Any], status: str = "200",
        body: dict[str, Any] | None = None, params: tuple[str, ...] = (),
    ) -> dict[str, Any]:  # fmt: skip
        found: dict[str, Any] = {
            "operationId": operation_id,
            "summary": summary,
            "security": _SECURITY,
            "parameters": [_path_parameter(name) for name in params],
            "responses": {
                status: {"description": "Done", "content": _json(answer)},
                **{code: _error(error) for code in ("400", "401", "403", "404", "503")},
            },
        }
        if body is not None:
            found["requestBody"] = {"required": True, "content": _json(body)}
        return found

    object_schema: dict[str, Any] = {"type": "object"}
    paths = {
        _BASE: {"get": operation("getRouting", "Routing in force: models, overrides, nodes",
                                 view)},
        f"{_BASE}/models/{{model}}/weights": {"put": operation(
            "putRoutingWeights", "Set a model's pool weights", override, "201", weights,
            ("model",))},
        f"{_BASE}/models/{{model}}/pin": {"put": operation(
            "putRoutingPin", "Restrict a model to nodes", override, "201", pin, ("model",))},
        f"{_BASE}/nodes/{{node}}/drain": {"post": operation(
            "drainNode", "Take no new jobs on a node", override, "201", drain, ("node",))},
        f"{_BASE}/nodes/{{node}}/undrain": {"post": operation(
            "undrainNode", "Remove a node's drain", object_schema, params=("node",))},
        f"{_BASE}/overrides/{{override_id}}": {"delete": operation(
            "deleteRoutingOverride", "Remove one override", object_schema,
            params=("override_id",))},
    }  # fmt: skip
    return paths, schemas


def _json(schema: dict[str, Any]) -> dict[str, Any]:
    return {"application/json": {"schema": schema}}


def _error(schema: dict[str, Any]) -> dict[str, Any]:
    return {"description": "An error from the catalog", "content": _json(schema)}


def _path_parameter(name: str) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
