"""``/v1/status/healthz`` (the process is up) and ``/v1/status/readyz`` (it can serve)."""

from __future__ import annotations

import asyncio
import time
from typing import Literal

import msgspec
from starlette.requests import Request
from starlette.responses import Response

from api_router.errors import StoreUnavailable
from api_router.redis_store import store_errors
from api_router.services import Services, services_of

_PING_TIMEOUT_S = 0.5


class ComponentStatus(msgspec.Struct, frozen=True, omit_defaults=True):
    # "degraded" still counts as ready: the component works around a failure behind it.
    status: Literal["ok", "degraded", "failed"]
    detail: str | None = None


class StatusReport(msgspec.Struct, frozen=True):
    """Overall status and one entry per component."""

    status: Literal["ok", "failed", "ready", "not_ready"]
    components: dict[str, ComponentStatus]


OK = ComponentStatus("ok")


async def healthz(request: Request) -> Response:
    components = {"process": OK, **_background_tasks(services_of(request.scope))}
    healthy = all(c.status == "ok" for c in components.values())
    return _report("ok" if healthy else "failed", healthy, components)


async def readyz(request: Request) -> Response:
    services = services_of(request.scope)
    fresh = services.health.snapshot.fresh_count()
    components = {
        "serving": _serving(services),
        "redis": await _ping(services),
        "config": ComponentStatus("ok", "loaded and valid"),
        "workers": ComponentStatus(
            "ok" if fresh else "failed", f"{fresh} fresh worker(s) in the health registry"
        ),
        "usage_export": _usage_export(services),
        **_background_tasks(services),
    }
    ready = all(c.status != "failed" for c in components.values())
    return _report("ready" if ready else "not_ready", ready, components)


async def _ping(services: Services) -> ComponentStatus:
    try:
        with store_errors("redis"):
            async with asyncio.timeout(_PING_TIMEOUT_S):
                await services.redis.ping()
    except (StoreUnavailable, TimeoutError):
        snapshot = services.health.snapshot
        direct = [
            n
            for n in snapshot.nodes
            if n.transport == "http" and snapshot.states.get(n.node_id) == "healthy"
        ]
        if not direct:
            return ComponentStatus("failed", "redis did not answer PING")
        # Local-only mode (docs/architecture.md): direct nodes serve without Redis.
        detail = f"redis did not answer PING; local-only mode: {len(direct)} direct node(s) serve"
        saved_at = services.last_known_good.loaded_from
        if saved_at is not None:
            when = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(saved_at))
            detail += f", from the last-known-good cache (read from redis until {when})"
        return ComponentStatus("degraded", detail)
    return OK


def _serving(services: Services) -> ComponentStatus:
    shutdown = services.shutdown
    if not shutdown.draining:
        return ComponentStatus("ok", "accepting requests")
    return ComponentStatus("failed", f"shutting down, {shutdown.in_flight} request(s) finishing")


def _usage_export(services: Services) -> ComponentStatus:
    usage = services.usage
    if usage.state == "ok":
        return ComponentStatus("ok", "usage records flow to kafka")
    return ComponentStatus(
        "degraded", f"kafka unavailable, {usage.depth} usage record(s) kept in the spool"
    )


def _background_tasks(services: Services) -> dict[str, ComponentStatus]:
    return {
        name: ComponentStatus("failed", "stopped") if task.done() else OK
        for name, task in services.background.items()
    }


def _report(
    status: Literal["ok", "failed", "ready", "not_ready"],
    healthy: bool,
    components: dict[str, ComponentStatus],
) -> Response:
    return Response(
        msgspec.json.encode(StatusReport(status, components)),
        status_code=200 if healthy else 503,
        media_type="application/json",
    )
