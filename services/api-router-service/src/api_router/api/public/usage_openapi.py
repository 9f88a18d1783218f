"""The OpenAPI paths of ``GET /v1/usage`` and of the admins' ``/v1/admin/tenants``."""

from __future__ import annotations

from functools import partial

from api_router.api.admin.key_openapi import CALLER_ERRORS
from api_router.api.openapi_operation import Refs, Spec, done_operation, matching, parameter
from api_router.auth.key_record import TENANT_PATTERN
from api_router.limiter.month_usage import MONTH_PATTERN


def usage_paths(ref: Refs) -> Spec:
    read = partial(done_operation, error=ref["error"])
    month = parameter(
        "month", "query", "calendar month, UTC; default this one", schema=matching(MONTH_PATTERN)
    )
    tenant = matching(TENANT_PATTERN)
    return {
        "/v1/usage": {
            "get": read(
                "getUsage",
                "The caller's tenant: this month's requests, tokens, cost, budget and limits",
                ref["usage.report"],
                # 403: a tenant other than the key's own.
                statuses=("400", *CALLER_ERRORS),
                parameters=[
                    month,
                    parameter("tenant", "query", "only the key's own", schema=tenant),
                ],
            )
        },
        "/v1/admin/tenants": {
            "get": read(
                "listTenants",
                "Every tenant's month: plan, keys, requests, tokens, cost, budget (admin)",
                ref["admin.tenant.list"],
                statuses=("400", *CALLER_ERRORS),
                parameters=[month],
            )
        },
        "/v1/admin/tenants/{tenant}/usage": {
            "get": read(
                "getTenantUsage",
                "One tenant's month in full (admin)",
                ref["usage.report"],
                statuses=("400", "404", *CALLER_ERRORS),
                parameters=[parameter("tenant", "path", schema=tenant), month],
            )
        },
    }
