"""``api-router worker``: the worker of one inference node, until SIGINT or SIGTERM."""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys

import msgspec

from api_router.config.loader import load_settings


def run(args: argparse.Namespace) -> int:
    import uvloop

    from api_router.backends import BackendSpec, build_backend
    from api_router.keyspace import Keyspace
    from api_router.redis_store import connect
    from api_router.telemetry.logs import configure_logging
    from api_router.telemetry.tracing import build_tracer_provider
    from api_router.worker.agent import WorkerAgent, WorkerSettings

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
    )
    worker_settings = WorkerSettings(
        node_id=args.node_id,
        pool=args.pool,
        max_concurrency=args.max_concurrency,
        health_interval_s=args.health_interval_s,
        reclaim_idle_s=args.reclaim_idle_s,
        drain_grace_s=args.drain_grace_s,
        backend_timeout_s=args.backend_timeout_s,
    )

    async def serve() -> None:
        backend = build_backend(args.backend, spec)
        redis = connect(redis_settings)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        tracing = build_tracer_provider(settings.telemetry, service_name)
        keys = Keyspace(redis_settings.key_prefix)
        try:
            agent = WorkerAgent(worker_settings, redis, keys, backend, tracing.get_tracer(__name__))
            await agent.run(stop)
        finally:
            # The agent has drained and left the registry by now; close the clients.
            await backend.aclose()
            await redis.aclose()
            tracing.shutdown()

    try:
        uvloop.run(serve())
    except ValueError as exc:  # a backend that needs --backend-url without one
        print(f"api-router worker: {exc}", file=sys.stderr)
        return 2
    return 0
