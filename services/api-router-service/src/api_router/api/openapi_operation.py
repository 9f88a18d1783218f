"""How the gateway's OpenAPI operations are written, for every API area's paths module:
who may call (one security requirement for every authenticated route), JSON bodies, the
answer and the catalog errors."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Final

# An OpenAPI object (operation, schema, parameter...), and the component reference of each
# contract by its name in api/contract_registry.py.
Spec = dict[str, Any]
Refs = Mapping[str, Spec]

# Every authenticated route takes an API key (bearer or X-API-Key) or an RFC 9421 signature.
SECURITY: Final[list[dict[str, list[str]]]] = [
    {"bearerAuth": []},
    {"apiKeyHeader": []},
    {"httpSignature": []},
]
SECURITY_SCHEMES: Final[Spec] = {
    "bearerAuth": {"type": "http", "scheme": "bearer"},
    "apiKeyHeader": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
    # hmac-sha256 with Content-Digest (see docs/api.md), which OpenAPI has no scheme for.
    "httpSignature": {
        "type": "apiKey",
        "in": "header",
        "name": "Signature",
        "description": "RFC 9421 HTTP Message Signature (hmac-sha256) with Signature-Input "
        "and, for a body, Content-Digest (RFC 9530 sha-256); keyid is the key id",
    },
}


def operation(
    operation_id: str,
    summary: str,
    responses: Spec,
    *,
    body: Spec | None = None,
    parameters: list[Spec] | None = None,
    secured: bool = True,
) -> Spec:
    """One operation; ``body`` is the schema of a required JSON request body."""
    spec: Spec = {"operationId": operation_id, "summary": summary}
    if secured:
        spec["security"] = SECURITY
    if parameters is not None:
        spec["parameters"] = parameters
    if body is not None:
        spec["requestBody"] = {"required": True, "content": json_content(body)}
    spec["responses"] = responses
    return spec


def done_operation(
    operation_id: str,
    summary: str,
    done: Spec,
    error: Spec,
    statuses: Iterable[str],
    *,
    status: str = "200",
    body: Spec | None = None,
    parameters: Iterable[Spec] = (),
    links: Spec | None = None,
) -> Spec:
    """An operation of the admin API: ``done`` with ``status`` (and ``links`` to what its
    answer names), else an error of ``statuses`` shaped by ``error``."""
    success = answer("Done", done)
    if links is not None:
        success["links"] = links
    responses = {status: success, **errors(error, statuses)}
    return operation(operation_id, summary, responses, body=body, parameters=list(parameters))


def link(operation_id: str, **parameters: str) -> Spec:
    """An OpenAPI link: ``operation_id`` called with ``parameters`` (runtime expressions
    such as ``$response.body#/id``)."""
    return {"operationId": operation_id, "parameters": parameters}


def answer(description: str, schema: Spec) -> Spec:
    return {"description": description, "content": json_content(schema)}


def errors(schema: Spec, statuses: Iterable[str]) -> Spec:
    """The responses of ``statuses``, each an error from the catalog shaped by ``schema``."""
    return {status: answer("An error from the catalog", schema) for status in sorted(statuses)}


def json_content(schema: Spec) -> Spec:
    return {"application/json": {"schema": schema}}


def parameter(
    name: str,
    where: str,
    description: str | None = None,
    *,
    required: bool = False,
    schema: Spec | None = None,
) -> Spec:
    """A parameter, a string unless ``schema`` says otherwise; path parameters are always
    required."""
    spec: Spec = {"name": name, "in": where, "required": required or where == "path"}
    if description is not None:
        spec["description"] = description
    spec["schema"] = schema or {"type": "string"}
    return spec


def matching(pattern: str) -> Spec:
    """A string the server checks against ``pattern`` (anchored, valid in both Python and
    JSON Schema)."""
    return {"type": "string", "pattern": pattern}
