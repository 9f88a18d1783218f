"""``api-router worker``: the worker of one inference node, until SIGINT or SIGTERM."""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from collections.abc import Callable
from pathlib import Path

import msgspec

from api_router.config.loader import load_settings


def run(args: argparse.Namespace) -> int:
    import uvloop

    from api_router.backends import BackendSpec, build_backend
    from api_router.backends.api_key import ApiKeyError
    from api_router.gc_tuning import tune_for_serving
    from api_router.keyspace import Keyspace
    from api_router.redis_store import StoreErrors, connect
    from api_router.telemetry.logs import configure_logging
    from api_router.telemetry.tracing import build_tracer_provider
    from api_router.telemetry.worker_metrics import WorkerMetrics
    from api_router.worker.agent import WorkerAgent, WorkerSettings
    from api_router.worker.metered_backend import MeteredBackend
    from api_router.worker.metrics_server import WorkerEndpoints

    try:
        api_key = _api_key(args)
    except ApiKeyError as exc:
        print(f"api-router worker: {exc}", file=sys.stderr)
        return 2
    settings = load_settings(args.config)
    redis_settings = settings.redis
    if args.redis_url:
        redis_settings = msgspec.structs.replace(redis_settings, url=args.redis_url)
    service_name = f"{settings.telemetry.service_name}-worker"
    configure_logging(settings.telemetry.log_level, service_name)
    spec = BackendSpec(
        url=args.backend_url,
        models=[m for m in args.models.split(",") if m],
        mock_latency_s=args.mock_latency_ms / 1000,
        mock_tokens_per_second=args.mock_tokens_per_second,
        api_key=api_key,
    )
    worker_settings = WorkerSettings(
        node_id=args.node_id,
        pool=args.pool,
        max_concurrency=args.max_concurrency,
        health_interval_s=args.health_interval_s,
        reclaim_idle_s=args.reclaim_idle_s,
        drain_grace_s=args.drain_grace_s,
        backend_timeout_s=args.backend_timeout_s,
        thermal_zones=Path(args.thermal_zones),
    )

    async def serve() -> None:
        metrics = WorkerMetrics(args.node_id, service_name)
        store_errors = StoreErrors()
        metrics.observe_store_errors(store_errors)
        backend = MeteredBackend(build_backend(args.backend, spec), metrics)
        redis = connect(redis_settings, errors=store_errors)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        tracing = build_tracer_provider(settings.telemetry, service_name)
        keys = Keyspace(redis_settings.key_prefix)
        tracer = tracing.get_tracer(__name__)
        agent = WorkerAgent(worker_settings, redis, keys, backend, tracer, metrics)
        endpoints = None
        try:
            if args.metrics_port is not None:
                endpoints = WorkerEndpoints(
                    metrics, agent.status, args.metrics_host, args.metrics_port
                )
                await endpoints.start()
            tune_for_serving()
            await agent.run(stop)
        finally:
            # The agent has drained and left the registry by now; close the clients.
            if endpoints is not None:
                await endpoints.stop()
            await backend.aclose()
            await redis.aclose()
            tracing.shutdown()
            metrics.shutdown()

    try:
        uvloop.run(serve())
    except ValueError as exc:  # a backend that needs --backend-url without one
        print(f"api-router worker: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # the metrics port is taken, or not ours to bind
        where = f"{args.metrics_host}:{args.metrics_port}"
        print(
            f"api-router worker: cannot serve metrics on {where}: {exc.strerror}", file=sys.stderr
        )
        return 2
    return 0


def _api_key(args: argparse.Namespace) -> Callable[[], str | None] | None:
    """The backend's key from where the operator put it; read (and checked) now."""
    from api_router.backends.api_key import ApiKeyError, ApiKeyFile, key_from_env

    if args.backend_api_key_env is None and args.backend_api_key_file is None:
        return None
    if args.backend == "mock":
        raise ApiKeyError("the mock backend takes no API key")
    if args.backend_api_key_file is not None:
        return ApiKeyFile(Path(args.backend_api_key_file))
    key = key_from_env(args.backend_api_key_env)
    return lambda: key
