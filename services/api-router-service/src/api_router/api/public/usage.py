"""``GET /v1/usage``: the calling key's tenant, this month (or ``month=YYYY-MM``).

A key only ever sees its own tenant: asking for another one (``tenant=``) is refused 403,
admins included, who read any tenant through ``/v1/admin/tenants/{tenant}/usage``.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from api_router.api.json_response import json_response
from api_router.api.public.usage_contract import UsageReport, usage_report
from api_router.api.request_context import context_of
from api_router.errors import ApiError
from api_router.limiter.limit_set import LimitSet, NoPlan
from api_router.limiter.month_usage import current_month, is_month
from api_router.services import Services, services_of


async def own_usage(request: Request) -> Response:
    principal = context_of(request.scope).authenticated()
    asked = request.query_params.get("tenant")
    if asked is not None and asked != principal.tenant:
        raise ApiError(
            "forbidden",
            "a key reads its own tenant's usage only; admins read any tenant's at "
            "/v1/admin/tenants/{tenant}/usage",
        )
    services = services_of(request.scope)
    return json_response(await read_report(services, principal.tenant, month_of(request)))


async def read_report(services: Services, tenant: str, month: str) -> UsageReport:
    [counted] = await services.month_usage.read([tenant], month)
    return usage_report(tenant, counted, plan_limits(services, tenant))


def plan_limits(services: Services, tenant: str) -> LimitSet | None:
    """The tenant's plan as resolved for admission (None: no policies, or no plan)."""
    try:
        return services.policies.limits_for(tenant, "", "")
    except NoPlan:
        return None


def month_of(request: Request) -> str:
    month = request.query_params.get("month")
    if month is None:
        return current_month()
    if not is_month(month):
        raise ApiError("invalid_request", "month must be YYYY-MM, e.g. 2026-05")
    return month
