"""The OpenAPI paths of the admin key API (``/v1/admin/keys``, scope ``admin``)."""

from __future__ import annotations

from functools import partial

from api_router.api.openapi_operation import Refs, Spec, done_operation, parameter

_ERRORS = ("400", "401", "403", "404", "409", "503")


def key_paths(ref: Refs) -> Spec:
    change = partial(done_operation, error=ref["error"], statuses=_ERRORS)
    key_id = parameter("key_id", "path", "the key id (k and 12 characters)")
    secret_id = parameter("secret_id", "path", "the signing secret id (s and 8 characters)")
    tenant = parameter("tenant", "query", required=True)
    key = ref["admin.key"]
    return {
        "/v1/admin/keys": {
            "post": change(
                "createKey",
                "Create a key; its secrets are shown once",
                ref["admin.key.created"],
                status="201",
                body=ref["admin.key.create.request"],
            ),
            "get": change(
                "listKeys",
                "A tenant's keys (never secrets)",
                ref["admin.key.list"],
                parameters=[tenant],
            ),
        },
        "/v1/admin/keys/{key_id}": {
            "get": change("getKey", "One key (never secrets)", key, parameters=[key_id]),
        },
        "/v1/admin/keys/{key_id}/revoke": {
            "post": change(
                "revokeKey", "Revoke a key on every replica within 1 s", key, parameters=[key_id]
            ),
        },
        "/v1/admin/keys/{key_id}/signing-secrets": {
            "post": change(
                "addSigningSecret",
                "Add a signing secret (at most two active)",
                ref["admin.key.signing_secret"],
                status="201",
                parameters=[key_id],
            ),
        },
        "/v1/admin/keys/{key_id}/signing-secrets/{secret_id}": {
            "delete": change(
                "deleteSigningSecret",
                "Delete a signing secret",
                key,
                parameters=[key_id, secret_id],
            ),
        },
    }
