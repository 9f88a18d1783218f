"""Route-level middleware: authenticate the caller and require the route's scope."""

from __future__ import annotations

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Receive, Scope, Send

from api_router.api.request_context import context_of
from api_router.auth.authenticator import KeyRefused, require_scope
from api_router.auth.key_store import Scope as KeyScope
from api_router.services import services_of


class AuthMiddleware:
    def __init__(self, app: ASGIApp, scopes: tuple[KeyScope, ...], billable: bool) -> None:
        self.app = app
        self.required_scopes = scopes  # any one of them will do
        self.billable = billable

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = Headers(scope=scope)
        context = context_of(scope)
        context.billable = self.billable
        usage = context.usage
        usage.auth_method = "api_key"
        try:
            principal = await services_of(scope).authenticator.authenticate(
                headers.get("authorization"), headers.get("x-api-key")
            )
        except KeyRefused as refused:
            usage.tenant, usage.key_id = refused.tenant, refused.key_id
            raise
        context.principal = principal
        usage.tenant, usage.key_id = principal.tenant, principal.key_id
        context.telemetry.set_principal(principal.tenant, principal.key_id)
        require_scope(principal, self.required_scopes)
        await self.app(scope, receive, send)
