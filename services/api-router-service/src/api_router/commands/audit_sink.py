"""``api-router audit-sink``: the audit topic into PostgreSQL (``usage/audit_sink.py``),
until SIGTERM or SIGINT; migrations and partitions are taken care of at its start."""

from __future__ import annotations

import argparse
import asyncio
import signal
import socket
import sys

from api_router.config.loader import load_settings


def run(args: argparse.Namespace) -> int:
    import uvloop
    from psycopg import Error as DatabaseError

    from api_router.telemetry.audit_sink_metrics import serve_metrics
    from api_router.telemetry.logs import configure_logging
    from api_router.usage.audit_sink import AuditSink

    settings = load_settings(args.config)
    configure_logging(settings.telemetry.log_level, f"{settings.telemetry.service_name}-sink")
    if settings.audit.database_url is None:
        print("api-router audit-sink: audit.database_url is not set", file=sys.stderr)
        return 2
    client_id = f"audit-sink-{socket.gethostname()}"
    sink = AuditSink(settings.kafka, settings.audit, settings.audit.database_url, client_id)
    if args.metrics_port:
        try:
            serve_metrics(sink.counts, args.metrics_host, args.metrics_port)
        except OSError as exc:
            where = f"{args.metrics_host}:{args.metrics_port}"
            print(f"api-router audit-sink: cannot serve metrics on {where}: {exc.strerror}")
            return 2

    async def consume() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        await sink.run(stop)

    try:
        uvloop.run(consume())
    except DatabaseError as exc:  # a migration the database refused
        print(f"api-router audit-sink: {exc}", file=sys.stderr)
        return 1
    return 0
