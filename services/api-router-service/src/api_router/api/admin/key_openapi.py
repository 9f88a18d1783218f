"""The OpenAPI paths of the admin key API (``/v1/admin/keys``, scope ``admin``)."""

from __future__ import annotations

from api_router.api.openapi_operation import Refs, Spec, answer, errors, operation, parameter

_ERRORS = ("400", "401", "403", "404", "409", "503")


def key_paths(ref: Refs) -> Spec:
    def change(
        operation_id: str,
        summary: str,
        done: str,
        status: str = "200",
        body: str | None = None,
        parameters: tuple[Spec, ...] = (),
    ) -> Spec:
        responses = {status: answer("Done", ref[done]), **errors(ref["error"], _ERRORS)}
        request = None if body is None else ref[body]
        return operation(
            operation_id, summary, responses, body=request, parameters=list(parameters)
        )

    key_id = parameter("key_id", "path", "the key id (k and 12 characters)")
    secret_id = parameter("secret_id", "path", "the signing secret id (s and 8 characters)")
    tenant = parameter("tenant", "query", required=True)
    return {
        "/v1/admin/keys": {
            "post": change(
                "createKey",
                "Create a key; its secrets are shown once",
                "admin.key.created",
                "201",
                body="admin.key.create.request",
            ),
            "get": change(
                "listKeys",
                "A tenant's keys (never secrets)",
                "admin.key.list",
                parameters=(tenant,),
            ),
        },
        "/v1/admin/keys/{key_id}": {
            "get": change("getKey", "One key (never secrets)", "admin.key", parameters=(key_id,)),
        },
        "/v1/admin/keys/{key_id}/revoke": {
            "post": change(
                "revokeKey",
                "Revoke a key on every replica within 1 s",
                "admin.key",
                parameters=(key_id,),
            ),
        },
        "/v1/admin/keys/{key_id}/signing-secrets": {
            "post": change(
                "addSigningSecret",
                "Add a signing secret (at most two active)",
                "admin.key.signing_secret",
                "201",
                parameters=(key_id,),
            ),
        },
        "/v1/admin/keys/{key_id}/signing-secrets/{secret_id}": {
            "delete": change(
                "deleteSigningSecret",
                "Delete a signing secret",
                "admin.key",
                parameters=(key_id, secret_id),
            ),
        },
    }
