"""The OpenAPI paths of ``/v1/audit/requests``."""

from __future__ import annotations

from api_router.api.openapi_operation import Refs, Spec, answer, errors, operation, parameter

_ERRORS = ("400", "401", "403", "404", "503")


def audit_paths(ref: Refs) -> Spec:
    def lookup(operation_id: str, summary: str, found: str, parameters: list[Spec]) -> Spec:
        responses = {"200": answer("Found", ref[found]), **errors(ref["error"], _ERRORS)}
        return {"get": operation(operation_id, summary, responses, parameters=parameters)}

    return {
        "/v1/audit/requests/{request_id}": lookup(
            "getAuditRecord",
            "One request's audit record: own tenant with audit:read, any with admin",
            "audit.record",
            [parameter("request_id", "path", "req_ and 32 hex digits")],
        ),
        "/v1/audit/requests": lookup(
            "listAuditRecords",
            "Audit records, newest first (admin)",
            "audit.list",
            [
                parameter("tenant", "query", "only this tenant's records"),
                parameter("since", "query", "RFC 3339 time, inclusive"),
                parameter("until", "query", "RFC 3339 time, inclusive; default now"),
                parameter("status", "query", "ok, denied, upstream_error, timeout, cancelled"),
                parameter("limit", "query", "1 to 500, default 50"),
                parameter("cursor", "query", "next_cursor of the previous page"),
            ],
        ),
    }
