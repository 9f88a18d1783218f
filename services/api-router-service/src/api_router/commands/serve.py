"""``api-router serve``: the gateway on uvicorn (uvloop, httptools with the edge's
deadlines and limits, factory mode)."""

from __future__ import annotations

import argparse
from functools import partial

import msgspec

from api_router.config.loader import load_settings, require_kek, require_pepper


def run(args: argparse.Namespace) -> int:
    import uvicorn

    from api_router.api.edge_protocol import edge_protocol
    from api_router.app import create_app
    from api_router.commands.gateway_server import AFTER_DRAIN_S, GatewayServer
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
        timeout_graceful_shutdown=AFTER_DRAIN_S,
    )
    # On SIGINT/SIGTERM the app drains first, for server.graceful_shutdown_s, while the
    # server still listens (GatewayServer); then uvicorn stops listening, the lifespan
    # stops background tasks and closes clients, and the process exits.
    GatewayServer(config).run()
    return 0
