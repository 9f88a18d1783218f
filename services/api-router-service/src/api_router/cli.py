"""``api-router``: serve | worker | dev | keys | request | routing | config check.

Each subcommand is a function ``(args) -> exit code`` so tests can call :func:`main`.
Exit code 2 means the configuration or the arguments are invalid.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any

import msgspec

from api_router.client.request_command import add_request_command
from api_router.config.loader import ConfigError, load_settings, require_kek, require_pepper
from api_router.key_commands import add_key_commands

Handler = Callable[[argparse.Namespace], int]


def run() -> None:
    sys.exit(main(sys.argv[1:]))


def main(argv: Sequence[str]) -> int:
    args = _parser().parse_args(argv)
    handler: Handler = args.handler
    try:
        return handler(args)
    except ConfigError as exc:
        print(f"api-router: invalid configuration: {exc}", file=sys.stderr)
        return 2


def _serve(args: argparse.Namespace) -> int:
    import uvicorn

    from api_router.api.edge_protocol import edge_protocol
    from api_router.app import create_app
    from api_router.config.policies import load_policies
    from api_router.telemetry.logs import configure_logging

    settings = load_settings(args.config)
    server = settings.server
    if args.host or args.port:
        server = msgspec.structs.replace(
            server, host=args.host or server.host, port=args.port or server.port
        )
        settings = msgspec.structs.replace(settings, server=server)
    require_pepper(settings)
    require_kek(settings)
    if settings.limits.policies_file is not None:
        load_policies(settings.limits.policies_file)  # refuse to start on an invalid file
    configure_logging(settings.telemetry.log_level, settings.telemetry.service_name)
    config = uvicorn.Config(
        partial(create_app, settings),
        factory=True,
        host=server.host,
        port=server.port,
        loop="uvloop",
        http=edge_protocol(server),  # httptools, with deadlines and limits on request heads
        lifespan="on",
        log_config=None,
        access_log=False,
        server_header=False,
        timeout_graceful_shutdown=int(server.graceful_shutdown_s),
    )
    # uvicorn handles SIGINT/SIGTERM: stop accepting, drain in-flight requests, run the
    # lifespan's shutdown (background tasks, then clients), exit.
    uvicorn.Server(config).run()
    return 0


def _worker(args: argparse.Namespace) -> int:
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


def _dev(args: argparse.Namespace) -> int:
    from api_router.dev_stack import DevStack, StackPorts

    ports = StackPorts.resolve(args.port, args.redis_port, args.broker_port, os.environ)
    return DevStack(ports, args.config, args.run_dir, os.environ.get("OLLAMA_URL")).run()


def _routing(args: argparse.Namespace) -> int:
    from api_router.routing.override_commands import run_routing_command

    return asyncio.run(run_routing_command(args))


def _config_check(args: argparse.Namespace) -> int:
    from api_router.config.policies import load_policies

    if args.file is None and args.policies is None:
        print("api-router config check: name a router file, --policies FILE, or both",
              file=sys.stderr)  # fmt: skip
        return 2
    policies_file = args.policies
    if args.file is not None:
        settings = load_settings(args.file)
        require_pepper(settings)
        require_kek(settings)
        policies_file = policies_file or settings.limits.policies_file
        print(f"{args.file}: valid")
    if policies_file is not None:
        try:
            load_policies(policies_file)
        except ConfigError as exc:
            print(f"api-router: invalid policies in {policies_file}: {exc}", file=sys.stderr)
            return 2
        print(f"{policies_file}: valid")
    return 0


def _routing_parser(commands: Any) -> None:
    routing = commands.add_parser("routing", help="routing overrides").add_subparsers(
        required=True, metavar="ACTION", dest="action"
    )
    actions = {
        "show": "print the routing in force (JSON)",
        "weights": "set pool weights of a model: MODEL POOL=WEIGHT...",
        "drain": "take no new jobs on a node",
        "undrain": "remove a node's drain",
        "pin": "restrict a model to nodes: MODEL NODE...",
        "unpin": "remove a model's pin",
    }
    for action, help_text in actions.items():
        parser = routing.add_parser(action, help=help_text)
        parser.add_argument("--config", help="router YAML file (redis, policies file)")
        if action in ("weights", "pin", "unpin"):
            parser.add_argument("model")
        if action in ("drain", "undrain"):
            parser.add_argument("node")
        if action == "weights":
            parser.add_argument("weights", nargs="+", metavar="POOL=WEIGHT")
        if action == "pin":
            parser.add_argument("nodes", nargs="+", metavar="NODE")
        if action in ("weights", "drain", "pin"):
            parser.add_argument("--reason", required=True)
            parser.add_argument("--ttl-s", type=float, help="expire by itself after this long")
        parser.set_defaults(handler=_routing)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="api-router", description=__doc__)
    commands = parser.add_subparsers(required=True, metavar="COMMAND")

    serve = commands.add_parser("serve", help="run the gateway")
    serve.add_argument("--config", help="router YAML file (env API_ROUTER__* overrides it)")
    serve.add_argument("--host")
    serve.add_argument("--port", type=int)
    serve.set_defaults(handler=_serve)

    worker = commands.add_parser("worker", help="run the worker of one inference node")
    worker.add_argument("--node-id", required=True)
    worker.add_argument("--pool", required=True)
    worker.add_argument("--backend", choices=["ollama", "openai", "mock"], required=True)
    worker.add_argument("--backend-url")
    worker.add_argument("--redis-url", help="default: redis.url of --config / environment")
    worker.add_argument("--config", help="router YAML file, for redis and telemetry settings")
    worker.add_argument("--max-concurrency", type=int, default=2)
    worker.add_argument("--models", default="mock", help="mock backend: comma-separated models")
    worker.add_argument("--mock-latency-ms", type=float, default=0.0)
    worker.add_argument("--mock-tokens-per-second", type=float, default=0.0)
    worker.add_argument("--health-interval-s", type=float, default=5.0)
    worker.add_argument("--reclaim-idle-s", type=float, default=15.0)
    worker.add_argument("--drain-grace-s", type=float, default=30.0)
    worker.add_argument("--backend-timeout-s", type=float, default=300.0)
    worker.set_defaults(handler=_worker)

    dev = commands.add_parser("dev", help="run the whole local stack")
    dev.add_argument("--config", help="router YAML file for the gateway")
    dev.add_argument("--port", type=int, help="gateway port (env API_ROUTER_PORT, 8080)")
    dev.add_argument("--redis-port", type=int, help="env API_ROUTER_REDIS_PORT, 6380")
    dev.add_argument("--broker-port", type=int, help="env API_ROUTER_BROKER_PORT, 9092")
    dev.add_argument("--run-dir", default=".run", help="state, logs and dev.env (.run)")
    dev.set_defaults(handler=_dev)

    add_key_commands(commands)
    add_request_command(commands)
    _routing_parser(commands)

    config = commands.add_parser("config", help="configuration").add_subparsers(
        required=True, metavar="ACTION"
    )
    check = config.add_parser(
        "check", help="validate a router YAML file and its policies file (exit 2 if invalid)"
    )
    check.add_argument("file", nargs="?", help="router YAML file")
    check.add_argument("--policies", help="policies YAML file (default: limits.policies_file)")
    check.set_defaults(handler=_config_check)
    return parser
