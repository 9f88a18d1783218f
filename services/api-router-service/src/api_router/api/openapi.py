"""The OpenAPI 3.1 document of the public API: the contracts of the registry as its
components, and each API area's paths."""

from __future__ import annotations

from typing import Any

import msgspec
from starlette.requests import Request
from starlette.responses import Response

from api_router import __version__
from api_router.api.admin.key_openapi import key_paths
from api_router.api.admin.routing_openapi import routing_paths
from api_router.api.contract_registry import CONTRACTS
from api_router.api.openapi_operation import SECURITY_SCHEMES, Spec, answer
from api_router.api.public.audit_openapi import audit_paths
from api_router.api.public.inference_openapi import inference_paths
from api_router.api.public.openai_openapi import openai_paths
from api_router.api.public.status_openapi import status_paths
from api_router.api.public.usage_openapi import usage_paths
from api_router.errors import CATALOG
from api_router.services import services_of

_REF = "#/components/schemas/{name}"
_AREAS = (
    inference_paths,
    openai_paths,
    usage_paths,
    audit_paths,
    key_paths,
    routing_paths,
    status_paths,
)
# What the edge (api/edge_protocol.py) answers to any request, before it reaches a route, in
# the gateway's own error shape: a malformed request (400), a head not complete within
# server.header_timeout_s (408), a head over the size or field limits (431).
_EDGE_ERRORS = ("400", "408", "431")


def build_openapi() -> dict[str, Any]:
    refs, schemas = msgspec.json.schema_components(CONTRACTS.values(), ref_template=_REF)
    ref = dict(zip(CONTRACTS, refs, strict=True))
    paths: dict[str, Any] = {}
    for area in _AREAS:
        paths.update(area(ref))
    for operations in paths.values():
        for spec in operations.values():
            _add_edge_errors(spec["responses"], ref["error"])
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "api-router",
            "version": __version__,
            "description": "Authenticated gateway for LLM inference. Error codes: "
            + ", ".join(f"{code} ({kind.status})" for code, kind in CATALOG.items()),
        },
        "paths": paths,
        "components": {"schemas": schemas, "securitySchemes": SECURITY_SCHEMES},
    }


def _add_edge_errors(responses: dict[str, Any], error: Spec) -> None:
    """Every operation can get the edge's answers; where the route answers the same status
    in its own shape (OpenAI's), either shape may come."""
    for status in _EDGE_ERRORS:
        if status not in responses:
            responses[status] = answer("Refused at the edge, before any route", error)
            continue
        content = responses[status]["content"]["application/json"]
        if content["schema"] != error:
            content["schema"] = {"anyOf": [content["schema"], error]}


async def openapi_document(request: Request) -> Response:
    return Response(services_of(request.scope).openapi, media_type="application/json")
