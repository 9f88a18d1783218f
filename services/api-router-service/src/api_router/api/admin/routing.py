"""``/v1/admin/routing``: the routing in force, and the admins' overrides (scope ``admin``).

Every override names its author (the admin key), a reason and an optional TTL; it reaches
every replica within ``routing.overrides_refresh_s`` (at once by pub/sub, normally), and
every change is written to the audit store.
"""

from __future__ import annotations

from functools import partial
from typing import Any, TypeVar

import msgspec
from starlette.requests import Request
from starlette.responses import Response

from api_router.api.admin.audit_trail import record_action
from api_router.api.admin.routing_contract import (
    DrainRequest,
    OverrideRequest,
    PinRequest,
    WeightsRequest,
)
from api_router.api.body import decode_body, read_json_body
from api_router.api.json_response import json_response
from api_router.api.request_context import context_of
from api_router.errors import ApiError
from api_router.routing.routing_view import routing_view
from api_router.services import Services, services_of

T = TypeVar("T")


async def show_routing(request: Request) -> Response:
    services = services_of(request.scope)
    router = services.router
    view = routing_view(
        router.snapshot(), router.policies(), services.overrides.current, router.breakers
    )
    return json_response(view)


async def put_override(wanted: type[OverrideRequest], target: str, request: Request) -> Response:
    """Set one override: ``wanted`` is the body's kind, ``target`` the path parameter that
    names the model or node it applies to."""
    services, actor = _admin(request)
    body = await _body(request, services, wanted)
    router = services.router
    override = body.override(
        router.snapshot(), router.policies(), request.path_params[target], actor
    )
    await services.overrides.put(override)
    _audit(request, f"routing.{override.kind}", override.target, override)
    return json_response(override, 201)


put_weights = partial(put_override, WeightsRequest, "model")
put_pin = partial(put_override, PinRequest, "model")
drain = partial(put_override, DrainRequest, "node")


async def undrain(request: Request) -> Response:
    services, _ = _admin(request)
    node = request.path_params["node"]
    stored = await services.overrides.read()
    found = [o.id for o in stored if o.kind == "drain" and o.target == node]
    if not found:
        raise ApiError("not_found", f"node {node!r} is not drained")
    await services.overrides.delete(*found)
    _audit(request, "routing.undrain", node, None, {"override_ids": found})
    return json_response({"undrained": node, "override_ids": found})


async def delete_override(request: Request) -> Response:
    services, _ = _admin(request)
    override_id = request.path_params["override_id"]
    stored = {o.id: o for o in await services.overrides.read()}
    override = stored.get(override_id)
    if override is None:
        raise ApiError("not_found", f"no override {override_id!r}")
    await services.overrides.delete(override_id)
    _audit(request, f"routing.{override.kind}.delete", override.target, override)
    return json_response({"deleted": override_id})


def _admin(request: Request) -> tuple[Services, str]:
    return services_of(request.scope), context_of(request.scope).authenticated().key_id


async def _body(request: Request, services: Services, kind: type[T]) -> T:
    raw = await read_json_body(request, services.settings.server)
    return decode_body(raw, msgspec.json.Decoder(kind))


def _audit(
    request: Request,
    action: str,
    target: str,
    override: object,
    details: dict[str, Any] | None = None,
) -> None:
    record_action(request, action, target, details or msgspec.to_builtins(override))
