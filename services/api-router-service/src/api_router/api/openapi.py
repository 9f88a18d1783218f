"""The OpenAPI 3.1 document of the public API, built from the structs the handlers use."""

from __future__ import annotations

from typing import Any

import msgspec
from starlette.requests import Request
from starlette.responses import Response

from api_router import __version__
from api_router.api.admin import key_openapi
from api_router.api.admin.routing_openapi import routing_paths
from api_router.api.error_responses import ErrorResponse
from api_router.api.public.audit import AuditList
from api_router.api.public.inference_contract import (
    InferenceRequest,
    InferenceResponse,
    StreamDelta,
    StreamDone,
)
from api_router.api.public.openai_contract import (
    ChatCompletion,
    ChatCompletionChunk,
    ChatCompletionRequest,
    ModelList,
    OpenAIError,
)
from api_router.api.public.status import StatusReport
from api_router.errors import CATALOG
from api_router.services import services_of
from api_router.usage.record import AuditRecord, UsageRecord

_REF = "#/components/schemas/{name}"
_INFERENCE_ERRORS = ("400", "401", "403", "404", "408", "413", "415", "502", "503", "504")
_SECURITY: list[dict[str, list[str]]] = [{"bearerAuth": []}, {"apiKeyHeader": []}]
_STREAM_OF_INFERENCE = (
    "With `stream: true`: server-sent events `chunk` (data: inference.chunk), then `done` "
    "(data: inference.done) or `error` (data: the error shape); comment lines are heartbeats."
)


def build_openapi() -> dict[str, Any]:
    # UsageRecord is not an HTTP body; it is listed as the schema of the Kafka messages.
    structs = [InferenceRequest, InferenceResponse, ErrorResponse, StatusReport, StreamDelta,
               StreamDone, ChatCompletionRequest, ChatCompletion, ChatCompletionChunk,
               ModelList, OpenAIError, AuditRecord, AuditList, UsageRecord,
               *key_openapi.STRUCTS]  # fmt: skip
    (request, response, error, status, *rest), schemas = msgspec.json.schema_components(
        structs, ref_template=_REF
    )
    delta, done, chat_request, chat, chat_chunk, model_list, openai_error, *audits = rest
    audit, audit_list, _, *key_schemas = audits
    admin_routing, admin_routing_schemas = routing_paths(_REF, error)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "api-router",
            "version": __version__,
            "description": "Authenticated gateway for LLM inference. Error codes: "
            + ", ".join(f"{code} ({kind.status})" for code, kind in CATALOG.items()),
        },
        "paths": {
            "/v1/inference": {
                "post": {
                    "operationId": "createInference",
                    "summary": "Run a chat completion on the best available node",
                    "security": _SECURITY,
                    "requestBody": {"required": True, "content": _json(request)},
                    "responses": {
                        "200": {
                            "description": "The completion, with router-computed timings. "
                            + _STREAM_OF_INFERENCE,
                            "headers": {
                                "X-Request-Id": {"schema": {"type": "string"}},
                                "Server-Timing": {"schema": {"type": "string"}},
                                "X-Route-Node": {"schema": {"type": "string"}},
                                "X-Route-Attempts": {"schema": {"type": "string"}},
                            },
                            "content": {
                                **_json(response),
                                **_event_stream({"oneOf": [delta, done, error]}),
                            },
                        },
                        **{code: _error(error) for code in _INFERENCE_ERRORS},
                    },
                }
            },
            "/v1/chat/completions": {
                "post": {
                    "operationId": "createChatCompletion",
                    "summary": "OpenAI-compatible chat completion (whole or streamed)",
                    "security": _SECURITY,
                    "requestBody": {"required": True, "content": _json(chat_request)},
                    "responses": {
                        "200": {
                            "description": "The completion; with `stream: true`, `data:` "
                            "frames holding chat.completion.chunk, ending with `data: [DONE]`",
                            "content": {**_json(chat), **_event_stream(chat_chunk)},
                        },
                        **{code: _error(openai_error) for code in _INFERENCE_ERRORS},
                    },
                }
            },
            "/v1/models": {
                "get": {
                    "operationId": "listModels",
                    "summary": "OpenAI-compatible list of the models healthy nodes serve",
                    "security": _SECURITY,
                    "responses": {
                        "200": {"description": "The models", "content": _json(model_list)},
                        **{code: _error(openai_error) for code in ("401", "403")},
                    },
                }
            },
            "/v1/audit/requests/{request_id}": _audit(
                "getAuditRecord",
                "One request's audit record: own tenant with audit:read, any with admin",
                audit,
                error,
                parameters=[_parameter("request_id", "path", "req_ and 32 hex digits")],
            ),
            "/v1/audit/requests": _audit(
                "listAuditRecords",
                "Audit records, newest first (admin)",
                audit_list,
                error,
                parameters=[
                    _parameter("tenant", "query", "only this tenant's records"),
                    _parameter("since", "query", "RFC 3339 time, inclusive"),
                    _parameter("until", "query", "RFC 3339 time, inclusive; default now"),
                    _parameter("status", "query", "ok, denied, upstream_error, timeout, cancelled"),
                    _parameter("limit", "query", "1 to 500, default 50"),
                    _parameter("cursor", "query", "next_cursor of the previous page"),
                ],
            ),
            **key_openapi.key_paths(key_schemas, error),
            **admin_routing,
            "/v1/status/healthz": _status("getHealth", "Liveness: the process is up", status),
            "/v1/status/readyz": _status(
                "getReadiness", "Readiness: Redis, config, workers", status
            ),
            "/metrics": {
                "get": {
                    "operationId": "getMetrics",
                    "summary": "Prometheus metrics",
                    "responses": {
                        "200": {
                            "description": "Prometheus text exposition",
                            "content": {"text/plain": {"schema": {"type": "string"}}},
                        }
                    },
                }
            },
        },
        "components": {
            "schemas": {**schemas, **admin_routing_schemas},
            "securitySchemes": {
                "bearerAuth": {"type": "http", "scheme": "bearer"},
                "apiKeyHeader": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
                "httpSignature": key_openapi.SIGNATURE_SCHEME,
            },
        },
    }


async def openapi_document(request: Request) -> Response:
    return Response(services_of(request.scope).openapi, media_type="application/json")


def _json(schema: dict[str, Any]) -> dict[str, Any]:
    return {"application/json": {"schema": schema}}


def _event_stream(schema: dict[str, Any] | None = None) -> dict[str, Any]:
    """``text/event-stream``; ``schema`` describes the JSON in each ``data:`` line."""
    body: dict[str, Any] = {"type": "string"}
    if schema is not None:
        body["x-data-schema"] = schema
    return {"text/event-stream": {"schema": body}}


def _error(schema: dict[str, Any]) -> dict[str, Any]:
    return {"description": "An error from the catalog", "content": _json(schema)}


def _audit(
    operation: str,
    summary: str,
    body: dict[str, Any],
    error: dict[str, Any],
    parameters: list[dict[str, Any]],
) -> dict[str, Any]:
    return {
        "get": {
            "operationId": operation,
            "summary": summary,
            "security": _SECURITY,
            "parameters": parameters,
            "responses": {
                "200": {"description": "Found", "content": _json(body)},
                **{code: _error(error) for code in ("400", "401", "403", "404", "503")},
            },
        }
    }


def _parameter(name: str, where: str, description: str) -> dict[str, Any]:
    return {
        "name": name,
        "in": where,
        "required": where == "path",
        "description": description,
        "schema": {"type": "string"},
    }


def _status(operation: str, summary: str, status: dict[str, Any]) -> dict[str, Any]:
    return {
        "get": {
            "operationId": operation,
            "summary": summary,
            "responses": {
                "200": {"description": "Up", "content": _json(status)},
                "503": {"description": "Down; the components say why", "content": _json(status)},
            },
        }
    }
