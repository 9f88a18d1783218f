"""The route table: every path, its methods, its handler and who may call it.

Authentication is route middleware (``AuthMiddleware``: a signature or an API key, then
one of the route's scopes), not middleware around a mount: an unknown path or a wrong
method is answered 404 / 405 before credentials are asked for, and metrics and logs label
each request with its route's full path template. The admin API's scope is still declared
once, for every route under ``/v1/admin`` (:func:`_admin`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from api_router.api.admin import keys as admin_keys
from api_router.api.admin import routing as admin_routing
from api_router.api.admin import tenants as admin_tenants
from api_router.api.auth_middleware import AuthMiddleware
from api_router.api.idempotency_middleware import IdempotencyMiddleware
from api_router.api.openapi import openapi_document
from api_router.api.public.audit import audit_request, audit_requests
from api_router.api.public.embeddings import embed, embeddings
from api_router.api.public.inference import inference
from api_router.api.public.inference_jobs import inference_job
from api_router.api.public.metrics import metrics
from api_router.api.public.openai_chat import chat_completions, models
from api_router.api.public.status import healthz, readyz
from api_router.api.public.usage import own_usage
from api_router.auth.key_record import Scope

Endpoint = Callable[[Request], Awaitable[Response]]
# Inside the authentication: a key is scoped to the caller's tenant.
_IDEMPOTENT = Middleware(IdempotencyMiddleware)


def routes() -> list[Route]:
    return [
        Route(
            "/v1/inference",
            inference,
            methods=["POST"],
            middleware=[*_auth("inference", billable=True), _IDEMPOTENT],
        ),
        Route(
            "/v1/inference/{request_id}",
            inference_job,
            methods=["GET", "DELETE"],
            middleware=_auth("inference"),
        ),
        Route(
            "/v1/chat/completions",
            chat_completions,
            methods=["POST"],
            middleware=[*_auth("inference", billable=True), _IDEMPOTENT],
        ),
        Route(
            "/v1/embeddings",
            embeddings,
            methods=["POST"],
            middleware=_auth("inference", billable=True),
        ),
        Route("/v1/embed", embed, methods=["POST"], middleware=_auth("inference", billable=True)),
        Route("/v1/models", models, methods=["GET"], middleware=_auth("inference")),
        Route(
            "/v1/audit/requests/{request_id}",
            audit_request,
            methods=["GET"],
            middleware=_auth("audit:read", "admin"),
        ),
        Route("/v1/audit/requests", audit_requests, methods=["GET"], middleware=_auth("admin")),
        Route(
            "/v1/usage",
            own_usage,
            methods=["GET"],
            middleware=_auth("inference", "audit:read", "admin"),
        ),
        *_admin(
            ("POST", "/keys", admin_keys.create_key),
            ("GET", "/keys", admin_keys.list_keys),
            ("GET", "/keys/{key_id}", admin_keys.show_key),
            ("POST", "/keys/{key_id}/revoke", admin_keys.revoke_key),
            ("POST", "/keys/{key_id}/signing-secrets", admin_keys.add_signing_secret),
            (
                "DELETE",
                "/keys/{key_id}/signing-secrets/{secret_id}",
                admin_keys.delete_signing_secret,
            ),
            ("GET", "/routing", admin_routing.show_routing),
            ("PUT", "/routing/models/{model}/weights", admin_routing.put_weights),
            ("PUT", "/routing/models/{model}/pin", admin_routing.put_pin),
            ("POST", "/routing/nodes/{node}/drain", admin_routing.drain),
            ("POST", "/routing/nodes/{node}/undrain", admin_routing.undrain),
            ("DELETE", "/routing/overrides/{override_id}", admin_routing.delete_override),
            ("GET", "/tenants", admin_tenants.list_tenants),
            ("GET", "/tenants/{tenant}/usage", admin_tenants.tenant_usage),
        ),
        *(Route(path, handler, methods=["GET"]) for path, handler in _OPERATIONAL),
    ]


# Operational endpoints: no key (probes and scrapers carry none), and still served while
# the gateway shuts down (readiness then says so).
_OPERATIONAL: tuple[tuple[str, Endpoint], ...] = (
    ("/v1/status/healthz", healthz),
    ("/v1/status/readyz", readyz),
    ("/metrics", metrics),
    ("/openapi.json", openapi_document),
)
OPERATIONAL_PATHS = frozenset(path for path, _ in _OPERATIONAL)


def _admin(*table: tuple[str, str, Endpoint]) -> list[Route]:
    """The admin API: ``(method, path under /v1/admin, handler)``, every one scope ``admin``."""
    admin = _auth("admin")
    return [
        Route("/v1/admin" + path, handler, methods=[method], middleware=admin)
        for method, path, handler in table
    ]


def _auth(*scopes: Scope, billable: bool = False) -> list[Middleware]:
    """Authenticate, then require any one of ``scopes``. Requests to ``billable`` routes
    leave a usage record and an audit record."""
    return [Middleware(AuthMiddleware, scopes=scopes, billable=billable)]
