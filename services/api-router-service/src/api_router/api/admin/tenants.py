"""``/v1/admin/tenants``: every tenant's month at a glance, and one tenant's in full
(scope ``admin``). Tenants are those of the policies file and those that have had a key."""

from __future__ import annotations

import re

from starlette.requests import Request
from starlette.responses import Response

from api_router.api.json_response import json_response
from api_router.api.public.usage import month_of, plan_limits, read_report
from api_router.api.public.usage_contract import TenantList, tenant_summary
from api_router.auth.key_record import TENANT_PATTERN
from api_router.errors import ApiError
from api_router.services import Services, services_of


async def list_tenants(request: Request) -> Response:
    services = services_of(request.scope)
    month = month_of(request)
    keys = await _known_tenants(services)
    names = sorted(keys)
    counted = await services.month_usage.read(names, month)
    summaries = [
        tenant_summary(name, keys[name], usage, plan_limits(services, name))
        for name, usage in zip(names, counted, strict=True)
    ]
    return json_response(TenantList(month, summaries))


async def tenant_usage(request: Request) -> Response:
    services = services_of(request.scope)
    tenant = request.path_params["tenant"]
    if not re.fullmatch(TENANT_PATTERN, tenant):
        raise ApiError("invalid_request", "tenant: 1 to 64 letters, digits and . _ - only")
    month = month_of(request)
    if tenant not in await _known_tenants(services):
        raise ApiError("not_found", f"no tenant {tenant!r}: none in the policies, no key")
    return json_response(await read_report(services, tenant, month))


async def _known_tenants(services: Services) -> dict[str, int]:
    """Tenant -> its number of keys."""
    keys = await services.key_store.tenants()
    policies = services.policies.policies
    for tenant in policies.tenants if policies is not None else ():
        keys.setdefault(tenant, 0)
    return keys
