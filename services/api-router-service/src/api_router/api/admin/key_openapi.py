"""The OpenAPI paths of the admin key API (``/v1/admin/keys``, scope ``admin``)."""

from __future__ import annotations

from functools import partial

from api_router.api.openapi_operation import (
    Refs,
    Spec,
    done_operation,
    link,
    matching,
    parameter,
)
from api_router.auth.api_keys import KEY_ID_PATTERN, SIGNING_SECRET_ID_PATTERN
from api_router.auth.key_record import TENANT_PATTERN

# Every admin call can meet the caller's refusal (401, 403) and Redis away (503).
CALLER_ERRORS = ("401", "403", "503")
# A JSON body: malformed or invalid (400), late (408), too large (413), not JSON (415).
BODY_ERRORS = ("400", "408", "413", "415")


def key_paths(ref: Refs) -> Spec:
    change = partial(done_operation, error=ref["error"])
    key_id = parameter("key_id", "path", schema=matching(KEY_ID_PATTERN))
    secret_id = parameter("secret_id", "path", schema=matching(SIGNING_SECRET_ID_PATTERN))
    tenant = parameter("tenant", "query", required=True, schema=matching(TENANT_PATTERN))
    key = ref["admin.key"]
    one_key = ("400", "404", *CALLER_ERRORS)  # 400: a key id that is not one
    created_id = "$response.body#/id"
    key_links = {
        "GetCreatedKey": link("getKey", key_id=created_id),
        "RevokeCreatedKey": link("revokeKey", key_id=created_id),
        "AddSigningSecret": link("addSigningSecret", key_id=created_id),
        "DeleteFirstSigningSecret": link(
            "deleteSigningSecret",
            key_id=created_id,
            secret_id="$response.body#/signing_secrets/0/id",
        ),
    }
    secret_links = {
        "DeleteAddedSigningSecret": link(
            "deleteSigningSecret", key_id="$request.path.key_id", secret_id=created_id
        )
    }
    return {
        "/v1/admin/keys": {
            "post": change(
                "createKey",
                "Create a key; its secrets are shown once",
                ref["admin.key.created"],
                status="201",
                body=ref["admin.key.create.request"],
                statuses=(*BODY_ERRORS, *CALLER_ERRORS),
                links=key_links,
            ),
            "get": change(
                "listKeys",
                "A tenant's keys (never secrets)",
                ref["admin.key.list"],
                parameters=[tenant],
                statuses=("400", *CALLER_ERRORS),
            ),
        },
        "/v1/admin/keys/{key_id}": {
            "get": change(
                "getKey", "One key (never secrets)", key, parameters=[key_id], statuses=one_key
            ),
        },
        "/v1/admin/keys/{key_id}/revoke": {
            "post": change(
                "revokeKey",
                "Revoke a key on every replica within 1 s",
                key,
                parameters=[key_id],
                statuses=one_key,
            ),
        },
        "/v1/admin/keys/{key_id}/signing-secrets": {
            "post": change(
                "addSigningSecret",
                "Add a signing secret (at most two active; 409 for a third or a revoked key)",
                ref["admin.key.signing_secret"],
                status="201",
                parameters=[key_id],
                statuses=(*one_key, "409"),
                links=secret_links,
            ),
        },
        "/v1/admin/keys/{key_id}/signing-secrets/{secret_id}": {
            "delete": change(
                "deleteSigningSecret",
                "Delete a signing secret",
                key,
                parameters=[key_id, secret_id],
                statuses=one_key,
            ),
        },
    }
