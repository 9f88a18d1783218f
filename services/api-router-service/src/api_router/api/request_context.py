"""Per-request context: the request id, telemetry and, once authenticated, the principal.

:class:`RequestContextMiddleware` is the outermost of our middleware, so every answer,
error or not, carries ``X-Request-Id`` and is counted and logged once.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field

from starlette.datastructures import Headers, MutableHeaders
from starlette.routing import BaseRoute, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api_router.auth.authenticator import Principal
from api_router.dispatch.streamed_job import Outcome
from api_router.services import Services, services_of
from api_router.telemetry.logs import request_id_var
from api_router.telemetry.request_telemetry import RequestTelemetry

_CONTEXT_KEY = "api_router.context"


@dataclass(slots=True)
class RequestContext:
    request_id: str
    telemetry: RequestTelemetry
    arrived_at: float = field(default_factory=time.time)  # epoch seconds, for deadlines
    principal: Principal | None = None
    error_code: str | None = None
    # What an inference request did, for usage and audit records. Set by both APIs, whole
    # or streamed; for a stream cut short, the tokens are those produced until then.
    streamed: bool = False
    node_id: str | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    ttft_ms: float | None = None  # streamed: arrival to the first text handed to the client
    outcome: Outcome | None = None  # None: the request never reached a node

    def authenticated(self) -> Principal:
        if self.principal is None:  # only reachable if a route forgot its AuthMiddleware
            raise RuntimeError("route needs authentication but has none")
        return self.principal


def context_of(scope: Scope) -> RequestContext:
    context: RequestContext = scope[_CONTEXT_KEY]
    return context


def new_request_id() -> str:
    return f"req_{uuid.uuid4().hex}"


class RequestContextMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        services: Services = services_of(scope)
        request_id = new_request_id()
        token = request_id_var.set(request_id)
        headers = Headers(scope=scope)
        telemetry = services.telemetry.start_request(
            scope["method"], scope["path"], headers.get("traceparent")
        )
        context = RequestContext(request_id, telemetry)
        scope[_CONTEXT_KEY] = context
        status = 500

        async def send_with_request_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                MutableHeaders(scope=message)["x-request-id"] = request_id
            await send(message)

        try:
            await self.app(scope, receive, send_with_request_id)
        finally:
            telemetry.finish(status, _route_name(scope.get("route")), context.error_code)
            request_id_var.reset(token)


def _route_name(route: BaseRoute | None) -> str | None:
    return route.path if isinstance(route, Route) else None
