"""The OpenAPI paths of the admin key API, for ``api/openapi.py`` to merge in."""

from __future__ import annotations

from typing import Any

import msgspec

from api_router.api.admin.key_contract import (
    CreatedKey,
    CreateKeyRequest,
    KeyInfo,
    KeyList,
    NewSigningSecret,
)

STRUCTS: list[type[msgspec.Struct]] = [
    CreateKeyRequest, CreatedKey, KeyInfo, KeyList, NewSigningSecret
]  # fmt: skip
# How a request proves who sent it: a bearer API key, or an RFC 9421 signature (hmac-sha256
# with Content-Digest; see docs/api.md), which OpenAPI has no scheme for.
SIGNATURE_SCHEME = {
    "type": "apiKey",
    "in": "header",
    "name": "Signature",
    "description": "RFC 9421 HTTP Message Signature (hmac-sha256) with Signature-Input "
    "and, for a body, Content-Digest (RFC 9530 sha-256); keyid is the key id",
}
_SECURITY: list[dict[str, list[str]]] = [
    {"bearerAuth": []}, {"apiKeyHeader": []}, {"httpSignature": []}
]  # fmt: skip
_ERRORS = ("400", "401", "403", "404", "409", "503")


def key_paths(schemas: list[dict[str, Any]], error: dict[str, Any]) -> dict[str, Any]:
    """``schemas``: the references of :data:`STRUCTS`, in order."""
    create, created, info, listing, secret = schemas
    key_id = _path_parameter("key_id", "the key id (k and 12 characters)")
    secret_id = _path_parameter("secret_id", "the signing secret id (s and 8 characters)")
    tenant = {"name": "tenant", "in": "query", "required": True, "schema": {"type": "string"}}
    return {
        "/v1/admin/keys": {
            "post": _operation(
                "createKey",
                "Create a key; its secrets are shown once",
                created,
                error,
                "201",
                body=create,
            ),  # fmt: skip
            "get": _operation(
                "listKeys", "A tenant's keys (never secrets)", listing, error, parameters=[tenant]
            ),  # fmt: skip
        },
        "/v1/admin/keys/{key_id}": {
            "get": _operation(
                "getKey", "One key (never secrets)", info, error, parameters=[key_id]
            ),  # fmt: skip
        },
        "/v1/admin/keys/{key_id}/revoke": {
            "post": _operation(
                "revokeKey",
                "Revoke a key on every replica within 1 s",
                info,
                error,
                parameters=[key_id],
            ),  # fmt: skip
        },
        "/v1/admin/keys/{key_id}/signing-secrets": {
            "post": _operation(
                "addSigningSecret",
                "Add a signing secret (at most two active)",
                secret,
                error,
                "201",
                parameters=[key_id],
            ),  # fmt: skip
        },
        "/v1/admin/keys/{key_id}/signing-secrets/{secret_id}": {
            "delete": _operation(
                "deleteSigningSecret",
                "Delete a signing secret",
                info,
                error,
                parameters=[key_id, secret_id],
            ),  # fmt: skip
        },
    }


def _operation(
    operation: str,
    summary: str,
    answer: dict[str, Any],
    error: dict[str, Any],
    status: str = "200",
    body: dict[str, Any] | None = None,
    parameters: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "operationId": operation,
        "summary": summary,
        "security": _SECURITY,
        "parameters": parameters or [],
        "responses": {
            status: {"description": "Done", "content": _json(answer)},
            **{
                code: {"description": "An error from the catalog", "content": _json(error)}
                for code in _ERRORS
            },
        },  # fmt: skip
    }
    if body is not None:
        spec["requestBody"] = {"required": True, "content": _json(body)}
    return spec


def _json(schema: dict[str, Any]) -> dict[str, Any]:
    return {"application/json": {"schema": schema}}


def _path_parameter(name: str, description: str) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "description": description,
            "schema": {"type": "string"}}  # fmt: skip
