"""Every change made through the admin API goes to the audit store: who, what, when."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request

from api_router.api.request_context import context_of
from api_router.services import services_of
from api_router.usage.record import AdminAction, now_rfc3339


def record_action(request: Request, action: str, target: str, details: dict[str, Any]) -> None:
    """Queue the action of the calling admin key (``details`` must hold no secret)."""
    context = context_of(request.scope)
    services_of(request.scope).audit.write(
        AdminAction(
            at=now_rfc3339(),
            actor=context.authenticated().key_id,
            action=action,
            target=target,
            request_id=context.request_id,
            details=details,
        )
    )
