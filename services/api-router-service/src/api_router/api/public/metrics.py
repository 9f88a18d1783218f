"""``GET /metrics``: Prometheus text exposition of the app's OpenTelemetry instruments."""

from __future__ import annotations

from prometheus_client import CONTENT_TYPE_LATEST
from starlette.requests import Request
from starlette.responses import Response

from api_router.services import services_of


async def metrics(request: Request) -> Response:
    body = services_of(request.scope).telemetry.metrics.render()
    return Response(body, media_type=CONTENT_TYPE_LATEST)
