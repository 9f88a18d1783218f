"""Per-request context: the request id, telemetry and, once authenticated, the principal.

:class:`RequestContextMiddleware` is the outermost of our middleware, so every answer,
error or not, carries ``X-Request-Id`` and is counted and logged once.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass, field
from typing import Final

from starlette.datastructures import Headers, MutableHeaders
from starlette.routing import BaseRoute, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api_router.auth.authenticator import Principal
from api_router.auth.content_digest import BodyCheck
from api_router.limiter.decision import LimitDecision
from api_router.services import Services, services_of
from api_router.telemetry.logs import request_id_var
from api_router.telemetry.request_telemetry import RequestTelemetry
from api_router.usage.record import UsageFacts, audit_message, build_records, usage_of

CONTEXT_KEY = "api_router.context"


@dataclass(slots=True)
class RequestContext:
    request_id: str
    telemetry: RequestTelemetry
    arrived_at: float = field(default_factory=time.time)  # epoch seconds, for deadlines
    principal: Principal | None = None
    error_code: str | None = None
    # Set by the auth middleware of billable routes: they leave a usage and audit record.
    billable: bool = False
    usage: UsageFacts = field(default_factory=UsageFacts)
    # Set by admission: the tenant's plan, and every queued / denied / fail-open decision
    # (for the audit record).
    plan: str | None = None
    limit_decisions: list[LimitDecision] = field(default_factory=list)
    # Signed requests: what the body must hash to; api/body.py checks it as it reads.
    body_check: BodyCheck | None = None
    # Added to whatever response this request gets (RateLimit fields, X-Route-*), errors
    # included.
    response_headers: dict[str, str] = field(default_factory=dict)
    # Requests of one session go to the same node (routing affinity).
    session_id: str | None = None
    # Set when this request replayed the stored answer of that one (Idempotency-Key): its
    # audit record says so, and it leaves no usage record (nothing ran, nothing is billed).
    replay_of: str | None = None

    def set_session(self, *candidates: str | None) -> None:
        """The first non-empty of ``metadata.session_id`` and ``X-Session-Id`` (bounded:
        it is hashed, never stored)."""
        self.session_id = next((c[:256] for c in candidates if c), None)

    def authenticated(self) -> Principal:
        if self.principal is None:  # only reachable if a route forgot its AuthMiddleware
            raise RuntimeError("route needs authentication but has none")
        return self.principal


def context_of(scope: Scope) -> RequestContext:
    context: RequestContext = scope[CONTEXT_KEY]
    return context


# Anchored for JSON Schema (the OpenAPI document states it); match with re.fullmatch.
REQUEST_ID_PATTERN: Final = r"^req_[0-9a-f]{32}$"


def new_request_id() -> str:
    return f"req_{secrets.token_hex(16)}"  # uuid4's randomness without building a UUID


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
        scope[CONTEXT_KEY] = context
        status = 500
        recorded = False

        def record_usage() -> None:
            nonlocal recorded
            if not recorded and context.billable and context.usage.identified:
                recorded = True
                write_records(services, context, status)

        async def send_with_request_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                response_headers = MutableHeaders(scope=message)
                response_headers["x-request-id"] = request_id
                for name, value in context.response_headers.items():
                    response_headers.setdefault(name, value)
                if "content-length" in response_headers:
                    # A whole answer: journaled before its head, so that head and body
                    # leave back to back and its client reads them in one wake-up.
                    record_usage()
            elif message["type"] == "http.response.body" and not message.get("more_body"):
                # The usage record is journaled before the last byte leaves: an answered
                # request keeps its record even if the process is killed right after.
                record_usage()
            await send(message)

        try:
            await self.app(scope, receive, send_with_request_id)
        finally:
            route = _route_name(scope.get("route"))
            telemetry.finish(status, route, context.error_code, context.usage)
            record_usage()  # a request that ended without a last byte (a client gone, a bug)
        # Reset only when nothing was raised: uvicorn logs a failure's traceback once this
        # has returned, in this same task (one per request), and that line needs the id.
        request_id_var.reset(token)


def write_records(services: Services, context: RequestContext, status: int) -> None:
    """Hand the request's usage record and audit message to the exporter (one journal
    write) and its audit record to the recent window (queued)."""
    audit = build_records(
        context.usage,
        request_id=context.request_id,
        http_status=status,
        error_code=context.error_code,
        started_at=context.arrived_at,
        elapsed_s=time.perf_counter() - context.telemetry.started,
        gateway_instance=services.instance_id,
        limit_decisions=context.limit_decisions,
        replay_of=context.replay_of,
    )
    message = audit_message(audit)
    if context.replay_of is None:
        services.usage.record(usage_of(audit), message)  # one write(2) for both
    else:
        services.usage.record(message)  # a replay is audited, never billed twice
    services.audit.remember(audit)


def _route_name(route: BaseRoute | None) -> str | None:
    return route.path if isinstance(route, Route) else None
