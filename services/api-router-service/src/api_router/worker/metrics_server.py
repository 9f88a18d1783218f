"""The worker's own HTTP endpoints, on ``--metrics-port`` when it is given: ``/metrics``
(Prometheus text) and ``/healthz`` (200 while the worker reports its node; 503 once its
reports have not reached Redis for three health intervals, or while it drains).

aiohttp's server rather than a second uvicorn: it runs inside the worker's own event
loop, and the worker already depends on aiohttp for its backends."""

from __future__ import annotations

from collections.abc import Callable

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST

from api_router.telemetry.worker_metrics import WorkerMetrics

Status = Callable[[], tuple[bool, dict[str, object]]]


class WorkerEndpoints:
    def __init__(self, metrics: WorkerMetrics, status: Status, host: str, port: int) -> None:
        self._metrics = metrics
        self._status = status
        self._host = host
        self._port = port
        app = web.Application()
        app.router.add_get("/metrics", self._render_metrics)
        app.router.add_get("/healthz", self._healthz)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)

    async def start(self) -> None:
        await self._runner.setup()
        await web.TCPSite(self._runner, self._host, self._port).start()

    async def stop(self) -> None:
        await self._runner.cleanup()

    async def _render_metrics(self, _request: web.Request) -> web.Response:
        return web.Response(
            body=self._metrics.render(), headers={"Content-Type": CONTENT_TYPE_LATEST}
        )

    async def _healthz(self, _request: web.Request) -> web.Response:
        ok, body = self._status()
        return web.json_response(body, status=200 if ok else 503)
