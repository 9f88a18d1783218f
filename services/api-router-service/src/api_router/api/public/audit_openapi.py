"""The OpenAPI paths of ``/v1/audit/requests``."""

from __future__ import annotations

from typing import get_args

from api_router.api.openapi_operation import (
    Refs,
    Spec,
    answer,
    errors,
    matching,
    operation,
    parameter,
)
from api_router.api.public.audit import MAX_LIMIT
from api_router.api.request_context import REQUEST_ID_PATTERN
from api_router.auth.key_record import TENANT_PATTERN
from api_router.usage.record import Status

_TIME: Spec = {"type": "string", "format": "date-time"}


def audit_paths(ref: Refs) -> Spec:
    def lookup(
        operation_id: str, summary: str, found: str, statuses: tuple[str, ...], params: list[Spec]
    ) -> Spec:
        responses = {"200": answer("Found", ref[found]), **errors(ref["error"], statuses)}
        return {"get": operation(operation_id, summary, responses, parameters=params)}

    return {
        "/v1/audit/requests/{request_id}": lookup(
            "getAuditRecord",
            "One request's audit record: own tenant with audit:read, any with admin",
            "audit.record",
            ("400", "401", "403", "404", "503"),
            [parameter("request_id", "path", schema=matching(REQUEST_ID_PATTERN))],
        ),
        "/v1/audit/requests": lookup(
            "listAuditRecords",
            "Audit records, newest first (admin)",
            "audit.list",
            ("400", "401", "403", "503"),
            [
                parameter("tenant", "query", "only this tenant", schema=matching(TENANT_PATTERN)),
                parameter("since", "query", "inclusive", schema=_TIME),
                parameter("until", "query", "inclusive; default now", schema=_TIME),
                parameter(
                    "status", "query", schema={"type": "string", "enum": list(get_args(Status))}
                ),
                parameter(
                    "limit",
                    "query",
                    "default 50",
                    schema={"type": "integer", "minimum": 1, "maximum": MAX_LIMIT},
                ),
                parameter(
                    "cursor",
                    "query",
                    "next_cursor of the previous page",
                    schema=matching(r"^[0-9]{1,15}\.[0-9]{1,15}$"),
                ),
            ],
        ),
    }
